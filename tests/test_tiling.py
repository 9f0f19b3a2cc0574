"""Tile mode equals whole-image inference; self-ensemble is the dihedral average; OOM retries."""
import contextlib
import logging

import pytest
import torch
import torch.nn.functional as F

from basicsr.archs import build_network
from rt4ksr_arch import inference
from rt4ksr_arch.errors import OptionError
from rt4ksr_arch.inference import InferenceOptions, Upscaler
from rt4ksr_arch.ops.ensemble import self_ensemble
from rt4ksr_arch.ops.tiling import tile_spans, tiled_forward, tiled_forward_with_retry
from tests.helpers import randomize_


@pytest.mark.parametrize('length,tile,pad,align', [(10, 4, 3, 2), (7, 3, 0, 1), (2, 100, 14, 2), (64, 64, 14, 2)])
def test_tile_spans_partition_with_aligned_clipped_context(length, tile, pad, align):
    spans = tile_spans(length, tile, pad, align)
    assert spans[0][0] == 0 and spans[-1][1] == length
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # cores tile [0, length) exactly
    for core_start, core_end, in_start, in_end in spans:
        assert core_start % align == 0 and in_start % align == 0
        assert in_start == max(0, core_start - pad - (-pad % align)) and in_end >= min(length, core_end + pad)


def test_tile_spans_rejects_unaligned_length():
    with pytest.raises(ValueError, match='multiple of align'):
        tile_spans(7, 4, 2, align=2)


def network(scale: int, **kwargs) -> torch.nn.Module:
    return randomize_(build_network({'type': 'RT4KSR', 'upscale': scale, **kwargs}), seed=scale).eval()


@pytest.mark.parametrize('scale,size,tile,kwargs', [
    (2, (37, 53), 16, {}),
    (3, (29, 31), 10, {}),
    (4, (33, 24), 12, {}),
    (2, (21, 19), 64, {}),  # tile larger than the image
    (2, (1, 1), 8, {}),  # a single pixel
    (3, (1, 9), 2, {}),
    (2, (30, 34), 8, {'num_block': 1, 'hf_branch': True}),  # the blur branch sets the radius here
    (2, (30, 34), 8, {'act_type': 'prelu', 'num_feat': 16, 'num_block': 2}),
])
def test_tiles_with_receptive_radius_pad_equal_the_whole_image(scale, size, tile, kwargs):
    net = network(scale, **kwargs)
    lq = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = net(lq)
        tiled = tiled_forward(net, lq, scale, tile, net.receptive_radius)
    assert tiled.shape == whole.shape == (2, 3, size[0] * scale, size[1] * scale)
    assert (tiled - whole).abs().max() <= 1e-6


def test_receptive_radius_is_tight():
    net = network(2)
    assert net.receptive_radius == 14
    lq = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        whole = net(lq)
        short = tiled_forward(net, lq, 2, 16, net.receptive_radius - 2)  # one 2x2 group less context
    assert (short - whole).abs().max() > 1e-5  # far above the 1e-6 float noise of exact tiling


def test_batched_tiles_equal_single_tiles():
    net = network(2)
    lq = torch.rand(1, 3, 50, 44, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        single = tiled_forward(net, lq, 2, 12, 14)
        batched = tiled_forward(net, lq, 2, 12, 14, tile_batch=5)
    assert (single - batched).abs().max() <= 1e-6


@contextlib.contextmanager
def basicsr_messages():
    """The messages logged to BasicSR's logger meanwhile (it does not propagate to pytest's caplog)."""
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger('basicsr')
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def test_out_of_memory_halves_the_tile_and_names_the_option_when_it_cannot():
    def small_memory(limit):
        def fn(x):
            if x.shape[-1] > limit:
                raise torch.OutOfMemoryError('simulated')
            return F.interpolate(x, scale_factor=2, mode='nearest')
        return fn

    lq = torch.rand(1, 3, 40, 40)
    with basicsr_messages() as messages:
        out = tiled_forward_with_retry(small_memory(30), lq, 2, 64, 4)
    assert torch.equal(out, F.interpolate(lq, scale_factor=2, mode='nearest'))
    assert any('retrying with 32' in m for m in messages) and any('retrying with 16' in m for m in messages)
    with pytest.raises(RuntimeError, match='lower --tile'):
        tiled_forward_with_retry(small_memory(4), lq, 2, 64, 4, option='--tile')


def test_self_ensemble_is_the_dihedral_average():
    x = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(4))
    nearest = lambda t: F.interpolate(t, scale_factor=2, mode='nearest')  # noqa: E731  (equivariant)
    assert torch.allclose(self_ensemble(nearest, x), nearest(x), atol=1e-7)
    # EDSR's formulation of the same 8 transforms: flips of H and W, with or without a transpose
    net = network(2)
    outputs = []
    for transpose in (False, True):
        for dims in ([], [-1], [-2], [-1, -2]):
            t = x.transpose(-1, -2) if transpose else x
            y = net(t.flip(dims) if dims else t)
            y = y.flip(dims) if dims else y
            outputs.append(y.transpose(-1, -2) if transpose else y)
    with torch.no_grad():
        assert torch.allclose(self_ensemble(net, x), torch.stack(outputs).mean(0), atol=1e-6)


def test_upscaler_composes_tiles_and_ensemble_and_validates_options():
    net = network(2).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.rand(1, 3, 30, 26, generator=torch.Generator().manual_seed(5))
    plain = Upscaler(net, InferenceOptions(self_ensemble=True), 'cpu')(x)
    tiles = InferenceOptions.from_val_opt({'self_ensemble': True, 'tile': {'tile_size': 8, 'tile_batch': 3}})
    tiled = Upscaler(net, tiles, 'cpu')(x)
    assert (plain - tiled).abs().max() <= 1e-6
    assert net.training and all(torch.equal(v, before[k]) for k, v in net.state_dict().items())  # untouched
    for bad, message in [({'tile': {'tile_pad': 4}}, 'val.tile needs tile_size'),
                         ({'tile': {'tile_size': 0}}, 'val.tile.tile_size must be an integer >= 1'),
                         ({'tile': {'tile_size': 8, 'tile_pad': -1}}, 'val.tile.tile_pad must be an integer >= 0'),
                         ({'tile': {'tile_size': 8, 'size': 3}}, 'unknown keys'), ({'tile': 512}, 'mapping'),
                         ({'fp16': True, 'bf16': True}, 'exclusive'), ({'channels_last': 'yes'}, 'val.channels_last')]:
        with pytest.raises(OptionError, match=message):
            InferenceOptions.from_val_opt(bad)


class SmallDevice(torch.nn.Module):
    """A network that runs out of memory on inputs larger than ``limit`` LR pixels."""

    def __init__(self, net: torch.nn.Module, limit: int) -> None:
        super().__init__()
        self.net, self.limit = net, limit

    def forward(self, x):
        if x.shape[-2] * x.shape[-1] > self.limit:
            raise torch.OutOfMemoryError('simulated')
        return self.net(x)


def test_a_whole_image_that_does_not_fit_is_tiled_instead(monkeypatch):
    monkeypatch.setattr(inference, 'FALLBACK_TILE', 16)
    net = network(2)
    x = torch.rand(1, 3, 80, 72, generator=torch.Generator().manual_seed(6))
    with basicsr_messages() as messages:
        upscaler = Upscaler(net, device='cpu')
        upscaler.network.run = SmallDevice(upscaler.network.run, limit=44 * 44)  # a 16-tile with its 14-pixel pad fits
        out = upscaler(x)
    assert any('tiling it at 16' in m for m in messages)
    with torch.no_grad():
        assert (out - net(x)).abs().max() <= 1e-5  # float noise of many tiles; exactness is tested above
