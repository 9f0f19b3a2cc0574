"""Time RT4KSR as ``rt4ksr upscale`` runs it, against the official-style baseline, in one run.

    rt4ksr benchmark [--scale 2] [--input 1080p|720p|4k|HxW] [--precision fp32|fp16|bf16]
                     [--no-channels-last] [--compile] [--batch 1] [--device auto|cpu|cuda]
                     [--warmup N] [--runs N] [--weights W] [--onnx FILE]

Protocol: ``warmup`` untimed runs, then the mean of ``runs`` timed runs of one batch (CUDA events
on the GPU, perf_counter on the CPU), network time only (input already on the device). Rows:
ours, built by the same ``prepare_network`` call with the same defaults as ``rt4ksr upscale``
(fused, channels_last, the chosen precision / compile), and the official-style baseline (train
form, dormant branch computed, eager, same precision), then ``speed-up vs official-style``.
Weights default to random ones (speed does not depend on them); ``--onnx`` adds onnxruntime.
"""
import argparse
from functools import partial
from typing import Callable, Dict

import torch
from torch import Tensor

from rt4ksr_arch.archs.rt4ksr_arch import RT4KSR
from rt4ksr_arch.cli.common import add_inference, add_weights, device, load_network, non_negative_int, positive_int
from rt4ksr_arch.errors import RT4KSRError
from rt4ksr_arch.inference import prepare_network
from rt4ksr_arch.timing import OfficialStyle, count_macs, peak_memory_mb, time_ms

HELP = 'time the network as upscale runs it against the official-style baseline'
INPUTS = {'1080p': (1080, 1920), '720p': (720, 1280), '4k': (2160, 3840)}


def parse_size(text: str) -> tuple:
    """``1080p``/``720p``/``4k`` or ``HxW`` -> (height, width) of the LR input."""
    if text.lower() in INPUTS:
        return INPUTS[text.lower()]
    try:
        height, width = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected 1080p, 720p, 4k or HxW (e.g. 540x960), got {text!r}') from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f'sizes must be positive, got {text!r}')
    return height, width


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--scale', type=int, default=2, choices=[2, 3, 4], help='scale of random weights (default 2)')
    parser.add_argument('--input', type=parse_size, default='1080p', help='LR size: 1080p, 720p, 4k or HxW')
    add_inference(parser, tiles=False, ensemble=False)
    parser.set_defaults(batch=1)
    parser.add_argument('--warmup', type=non_negative_int, default=None, help='untimed runs (default 50 GPU, 2 CPU)')
    parser.add_argument('--runs', type=positive_int, default=None, help='timed runs (default 244 GPU, 5 CPU)')
    add_weights(parser, required=False)
    parser.add_argument('--onnx', default=None, help='also time this ONNX file with onnxruntime')


def onnx_runner(path: str, x: Tensor) -> Callable[[], object]:
    """A call of onnxruntime on ``x`` (CUDA provider when available)."""
    try:
        import onnxruntime
    except ImportError:
        raise RT4KSRError('--onnx needs onnxruntime: pip install -e ".[export]"') from None
    providers = [p for p in ('CUDAExecutionProvider', 'CPUExecutionProvider')
                 if p in onnxruntime.get_available_providers()]
    session = onnxruntime.InferenceSession(path, providers=providers)
    name = session.get_inputs()[0].name
    array = x.cpu().half().numpy() if session.get_inputs()[0].type == 'tensor(float16)' else x.cpu().float().numpy()
    return partial(session.run, None, {name: array})


def run(args: argparse.Namespace) -> int:
    dev = device(args)
    on_gpu = dev.type == 'cuda'
    warmup = args.warmup if args.warmup is not None else (50 if on_gpu else 2)
    runs = args.runs if args.runs is not None else (244 if on_gpu else 5)
    if args.precision == 'fp16' and not on_gpu:
        print('note: fp16 convolutions on the CPU are slow; fp32 (exact) or bf16 are the CPU choices')
    if args.weights:
        net, weights = load_network(args, deploy=False)
        print(f'benchmark: {weights.describe()}')
    else:
        net = RT4KSR(upscale=args.scale)
    if not isinstance(net, RT4KSR):
        raise RT4KSRError(f'{args.weights} holds fused weights; the official-style baseline needs train-form weights')
    net = net.to(dev).eval()
    height, width = args.input
    x = torch.rand(args.batch, net.num_in_ch, height, width, device=dev)

    ours = prepare_network(net, dev, args.precision, args.channels_last, args.compile)
    baseline = OfficialStyle(net, args.precision)
    macs = count_macs(ours.net, x[:1].to(ours.dtype, memory_format=ours.memory_format))
    params = sum(p.numel() for p in ours.net.parameters())
    label = f'{args.precision}{", channels_last" if args.channels_last else ""}{", compile" if args.compile else ""}'

    def measure(name: str, fn: Callable[[], object]) -> Dict[str, object]:
        if on_gpu:
            torch.cuda.reset_peak_memory_stats(dev)
        ms = time_ms(fn, warmup, runs, dev)
        return {'name': name, 'ms': ms / args.batch, 'fps': 1000 * args.batch / ms, 'mem': peak_memory_mb(dev)}

    rows = [measure(f'ours ({label})', partial(ours, x)),
            measure(f'official-style ({args.precision}, eager)', partial(baseline, x))]
    if args.onnx:
        rows.append(measure(f'onnxruntime ({args.onnx})', onnx_runner(args.onnx, x)))

    name = torch.cuda.get_device_name(dev) if on_gpu else f'CPU, {torch.get_num_threads()} threads'
    scale = net.upscale
    print(f'RT4KSR x{scale}: {width}x{height} -> {width * scale}x{height * scale}, batch {args.batch}, {name}, '
          f'torch {torch.__version__}; warm-up {warmup}, mean of {runs}')
    print(f'params {params:,} (fused), {macs / 1e9:.2f} GMACs per frame')
    print(f'{"":44s} {"ms/frame":>10s} {"FPS":>9s} {"peak MB":>9s}')
    for row in rows:
        print(f'{row["name"]:44s} {row["ms"]:10.3f} {row["fps"]:9.1f} {row["mem"]:9.0f}')
    if not on_gpu:
        print('(CPU peak MB is the process peak resident memory so far, not per row)')
    print(f'speed-up vs official-style: {rows[1]["ms"] / rows[0]["ms"]:.2f}x')
    return 0
