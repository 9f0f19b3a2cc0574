"""RT4KSR network architectures (`*_arch.py`), registered in basicsr's ARCH_REGISTRY."""
from os import path as osp

from rt4ksr_arch.discovery import import_modules_with_suffix

import_modules_with_suffix(__name__, osp.dirname(osp.abspath(__file__)), '_arch')
