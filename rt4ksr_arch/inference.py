"""One inference path for validation, test.py and the upscale CLI: tiles, self-ensemble, precision.

The YAML ``val`` section (or CLI flags) becomes an ``InferenceOptions``; ``upscale`` applies it.
Tiling is exact (see ops/tiling.py) for every precision: each tile sees what the whole image
would, so tiled and untiled outputs differ only by float rounding of the same computation.
"""
from contextlib import nullcontext
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Dict, Optional

import torch
from torch import Tensor, nn
from tqdm import tqdm

from basicsr.utils import get_root_logger
from rt4ksr_arch.ops.ensemble import self_ensemble
from rt4ksr_arch.ops.tiling import count_tiles, tiled_forward_with_retry

PRECISIONS = {'fp32': None, 'fp16': torch.float16, 'bf16': torch.bfloat16}
FALLBACK_TILE = 512  # LR pixels: what a whole image that does not fit is tiled at
PROGRESS_MIN_TILES = 16  # a bar for large images only; validation of small sets stays quiet


@dataclass(frozen=True)
class InferenceOptions:
    tile_size: Optional[int] = None  # None: whole image
    tile_pad: Optional[int] = None  # None: the network's receptive radius (exact tiling)
    tile_batch: int = 1
    self_ensemble: bool = False
    precision: str = 'fp32'
    channels_last: bool = False


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else the CPU; anything else as torch names it (``cuda:1``)."""
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    device = torch.device(name)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'--device {name}: no CUDA device is available here; use --device cpu')
    return device


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{name} must be a positive integer, got {value!r}')
    return value


def inference_options(val_opt: Optional[Dict[str, Any]]) -> InferenceOptions:
    """Validate a YAML ``val`` section: ``tile: {tile_size, tile_pad, tile_batch}``, ``self_ensemble``,
    ``fp16`` / ``bf16``, ``channels_last``."""
    val_opt = val_opt or {}
    tile = val_opt.get('tile') or {}
    if not isinstance(tile, dict):
        raise ValueError(f'val.tile must be a mapping like {{tile_size: 512, tile_pad: 14}}, got {tile!r}')
    unknown = set(tile) - {'tile_size', 'tile_pad', 'tile_batch'}
    if unknown:
        raise ValueError(f'val.tile has unknown keys {sorted(unknown)}; use tile_size, tile_pad, tile_batch')
    if tile and 'tile_size' not in tile:
        raise ValueError('val.tile needs tile_size (LR pixels), e.g. tile: {tile_size: 512}')
    pad = tile.get('tile_pad')
    if pad is not None and (isinstance(pad, bool) or not isinstance(pad, int) or pad < 0):
        raise ValueError(f'val.tile.tile_pad must be an integer >= 0, got {pad!r}')
    if val_opt.get('fp16') and val_opt.get('bf16'):
        raise ValueError('choose one of val.fp16 and val.bf16')
    return InferenceOptions(
        tile_size=_positive_int(tile['tile_size'], 'val.tile.tile_size') if tile else None,
        tile_pad=pad,
        tile_batch=_positive_int(tile.get('tile_batch', 1), 'val.tile.tile_batch'),
        self_ensemble=bool(val_opt.get('self_ensemble', False)),
        precision='fp16' if val_opt.get('fp16') else 'bf16' if val_opt.get('bf16') else 'fp32',
        channels_last=bool(val_opt.get('channels_last', False)))


def upscale(net: nn.Module, lq: Tensor, scale: int, opts: InferenceOptions = InferenceOptions(),
            device: Optional[torch.device] = None, progress: bool = False,
            tile_option: str = 'val.tile.tile_size') -> Tensor:
    """``net(lq)`` with ``opts`` applied, in inference mode; float32 [N,C,H*s,W*s].

    Whole-image results stay on ``lq``'s device; tiled results are on the CPU. A whole image
    that does not fit in device memory is tiled at ``FALLBACK_TILE`` instead (exact, logged).
    ``net`` is not modified (its train/eval mode is restored): put it on its device (and in
    channels_last) beforehand.
    """
    device = device or next(net.parameters()).device
    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode():
            try:
                return _apply(net, lq, scale, opts, device, progress, tile_option)
            except torch.OutOfMemoryError:
                if opts.tile_size:
                    raise
            if device.type == 'cuda':
                torch.cuda.empty_cache()
            get_root_logger().warning(f'Out of memory on the whole {lq.shape[-1]}x{lq.shape[-2]} image; tiling it '
                                      f'at {FALLBACK_TILE} instead (exact; set {tile_option} to choose the size)')
            return _apply(net, lq, scale, replace(opts, tile_size=FALLBACK_TILE), device, progress, tile_option)
    finally:
        net.train(was_training)


def _apply(net: nn.Module, lq: Tensor, scale: int, opts: InferenceOptions, device: torch.device, progress: bool,
           tile_option: str) -> Tensor:
    dtype = PRECISIONS[opts.precision]
    autocast = torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()
    memory_format = torch.channels_last if opts.channels_last else torch.contiguous_format

    def forward(x: Tensor) -> Tensor:
        with autocast:
            return net(x.to(device, memory_format=memory_format)).float()

    if not opts.tile_size:
        return self_ensemble(forward, lq) if opts.self_ensemble else forward(lq)
    pad = opts.tile_pad if opts.tile_pad is not None else getattr(net, 'receptive_radius', None)
    if pad is None:
        raise ValueError(f'{type(net).__name__} has no receptive_radius: set val.tile.tile_pad')
    total = count_tiles(*lq.shape[-2:], opts.tile_size) * (8 if opts.self_ensemble else 1)
    bar = tqdm(total=total, unit='tile', leave=False) if progress and total >= PROGRESS_MIN_TILES else None
    run = partial(tiled_forward_with_retry, forward, scale=scale, tile_size=opts.tile_size, tile_pad=pad,
                  option=tile_option, tile_batch=opts.tile_batch, device=device,
                  progress=bar.update if bar is not None else None)
    try:
        return self_ensemble(run, lq) if opts.self_ensemble else run(lq)
    finally:
        if bar is not None:
            bar.close()
