"""Linear start: initialise RT4KSR as the least-squares linear upscaler of a batch.

RT4KSR has no global skip and normalises every feature map over channels, so from a random
initialisation it spends thousands of iterations re-learning image intensities before it
reaches even bicubic quality. ``linear_start_`` instead sets the network so that every layer
works as an (almost exactly) linear map, then solves its last convolution in closed form:

- the head copies the 12 pixel-unshuffled input channels and adds a large constant channel,
  so each LayerNorm2d's mean and scale are dominated by that constant and act affinely;
- each LayerNorm2d shifts its output by ``margin``, where GELU/ReLU/PReLU are the identity;
- every ResBlock's reduce conv is zeroed (the identity block, as in zero-init residuals);
- the upsample conv is the ridge-regression solution from those features to the HR pixels.

The network then starts as the best linear filter on a 6x6 LR window (better than bicubic's
fixed 4x4 kernel), and training learns the nonlinear part. The architecture is unchanged.
"""
from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rt4ksr_arch.archs.rt4ksr_arch import RT4KSR


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


@torch.no_grad()
def linear_start_(net: nn.Module, lq: Tensor, gt: Tensor, offset: float = 30.0, margin: float = 3.0,
                  ridge: float = 1e-6, reduce: Optional[Callable[[Tensor], Tensor]] = None) -> None:
    """Initialise ``net`` (an ``RT4KSR``, modified in place) as the linear upscaler of ``lq`` -> ``gt``.

    ``lq``/``gt`` are a training batch ([B,C,h,w] and [B,C,h*s,w*s]). ``reduce``, if given, sums
    the normal equations across processes (e.g. an all-reduce) so every DDP rank solves the
    same system and ends with identical weights.
    """
    if not isinstance(net, RT4KSR):
        raise TypeError(f'linear start needs a train-form RT4KSR network, got {type(net).__name__}')
    if net.hf_branch:
        raise ValueError('linear start does not support hf_branch: true (the branch is not linear); '
                         'set train.linear_start: false')
    if gt.shape[-1] != lq.shape[-1] * net.upscale or gt.shape[-2] != lq.shape[-2] * net.upscale:
        raise ValueError(f'gt {tuple(gt.shape)} is not x{net.upscale} of lq {tuple(lq.shape)}')
    head = net.head[0]
    unshuffled = net.num_in_ch * 4
    if head.out_channels <= unshuffled:
        raise ValueError(f'linear start needs num_feat > {unshuffled} (got {head.out_channels})')
    head.weight.zero_()
    head.bias.zero_()
    head.weight[torch.arange(unshuffled), torch.arange(unshuffled), 1, 1] = 1.0
    head.bias[unshuffled] = offset
    for block in net.body:
        block.norm.weight.fill_(1.0)
        block.norm.bias.fill_(margin)
    for res_block in [block.conv1 for block in net.body] + [net.tail[1]]:
        res_block.reduce_conv.weight.zero_()
        res_block.reduce_conv.bias.zero_()

    conv = net.upsample[0]
    lq = lq.to(head.weight)
    height, width = lq.shape[-2:]
    if height % 2 or width % 2:  # as the network pads odd inputs
        lq = F.pad(lq, (0, width % 2, 0, height % 2), mode='replicate')
        gt = F.pad(gt, (0, (width % 2) * net.upscale, 0, (height % 2) * net.upscale), mode='replicate')
    features = net.tail(net.body(net.head(net.down(lq))))
    gram, cross = normal_equations(features, gt.to(features), conv.out_channels)
    if reduce is not None:
        gram, cross = reduce(gram), reduce(cross)
    gram += ridge * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype, device=gram.device)
    solution = torch.linalg.solve(gram, cross)
    conv.weight.copy_(solution[:-1].T.reshape(conv.weight.shape))
    conv.bias.copy_(solution[-1])
