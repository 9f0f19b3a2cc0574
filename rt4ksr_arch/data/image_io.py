"""Find and decode any image a user may hand us, validated, in one place for datasets and tools.

``list_images`` is the one rule for which files of a folder are images (extension in any case,
hidden files skipped). ``decode_unchanged`` keeps an image's depth and channels as stored
(8/16-bit, gray/BGR/BGRA) and turns it upright as viewers show it (EXIF orientation, which
OpenCV's ``IMREAD_UNCHANGED`` ignores; ``IMREAD_COLOR``, BasicSR's reader, applies it too).
``decode_image`` then applies the rule every dataset follows (datasets/README.md):
3-channel BGR (OpenCV order), ``float32`` in [0, 1], HWC; gray is repeated into three channels,
an alpha channel is dropped (RT4KSR is an RGB model), 16-bit values are divided by 65535 and
8-bit by 255.
"""
import io
import os
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from rt4ksr_arch.errors import ImageReadError

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
EIGHT_BIT_FORMATS = ('.jpg', '.jpeg', '.webp', '.bmp')  # 16-bit images are written 8-bit there
NO_ALPHA_FORMATS = ('.jpg', '.jpeg')

__all__ = ['IMAGE_EXTENSIONS', 'ImageReadError', 'is_image_name', 'list_images', 'exif_orientation',
           'apply_orientation', 'decode_unchanged', 'decode_image', 'shown_size', 'header_size', 'encode_image']

_ORIENTATION_TAG = 0x0112  # EXIF/TIFF tag 274: how the stored pixels must be turned for display
# Orientation value -> the operation that turns stored pixels upright (EXIF 2.32, tag 274; the same
# table as Pillow's ImageOps.exif_transpose, which the tests use as the reference).
_UPRIGHT: Dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],  # mirrored left-right
    3: lambda a: a[::-1, ::-1],  # rotated 180
    4: lambda a: a[::-1],  # mirrored top-bottom
    5: lambda a: a.swapaxes(0, 1),  # transposed
    6: lambda a: np.rot90(a, -1),  # stored 90 degrees counter-clockwise: turn clockwise
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),  # transversed
    8: lambda a: np.rot90(a, 1),  # stored 90 degrees clockwise: turn counter-clockwise
}


def is_image_name(name: str, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> bool:
    """A non-hidden file name whose extension (any case) is one of ``extensions``."""
    return not name.startswith('.') and os.path.splitext(name)[1].lower() in extensions


def list_images(folder: str, extensions: Sequence[str] = IMAGE_EXTENSIONS, recursive: bool = False) -> List[str]:
    """Sorted paths of the image files in ``folder`` (and its subfolders when ``recursive``).

    Raises ``FileNotFoundError`` for a missing folder, ``NotADirectoryError`` for a file and
    ``ImageReadError`` when no image is found (naming the subfolders that were not searched).
    """
    if not os.path.exists(folder):
        raise FileNotFoundError(f'folder not found: {folder}')
    if not os.path.isdir(folder):
        raise NotADirectoryError(f'not a folder: {folder}')
    found, subfolders = [], []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
        found += [os.path.join(root, f) for f in files if is_image_name(f, extensions)]
        if not recursive:
            subfolders = dirs
            break
    if not found:
        hint = f'; subfolders ({", ".join(subfolders[:3])}) are not searched' if subfolders else ''
        raise ImageReadError(f'no images ({"/".join(e[1:] for e in extensions)}) in {folder}{hint}')
    return sorted(found)


def _header(source: Union[str, io.BytesIO]) -> Tuple[Optional[Tuple[int, int]], int]:
    """((height, width) as stored, EXIF orientation) from a file header; (None, 1) when Pillow cannot tell."""
    try:
        from PIL import Image
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # huge images warn about decompression bombs; only the header is read
            with Image.open(source) as img:
                width, height = img.size
                value = img.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # not something Pillow reads (OpenCV may still decode it)
        return None, 1
    return (height, width), value if value in _UPRIGHT else 1


def exif_orientation(content: bytes) -> int:
    """The EXIF orientation (1..8; 1 = upright) of encoded image bytes, 1 when absent or unreadable."""
    return _header(io.BytesIO(content))[1]


def header_size(path: str) -> Optional[Tuple[int, int]]:
    """(height, width) as displayed, from the file header alone (no decoding), or None if unsure."""
    stored, orientation = _header(path)
    return shown_size(*stored, orientation) if stored else None


def apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """``img`` (HW or HWC) turned upright for an EXIF ``orientation`` (1..8), contiguous."""
    return np.ascontiguousarray(_UPRIGHT[orientation](img)) if orientation in _UPRIGHT else img


def shown_size(height: int, width: int, orientation: int) -> Tuple[int, int]:
    """(height, width) as displayed: orientations 5..8 swap the stored sides."""
    return (width, height) if orientation >= 5 else (height, width)


def decode_unchanged(content: bytes, name: str) -> np.ndarray:
    """Decode encoded bytes with depth and channels as stored, upright as viewers show it.

    Returns uint8/uint16, HW (gray) or HWC with 1, 3 or 4 channels (BGR/BGRA order). Raises
    ``ImageReadError`` naming ``name`` for undecodable bytes or an unusable pixel type.
    """
    img = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED) if content else None
    if img is None:
        raise ImageReadError(f'cannot decode image {name}: the file is empty, truncated or not an image '
                             f'({"/".join(e[1:] for e in IMAGE_EXTENSIONS)}); replace or remove it')
    channels = img.shape[2] if img.ndim == 3 else 1
    if img.dtype not in (np.uint8, np.uint16) or img.ndim not in (2, 3) or channels not in (1, 3, 4):
        raise ImageReadError(f'cannot use {name}: {img.dtype} with shape {img.shape}; expected 8/16-bit gray, '
                             'color or color+alpha')
    return apply_orientation(img, exif_orientation(content))


def decode_image(content: bytes, name: str) -> Tuple[np.ndarray, int]:
    """Decode encoded image bytes into (BGR float32 HWC in [0, 1], bit depth 8 or 16)."""
    img = decode_unchanged(content, name)
    depth = 16 if img.dtype == np.uint16 else 8
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    return img.astype(np.float32) / (65535.0 if depth == 16 else 255.0), depth


def encode_image(img: np.ndarray, ext: str) -> Tuple[bytes, List[str]]:
    """Encode an image as stored by ``decode_unchanged`` for a file with extension ``ext``.

    Returns (bytes, notes). Formats that hold 8 bits (JPEG, WebP, BMP) get 16-bit images
    converted by the exact 16->8-bit map (v / 257, rounded) instead of OpenCV's saturation
    (which turns almost every 16-bit value into 255); JPEG drops an alpha channel. Each such
    conversion is described in ``notes``. Raises ``ImageReadError`` for an extension OpenCV
    cannot write.
    """
    ext = ext.lower()
    if ext not in IMAGE_EXTENSIONS:
        raise ImageReadError(f'cannot write {ext or "files without an extension"} images; use one of '
                             f'{", ".join(IMAGE_EXTENSIONS)}')
    notes = []
    if img.dtype == np.uint16 and ext in EIGHT_BIT_FORMATS:
        img = np.rint(img / 257.0).astype(np.uint8)
        notes.append(f'16-bit image written as 8-bit ({ext[1:].upper()} holds 8 bits; .png or .tif keep 16)')
    if img.ndim == 3 and img.shape[2] == 4 and ext in NO_ALPHA_FORMATS:
        img = img[:, :, :3]
        notes.append('alpha channel dropped (JPEG has none; .png, .webp or .tif keep it)')
    ok, encoded = cv2.imencode(ext, np.ascontiguousarray(img))
    if not ok:
        raise ImageReadError(f'OpenCV could not encode a {img.dtype} {img.shape} image as {ext}')
    return encoded.tobytes(), notes
