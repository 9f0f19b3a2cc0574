"""Test runner: ``python rt4ksr_arch/test.py -opt options/test/<file>.yml``.

Thin: registers rt4ksr_arch into BasicSR, then runs BasicSR's own test pipeline with the
repository root as root path (results go to ``results/<name>`` unless ``path.results_root``).
Missing data or weights stop it before anything is written, with one ``error:`` line; a run that
fails later puts the previous results folder back.
"""
import sys
from os import path as osp

import rt4ksr_arch  # noqa: F401  (applies compat fixes, registers archs/datasets/models)
from basicsr.test import test_pipeline
from rt4ksr_arch.compat import run_pipeline

if __name__ == '__main__':
    sys.exit(run_pipeline(test_pipeline, osp.abspath(osp.join(__file__, osp.pardir, osp.pardir))))
