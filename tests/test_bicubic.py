"""MATLAB-exact bicubic: bit-exact against real MATLAB LR files, float mode against a brute-force reference."""
import math

import cv2
import numpy as np
import pytest
import torch

from rt4ksr_arch.ops.bicubic import imresize, resize_matrix
from tests.helpers import shared


def keys_cubic(x: float) -> float:
    a = abs(x)
    if a <= 1:
        return 1.5 * a**3 - 2.5 * a**2 + 1
    return -0.5 * a**3 + 2.5 * a**2 - 4 * a + 2 if a <= 2 else 0.0


def brute_force_resize_1d(values, scale):
    """MATLAB's definition, written out: every input within the (widened) kernel support, mirrored."""
    n, support = len(values), min(scale, 1.0)
    out = []
    for i in range(math.ceil(n * scale)):
        centre = (i + 0.5) / scale - 0.5
        total = norm = 0.0
        for j in range(math.floor(centre - 2 / support) - 1, math.ceil(centre + 2 / support) + 2):
            weight = support * keys_cubic((centre - j) * support)
            k = j
            while not 0 <= k < n:
                k = -k - 1 if k < 0 else 2 * n - 1 - k
            total += weight * values[k]
            norm += weight
        out.append(total / norm)
    return np.array(out)


def brute_force_resize(img, scale):
    rows_done = np.stack([brute_force_resize_1d(col, scale) for col in img.T], 1)
    return np.stack([brute_force_resize_1d(row, scale) for row in rows_done])


@pytest.mark.parametrize('dataset', ['Set5', 'Set14', 'B100'])
@pytest.mark.parametrize('scale', [2, 3, 4])
def test_uint8_mode_is_bit_exact_with_matlab_lr_files(dataset, scale):
    hr_dir = shared('data', dataset, 'HR')
    paths = sorted(hr_dir.glob('*.png'))
    assert paths
    for path in paths:
        hr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        hr = hr[:hr.shape[0] // scale * scale, :hr.shape[1] // scale * scale]
        expected = cv2.imread(str(hr_dir.parent / 'LR_bicubic' / f'X{scale}' / f'{path.stem}x{scale}.png'),
                              cv2.IMREAD_COLOR)
        got = imresize(torch.from_numpy(np.ascontiguousarray(hr)).permute(2, 0, 1), 1 / scale)
        assert got.dtype == torch.uint8
        assert np.array_equal(got.permute(1, 2, 0).numpy(), expected), path.name


@pytest.mark.parametrize('scale', [1 / 2, 1 / 3, 1 / 4, 0.7, 1.3, 2, 3, 4])
@pytest.mark.parametrize('shape', [(19, 23), (4, 3), (1, 5)])
def test_float_mode_matches_brute_force_definition(scale, shape):
    img = np.random.default_rng(0).random(shape) * 255
    expected = brute_force_resize(img, scale)
    got32 = imresize(torch.from_numpy(img).float(), scale)
    got64 = imresize(torch.from_numpy(img), scale)
    assert got32.dtype == torch.float32 and got32.shape == expected.shape
    assert np.abs(got32.numpy() / 255 - expected / 255).max() <= 1e-5
    assert np.abs(got64.numpy() - expected).max() <= 1e-9


def test_dense_matrix_is_the_same_operator():
    img = torch.rand(30, 26, dtype=torch.float64)
    rows, cols = resize_matrix(30, 15, 0.5), resize_matrix(26, 13, 0.5)
    assert torch.allclose(rows.sum(1), torch.ones(15, dtype=torch.float64))
    assert torch.allclose(imresize(img, 0.5), rows @ img @ cols.T, atol=1e-12)


def test_batched_and_unbatched_agree():
    batch = torch.rand(3, 2, 24, 20)
    out = imresize(batch, 1 / 3)
    assert out.shape == (3, 2, 8, 7)
    for i in range(3):  # other GEMM shapes may round differently in the last bit
        assert torch.allclose(out[i], imresize(batch[i], 1 / 3), rtol=0, atol=1e-6)
    assert torch.allclose(out[1, 0], imresize(batch[1, 0], 1 / 3), rtol=0, atol=1e-6)


def test_rounding_modes():
    img = torch.rand(3, 32, 32) * 255
    on_grid = imresize(img, 0.5, round_uint8=True)
    assert on_grid.dtype == torch.float32 and torch.equal(on_grid, on_grid.round())
    assert 0 <= on_grid.min() and on_grid.max() <= 255
    # float input on the grid and its uint8 twin give the same 8-bit result
    as_uint8 = imresize(img.round().to(torch.uint8), 0.5)
    assert torch.equal(as_uint8.float(), imresize(img.round(), 0.5, round_uint8=True))
    # without rounding, a smooth float result that is not on the grid
    assert not torch.equal(imresize(img, 0.5), imresize(img, 0.5).round())
    half = imresize(img.half() / 255, 0.5)
    assert half.dtype == torch.float16
    assert torch.allclose(half.float(), imresize(img / 255, 0.5), atol=1e-3)


def test_bad_arguments():
    with pytest.raises(ValueError, match='expects'):
        imresize(torch.rand(5), 0.5)
    with pytest.raises(ValueError, match='positive'):
        imresize(torch.rand(4, 4), 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_cuda_matches_cpu():
    img = (torch.rand(4, 3, 64, 48) * 255).to(torch.uint8)
    assert torch.equal(imresize(img.cuda(), 0.5).cpu(), imresize(img, 0.5))
    flt = torch.rand(4, 3, 64, 48)
    assert torch.allclose(imresize(flt.cuda(), 1 / 3).cpu(), imresize(flt, 1 / 3), atol=1e-5)
