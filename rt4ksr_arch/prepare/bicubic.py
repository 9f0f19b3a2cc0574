"""LR files for an HR-only benchmark set, as every SR paper's: MATLAB ``imresize(modcrop(HR, s), 1/s)``.

Writes ``<set>/LR_bicubic/X<s>/<stem>x<s>.png`` beside ``<set>/HR`` (the layout of
datasets/README.md and of the test options), with the MATLAB-exact resize of
``rt4ksr_arch.ops.bicubic`` (8-bit rounding after each pass; bit-exact on Set5/Set14/B100).
"""
import functools
import os
from os import path as osp
from typing import Optional, Sequence

import torch

from rt4ksr_arch.data.image_io import list_images
from rt4ksr_arch.errors import PrepareError, RT4KSRError
from rt4ksr_arch.fileio import atomic_write_bytes
from rt4ksr_arch.ops.bicubic import imresize
from rt4ksr_arch.prepare.common import ImageOutcome, ImagesFailedError, encode_png, read_image, run_jobs


def lr_name(stem: str, scale: int) -> str:
    """The benchmark LR file name of an HR stem: ``babyx2.png``."""
    return f'{stem}x{scale}.png'


def bicubic_lr_of(path: str, lr_root: str, scales: Sequence[int], compression: int) -> ImageOutcome:
    """Write the missing LR files of one HR image (the worker of ``write_bicubic_lr``)."""
    stem = osp.splitext(osp.basename(path))[0]
    targets = {s: osp.join(lr_root, f'X{s}', lr_name(stem, s)) for s in scales}
    if all(osp.exists(t) for t in targets.values()):
        return ImageOutcome(path, complete=True)
    try:
        hr = read_image(path)
    except RT4KSRError as err:
        return ImageOutcome(path, error=str(err))
    written = 0
    for scale, target in targets.items():
        if osp.exists(target):
            continue
        h, w = hr.shape[0] // scale * scale, hr.shape[1] // scale * scale
        if h == 0 or w == 0:
            return ImageOutcome(path, error=f'{path} is smaller than the scale {scale}')
        planes = torch.from_numpy(hr[:h, :w].astype('float32'))
        planes = planes.permute(2, 0, 1) if planes.dim() == 3 else planes
        peak = 65535.0 if hr.dtype.itemsize == 2 else 255.0
        lr = imresize(planes, 1 / scale, round_uint8=True, max_value=peak)
        lr = (lr.permute(1, 2, 0) if lr.dim() == 3 else lr).numpy().astype(hr.dtype)
        atomic_write_bytes(target, encode_png(lr, compression))
        written += 1
    return ImageOutcome(path, written=written)


def write_bicubic_lr(hr_dir: str, scales: Sequence[int] = (2, 3, 4), output: Optional[str] = None,
                     workers: Optional[int] = None, compression: int = 3, progress: bool = False) -> str:
    """Write ``LR_bicubic/X<s>/<stem>x<s>.png`` for every image of ``hr_dir``; return a summary.

    ``output`` defaults to ``LR_bicubic`` beside ``hr_dir``. Existing files are kept, so a rerun
    finishes an interrupted run. Raises ``PrepareError`` for a bad scale and ``ImagesFailedError``
    naming every unreadable image (after the others are done).
    """
    if not scales or any(s < 2 for s in scales):
        raise PrepareError(f'scales must be integers >= 2, got {list(scales)}')
    paths = list_images(hr_dir)
    lr_root = output or osp.join(osp.dirname(osp.normpath(osp.abspath(hr_dir))), 'LR_bicubic')
    for scale in scales:
        os.makedirs(osp.join(lr_root, f'X{scale}'), exist_ok=True)
    job = functools.partial(bicubic_lr_of, lr_root=lr_root, scales=tuple(scales), compression=compression)
    outcomes = list(run_jobs(job, paths, workers, 'bicubic', progress=progress))
    written = sum(o.written for o in outcomes)
    summary = (f'bicubic: {len(paths)} HR images of {hr_dir} -> {lr_root}/X{{{",".join(map(str, scales))}}}: '
               f'{written} LR files written')
    failures = [o for o in outcomes if o.failed]
    if failures:
        raise ImagesFailedError(failures, len(paths), 'the others are done; fix these and run again', summary)
    return summary
