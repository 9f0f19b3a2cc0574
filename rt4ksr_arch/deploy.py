"""The fast inference path, and the official-style baseline it is measured against.

``fast_path`` fuses the network (``RT4KSRDeploy``), skips the dormant high-frequency branch,
and optionally casts to fp16/bf16, switches to channels_last (where LayerNorm2d runs as one
native layer_norm kernel) and compiles with torch.compile (CUDA graphs with static shapes).
``official_style`` runs the network the way the authors' code does: train form, eager, with
the disabled high-frequency branch still computed and thrown away.
"""
import copy
from typing import Optional

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rt4ksr_arch.archs.rt4ksr_arch import RT4KSR, RT4KSRDeploy, reparameterize
from rt4ksr_arch.inference import PRECISIONS


class Prepared(nn.Module):
    """Casts the input to the network's dtype and memory format, runs it in inference mode."""

    def __init__(self, net: nn.Module, dtype: torch.dtype, memory_format: torch.memory_format,
                 compiled: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.net, self.dtype, self.memory_format = net, dtype, memory_format
        self.run = net if compiled is None else compiled

    def forward(self, x: Tensor) -> Tensor:
        with torch.inference_mode():
            return self.run(x.to(dtype=self.dtype, memory_format=self.memory_format))


def fast_path(net: nn.Module, precision: str = 'fp32', channels_last: bool = False, compile: bool = False,
              cuda_graphs: bool = False) -> Prepared:
    """A new fused, cast and optionally compiled copy of ``net`` (``net`` itself is untouched)."""
    deploy = reparameterize(net).eval()
    if deploy.hf_branch:
        raise ValueError('the fast path needs hf_branch: false (the released models); the branch is live here')
    dtype = PRECISIONS[precision] or torch.float32
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    deploy = deploy.to(dtype=dtype, memory_format=memory_format)
    compiled = None
    if compile:
        mode = 'reduce-overhead' if cuda_graphs else 'max-autotune-no-cudagraphs'
        compiled = torch.compile(deploy, mode=mode, dynamic=False)
    return Prepared(deploy, dtype, memory_format, compiled)


class OfficialStyle(nn.Module):
    """The authors' inference: train-form RT4KSR, eager, the disabled hf branch computed anyway."""

    def __init__(self, net: RT4KSR, precision: str = 'fp32') -> None:
        super().__init__()
        if not isinstance(net, RT4KSR) or isinstance(net, RT4KSRDeploy):
            raise TypeError(f'the official-style baseline needs the train-form RT4KSR, got {type(net).__name__}')
        self.dtype = PRECISIONS[precision] or torch.float32
        self.net = copy.deepcopy(net).eval().to(self.dtype)

    def forward(self, x: Tensor) -> Tensor:
        with torch.inference_mode():
            x = x.to(self.dtype)
            if not self.net.hf_branch:  # dead work in the authors' forward, kept for a fair baseline
                self.net.high_frequency_features(F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2), mode='replicate'))
            return self.net(x)
