"""A folder of images as a BasicSR LMDB, built aside and renamed into place when complete."""
import functools
import os
import shutil
import tempfile
from os import path as osp
from typing import Optional

import lmdb

from basicsr.utils.lmdb_util import LmdbMaker
from rt4ksr_arch.data.image_io import list_images
from rt4ksr_arch.data.meta_info import listed_images
from rt4ksr_arch.errors import OutputExistsError, PrepareError, RT4KSRError
from rt4ksr_arch.prepare.common import (ImageOutcome, ImagesFailedError, check_unique_stems, encode_png, image_shape,
                                        read_image, run_jobs)

PARTIAL_LMDB = '.partial-'


def lmdb_key(name: str) -> str:
    """The LMDB key of an image file name: its name without extension, checked for BasicSR.

    ``FileClient`` encodes keys as ASCII and ``paths_from_lmdb`` recovers them from
    meta_info.txt with ``line.split('.')[0]``, so a key must be ASCII without dots or spaces;
    raises ``PrepareError`` naming the file otherwise.
    """
    key = osp.splitext(name)[0]
    if not key.isascii() or '.' in key or any(ch.isspace() for ch in key) or not key:
        raise PrepareError(f'{name}: LMDB keys are file names without extension and must be ASCII without '
                           "dots or whitespace (BasicSR reads them back with line.split('.')[0]); rename the file")
    return key


def png_of(path: str, compression: int) -> ImageOutcome:
    """One image's ``png`` encoding and ``shape``, or its error (the worker of ``build_lmdb``)."""
    try:
        img = read_image(path)
        return ImageOutcome(path, shape=image_shape(img), png=encode_png(img, compression))
    except RT4KSRError as err:
        return ImageOutcome(path, error=str(err))


def _remove_partial_lmdbs(output: str) -> int:
    parent, base = osp.split(output)
    prefix = f'.{base[:-len(".lmdb")]}{PARTIAL_LMDB}'
    stale = [n for n in os.listdir(parent or '.') if n.startswith(prefix) and n.endswith('.lmdb')]
    for name in stale:
        shutil.rmtree(osp.join(parent, name))
    return len(stale)


def build_lmdb(folder: str, output: str, meta_info: Optional[str] = None, compression: int = 1, batch: int = 5000,
               workers: Optional[int] = None, overwrite: bool = False, progress: bool = False) -> str:
    """Store the images of ``folder`` (or those ``meta_info`` lists, in its order) in BasicSR's LMDB layout.

    Keys are the file stems (``lmdb_key``), values the PNG-encoded image at ``compression``
    0..9, ``batch`` images per transaction, and ``meta_info.txt`` inside holds
    ``<key>.png (h,w,c) <compression>`` per image, as ``basicsr.utils.lmdb_util`` writes it.
    ``output`` (ending in ``.lmdb``) appears only complete. Returns a one-line summary. Raises
    ``OutputExistsError`` when ``output`` exists and not ``overwrite`` (an existing one is
    replaced only once the new one is complete), ``ImagesFailedError`` (nothing written) when
    some images cannot be decoded, ``PrepareError`` for unusable names or an LMDB error,
    ``DatasetError`` for a ``meta_info`` listing images that are not in ``folder``, and
    ``FileNotFoundError`` / ``ImageReadError`` for a missing or image-less ``folder``.
    ``workers`` and ``progress``: see ``run_jobs``.
    """
    output = osp.normpath(output)
    if not output.endswith('.lmdb'):
        raise PrepareError(f'{output}: the LMDB folder name must end with .lmdb (BasicSR checks it)')
    if osp.exists(output) and not overwrite:
        raise OutputExistsError(f'{output} exists; pass --overwrite to replace it, or choose another OUTPUT')
    if meta_info:
        if not osp.isdir(folder):
            raise FileNotFoundError(f'folder not found: {folder}')
        names = listed_images(meta_info, folder)
    else:
        names = [osp.basename(p) for p in list_images(folder)]
    keys = [lmdb_key(n) for n in names]
    check_unique_stems(names, meta_info or folder)

    parent = osp.dirname(osp.abspath(output))
    os.makedirs(parent, exist_ok=True)
    cleaned = _remove_partial_lmdbs(osp.abspath(output))
    # Built under a hidden temporary name and renamed when complete: a killed run leaves only
    # a `.<name>.partial-*.lmdb` folder (removed by the next run), never a short OUTPUT.
    partial = tempfile.mkdtemp(prefix=f'.{osp.basename(output)[:-len(".lmdb")]}{PARTIAL_LMDB}', suffix='.lmdb',
                               dir=parent)
    try:
        os.rmdir(partial)  # LmdbMaker refuses an existing folder
        # Not make_lmdb_from_imgs: it sizes the map from the first image x10 (MapFullError when later
        # images are larger), decodes in one process or holds every image in memory, and crashes
        # on an unreadable file. Its LmdbMaker writer (1 TiB sparse map) is fed by a pool instead.
        maker = LmdbMaker(partial, batch=batch, compress_level=compression)
        job = functools.partial(png_of, compression=compression)
        failures = []
        outcomes = run_jobs(job, [osp.join(folder, n) for n in names], workers, 'lmdb', ordered=True,
                            progress=progress)
        for key, outcome in zip(keys, outcomes):
            if outcome.failed:
                failures.append(outcome)
            elif not failures:  # after a failure only the remaining errors are collected
                maker.put(outcome.png, key, outcome.shape)
        maker.close()
        if failures:
            raise ImagesFailedError(failures, len(names), f'{output} was not written')
        with open(osp.join(partial, 'meta_info.txt'), 'rb+') as f:
            os.fsync(f.fileno())  # data.mdb is synced by LMDB's commit; its listing must be durable too
        if osp.exists(output):  # overwrite: swap, so the old LMDB is never deleted before the new one is in place
            old = partial[:-len('.lmdb')] + '.old.lmdb'
            os.rename(output, old)
            os.rename(partial, output)
            shutil.rmtree(old)
        else:
            os.rename(partial, output)
    except BaseException as err:
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(err, lmdb.Error):  # e.g. a 1 TiB map refused under a `ulimit -v`
            raise PrepareError(f'LMDB error while building {output}: {type(err).__name__}: {err}') from err
        raise
    summary = f'lmdb: {len(keys)} images of {folder} -> {output} (PNG compression {compression})'
    if cleaned:
        summary += f'; {cleaned} partial build(s) of an interrupted run removed'
    return summary
