"""Real-time mode: choose precision / tile / batch so the network fits a frame-rate budget.

Candidates are tried from the most exact to the least (fp32, then fp16 on GPUs -- 0.007 dB on
Set5 -- then bf16 -- 0.4 dB, README "Precision"), each whole-frame then tiled, with batch 1
(lowest latency) before larger batches on GPUs (where batching raises throughput). The first
whose measured network time per frame fits ``headroom`` x the frame period is chosen; when
none fits, the fastest measured is, and the result says so.
"""
from dataclasses import dataclass, replace
from typing import Callable, List, Optional, Tuple

import torch
from torch import nn

from rt4ksr_arch.inference import InferenceOptions, Upscaler, prepare_network
from rt4ksr_arch.timing import time_ms

HEADROOM = 0.85  # of the frame period for the network; decode and encode overlap but share the machine
TILES = (None, 512)


@dataclass(frozen=True)
class RealtimeChoice:
    """The chosen options and batch, the measured network ms per frame, and whether it fits."""

    options: InferenceOptions
    batch: int
    ms_per_frame: float
    budget_ms: float
    fits: bool

    def describe(self) -> str:
        tile = f'tile {self.options.tile_size}' if self.options.tile_size else 'whole frame'
        verdict = 'fits' if self.fits else 'does NOT fit (fastest measured; expect missed deadlines)'
        return (f'real-time choice: {self.options.precision}, {tile}, batch {self.batch}: network '
                f'{self.ms_per_frame:.1f} ms/frame vs budget {self.budget_ms:.1f} ms -> {verdict}')


def candidates(device: torch.device) -> List[Tuple[str, Optional[int], int]]:
    """(precision, tile, batch) in the order they are tried on ``device``."""
    precisions = ('fp32', 'fp16', 'bf16') if device.type == 'cuda' else ('fp32', 'bf16')
    batches = (1, 2, 4) if device.type == 'cuda' else (1, )
    return [(p, t, b) for p in precisions for b in batches for t in TILES]


def pick_realtime(net: nn.Module, base: InferenceOptions, device: torch.device, height: int, width: int,
                  target_fps: float, warmup: int = 1, runs: int = 2,
                  report: Callable[[str], None] = lambda _: None) -> RealtimeChoice:
    """Measure the candidates on a ``height`` x ``width`` LR frame and return the first that fits.

    ``base`` supplies the options not searched (channels_last, compile, tile pad, ...). Network
    time only, in ms per frame (``timing.time_ms``); ``report`` gets one line per measurement.
    """
    budget = 1000.0 / target_fps
    best: Optional[RealtimeChoice] = None
    prepared = {}
    for precision, tile, batch in candidates(device):
        if precision not in prepared:
            prepared[precision] = prepare_network(net, device, precision, base.channels_last, base.compile)
        opts = replace(base, precision=precision, tile_size=tile, tile_batch=max(base.tile_batch, batch))
        upscaler = Upscaler(prepared[precision], opts, device)
        x = torch.rand(batch, prepared[precision].config.num_in_ch, height, width, device=device)
        ms = time_ms(lambda: upscaler(x), warmup, runs, device) / batch
        choice = RealtimeChoice(opts, batch, ms, budget, ms <= HEADROOM * budget)
        report(f'  {precision}, {"tile " + str(tile) if tile else "whole frame"}, batch {batch}: {ms:.1f} ms/frame')
        if choice.fits:
            return choice
        if best is None or ms < best.ms_per_frame:
            best = choice
    return best
