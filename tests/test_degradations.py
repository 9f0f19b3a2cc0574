"""The degradation API (bicubic / ntire23 / jpeg:Q), the NTIRE 2023 score and per-run timing."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from rt4ksr_arch.errors import OptionError
from rt4ksr_arch.ops.bicubic import imresize
from rt4ksr_arch.ops.degradations import crop_hr, degrade, parse_degradation
from rt4ksr_arch.timing import ntire_score, time_runs


def photo(height: int, width: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 5, 7, generator=gen)
    smooth = torch.nn.functional.interpolate(coarse, (height, width), mode='bicubic', align_corners=False)
    return (smooth[0].clamp(0, 1) * 255).round() / 255


def test_specs_parse_and_bad_ones_name_the_forms():
    assert parse_degradation('bicubic').jpeg_quality is None
    assert parse_degradation('NTIRE23').jpeg_quality == 90 and parse_degradation('ntire23').crop == (1080, 2040)
    assert parse_degradation('jpeg:75').name == 'jpeg:75'
    for bad in ('jpeg', 'jpeg:0', 'jpeg:101', 'gauss', 'bicubic:2'):
        with pytest.raises(OptionError, match='bicubic, ntire23 or jpeg:Q'):
            parse_degradation(bad)


def test_ntire23_is_centre_crop_pil_bicubic_then_pil_jpeg_90():
    hr = photo(1090, 2050)
    spec = parse_degradation('ntire23')
    cropped = crop_hr(hr, 2, spec)
    assert cropped.shape[-2:] == (1080, 2040) and torch.equal(cropped, hr[:, 5:1085, 5:2045])
    # independent reference: the challenge's steps written out with PIL
    img = Image.fromarray(np.rint(cropped.permute(1, 2, 0).numpy() * 255).astype(np.uint8))
    buffer = io.BytesIO()
    img.resize((1020, 540), resample=Image.BICUBIC).save(buffer, 'JPEG', quality=90)
    expected = np.asarray(Image.open(buffer)).astype(np.float32) / 255
    lr = degrade(cropped, 2, spec)
    assert lr.shape == (3, 540, 1020) and np.array_equal(lr.permute(1, 2, 0).numpy(), expected)


def test_bicubic_is_matlab_and_jpeg_q_adds_a_lossy_round_trip():
    hr = photo(40, 52)
    bicubic = degrade(hr, 2, parse_degradation('bicubic'))
    assert torch.equal(bicubic, imresize(hr * 255, 0.5, round_uint8=True) / 255)
    low, high = degrade(hr[None], 2, parse_degradation('jpeg:10'))[0], degrade(hr, 2, parse_degradation('jpeg:95'))
    assert (low - bicubic).abs().mean() > (high - bicubic).abs().mean() > 0
    assert torch.equal(low * 255, (low * 255).round())  # 8-bit grid


@pytest.mark.parametrize('spec', ['bicubic', 'jpeg:50', 'ntire23'])
def test_a_batch_degrades_like_its_images_one_by_one(spec):
    hr = torch.stack([photo(24, 30, seed) for seed in (1, 2)])
    lr = degrade(hr, 2, parse_degradation(spec))
    assert lr.shape == (2, 3, 12, 15)
    for image, one in zip(hr, lr):
        assert torch.allclose(degrade(image, 2, parse_degradation(spec)), one, atol=1e-6)
    with pytest.raises(ValueError, match='not a multiple of scale 2'):
        degrade(hr[..., :29], 2, parse_degradation(spec))


def test_challenge_score_formula_and_per_run_timing():
    assert ntire_score(1.0, 4.0) == pytest.approx(2 * 2 / (0.1 * 2))
    assert ntire_score(0.0, 1.0) == 0 and ntire_score(-0.5, 1.0) == 0  # not better than bicubic: nullified
    calls = []
    times = time_runs(lambda: calls.append(1), warmup=3, runs=7, device=torch.device('cpu'))
    assert len(calls) == 10 and len(times) == 7 and all(t >= 0 for t in times)


def test_dataset_jpeg_quality_compresses_the_bicubic_lr(tmp_path):
    import cv2

    from rt4ksr_arch.data.online_bicubic_dataset import OnlineBicubicPairedDataset
    from rt4ksr_arch.ops.degradations import jpeg
    hr = np.rint(photo(24, 30).permute(1, 2, 0).numpy()[:, :, ::-1] * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / 'a.png'), hr)
    opt = {'dataroot_gt': str(tmp_path), 'scale': 2, 'phase': 'val'}
    plain = OnlineBicubicPairedDataset(opt)[0]
    compressed = OnlineBicubicPairedDataset({**opt, 'jpeg_quality': 90})[0]
    assert torch.equal(compressed['lq'], jpeg(plain['lq'], 90)) and not torch.equal(compressed['lq'], plain['lq'])
    with pytest.raises(OptionError, match='jpeg_quality'):
        OnlineBicubicPairedDataset({**opt, 'jpeg_quality': 0})


def test_score_caveats_name_every_difference_from_the_challenges_timing():
    from rt4ksr_arch.cli.benchmark import score_caveats
    assert score_caveats((1080, 1920), 2, 1, torch.device('cuda'), 'fp16') == []  # the challenge's x2 setting
    assert score_caveats((720, 1280), 3, 1, torch.device('cuda'), 'fp16') == []
    caveats = score_caveats((180, 320), 2, 4, torch.device('cpu'), 'fp32')
    assert caveats == ['timed at 320x180: --input 1080x1920', 'batch 4', 'on a CPU', 'fp32']
