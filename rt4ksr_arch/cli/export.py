"""Export RT4KSR weights to ONNX (fused first), verified with onnxruntime before it is kept.

    rt4ksr export WEIGHTS OUTPUT.onnx [--precision fp32|fp16 [--half-io]] [--static --height H --width W]
                  [--batch N] [--no-clamp] [--opset 17] [--overwrite]

Dynamic batch, height and width by default (output dims named ``height*s`` / ``width*s``);
``--static`` fixes the input at N x 3 x H x W (both sizes required). The output is clamped to
[0, 1] inside the graph unless ``--no-clamp``. ``--precision fp16`` stores fp16 weights and
computes in fp16; input and output stay float32 (cast inside the graph) unless ``--half-io``.
The network config, the scale and the I/O convention (RGB, [0, 1], NCHW, float32/16) are stored
in the model's metadata and doc string. The file is checked against the PyTorch fp32 model on a
random input (dynamic: also a second, odd size); a file over tolerance (fp32: 1e-4) is not kept.
Needs the optional extra: ``pip install -e ".[export]"``.
"""
import argparse
from pathlib import Path

from rt4ksr_arch.cli.common import (add_overwrite, add_precision, add_weights, load_network, positive_int,
                                    refuse_existing, writable_folder)
from rt4ksr_arch.errors import OptionError
from rt4ksr_arch.export import TOLERANCE, export_onnx

HELP = 'export to ONNX (fused, config in the metadata), verified with onnxruntime'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_weights(parser, positional=True)
    parser.add_argument('output', help='ONNX file to write')
    add_precision(parser, choices=tuple(TOLERANCE))
    parser.add_argument('--half-io', action='store_true', help='with --precision fp16: fp16 input/output too')
    parser.add_argument('--static', action='store_true',
                        help='fix the input at --batch x 3 x --height x --width (default: dynamic batch/height/width)')
    parser.add_argument('--batch', type=positive_int, default=1, help='batch of a --static file (default 1)')
    parser.add_argument('--no-clamp', dest='clamp', action='store_false',
                        help='leave the output unclamped (default: clamped to [0, 1] inside the graph)')
    parser.add_argument('--opset', type=positive_int, default=17, help='ONNX opset (default 17)')
    parser.add_argument('--height', type=positive_int, default=None, help='input height (--static: required; '
                        'else the check size, default 64)')
    parser.add_argument('--width', type=positive_int, default=None, help='input width (--static: required; '
                        'else the check size, default 64)')
    add_overwrite(parser)


def run(args: argparse.Namespace) -> int:
    if args.half_io and args.precision != 'fp16':
        raise OptionError('--half-io', 'needs --precision fp16')
    if args.static and (args.height is None or args.width is None):
        raise OptionError('--static', 'needs the input size: --height H --width W (LR pixels)')
    refuse_existing([args.output], args.overwrite)
    writable_folder(Path(args.output).parent)
    net, weights = load_network(args, deploy=True)
    print(f'export: {weights.describe()}')
    size = (args.height or 64, args.width or 64)
    results = export_onnx(net, args.output, args.precision, args.half_io, not args.static, args.opset, size,
                          args.batch, args.clamp)
    for shape, diff in results:
        print(f'verified with onnxruntime on input {shape}: max abs diff vs torch fp32 {diff:.2e}')
    shape = f'fixed {args.batch}x3x{size[0]}x{size[1]}' if args.static else 'dynamic batch/height/width'
    print(f'wrote {args.output} ({args.precision}{", fp16 I/O" if args.half_io else ""}, {shape}, '
          f'{"clamped to [0, 1]" if args.clamp else "unclamped"}, opset {args.opset})')
    return 0
