"""RT4KSR models (`*_model.py`), registered in basicsr's MODEL_REGISTRY."""
from os import path as osp

from rt4ksr_arch.discovery import import_modules_with_suffix

import_modules_with_suffix(__name__, osp.dirname(osp.abspath(__file__)), '_model')
