"""Speed measurement: the challenge's timing protocol, MAC counting, and the official-style baseline.

The NTIRE 2023 real-time 4K challenge (Conde et al., NTIRE 2023 report) timed the network alone,
on an input already on the device, after warm-up runs. ``time_ms`` follows that; ``OfficialStyle``
runs RT4KSR the way the authors' code does (train form, eager, the disabled high-frequency branch
computed anyway), the baseline every speed-up in this project is measured against.
"""
import copy
import resource
import time
from typing import Callable

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
