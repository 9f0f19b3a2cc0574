"""BasicSR's meta_info files: one ``name (h,w,c)`` line per image, in the dataset's order.

The one writer of a line (``rt4ksr prepare meta-info``) and the one reader (``rt4ksr prepare
lmdb --meta-info`` and ``OnlineBicubicPairedDataset``'s ``meta_info_file``). BasicSR takes the
first space-separated field of a line as the name (``line.strip().split(' ')[0]``), so names
cannot contain spaces.
"""
from os import path as osp
from typing import List, Sequence

from rt4ksr_arch.errors import DatasetError, first_names


def meta_info_line(name: str, shape: Sequence[int]) -> str:
    """One line of a meta_info file: ``0001_s001.png (480,480,3)`` for ``shape`` (h, w, c)."""
    h, w, c = shape
    return f'{name} ({h},{w},{c})'


def read_meta_info_names(path: str) -> List[str]:
    """The image names a meta_info file lists, in its order (blank lines skipped).

    Raises ``FileNotFoundError`` when ``path`` is not a file and ``DatasetError`` when it lists
    no image.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'meta_info file not found: {path}')
    with open(path, 'r', encoding='utf-8') as f:
        names = [line.strip().split(' ')[0] for line in f if line.strip()]
    if not names:
        raise DatasetError(f'meta_info file {path} lists no images')
    return names


def listed_images(meta_info_file: str, folder: str) -> List[str]:
    """The names ``meta_info_file`` lists, each checked to be a file in ``folder`` (names are relative to it).

    Raises ``DatasetError`` with the count and the first missing names when some are not
    there, so a wrong folder or a stale list fails at once rather than at the first read.
    """
    names = read_meta_info_names(meta_info_file)
    missing = [n for n in names if not osp.isfile(osp.join(folder, n))]
    if missing:
        raise DatasetError(f'{len(missing)} of {len(names)} images listed in {meta_info_file} are not in {folder}: '
                           f'{first_names(missing)}')
    return names
