"""Export RT4KSR weights to ONNX (fused first), verified with onnxruntime before it is kept.

    rt4ksr export WEIGHTS OUTPUT.onnx [--precision fp32|fp16 [--half-io]] [--dynamic] [--opset 17]
                  [--height 64 --width 64] [--overwrite]

``--precision fp16`` stores fp16 weights and computes in fp16; input and output stay float32
(cast inside the graph) unless ``--half-io``. The network config is stored in the model's
metadata. The file is checked against the PyTorch fp32 model on a random input (and, with
``--dynamic``, on a second, odd size); a file over tolerance (fp32: 1e-4) is not kept.
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
    parser.add_argument('--dynamic', action='store_true', help='dynamic batch, height and width')
    parser.add_argument('--opset', type=positive_int, default=17, help='ONNX opset (default 17)')
    parser.add_argument('--height', type=positive_int, default=64, help='input height (fixed size; check size)')
    parser.add_argument('--width', type=positive_int, default=64, help='input width (fixed size; check size)')
    add_overwrite(parser)


def run(args: argparse.Namespace) -> int:
    if args.half_io and args.precision != 'fp16':
        raise OptionError('--half-io', 'needs --precision fp16')
    refuse_existing([args.output], args.overwrite)
    writable_folder(Path(args.output).parent)
    net, weights = load_network(args, deploy=True)
    print(f'export: {weights.describe()}')
    results = export_onnx(net, args.output, args.precision, args.half_io, args.dynamic, args.opset,
                          (args.height, args.width))
    for shape, diff in results:
        print(f'verified with onnxruntime on input {shape}: max abs diff vs torch fp32 {diff:.2e}')
    print(f'wrote {args.output} ({args.precision}{", fp16 I/O" if args.half_io else ""}'
          f'{", dynamic batch/height/width" if args.dynamic else f", fixed 1x3x{args.height}x{args.width}"}, '
          f'opset {args.opset})')
    return 0
