"""Training data preparation (the library behind ``rt4ksr prepare``): one module per step.

- ``subimages``: HR images cropped into overlapping sub-images, resumably.
- ``meta_info``: BasicSR's ``name (h,w,c)`` list of a folder.
- ``lmdb``: a folder (or a meta_info list) as a BasicSR LMDB, built aside and renamed.
- ``bundled``: scikit-image's bundled photographs as quickstart train/val data.
- ``bicubic``: MATLAB-bicubic LR files for an HR-only benchmark set (e.g. Manga109).

Inputs are the images directly inside a folder (``rt4ksr_arch.data.image_io.list_images``), read
as stored (``cv2.IMREAD_UNCHANGED``): gray, 16-bit and RGBA images keep their channels and depth
in every output. Every function returns a one-line summary; per-image work runs in a process
pool whose workers return an ``ImageOutcome`` each, and images that fail are collected and
raised together as one ``ImagesFailedError`` after the others are done.
"""
from rt4ksr_arch.errors import PrepareError
from rt4ksr_arch.prepare.bicubic import write_bicubic_lr
from rt4ksr_arch.prepare.bundled import BUNDLED_TRAIN, BUNDLED_VAL, write_bundled
from rt4ksr_arch.prepare.common import ImageOutcome, ImagesFailedError
from rt4ksr_arch.prepare.lmdb import build_lmdb, lmdb_key
from rt4ksr_arch.prepare.meta_info import default_meta_info_path, write_meta_info
from rt4ksr_arch.prepare.subimages import crop_positions, extract_subimages, subimage_name

__all__ = ['PrepareError', 'ImageOutcome', 'ImagesFailedError', 'crop_positions', 'subimage_name', 'extract_subimages',
           'default_meta_info_path', 'write_meta_info', 'lmdb_key', 'build_lmdb', 'BUNDLED_TRAIN', 'BUNDLED_VAL',
           'write_bundled', 'write_bicubic_lr']
