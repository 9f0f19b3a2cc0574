"""BasicSR meta_info files for a folder of images (the format: ``rt4ksr_arch.data.meta_info``)."""
import os
from os import path as osp
from typing import Optional

from rt4ksr_arch.data.image_io import list_images
from rt4ksr_arch.data.meta_info import meta_info_line
from rt4ksr_arch.errors import OutputExistsError, PrepareError, RT4KSRError
from rt4ksr_arch.fileio import atomic_write_bytes
from rt4ksr_arch.prepare.common import ImageOutcome, ImagesFailedError, image_shape, read_image, run_jobs


def default_meta_info_path(folder: str) -> str:
    """``meta_info_<folder name>.txt`` beside ``folder`` (inside it, BasicSR would list it as an image)."""
    folder = osp.normpath(osp.abspath(folder))
    return osp.join(osp.dirname(folder), f'meta_info_{osp.basename(folder)}.txt')


def shape_of(path: str) -> ImageOutcome:
    """The decoded ``shape`` of one image, or its error (the worker of ``write_meta_info``)."""
    try:
        return ImageOutcome(path, shape=image_shape(read_image(path)))
    except RT4KSRError as err:
        return ImageOutcome(path, error=str(err))


def write_meta_info(folder: str, output: Optional[str] = None, overwrite: bool = False,
                    workers: Optional[int] = None, progress: bool = False) -> str:
    """Write ``name (h,w,c)`` for every image directly inside ``folder``, sorted by name; return a summary.

    ``output`` defaults to ``default_meta_info_path(folder)`` and is written atomically, or not
    at all: raises ``OutputExistsError`` when it exists and not ``overwrite``, ``PrepareError``
    for a name with whitespace, ``ImagesFailedError`` (nothing written) when some images cannot
    be decoded, ``FileNotFoundError`` / ``ImageReadError`` for a missing or image-less folder.
    ``workers`` and ``progress``: see ``run_jobs``.
    """
    output = output or default_meta_info_path(folder)
    paths = list_images(folder)
    if osp.exists(output) and not overwrite:
        raise OutputExistsError(f'{output} exists; pass --overwrite to replace it, or choose another --output')
    for path in paths:
        if any(ch.isspace() for ch in osp.basename(path)):
            raise PrepareError(f'{path}: BasicSR splits meta_info lines at spaces, so image names must not contain '
                               'whitespace; rename the file')
    # Decoding every image (not just its header) gives the exact shape BasicSR's lmdb tools
    # write and finds corrupt files now rather than in the middle of training.
    outcomes = list(run_jobs(shape_of, paths, workers, 'meta-info', ordered=True, progress=progress))
    failures = [o for o in outcomes if o.failed]
    if failures:
        raise ImagesFailedError(failures, len(paths), f'nothing was written to {output}')
    lines = [meta_info_line(osp.basename(o.path), o.shape) for o in outcomes]
    os.makedirs(osp.dirname(osp.abspath(output)), exist_ok=True)
    atomic_write_bytes(output, ''.join(line + '\n' for line in lines).encode('utf-8'), fsync=True)
    return f'meta-info: {len(lines)} images of {folder} -> {output}'
