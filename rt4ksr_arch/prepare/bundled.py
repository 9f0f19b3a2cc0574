"""Quickstart data without downloads: the photographs that ship inside scikit-image's wheel, as PNG."""
import os
from os import path as osp
from typing import Callable, Dict, List

import cv2
import numpy as np

from rt4ksr_arch.errors import PrepareError
from rt4ksr_arch.fileio import atomic_write_bytes
from rt4ksr_arch.prepare.common import encode_png, remove_stale_temp_files

# skimage.data photographs that ship inside the wheel (no download). Left out: the grayscale
# ones, synthetic images (logo, colorwheel, chessboards), `cat` (= chelsea) and
# motorcycle_right (the stereo twin of motorcycle_left: near-duplicate content).
BUNDLED_TRAIN = ('astronaut', 'coffee', 'rocket', 'hubble_deep_field', 'motorcycle_left', 'immunohistochemistry',
                 'retina')
# Held out: cat fur is fine high-frequency texture, and at 300x451 validation is quick on a CPU.
BUNDLED_VAL = ('chelsea', )


def bundled_loaders() -> Dict[str, Callable[[], np.ndarray]]:
    """skimage.data loaders of the bundled photographs, by name; each returns an RGB uint8 HWC array."""
    from skimage import data
    loaders = {name: getattr(data, name) for name in BUNDLED_TRAIN + BUNDLED_VAL if hasattr(data, name)}
    loaders['motorcycle_left'] = lambda: data.stereo_motorcycle()[0]
    return loaders


def write_bundled(output_dir: str, compression: int = 3) -> str:
    """Write the bundled photographs as BGR PNG into ``output_dir/train`` and ``output_dir/val``.

    Existing files are kept, so a rerun writes nothing. A photograph this scikit-image cannot
    load offline is skipped and named, with the reason, in the returned one-line summary.
    Raises ``PrepareError`` when none can be loaded or one is not an RGB uint8 photo.
    """
    loaders = bundled_loaders()
    written, present = 0, 0
    unavailable: List[str] = []  # 'name: reason'
    for split, names in (('train', BUNDLED_TRAIN), ('val', BUNDLED_VAL)):
        os.makedirs(osp.join(output_dir, split), exist_ok=True)
        remove_stale_temp_files(osp.join(output_dir, split))
        for name in names:
            target = osp.join(output_dir, split, f'{name}.png')
            if osp.exists(target):
                present += 1
                continue
            try:
                rgb = loaders[name]()
            except Exception as err:  # a future scikit-image may move an image behind a download
                unavailable.append(f'{name}: {type(err).__name__}')
                continue
            if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
                raise PrepareError(f'skimage.data.{name} is {rgb.dtype} {rgb.shape}, expected an RGB uint8 photo')
            atomic_write_bytes(target, encode_png(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), compression))
            written += 1
    if written + present == 0:
        raise PrepareError('none of the bundled skimage.data photographs could be loaded (is scikit-image installed?)')
    summary = (f'bundled: {output_dir}/train ({len(BUNDLED_TRAIN)} photos), {output_dir}/val '
               f'({", ".join(BUNDLED_VAL)}): {written} written, {present} already present')
    return summary + (f', {len(unavailable)} not available offline ({", ".join(unavailable)})' if unavailable else '')
