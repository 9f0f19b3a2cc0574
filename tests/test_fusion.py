"""fuse_resblock / fuse_state_dict against brute-force equivalents."""
import torch
from torch.nn import functional as F

from rt4ksr_arch.archs.rt4ksr_arch import ResBlock
from rt4ksr_arch.ops.fusion import fuse_resblock, fuse_state_dict
from tests.helpers import randomize_


def authors_resblock(block: ResBlock, x: torch.Tensor) -> torch.Tensor:
    """The authors' formulation: pad the expanded features with the expand bias, unpadded 3x3."""
    e = block.expand_conv(x)
    bias = block.expand_conv.bias.view(1, -1, 1, 1)
    padded = F.pad(e - bias, (1, 1, 1, 1)) + bias
    return block.reduce_conv(block.fea_conv(padded) + e) + x


def test_resblock_matches_the_authors_bias_padding():
    block = randomize_(ResBlock(8)).double()
    x = torch.randn(2, 8, 7, 5, dtype=torch.float64)
    assert (block(x) - authors_resblock(block, x)).abs().max().item() < 1e-12


def test_fused_conv_equals_block_on_random_inputs():
    block = randomize_(ResBlock(6), seed=4).double()
    p = {n: t.detach() for n, t in block.state_dict().items()}
    weight, bias = fuse_resblock(p['expand_conv.weight'], p['expand_conv.bias'], p['fea_conv.weight'],
                                 p['fea_conv.bias'], p['reduce_conv.weight'], p['reduce_conv.bias'])
    assert weight.shape == (6, 6, 3, 3) and bias.shape == (6, )
    for h, w in [(1, 1), (2, 9), (11, 4)]:
        x = torch.randn(3, 6, h, w, dtype=torch.float64)
        assert (F.conv2d(x, weight, bias, padding=1) - authors_resblock(block, x)).abs().max().item() < 1e-12


def test_fuse_state_dict_keeps_other_entries_and_leaves_input_alone():
    sd = {k: v.clone() for k, v in randomize_(ResBlock(4)).state_dict().items()}
    sd = {'tail.1.' + k: v for k, v in sd.items()}
    sd['tail.0.weight'] = torch.ones(4)
    copy = {k: v.clone() for k, v in sd.items()}
    fused = fuse_state_dict(sd)
    assert set(fused) == {'tail.0.weight', 'tail.1.rep_conv.weight', 'tail.1.rep_conv.bias'}
    assert all(torch.equal(sd[k], copy[k]) for k in copy)
    assert fused['tail.1.rep_conv.weight'].dtype == torch.float32
