"""Speed measurement: the challenge's timing protocol and score, MAC counting, the official-style baseline.

The NTIRE 2023 Real-Time Super-Resolution challenge (Conde et al., NTIRE 2023 report; its
``demo/runtime_demo.py`` at github.com/eduardzamfir/NTIRE23-RTSR) timed the network alone:
``cudnn.benchmark = True``, the model in ``.half()``, a half-precision 1x3x(2160/s)x(3840/s)
input made before timing, 50 warm-up runs, then 244 runs each between its own CUDA event
pair followed by a synchronize; the mean is the runtime. ``time_runs`` does exactly that per
run (on the CPU with ``perf_counter``, where the tools use fp32); ``time_ms`` is the throughput
view (one event pair around all runs). ``ntire_score`` is the challenge's score
(``demo/calc_scoring.ipynb``). ``OfficialStyle`` runs RT4KSR the way the authors' code does
(train form, eager, the disabled high-frequency branch computed anyway), the baseline every
speed-up in this project is measured against.
"""
import copy
import math
import resource
import time
from typing import Callable, List

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rt4ksr_arch.archs.rt4ksr_arch import RT4KSR
from rt4ksr_arch.inference import PRECISIONS


def time_ms(fn: Callable[[], object], warmup: int, runs: int, device: torch.device) -> float:
    """Mean milliseconds per call of ``fn`` after ``warmup`` untimed calls.

    CUDA: one event pair around the ``runs`` calls, then a synchronize; CPU: ``perf_counter``.
    """
    for _ in range(warmup):
        fn()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(runs):
            fn()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end) / runs
    start_s = time.perf_counter()
    for _ in range(runs):
        fn()
    return (time.perf_counter() - start_s) * 1000 / runs


def time_runs(fn: Callable[[], object], warmup: int, runs: int, device: torch.device) -> List[float]:
    """Milliseconds of each of ``runs`` calls of ``fn`` after ``warmup`` untimed calls (NTIRE 2023 protocol).

    CUDA: every call between its own event pair, then a synchronize; CPU: ``perf_counter``.
    """
    for _ in range(warmup):
        fn()
    times = []
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        for _ in range(runs):
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end))
        return times
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) * 1000)
    return times


def ntire_score(delta_psnr: float, ms: float) -> float:
    """NTIRE 2023 RTSR score: 2 * 2^dPSNR / (0.1 * sqrt(ms)); 0 when dPSNR <= 0 (Y-PSNR over bicubic, dB).

    Source: the challenge's ``demo/calc_scoring.ipynb`` (``score(psnr, runtime)``).
    """
    if delta_psnr <= 0:
        return 0.0
    return 2 * 2 ** delta_psnr / (0.1 * math.sqrt(ms))


def count_macs(net: nn.Module, x: Tensor) -> int:
    """Multiply-accumulates of every ``nn.Conv2d`` in one forward of ``x`` (other layers are not counted)."""
    total = 0

    def hook(module: nn.Conv2d, _inputs, output: Tensor) -> None:
        nonlocal total
        per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        total += output.numel() * per_output

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.inference_mode():
            net(x)
    finally:
        for handle in handles:
            handle.remove()
    return total


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory in MiB: CUDA's peak allocation on ``device``, else the process's peak resident set."""
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class OfficialStyle(nn.Module):
    """The authors' inference: train-form RT4KSR, eager, contiguous, the disabled hf branch computed anyway.

    ``forward``: float [N, 3, h, w] on the network's device -> [N, 3, s*h, s*w] in ``precision``.
    """

    def __init__(self, net: RT4KSR, precision: str = 'fp32') -> None:
        super().__init__()
        if type(net) is not RT4KSR:
            raise TypeError(f'the official-style baseline needs the train-form RT4KSR, got {type(net).__name__}')
        self.dtype = PRECISIONS[precision]
        self.net = copy.deepcopy(net).eval().to(self.dtype)

    def forward(self, x: Tensor) -> Tensor:
        with torch.inference_mode():
            x = x.to(self.dtype)
            if not self.net.hf_branch:  # dead work in the authors' forward, kept for a fair baseline
                self.net.high_frequency_features(F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2), mode='replicate'))
            return self.net(x)
