"""Training runner: ``python rt4ksr_arch/train.py -opt options/train/rt4ksr_x2.yml``.

Thin: registers rt4ksr_arch into BasicSR, then runs BasicSR's own train pipeline with the
repository root as root path (experiments go to ``experiments/<name>``). User errors end in one
``error:`` line; a finished run names the saved model and how to try it.
"""
import sys
from os import path as osp

import rt4ksr_arch  # noqa: F401  (applies compat fixes, registers archs/datasets/models)
from basicsr.train import train_pipeline
from rt4ksr_arch.compat import run_pipeline

if __name__ == '__main__':
    sys.exit(run_pipeline(train_pipeline, osp.abspath(osp.join(__file__, osp.pardir, osp.pardir))))
