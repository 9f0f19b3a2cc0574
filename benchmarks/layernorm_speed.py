"""LayerNorm2d over channels: the NCHW formula against one native layer_norm on NHWC memory.

    python benchmarks/layernorm_speed.py [--height 540] [--width 960] [--repeats 10]

RT4KSR normalises 24 channels at half the LR resolution (540x960 for a 1080p input) five
times per frame. Prints milliseconds per call of each way, measured in the same run, and the ratio.
"""
import argparse

import torch

import rt4ksr_arch  # noqa: F401
from rt4ksr_arch.archs.rt4ksr_arch import LayerNorm2d
from rt4ksr_arch.timing import time_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--height', type=int, default=540)
    parser.add_argument('--width', type=int, default=960)
    parser.add_argument('--channels', type=int, default=24)
    parser.add_argument('--repeats', type=int, default=10)
    args = parser.parse_args()
    norm = LayerNorm2d(args.channels)
    x = torch.randn(1, args.channels, args.height, args.width)
    with torch.inference_mode():
        formula = time_ms(lambda: norm(x), 1, args.repeats, x.device)
        native = time_ms(lambda: norm(x.contiguous(memory_format=torch.channels_last)), 1, args.repeats, x.device)
        nhwc = x.contiguous(memory_format=torch.channels_last)
        native_only = time_ms(lambda: norm(nhwc), 1, args.repeats, x.device)
    print(f'{args.channels}x{args.height}x{args.width}, {torch.get_num_threads()} threads')
    print(f'NCHW formula (6 elementwise passes): {formula:8.2f} ms')
    print(f'NHWC layer_norm, input already NHWC: {native_only:8.2f} ms  ({formula / native_only:.2f}x)')
    print(f'NHWC layer_norm incl. NCHW->NHWC copy: {native:6.2f} ms  ({formula / native:.2f}x)')


if __name__ == '__main__':
    main()
