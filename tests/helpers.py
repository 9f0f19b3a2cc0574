"""Test helpers: the repository root, the read-only reference data in ../shared, random weights."""
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import pytest
import torch

import rt4ksr_arch  # noqa: F401  (compat + registries, as every user entry point does)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / 'shared'


def shared(*parts: str) -> Path:
    """A path under ../shared, or skip the test with the reason when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f'reference data {path} is absent (../shared beside the repository; CI has it)')
    return path


def randomize_(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter (norms and biases too) non-trivial random values, in place."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            # unit-gain convolutions keep activations O(1), so float32 tolerances stay meaningful
            p.copy_(noise / p[0].numel()**0.5 if p.dim() > 1 else 0.2 * noise)
    return net


def run_module(*args: str, cwd: Path = REPO, timeout: int = 600,
               env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """Run ``python <args>`` from the repository root (``env`` added to this process's environment);
    return the finished process (output captured)."""
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def released_parameter_counts(path: str = None) -> tuple:
    """(train-form, fused) parameter counts from the released file and the float64 fused golden weights."""
    path = path or str(shared('weights', 'rt4ksr_official', 'rt4ksr_x2.pth'))
    raw = torch.load(path, map_location='cpu', weights_only=True)['state_dict']
    train = sum(v.numel() for v in raw.values())
    fused_blocks = np.load(shared('golden', 'rt4ksr_x2_fused_repconvs.npz'))
    resblock_convs = ('expand_conv', 'fea_conv', 'reduce_conv')
    resblocks = sum(v.numel() for k, v in raw.items() if k.split('.')[-2] in resblock_convs)
    return train, train - resblocks + sum(fused_blocks[k].size for k in fused_blocks.files)


def assert_close_8bit(got: np.ndarray, expected: np.ndarray, max_tie_fraction: float = 0.01) -> None:
    """An 8/16-bit output against a float reference on the same scale (levels).

    Another computation path (channels_last, another CPU's kernels) may round a value that lands
    on .5 the other way, so one level of difference is allowed on a tiny fraction of values.
    """
    diff = np.abs(got.astype(np.float64) - np.asarray(expected, np.float64))
    ties = (diff > 0.5 + 1e-3).mean()
    assert diff.max() <= 1.0 + 1e-3 and ties <= max_tie_fraction, (diff.max(), ties)
