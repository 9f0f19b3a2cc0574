"""safetensors in and out: `rt4ksr convert --format safetensors`, the config in the header, every loader reads it."""
import json
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from rt4ksr_arch import RT4KSR, CheckpointError, RT4KSRConfig, RT4KSRDeploy, load_model, load_rt4ksr_weights
from rt4ksr_arch.checkpoint import read_weights, save_checkpoint
from rt4ksr_arch.cli.main import main as rt4ksr
from rt4ksr_arch.config import CONFIG_KEY
from tests.helpers import randomize_, shared

X = torch.rand(1, 3, 11, 14, generator=torch.Generator().manual_seed(3))
TRAINED = RT4KSRConfig(num_feat=16, num_block=2, upscale=3, act_type='relu', hf_branch=True)


def run(capsys, *argv: str):
    """(exit status, stdout, stderr) of ``rt4ksr *argv`` in this process."""
    try:
        status = rt4ksr(list(argv))
    except SystemExit as stop:
        status = stop.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def output(net: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return net.eval()(X)


def header(path: Path) -> dict:
    """The safetensors JSON header, read by hand from its documented layout (u64 length + JSON)."""
    data = path.read_bytes()
    (length, ) = struct.unpack('<Q', data[:8])
    return json.loads(data[8:8 + length])


def with_header(source: Path, target: Path, edit) -> Path:
    """A copy of ``source`` whose JSON header is ``edit(header)`` (the tensor bytes unchanged)."""
    data = source.read_bytes()
    (length, ) = struct.unpack('<Q', data[:8])
    text = edit(data[8:8 + length].decode()).encode()
    target.write_bytes(struct.pack('<Q', len(text)) + text + data[8 + length:])
    return target


@pytest.fixture()
def trained(tmp_path) -> tuple:
    """A BasicSR checkpoint of a non-released config (x3, C=16, N=2, relu, hf branch on) and its network."""
    net = randomize_(RT4KSR.from_config(TRAINED), seed=4)
    save_checkpoint(str(tmp_path / 'trained.pth'), TRAINED, params=net.state_dict())
    return tmp_path / 'trained.pth', net


@pytest.mark.parametrize('deploy', [False, True], ids=['train', 'fused'])
def test_pth_to_safetensors_to_network_keeps_outputs_and_config(tmp_path, capsys, trained, deploy):
    source, reference = trained
    target = tmp_path / 'trained.safetensors'
    status, out, err = run(capsys, 'convert', str(source), str(target), '--format', 'safetensors',
                           *(['--deploy'] if deploy else []))
    assert status == 0, err
    assert f'wrote {target} (safetensors)' in out
    # read back by the safetensors library itself, not by our loader
    with safe_open(str(target), framework='pt') as f:
        assert json.loads(f.metadata()[CONFIG_KEY]) == TRAINED.to_dict()
    tensors = load_file(str(target))
    expected_keys = (RT4KSRDeploy if deploy else RT4KSR).from_config(TRAINED).state_dict().keys()
    assert set(tensors) == set(expected_keys) | {CONFIG_KEY}  # the config also as a tensor, for spandrel
    assert json.loads(bytes(tensors.pop(CONFIG_KEY).tolist())) == TRAINED.to_dict()
    if not deploy:
        assert all(torch.equal(tensors[k], v) for k, v in reference.state_dict().items())

    net, weights = load_model(str(target))
    assert weights.config == TRAINED and weights.assumed == ()
    assert isinstance(net, RT4KSRDeploy if deploy else RT4KSR)
    assert (output(net) - output(reference)).abs().max().item() <= 1e-5
    fused = RT4KSRDeploy.from_config(TRAINED)  # the YAML path (pretrain_network_g) reads it too
    load_rt4ksr_weights(fused, str(target))
    assert (output(fused) - output(reference)).abs().max().item() <= 1e-5


def test_released_weights_round_trip_and_the_format_follows_the_name(tmp_path, capsys):
    official = str(shared('weights', 'rt4ksr_official', 'rt4ksr_x2.pth'))
    target = tmp_path / 'rt4ksr_x2.safetensors'
    status, out, _ = run(capsys, 'convert', official, str(target))  # no --format: the suffix says it
    assert status == 0 and '(safetensors)' in out
    assert 'assumed' not in out  # the released file is known by its SHA-256: its network is not a guess
    reference, _ = load_model(official)
    net, weights = load_model(str(target))
    assert weights.config == RT4KSRConfig() and weights.assumed == ()  # the known config is now stored
    assert (output(net) - output(reference)).abs().max().item() <= 1e-6

    upscaled = tmp_path / 'up.png'  # a tool reading it: upscale with --weights W.safetensors
    cv2.imwrite(str(tmp_path / 'in.png'), np.full((6, 8, 3), 128, np.uint8))
    status, out, err = run(capsys, 'upscale', str(tmp_path / 'in.png'), str(upscaled), '--weights', str(target),
                           '--device', 'cpu')
    assert status == 0, err
    assert cv2.imread(str(upscaled)).shape == (12, 16, 3)


@pytest.mark.parametrize('fmt, name', [('safetensors', 'out.pth'), ('pth', 'out.safetensors')])
def test_a_format_that_contradicts_the_name_is_one_error(tmp_path, capsys, trained, fmt, name):
    status, _, err = run(capsys, 'convert', str(trained[0]), str(tmp_path / name), '--format', fmt)
    assert status == 2 and err.startswith('error: --format') and err.count('\n') == 1
    assert 'suffix' in err and not (tmp_path / name).exists()


def test_tampered_files_are_clear_errors(tmp_path, trained):
    good = tmp_path / 'good.safetensors'
    save_checkpoint(str(good), TRAINED, params=trained[1].state_dict())
    first = sorted(k for k in header(good) if k != '__metadata__')[0]
    shape = header(good)[first]['shape']
    bigger = json.dumps(shape[:-1] + [shape[-1] + 1]).replace(' ', '')
    config_text = json.dumps(header(good)['__metadata__'][CONFIG_KEY])[1:-1]  # as escaped inside the header
    cases = {
        'shape': (lambda h: h.replace(json.dumps(shape).replace(' ', ''), bigger, 1), 'damaged or was altered'),
        'dtype': (lambda h: h.replace('"F32"', '"F16"', 1), 'damaged or was altered'),
        'header json': (lambda h: '[' + h[1:], 'damaged or was altered'),
        'config json': (lambda h: h.replace(config_text, config_text[:-3]), 'metadata is not valid JSON'),
        'config contradicts tensors': (lambda h: h.replace('\\"num_block\\": 2', '\\"num_block\\": 3'),
                                       'metadata and its rt4ksr_config tensor hold different network configs'),
        'config invalid': (lambda h: h.replace('\\"relu\\"', '\\"swish\\"'),
                           'metadata and its rt4ksr_config tensor hold different network configs'),
    }
    for name, (edit, message) in cases.items():
        path = with_header(good, tmp_path / f'{name.replace(" ", "_")}.safetensors', edit)
        assert path.read_bytes() != good.read_bytes(), name
        with pytest.raises(CheckpointError, match=message):
            read_weights(str(path))
    truncated = tmp_path / 'truncated.safetensors'
    truncated.write_bytes(good.read_bytes()[:-64])
    with pytest.raises(CheckpointError, match='damaged or was altered'):
        read_weights(str(truncated))


def test_a_safetensors_file_holds_one_state_dict(tmp_path):
    sd = RT4KSR().state_dict()
    with pytest.raises(ValueError, match='one state dict'):
        save_checkpoint(str(tmp_path / 'x.safetensors'), RT4KSRConfig(), params=sd, params_ema=sd)
