"""Export RT4KSR weights to ONNX (fused first), verified with onnxruntime before it is kept.

    python -m rt4ksr_arch.export WEIGHTS OUTPUT.onnx [--fp16 [--half-io]] [--dynamic] [--opset 17]
                                 [--height 270 --width 480] [--overwrite]

The deploy (fused) network is exported with the TorchScript exporter (``dynamo=False``): it
records the odd-size padding and the final crop as shape arithmetic, so one ``--dynamic`` file
serves any batch, height and width. ``--fp16`` stores fp16 weights and computes in fp16; its
input and output stay float32 (cast inside the graph) unless ``--half-io``. The file is checked
on a random input (and, with ``--dynamic``, on a second, odd size) against the PyTorch fp32
model; the max abs difference is printed, and a file over tolerance (fp32: 1e-4) is not kept.
Needs the optional extra: ``pip install -e ".[export]"``.
"""
import argparse
import os
import sys
import warnings
from os import path as osp
from typing import List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn

import rt4ksr_arch  # noqa: F401  (compat + registries)
from rt4ksr_arch.checkpoint import CheckpointError, build_from_state_dict, load_from_file

TOLERANCE = {'fp32': 1e-4, 'fp16': 2e-2}  # fp16: 10 bits of mantissa through 13 layers, outputs in [0, 1]


class CastIO(nn.Module):
    """fp16 network with float32 input and output, the casts inside the graph."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.half()).float()


def export(weights: str, output: str, fp16: bool = False, half_io: bool = False, dynamic: bool = False,
           opset: int = 17, size: Tuple[int, int] = (64, 64)) -> List[Tuple[Tuple[int, ...], float]]:
    """Write ``output``; return [(checked input shape, max abs difference vs torch fp32)]."""
    try:
        import onnxruntime
    except ImportError:
        raise SystemExit('ONNX export needs onnx and onnxruntime: pip install -e ".[export]"')
    reference = load_from_file(weights, deploy=True)
    net: nn.Module = reference
    if fp16:
        net = build_from_state_dict(reference.state_dict(), deploy=True).half().eval()
        net = net if half_io else CastIO(net)
    example = torch.rand(1, 3, *size, dtype=torch.float16 if half_io else torch.float32)
    folder, base = osp.split(osp.abspath(output))
    os.makedirs(folder, exist_ok=True)
    partial = osp.join(folder, f'.{base}.partial')
    axes = {0: 'batch', 2: 'height', 3: 'width'}
    with warnings.catch_warnings():
        # the legacy exporter is chosen on purpose (module docstring); the pad condition it warns
        # about is always true while exporting, and the tracer records the pad sizes themselves
        warnings.simplefilter('ignore', DeprecationWarning)
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        torch.onnx.export(net, (example,), partial, input_names=['lq'], output_names=['sr'], opset_version=opset,
                          dynamic_axes={'lq': axes, 'sr': axes} if dynamic else None, dynamo=False)
    try:
        session = onnxruntime.InferenceSession(partial, providers=['CPUExecutionProvider'])
        shapes = [(1, 3, *size)] + ([(2, 3, size[0] + 7, size[1] + 3)] if dynamic else [])
        results = []
        for shape in shapes:
            x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
            with torch.no_grad():
                expected = reference(x).numpy()
            feed = x.half().numpy() if half_io else x.numpy()
            got = session.run(None, {'lq': feed})[0].astype(np.float32)
            if got.shape != expected.shape:
                raise RuntimeError(f'ONNX output shape {got.shape} != torch {expected.shape} for input {shape}')
            results.append((shape, float(np.abs(got - expected).max())))
        worst = max(diff for _, diff in results)
        limit = TOLERANCE['fp16' if fp16 else 'fp32']
        if worst > limit:
            raise RuntimeError(f'onnxruntime differs from torch by {worst:.2e} (> {limit:.0e}); file not kept')
        os.replace(partial, output)
        return results
    finally:
        if osp.exists(partial):
            os.remove(partial)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m rt4ksr_arch.export', description=__doc__.split('\n')[0])
    parser.add_argument('weights', help='RT4KSR checkpoint (any format rt4ksr_arch.convert reads)')
    parser.add_argument('output', help='ONNX file to write')
    parser.add_argument('--fp16', action='store_true', help='fp16 weights and compute')
    parser.add_argument('--half-io', action='store_true', help='with --fp16: fp16 input/output too')
    parser.add_argument('--dynamic', action='store_true', help='dynamic batch, height and width')
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument('--height', type=int, default=64, help='example/check input height (static size)')
    parser.add_argument('--width', type=int, default=64, help='example/check input width (static size)')
    parser.add_argument('--overwrite', action='store_true', help='replace OUTPUT if it exists')
    args = parser.parse_args(argv)
    if args.half_io and not args.fp16:
        parser.error('--half-io needs --fp16')
    if osp.exists(args.output) and not args.overwrite:
        print(f'error: {args.output} exists; pass --overwrite or choose another OUTPUT', file=sys.stderr)
        return 2
    try:
        results = export(args.weights, args.output, args.fp16, args.half_io, args.dynamic, args.opset,
                         (args.height, args.width))
    except (CheckpointError, FileNotFoundError, RuntimeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    for shape, diff in results:
        print(f'verified with onnxruntime on input {shape}: max abs diff vs torch fp32 {diff:.2e}')
    print(f'wrote {args.output} ({"fp16" if args.fp16 else "fp32"}{", fp16 I/O" if args.half_io else ""}'
          f'{", dynamic batch/height/width" if args.dynamic else f", fixed 1x3x{args.height}x{args.width}"}, '
          f'opset {args.opset})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
