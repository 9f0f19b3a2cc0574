"""RT4KSRModel in process (BasicSR's tests/test_models/test_sr_model.py pattern): options dict, tiny data.

Option validation, weight-decay groups, warmup (and its resume), EMA over buffers, the fp16 GradScaler
in the training state, the training memory layout, gradient clipping, the non-finite-loss stop,
checkpoints with their config, the default load key (and params on resume), test mode.
Every expected value is computed here, independently of the code under test.
"""
import copy
import logging
import math
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest
import torch
from torch import nn

from basicsr.models import build_model
from basicsr.utils.matlab_functions import imresize as basicsr_imresize
from rt4ksr_arch import RT4KSR, RT4KSRConfig, RT4KSRDeploy, load_model, save_checkpoint
from rt4ksr_arch.archs.rt4ksr_arch import LayerNorm2d
from rt4ksr_arch.errors import CheckpointError, DatasetError, OptionError
from rt4ksr_arch.models.rt4ksr_model import RT4KSRModel, split_decay_groups
from tests.helpers import randomize_

PEAK_LR = 1e-2


def make_opt(tmp_path: Path, network: Dict[str, Any] = None, path: Dict[str, Any] = None,
             **train: Any) -> Dict[str, Any]:
    """A tiny training run's options (C=16, one block, x2) writing under ``tmp_path``."""
    opt = {
        'name': 'tiny', 'model_type': 'RT4KSRModel', 'scale': 2, 'num_gpu': 0, 'dist': False, 'rank': 0,
        'world_size': 1, 'is_train': True, 'manual_seed': 0,
        'network_g': {'type': 'RT4KSR', 'num_feat': 16, 'num_block': 1, 'upscale': 2, **(network or {})},
        'path': {'experiments_root': str(tmp_path), 'models': str(tmp_path / 'models'),
                 'training_states': str(tmp_path / 'training_states'), 'log': str(tmp_path),
                 'visualization': str(tmp_path / 'visualization'), 'strict_load_g': True, 'resume_state': None,
                 **(path or {})},
        'train': {'ema_decay': 0.9, 'optim_g': {'type': 'AdamW', 'lr': PEAK_LR, 'weight_decay': 1e-4,
                                                'betas': [0.9, 0.99]},
                  'scheduler': {'type': 'StepLR', 'step_size': 100, 'gamma': 0.5}, 'total_iter': 10,
                  'warmup_iter': -1, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}},
    }
    opt['train'].update(train)
    return opt


def batch(seed: int = 0, n: int = 2) -> Dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {'lq': torch.rand(n, 3, 8, 8, generator=gen), 'gt': torch.rand(n, 3, 16, 16, generator=gen)}


def build(opt: Dict[str, Any]) -> RT4KSRModel:
    torch.manual_seed(0)
    model = build_model(opt)
    assert type(model) is RT4KSRModel
    return model


def train_step(model: RT4KSRModel, current_iter: int, data: Dict[str, torch.Tensor] = None) -> None:
    """One iteration in BasicSR's train-loop order."""
    model.update_learning_rate(current_iter, warmup_iter=model.opt['train'].get('warmup_iter', -1))
    model.feed_data(data or batch(current_iter))
    model.optimize_parameters(current_iter)


def cloned_state(net: nn.Module) -> Dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def assert_state_equal(net: nn.Module, expected: Dict[str, torch.Tensor]) -> None:
    got = net.state_dict()
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert torch.equal(got[key], value), key


# ---------------------------------------------------------------------------------------- option validation
@pytest.mark.parametrize('where, value, key', [
    (('optim_g', 'lr'), '2e-4', 'train.optim_g.lr'),
    (('optim_g', 'betas'), [0.9, '0.99'], 'train.optim_g.betas[1]'),
    (('ema_decay', ), '0.999', 'train.ema_decay'),
])
def test_numeric_strings_are_refused_naming_the_key(tmp_path, where, value, key):
    opt = make_opt(tmp_path)
    section = opt['train']
    for part in where[:-1]:
        section = section[part]
    section[where[-1]] = value
    with pytest.raises(OptionError) as err:
        build(opt)
    assert key in str(err.value) and f'{value if isinstance(value, str) else value[1]!r} (write ' in str(err.value)


def test_numeric_looking_dataset_roots_and_names_are_allowed(tmp_path):
    opt = make_opt(tmp_path)
    opt['datasets'] = {'train': {'name': '2017', 'dataroot_gt': '2024', 'type': 'OnlineBicubicPairedDataset'}}
    build(opt)  # folder names may be numbers; gt_size: '96' would not be
    opt['datasets']['train']['gt_size'] = '96'
    with pytest.raises(OptionError, match=r'datasets\.train\.gt_size'):
        build(opt)


@pytest.mark.parametrize('amp', ['fp32', 'float16', True, 'BF16'])
def test_a_bad_amp_is_refused(tmp_path, amp):
    with pytest.raises(OptionError) as err:
        build(make_opt(tmp_path, amp=amp))
    assert err.value.field == 'train.amp' and repr(amp) in str(err.value)


@pytest.mark.parametrize('amp', [None, False, 'bf16', 'fp16'])
def test_valid_amp_values_build(tmp_path, amp):
    model = build(make_opt(tmp_path, amp=amp))
    assert (model.scaler is not None) == (amp == 'fp16')


def test_an_unknown_network_key_is_refused_naming_network_g(tmp_path):
    with pytest.raises(OptionError) as err:
        build(make_opt(tmp_path, network={'num_feats': 16}))
    assert err.value.field == 'network_g' and 'num_feats' in str(err.value)


def test_a_bad_network_value_is_refused_with_its_yaml_name(tmp_path):
    with pytest.raises(OptionError) as err:
        build(make_opt(tmp_path, network={'act_type': 'swish'}))
    assert err.value.field == 'network_g.act_type' and 'swish' in str(err.value)


def test_an_unknown_optimizer_is_refused_naming_the_key(tmp_path):
    with pytest.raises(OptionError) as err:
        build(make_opt(tmp_path, optim_g={'type': 'AdamWW', 'lr': PEAK_LR}))
    assert err.value.field == 'train.optim_g.type' and 'AdamWW' in str(err.value) and 'AdamW' in str(err.value)
    with pytest.raises(OptionError, match='train.optim_g.type'):
        build(make_opt(tmp_path, optim_g={'type': 'lr_scheduler', 'lr': PEAK_LR}))  # in torch.optim, not one


def test_an_unknown_scheduler_is_refused_naming_the_key(tmp_path):
    with pytest.raises(OptionError) as err:
        build(make_opt(tmp_path, scheduler={'type': 'StepLRR', 'step_size': 3}))
    assert err.value.field == 'train.scheduler.type' and 'StepLRR' in str(err.value)
    assert isinstance(err.value, ValueError)


# ---------------------------------------------------------------------------------------- weight-decay groups
def expected_groups(net: nn.Module):
    """(ids of decayed params, ids of non-decayed params) by module type: only conv weights decay."""
    decay, no_decay = set(), set()
    for module in net.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            is_conv_weight = isinstance(module, nn.Conv2d) and name == 'weight'
            (decay if is_conv_weight else no_decay).add(id(param))
    return decay, no_decay


@pytest.mark.parametrize('hf_branch', [False, True])
def test_decay_groups_by_parameter_kind(tmp_path, hf_branch):
    model = build(make_opt(tmp_path, network={'act_type': 'prelu', 'hf_branch': hf_branch}))
    net = model.net_g
    decay, no_decay = expected_groups(net)
    names = {id(p): n for n, p in net.named_parameters()}
    groups = model.optimizer_g.param_groups
    assert [g['weight_decay'] for g in groups] == [1e-4, 0.0]
    assert {id(p) for p in groups[0]['params']} == decay
    assert {id(p) for p in groups[1]['params']} == no_decay
    grouped = {names[id(p)] for g in groups for p in g['params']}
    # the kinds the rule is about, spelled out
    norms = [n for n, m in net.named_modules() if isinstance(m, LayerNorm2d)]
    assert norms and all(f'{n}.weight' in grouped and f'{n}.bias' in grouped for n in norms)
    assert {names[id(p)] for p in groups[1]['params']} >= {'head.0.bias', 'body.0.act.weight'}
    assert 'head.0.weight' in {names[id(p)] for p in groups[0]['params']}
    dormant = {'gamma'} | {n for n in names.values() if n.startswith('hfb.')}
    if hf_branch:  # trained: gamma (1-D) and the branch's PReLU slope do not decay, its convs do
        assert {'gamma', 'hfb.1.weight'} <= {names[id(p)] for p in groups[1]['params']}
        assert 'hfb.0.fea_conv.weight' in {names[id(p)] for p in groups[0]['params']}
    else:  # frozen: in no group at all
        assert not grouped & dormant
        assert grouped == {n for n, p in net.named_parameters() if p.requires_grad}


def test_split_decay_groups_excludes_frozen_and_omits_an_empty_no_decay_group():
    net = RT4KSR(num_feat=8, num_block=2, hf_branch=True)
    net.head[0].weight.requires_grad_(False)
    net.tail[0].bias.requires_grad_(False)
    decay, no_decay = expected_groups(net)
    groups = split_decay_groups(net.named_parameters(), 0.05)
    assert [g['weight_decay'] for g in groups] == [0.05, 0.0]
    assert {id(p) for p in groups[0]['params']} == decay and id(net.head[0].weight) not in decay
    assert {id(p) for p in groups[1]['params']} == no_decay and id(net.tail[0].bias) not in no_decay
    convs_only = [(n, p) for n, p in net.named_parameters() if p.ndim == 4]
    assert [g['weight_decay'] for g in split_decay_groups(convs_only, 0.05)] == [0.05]


# ---------------------------------------------------------------------------------------- warmup
def scheduled_lr(kind: str, k: int) -> float:
    """The scheduler's LR during iteration k (it steps once per iteration after the first)."""
    steps = k - 1
    if kind == 'MultiStepLR':  # milestones [6, 8], gamma 0.5
        return PEAK_LR * 0.5**sum(steps >= m for m in (6, 8))
    if kind == 'StepLR':  # step_size 5, gamma 0.1
        return PEAK_LR * 0.1**(steps // 5)
    # CosineAnnealingRestartLR, one period of 10, eta_min 1e-4
    return 1e-4 + 0.5 * (PEAK_LR - 1e-4) * (1 + math.cos(math.pi * steps / 10))


SCHEDULERS = {
    'MultiStepLR': {'type': 'MultiStepLR', 'milestones': [6, 8], 'gamma': 0.5},
    'StepLR': {'type': 'StepLR', 'step_size': 5, 'gamma': 0.1},
    'CosineAnnealingRestartLR': {'type': 'CosineAnnealingRestartLR', 'periods': [10], 'restart_weights': [1],
                                 'eta_min': 1e-4},
}


@pytest.mark.parametrize('kind', sorted(SCHEDULERS))
def test_warmup_reaches_the_peak_then_follows_the_scheduler(tmp_path, kind):
    warmup = 4
    model = build(make_opt(tmp_path, scheduler=dict(SCHEDULERS[kind]), warmup_iter=warmup, ema_decay=0))
    for k in range(1, 11):
        train_step(model, k)
        expected = scheduled_lr(kind, k) * (k / warmup if k < warmup else 1)
        lrs = [g['lr'] for g in model.optimizer_g.param_groups]
        assert lrs == pytest.approx([expected] * 2, rel=1e-9, abs=0), k
        assert model.get_current_learning_rate() == lrs
        if kind != 'CosineAnnealingRestartLR':  # these hold the peak until after the warmup
            peak_share = k / warmup if k < warmup else 1
            if k <= warmup:  # peak*k/W, then the peak itself at W (not peak*(W-1)/W)
                assert lrs[0] == pytest.approx(PEAK_LR * peak_share, rel=1e-12)


def test_resume_mid_warmup_continues_the_learning_rates(tmp_path):
    options = dict(scheduler=dict(SCHEDULERS['MultiStepLR']), warmup_iter=5, ema_decay=0)
    full = build(make_opt(tmp_path / 'full', **options))
    full_lrs = {}
    for k in range(1, 10):
        train_step(full, k)
        full_lrs[k] = full.get_current_learning_rate()
    part = build(make_opt(tmp_path / 'part', **options))
    for k in range(1, 4):
        train_step(part, k)
    part.save_training_state(epoch=0, current_iter=3)
    state = torch.load(tmp_path / 'part' / 'training_states' / '3.state', weights_only=True)
    resumed = build(make_opt(tmp_path / 'part', **options))
    resumed.resume_training(state)
    for k in range(4, 10):
        train_step(resumed, k)
        assert resumed.get_current_learning_rate() == pytest.approx(full_lrs[k], rel=1e-12), k
        assert full_lrs[k][0] == pytest.approx(scheduled_lr('MultiStepLR', k) * min(k / 5, 1), rel=1e-9)


# ---------------------------------------------------------------------------------------- EMA
def test_ema_averages_parameters_and_float_buffers_and_copies_integer_buffers(tmp_path):
    decay = 0.9
    model = build(make_opt(tmp_path, ema_decay=decay))
    net, ema = model.net_g, model.net_g_ema
    for module in (net, ema):  # the buffer path (RT4KSR itself has no buffers)
        module.register_buffer('running_mean', torch.zeros(3))
        module.register_buffer('num_batches', torch.zeros(2, dtype=torch.long))
    ema.num_batches.fill_(5)
    train_step(model, 1)  # after it the EMA differs from net_g, so old and new below differ
    old = cloned_state(ema)
    net.running_mean.copy_(torch.tensor([1.0, -2.0, 4.0]))
    net.num_batches.copy_(torch.tensor([7, -3]))
    train_step(model, 2)
    new = net.state_dict()
    got = ema.state_dict()
    assert set(got) == set(new)
    for key, value in new.items():
        if value.is_floating_point():
            expected = decay * old[key].double() + (1 - decay) * value.double()
            torch.testing.assert_close(got[key].double(), expected, rtol=0, atol=1e-6, msg=key)
        else:
            assert got[key].dtype == value.dtype and torch.equal(got[key], value), key
    # the expectations are not trivially met: the EMA is neither the old EMA nor net_g
    assert not torch.allclose(got['head.0.weight'], new['head.0.weight'])
    assert not torch.allclose(got['head.0.weight'], old['head.0.weight'])
    torch.testing.assert_close(got['running_mean'], torch.tensor([0.1, -0.2, 0.4]))
    assert got['num_batches'].tolist() == [7, -3]


def test_ema_starts_as_a_copy_of_net_g(tmp_path):
    model = build(make_opt(tmp_path, ema_decay=0.999))
    assert_state_equal(model.net_g_ema, cloned_state(model.net_g))


# ---------------------------------------------------------------------------------------- amp
def test_fp16_scaler_is_saved_in_the_training_state_and_restored(tmp_path):
    model = build(make_opt(tmp_path, amp='fp16'))
    assert isinstance(model.scaler, torch.amp.GradScaler) and model.scaler.is_enabled()
    before = cloned_state(model.net_g)
    train_step(model, 1)
    assert model.output.dtype == torch.float16  # the forward ran under fp16 autocast
    assert not torch.equal(model.net_g.state_dict()['head.0.weight'], before['head.0.weight'])  # a real step
    model.scaler.update(new_scale=1234.0)  # a state no fresh scaler has
    train_step(model, 2)  # a finite step: growth tracker counts it, the scale stays
    saved = model.scaler.state_dict()
    assert saved['scale'] == 1234.0 and saved['_growth_tracker'] >= 1
    model.save_training_state(epoch=0, current_iter=2)
    state = torch.load(tmp_path / 'training_states' / '2.state', weights_only=True)
    assert state['scaler'] == saved
    resumed = build(make_opt(tmp_path, amp='fp16'))
    assert resumed.scaler.state_dict() != saved
    resumed.resume_training(state)
    assert resumed.scaler.state_dict() == saved
    assert resumed.scaler.get_scale() == 1234.0


def test_bf16_has_no_scaler_and_saves_none(tmp_path):
    model = build(make_opt(tmp_path, amp='bf16'))
    assert model.scaler is None
    train_step(model, 1)
    assert model.output.dtype == torch.bfloat16
    model.save_training_state(epoch=0, current_iter=1)
    assert torch.load(tmp_path / 'training_states' / '1.state', weights_only=True)['scaler'] is None


@pytest.mark.parametrize('train_channels_last', [None, False, True])
def test_train_channels_last_decides_the_training_layout(tmp_path, train_channels_last):
    """``train.channels_last: false`` (the recipes' value) trains in NCHW; val.channels_last only affects test()."""
    opt = make_opt(tmp_path, channels_last=train_channels_last)
    opt['val'] = {'channels_last': True}
    model = build(opt)
    train_step(model, 1)
    layout = torch.channels_last if train_channels_last else torch.contiguous_format
    assert model.lq.is_contiguous(memory_format=layout)
    assert model.net_g.head[0].weight.is_contiguous(memory_format=layout)
    assert model.channels_last is bool(train_channels_last)


@pytest.mark.parametrize('round_lq', [True, False])
def test_lq_on_device_makes_the_lr_batch_from_the_hr_crops(tmp_path, round_lq):
    opt = make_opt(tmp_path, channels_last=True)
    opt['datasets'] = {'train': {'type': 'OnlineBicubicPairedDataset', 'scale': 2, 'lq_on_device': True,
                                 'round_lq': round_lq}}
    model = build(opt)
    gt = torch.rand(3, 3, 18, 14, generator=torch.Generator().manual_seed(1))
    model.feed_data({'gt': gt})
    # the reference: BasicSR's own MATLAB port, crop by crop, on the 8-bit grid when asked
    expected = []
    for crop in gt.permute(0, 2, 3, 1).double().numpy():
        image = np.round(crop * 255) if round_lq else crop * 255
        expected.append(torch.from_numpy(basicsr_imresize(image, 0.5)).permute(2, 0, 1))
    expected = torch.stack(expected)
    if round_lq:  # MATLAB rounds after each pass, the port (float) never: 0.5 x sum|taps| + 0.5 < 1.1 levels apart
        assert torch.equal(model.lq * 255, (model.lq * 255).round())
        assert (model.lq.double() * 255 - expected).abs().max() <= 1.1
    else:
        assert (model.lq.double() * 255 - expected).abs().max() <= 1e-4
    assert model.lq.is_contiguous(memory_format=torch.channels_last) and torch.equal(model.gt, gt)
    train_step(model, 1, {'gt': gt})  # the step runs on the LR made here
    assert model.output.shape == gt.shape


def test_lq_on_device_needs_the_online_dataset_and_a_batch_without_lq_needs_it(tmp_path):
    opt = make_opt(tmp_path)
    opt['datasets'] = {'train': {'type': 'PairedImageDataset', 'lq_on_device': True}}
    with pytest.raises(OptionError, match='datasets.train.lq_on_device needs type OnlineBicubicPairedDataset'):
        build(opt)
    model = build(make_opt(tmp_path))
    with pytest.raises(DatasetError, match='set lq_on_device: true in the train dataset'):
        model.feed_data({'gt': torch.rand(1, 3, 8, 8)})


# ---------------------------------------------------------------------------------------- gradient clipping
@pytest.mark.parametrize('amp, clip, weight', [(None, 0.5, 1e4), ('fp16', 1e-3, 1.0)])
def test_grad_clip_bounds_the_global_norm_and_keeps_the_direction(tmp_path, amp, clip, weight):
    model = build(make_opt(tmp_path, ema_decay=0, grad_clip=clip, amp=amp,
                           pixel_opt={'type': 'L1Loss', 'loss_weight': weight, 'reduction': 'mean'}))
    reference = copy.deepcopy(model.net_g)
    captured: List[torch.Tensor] = []

    def before_step(optimizer, args, kwargs):  # runs after clipping (and, for fp16, after unscaling)
        captured.extend(p.grad.clone() for g in optimizer.param_groups for p in g['params'])

    model.optimizer_g.register_step_pre_hook(before_step)
    data = batch(3)
    train_step(model, 1, data)
    assert captured, 'the optimizer did not step (fp16 overflow?)'
    # the unclipped gradient, by hand in fp32, on the network as it was before the step
    loss = weight * (reference(data['lq']) - data['gt']).abs().mean()
    loss.backward()
    by_id = {id(p): q for p, q in zip(model.net_g.parameters(), reference.parameters())}
    raw = [by_id[id(p)].grad for g in model.optimizer_g.param_groups for p in g['params']]
    raw_norm = torch.linalg.vector_norm(torch.cat([g.flatten() for g in raw]))
    assert raw_norm > 100 * clip  # clipping had work to do
    got = torch.cat([g.flatten() for g in captured])
    clipped_norm = torch.linalg.vector_norm(got)
    assert clipped_norm <= clip * (1 + 1e-5)
    assert clipped_norm == pytest.approx(clip, rel=1e-4)  # on unscaled gradients: not clip / loss scale
    expected = torch.cat([g.flatten() for g in raw]) * (clip / raw_norm)
    if amp is None:
        torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-7)
    else:  # fp16 gradients: the same direction
        assert torch.nn.functional.cosine_similarity(got, expected, dim=0) > 0.999


# ---------------------------------------------------------------------------------------- non-finite loss
def test_a_nan_loss_stops_naming_the_iteration_and_the_fixes(tmp_path):
    model = build(make_opt(tmp_path))
    data = batch(0)
    data['lq'][0, 1, 2, 3] = float('nan')
    before = cloned_state(model.net_g)
    model.update_learning_rate(1)
    model.feed_data(data)
    with pytest.raises(FloatingPointError) as err:
        model.optimize_parameters(137)
    message = str(err.value)
    assert 'iter 137' in message and 'nan' in message
    assert 'train.optim_g.lr' in message and 'train.grad_clip' in message
    assert_state_equal(model.net_g, before)  # no step was taken


# ---------------------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize('network', [{}, {'act_type': 'relu', 'hf_branch': True}], ids=['defaults', 'relu_hf'])
def test_save_network_writes_weights_and_config_that_load_model_rebuilds(tmp_path, network):
    model = build(make_opt(tmp_path, network=network, ema_decay=0.5))
    for k in (1, 2):
        train_step(model, k)
    model.save(epoch=0, current_iter=2)  # SRModel.save: save_network([net_g, net_g_ema]) and the state
    path = tmp_path / 'models' / 'net_g_2.pth'
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {'params', 'params_ema', 'rt4ksr_config'}
    expected_config = {'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 16, 'num_block': 1, 'upscale': 2,
                       'act_type': 'gelu', 'hf_branch': False, **network}
    assert raw['rt4ksr_config'] == expected_config
    for key, net in (('params', model.net_g), ('params_ema', model.net_g_ema)):
        assert set(raw[key]) == set(net.state_dict())
        assert all(torch.equal(raw[key][k], v) for k, v in net.state_dict().items()), key
    assert (tmp_path / 'training_states' / '2.state').is_file()
    assert not [p for p in (tmp_path / 'models').iterdir() if p.name != 'net_g_2.pth']  # no temporaries left

    loaded, weights = load_model(str(path))
    assert type(loaded) is RT4KSR and loaded.config == RT4KSRConfig(**expected_config)
    assert weights.key == 'params_ema' and weights.assumed == ()
    if network.get('act_type') == 'relu':
        assert isinstance(loaded.body[0].act, nn.ReLU) and loaded.hf_branch is True
    x = torch.rand(1, 3, 12, 10, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        out = loaded(x)
        torch.testing.assert_close(out, model.net_g_ema.eval()(x), rtol=0, atol=1e-6)
        assert not torch.allclose(out, model.net_g.eval()(x), atol=1e-4)  # the EMA, not params


def test_save_network_latest_tag_and_a_single_network(tmp_path):
    model = build(make_opt(tmp_path, ema_decay=0))
    model.save_network(model.net_g, 'net_g', -1)
    raw = torch.load(tmp_path / 'models' / 'net_g_latest.pth', weights_only=True)
    assert set(raw) == {'params', 'rt4ksr_config'}
    assert all(torch.equal(raw['params'][k], v) for k, v in model.net_g.state_dict().items())


# ---------------------------------------------------------------------------------------- load_network key
@pytest.fixture
def two_key_checkpoint(tmp_path):
    """A checkpoint whose params and params_ema are different random networks."""
    nets = {key: randomize_(RT4KSR(num_feat=16, num_block=1), seed) for seed, key in
            enumerate(('params', 'params_ema'), 1)}
    path = tmp_path / 'pretrained.pth'
    save_checkpoint(str(path), nets['params'].config, **{k: n.state_dict() for k, n in nets.items()})
    return str(path), {k: cloned_state(n) for k, n in nets.items()}


def test_load_network_prefers_params_ema_without_param_key_g(tmp_path, two_key_checkpoint):
    path, states = two_key_checkpoint
    assert not torch.equal(states['params']['head.0.weight'], states['params_ema']['head.0.weight'])
    model = build(make_opt(tmp_path, path={'pretrain_network_g': path}))
    assert_state_equal(model.net_g, states['params_ema'])
    assert_state_equal(model.net_g_ema, states['params_ema'])


def test_load_network_honours_param_key_g(tmp_path, two_key_checkpoint):
    path, states = two_key_checkpoint
    model = build(make_opt(tmp_path, path={'pretrain_network_g': path, 'param_key_g': 'params'}))
    assert_state_equal(model.net_g, states['params'])
    assert_state_equal(model.net_g_ema, states['params_ema'])  # BasicSR: the EMA always from params_ema


def test_resuming_loads_params_into_net_g(tmp_path, two_key_checkpoint):
    """A resumed run (BasicSR sets pretrain_network_g to the iteration's checkpoint) continues from params."""
    path, states = two_key_checkpoint
    model = build(make_opt(tmp_path, path={'pretrain_network_g': path, 'resume_state': str(tmp_path / '3.state')}))
    assert_state_equal(model.net_g, states['params'])
    assert_state_equal(model.net_g_ema, states['params_ema'])


def test_test_mode_fuses_the_ema_weights_and_test_matches_them(tmp_path, two_key_checkpoint):
    path, states = two_key_checkpoint
    opt = make_opt(tmp_path, path={'pretrain_network_g': path})
    opt['is_train'] = False
    opt['val'] = {'channels_last': True}
    model = build(opt)
    assert type(model.net_g) is RT4KSRDeploy and not hasattr(model, 'net_g_ema')
    reference = RT4KSR(num_feat=16, num_block=1)
    reference.load_state_dict(states['params_ema'])
    x = torch.rand(1, 3, 9, 12, generator=torch.Generator().manual_seed(4))
    model.feed_data({'lq': x})
    model.test()
    with torch.no_grad():
        torch.testing.assert_close(model.output, reference.eval()(x), rtol=0, atol=1e-5)


def test_a_file_without_config_is_read_as_network_g_states_and_an_omission_is_logged(tmp_path):
    from tests.test_tiling import basicsr_messages
    relu = randomize_(RT4KSR(num_feat=16, num_block=1, act_type='relu'), seed=5)
    path = str(tmp_path / 'relu_plain.pth')
    torch.save({'params': relu.state_dict()}, path)
    logging.getLogger('basicsr').setLevel(logging.INFO)
    with basicsr_messages() as messages:
        model = build(make_opt(tmp_path, network={'act_type': 'relu'}, path={'pretrain_network_g': path}))
    loaded = next(m for m in messages if m.startswith('Loaded RT4KSR'))
    assert 'relu' in loaded and 'assumed: act_type' not in loaded and 'assumed: hf_branch=False' in loaded
    assert any('set network_g.hf_branch' in m for m in messages)
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model.net_g.eval()(x), relu.eval()(x), atol=1e-6)
    save_checkpoint(str(tmp_path / 'relu_cfg.pth'), relu.config, params=relu.state_dict())
    with pytest.raises(CheckpointError, match="act_type is 'relu' in the file, 'gelu' was given"):
        build(make_opt(tmp_path, network={'act_type': 'gelu'},
                       path={'pretrain_network_g': str(tmp_path / 'relu_cfg.pth')}))
