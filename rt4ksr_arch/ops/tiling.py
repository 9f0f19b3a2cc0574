"""Exact tile-mode inference: crop each tile with real context, keep only its core.

A network whose output pixel depends on LR pixels at most ``radius`` away gives, on a tile
that carries ``pad >= radius`` real LR pixels around its core (clipped at the image border,
where whole-image inference pads the same way), exactly the whole-image output on that core.
RT4KSR pixel-unshuffles by 2 first, so tiles also start on even coordinates (``align``): the
2x2 groups are then the whole image's groups. The full-resolution canvas stays on the CPU;
only tiles visit the device, so memory is bounded by the tile, not the image.
"""
from collections import defaultdict
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from basicsr.utils import get_root_logger

Span = Tuple[int, int, int, int]  # core start, core end, input start, input end
MIN_TILE = 16


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def tile_spans(length: int, tile: int, pad: int, align: int = 1, window: Optional[int] = None) -> List[Span]:
    """Cut ``[0, length)`` into cores of ``tile`` (last one shorter), each with ``pad`` context.

    ``tile`` is rounded down and ``pad`` up to multiples of ``align``, so every core and input
    start is aligned; ``length`` must be a multiple of ``align``.

    ``window`` (static shapes, e.g. one TensorRT engine): every input span is exactly ``window``
    long, slid inside ``[0, length)``. It stays exact when ``window >= tile + 2 * pad``: a span
    then either holds ``pad`` pixels beyond its core or ends on the image border, where the
    whole-image computation has the same border. Raises ``ValueError`` when ``length < window``.
    """
    if length % align:
        raise ValueError(f'length {length} is not a multiple of align {align}')
    tile = max(align, tile // align * align)
    pad = round_up(max(pad, 0), align)
    spans = [(start, min(start + tile, length), max(0, start - pad), min(length, start + tile + pad))
             for start in range(0, length, tile)]
    if window is None:
        return spans
    if length < window or window % align or window < tile + 2 * pad:
        raise ValueError(f'a static window of {window} needs length >= {window} (got {length}), a multiple of '
                         f'{align} and >= tile + 2 * pad = {tile + 2 * pad}')
    return [(c0, c1, min(max(c0 - pad, 0), length - window), min(max(c0 - pad, 0), length - window) + window)
            for c0, c1, _, _ in spans]


def tiled_forward(fn: Callable[[Tensor], Tensor], lq: Tensor, scale: int, tile_size: int, tile_pad: int,
                  tile_batch: int = 1, align: int = 2, device: Optional[torch.device] = None,
                  progress: Optional[Callable[[int], None]] = None, window: Optional[int] = None) -> Tensor:
    """``fn(lq)`` computed tile by tile; the [N,C,H*s,W*s] result is on the CPU.

    Odd sizes are replicate-padded to ``align`` first (as RT4KSR does itself) and cropped after.
    Equal-sized tiles are batched ``tile_batch`` at a time; ``progress(n)`` is called per batch
    with the number of tiles done in it. ``window``: every tile input is ``window`` x ``window``
    (``tile_spans``), for networks compiled for one static shape.
    """
    height, width = lq.shape[-2:]
    padded = F.pad(lq, (0, round_up(width, align) - width, 0, round_up(height, align) - height), mode='replicate') \
        if height % align or width % align else lq
    rows = tile_spans(padded.shape[-2], tile_size, tile_pad, align, window)
    cols = tile_spans(padded.shape[-1], tile_size, tile_pad, align, window)
    groups: Dict[Tuple[int, int], List[Tuple[Span, Span]]] = defaultdict(list)
    for row in rows:
        for col in cols:
            groups[(row[3] - row[2], col[3] - col[2])].append((row, col))

    device = device or lq.device
    canvas: Optional[Tensor] = None
    num = lq.shape[0]
    for tiles in groups.values():
        for first in range(0, len(tiles), tile_batch):
            chunk = tiles[first:first + tile_batch]
            inputs = torch.cat([padded[..., r[2]:r[3], c[2]:c[3]] for r, c in chunk]).to(device)
            outputs = fn(inputs).cpu()
            if canvas is None:
                canvas = outputs.new_empty(num, outputs.shape[1], padded.shape[-2] * scale, padded.shape[-1] * scale)
            for k, (r, c) in enumerate(chunk):
                out = outputs[k * num:(k + 1) * num]
                canvas[..., r[0] * scale:r[1] * scale, c[0] * scale:c[1] * scale] = out[
                    ..., (r[0] - r[2]) * scale:(r[1] - r[2]) * scale, (c[0] - c[2]) * scale:(c[1] - c[2]) * scale]
            if progress is not None:
                progress(len(chunk))
    return canvas[..., :height * scale, :width * scale]


def count_tiles(height: int, width: int, tile_size: int, align: int = 2) -> int:
    """How many tiles ``tiled_forward`` cuts an ``height`` x ``width`` image into."""
    return len(tile_spans(round_up(height, align), tile_size, 0, align)) * len(
        tile_spans(round_up(width, align), tile_size, 0, align))


def tiled_forward_with_retry(fn: Callable[[Tensor], Tensor], lq: Tensor, scale: int, tile_size: int,
                             tile_pad: int, option: str = 'val.tile.tile_size', **kwargs) -> Tensor:
    """``tiled_forward``; on device out-of-memory, retry with half the tile size (logged).

    Below ``MIN_TILE`` it raises, naming ``option`` (the setting the user should change).
    """
    while True:
        try:
            return tiled_forward(fn, lq, scale, tile_size, tile_pad, **kwargs)
        except torch.OutOfMemoryError as error:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if tile_size // 2 < MIN_TILE:
                raise RuntimeError(f'out of memory even with {tile_size}x{tile_size} tiles: lower {option} '
                                   f'and tile_batch, use fp16, or run on a device with more memory') from error
            get_root_logger().warning(f'Out of memory with {tile_size}x{tile_size} tiles; retrying with '
                                      f'{tile_size // 2} (set {option} to skip this)')
            tile_size //= 2
