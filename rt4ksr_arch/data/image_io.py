"""Find and decode any image a user may hand us, validated, in one place for datasets and tools.

``list_images`` is the one rule for which files of a folder are images (extension in any case,
hidden files skipped). ``decode_unchanged`` keeps an image as stored (8/16-bit,
gray/BGR/BGRA). ``decode_image`` then applies the rule every dataset follows (datasets/README.md):
3-channel BGR (OpenCV order), ``float32`` in [0, 1], HWC; gray is repeated into three channels,
an alpha channel is dropped (RT4KSR is an RGB model), 16-bit values are divided by 65535 and
8-bit by 255.
"""
import os
from typing import List, Sequence, Tuple

import cv2
import numpy as np

from rt4ksr_arch.errors import ImageReadError

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')

__all__ = ['IMAGE_EXTENSIONS', 'ImageReadError', 'is_image_name', 'list_images', 'decode_unchanged', 'decode_image']


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


def decode_unchanged(content: bytes, name: str) -> np.ndarray:
    """Decode encoded bytes as stored: uint8/uint16, HW (gray) or HWC with 1, 3 or 4 channels.

    Raises ``ImageReadError`` naming ``name`` for undecodable bytes or an unusable pixel type.
    """
    img = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED) if content else None
    if img is None:
        raise ImageReadError(f'cannot decode image {name}: the file is empty, truncated or not an image '
                             f'({"/".join(e[1:] for e in IMAGE_EXTENSIONS)}); replace or remove it')
    channels = img.shape[2] if img.ndim == 3 else 1
    if img.dtype not in (np.uint8, np.uint16) or img.ndim not in (2, 3) or channels not in (1, 3, 4):
        raise ImageReadError(f'cannot use {name}: {img.dtype} with shape {img.shape}; expected 8/16-bit gray, '
                             'color or color+alpha')
    return img


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
