"""The prepared (deploy) network, ONNX export and the benchmark CLI, against the plain train-form network."""
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from basicsr.archs import build_network
from basicsr.metrics import calculate_psnr
from basicsr.utils import tensor2img
from rt4ksr_arch.archs.rt4ksr_arch import LayerNorm2d
from rt4ksr_arch.checkpoint import load_model
from rt4ksr_arch.inference import prepare_network
from rt4ksr_arch.timing import OfficialStyle, count_macs
from tests.helpers import randomize_, run_module, shared


@pytest.fixture
def onnxruntime():
    return pytest.importorskip('onnxruntime', reason='pip install -e ".[export]" for the ONNX tests')


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """(train-form network with random weights, its checkpoint path)."""
    net = randomize_(build_network({'type': 'RT4KSR', 'upscale': 2}), seed=11).eval()
    path = tmp_path_factory.mktemp('w') / 'x2.pth'
    torch.save({'params': net.state_dict()}, path)
    return net, path


def test_layer_norm_channels_last_equals_the_formula():
    norm = randomize_(LayerNorm2d(24), seed=3)
    x = torch.randn(2, 24, 7, 9, generator=torch.Generator().manual_seed(0)) * 3 + 1
    centered = x - x.mean(1, keepdim=True)  # the definition: biased variance over channels, eps inside
    expected = centered / torch.sqrt(centered.pow(2).mean(1, keepdim=True) + norm.eps) * norm.weight.view(
        1, -1, 1, 1) + norm.bias.view(1, -1, 1, 1)
    with torch.no_grad():
        for layout in (torch.contiguous_format, torch.channels_last):
            assert (norm(x.contiguous(memory_format=layout)) - expected).abs().max() <= 1e-5, layout


@pytest.mark.parametrize('channels_last', [False, True])
def test_prepared_network_and_official_style_equal_the_train_form(trained, channels_last):
    net, _ = trained
    x = torch.rand(1, 3, 33, 40, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = net(x)
    ours = prepare_network(net, 'cpu', channels_last=channels_last)
    assert (ours(x) - expected).abs().max() <= 1e-5
    assert (OfficialStyle(net)(x) - expected).abs().max() <= 1e-6
    assert not any(isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1) for m in ours.net.modules())


def test_compiled_prepared_network_equals_eager_on_cpu(trained):
    net, _ = trained
    x = torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = net(x)
    assert (prepare_network(net, 'cpu', compile=True)(x) - expected).abs().max() <= 1e-4


def onnx_output(onnxruntime, path: Path, x: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_dynamic_fp32_onnx_matches_torch_at_two_sizes_and_is_not_overwritten(tmp_path, trained, onnxruntime):
    net, weights = trained
    out = tmp_path / 'x2.onnx'
    done = run_module('-m', 'rt4ksr_arch', 'export', str(weights), str(out), '--no-clamp')
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(re.findall(r'max abs diff vs torch fp32 (\S+)', done.stdout)) == 2
    for shape in [(1, 3, 24, 36), (3, 3, 17, 30)]:
        x = torch.rand(shape, generator=torch.Generator().manual_seed(sum(shape)))
        with torch.no_grad():
            expected = net(x).numpy()
        assert np.abs(onnx_output(onnxruntime, out, x.numpy()) - expected).max() <= 1e-4, shape
    before = out.read_bytes()
    again = run_module('-m', 'rt4ksr_arch', 'export', str(weights), str(out))
    assert again.returncode == 2 and '--overwrite' in again.stderr and out.read_bytes() == before


@pytest.mark.parametrize('half_io', [False, True])
def test_fp16_onnx_loads_and_runs(tmp_path, trained, half_io, onnxruntime):
    net, weights = trained
    out = tmp_path / 'x2_fp16.onnx'
    done = run_module('-m', 'rt4ksr_arch', 'export', str(weights), str(out), '--precision', 'fp16', '--static',
                      '--height', '20', '--width', '28', '--no-clamp', *(['--half-io'] if half_io else []))
    assert done.returncode == 0, done.stderr[-3000:]
    x = torch.rand(1, 3, 20, 28, generator=torch.Generator().manual_seed(4))
    got = onnx_output(onnxruntime, out, x.half().numpy() if half_io else x.numpy())
    assert got.dtype == (np.float16 if half_io else np.float32)
    with torch.no_grad():
        assert np.abs(got.astype(np.float32) - net(x).numpy()).max() <= 2e-2


def test_benchmark_cli_prints_both_rows_and_the_ratio(tmp_path, trained):
    _, weights = trained
    done = run_module('-m', 'rt4ksr_arch', 'benchmark', '--input', '32x48', '--device', 'cpu', '--warmup', '1',
                      '--runs', '2', '--weights', str(weights))
    assert done.returncode == 0, done.stderr[-3000:]
    rows = re.findall(r'^(ours|official-style).*?\s([\d.]+)\s+([\d.]+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)$', done.stdout,
                      re.M)
    assert [r[0] for r in rows] == ['ours', 'official-style']
    ratio = float(re.search(r'speed-up vs official-style: ([\d.]+)x', done.stdout).group(1))
    assert ratio == pytest.approx(float(rows[1][1]) / float(rows[0][1]), rel=0.01, abs=0.005)  # printed to 2 decimals
    assert 'NTIRE 2023 protocol: warm-up 1, 2 runs, perf_counter per run' in done.stdout
    assert 'throughput (one timer around all runs)' in done.stdout
    bad = run_module('-m', 'rt4ksr_arch', 'benchmark', '--input', 'huge', '--device', 'cpu')
    assert bad.returncode == 2 and '1080p, 720p, 4k or HxW' in bad.stderr


def test_mac_count_matches_the_layer_arithmetic():
    net = build_network({'type': 'RT4KSRDeploy', 'upscale': 2})
    # per half-resolution position: head 12->24, 4 body + 1 tail 24->24, upsample 24->48, all 3x3
    per_position = 9 * (12 * 24 + 5 * 24 * 24 + 24 * 48)
    assert count_macs(net, torch.rand(1, 3, 32, 48)) == 16 * 24 * per_position
    # the README's figure for a 1080p -> 4K frame, counted on the real input size
    assert round(count_macs(net.to(memory_format=torch.channels_last), torch.rand(1, 3, 1080, 1920)) / 1e9, 2) == 20.16


def test_fp16_prepared_network_keeps_set5_psnr_within_0_01_db():
    weights = shared('weights', 'rt4ksr_official', 'rt4ksr_x2.pth')
    net, _ = load_model(str(weights))
    fp32, fp16 = prepare_network(net, 'cpu', 'fp32'), prepare_network(net, 'cpu', 'fp16')
    psnr = {'fp32': [], 'fp16': []}
    worst = 0.0
    for hr_path in sorted(shared('data', 'Set5', 'HR').glob('*.png')):
        lr = cv2.imread(str(hr_path.parent.parent / 'LR_bicubic' / 'X2' / f'{hr_path.stem}x2.png'))
        hr = cv2.imread(str(hr_path))[:lr.shape[0] * 2, :lr.shape[1] * 2]
        x = torch.from_numpy(lr[:, :, ::-1].copy()).permute(2, 0, 1)[None].float() / 255
        outputs = {'fp32': fp32(x), 'fp16': fp16(x)}
        worst = max(worst, (outputs['fp16'] - outputs['fp32']).abs().max().item())
        for key, out in outputs.items():
            psnr[key].append(calculate_psnr(tensor2img(out), hr, 2, test_y_channel=True))
    assert np.mean(psnr['fp32']) == pytest.approx(36.142, abs=0.01)
    assert abs(np.mean(psnr['fp16']) - np.mean(psnr['fp32'])) <= 0.01
    assert worst <= 2e-2, worst
