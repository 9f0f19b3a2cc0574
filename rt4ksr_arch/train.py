"""Training runner: ``python rt4ksr_arch/train.py -opt options/train/rt4ksr_x2.yml``.

Thin: registers rt4ksr_arch into BasicSR, then runs BasicSR's own train pipeline with the
repository root as root path (experiments go to ``experiments/<name>``).
"""
from os import path as osp

import rt4ksr_arch  # noqa: F401  (applies compat fixes, registers archs/datasets/models)
from basicsr.train import train_pipeline

if __name__ == '__main__':
    train_pipeline(osp.abspath(osp.join(__file__, osp.pardir, osp.pardir)))
