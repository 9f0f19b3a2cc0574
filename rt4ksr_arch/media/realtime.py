"""Real-time mode: choose precision / tile / batch so the network fits a frame-rate budget.

Candidates are tried from the most exact to the least (fp32, then fp16 on GPUs -- 0.007 dB on
Set5 -- then bf16 -- 0.4 dB, README "Precision"), each whole-frame then tiled (only with tiles
smaller than the frame: a larger tile is the whole frame's work), with batch 1 (lowest latency)
before larger batches on GPUs (where batching raises throughput). Each is timed as the median of
``runs`` calls (one slow call on a busy machine does not decide). The budget is the frame period
times ``HEADROOM``, and it holds the decode and encode time per frame too (``media_ms``,
measured on the clip by the caller): added to the network's on a CPU, where they share the
cores; overlapped with it on a GPU. The first candidate that fits is chosen; when none fits,
the fastest measured is, and the result says so.
"""
import statistics
from dataclasses import dataclass, replace
from typing import Callable, List, Optional, Tuple

import torch
from torch import nn

from rt4ksr_arch.inference import InferenceOptions, Upscaler, prepare_network
from rt4ksr_arch.timing import time_runs

HEADROOM = 0.85  # of the frame period; the rest is slack for queues and the machine's other work
TILES = (None, 512)


@dataclass(frozen=True)
class RealtimeChoice:
    """The chosen options and batch, the measured ms per frame (network, and decode + encode), and whether
    they fit the budget (ms, ``HEADROOM`` x the frame period)."""

    options: InferenceOptions
    batch: int
    ms_per_frame: float
    budget_ms: float
    fits: bool
    media_ms: float = 0.0
    shared: bool = True  # the network shares the cores with decode and encode (CPU): their times add up

    def describe(self) -> str:
        tile = f'tile {self.options.tile_size}' if self.options.tile_size else 'whole frame'
        verdict = 'fits' if self.fits else 'does NOT fit (fastest measured; expect missed deadlines)'
        total = (f' + decode/encode {self.media_ms:.1f} ms' if self.shared else
                 f' (decode/encode {self.media_ms:.1f} ms, overlapped)') if self.media_ms else ''
        return (f'real-time choice: {self.options.precision}, {tile}, batch {self.batch}: network '
                f'{self.ms_per_frame:.1f} ms/frame{total} vs budget {self.budget_ms:.1f} ms -> {verdict}')

    @property
    def frame_ms(self) -> float:
        """Milliseconds per frame of the whole pipeline, as the budget counts them."""
        return self.ms_per_frame + self.media_ms if self.shared else max(self.ms_per_frame, self.media_ms)


def candidates(device: torch.device, height: int, width: int) -> List[Tuple[str, Optional[int], int]]:
    """(precision, tile, batch) in the order they are tried on ``device`` for ``height`` x ``width`` frames."""
    precisions = ('fp32', 'fp16', 'bf16') if device.type == 'cuda' else ('fp32', 'bf16')
    batches = (1, 2, 4) if device.type == 'cuda' else (1, )
    tiles = [t for t in TILES if t is None or t < max(height, width)]
    return [(p, t, b) for p in precisions for b in batches for t in tiles]


def pick_realtime(net: nn.Module, base: InferenceOptions, device: torch.device, height: int, width: int,
                  target_fps: float, media_ms: float = 0.0, warmup: int = 1, runs: int = 5,
                  report: Callable[[str], None] = lambda _: None) -> RealtimeChoice:
    """Measure the candidates on a ``height`` x ``width`` LR frame and return the first that fits.

    ``base`` supplies the options not searched (channels_last, compile, tile pad, ...).
    ``media_ms``: decode + encode milliseconds per frame of the clip (``video.media_ms_per_frame``).
    Network time per frame: the median of ``runs`` timed calls (``timing.time_runs``); ``report``
    gets one line per measurement.
    """
    budget = 1000.0 / target_fps * HEADROOM
    shared = device.type != 'cuda'
    best: Optional[RealtimeChoice] = None
    prepared = {}
    for precision, tile, batch in candidates(device, height, width):
        if precision not in prepared:
            prepared[precision] = prepare_network(net, device, precision, base.channels_last, base.compile)
        opts = replace(base, precision=precision, tile_size=tile, tile_batch=max(base.tile_batch, batch))
        upscaler = Upscaler(prepared[precision], opts, device)
        x = torch.rand(batch, prepared[precision].config.num_in_ch, height, width, device=device)
        ms = statistics.median(time_runs(lambda: upscaler(x), warmup, runs, device)) / batch
        choice = RealtimeChoice(opts, batch, ms, budget, False, media_ms, shared)
        choice = replace(choice, fits=choice.frame_ms <= budget)
        report(f'  {precision}, {"tile " + str(tile) if tile else "whole frame"}, batch {batch}: {ms:.1f} ms/frame')
        if choice.fits:
            return choice
        if best is None or ms < best.ms_per_frame:
            best = choice
    return best
