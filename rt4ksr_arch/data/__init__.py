"""RT4KSR datasets (`*_dataset.py`), registered in basicsr's DATASET_REGISTRY."""
from os import path as osp

from rt4ksr_arch.discovery import import_modules_with_suffix

import_modules_with_suffix(__name__, osp.dirname(osp.abspath(__file__)), '_dataset')
