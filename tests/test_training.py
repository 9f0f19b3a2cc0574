"""train.py end to end on the CPU: LR schedule, exact resume, SIGKILL + --auto_resume, 2-process DDP."""
import csv
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

import cv2
import numpy as np
import pytest
import torch
import yaml

from rt4ksr_arch import RT4KSRConfig
from rt4ksr_arch.config import CONFIG_KEY
from tests.helpers import REPO, run_module

TRAIN = 'rt4ksr_arch/train.py'
LOG_LINE = re.compile(r'\[epoch:\s*(\d+), iter:\s*([\d,]+), lr:\(([^)]*)\)\].*l_pix: (\S+)')


@pytest.fixture(scope='module')
def hr_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp('hr')
    gen = np.random.default_rng(0)
    for i in range(3):
        smooth = cv2.resize(gen.integers(0, 256, (8, 8, 3), dtype=np.uint8), (40, 36), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f'img{i}.png'), smooth)
    return folder


def write_options(tmp_path: Path, hr_dir: Path, data: Dict = None, **train) -> Path:
    """A tiny RT4KSR run (C=16, one block, 16x16 HR crops) writing under ``tmp_path/experiments``;
    ``data`` adds train dataset options."""
    opt = {
        'name': 'tiny', 'model_type': 'RT4KSRModel', 'scale': 2, 'num_gpu': 0, 'manual_seed': 5,
        'datasets': {'train': {
            'name': 'tiny', 'type': 'OnlineBicubicPairedDataset', 'dataroot_gt': str(hr_dir),
            'io_backend': {'type': 'disk'}, 'gt_size': 16, 'use_hflip': True, 'use_rot': True,
            'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2, 'dataset_enlarge_ratio': 2, 'prefetch_mode': None,
            **(data or {})}},
        'network_g': {'type': 'RT4KSR', 'num_feat': 16, 'num_block': 1, 'upscale': 2},
        'path': {'experiments_root': str(tmp_path / 'experiments'), 'strict_load_g': True, 'resume_state': None},
        'train': {'ema_decay': 0.9,
                  'optim_g': {'type': 'AdamW', 'lr': 1e-2, 'weight_decay': 1e-4, 'betas': [0.9, 0.99]},
                  'scheduler': {'type': 'StepLR', 'step_size': 3, 'gamma': 0.5}, 'total_iter': 8, 'warmup_iter': -1,
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 3, 'use_tb_logger': False, 'wandb': {'project': None}},
    }
    opt['train'].update(train)
    path = tmp_path / 'tiny.yml'
    path.write_text(yaml.safe_dump(opt))
    return path


def with_validation(options: Path, hr_dir: Path, val: Dict, **logger) -> None:
    """Add a validation set (``hr_dir`` itself) every 2 iterations with PSNR and the bicubic line to
    ``options``, with ``val`` added to its ``val`` options and ``logger`` to its ``logger`` options."""
    raw = yaml.safe_load(options.read_text())
    raw['datasets']['val'] = {'name': 'tiny_val', 'type': 'OnlineBicubicPairedDataset', 'phase': 'val',
                              'dataroot_gt': str(hr_dir), 'io_backend': {'type': 'disk'}}
    raw['val'] = {'val_freq': 2, 'save_img': False, 'bicubic_baseline': True,
                  'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 2, 'test_y_channel': True}}, **val}
    raw['logger'].update(logger)
    options.write_text(yaml.safe_dump(raw))


def train(options: Path, *extra: str) -> str:
    proc = run_module(TRAIN, '-opt', str(options), *extra)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def logged_steps(log: str) -> Dict[int, Tuple[List[float], str]]:
    """{iter: (learning rates, l_pix text)} from BasicSR's training log lines."""
    steps = {}
    for match in LOG_LINE.finditer(log):
        lrs = [float(v) for v in match.group(3).split(',') if v.strip()]
        steps[int(match.group(2).replace(',', ''))] = (lrs, match.group(4))
    return steps


def test_adamw_steplr_logs_the_scheduled_lr_with_warmup_reaching_the_peak(tmp_path, hr_dir):
    options = write_options(tmp_path, hr_dir, warmup_iter=4)
    log = train(options)
    steps = logged_steps(log)
    assert sorted(steps) == list(range(1, 9))
    for it, (lrs, _) in steps.items():
        scheduled = 1e-2 * 0.5**((it - 1) // 3)  # StepLR stepped once per iteration after the first
        expected = scheduled * it / 4 if it < 4 else scheduled
        assert lrs == pytest.approx([expected] * len(lrs), rel=1e-3), it
    experiment = tmp_path / 'experiments'
    assert sorted(p.name for p in (experiment / 'training_states').iterdir()) == ['3.state', '6.state']
    ckpt = torch.load(experiment / 'models' / 'net_g_latest.pth', weights_only=True)
    assert set(ckpt) == {'params', 'params_ema', CONFIG_KEY}
    network_g = yaml.safe_load(options.read_text())['network_g']
    assert RT4KSRConfig.from_dict(ckpt[CONFIG_KEY]) == RT4KSRConfig.from_dict(network_g)
    assert not any(k.startswith(('module.', '_orig_mod.')) for k in ckpt['params'])
    assert not torch.equal(ckpt['params']['head.0.weight'], ckpt['params_ema']['head.0.weight'])
    state = torch.load(experiment / 'training_states' / '6.state', weights_only=True)
    groups = state['optimizers'][0]['param_groups']
    assert [g['weight_decay'] for g in groups] == [1e-4, 0.0]  # no decay on norms and biases


@pytest.mark.parametrize('lq_on_device,workers', [(False, 0), (False, 1), (True, 1)])
def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path, hr_dir, lq_on_device, workers):
    full_dir, part_dir = tmp_path / 'full', tmp_path / 'part'
    full_dir.mkdir()
    part_dir.mkdir()
    # with loader workers, basicsr's prefetcher draws indices from the sampler before the epoch is set
    data = {'lq_on_device': lq_on_device, 'num_worker_per_gpu': workers}
    full_log = train(write_options(full_dir, hr_dir, data, total_iter=7, linear_start=4))
    full = logged_steps(full_log)
    assert ('LR made on cpu (lq_on_device)' in full_log) is lq_on_device
    # the same run stopped after 4 iterations (last state: 3, in the middle of the linear start's fit on
    # iterations 1-4), then resumed to 7: it finishes the fit with the sums it saved, then steps
    train(write_options(part_dir, hr_dir, data, total_iter=4, linear_start=4))
    resumed_log = train(write_options(part_dir, hr_dir, data, total_iter=7, linear_start=4), '--auto_resume')
    assert 'Resuming training from epoch' in resumed_log and 'iter: 3' in resumed_log
    assert 'first 4 batches' in full_log and 'first 4 batches' in resumed_log
    assert "train.total_iter 7 ends before the linear start's warmup (504)" in full_log
    resumed = logged_steps(resumed_log)
    assert sorted(resumed) == [4, 5, 6, 7]
    for it in resumed:
        assert resumed[it] == full[it], it
    a = torch.load(full_dir / 'experiments' / 'models' / 'net_g_latest.pth', weights_only=True)
    b = torch.load(part_dir / 'experiments' / 'models' / 'net_g_latest.pth', weights_only=True)
    for key in ('params', 'params_ema'):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key


def test_sigkill_leaves_complete_checkpoints_and_auto_resume_continues(tmp_path, hr_dir):
    options = write_options(tmp_path, hr_dir, total_iter=100000, scheduler={'type': 'StepLR', 'step_size': 1000})
    raw = yaml.safe_load(options.read_text())
    raw['logger']['save_checkpoint_freq'] = 2
    options.write_text(yaml.safe_dump(raw))
    states = tmp_path / 'experiments' / 'training_states'
    proc = subprocess.Popen([sys.executable, TRAIN, '-opt', str(options)], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while len(list(states.glob('*.state'))) < 3 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, 'training stopped by itself'
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    saved = sorted(int(p.stem) for p in states.glob('*.state'))
    assert len(saved) >= 3
    for path in list(states.glob('*.state')) + list((tmp_path / 'experiments' / 'models').glob('*.pth')):
        torch.load(path, weights_only=True)  # every file that has its final name is complete
    last = saved[-1]
    raw['train']['total_iter'] = last + 3
    options.write_text(yaml.safe_dump(raw))
    log = train(options, '--auto_resume')
    assert f'iter: {last}' in log and 'Resuming training' in log
    assert sorted(logged_steps(log)) == list(range(last + 1, last + 4))
    assert (tmp_path / 'experiments' / 'models' / 'net_g_latest.pth').is_file()
    assert not list(tmp_path.glob('experiments_archived_*'))  # resuming never archives the experiment


def test_a_new_run_archives_the_previous_experiment(tmp_path, hr_dir):
    options = write_options(tmp_path, hr_dir, total_iter=2)
    train(options)
    first = (tmp_path / 'experiments' / 'models' / 'net_g_latest.pth').read_bytes()
    train(options)
    archived = list(tmp_path.glob('experiments_archived_*'))
    assert len(archived) == 1 and (archived[0] / 'models' / 'net_g_latest.pth').read_bytes() == first


def free_port() -> str:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return str(sock.getsockname()[1])


@pytest.mark.parametrize('launcher', ['torchrun', 'torch.distributed.launch'])
def test_two_process_cpu_ddp(tmp_path, hr_dir, launcher):
    options = write_options(tmp_path, hr_dir, total_iter=4, linear_start=2)  # all-reduced fit
    module = 'torch.distributed.run' if launcher == 'torchrun' else 'torch.distributed.launch'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, '-m', module, '--nproc_per_node=2', f'--master_port={free_port()}', TRAIN,
                           '-opt', str(options), '--launcher', 'pytorch'], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env=env)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    text = (next((tmp_path / 'experiments').glob('train_tiny_*.log'))).read_text()
    assert 'world_size: 2' in text
    assert sorted(logged_steps(text)) == [1, 2, 3, 4]  # every iteration, though 3 samples per rank make 1 batch
    assert (tmp_path / 'experiments' / 'models' / 'net_g_latest.pth').is_file()


def test_a_batch_larger_than_the_data_is_refused_with_the_fix(tmp_path, hr_dir):
    options = write_options(tmp_path, hr_dir)
    raw = yaml.safe_load(options.read_text())
    raw['datasets']['train'].update(batch_size_per_gpu=4, dataset_enlarge_ratio=1)  # 3 images
    options.write_text(yaml.safe_dump(raw))
    proc = run_module(TRAIN, '-opt', str(options))
    assert proc.returncode != 0
    assert 'no full batch per process' in proc.stderr and 'dataset_enlarge_ratio' in proc.stderr


def test_training_validation_with_tiles_equals_untiled(tmp_path, hr_dir):
    psnr = {}
    for tiled in (False, True):
        folder = tmp_path / str(tiled)
        folder.mkdir()
        options = write_options(folder, hr_dir, total_iter=2)
        # 20x18 LR images: 9 tiles each
        with_validation(options, hr_dir, {'tile': {'tile_size': 8, 'tile_batch': 2}} if tiled else {})
        log = train(options)
        psnr[tiled] = re.findall(r'Validation tiny_val\s+# psnr: ([\d.]+)', log)
    assert psnr[False] and len(psnr[True]) == len(psnr[False])
    for tiled, whole in zip(psnr[True], psnr[False]):  # the same computation cut in tiles: float noise only
        assert float(tiled) == pytest.approx(float(whole), abs=2e-4)


def test_learning_curves_follow_the_log_and_survive_a_resume(tmp_path, hr_dir):
    options = write_options(tmp_path, hr_dir, total_iter=2)
    with_validation(options, hr_dir, {}, save_checkpoint_freq=2)
    logs = [train(options)]
    figure = cv2.imread(str(tmp_path / 'experiments' / 'curves.png'))  # after the first validation
    assert figure is not None and figure.shape[0] > 200 and figure.shape[1] > 400
    raw = yaml.safe_load(options.read_text())
    raw['train']['total_iter'] = 4  # resumed from the state of iteration 2, saved before its validation
    options.write_text(yaml.safe_dump(raw))
    logs.append(train(options, '--auto_resume'))
    log = '\n'.join(logs)
    rows = list(csv.DictReader((tmp_path / 'experiments' / 'curves.csv').read_text().splitlines()))
    val = {int(r['iteration']): float(r['value']) for r in rows if r['series'] == 'val'}
    logged = [float(v) for v in re.findall(r'Validation tiny_val\s+# psnr: ([\d.]+)', log)]
    assert sorted(val) == [2, 4] and len(logged) == 2
    assert [val[2], val[4]] == pytest.approx(logged, abs=5e-5)  # the log prints 4 decimals
    (bicubic, ) = [float(r['value']) for r in rows if r['series'] == 'bicubic']
    assert bicubic == pytest.approx(float(re.search(r'bicubic baseline[^\n]*\n\s+# psnr: ([\d.]+)', log).group(1)),
                                    abs=5e-5)
    losses = {int(r['iteration']): float(r['value']) for r in rows if r['series'] == 'train'}
    steps = {**logged_steps(logs[0]), **logged_steps(logs[1])}
    assert sorted(losses) == [1, 2, 3, 4]  # print_freq 1: each point is one iteration's logged l_pix
    assert all(losses[it] == pytest.approx(float(steps[it][1]), rel=1e-3) for it in losses)
