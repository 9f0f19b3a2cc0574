"""Linear start: initialise RT4KSR as the least-squares linear upscaler, with every unit free to learn.

RT4KSR has no global skip and normalises every feature map over channels, so from a random
initialisation it spends thousands of iterations re-learning image intensities before it
reaches even bicubic quality. The linear start sets the same architecture to compute exactly a
linear map at first, and solves its last convolution in closed form, so training begins at the
best linear filter on a 6x6 LR window (better than bicubic's fixed kernel).

It is a "looks-linear" initialisation (Balduzzi et al., "The Shattered Gradients Problem", ICML
2017; the mirrored pairs of CReLU, Shang et al., ICML 2016): the signal travels in mirrored pairs
of channels ``(+u, -u)``; every unit sits in the curved range of its activation, and the
difference ``act(u) - act(-u) = u`` (``(1 + slope) u`` for leaky ReLUs) is what the next block
reads, so the network is linear although no unit is. Concretely:

- the head projects the pixel-unshuffled LR (``4 * num_in_ch`` channels) on its principal
  components (from the first batch) into ``min(4 * num_in_ch, (num_feat - 1) // 2)`` pairs,
  centred; at the released size (12 inputs, 24 features) 11 pairs, dropping the direction of
  least variance;
- one channel carries a large constant (``k_value``) into every LayerNorm2d, so its mean and
  scale are constant (the pairs' common mode cancels in the difference); each LayerNorm2d's
  affine then zeroes that channel and scales each pair to a pre-activation standard deviation
  of ``pre_act_std`` around 0, so no convolution reads a large constant (Adam's fixed-size
  steps on weights of large inputs were what made the previous start fall);
- each ResBlock's 1x1 path turns the pair ``(act(u), act(-u))`` back into ``(+d, -d)`` with
  ``d`` their half difference, and puts the constant back (reduce bias); its other weights get a
  small random initialisation (``residual`` times PyTorch's default scale) that breaks the
  symmetry between hidden units;
- the upsample conv is the ridge-regression solution from the tail's features to the HR pixels,
  from normal equations that can be summed over batches and processes (``upsampler_equations``,
  ``solve_upsampler_``).

``RT4KSRModel`` fits the upsampler on the first ``train.linear_start`` batches (true: 10) before
its optimizer steps, and warms the learning rate up (README, "Training"). The fit minimises squared
error, so the start is a minimum of MSELoss in the upsampler: train it with MSELoss. L1Loss first
pulls the upsampler to the L1 optimum, whose PSNR is lower than the start's (README's table).
"""
from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rt4ksr_arch.archs.rt4ksr_arch import RT4KSR

K_VALUE = 1000.0  # the constant channel between blocks: dominates every LayerNorm2d's statistics
PRE_ACT_STD = 1.0  # pre-activation std of each pair: the curved range of GELU, not its linear tail
RESIDUAL = 0.01  # the ResBlocks' other weights, relative to PyTorch's default initialisation
RIDGE = 1e-3  # relative to each feature's variance; a single batch of crops then still generalises


def normal_equations(features: Tensor, target: Tensor, out_per_pixel: int) -> Tuple[Tensor, Tensor]:
    """``(X^T X, X^T Y)`` for the 3x3 conv + PixelShuffle that maps ``features`` to ``target``.

    X holds each 3x3 feature window (zero padded, as the conv sees it) plus a 1 for the bias;
    Y the ``out_per_pixel`` HR values that PixelShuffle puts at that position. float64.
    """
    shuffle = target.shape[-1] // features.shape[-1]
    x = F.unfold(features.double(), 3, padding=1).transpose(1, 2).flatten(0, 1)
    x = torch.cat([x, x.new_ones(len(x), 1)], 1)
    y = F.pixel_unshuffle(target.double(), shuffle).flatten(2).transpose(1, 2).reshape(-1, out_per_pixel)
    return x.T @ x, x.T @ y


def check_startable(net: nn.Module) -> None:
    """Raise ``TypeError``/``ValueError`` for networks the linear start cannot set."""
    if not isinstance(net, RT4KSR):
        raise TypeError(f'linear start needs a train-form RT4KSR network, got {type(net).__name__}')
    if net.hf_branch:
        raise ValueError('linear start does not support hf_branch: true (the branch is not linear); '
                         'set train.linear_start: false')
    if net.num_feat < 3:
        raise ValueError(f'linear start needs num_feat >= 3 (one pair and the constant), got {net.num_feat}')


def _uniform_(weight: Tensor, scale: float, gen: torch.Generator) -> None:
    """PyTorch's default conv init (uniform, bound 1/sqrt(fan_in)) times ``scale``, from ``gen``."""
    bound = scale / weight[0].numel()**0.5
    weight.copy_((torch.rand(weight.shape, generator=gen, dtype=torch.float64) * 2 - 1).to(weight) * bound)


def _standardized(x: Tensor) -> Tensor:
    """LayerNorm2d's normalisation without its affine (unit weight, zero bias)."""
    centered = x - x.mean(1, keepdim=True)
    return centered * torch.rsqrt(centered.pow(2).mean(1, keepdim=True) + 1e-6)


def _pad_even(lq: Tensor, gt: Optional[Tensor], scale: int) -> Tuple[Tensor, Optional[Tensor]]:
    """Replicate-pad odd sizes as the network does (and the HR by ``scale`` times as much)."""
    height, width = lq.shape[-2:]
    if not (height % 2 or width % 2):
        return lq, gt
    lq = F.pad(lq, (0, width % 2, 0, height % 2), mode='replicate')
    if gt is not None:
        gt = F.pad(gt, (0, (width % 2) * scale, 0, (height % 2) * scale), mode='replicate')
    return lq, gt


@torch.no_grad()
def linear_structure_(net: RT4KSR, lq: Tensor, k_value: float = K_VALUE, pre_act_std: float = PRE_ACT_STD,
                      residual: float = RESIDUAL, seed: int = 0,
                      reduce: Optional[Callable[[Tensor], Tensor]] = None) -> None:
    """Set every layer but the upsample conv (in place) for the looks-linear start; see the module doc.

    ``lq`` ([B, C, h, w] in [0, 1]) gives the principal components and the scales. ``reduce``, if
    given, sums tensors across processes (an all-reduce) so every DDP rank sets the same weights.
    """
    check_startable(net)
    reduce = reduce or (lambda t: t)
    gen = torch.Generator().manual_seed(seed)
    head = net.head[0]
    inputs, channels = net.num_in_ch * 4, net.num_feat
    pairs = min(inputs, (channels - 1) // 2)
    const = 2 * pairs
    plus, minus = torch.arange(0, const, 2), torch.arange(1, const, 2)
    lq = _pad_even(lq.to(head.weight), None, net.upscale)[0]

    pixels = net.down(lq).double().permute(0, 2, 3, 1).reshape(-1, inputs)
    count = reduce(pixels.new_tensor(float(len(pixels))))
    mean = reduce(pixels.sum(0)) / count
    cov = reduce((pixels - mean).T @ (pixels - mean)) / count
    values, vectors = torch.linalg.eigh(cov)
    components = vectors[:, torch.argsort(values, descending=True)[:pairs]].T  # [pairs, inputs]
    head.weight.zero_()
    head.bias.zero_()
    head.weight[plus, :, 1, 1] = components.to(head.weight)
    head.weight[minus, :, 1, 1] = -components.to(head.weight)
    head.bias[plus] = -(components @ mean).to(head.bias)
    head.bias[minus] = (components @ mean).to(head.bias)
    head.bias[const] = k_value

    features = net.head(net.down(lq))
    hidden = torch.arange(pairs)
    for index, block in enumerate(list(net.body) + [net.tail]):
        is_tail = index == len(net.body)
        norm, res_block = (block[0], block[1]) if is_tail else (block.norm, block.conv1)
        z = _standardized(features).double()
        n = reduce(z.new_tensor(float(z.numel() // z.shape[1])))
        z_mean = reduce(z.sum((0, 2, 3))) / n
        diff = z[:, plus] - z[:, minus]
        diff_var = reduce((diff - diff.mean((0, 2, 3), keepdim=True)).pow(2).sum((0, 2, 3))) / n
        gain = 2 * pre_act_std / diff_var.sqrt().clamp_min(1e-12)
        norm.weight.zero_()
        norm.bias.zero_()
        norm.weight[plus] = norm.weight[minus] = gain.to(norm.weight)
        norm.bias[plus] = norm.bias[minus] = (-gain * (z_mean[plus] + z_mean[minus]) / 2).to(norm.bias)
        for conv in (res_block.expand_conv, res_block.fea_conv, res_block.reduce_conv):
            _uniform_(conv.weight, residual, gen)
            conv.bias.zero_()
        # hidden unit j = act(u_j) + act(-u_j); each of the pair loses half of it: (+d_j, -d_j)
        res_block.expand_conv.weight[hidden] = 0.0
        res_block.expand_conv.weight[hidden, plus, 0, 0] = 1.0
        res_block.expand_conv.weight[hidden, minus, 0, 0] = 1.0
        res_block.reduce_conv.weight[:, hidden] = 0.0
        res_block.reduce_conv.weight[plus, hidden, 0, 0] = -0.5
        res_block.reduce_conv.weight[minus, hidden, 0, 0] = -0.5
        res_block.reduce_conv.bias[const] = 0.0 if is_tail else k_value
        features = block(features)


@torch.no_grad()
def upsampler_equations(net: RT4KSR, lq: Tensor, gt: Tensor) -> Tuple[Tensor, Tensor]:
    """Normal equations (float64) of the upsample conv on one batch: sum them over batches, then solve.

    ``lq`` [B, C, h, w], ``gt`` [B, C, h*s, w*s], both in [0, 1]. Raises ``ValueError`` on other sizes.
    """
    if gt.shape[-1] != lq.shape[-1] * net.upscale or gt.shape[-2] != lq.shape[-2] * net.upscale:
        raise ValueError(f'gt {tuple(gt.shape)} is not x{net.upscale} of lq {tuple(lq.shape)}')
    weight = net.upsample[0].weight
    lq, gt = _pad_even(lq.to(weight), gt.to(weight), net.upscale)
    features = net.tail(net.body(net.head(net.down(lq))))
    return normal_equations(features, gt, net.upsample[0].out_channels)


def scaled_ridge(gram: Tensor, ridge: float) -> Tensor:
    """Diagonal penalty ``ridge * count * var(feature)`` per feature (none on the bias), from ``gram``.

    Relative to each feature's own variance, so features of any scale (a constant channel, a
    pair) are regularised alike; constant features get a floor instead of zero.
    """
    count = gram[-1, -1]
    mean = gram[:-1, -1] / count
    var = (gram.diagonal()[:-1] / count - mean**2).clamp_min(0)
    penalty = torch.zeros(len(gram), dtype=gram.dtype, device=gram.device)
    penalty[:-1] = ridge * count * var.clamp_min(1e-6 * float(var.max()))
    return torch.diag(penalty)


@torch.no_grad()
def solve_upsampler_(net: RT4KSR, gram: Tensor, cross: Tensor, ridge: float = RIDGE) -> None:
    """Set the upsample conv (in place) to the ridge solution of the summed normal equations."""
    conv = net.upsample[0]
    solution = torch.linalg.solve(gram + scaled_ridge(gram, ridge), cross)
    conv.weight.copy_(solution[:-1].T.reshape(conv.weight.shape))
    conv.bias.copy_(solution[-1])


@torch.no_grad()
def linear_start_(net: nn.Module, lq: Tensor, gt: Tensor, ridge: float = RIDGE,
                  reduce: Optional[Callable[[Tensor], Tensor]] = None) -> None:
    """Initialise ``net`` (an ``RT4KSR``, modified in place) as the linear upscaler of one batch ``lq`` -> ``gt``.

    ``lq``/``gt`` are a training batch ([B,C,h,w] and [B,C,h*s,w*s]). ``reduce``, if given, sums
    across processes (e.g. an all-reduce) so every DDP rank ends with identical weights. Raises
    ``TypeError`` for another network, ``ValueError`` for ``hf_branch`` or mismatched sizes.
    """
    check_startable(net)
    if gt.shape[-1] != lq.shape[-1] * net.upscale or gt.shape[-2] != lq.shape[-2] * net.upscale:
        raise ValueError(f'gt {tuple(gt.shape)} is not x{net.upscale} of lq {tuple(lq.shape)}')
    linear_structure_(net, lq, reduce=reduce)
    gram, cross = upsampler_equations(net, lq, gt)
    if reduce is not None:
        gram, cross = reduce(gram), reduce(cross)
    solve_upsampler_(net, gram, cross, ridge)
