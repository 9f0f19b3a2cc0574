"""Training throughput with the LR made by the loader's CPU workers vs on the training device.

    python benchmarks/train_throughput.py [--device cuda] [--amp bf16] [--batch 64] [--gt-size 256] [--workers 8]
    python benchmarks/train_throughput.py --device cpu --batch 16 --gt-size 96 --workers 1 --iters 10   # a CPU

The x2 recipe's step (options/train/rt4ksr_x2.yml: RT4KSR C=24 N=4, batch 64 of 256x256 HR crops,
AdamW, EMA 0.999, L1) through ``RT4KSRModel`` (feed_data + optimize_parameters), fed by
``OnlineBicubicPairedDataset`` over an HR folder (BSDS200 by default; 481x321, like DF2K
sub-images; decoded images cached per worker, as ``cache_images: true``). Both modes run in the
same process, one after the other, on the same crops: ``cpu-lr`` (the workers make the LR, the
baseline) and ``device-lr`` (``lq_on_device: true``: the workers crop, the model resizes the batch
on ``--device``). Prints, per mode, iterations/s, samples/s, the fraction of the step time spent
waiting for the loader, and on CUDA the peak memory allocated (MB).
"""
import argparse
import time
from pathlib import Path
from typing import Any, Dict

import torch
from torch.utils.data import DataLoader, RandomSampler

import rt4ksr_arch  # noqa: F401  (registers the dataset and the model; basicsr compatibility fixes)
from basicsr.data import build_dataset
from basicsr.models import build_model

REPO = Path(__file__).resolve().parents[1]


def model_options(device: torch.device, amp: str, lq_on_device: bool, scale: int) -> Dict[str, Any]:
    """The x2 recipe's network, optimizer, EMA and loss; nothing written to disk."""
    return {
        'name': 'throughput', 'model_type': 'RT4KSRModel', 'scale': scale, 'is_train': True, 'dist': False,
        'rank': 0, 'world_size': 1, 'num_gpu': 1 if device.type == 'cuda' else 0,
        'datasets': {'train': {'type': 'OnlineBicubicPairedDataset', 'scale': scale, 'lq_on_device': lq_on_device}},
        'network_g': {'type': 'RT4KSR', 'num_feat': 24, 'num_block': 4, 'upscale': scale, 'act_type': 'gelu'},
        'path': {'strict_load_g': True, 'resume_state': None, 'experiments_root': '/nonexistent'},
        'train': {'ema_decay': 0.999,
                  'optim_g': {'type': 'AdamW', 'lr': 5e-4, 'weight_decay': 0, 'betas': [0.9, 0.999]},
                  'scheduler': {'type': 'StepLR', 'step_size': 48480, 'gamma': 0.5}, 'total_iter': 242400,
                  'warmup_iter': -1, 'amp': amp if amp != 'fp32' else None,
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}},
        'logger': {'print_freq': 100},
    }


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def measure(args: argparse.Namespace, device: torch.device, lq_on_device: bool) -> Dict[str, float]:
    """Run ``--warmup`` then ``--iters`` timed steps; iterations/s, samples/s, data-wait fraction, peak MB."""
    torch.manual_seed(0)  # the dataset's crops follow the torch seed: both modes see the same crops
    dataset = build_dataset({'name': 'hr', 'type': 'OnlineBicubicPairedDataset', 'dataroot_gt': str(args.hr),
                             'io_backend': {'type': 'disk'}, 'phase': 'train', 'scale': args.scale,
                             'gt_size': args.gt_size, 'use_hflip': True, 'use_rot': True, 'cache_images': True,
                             'lq_on_device': lq_on_device})
    steps = args.warmup + args.iters
    loader = DataLoader(dataset, batch_size=args.batch, num_workers=args.workers, drop_last=True,
                        pin_memory=device.type == 'cuda', persistent_workers=False,
                        sampler=RandomSampler(dataset, replacement=True, num_samples=steps * args.batch,
                                              generator=torch.Generator().manual_seed(0)))
    model = build_model(model_options(device, args.amp, lq_on_device, args.scale))
    batches = iter(loader)
    wait = 0.0
    for step in range(1, steps + 1):
        if step == args.warmup + 1:
            sync(device)
            if device.type == 'cuda':
                torch.cuda.reset_peak_memory_stats(device)
            wait, start = 0.0, time.perf_counter()
        before = time.perf_counter()
        data = next(batches)
        wait += time.perf_counter() - before
        model.feed_data(data)
        model.optimize_parameters(step)
    sync(device)
    total = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == 'cuda' else float('nan')
    return {'its': args.iters / total, 'samples': args.iters * args.batch / total, 'wait': wait / total, 'peak': peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--hr', type=Path, default=REPO.parent / 'shared' / 'data' / 'BSDS200' / 'HR',
                        help='folder of HR images, each at least --gt-size on both sides')
    parser.add_argument('--device', default='auto', help='auto (CUDA when available), cpu, cuda, cuda:N')
    parser.add_argument('--amp', default='fp32', choices=['fp32', 'bf16', 'fp16'])
    parser.add_argument('--scale', type=int, default=2)
    parser.add_argument('--batch', type=int, default=64)
    parser.add_argument('--gt-size', type=int, default=256)
    parser.add_argument('--workers', type=int, default=8)
    parser.add_argument('--warmup', type=int, default=5, help='untimed steps first (workers start, caches fill)')
    parser.add_argument('--iters', type=int, default=50, help='timed steps per mode')
    args = parser.parse_args()
    if not args.hr.is_dir():
        raise SystemExit(f'HR folder not found: {args.hr} (pass --hr <folder of HR images>)')
    device = torch.device('cuda' if args.device == 'auto' and torch.cuda.is_available() else
                          'cpu' if args.device == 'auto' else args.device)
    print(f'x{args.scale}, batch {args.batch} of {args.gt_size}x{args.gt_size} HR crops from {args.hr}, '
          f'{args.workers} worker{"s" * (args.workers != 1)}, {device}, {args.amp}, '
          f'torch threads {torch.get_num_threads()}, '
          f'{args.warmup} warm-up + {args.iters} timed steps per mode')
    rows = {mode: measure(args, device, mode == 'device-lr') for mode in ('cpu-lr', 'device-lr')}
    for mode, row in rows.items():
        memory = f', peak {row["peak"]:.0f} MB allocated' if device.type == 'cuda' else ''
        print(f'{mode:9s}: {row["its"]:7.2f} iterations/s, {row["samples"]:8.1f} samples/s, '
              f'data wait {row["wait"]:6.1%} of the step time{memory}')
    print(f'device-lr / cpu-lr: {rows["device-lr"]["its"] / rows["cpu-lr"]["its"]:.2f}x iterations/s')


if __name__ == '__main__':
    main()
