"""RT4KSR (Zamfir, Conde, Timofte, CVPRW 2023) in its train-time and fused (deploy) forms.

Layout (module names match the authors' checkpoints, so they load strictly)::

    x -> PixelUnshuffle(2) -> head (3x3 conv, 4*in -> C)
      -> body: N x [LayerNorm2d -> ResBlock -> activation]
      -> tail: [LayerNorm2d -> ResBlock]
      -> upsample: 3x3 conv C -> out*(2s)^2 -> PixelShuffle(2s)

``RT4KSR`` uses the re-parameterizable ResBlock (1x1 expand, 3x3, 1x1 reduce, two
skips); ``RT4KSRDeploy`` replaces every ResBlock by the single 3x3 conv it equals
(see ``rt4ksr_arch.ops.fusion``). The authors' high-frequency branch (``hfb``,
``gamma``) is disabled in the released models; its parameters are kept so their
checkpoints load strictly (frozen), and it is only computed (and trained) when ``hf_branch=True``.

Any input size works: odd heights/widths are padded by one replicated row/column at
the bottom/right (PixelUnshuffle needs even sizes) and the output is cropped back to
exactly ``upscale*H x upscale*W``.
"""
import copy

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from basicsr.utils.registry import ARCH_REGISTRY
from rt4ksr_arch.config import ACTIVATIONS, RT4KSRConfig
from rt4ksr_arch.ops.fusion import fuse_state_dict

_NEG_SLOPE = 0.05  # the authors' slope for lrelu and initial slope for prelu
BLUR_SIZE, BLUR_SIGMA = 5, 1.0  # the authors' high-frequency branch: x - GaussianBlur(5, sigma=1)(x)


def gaussian_kernel(size: int = BLUR_SIZE, sigma: float = BLUR_SIGMA) -> Tensor:
    """The [size, size] normalised Gaussian that torchvision's ``gaussian_blur`` convolves with."""
    x = torch.linspace(-(size // 2), size // 2, size, dtype=torch.float64)
    pdf = torch.exp(-0.5 * (x / sigma)**2)
    kernel1d = pdf / pdf.sum()
    return (kernel1d[:, None] * kernel1d[None, :]).float()


# torchvision's gaussian_blur sizes its kernel from the input at call time, which the ONNX exporter
# cannot shape; a constant expanded to the known channel count exports (test_arch.py checks
# equality with torchvision). Not a buffer: DDP would broadcast it, and checkpoints hold none.
_BLUR_KERNEL = gaussian_kernel()


def make_activation(act_type: str) -> nn.Module:
    """A fresh activation module (never shared, so PReLU gets its own slope per use)."""
    act_type = act_type.lower()
    if act_type == 'gelu':
        return nn.GELU()
    if act_type == 'relu':
        return nn.ReLU()
    if act_type == 'lrelu':
        return nn.LeakyReLU(_NEG_SLOPE)
    if act_type == 'prelu':
        return nn.PReLU(num_parameters=1, init=_NEG_SLOPE)
    raise ValueError(f'act_type must be one of {ACTIVATIONS}, got {act_type!r}')


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dimension of NCHW tensors (biased variance)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            # NHWC memory: channels are the innermost dim, so one native layer_norm kernel does it
            # (benchmarks/layernorm_speed.py measures it against the formula below)
            return F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias,
                                self.eps).permute(0, 3, 1, 2)
        centered = x - x.mean(1, keepdim=True)
        var = centered.pow(2).mean(1, keepdim=True)
        return centered * torch.rsqrt(var + self.eps) * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class ResBlock(nn.Module):
    """Train-time re-parameterizable block: 1x1 expand, 3x3 (+skip), 1x1 reduce (+skip)."""

    def __init__(self, num_feat: int, ratio: int = 2) -> None:
        super().__init__()
        hidden = ratio * num_feat
        self.expand_conv = nn.Conv2d(num_feat, hidden, 1)
        self.fea_conv = nn.Conv2d(hidden, hidden, 3)
        self.reduce_conv = nn.Conv2d(hidden, num_feat, 1)

    def forward(self, x: Tensor) -> Tensor:
        # Expanding the zero-padded input pads the expanded features with the expand
        # bias, exactly as the authors do before their unpadded 3x3 conv.
        expanded = self.expand_conv(F.pad(x, (1, 1, 1, 1)))
        out = self.fea_conv(expanded) + expanded[:, :, 1:-1, 1:-1]
        return self.reduce_conv(out) + x


class RepResBlock(nn.Module):
    """Deploy form of ResBlock: the single 3x3 conv it equals."""

    def __init__(self, num_feat: int) -> None:
        super().__init__()
        self.rep_conv = nn.Conv2d(num_feat, num_feat, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.rep_conv(x)


class RT4KSRBlock(nn.Module):
    """Body block: LayerNorm2d -> ResBlock (either form) -> activation, no outer skip."""

    def __init__(self, num_feat: int, conv1: nn.Module, act_type: str) -> None:
        super().__init__()
        self.norm = LayerNorm2d(num_feat)
        self.conv1 = conv1
        self.act = make_activation(act_type)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv1(self.norm(x)))


class _RT4KSRBase(nn.Module):
    """Shared skeleton; subclasses pick the ResBlock form via ``_make_block``.

    Keywords are those of ``RT4KSRConfig`` (validated there: ``OptionError`` names a bad one).
    Input: float [N, num_in_ch, H, W], images in [0, 1]; output: [N, num_out_ch, s*H, s*W],
    not clamped (the network may overshoot [0, 1] slightly).
    """

    def __init__(self,
                 num_in_ch: int = 3,
                 num_out_ch: int = 3,
                 num_feat: int = 24,
                 num_block: int = 4,
                 upscale: int = 2,
                 act_type: str = 'gelu',
                 hf_branch: bool = False) -> None:
        super().__init__()
        self._config = RT4KSRConfig(num_in_ch, num_out_ch, num_feat, num_block, upscale, act_type, hf_branch)
        act_type = self._config.act_type
        self.num_in_ch, self.num_out_ch, self.num_feat = num_in_ch, num_out_ch, num_feat
        self.num_block, self.upscale, self.act_type, self.hf_branch = num_block, upscale, act_type, hf_branch

        self.down = nn.PixelUnshuffle(2)
        self.head = nn.Sequential(nn.Conv2d(num_in_ch * 4, num_feat, 3, padding=1))
        self.gamma = nn.Parameter(torch.zeros(1))
        self.hfb = nn.Sequential(self._make_block(num_feat), make_activation(act_type))
        self.body = nn.Sequential(
            *[RT4KSRBlock(num_feat, self._make_block(num_feat), act_type) for _ in range(num_block)])
        self.tail = nn.Sequential(LayerNorm2d(num_feat), self._make_block(num_feat))
        self.upsample = nn.Sequential(
            nn.Conv2d(num_feat, num_out_ch * (2 * upscale)**2, 3, padding=1), nn.PixelShuffle(2 * upscale))
        if not hf_branch:
            # dormant weights get no gradient; frozen, DDP does not wait for them and optimizers skip them
            self.hfb.requires_grad_(False)
            self.gamma.requires_grad_(False)

    @classmethod
    def from_config(cls, config: RT4KSRConfig) -> '_RT4KSRBase':
        """A new network (random weights) of this form with ``config``."""
        return cls(**config.to_dict())

    @staticmethod
    def _make_block(num_feat: int) -> nn.Module:
        raise NotImplementedError

    @property
    def config(self) -> RT4KSRConfig:
        """The typed configuration that rebuilds this network's shape and behaviour."""
        return self._config

    @property
    def receptive_radius(self) -> int:
        """LR pixels an output depends on, on each side (tile padding that makes tiling exact).

        At half resolution the main path has head + blocks + tail + upsample 3x3 convs; the
        high-frequency branch adds the 5x5 blur at full LR resolution to head, hfb, tail, upsample.
        """
        main = 2 * (self.num_block + 3)
        return max(main, 2 * 4 + 2) if self.hf_branch else main

    def high_frequency_features(self, x: Tensor) -> Tensor:
        """The authors' high-frequency branch on an even-sized input: hfb(head(unshuffle(x - blur(x))))."""
        pad = BLUR_SIZE // 2
        kernel = _BLUR_KERNEL.to(x).expand(self.num_in_ch, 1, BLUR_SIZE, BLUR_SIZE)
        blurred = F.conv2d(F.pad(x, (pad, pad, pad, pad), mode='reflect'), kernel, groups=self.num_in_ch)
        high_freq = x - blurred
        return self.hfb(self.head(self.down(high_freq)))

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        # ONNX export always records the pad, so one dynamic-size graph serves odd sizes too
        if height % 2 or width % 2 or torch.onnx.is_in_onnx_export():
            x = F.pad(x, (0, width % 2, 0, height % 2), mode='replicate')
        feat = self.body(self.head(self.down(x)))
        if self.hf_branch:
            feat = self.gamma * feat + self.high_frequency_features(x)
        out = self.upsample(self.tail(feat))
        return out[..., :height * self.upscale, :width * self.upscale]


@ARCH_REGISTRY.register()
class RT4KSR(_RT4KSRBase):
    """RT4KSR, train-time (re-parameterizable) form. Fuse it with ``reparameterize``."""

    @staticmethod
    def _make_block(num_feat: int) -> nn.Module:
        return ResBlock(num_feat)


@ARCH_REGISTRY.register()
class RT4KSRDeploy(_RT4KSRBase):
    """RT4KSR, deploy form: every ResBlock is one 3x3 conv."""

    @staticmethod
    def _make_block(num_feat: int) -> nn.Module:
        return RepResBlock(num_feat)


def reparameterize(model: nn.Module) -> RT4KSRDeploy:
    """Return a new ``RT4KSRDeploy`` equal to ``model`` (same device, dtype, train/eval mode).

    ``model`` is never modified. A deploy-form model is returned as an independent copy.
    """
    if isinstance(model, RT4KSRDeploy):
        return copy.deepcopy(model)
    if not isinstance(model, RT4KSR):
        raise TypeError(f'reparameterize expects an RT4KSR model, got {type(model).__name__}')
    reference = model.head[0].weight
    deploy = RT4KSRDeploy.from_config(model.config).to(device=reference.device, dtype=reference.dtype)
    with torch.no_grad():
        deploy.load_state_dict(fuse_state_dict({k: v.detach() for k, v in model.state_dict().items()}))
    return deploy.train(model.training)
