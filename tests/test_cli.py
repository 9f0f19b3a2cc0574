"""The CLI kit: every tool reads the network a checkpoint holds (config, EMA) and refuses bad flags alike."""
import json
import re
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from basicsr.metrics import calculate_psnr
from basicsr.utils import tensor2img
from rt4ksr_arch import RT4KSR, save_checkpoint
from rt4ksr_arch.cli.main import main as rt4ksr
from rt4ksr_arch.config import CONFIG_KEY
from rt4ksr_arch.ops.bicubic import imresize
from tests.helpers import REPO, assert_close_8bit, randomize_, run_module, shared


def run(capsys, *argv: str):
    """(exit status, stdout, stderr) of ``rt4ksr *argv`` run in this process."""
    try:
        status = rt4ksr(list(argv))
    except SystemExit as stop:  # argparse's own exits (--help, parse errors)
        status = stop.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def direct(net: torch.nn.Module, bgr: np.ndarray) -> np.ndarray:
    """``net`` on an 8-bit BGR image, as float BGR in [0, 255] (the reference for the CLIs)."""
    lq = torch.from_numpy(bgr[:, :, ::-1].copy()).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        out = net.eval()(lq)[0].clamp(0, 1)
    return out.permute(1, 2, 0).numpy()[:, :, ::-1] * 255


def photo(size=(26, 34), seed=0) -> np.ndarray:
    """A smooth 8-bit BGR test image (networks behave on smooth content like on photos)."""
    gen = np.random.default_rng(seed)
    return cv2.resize(gen.integers(0, 255, (5, 5, 3)).astype(np.float32), size[::-1],
                      interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize('config', [dict(act_type='relu', upscale=3), dict(hf_branch=True, num_feat=16)],
                         ids=['relu_x3', 'hf_branch'])
def test_trained_variants_come_out_of_upscale_evaluate_and_export_as_themselves(tmp_path, capsys, config):
    net = randomize_(RT4KSR(**config), seed=5)
    weights = tmp_path / 'net_g_latest.pth'
    save_checkpoint(str(weights), net.config, params=net.state_dict())
    as_released = RT4KSR(upscale=net.upscale, num_feat=net.num_feat)
    as_released.load_state_dict(net.state_dict())  # what every CLI ran before configs were stored
    image = photo()
    cv2.imwrite(str(tmp_path / 'a.png'), image)

    status, out, err = run(capsys, 'upscale', str(tmp_path / 'a.png'), str(tmp_path / 'out'), '--weights',
                           str(weights), '--device', 'cpu')
    assert status == 0, err
    assert 'does not store' not in out and net.config.describe() in out
    result = cv2.imread(str(tmp_path / 'out' / f'a_x{net.upscale}.png'))
    assert_close_8bit(result, direct(net, image))
    assert np.abs(result - direct(as_released, image)).mean() > 2  # the released network would differ

    hr = photo((24 * net.upscale, 30 * net.upscale), seed=1)
    (tmp_path / 'sets' / 'Mine' / 'HR').mkdir(parents=True)
    cv2.imwrite(str(tmp_path / 'sets' / 'Mine' / 'HR' / 'hr.png'), hr)
    status, out, err = run(capsys, 'evaluate', str(weights), '--data', str(tmp_path / 'sets'), '--sets', 'Mine',
                           '--out', str(tmp_path / 'eval'), '--device', 'cpu')
    assert status == 0, err
    lq = imresize(torch.from_numpy(hr[:, :, ::-1].copy()).permute(2, 0, 1)[None].float(), 1 / net.upscale,
                  round_uint8=True) / 255
    with torch.no_grad():
        expected = calculate_psnr(tensor2img(net.eval()(lq).clamp(0, 1)), hr, net.upscale, test_y_channel=True)
    table = (tmp_path / 'eval' / 'table.csv').read_text().splitlines()
    assert float(table[2].split(',')[1]) == pytest.approx(expected, abs=0.01)

    onnxruntime = pytest.importorskip('onnxruntime', reason='pip install -e ".[export]" for the ONNX check')
    status, out, err = run(capsys, 'export', str(weights), str(tmp_path / 'm.onnx'))
    assert status == 0, err
    session = onnxruntime.InferenceSession(str(tmp_path / 'm.onnx'), providers=['CPUExecutionProvider'])
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta[CONFIG_KEY]) == net.config.to_dict() and meta['scale'] == str(net.upscale)
    assert json.loads(meta['io'])['input'] == {'name': 'lq', 'layout': 'NCHW', 'channels': 'RGB', 'range': [0, 1],
                                               'dtype': 'float32'}
    assert session.get_outputs()[0].shape == ['batch', 3, f'height*{net.upscale}', f'width*{net.upscale}']
    x = torch.rand(1, 3, 40, 52, generator=torch.Generator().manual_seed(2))  # dynamic by default: any size
    with torch.no_grad():
        assert np.abs(session.run(None, {'lq': x.numpy()})[0] - net(x).clamp(0, 1).numpy()).max() <= 1e-4


def test_ema_weights_are_used_by_default_and_the_key_is_reported(tmp_path, capsys):
    raw, ema = randomize_(RT4KSR(), seed=1), randomize_(RT4KSR(), seed=2)
    weights = tmp_path / 'both.pth'
    save_checkpoint(str(weights), raw.config, params=raw.state_dict(), params_ema=ema.state_dict())
    image = photo()
    cv2.imwrite(str(tmp_path / 'a.png'), image)
    for extra, reference, key in (([], ema, '[params_ema]'), (['--param-key', 'params'], raw, '[params]')):
        status, out, err = run(capsys, 'upscale', str(tmp_path / 'a.png'), str(tmp_path / key / 'a.png'),
                               '--weights', str(weights), *extra)
        assert status == 0 and f'{weights} {key}' in out, err
        assert_close_8bit(cv2.imread(str(tmp_path / key / 'a.png')), direct(reference, image))


def test_a_file_without_config_gets_a_note_and_the_override_flags_work(tmp_path, capsys):
    relu = randomize_(RT4KSR(act_type='relu'), seed=6)
    torch.save({'params': relu.state_dict()}, tmp_path / 'old.pth')
    image = photo()
    cv2.imwrite(str(tmp_path / 'a.png'), image)
    status, out, _ = run(capsys, 'upscale', str(tmp_path / 'a.png'), str(tmp_path / 'guess.png'), '--weights',
                         str(tmp_path / 'old.pth'))
    assert status == 0 and 'does not store its network config; assumed act_type=gelu' in out
    assert '--act-type / --hf-branch' in out
    status, out, _ = run(capsys, 'upscale', str(tmp_path / 'a.png'), str(tmp_path / 'told.png'), '--weights',
                         str(tmp_path / 'old.pth'), '--act-type', 'relu')
    assert status == 0 and 'assumed act_type' not in out and 'assumed hf_branch=False' in out
    assert_close_8bit(cv2.imread(str(tmp_path / 'told.png')), direct(relu, image))
    save_checkpoint(str(tmp_path / 'new.pth'), relu.config, params=relu.state_dict())
    status, _, err = run(capsys, 'upscale', str(tmp_path / 'a.png'), str(tmp_path / 'x.png'), '--weights',
                         str(tmp_path / 'new.pth'), '--act-type', 'gelu')
    assert status == 2 and err.startswith('error: ') and "act_type is 'relu' in the file" in err
    assert not (tmp_path / 'x.png').exists()


BAD_FLAGS = [(['--tile', '0'], '--tile: must be >= 1'), (['--tile', 'big'], "--tile: expected an integer"),
             (['--tile-pad', '-1'], '--tile-pad: must be >= 0'), (['--device', 'gpu0'], '--device must be auto'),
             (['--batch', '0'], '--batch: must be >= 1'), (['--precision', 'fp8'], "--precision: invalid choice")]
if not torch.cuda.is_available():
    BAD_FLAGS.append((['--device', 'cuda'], 'no CUDA device is available here'))


TOOL_FLAGS = {'upscale': {'--tile', '--tile-pad', '--batch', '--device', '--precision'},
              'evaluate': {'--tile', '--tile-pad', '--device', '--precision'},
              'benchmark': {'--batch', '--device', '--precision'}}


@pytest.mark.parametrize('tool, flags, message', [(tool, flags, message) for tool, names in TOOL_FLAGS.items()
                                                  for flags, message in BAD_FLAGS if flags[0] in names],
                         ids=lambda v: ' '.join(v) if isinstance(v, list) else v if len(v) < 12 else None)
def test_bad_flags_give_one_error_line_and_status_2_in_every_tool(tmp_path, capsys, tool, flags, message):
    weights = tmp_path / 'w.pth'
    save_checkpoint(str(weights), RT4KSR().config, params=RT4KSR().state_dict())
    argv = {'upscale': ['upscale', str(tmp_path), str(tmp_path / 'out'), '--weights', str(weights)],
            'evaluate': ['evaluate', str(weights), '--data', str(tmp_path), '--out', str(tmp_path / 'out')],
            'benchmark': ['benchmark', '--input', '8x8', '--runs', '1']}[tool]
    status, out, err = run(capsys, *argv, *flags)
    assert status == 2 and err.startswith('error: ') and err.count('\n') == 1, (out, err)
    assert message in err
    assert not (tmp_path / 'out').exists()


def test_console_script_and_module_forms_run_the_same_tools(tmp_path):
    done = run_module('-m', 'rt4ksr_arch', '--help')
    assert done.returncode == 0
    for tool in ('upscale', 'evaluate', 'benchmark', 'export', 'convert', 'prepare'):
        assert tool in done.stdout
    done = run_module('-m', 'rt4ksr_arch', 'convert', str(tmp_path / 'missing.pth'), str(tmp_path / 'o.pth'))
    assert done.returncode == 2 and done.stderr == f'error: checkpoint not found: {tmp_path / "missing.pth"}; check ' \
        'the path, or use a released name (rt4ksr_x2, rt4ksr_x3: downloaded once and cached)\n'
    assert Path(done.args[0]).name.startswith('python')


def test_what_a_tool_cannot_honour_is_refused_before_any_work(tmp_path, capsys):
    """Each of these was accepted (or crashed) after the work in a new user's review."""
    net = randomize_(RT4KSR(), seed=3)
    weights = tmp_path / 'w.pth'
    save_checkpoint(str(weights), net.config, params=net.state_dict())
    torch.save({'params': net.state_dict()}, tmp_path / 'plain.pth')
    rgb_to_y = tmp_path / 'rgb2y.pth'
    save_checkpoint(str(rgb_to_y), RT4KSR(num_out_ch=1).config, params=RT4KSR(num_out_ch=1).state_dict())
    cv2.imwrite(str(tmp_path / 'a.png'), photo())
    (tmp_path / 'sets' / 'Mine' / 'HR').mkdir(parents=True)
    cv2.imwrite(str(tmp_path / 'sets' / 'Mine' / 'HR' / 'hr.png'), photo((24, 24)))
    a, out = str(tmp_path / 'a.png'), str(tmp_path / 'out')
    cases = [
        (['upscale', a, str(tmp_path / 'a.xyz'), '--weights', str(weights)], 'an image is written as one of'),
        (['upscale', a, out, '--weights', str(weights), '--tile-pad', '3'], '--tile-pad needs tile_size'),
        (['upscale', a, out, '--weights', str(weights), '--param-key', 'params_ema'],
         '--param-key params_ema: ' + str(weights) + ' holds no params_ema weights'),
        (['upscale', a, out, '--weights', str(weights), '--bogus'], 'unrecognized arguments: --bogus (see '),
        (['benchmark', '--weights', str(weights), '--scale', '3', '--input', '8x8'], 'holds x2 weights, but scale 3'),
        (['evaluate', str(weights), '--data', str(tmp_path / 'sets'), '--sets', 'Mine', '--out', out, '--figure',
          'Mine/hr_typo'], '--figure Mine/hr_typo: no image hr_typo'),
        (['evaluate', str(rgb_to_y), '--data', str(tmp_path / 'sets'), '--sets', 'Mine', '--out', out],
         'maps 3 to 1 channels'),
    ]
    for argv, message in cases:
        status, stdout, err = run(capsys, *argv)
        assert status == 2 and err.startswith('error: ') and err.count('\n') == 1 and message in err, (argv, err)
        assert 'Mine (' not in stdout and not Path(out).exists(), argv
    status, _, err = run(capsys, 'upscale', a, out, '--weights', str(weights), '--bogus')
    assert 'see rt4ksr upscale --help' in err or 'upscale --help' in err
    status, stdout, _ = run(capsys, 'upscale', a, out, '--weights', str(tmp_path / 'plain.pth'), '--hf-branch', 'off')
    assert status == 0 and 'assumed act_type=gelu' in stdout and 'hf_branch' not in stdout.split('note:')[1]


def test_the_benchmark_default_row_is_what_upscale_runs(tmp_path, capsys, monkeypatch):
    import rt4ksr_arch.backends as backends
    import rt4ksr_arch.cli.benchmark as benchmark_cli
    import rt4ksr_arch.inference as inference
    calls = {}

    def recording(tool, real):
        def prepare(net, device='auto', precision='fp32', channels_last=True, compile=False):
            calls[tool] = (inference.resolve_device(device).type, precision, channels_last, compile)
            return real(net, device, precision, channels_last, compile)
        return prepare

    monkeypatch.setattr(benchmark_cli, 'prepare_network', recording('benchmark', inference.prepare_network))
    for module in (inference, backends):  # every way upscale's runner is built
        monkeypatch.setattr(module, 'prepare_network', recording('upscale', inference.prepare_network))
    weights = tmp_path / 'w.pth'
    net = randomize_(RT4KSR())
    save_checkpoint(str(weights), net.config, params=net.state_dict())
    cv2.imwrite(str(tmp_path / 'a.png'), photo())
    status, _, err = run(capsys, 'benchmark', '--device', 'cpu', '--input', '16x16', '--warmup', '0', '--runs', '1')
    assert status == 0, err
    status, _, err = run(capsys, 'upscale', str(tmp_path / 'a.png'), str(tmp_path / 'out'), '--device', 'cpu',
                         '--weights', str(weights))
    assert status == 0, err
    assert calls['benchmark'] == calls['upscale'] == ('cpu', 'fp32', True, False)


def readme_commands(*prefixes: str) -> list:
    """The README's command lines that start with one of ``prefixes``, without comments and ``[optional]`` parts."""
    text = (REPO / 'README.md').read_text()
    lines = [re.sub(r'\[[^\]]*\]', '', line.split('#')[0]).split() for line in text.splitlines()
             if line.startswith(prefixes)]
    return [line[1:] for line in lines]


def test_the_readme_convert_and_export_examples_run_as_written_into_ignored_folders(tmp_path, capsys, monkeypatch):
    cache = tmp_path / 'cache'
    cache.mkdir()
    (cache / 'rt4ksr_x2.pth').symlink_to(shared('weights', 'rt4ksr_official', 'rt4ksr_x2.pth'))
    monkeypatch.setenv('RT4KSR_CACHE', str(cache))
    monkeypatch.chdir(tmp_path)
    commands = readme_commands('rt4ksr convert rt4ksr_x2 ', 'rt4ksr export rt4ksr_x2 ')
    assert len(commands) >= 4, commands
    for argv in commands:
        status, _, err = run(capsys, *argv)
        assert status == 0 and (tmp_path / argv[2]).is_file(), (argv, err)
        ignored = subprocess.run(['git', '-C', str(REPO), 'check-ignore', '-q', '--no-index', argv[2]])
        assert ignored.returncode == 0, f'{argv[2]} would land untracked in a checkout'
