"""RT4KSR through spandrel: every checkpoint kind loads as an ImageModelDescriptor that matches our loader,
and spandrel's own detection still gives other architectures' state dicts to their architectures."""
import pytest
import torch

from rt4ksr_arch import RT4KSR, RT4KSRConfig, load_model, reparameterize, save_checkpoint
from tests.helpers import randomize_, shared

spandrel = pytest.importorskip('spandrel', reason='the [spandrel] extra is not installed')
from rt4ksr_arch.spandrel_support import ARCH_ID, RT4KSRArch, detect, install  # noqa: E402

X = torch.rand(1, 3, 13, 10, generator=torch.Generator().manual_seed(5))  # odd height: the network pads
CONFIGS = {
    'released': RT4KSRConfig(),
    'x3_wide_deep': RT4KSRConfig(upscale=3, num_feat=32, num_block=6),
    'x4_prelu': RT4KSRConfig(upscale=4, act_type='prelu', num_block=2),
    'gray_x2': RT4KSRConfig(num_in_ch=1, num_out_ch=1, num_feat=16),
}


@pytest.fixture(scope='module', autouse=True)
def installed():
    install(ignore_duplicates=True)


def same_output(descriptor, path: str) -> None:
    """The descriptor's output against our loader's network on the same file (clamped, as spandrel clamps)."""
    net, weights = load_model(path)
    x = X[:, :weights.config.num_in_ch]
    with torch.no_grad():
        expected = net(x).clamp(0, 1)
    got = descriptor(x)
    assert got.shape == expected.shape == (1, weights.config.num_out_ch, 13 * weights.config.upscale,
                                           10 * weights.config.upscale)
    assert (got - expected).abs().max().item() <= 1e-5


def check_descriptor(descriptor, config: RT4KSRConfig) -> None:
    assert isinstance(descriptor, spandrel.ImageModelDescriptor) and descriptor.architecture.id == ARCH_ID
    assert (descriptor.scale, descriptor.input_channels, descriptor.output_channels) == \
        (config.upscale, config.num_in_ch, config.num_out_ch)
    assert descriptor.purpose == 'SR' and descriptor.supports_half and descriptor.supports_bfloat16
    assert descriptor.size_requirements.none and descriptor.tiling == spandrel.ModelTiling.SUPPORTED
    assert f'{config.num_feat}nf' in descriptor.tags and f'{config.num_block}nb' in descriptor.tags


@pytest.mark.parametrize('name', CONFIGS)
def test_every_file_layout_loads_from_file_and_matches_our_loader(tmp_path, name):
    config = CONFIGS[name]
    net = randomize_(RT4KSR.from_config(config), seed=7)
    sd, fused = net.state_dict(), reparameterize(net).state_dict()
    files = {  # what each layout looks like on disk
        'authors.pth': {'state_dict': {f'module.{k}': v for k, v in sd.items()}},
        'lightning.ckpt': {'state_dict': {f'model.{k}': v for k, v in sd.items()}},
        'bare.pth': sd,
    }
    for file_name, content in files.items():
        torch.save(content, tmp_path / file_name)
    save_checkpoint(str(tmp_path / 'basicsr.pth'), config, params=sd, params_ema=sd)
    save_checkpoint(str(tmp_path / 'train.safetensors'), config, params=sd)
    save_checkpoint(str(tmp_path / 'fused.safetensors'), config, params=fused)
    for path in sorted(tmp_path.iterdir()):
        descriptor = spandrel.ModelLoader().load_from_file(path)
        check_descriptor(descriptor, config)
        same_output(descriptor, str(path))


@pytest.mark.parametrize('file', [('rt4ksr_official', 'rt4ksr_x2.pth'), ('rt4ksr_official', 'rt4ksr_x3.pth'),
                                  ('lightning_repro', 'best.ckpt')], ids=lambda f: f[1])
def test_released_and_lightning_files_load_as_comfyui_reads_them(file):
    path = str(shared('weights', *file))
    # ComfyUI reads with torch.load(weights_only=True) and hands spandrel the dict; spandrel's own
    # load_from_file refuses these files' scheduler state (collections.Counter), see the module docstring
    descriptor = spandrel.ModelLoader().load_from_state_dict(torch.load(path, map_location='cpu', weights_only=True))
    check_descriptor(descriptor, load_model(path)[1].config)
    assert 'assumed act_type=gelu, hf_branch=False' in descriptor.tags
    same_output(descriptor, path)


def test_our_safetensors_carry_their_config_through_spandrel_and_basicsr_files_are_flagged(tmp_path):
    config = RT4KSRConfig(act_type='relu', hf_branch=True, num_feat=16)
    net = randomize_(RT4KSR.from_config(config), seed=4).eval()
    save_checkpoint(str(tmp_path / 'relu.safetensors'), config, params=net.state_dict())
    descriptor = spandrel.ModelLoader().load_from_file(tmp_path / 'relu.safetensors')
    assert 'relu' in descriptor.tags and 'hf branch' in descriptor.tags
    assert not any('assumed' in tag for tag in descriptor.tags)
    x = torch.rand(1, 3, 18, 22, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (descriptor.model(x) - net(x)).abs().max() <= 1e-5
    # a BasicSR .pth keeps its config beside params, which spandrel's unwrapping drops: the tag says so
    save_checkpoint(str(tmp_path / 'relu.pth'), config, params=net.state_dict())
    descriptor = spandrel.ModelLoader().load_from_file(tmp_path / 'relu.pth')
    assert 'assumed act_type=gelu, hf_branch=False' in descriptor.tags


def test_fp16_is_supported_and_bf16_warns_with_the_measured_loss():
    descriptor = RT4KSRArch().load(RT4KSR().state_dict())
    with pytest.warns(UserWarning, match='about 0.4 dB'):
        descriptor.bfloat16()
    assert descriptor.dtype == torch.bfloat16
    descriptor.half()
    assert descriptor.dtype == torch.float16
    with pytest.warns(UserWarning, match='about 0.4 dB'):
        descriptor.to('cpu', torch.bfloat16)


def other_architectures():
    """Small state dicts of other spandrel architectures (some share key names with RT4KSR's)."""
    from spandrel.architectures.Compact import Compact
    from spandrel.architectures.ESRGAN import ESRGAN
    from spandrel.architectures.OmniSR import OmniSR
    from spandrel.architectures.RCAN import RCAN
    from spandrel.architectures.SPAN import SPAN
    from spandrel.architectures.SwinIR import SwinIR
    return {
        'SPAN': SPAN(num_in_ch=3, num_out_ch=3, feature_channels=24, upscale=2),  # re-parameterizable too
        'Compact': Compact(num_feat=24, num_conv=4, upscale=2),
        'ESRGAN': ESRGAN(num_filters=16, num_blocks=2, scale=2),
        'RCAN': RCAN(scale=2, n_resgroups=1, n_resblocks=2, n_feats=24),  # head.0.weight, like RT4KSR
        'SwinIR': SwinIR(embed_dim=24, depths=[2], num_heads=[2], window_size=8, upscale=2,
                         upsampler='pixelshuffle'),  # upsample.0.weight, like RT4KSR
        'OmniSR': OmniSR(num_feat=24, up_scale=2),
    }


@pytest.mark.filterwarnings('ignore:torch.meshgrid')  # SwinIR's, not ours
def test_other_architectures_are_not_claimed():
    for arch_id, model in other_architectures().items():
        state_dict = model.state_dict()
        assert not detect(state_dict), arch_id
        assert spandrel.ModelLoader().load_from_state_dict(state_dict).architecture.id == arch_id
    # near misses: RT4KSR's own keys with one tensor more, or one fewer
    sd = RT4KSR().state_dict()
    assert detect(sd)
    assert not detect({**sd, 'tail.0.weight': torch.zeros(3, 24, 3, 3)})
    assert not detect({k: v for k, v in sd.items() if k != 'upsample.0.bias'})
