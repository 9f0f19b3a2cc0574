"""What every ``prepare`` step shares: reading and encoding images, the worker pool and its outcome type."""
import os
from dataclasses import dataclass
from multiprocessing import get_context
from os import path as osp
from typing import Callable, Dict, Iterable, Iterator, Optional, Sequence, Tuple, TypeVar

import cv2
import numpy as np
from tqdm import tqdm

from rt4ksr_arch.data.image_io import decode_unchanged
from rt4ksr_arch.errors import ImageReadError, PrepareError
from rt4ksr_arch.fileio import TMP_SUFFIX

Item = TypeVar('Item')


@dataclass(frozen=True)
class ImageOutcome:
    """What a worker did with one input image (small, picklable: it crosses process boundaries).

    ``path``: the input image. ``error``: why it failed (the message names the file), else None.
    ``written``: output files written for it by this run. ``complete``: every output existed
    already, nothing was written. ``small``: smaller than one crop, so it has no output.
    ``shape``: (h, w, c) as decoded, c = 1 for a 2-D gray image, when the job decoded it.
    ``png``: its PNG encoding, for the LMDB writer. A failed outcome carries nothing else, and
    ``complete`` / ``small`` exclude each other and any written file.
    """
    path: str
    error: Optional[str] = None
    written: int = 0
    complete: bool = False
    small: bool = False
    shape: Optional[Tuple[int, int, int]] = None
    png: Optional[bytes] = None

    def __post_init__(self) -> None:
        # A contradictory outcome is a bug in a worker: counted as both done and failed, an image
        # would vanish from the summary or be written to an LMDB after its error.
        if self.error is not None and (self.written or self.complete or self.small or self.shape or self.png):
            raise ValueError(f'a failed outcome carries no result: {self}')
        if self.written < 0 or ((self.complete or self.small) and self.written) or (self.complete and self.small):
            raise ValueError(f'contradictory outcome: {self}')

    @property
    def failed(self) -> bool:
        """Whether the image could not be used (see ``error``)."""
        return self.error is not None


class ImagesFailedError(PrepareError):
    """Some input images could not be used; the message names every one of them.

    ``failures``: their outcomes, each ``error`` the reason for one file. ``total``: the images
    of the run. ``summary``: what the run did with the others ('' when it kept nothing).
    """

    def __init__(self, failures: Sequence[ImageOutcome], total: int, consequence: str, summary: str = '') -> None:
        self.failures, self.total, self.summary = tuple(failures), total, summary
        names = ', '.join(f.path for f in self.failures)
        super().__init__(f'{len(self.failures)} of {total} images failed ({names}); {consequence}')


def default_workers() -> int:
    """The CPUs this process may run on (the affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def read_image(path: str) -> np.ndarray:
    """The image as stored (``cv2.IMREAD_UNCHANGED``): uint8/uint16, HW or HWC with 1, 3 or 4 channels.

    Raises ``ImageReadError`` naming ``path`` when it cannot be read or decoded.
    """
    try:
        data = np.fromfile(path, dtype=np.uint8)  # not cv2.imread: it cannot tell missing from corrupt
    except OSError as err:
        raise ImageReadError(f'cannot read {path}: {err.strerror or err}') from err
    return decode_unchanged(data.tobytes(), path)


def image_shape(img: np.ndarray) -> Tuple[int, int, int]:
    """(h, w, c) with c = 1 for a 2-D gray image, as BasicSR's meta_info files write it."""
    return (img.shape[0], img.shape[1], img.shape[2] if img.ndim == 3 else 1)


def encode_png(img: np.ndarray, compression: int) -> bytes:
    """PNG bytes of an image as stored (depth and channels kept); ``compression`` is 0..9."""
    ok, buf = cv2.imencode('.png', np.ascontiguousarray(img), [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise PrepareError(f'cv2 could not encode a {img.dtype} {img.shape} image as PNG')
    return buf.tobytes()


def check_unique_stems(names: Iterable[str], what: str) -> None:
    """Raise ``PrepareError`` when two names share a stem (``a.png``, ``a.jpg``): they would write the same outputs.

    ``what`` names the folder or list the names come from.
    """
    seen: Dict[str, str] = {}
    for name in names:
        stem = osp.splitext(name)[0]
        if stem in seen:
            raise PrepareError(f'{what}: {seen[stem]} and {name} have the same name stem and would write the same '
                               'outputs; rename or move one of them')
        seen[stem] = name


def remove_stale_temp_files(folder: str) -> int:
    """Delete the ``.<name>.png.*.tmp`` files a killed run left in ``folder``; return how many."""
    removed = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_file() and entry.name.startswith('.') and entry.name.endswith(TMP_SUFFIX) \
                    and '.png.' in entry.name:
                os.remove(entry.path)
                removed += 1
    return removed


def run_jobs(job: Callable[[Item], ImageOutcome], items: Sequence[Item], workers: Optional[int], desc: str,
             ordered: bool = False, progress: bool = False) -> Iterator[ImageOutcome]:
    """``job`` over ``items`` in a pool of ``workers`` processes (default: the CPUs available).

    One worker runs in this process. Outcomes come in ``items`` order when ``ordered``, else as
    they finish. ``progress`` shows a progress bar (on stderr) labelled ``desc``.
    """
    workers = max(1, min(workers or default_workers(), len(items)))
    bar = tqdm(total=len(items), unit='image', desc=desc, dynamic_ncols=True, disable=not progress)
    try:
        if workers == 1:
            yield from _advance(map(job, items), bar)
        else:
            # spawned, not forked: a fork of a process whose threads (torch, OpenCV, PyAV) hold locks can
            # deadlock in the child (seen: a pool worker waiting forever on a futex in the test suite)
            with get_context('spawn').Pool(workers) as pool:
                yield from _advance((pool.imap if ordered else pool.imap_unordered)(job, items, chunksize=4), bar)
    finally:
        bar.close()


def _advance(outcomes: Iterable[ImageOutcome], bar: tqdm) -> Iterator[ImageOutcome]:
    for outcome in outcomes:
        bar.update(1)
        yield outcome
