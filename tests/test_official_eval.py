"""Through test.py and BasicSR YAML: the released weights give the paper's numbers, in both forms."""
import re
from pathlib import Path
from typing import Dict

import cv2
import pytest
import yaml

from tests.helpers import REPO, SHARED, run_module, shared

# Set5 x2 is the float64 reference of ../shared/README.md (independent of this code). Every other
# figure is a regression pin: this repository's own measurement (README table), held to catch change.
EXPECTED = {
    2: {'Set5': {'psnr': 36.142, 'ssim': 0.9518, 'psnr_crop0': 36.099}, 'Set14': {'psnr': 32.089},
        'B100': {'psnr': 31.068}},
    3: {'Set5': {'psnr': 32.191}, 'Set14': {'psnr': 28.976}, 'B100': {'psnr': 28.168}},
}


def parse_metrics(log: str) -> Dict[str, Dict[str, float]]:
    """``{dataset: {metric: value}}`` from BasicSR's 'Validation <name>' / '# <metric>: <v>' lines."""
    results, current = {}, None
    for line in log.splitlines():
        header = re.search(r'Validation (\S+)\s*$', line)
        if header:
            current = results.setdefault(header.group(1), {})
        value = re.match(r'\s*# (\w+): ([-\d.]+)', line)
        if value and current is not None:
            current[value.group(1)] = float(value.group(2))
    return results


def write_options(tmp_path: Path, scale: int, arch: str, weights: str, save_img: bool = False) -> Path:
    """The shipped test YAML, pointed at ../shared and a temporary results folder."""
    shared('data', 'Set5')
    opt = yaml.safe_load((REPO / 'options' / 'test' / f'rt4ksr_x{scale}_official.yml').read_text())
    for dataset in opt['datasets'].values():
        for key in ('dataroot_gt', 'dataroot_lq'):
            dataset[key] = dataset[key].replace('datasets/', f'{SHARED}/data/', 1)
    opt['network_g']['type'] = arch
    opt['num_gpu'] = 0
    opt['path'].update(pretrain_network_g=weights, results_root=str(tmp_path / 'results'))
    opt['val']['save_img'] = save_img
    if scale == 2:
        opt['val']['metrics']['psnr_crop0'] = dict(type='calculate_psnr', crop_border=0, test_y_channel=True)
    path = tmp_path / f'x{scale}_{arch}.yml'
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def run_test(options: Path, *extra: str) -> Dict[str, Dict[str, float]]:
    done = run_module('rt4ksr_arch/test.py', '-opt', str(options), *extra)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return parse_metrics(done.stdout + done.stderr)


def assert_expected(results: Dict[str, Dict[str, float]], scale: int) -> None:
    for dataset, metrics in EXPECTED[scale].items():
        for metric, value in metrics.items():
            tolerance = 0.01 if metric.startswith('psnr') else 1e-4
            assert results[dataset][metric] == pytest.approx(value, abs=tolerance), (dataset, metric)


@pytest.mark.parametrize('scale', [2, 3])
def test_released_weights_train_form(tmp_path, scale):
    weights = str(shared('weights', 'rt4ksr_official', f'rt4ksr_x{scale}.pth'))
    assert_expected(run_test(write_options(tmp_path, scale, 'RT4KSR', weights)), scale)


def test_released_x3_weights_fused_on_load(tmp_path):
    weights = str(shared('weights', 'rt4ksr_official', 'rt4ksr_x3.pth'))
    # --local-rank=N is what torch.distributed.launch passes; basicsr alone rejects it
    assert_expected(run_test(write_options(tmp_path, 3, 'RT4KSRDeploy', weights), '--local-rank=0'), 3)


def test_converted_deploy_checkpoint_through_yaml_saves_images(tmp_path):
    fused = tmp_path / 'rt4ksr_x2_deploy.pth'
    done = run_module('-m', 'rt4ksr_arch', 'convert', str(shared('weights', 'rt4ksr_official', 'rt4ksr_x2.pth')),
                      str(fused), '--deploy')
    assert done.returncode == 0, done.stderr
    options = write_options(tmp_path, 2, 'RT4KSRDeploy', str(fused), save_img=True)
    opt = yaml.safe_load(options.read_text())
    del opt['val']['suffix']  # basicsr 1.4.2 raised KeyError without it
    options.write_text(yaml.safe_dump(opt, sort_keys=False))
    assert_expected(run_test(options), 2)
    # BasicSR names outputs by the LR file
    saved = tmp_path / 'results' / 'visualization' / 'Set5' / 'babyx2_RT4KSR_x2_official.png'
    hr = cv2.imread(str(SHARED / 'data' / 'Set5' / 'HR' / 'baby.png'))
    assert cv2.imread(str(saved)).shape == hr.shape
    assert len(list((tmp_path / 'results' / 'visualization' / 'B100').glob('*.png'))) == 100


def test_tiled_set14_equals_untiled_to_four_decimals(tmp_path):
    weights = str(shared('weights', 'rt4ksr_official', 'rt4ksr_x2.pth'))
    options = write_options(tmp_path, 2, 'RT4KSR', weights)
    opt = yaml.safe_load(options.read_text())
    opt['datasets'] = {'test_1': opt['datasets']['test_2']}  # Set14: the largest images, many tiles each
    options.write_text(yaml.safe_dump(opt, sort_keys=False))
    untiled = run_test(options)['Set14']
    opt['val']['tile'] = {'tile_size': 64}  # tile_pad: the network's receptive radius (14)
    options.write_text(yaml.safe_dump(opt, sort_keys=False))
    tiled = run_test(options)['Set14']
    assert untiled['psnr'] == pytest.approx(EXPECTED[2]['Set14']['psnr'], abs=0.01)
    assert {k: f'{v:.4f}' for k, v in tiled.items()} == {k: f'{v:.4f}' for k, v in untiled.items()}
