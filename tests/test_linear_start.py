"""Linear start: the closed-form fit is exact, the started network is linear with no unit pinned to a linear
range, it beats bicubic on unseen images, and training from it improves on it."""
import pytest
import torch
import torch.nn.functional as F

from basicsr.archs import build_network
from basicsr.metrics import calculate_psnr
from basicsr.utils import tensor2img
from rt4ksr_arch.archs.linear_start import (PRE_ACT_STD, linear_start_, linear_structure_, normal_equations,
                                            solve_upsampler_, upsampler_equations)
from rt4ksr_arch.archs.rt4ksr_arch import reparameterize
from rt4ksr_arch.data.online_bicubic_dataset import make_lq
from rt4ksr_arch.ops.bicubic import imresize

skimage_data = pytest.importorskip('skimage.data')


def test_normal_equations_recover_a_known_conv_and_pixel_shuffle():
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(2, 5, 7, 6, generator=gen, dtype=torch.float64)
    conv = torch.nn.Conv2d(5, 3 * 16, 3, padding=1).double()
    with torch.no_grad():
        target = F.pixel_shuffle(conv(features), 4)
    gram, cross = normal_equations(features, target, conv.out_channels)
    solution = torch.linalg.solve(gram, cross)
    assert torch.allclose(solution[:-1].T.reshape(conv.weight.shape), conv.weight, atol=1e-9)
    assert torch.allclose(solution[-1], conv.bias, atol=1e-9)


def photo(name: str) -> torch.Tensor:
    """A [1,3,H,W] float photograph from scikit-image, cropped to even size."""
    img = torch.from_numpy(getattr(skimage_data, name)()[..., :3].copy()).permute(2, 0, 1).float() / 255
    return img[None, :, :img.shape[1] // 2 * 2, :img.shape[2] // 2 * 2]


def psnr_y(sr: torch.Tensor, hr: torch.Tensor, scale: int) -> float:
    return calculate_psnr(tensor2img(sr), tensor2img(hr), crop_border=scale, test_y_channel=True)


@pytest.mark.parametrize('scale,margin', [(2, 0.3), (3, 0.03)])
def test_started_network_beats_bicubic_on_an_unseen_photo_and_still_fuses(scale, margin):
    train_hr = photo('astronaut')
    gen = torch.Generator().manual_seed(0)
    tops, lefts = torch.randint(0, train_hr.shape[2] - 96, (16,), generator=gen), torch.randint(
        0, train_hr.shape[3] - 96, (16,), generator=gen)
    gt = torch.cat([train_hr[..., t:t + 96, l:l + 96] for t, l in zip(tops.tolist(), lefts.tolist())])
    net = build_network({'type': 'RT4KSR', 'upscale': scale})
    linear_start_(net, make_lq(gt, scale, round_lq=True), gt)

    test_hr = photo('chelsea')  # not seen by the fit; 300x450 divides by 2 and 3
    lq = make_lq(test_hr[0], scale, round_lq=True)[None]
    with torch.no_grad():
        started = psnr_y(net(lq), test_hr, scale)
        fused = psnr_y(reparameterize(net)(lq), test_hr, scale)
    bicubic = psnr_y(imresize(lq, float(scale)).clamp(0, 1), test_hr, scale)
    assert started > bicubic + margin, (started, bicubic)
    assert fused == pytest.approx(started, abs=1e-3)


def test_rejects_what_it_cannot_start():
    lq, gt = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 16, 16)
    with pytest.raises(TypeError, match='train-form RT4KSR'):
        linear_start_(build_network({'type': 'RT4KSRDeploy'}), lq, gt)
    with pytest.raises(ValueError, match='hf_branch'):
        linear_start_(build_network({'type': 'RT4KSR', 'hf_branch': True}), lq, gt)
    with pytest.raises(ValueError, match='num_feat >= 3'):
        linear_start_(build_network({'type': 'RT4KSR', 'num_feat': 2}), lq, gt)
    with pytest.raises(ValueError, match='is not x3'):
        linear_start_(build_network({'type': 'RT4KSR', 'upscale': 3}), lq, gt)


def training_crops(count: int = 16, size: int = 48, seed: int = 0) -> torch.Tensor:
    """``count`` random ``size`` x ``size`` HR crops of the astronaut photograph."""
    hr = photo('astronaut')
    gen = torch.Generator().manual_seed(seed)
    corners = torch.randint(0, hr.shape[-1] - size, (count, 2), generator=gen).tolist()
    return torch.cat([hr[..., t:t + size, l:l + size] for t, l in corners])


def window_least_squares_psnr(lq: torch.Tensor, gt: torch.Tensor) -> float:
    """PSNR (dB, RGB) on (lq, gt) of the least-squares linear x2 upscaler on 6x6 LR windows, fitted there
    (float64 lstsq of every 3x3 window of the pixel-unshuffled LR, plus a bias): the independent reference."""
    windows = F.unfold(F.pixel_unshuffle(lq.double(), 2), 3, padding=1).transpose(1, 2).flatten(0, 1)
    x = torch.cat([windows, windows.new_ones(len(windows), 1)], 1)
    y = F.pixel_unshuffle(gt.double(), 4).flatten(2).transpose(1, 2).reshape(len(x), -1)
    residual = y - x @ torch.linalg.lstsq(x, y).solution
    return float(-10 * torch.log10(residual.pow(2).mean()))


def test_started_network_is_linear_but_no_unit_is_pinned_to_a_linear_range():
    gt = training_crops()
    lq = make_lq(gt, 2, round_lq=True)
    exact = build_network({'type': 'RT4KSR'})
    linear_structure_(exact, lq, residual=0.0)  # without the symmetry-breaking residual: exactly looks-linear
    solve_upsampler_(exact, *upsampler_equations(exact, lq, gt))
    pre_activations = []
    hooks = [block.act.register_forward_pre_hook(lambda _, args: pre_activations.append(args[0][:, :22]))
             for block in exact.body]
    with torch.no_grad():
        a, b = lq[:8], lq[8:]
        mixed = exact(0.3 * a + 0.7 * b)
        expected = 0.3 * exact(a) + 0.7 * exact(b)
    for hook in hooks:
        hook.remove()
    # an affine map, to float rounding and the constant channel's finite dominance of the LayerNorms
    assert (mixed - expected).abs().max() <= 1e-3 * (expected.max() - expected.min())
    for pre in pre_activations[:4]:  # the 11 pairs of the first call, block by block
        assert float(pre.std()) == pytest.approx(PRE_ACT_STD, rel=0.2)
        assert float((pre.abs() < 1).float().mean()) > 0.5  # GELU's curved range, not its linear tail
    started = build_network({'type': 'RT4KSR'})
    linear_start_(started, lq, gt)  # with the residual: within a small margin of the least-squares upscaler
    with torch.no_grad():
        psnr = float(-10 * torch.log10(F.mse_loss(started(lq), gt)))
    assert psnr >= window_least_squares_psnr(lq, gt) - 0.05


def test_fit_summed_over_batches_equals_the_fit_on_all_of_them():
    gt = training_crops(8, 32)
    lq = make_lq(gt, 2, round_lq=True)
    net = build_network({'type': 'RT4KSR'})
    linear_structure_(net, lq)
    parts = [upsampler_equations(net, lq[i:i + 4], gt[i:i + 4]) for i in (0, 4)]
    whole = upsampler_equations(net, lq, gt)
    for summed, direct in zip(map(sum, zip(*parts)), whole):
        assert torch.allclose(summed, direct, rtol=1e-9, atol=1e-9)
    solve_upsampler_(net, *whole)
    with torch.no_grad():
        fitted = net(lq)
        net.upsample[0].weight.add_(1e-3 * torch.randn_like(net.upsample[0].weight))
        moved = net(lq)
    assert F.mse_loss(fitted, gt) < F.mse_loss(moved, gt)  # the least-squares solution: any move is worse


@pytest.mark.slow
def test_training_from_the_linear_start_rises_above_it(tmp_path):
    """The README's linear-start table (benchmarks/cpu_training.py: T91 + BSDS200, x2, batch 16, 64x64 crops,
    AdamW 5e-4, EMA 0.99, MSELoss): Set5 Y-PSNR when the least-squares fit ends, then every 250 iterations
    up to 1,000 (68 s on the shared 2 CPU cores). Training from the start must never fall below it
    (not during the warmup either) and must improve on it, not stay at it."""
    from benchmarks.cpu_training import copy_training_data, curves, issue_setup, recipe_options, train
    from rt4ksr_arch.models.rt4ksr_model import LINEAR_START_BATCHES
    from tests.helpers import SHARED, shared
    for needed in (('T91', 'HR'), ('BSDS200', 'HR'), ('Set5', 'LR_bicubic', 'X2')):
        shared('data', *needed)  # skips with the reason when absent
    copy_training_data(SHARED, tmp_path / 'data')
    base = recipe_options(SHARED, tmp_path / 'data', tmp_path, 'unused')
    psnr = {}
    for name, iters, every in (('start', LINEAR_START_BATCHES, LINEAR_START_BATCHES), ('trained', 1000, 250)):
        opt = issue_setup(base, iters, every, linear_start=True)
        opt['name'], opt['path']['experiments_root'] = name, str(tmp_path / name)
        experiment, _ = train(opt, tmp_path)
        psnr[name] = curves(experiment)[0]['Set5']
    start, trained = psnr['start'][LINEAR_START_BATCHES], psnr['trained']
    assert sorted(trained) == [250, 500, 750, 1000], trained
    assert min(trained.values()) >= start, (start, trained)
    assert trained[1000] > start + 0.2, (start, trained)
