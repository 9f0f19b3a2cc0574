"""Checkpoint formats, form conversion, mismatch and bad-file errors, and the convert CLI."""
import pytest
import torch

from rt4ksr_arch import RT4KSR, RT4KSRConfig, RT4KSRDeploy, CheckpointError, load_rt4ksr_weights, reparameterize
from rt4ksr_arch.config import CONFIG_KEY
from rt4ksr_arch.fileio import atomic_torch_save
from tests.helpers import randomize_, released_parameter_counts, run_module, shared

X = torch.rand(1, 3, 10, 14, generator=torch.Generator().manual_seed(0))


def output(net: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return net.eval()(X)


@pytest.fixture(scope='module')
def official_x2():
    return str(shared('weights', 'rt4ksr_official', 'rt4ksr_x2.pth'))


def test_every_format_loads_the_same_weights(tmp_path, official_x2):
    raw = torch.load(official_x2, map_location='cpu', weights_only=True)['state_dict']
    reference = RT4KSR()
    reference.load_state_dict({k[len('module.'):]: v for k, v in raw.items()})  # brute force: strip by hand
    expected = output(reference)
    bare = {k[len('module.'):]: v for k, v in raw.items()}
    files = {
        'basicsr_params': {'params': bare},
        'basicsr_ema_only': {'params_ema': bare},
        'bare': bare,
        'compiled_prefix': {'params': {'_orig_mod.' + k: v for k, v in bare.items()}},
    }
    for name, obj in files.items():
        torch.save(obj, tmp_path / f'{name}.pth')
    for path in [official_x2] + [str(tmp_path / f'{name}.pth') for name in files]:
        for cls in (RT4KSR, RT4KSRDeploy):
            net = cls()
            load_rt4ksr_weights(net, path)
            assert (output(net) - expected).abs().max().item() <= 1e-5, (path, cls.__name__)


def test_lightning_checkpoint_loads(tmp_path):
    path = str(shared('weights', 'lightning_repro', 'best.ckpt'))
    raw = torch.load(path, map_location='cpu', weights_only=True)['state_dict']
    reference = RT4KSR()
    reference.load_state_dict({k[len('model.'):]: v for k, v in raw.items()})
    net = RT4KSRDeploy()
    weights = load_rt4ksr_weights(net, path)
    assert weights.form == 'train' and weights.key == 'state_dict'
    assert (output(net) - output(reference)).abs().max().item() <= 1e-5


def test_param_key_is_honoured_and_ema_preferred_when_asked(tmp_path):
    a, b = randomize_(RT4KSR(), seed=1), randomize_(RT4KSR(), seed=2)
    torch.save({'params': a.state_dict(), 'params_ema': b.state_dict()}, tmp_path / 'both.pth')
    for key, ref in (('params', a), ('params_ema', b), (None, b)):  # by default the EMA (what training validated)
        net = RT4KSR()
        load_rt4ksr_weights(net, str(tmp_path / 'both.pth'), param_key=key)
        assert torch.equal(output(net), output(ref))


def test_deploy_weights_refuse_the_train_form(tmp_path):
    torch.save({'params': reparameterize(RT4KSR()).state_dict()}, tmp_path / 'fused.pth')
    load_rt4ksr_weights(RT4KSRDeploy(), str(tmp_path / 'fused.pth'))
    with pytest.raises(CheckpointError, match='fused .deploy-form. weights.*network_g.type: RT4KSRDeploy'):
        load_rt4ksr_weights(RT4KSR(), str(tmp_path / 'fused.pth'))


@pytest.mark.parametrize('net, message', [
    (RT4KSR(upscale=2), 'checkpoint upscale is x3, network_g.upscale is 2'),
    (RT4KSRDeploy(upscale=4), 'checkpoint upscale is x3, network_g.upscale is 4'),
    (RT4KSR(upscale=3, num_feat=32), 'checkpoint num_feat is 24, network_g.num_feat is 32'),
    (RT4KSR(upscale=3, num_block=6), 'checkpoint num_block is 4, network_g.num_block is 6'),
    (RT4KSR(upscale=3, act_type='prelu'), 'checkpoint act_type is gelu, network_g.act_type is prelu'),  # known file
])
def test_mismatch_names_the_option(net, message):
    with pytest.raises(CheckpointError, match=message):
        load_rt4ksr_weights(net, str(shared('weights', 'rt4ksr_official', 'rt4ksr_x3.pth')))


def test_prelu_asked_of_weights_without_slopes_names_the_option(tmp_path):
    torch.save({'params': RT4KSR().state_dict()}, tmp_path / 'plain.pth')  # no config, not a released file
    with pytest.raises(CheckpointError, match='has no PReLU weights, network_g.act_type is prelu'):
        load_rt4ksr_weights(RT4KSR(act_type='prelu'), str(tmp_path / 'plain.pth'))


def test_non_strict_load_starts_x3_from_x2_weights(official_x2):
    net = RT4KSR(upscale=3)
    before = net.upsample[0].weight.clone()
    weights = load_rt4ksr_weights(net, official_x2, strict=False)
    assert weights.skipped == ('upsample.0.bias', 'upsample.0.weight')
    assert "not loaded (shape differs): ['upsample.0.bias', 'upsample.0.weight']" in weights.describe()
    assert torch.equal(net.upsample[0].weight, before)
    reference = RT4KSR(upscale=2)
    load_rt4ksr_weights(reference, official_x2)
    assert torch.equal(net.body[2].conv1.fea_conv.weight, reference.body[2].conv1.fea_conv.weight)
    with pytest.raises(CheckpointError, match='num_feat is 24, network_g.num_feat is 16'):
        load_rt4ksr_weights(RT4KSR(upscale=3, num_feat=16), official_x2, strict=False)


def test_bad_files_give_clear_errors(tmp_path, official_x2):
    with pytest.raises(FileNotFoundError, match='checkpoint not found: .*missing.pth'):
        load_rt4ksr_weights(RT4KSR(), str(tmp_path / 'missing.pth'))
    data = open(official_x2, 'rb').read()
    (tmp_path / 'truncated.pth').write_bytes(data[:len(data) // 2])
    (tmp_path / 'text.pth').write_text('not a checkpoint')
    for name in ('truncated.pth', 'text.pth'):
        with pytest.raises(CheckpointError, match='truncated, corrupted or not a PyTorch checkpoint'):
            load_rt4ksr_weights(RT4KSR(), str(tmp_path / name))
    torch.save({'params': {'conv_first.weight': torch.zeros(64, 3, 3, 3)}}, tmp_path / 'edsr.pth')
    with pytest.raises(CheckpointError, match='not an RT4KSR checkpoint'):
        load_rt4ksr_weights(RT4KSR(), str(tmp_path / 'edsr.pth'))
    torch.save({'net': torch.nn.Conv2d(1, 1, 1)}, tmp_path / 'pickled_module.pth')
    with pytest.raises(CheckpointError, match='Python objects beyond tensors'):
        load_rt4ksr_weights(RT4KSR(), str(tmp_path / 'pickled_module.pth'))


def test_atomic_save_leaves_no_partial_file(tmp_path):
    target = tmp_path / 'ckpt.pth'
    atomic_torch_save({'params': {'w': torch.ones(2)}}, str(target))

    class Unsaveable:

        def __reduce__(self):
            raise RuntimeError('boom')

    with pytest.raises(RuntimeError, match='boom'):
        atomic_torch_save({'params': Unsaveable()}, str(target))
    assert torch.equal(torch.load(target, weights_only=True)['params']['w'], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ['ckpt.pth']


def test_convert_cli_round_trip(tmp_path, official_x2):
    train_params, fused_params = released_parameter_counts(official_x2)
    train_out, deploy_out = tmp_path / 'x2.pth', tmp_path / 'x2_deploy.pth'
    done = run_module('-m', 'rt4ksr_arch', 'convert', official_x2, str(train_out))
    assert done.returncode == 0, done.stderr
    assert 'RT4KSR x2' in done.stdout and f'{train_params:,} parameters' in done.stdout
    assert 'does not store' not in done.stdout  # a released file is known by its SHA-256, even passed by path
    done = run_module('-m', 'rt4ksr_arch', 'convert', str(train_out), str(deploy_out), '--deploy')
    assert done.returncode == 0 and f'{fused_params:,} parameters' in done.stdout, done.stderr
    assert 'does not store' not in done.stdout  # the converted file carries its config
    saved = torch.load(deploy_out, weights_only=True)
    assert set(saved) == {'params', CONFIG_KEY} and saved[CONFIG_KEY] == RT4KSRConfig().to_dict()
    reference = RT4KSR()
    load_rt4ksr_weights(reference, official_x2)
    fused = RT4KSRDeploy()
    fused.load_state_dict(saved['params'])
    assert (output(fused) - output(reference)).abs().max().item() <= 1e-5

    before = deploy_out.read_bytes()
    done = run_module('-m', 'rt4ksr_arch', 'convert', str(train_out), str(deploy_out), '--deploy')
    assert done.returncode == 2 and '--overwrite' in done.stderr and deploy_out.read_bytes() == before
    assert done.stderr.count('\n') == 1 and done.stderr.startswith('error: ')
    done = run_module('-m', 'rt4ksr_arch', 'convert', str(deploy_out), str(tmp_path / 'back.pth'))
    assert done.returncode == 2 and 'pass --deploy' in done.stderr and not (tmp_path / 'back.pth').exists()
