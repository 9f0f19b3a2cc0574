"""Test helpers: the repository root, the read-only reference data in ../shared, random weights."""
import subprocess
import sys
from pathlib import Path

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


def run_module(*args: str, cwd: Path = REPO, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``python <args>`` from the repository root; return the finished process (output captured)."""
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
