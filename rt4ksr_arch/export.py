"""ONNX export of RT4KSR (fused first), verified with onnxruntime before the file is kept.

The deploy network is exported with the TorchScript exporter (``dynamo=False``): it records the
odd-size padding and the final crop as shape arithmetic, so one dynamic-shape file (the
default) serves any batch, height and width; the output's dimensions are named
``height*<s>`` / ``width*<s>`` so Netron and TensorRT profiles see the real relation. A static
file (``dynamic=False``) is fixed at ``batch`` x 3 x ``size``. The output is clamped to [0, 1]
inside the graph unless ``clamp=False``. The model's metadata (``metadata_props``) and
``doc_string`` say how to use it: ``rt4ksr_config`` (JSON), ``scale``, and ``io`` (JSON: RGB,
values in [0, 1], NCHW, float32 or float16, clamped or not).
"""
import json
import os
import warnings
from os import path as osp
from typing import List, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from rt4ksr_arch.archs.rt4ksr_arch import reparameterize
from rt4ksr_arch.config import CONFIG_KEY
from rt4ksr_arch.errors import RT4KSRError

TOLERANCE = {'fp32': 1e-4, 'fp16': 2e-2}  # max abs difference to torch fp32, outputs in [0, 1]


class Clamped(nn.Module):
    """``net(x).clamp(0, 1)``: the output range the I/O convention promises, inside the graph."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).clamp(0, 1)


def io_convention(scale: int, half_io: bool, clamp: bool) -> dict:
    """The I/O contract stored in the file (metadata ``io`` and the doc string)."""
    dtype = 'float16' if half_io else 'float32'
    return {'input': {'name': 'lq', 'layout': 'NCHW', 'channels': 'RGB', 'range': [0, 1], 'dtype': dtype},
            'output': {'name': 'sr', 'layout': 'NCHW', 'channels': 'RGB', 'dtype': dtype,
                       'range': [0, 1] if clamp else 'unclamped (about -0.1 to 1.1 on photos; clamp to [0, 1])',
                       'size': f'scale x input: height*{scale}, width*{scale}'}}


class CastIO(nn.Module):
    """A half-precision network with float32 input and output, the casts inside the graph."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.half()).float()


def _onnx_modules():
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise RT4KSRError('ONNX export needs onnx and onnxruntime: pip install -e ".[export]"') from None
    return onnx, onnxruntime


def export_onnx(net: nn.Module, output: str, precision: str = 'fp32', half_io: bool = False, dynamic: bool = True,
                opset: int = 17, size: Tuple[int, int] = (64, 64), batch: int = 1,
                clamp: bool = True) -> List[Tuple[Tuple[int, ...], float]]:
    """Write ``net`` (RT4KSR or RT4KSRDeploy, not modified) to ``output`` as ONNX.

    ``precision`` fp16 stores fp16 weights and computes in fp16, with float32 input and output
    unless ``half_io``. Input ``lq``: float RGB [N, 3, H, W] in [0, 1]; ``dynamic`` (default):
    any N, H, W, else fixed at ``batch`` x 3 x ``size`` (H, W). Output ``sr``: [N, 3, s*H, s*W],
    clamped to [0, 1] when ``clamp``. The file is checked on a random input at ``size`` (and,
    when dynamic, on a second, odd size and batch 2) against the fp32 network; returns
    [(input shape, max abs difference)]. Raises ``RT4KSRError`` (and keeps no file) when the
    difference exceeds ``TOLERANCE``.
    """
    onnx, onnxruntime = _onnx_modules()
    if precision not in TOLERANCE:
        raise RT4KSRError(f'ONNX precision must be one of {", ".join(TOLERANCE)}, got {precision!r}')
    reference = reparameterize(net).float().eval()
    graph: nn.Module = reference
    if precision == 'fp16':
        graph = reparameterize(reference).half().eval()
        graph = graph if half_io else CastIO(graph)
    graph = Clamped(graph) if clamp else graph
    scale = reference.upscale
    example = torch.rand(batch, reference.num_in_ch, *size, dtype=torch.float16 if half_io else torch.float32)
    folder, base = osp.split(osp.abspath(output))
    os.makedirs(folder, exist_ok=True)
    partial = osp.join(folder, f'.{base}.partial')
    axes = {'lq': {0: 'batch', 2: 'height', 3: 'width'}, 'sr': {0: 'batch', 2: f'height*{scale}', 3: f'width*{scale}'}}
    try:
        with warnings.catch_warnings():
            # the legacy exporter is chosen on purpose (module docstring); the pad condition it warns
            # about is always true while exporting, and the tracer records the pad sizes themselves
            warnings.simplefilter('ignore', DeprecationWarning)
            warnings.simplefilter('ignore', torch.jit.TracerWarning)
            # the hf branch's reflect pad slices with negative steps, which the exporter cannot fold
            warnings.filterwarnings('ignore', message='Constant folding - Only steps=1')
            torch.onnx.export(graph, (example, ), partial, input_names=['lq'], output_names=['sr'],
                              opset_version=opset, dynamic_axes=axes if dynamic else None, dynamo=False)
        model = onnx.load(partial)
        io = io_convention(scale, half_io, clamp)
        for key, value in ((CONFIG_KEY, json.dumps(reference.config.to_dict())), ('scale', str(scale)),
                           ('io', json.dumps(io))):
            model.metadata_props.add(key=key, value=value)
        model.doc_string = (f'RT4KSR x{scale} super-resolution (fused). Input lq: RGB {io["input"]["dtype"]} NCHW '
                            f'in [0, 1]; output sr: RGB NCHW, {scale}x height and width, '
                            f'{"clamped to [0, 1]" if clamp else "NOT clamped (clamp to [0, 1])"}. '
                            f'Network: {json.dumps(reference.config.to_dict())}.')
        onnx.save(model, partial)
        session = onnxruntime.InferenceSession(partial, providers=['CPUExecutionProvider'])
        shapes = [(batch, reference.num_in_ch, *size)]
        if dynamic:
            shapes.append((2, reference.num_in_ch, size[0] + 7, size[1] + 3))
        results = []
        for shape in shapes:
            x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
            with torch.no_grad():
                expected = (reference(x).clamp(0, 1) if clamp else reference(x)).numpy()
            got = session.run(None, {'lq': x.half().numpy() if half_io else x.numpy()})[0].astype(np.float32)
            if got.shape != expected.shape:
                raise RuntimeError(f'ONNX output shape {got.shape} != torch {expected.shape} for input {shape}')
            results.append((shape, float(np.abs(got - expected).max())))
        worst = max(diff for _, diff in results)
        if worst > TOLERANCE[precision]:
            raise RT4KSRError(f'onnxruntime differs from torch by {worst:.2e} (> {TOLERANCE[precision]:.0e}); '
                              f'{output} was not written')
        os.replace(partial, output)
        return results
    finally:
        if osp.exists(partial):
            os.remove(partial)
