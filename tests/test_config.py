"""RT4KSRConfig: validated, carried by every checkpoint the project writes, read back as the same network."""
import itertools

import pytest
import torch

from rt4ksr_arch import RT4KSR, RT4KSRConfig, RT4KSRDeploy, load_model, read_weights, save_checkpoint
from rt4ksr_arch.cli.main import main as rt4ksr
from rt4ksr_arch.config import ACTIVATIONS, CONFIG_KEY
from rt4ksr_arch.errors import CheckpointError, OptionError
from tests.helpers import randomize_


def configs():
    """Every value of every field at least once: act_type x upscale, the other fields cycled."""
    others = itertools.cycle([dict(num_feat=16, num_block=1, num_in_ch=3, num_out_ch=3, hf_branch=False),
                              dict(num_feat=20, num_block=2, num_in_ch=1, num_out_ch=1, hf_branch=True),
                              dict(num_feat=16, num_block=3, num_in_ch=3, num_out_ch=1, hf_branch=True)])
    return [RT4KSRConfig(act_type=act, upscale=scale, **other)
            for (act, scale), other in zip(itertools.product(ACTIVATIONS, (2, 3, 4)), others)]


def outputs(net: torch.nn.Module, config: RT4KSRConfig) -> torch.Tensor:
    x = torch.rand(2, config.num_in_ch, 13, 18, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return net.eval()(x)


@pytest.mark.parametrize('config', configs(), ids=lambda c: c.describe().replace(' ', ''))
def test_every_config_round_trips_through_training_and_convert_files(tmp_path, config):
    net = randomize_(RT4KSR.from_config(config), seed=3)
    expected = outputs(net, config)
    trained = tmp_path / 'net_g_1.pth'  # what RT4KSRModel.save_network writes
    save_checkpoint(str(trained), net.config, params=net.state_dict(), params_ema=net.state_dict())
    converted = tmp_path / 'deploy.pth'
    assert rt4ksr(['convert', str(trained), str(converted), '--deploy']) == 0
    for path, deploy in ((trained, False), (trained, True), (converted, True)):
        loaded, weights = load_model(str(path), deploy=deploy)
        assert weights.config == config and weights.assumed == ()
        assert isinstance(loaded, RT4KSRDeploy) == deploy
        assert (outputs(loaded, config) - expected).abs().max() <= 1e-5, (path.name, deploy)


def test_files_without_config_fall_back_to_the_released_network_and_say_so(tmp_path):
    relu = randomize_(RT4KSR(act_type='relu', upscale=3), seed=1)
    torch.save({'params': relu.state_dict()}, tmp_path / 'old.pth')
    weights = read_weights(str(tmp_path / 'old.pth'))
    assert weights.config.act_type == 'gelu' and weights.assumed == ('act_type', 'hf_branch')
    assert 'assumed: act_type=gelu, hf_branch=False' in weights.describe()
    stated, _ = load_model(str(tmp_path / 'old.pth'), overrides={'act_type': 'relu'})
    assert (outputs(stated, relu.config) - outputs(relu, relu.config)).abs().max() <= 1e-6
    guessed, _ = load_model(str(tmp_path / 'old.pth'))
    assert (outputs(guessed, relu.config) - outputs(relu, relu.config)).abs().max() > 1e-2  # GELU is not ReLU

    prelu = randomize_(RT4KSR(act_type='prelu'), seed=2)
    torch.save(prelu.state_dict(), tmp_path / 'prelu.pth')
    weights = read_weights(str(tmp_path / 'prelu.pth'))
    assert weights.config.act_type == 'prelu' and weights.assumed == ('hf_branch', )  # slopes are visible
    with pytest.raises(CheckpointError, match="act_type is 'prelu' in the weights, 'relu' was given"):
        read_weights(str(tmp_path / 'prelu.pth'), overrides={'act_type': 'relu'})
    with pytest.raises(CheckpointError, match='no PReLU slopes'):
        read_weights(str(tmp_path / 'old.pth'), overrides={'act_type': 'prelu'})


def test_a_stored_config_wins_and_contradictions_are_errors(tmp_path):
    net = randomize_(RT4KSR(act_type='lrelu', hf_branch=True), seed=4)
    save_checkpoint(str(tmp_path / 'ours.pth'), net.config, params=net.state_dict())
    with pytest.raises(CheckpointError, match="act_type is 'lrelu' in the file, 'relu' was given"):
        read_weights(str(tmp_path / 'ours.pth'), overrides={'act_type': 'relu'})
    assert read_weights(str(tmp_path / 'ours.pth'), overrides={'act_type': 'lrelu'}).config == net.config
    bad = torch.load(tmp_path / 'ours.pth', weights_only=True)
    bad[CONFIG_KEY]['num_feat'] = 32
    torch.save(bad, tmp_path / 'inconsistent.pth')
    with pytest.raises(CheckpointError, match='num_feat 24 .tensors. vs 32 .config.'):
        read_weights(str(tmp_path / 'inconsistent.pth'))
    bad[CONFIG_KEY] = {'num_feats': 24}
    torch.save(bad, tmp_path / 'typo.pth')
    with pytest.raises(CheckpointError, match="stored network config is invalid.*num_feats"):
        read_weights(str(tmp_path / 'typo.pth'))


@pytest.mark.parametrize('values, field', [
    ({'num_feat': 0}, 'num_feat'), ({'upscale': 2.0}, 'upscale'), ({'num_block': True}, 'num_block'),
    ({'act_type': 'swish'}, 'act_type'), ({'hf_branch': 'yes'}, 'hf_branch'), ({'num_feats': 24}, 'network config'),
])
def test_config_validation_names_the_field(values, field):
    with pytest.raises(OptionError) as caught:
        RT4KSRConfig.from_dict(values)
    assert caught.value.field == field and str(caught.value).startswith(field)
    assert RT4KSRConfig.from_dict({'type': 'RT4KSR', 'act_type': 'GELU'}).act_type == 'gelu'
