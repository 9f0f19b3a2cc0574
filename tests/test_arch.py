"""RT4KSR / RT4KSRDeploy: structure, any input size, fusion equivalence, purity, activations."""
import copy

import pytest
import torch
from torch.nn import functional as F
from torchvision.transforms import GaussianBlur

from basicsr.archs import build_network
from rt4ksr_arch import RT4KSR, RT4KSRDeploy, reparameterize
from tests.helpers import randomize_, released_parameter_counts


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_parameter_counts_match_the_released_model():
    train, fused = released_parameter_counts()
    assert n_params(RT4KSR(upscale=2)) == train
    assert n_params(RT4KSRDeploy(upscale=2)) == fused


def test_both_archs_build_from_basicsr_options():
    opt = dict(num_in_ch=3, num_out_ch=3, num_feat=24, num_block=4, upscale=3, act_type='gelu')
    for arch in ('RT4KSR', 'RT4KSRDeploy'):
        net = build_network(dict(type=arch, **opt))
        assert type(net).__name__ == arch and net.config.upscale == 3


@pytest.mark.parametrize('scale', [2, 3, 4])
@pytest.mark.parametrize('act_type', ['gelu', 'relu', 'lrelu', 'prelu'])
def test_deploy_equals_train_form_borders_included(scale, act_type):
    net = randomize_(RT4KSR(upscale=scale, act_type=act_type), seed=scale).eval()
    x = torch.rand(2, 3, 18, 22, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref, out = net(x), reparameterize(net)(x)
    assert out.shape == (2, 3, 18 * scale, 22 * scale)
    assert (out - ref).abs().max().item() <= 1e-5


def test_reparameterize_is_pure_and_keeps_dtype_device_and_mode():
    net = randomize_(RT4KSR()).double().train()
    before = copy.deepcopy(net.state_dict())
    deploy = reparameterize(net)
    assert isinstance(deploy, RT4KSRDeploy) and deploy.training
    assert deploy.head[0].weight.dtype == torch.float64 and deploy.head[0].weight.device == net.head[0].weight.device
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert not any(p.data_ptr() == q.data_ptr() for p in net.parameters() for q in deploy.parameters())
    x = torch.rand(1, 3, 10, 12, dtype=torch.float64)
    with torch.no_grad():
        assert (deploy(x) - net(x)).abs().max().item() < 1e-12  # float64: exact up to rounding
    again = reparameterize(deploy)
    assert again is not deploy and torch.equal(again.tail[1].rep_conv.weight, deploy.tail[1].rep_conv.weight)
    with pytest.raises(TypeError, match='RT4KSR'):
        reparameterize(torch.nn.Conv2d(3, 3, 3))


@pytest.mark.parametrize('size', [(1, 1), (1, 6), (7, 1), (5, 9), (13, 8), (8, 8)])
@pytest.mark.parametrize('scale', [2, 3])
def test_any_input_size_is_replicate_padded_then_cropped(size, scale):
    net = randomize_(RT4KSR(upscale=scale)).eval()
    h, w = size
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(h * 31 + w))
    with torch.no_grad():
        out = net(x)
        # brute force: pad to even by repeating the last row/column, run, crop
        even = torch.cat([x, x[:, :, -1:]], 2) if h % 2 else x
        even = torch.cat([even, even[:, :, :, -1:]], 3) if w % 2 else even
        ref = net(even)[..., :h * scale, :w * scale]
    assert out.shape == (1, 3, h * scale, w * scale)
    assert (out - ref).abs().max() <= 1e-6  # other input sizes may take other conv kernels: float noise only


def test_prelu_gets_one_module_per_use():
    net = RT4KSR(act_type='prelu')
    acts = [block.act for block in net.body] + [net.hfb[1]]
    assert len({id(a) for a in acts}) == len(acts)
    assert all(a.weight.item() == pytest.approx(0.05) for a in acts)
    # independent slopes: training one leaves the others alone
    net.body[0].act.weight.data.fill_(0.5)
    assert net.body[1].act.weight.item() == pytest.approx(0.05)


def test_hf_branch_disabled_skips_hfb_and_gamma():
    net = randomize_(RT4KSR()).eval()
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        ref = net(x)
        net.hfb[0].fea_conv.weight.add_(1.0)
        net.gamma.add_(3.0)
        assert torch.equal(net(x), ref)


def test_dormant_branch_is_frozen_only_when_disabled():
    dormant = {n for n, p in RT4KSR().named_parameters() if not p.requires_grad}
    resblock = {f'hfb.0.{c}_conv.{t}' for c in ('expand', 'fea', 'reduce') for t in ('weight', 'bias')}
    assert dormant == {'gamma'} | resblock
    assert all(p.requires_grad for p in RT4KSR(hf_branch=True).parameters())
    assert {n for n, p in reparameterize(RT4KSR()).named_parameters() if not p.requires_grad} == {
        'gamma', 'hfb.0.rep_conv.weight', 'hfb.0.rep_conv.bias'}


def test_hf_branch_enabled_follows_the_authors_definition():
    net = randomize_(RT4KSR(hf_branch=True)).eval()
    x = torch.rand(1, 3, 16, 20, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        high = x - GaussianBlur(kernel_size=5, sigma=1)(x)
        deep = net.body(net.head(F.pixel_unshuffle(x, 2)))
        hf_feats = net.hfb(net.head(F.pixel_unshuffle(high, 2)))
        ref = net.upsample(net.tail(net.gamma * deep + hf_feats))
        assert (net(x) - ref).abs().max().item() <= 1e-6
        assert (reparameterize(net)(x) - ref).abs().max().item() <= 1e-5


@pytest.mark.parametrize('kwargs, message', [
    (dict(act_type='swish'), 'act_type must be one of'),
    (dict(upscale=0), 'upscale must be a positive integer'),
    (dict(upscale=2.5), 'upscale must be a positive integer'),
    (dict(num_feat='24'), 'num_feat must be a positive integer'),
])
def test_bad_constructor_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RT4KSR(**kwargs)
