"""x8 geometric self-ensemble (EDSR+): average the network over the 8 flips x rot90 of its input."""
from typing import Callable

from torch import Tensor


def self_ensemble(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Mean of ``inverse_t(fn(t(x)))`` over the 8 dihedral transforms ``t`` of the last two dims."""
    total = None
    for flip in (False, True):
        for turns in range(4):
            y = x.flip(-1) if flip else x
            y = fn(y.rot90(turns, (-2, -1))).rot90(-turns, (-2, -1))
            y = y.flip(-1) if flip else y
            total = y.float() if total is None else total + y.float()
    return (total / 8).to(y.dtype)
