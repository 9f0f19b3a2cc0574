"""The released weights reproduce the float64 golden outputs (independent of torch) in both forms."""
import numpy as np
import pytest
import torch

from rt4ksr_arch import RT4KSR, RT4KSRDeploy, load_rt4ksr_weights, reparameterize
from tests.helpers import shared


@pytest.mark.parametrize('scale', [2, 3])
def test_released_weights_match_golden_output(scale):
    x = torch.from_numpy(np.load(shared('golden', 'input_3x24x32.npy')))[None]
    ref = np.load(shared('golden', f'rt4ksr_x{scale}_output_float64.npy'))
    weights = str(shared('weights', 'rt4ksr_official', f'rt4ksr_x{scale}.pth'))
    train = RT4KSR(upscale=scale).eval()
    load_rt4ksr_weights(train, weights)
    deploy_loaded = RT4KSRDeploy(upscale=scale).eval()
    load_rt4ksr_weights(deploy_loaded, weights)
    with torch.no_grad():
        for net in (train, deploy_loaded, reparameterize(train)):
            out = net(x)[0].double().numpy()
            assert out.shape == ref.shape
            assert np.abs(out - ref).max() <= 1e-5, type(net).__name__


@pytest.mark.parametrize('scale', [2, 3])
def test_fused_weights_match_golden(scale):
    golden = np.load(shared('golden', f'rt4ksr_x{scale}_fused_repconvs.npz'))
    net = RT4KSR(upscale=scale)
    load_rt4ksr_weights(net, str(shared('weights', 'rt4ksr_official', f'rt4ksr_x{scale}.pth')))
    fused = reparameterize(net).state_dict()
    assert len(golden.files) == 12  # hfb.0, body.0-3, tail.1: weight and bias each
    for key in golden.files:
        assert np.abs(fused[key].double().numpy() - golden[key]).max() <= 1e-6, key
