"""train.py / test.py as runners: start-up checks before any folder is touched, one error line,
validation once per iteration, every output in the run's folder, nothing good archived by a failure."""
import math
import re
import shlex
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from tests.helpers import REPO, run_module
from tests.test_training import TRAIN, hr_dir, logged_steps, write_options  # noqa: F401  (hr_dir is a fixture)


def edit(options: Path, change) -> Path:
    raw = yaml.safe_load(options.read_text())
    change(raw)
    options.write_text(yaml.safe_dump(raw))
    return options


def with_validation(raw: dict, hr: Path, freq: int = 2) -> None:
    raw['datasets']['val'] = {'name': 'tiny_val', 'type': 'OnlineBicubicPairedDataset', 'phase': 'val',
                              'dataroot_gt': str(hr), 'io_backend': {'type': 'disk'}}
    raw['val'] = {'val_freq': freq, 'save_img': False,
                  'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 2, 'test_y_channel': True}}}


def test_validation_once_per_iteration_and_every_output_in_the_run_folder(tmp_path, hr_dir):  # noqa: F811
    name = f'tiny_{uuid.uuid4().hex[:8]}'

    def change(raw):
        with_validation(raw, hr_dir)
        raw['name'] = name
        raw['train']['total_iter'] = 4
        raw['logger']['use_tb_logger'] = True
        raw['path']['experiments_root'] = str(tmp_path / 'my runs')  # printed commands must quote it

    options = edit(write_options(tmp_path, hr_dir), change)
    done = run_module(TRAIN, '-opt', str(options))
    assert done.returncode == 0, done.stderr[-3000:]
    log = done.stdout + done.stderr
    assert len(re.findall(r'Validation tiny_val\s', log)) == 2  # iterations 2 and 4, not 4 twice
    best = re.findall(r'Best: [\d.]+ @ (\d+) iter', log)
    assert best and all(int(it) in (2, 4) for it in best)
    assert len(re.findall(r'Total epochs: \d+', log)) == 1
    experiment = tmp_path / 'my runs'
    assert any((experiment / 'tb_logger').iterdir()) and not (REPO / 'tb_logger' / name).exists()
    model = experiment / 'models' / 'net_g_latest.pth'
    assert f'Saved model: {model}' in done.stdout
    command = re.search(r'^Try it: (.*)$', done.stdout, re.M).group(1)
    assert shlex.split(command) == ['rt4ksr', 'upscale', 'your_image.png', 'results/', '--weights', str(model)]


CONTRADICTIONS = {
    'scale': (lambda raw: raw.update(scale=3), 'scale is 3 but network_g.upscale is 2'),
    'periods': (lambda raw: raw['train'].update(scheduler={'type': 'CosineAnnealingRestartLR', 'periods': [3]}),
                'train.scheduler.periods sum to 3, fewer than train.total_iter 8'),
    'restart_weights': (lambda raw: raw['train'].update(scheduler={'type': 'CosineAnnealingRestartLR',
                                                                   'periods': [4, 4], 'restart_weights': [1]}),
                        'restart_weights has 1 entries but periods has 2'),
    'prefetch_cuda': (lambda raw: raw['datasets']['train'].update(prefetch_mode='cuda'),
                      'prefetch_mode is cuda but this run has no GPU'),
    'color_y': (lambda raw: raw['datasets']['train'].update(color='y'),
                'color is y (1-channel images) but network_g.num_in_ch is 3'),
    'missing_data': (lambda raw: raw['datasets']['train'].update(dataroot_gt='/nonexistent/DF2K_HR'),
                     'datasets.train.dataroot_gt: /nonexistent/DF2K_HR does not exist; datasets/README.md'),
    'numbers_as_text': (lambda raw: raw['train']['optim_g'].update(lr='2e-4'),
                        "train.optim_g.lr: '2e-4' (write 0.0002)"),
    'more_gpus_than_there_are': (lambda raw: raw.update(num_gpu=torch.cuda.device_count() + 1),
                                 f'num_gpu is {torch.cuda.device_count() + 1} but this machine has'),
    'ema_decay': (lambda raw: raw['train'].update(ema_decay=1.5), 'train.ema_decay is 1.5'),
    'one_channel_net_colour_data': (lambda raw: raw['network_g'].update(num_in_ch=1, num_out_ch=1),
                                    'network_g.num_in_ch is 1 but datasets.train gives 3-channel images'),
    'dataset_scale': (lambda raw: raw['datasets']['train'].update(scale=3),
                      'datasets.train.scale is 3 but the top-level scale is 2'),
    'lq_on_device_text': (lambda raw: raw['datasets']['train'].update(lq_on_device='false'),
                          "datasets.train.lq_on_device must be true or false, got 'false'"),
    'lq_on_device_number': (lambda raw: raw['datasets']['train'].update(lq_on_device=1),
                            'datasets.train.lq_on_device must be true or false, got 1 (YAML writes a boolean as '
                            'true or false)'),
    'lq_on_device_jpeg': (lambda raw: raw['datasets']['train'].update(lq_on_device=True, jpeg_quality=90),
                          'datasets.train.lq_on_device cannot be combined with jpeg_quality'),
}


@pytest.mark.parametrize('kind', CONTRADICTIONS)
def test_contradicting_options_stop_before_the_experiment_folder_is_touched(tmp_path, hr_dir, kind):  # noqa: F811
    change, message = CONTRADICTIONS[kind]
    options = edit(write_options(tmp_path, hr_dir), change)
    experiment = tmp_path / 'experiments'
    experiment.mkdir()
    (experiment / 'earlier_run.txt').write_text('keep me')
    done = run_module(TRAIN, '-opt', str(options), timeout=120)
    assert done.returncode == 2 and message in done.stderr, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1].startswith('error: ') and 'Traceback' not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ['experiments', 'tiny.yml']  # nothing archived
    assert [p.name for p in experiment.iterdir()] == ['earlier_run.txt']


def options_for_test_py(tmp_path: Path, data: Path, weights: Path) -> Path:
    opt = {'name': 'tiny_test', 'model_type': 'RT4KSRModel', 'scale': 2, 'num_gpu': 0,
           'datasets': {'test_1': {'name': 'mine', 'type': 'OnlineBicubicPairedDataset', 'phase': 'val',
                                   'dataroot_gt': str(data), 'io_backend': {'type': 'disk'}}},
           'network_g': {'type': 'RT4KSR', 'upscale': 2},
           'path': {'pretrain_network_g': str(weights), 'results_root': str(tmp_path / 'results')},
           'val': {'save_img': False, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 2}}}}
    path = tmp_path / 'test.yml'
    path.write_text(yaml.safe_dump(opt))
    return path


def test_test_py_keeps_good_results_when_data_is_missing_or_the_run_fails(tmp_path):
    from rt4ksr_arch import RT4KSR, save_checkpoint
    data = tmp_path / 'hr'
    data.mkdir()
    cv2.imwrite(str(data / 'a.png'), np.full((16, 20, 3), 120, np.uint8))
    weights = tmp_path / 'w.pth'
    save_checkpoint(str(weights), RT4KSR().config, params=RT4KSR().state_dict())
    options = options_for_test_py(tmp_path, data, weights)
    assert run_module('rt4ksr_arch/test.py', '-opt', str(options)).returncode == 0
    results = tmp_path / 'results'
    good = sorted(p.name for p in results.iterdir())

    edit(options, lambda raw: raw['datasets']['test_1'].update(dataroot_gt=str(tmp_path / 'Set5' / 'HR')))
    done = run_module('rt4ksr_arch/test.py', '-opt', str(options))
    assert done.returncode == 2 and done.stderr.count('\n') == 1
    assert f'{tmp_path / "Set5" / "HR"} does not exist; datasets/README.md' in done.stderr
    edit(options, lambda raw: raw['datasets']['test_1'].update(dataroot_gt=str(data)))
    weights.write_bytes(weights.read_bytes()[:100])  # fails once the results folder was archived
    done = run_module('rt4ksr_arch/test.py', '-opt', str(options))
    assert done.returncode == 2 and 'truncated, corrupted' in done.stderr and 'previous results kept' in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ['hr', 'results', 'test.yml', 'w.pth']  # no _archived
    assert sorted(p.name for p in results.iterdir()) == good


def test_a_run_resumed_with_a_longer_schedule_follows_the_new_one(tmp_path, hr_dir):  # noqa: F811
    """basicsr restores the state's scheduler settings: resumed with total_iter and periods raised, the
    old schedule ran past its last period into a TypeError. The options' schedule is the one followed."""
    def options(total: int) -> Path:
        return write_options(tmp_path, hr_dir, total_iter=total, scheduler={
            'type': 'CosineAnnealingRestartLR', 'periods': [total], 'restart_weights': [1], 'eta_min': 0.0})

    done = run_module(TRAIN, '-opt', str(options(4)))
    assert done.returncode == 0, done.stderr[-2000:]
    done = run_module(TRAIN, '-opt', str(options(8)), '--auto_resume')
    assert done.returncode == 0, done.stderr[-3000:]
    log = done.stdout + done.stderr
    assert 'Resumed with the options\' scheduler settings (cumulative_period, periods' in log
    steps = logged_steps(log)
    assert sorted(steps) == [4, 5, 6, 7, 8]
    for it, (lrs, _) in steps.items():  # basicsr's cosine at last_epoch it - 1 over one period of 8
        assert lrs[0] == pytest.approx(0.5e-2 * (1 + math.cos(math.pi * (it - 1) / 8)), rel=1e-3), it
