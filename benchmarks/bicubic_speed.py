"""Speed of rt4ksr_arch.ops.bicubic.imresize against basicsr's MATLAB port, measured in the same run.

    python benchmarks/bicubic_speed.py [--size 256] [--batch 64] [--repeats 50]

Per patch: one RGB ``size``x``size`` patch, single-threaded, downscaled x2/x3/x4 by basicsr's
``matlab_functions.imresize`` (float64 HWC, its usual input) and by ours (float32 and uint8
[C,H,W]); prints milliseconds and the ratio. Batched: ``batch`` patches at once, patches/s on the
CPU (all threads) and on CUDA when available.
"""
import argparse

import numpy as np
import torch

import rt4ksr_arch  # noqa: F401  (basicsr compatibility fixes)
from basicsr.utils.matlab_functions import imresize as basicsr_imresize
from rt4ksr_arch.timing import time_ms
from rt4ksr_arch.ops.bicubic import imresize

CPU = torch.device('cpu')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--batch', type=int, default=64)
    parser.add_argument('--repeats', type=int, default=50)
    args = parser.parse_args()

    patch = torch.rand(3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    patch_u8 = (patch * 255).round().to(torch.uint8)
    patch_np = patch.permute(1, 2, 0).numpy().astype(np.float64)
    threads = torch.get_num_threads()

    torch.set_num_threads(1)
    print(f'per {args.size}x{args.size} RGB patch, 1 thread, torch {torch.__version__}')
    print(f'{"scale":>5} {"basicsr ms":>11} {"ours f32 ms":>12} {"ratio":>7} {"ours u8 ms":>11} {"ratio":>7}')
    for scale in (2, 3, 4):
        base = time_ms(lambda: basicsr_imresize(patch_np, 1 / scale), 1, max(3, args.repeats // 5), CPU) / 1000
        ours = time_ms(lambda: imresize(patch, 1 / scale), 1, args.repeats, CPU) / 1000
        ours_u8 = time_ms(lambda: imresize(patch_u8, 1 / scale), 1, args.repeats, CPU) / 1000
        print(f'{scale:>5} {base * 1e3:>11.3f} {ours * 1e3:>12.3f} {base / ours:>6.1f}x '
              f'{ours_u8 * 1e3:>11.3f} {base / ours_u8:>6.1f}x')
    torch.set_num_threads(threads)

    batch = torch.rand(args.batch, 3, args.size, args.size)
    devices = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
    for device in devices:
        x = batch.to(device)
        name = torch.cuda.get_device_name() if device == 'cuda' else f'cpu ({threads} threads)'
        for scale in (2, 3, 4):
            for label, fn in (('float', lambda: imresize(x, 1 / scale)),
                              ('8-bit', lambda: imresize(x * 255, 1 / scale, round_uint8=True))):
                sec = time_ms(fn, 1, max(3, args.repeats // 10), torch.device(device)) / 1000
                print(f'batch {args.batch} on {name}, x{scale} {label}: {args.batch / sec:,.0f} patches/s')


if __name__ == '__main__':
    main()
