"""HR images cropped into overlapping square sub-images (BasicSR's ``extract_subimages`` tiling), resumably.

Each sub-image is written under a hidden temporary name and renamed when complete, and existing
sub-images are kept, so rerunning the same call finishes an interrupted run.
"""
import functools
import itertools
import os
import struct
from os import path as osp
from typing import List, Optional, Tuple

from rt4ksr_arch.data.image_io import header_size, list_images
from rt4ksr_arch.errors import PrepareError, RT4KSRError, first_names
from rt4ksr_arch.fileio import atomic_write_bytes
from rt4ksr_arch.prepare.common import (ImageOutcome, ImagesFailedError, check_unique_stems, encode_png, read_image,
                                        remove_stale_temp_files, run_jobs)


def crop_positions(length: int, crop_size: int, step: int, thresh_size: int = 0) -> List[int]:
    """Start offsets (pixels) of the crops along one axis of ``length`` pixels, BasicSR's tiling.

    Crops start at 0, step, 2*step, ... while they fit. If more than ``thresh_size`` pixels are
    left uncovered after the last one, a final crop flush with the far border is added. An axis
    shorter than ``crop_size`` gets no crop (BasicSR raises IndexError there). Raises
    ``ValueError`` unless crop_size > 0, step > 0 and thresh_size >= 0.
    """
    if crop_size <= 0 or step <= 0 or thresh_size < 0:
        raise ValueError(f'need crop_size > 0, step > 0, thresh_size >= 0; got {crop_size}, {step}, {thresh_size}')
    if length < crop_size:
        return []
    positions = list(range(0, length - crop_size + 1, step))
    if length - (positions[-1] + crop_size) > thresh_size:
        positions.append(length - crop_size)
    return positions


def subimage_name(stem: str, index: int) -> str:
    """BasicSR's sub-image name, 1-based and zero-padded to 3 digits: ``0001_s001.png``."""
    return f'{stem}_s{index:03d}.png'


def png_size(path: str) -> Optional[Tuple[int, int]]:
    """(height, width) from a PNG's IHDR chunk (24 bytes read), or None if it is not a readable PNG."""
    try:
        with open(path, 'rb') as f:
            head = f.read(24)
    except OSError:
        return None
    if len(head) < 24 or head[:8] != b'\x89PNG\r\n\x1a\n' or head[12:16] != b'IHDR':
        return None
    width, height = struct.unpack('>II', head[16:24])
    return height, width


def _check_existing_crops(out_dir: str, stem: str, count: int, crop_size: int) -> None:
    """Existing sub-images of ``stem`` must be the ones these settings make (else: mixed outputs)."""
    stale = None
    for index in range(1, count + 1):
        target = osp.join(out_dir, subimage_name(stem, index))
        size = png_size(target) if osp.exists(target) else (crop_size, crop_size)
        if size != (crop_size, crop_size):
            stale = target
            break
    extra = osp.join(out_dir, subimage_name(stem, count + 1))
    if stale is None and osp.exists(extra):
        stale = extra
    if stale is not None:
        raise PrepareError(f'{stale} does not belong to the {count} {crop_size}x{crop_size} sub-images these '
                           'settings make from this image: OUTPUT_DIR holds sub-images from other settings or from '
                           'another image with the same name; use a new OUTPUT_DIR')


def extract_subimages_of(path: str, out_dir: str, crop_size: int, step: int, thresh_size: int,
                         compression: int) -> ImageOutcome:
    """Write the missing sub-images of one image into ``out_dir`` (the worker of ``extract_subimages``).

    The outcome is ``written`` (count), ``complete`` (all existed), ``small`` (no crop fits) or
    failed: an unreadable image, or sub-images of other settings in ``out_dir``. Errors writing
    the output (a full disk) are raised: they would fail every other image too.
    """
    stem = osp.splitext(osp.basename(path))[0]
    try:
        size = header_size(path)
        if size is not None:
            counts = [len(crop_positions(n, crop_size, step, thresh_size)) for n in size]
            if 0 in counts:
                return ImageOutcome(path, small=True)
            count = counts[0] * counts[1]
            if all(osp.exists(osp.join(out_dir, subimage_name(stem, i))) for i in range(1, count + 1)):
                _check_existing_crops(out_dir, stem, count, crop_size)
                return ImageOutcome(path, complete=True)
        img = read_image(path)
        rows = crop_positions(img.shape[0], crop_size, step, thresh_size)
        cols = crop_positions(img.shape[1], crop_size, step, thresh_size)
        if not rows or not cols:
            return ImageOutcome(path, small=True)
        _check_existing_crops(out_dir, stem, len(rows) * len(cols), crop_size)
        written = 0
        for index, (y, x) in enumerate(itertools.product(rows, cols), start=1):
            target = osp.join(out_dir, subimage_name(stem, index))
            if osp.exists(target):  # finished by an earlier run: files only ever appear complete
                continue
            atomic_write_bytes(target, encode_png(img[y:y + crop_size, x:x + crop_size], compression))
            written += 1
        return ImageOutcome(path, written=written, complete=not written)
    except RT4KSRError as err:
        return ImageOutcome(path, error=str(err))


def extract_subimages(input_dir: str, output_dir: str, crop_size: int = 480, step: int = 240, thresh_size: int = 0,
                      workers: Optional[int] = None, compression: int = 3, progress: bool = False) -> str:
    """Crop every image directly inside ``input_dir`` into ``crop_size``-pixel squares in ``output_dir``.

    Sub-images are ``<stem>_s001.png``, ... in row-major order (see ``crop_positions``), PNG at
    ``compression`` 0..9, depth and channels as stored. Existing sub-images are kept. Returns a
    one-line summary. Raises ``ImagesFailedError`` after the readable images are done when some
    could not be cropped, ``PrepareError`` for unusable folders or settings, and
    ``FileNotFoundError`` / ``ImageReadError`` for a missing or image-less ``input_dir``.
    ``workers`` and ``progress``: see ``run_jobs``.
    """
    crop_positions(crop_size, crop_size, step, thresh_size)  # validates the settings before any work
    paths = list_images(input_dir)
    check_unique_stems((osp.basename(p) for p in paths), input_dir)
    if osp.abspath(input_dir) == osp.abspath(output_dir):
        raise PrepareError('INPUT_DIR and OUTPUT_DIR are the same folder; choose another OUTPUT_DIR')
    os.makedirs(output_dir, exist_ok=True)
    cleaned = remove_stale_temp_files(output_dir)
    job = functools.partial(extract_subimages_of, out_dir=output_dir, crop_size=crop_size, step=step,
                            thresh_size=thresh_size, compression=compression)
    outcomes = list(run_jobs(job, paths, workers, 'subimages', progress=progress))
    failures = sorted((o for o in outcomes if o.failed), key=lambda o: o.path)
    small = sorted(osp.basename(o.path) for o in outcomes if o.small)
    summary = (f'subimages: {len(paths)} images in {input_dir} -> {output_dir}: '
               f'{sum(o.written for o in outcomes)} sub-images written, '
               f'{sum(o.complete for o in outcomes)} images already complete')
    if small:
        summary += f', {len(small)} smaller than {crop_size}x{crop_size} skipped ({first_names(small)})'
    if cleaned:
        summary += f', {cleaned} temporary files of an interrupted run removed'
    if failures:
        raise ImagesFailedError(failures, len(paths), 'the others are done; fix these and run again', summary)
    return summary
