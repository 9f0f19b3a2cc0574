"""What ``rt4ksr adapt`` gains on content it was adapted to, and what it costs elsewhere.

    python benchmarks/adapt_gain.py [--photos ../shared/data/UHD_1080p/crops_1920x1080] [--iters 300] [--device cpu]

Adapts the released x2 weights to the six 1920x1080 photos (left halves train, right halves are
held out: ``--holdout 0.5``; the tool's default schedule otherwise) and prints, for the given and the
adapted weights: Y-PSNR (dB, crop 2) on the held-out right halves (what adapt measures), on the
480x540 centre crops of the right halves (issue 14's plain fine-tune protocol), and on Set14
(``LR_bicubic/X2`` files), with MATLAB bicubic of the same LR as a baseline, and the wall time.
"""
import argparse
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

import rt4ksr_arch  # noqa: F401  (basicsr compatibility fixes, registries)
from rt4ksr_arch import Upscaler, load_model
from rt4ksr_arch.adapt import AdaptOptions, adapt, y_psnr
from rt4ksr_arch.cli.adapt import read_frames
from rt4ksr_arch.evaluation import load_pair, to_tensor
from rt4ksr_arch.ops.bicubic import imresize
from rt4ksr_arch.ops.degradations import degrade, parse_degradation

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / 'shared'


def centre_crops(frames: List[np.ndarray]) -> List[torch.Tensor]:
    """480x540 centre crops of the right halves, [1, 3, H, W] float in [0, 1]."""
    crops = []
    for frame in frames:
        right = frame[:, frame.shape[1] // 2:]
        top, left = (right.shape[0] - 540) // 2, (right.shape[1] - 480) // 2
        crop = np.ascontiguousarray(right[top:top + 540, left:left + 480])
        crops.append(torch.from_numpy(crop).permute(2, 0, 1)[None])
    return crops


def scores(weights: str, pairs: Dict[str, List], device: str) -> Dict[str, float]:
    """Mean Y-PSNR per pair set of the network in ``weights`` (whole images, fp32)."""
    upscaler = Upscaler(load_model(weights)[0], device=device)
    return {name: float(np.mean([y_psnr(upscaler(lr).cpu(), hr, 2) for lr, hr in items]))
            for name, items in pairs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--photos', type=Path, default=SHARED / 'data' / 'UHD_1080p' / 'crops_1920x1080')
    parser.add_argument('--weights', default=str(SHARED / 'weights' / 'rt4ksr_official' / 'rt4ksr_x2.pth'))
    parser.add_argument('--set14', type=Path, default=SHARED / 'data' / 'Set14')
    parser.add_argument('--iters', type=int, default=AdaptOptions().iters)
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args()
    frames, _ = read_frames(str(args.photos))
    bicubic = parse_degradation('bicubic')
    crops = centre_crops(frames)
    pairs = {'centre crops of the right halves': [(degrade(c, 2, bicubic), c) for c in crops]}
    if args.set14.is_dir():
        set14 = [load_pair(p, args.set14 / 'LR_bicubic' / 'X2', 2) for p in sorted((args.set14 / 'HR').glob('*.png'))]
        pairs['Set14'] = [(lr, to_tensor(hr8).float() / 255) for hr8, lr in set14]
    with tempfile.TemporaryDirectory() as tmp:
        start, cpu = time.perf_counter(), time.process_time()
        result = adapt(frames, args.weights, f'{tmp}/adapted.pth', f'{tmp}/work',
                       AdaptOptions(iters=args.iters, holdout=0.5), torch.device(args.device), report=print)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        given, adapted = scores(args.weights, pairs, args.device), scores(f'{tmp}/adapted.pth', pairs, args.device)
    print(f'adapt: {wall:.0f} s wall, {cpu:.0f} s CPU (all threads, torch {torch.get_num_threads()}), '
          f'{result.iterations} iterations (stopped early: {result.stopped_early}), best at '
          f'{result.best_trained[0]}, adapted weights written: {result.adapted}')
    print(f'{"Y-PSNR (dB), crop 2":40s} {"bicubic":>8s} {"given":>8s} {"adapted":>8s} {"gain":>7s}')
    print(f'{"held-out right halves (adapt measures)":40s} {result.bicubic:8.3f} {result.before:8.3f} '
          f'{result.after:8.3f} {result.gain:+7.3f}')
    for name, items in pairs.items():
        base = float(np.mean([y_psnr(imresize(lr, 2.0).clamp(0, 1), hr, 2) for lr, hr in items]))
        print(f'{name:40s} {base:8.3f} {given[name]:8.3f} {adapted[name]:8.3f} {adapted[name] - given[name]:+7.3f}')


if __name__ == '__main__':
    main()
