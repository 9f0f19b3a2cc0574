"""MATLAB-exact bicubic ``imresize`` as batched torch ops (CPU or CUDA).

Semantics of MATLAB ``imresize(img, scale, 'bicubic')``, which made every SR benchmark's LR
files: Keys cubic kernel (a = -0.5), antialiasing (the kernel is widened by 1/scale when
downscaling), symmetric borders, rows first then columns as two 1-D passes and, for 8-bit
images, rounding to uint8 after each pass.

Each output sample depends on only ``ceil(kernel width) + 2`` inputs, so a pass is a gather of
that band and a weighted sum (``O(out * taps)``), not a dense ``[out, in]`` matrix product.
basicsr's ``matlab_functions.imresize`` has the same semantics but is a per-row Python loop.
"""
import math
from functools import lru_cache
from typing import Optional, Tuple

import torch

Tensor = torch.Tensor


def cubic(x: Tensor) -> Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))
    return near + far


def output_length(in_length: int, scale: float) -> int:
    """MATLAB's output size for a scale factor: ``ceil(in * scale)``."""
    return math.ceil(in_length * scale)


def fold_symmetric(indices: Tensor, length: int) -> Tensor:
    """MATLAB's symmetric border: index -1 reads 0, index n reads n-1, periodically for tiny inputs."""
    period = 2 * length
    indices = indices.remainder(period)
    return torch.where(indices >= length, period - 1 - indices, indices)


@lru_cache(maxsize=256)
def resize_weights(in_length: int, out_length: int, scale: float) -> Tuple[Tensor, Tensor]:
    """Taps of one 1-D pass: ``(indices, weights)``, both ``[out_length, taps]`` (int64, float64).

    ``indices`` are 0-based input positions *before* border folding (they may be negative or
    >= ``in_length``; see ``fold_symmetric``); each weight row sums to 1. Cached; do not modify.
    """
    antialias = scale < 1
    kernel_width = 4.0 / scale if antialias else 4.0
    x = torch.arange(1, out_length + 1, dtype=torch.float64)
    center = x / scale + 0.5 * (1 - 1 / scale)  # output pixel centre in 1-based input coordinates
    left = torch.floor(center - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    indices = left[:, None] + torch.arange(taps, dtype=torch.float64)[None]
    distance = center[:, None] - indices
    weights = scale * cubic(distance * scale) if antialias else cubic(distance)
    weights = weights / weights.sum(1, keepdim=True)
    used = (weights != 0).any(0)  # MATLAB drops all-zero taps; only saves work
    return indices[:, used].long() - 1, weights[:, used].contiguous()


def resize_matrix(in_length: int, out_length: int, scale: float) -> Tensor:
    """The dense ``[out, in]`` float64 matrix of one pass (borders folded in): the reference form."""
    indices, weights = resize_weights(in_length, out_length, scale)
    matrix = torch.zeros(out_length, in_length, dtype=torch.float64)
    return matrix.scatter_add_(1, fold_symmetric(indices, in_length), weights)


BLOCK = 8  # output rows per block of the banded product; 4-16 measure alike on CPU


@lru_cache(maxsize=256)
def _banded(in_length: int, out_length: int, scale: float, device: torch.device,
            dtype: torch.dtype) -> Tuple[Tensor, Tensor]:
    """One pass as a block-banded product: gather indices ``[blocks * window]`` and
    ``[blocks, BLOCK, window]`` matrices, so each block of output rows is a small GEMM over
    the input rows it needs (a dense ``[out, in]`` product does ``in / window`` times the work).
    """
    indices, weights = resize_weights(in_length, out_length, scale)
    blocks = math.ceil(out_length / BLOCK)
    rows = torch.arange(blocks * BLOCK).clamp(max=out_length - 1)
    first = indices[rows, 0].view(blocks, BLOCK).amin(1)
    window = int((indices[rows, -1].view(blocks, BLOCK).amax(1) - first).max()) + 1
    local = indices - first.repeat_interleave(BLOCK)[:out_length, None]
    matrices = torch.zeros(blocks * BLOCK, window, dtype=torch.float64)
    matrices[:out_length].scatter_(1, local, weights)
    gather = fold_symmetric(first[:, None] + torch.arange(window), in_length)
    return gather.flatten().to(device), matrices.view(blocks, BLOCK, window).to(device, dtype)


def _resize_rows(x: Tensor, scale: float, round_uint8: bool, max_value: float) -> Tensor:
    """One 1-D pass along dim -2 of a [..., H, W] float tensor."""
    in_length = x.shape[-2]
    out_length = output_length(in_length, scale)
    gather, matrices = _banded(in_length, out_length, scale, x.device, x.dtype)
    band = x.index_select(-2, gather).unflatten(-2, (matrices.shape[0], matrices.shape[2]))
    out = torch.matmul(matrices, band).flatten(-3, -2)[..., :out_length, :]
    if round_uint8:  # MATLAB casts each pass back to uint8: round half away from zero, saturate
        out = out.clamp_(0, max_value).add_(0.5).floor_()
    return out


def imresize(img: Tensor, scale: float, *, round_uint8: Optional[bool] = None, max_value: float = 255.0) -> Tensor:
    """MATLAB ``imresize(img, scale, 'bicubic')`` of a ``[..., H, W]`` tensor (e.g. [C,H,W], [B,C,H,W]).

    Output size is ``ceil(scale * H) x ceil(scale * W)``. ``round_uint8`` (default: whether ``img``
    is uint8) gives MATLAB's 8-bit behaviour: the input is taken on the 0..``max_value`` integer
    grid and each pass is rounded and saturated; the result is uint8 for uint8 input, float
    otherwise (so float images in [0, 255] can use it). Computation is float32 (float64 for
    float64 input): float32 rounding matches MATLAB's double on every value of Set5, Set14 and
    B100 at x2/x3/x4 (tests/test_bicubic.py). Half-precision input is computed in float32.
    """
    if img.dim() < 2:
        raise ValueError(f'imresize expects [..., H, W], got shape {tuple(img.shape)}')
    if not scale > 0:
        raise ValueError(f'scale must be positive, got {scale}')
    if round_uint8 is None:
        round_uint8 = img.dtype == torch.uint8
    x = img if img.dtype in (torch.float32, torch.float64) else img.float()
    if round_uint8 and img.is_floating_point():
        x = x.clamp(0, max_value).add_(0.5).floor_()
    x = _resize_rows(x, scale, round_uint8, max_value)
    x = _resize_rows(x.mT, scale, round_uint8, max_value).mT.contiguous()
    if img.dtype == torch.uint8:
        return x.to(torch.uint8)
    return x.to(img.dtype) if img.is_floating_point() else x
