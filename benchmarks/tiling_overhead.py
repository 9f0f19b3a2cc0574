"""Tile mode against whole-image inference: time and peak memory of one 1080p -> 4K x2 frame.

    python benchmarks/tiling_overhead.py [--tile 512] [--device cpu|cuda] [--runs 3] [--frame PNG]

Each mode runs in its own fresh process, so the peak memory it reports is its own (CPU: the
process's peak resident memory minus what it held before inference; CUDA: torch's peak
allocated). Both use the fused network in
channels_last, fp32. Prints ms per frame, peak MB, the time overhead of tiling and the max abs
difference between the two outputs (exact tiling: float noise only).
"""
import argparse
import json
import resource
import subprocess
import sys

import cv2
import torch

import rt4ksr_arch  # noqa: F401
from rt4ksr_arch.archs.rt4ksr_arch import RT4KSRDeploy
from rt4ksr_arch.inference import InferenceOptions, Upscaler
from rt4ksr_arch.timing import time_ms

DEFAULT_FRAME = '../shared/data/UHD_1080p/crops_1920x1080/lunch_crop1920x1080.png'


def child(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    net = RT4KSRDeploy(upscale=2)
    torch.manual_seed(0)
    for p in net.parameters():  # fixed, non-trivial weights (speed does not depend on them)
        p.data.normal_(0, 0.05)
    img = cv2.imread(args.frame)
    lq = (torch.from_numpy(img[:, :, ::-1].copy()).permute(2, 0, 1)[None].float() / 255 if img is not None
          else torch.rand(1, 3, 1080, 1920))
    upscaler = Upscaler(net, InferenceOptions(tile_size=args.tile if args.mode == 'tiled' else None), device)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # libraries, weights, input
    out = upscaler(lq.to(device))  # warm-up
    if device.type == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    ms = time_ms(lambda: upscaler(lq.to(device)), 0, args.runs, device)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == 'cuda'
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    torch.save(out.cpu(), args.save)
    if device.type == 'cpu':
        peak -= before  # what inference itself added to the process peak
    print(json.dumps({'ms': ms, 'peak_mb': peak, 'size': list(lq.shape)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--tile', type=int, default=512)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--frame', default=DEFAULT_FRAME, help='a 1920x1080 image (random if unreadable)')
    parser.add_argument('--mode', choices=['whole', 'tiled'], help=argparse.SUPPRESS)
    parser.add_argument('--save', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        return child(args)
    results = {}
    for mode in ('whole', 'tiled'):
        save = f'/tmp/tiling_overhead_{mode}.pt'
        done = subprocess.run([sys.executable, __file__, '--mode', mode, '--save', save, '--tile', str(args.tile),
                               '--device', args.device, '--runs', str(args.runs), '--frame', args.frame],
                              capture_output=True, text=True, check=True)
        results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    diff = (torch.load('/tmp/tiling_overhead_whole.pt') - torch.load('/tmp/tiling_overhead_tiled.pt')).abs().max()
    size = results['whole']['size']
    print(f'x2 {size[3]}x{size[2]} -> {size[3] * 2}x{size[2] * 2}, {args.device}, fp32 channels_last, '
          f'{torch.get_num_threads()} threads, mean of {args.runs}')
    for mode, label in (('whole', 'whole image'), ('tiled', f'tiles {args.tile} (pad 14)')):
        r = results[mode]
        print(f'{label:22s} {r["ms"]:9.1f} ms   peak {r["peak_mb"]:7.0f} MB')
    print(f'tiling time overhead: {results["tiled"]["ms"] / results["whole"]["ms"] - 1:+.1%}; '
          f'peak memory ratio tiled/whole: {results["tiled"]["peak_mb"] / results["whole"]["peak_mb"]:.2f}; '
          f'max abs diff {diff:.2e}')


if __name__ == '__main__':
    main()
