"""Backends: one static-shape ONNX window serves any frame size exactly (the TensorRT design, checked on CPU)."""
import pytest
import torch

from rt4ksr_arch import RT4KSR, InferenceOptions, Upscaler
from rt4ksr_arch.backends import OnnxRuntimeNetwork, build_backend, weights_digest
from rt4ksr_arch.ops.tiling import tile_spans
from tests.helpers import randomize_


@pytest.mark.parametrize('length', [44, 46, 58, 90])
def test_static_windows_have_one_size_and_cover_each_core_with_its_context(length):
    tile, pad, window = 16, 14, 44
    for core0, core1, start, end in tile_spans(length, tile, pad, align=2, window=window):
        assert end - start == window and 0 <= start and end <= length and start % 2 == 0
        assert (start == 0 or start <= core0 - pad) and (end == length or end >= core1 + pad)
    with pytest.raises(ValueError):
        tile_spans(42, tile, pad, align=2, window=window)


def test_a_static_onnx_window_tiles_any_size_exactly_like_the_whole_image(tmp_path, monkeypatch):
    pytest.importorskip('onnxruntime', reason='pip install -e ".[export]" for the ONNX backend')
    monkeypatch.setattr('rt4ksr_arch.backends.CACHE', tmp_path)
    net = randomize_(RT4KSR(upscale=2), seed=9).eval()
    opts = InferenceOptions(tile_size=16, tile_batch=3)  # window 16 + 2 x 14 = 44, batch 3
    runner = build_backend('onnxruntime', net, opts, torch.device('cpu'))
    assert isinstance(runner, OnnxRuntimeNetwork) and runner.static_window == 44 and runner.batch == 3
    assert (runner.session.get_inputs()[0].shape == [3, 3, 44, 44])
    shapes = []
    session_run = runner.session.run
    runner.session = type('Spy', (), {'run': lambda self, out, feed: shapes.append(feed['lq'].shape) or
                                      session_run(out, feed)})()
    upscaler = Upscaler(runner, opts)
    for height, width in [(58, 70), (45, 91)]:  # odd sizes, several windows, a partial last batch
        x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(height))
        with torch.no_grad():
            expected = net(x)
        got = upscaler(x)
        assert got.shape == expected.shape and (got - expected).abs().max() <= 1e-4
    assert shapes and set(shapes) == {(3, 3, 44, 44)}  # one static shape for every call
    assert (tmp_path / 'engines').is_dir() and weights_digest(net)[:16] in next((tmp_path / 'engines').iterdir()).name
    small = torch.rand(1, 3, 30, 60)
    with pytest.raises(ValueError, match='static 44x44'):
        upscaler(small)
