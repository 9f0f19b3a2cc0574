"""Linear start: the closed-form fit is exact, and the started network beats bicubic on unseen images."""
import pytest
import torch
import torch.nn.functional as F

from basicsr.archs import build_network
from basicsr.metrics import calculate_psnr
from basicsr.utils import tensor2img
from rt4ksr_arch.archs.linear_start import linear_start_, normal_equations
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


@pytest.mark.parametrize('scale,margin', [(2, 0.2), (3, 0.1)])
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
    with pytest.raises(ValueError, match='num_feat > 12'):
        linear_start_(build_network({'type': 'RT4KSR', 'num_feat': 12}), lq, gt)
    with pytest.raises(ValueError, match='is not x3'):
        linear_start_(build_network({'type': 'RT4KSR', 'upscale': 3}), lq, gt)
