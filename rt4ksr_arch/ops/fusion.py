"""Re-parameterization math: one RT4KSR ResBlock -> one 3x3 convolution.

The train-time ResBlock computes, on an input ``x`` with ``C`` channels::

    e = expand(x)                      # 1x1, C -> M (M = 2C)
    y = fea(pad(e, value=expand.bias)) + e   # 3x3 without padding, M -> M
    out = reduce(y) + x                # 1x1, M -> C

Padding ``e`` with the expand bias equals expanding a zero-padded ``x``, so the
whole block is linear in the zero-padded input and collapses into one 3x3
convolution with padding 1. Everything here is a pure function of tensors.
"""
from typing import Dict, Tuple

import torch
from torch import Tensor

TRAIN_BLOCK_PARAMS = ('expand_conv.weight', 'expand_conv.bias', 'fea_conv.weight', 'fea_conv.bias',
                      'reduce_conv.weight', 'reduce_conv.bias')


def fuse_resblock(w_exp: Tensor, b_exp: Tensor, w_fea: Tensor, b_fea: Tensor, w_red: Tensor,
                  b_red: Tensor) -> Tuple[Tensor, Tensor]:
    """Return the (weight, bias) of the 3x3 conv equal to one ResBlock.

    Shapes: ``w_exp (M, C, 1, 1)``, ``w_fea (M, M, 3, 3)``, ``w_red (C, M, 1, 1)``.
    The math runs in float64 and the result is cast back to ``w_fea``'s dtype, so
    fusing float32 weights adds no rounding beyond the final cast.
    """
    dtype = w_fea.dtype
    e, r = w_exp[:, :, 0, 0].double(), w_red[:, :, 0, 0].double()
    f, b_exp = w_fea.double(), b_exp.double()
    num_feat = e.shape[1]

    kernel = torch.einsum('omhw,mi->oihw', f, e)
    kernel[:, :, 1, 1] += e  # the skip around fea adds expand(x) at the centre tap
    bias = b_fea.double() + torch.einsum('omhw,m->o', f, b_exp) + b_exp

    weight = torch.einsum('co,oihw->cihw', r, kernel)
    weight[:, :, 1, 1] += torch.eye(num_feat, dtype=torch.float64, device=weight.device)  # block input skip
    bias = r @ bias + b_red.double()
    return weight.to(dtype), bias.to(dtype)


def fuse_state_dict(state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Map a train-form RT4KSR state dict to its deploy form (new dict, input untouched).

    Every ``<prefix>expand_conv.weight`` group of six tensors becomes
    ``<prefix>rep_conv.weight`` / ``<prefix>rep_conv.bias``; all other entries are kept.
    """
    prefixes = [k[:-len('expand_conv.weight')] for k in state_dict if k.endswith('expand_conv.weight')]
    fused = {}
    consumed = set()
    for prefix in prefixes:
        names = [prefix + p for p in TRAIN_BLOCK_PARAMS]
        missing = [n for n in names if n not in state_dict]
        if missing:
            raise KeyError(f'incomplete ResBlock at "{prefix}": missing {missing}')
        weight, bias = fuse_resblock(*(state_dict[n] for n in names))
        fused[prefix + 'rep_conv.weight'] = weight
        fused[prefix + 'rep_conv.bias'] = bias
        consumed.update(names)
    out = {k: v.clone() for k, v in state_dict.items() if k not in consumed}
    out.update(fused)
    return out
