"""Time RT4KSR as ``rt4ksr upscale`` runs it, against the official-style baseline, in one run.

    rt4ksr benchmark [--scale 2] [--input 1080p|720p|4k|HxW] [--precision fp32|fp16|bf16]
                     [--no-channels-last] [--compile] [--batch 1] [--device auto|cpu|cuda]
                     [--warmup N] [--runs N] [--weights W] [--onnx FILE]
                     [--backend torch|onnxruntime|tensorrt [--tile N]] [--score-data DIR [--score-sets ...]]

Protocol (the NTIRE 2023 real-time SR challenge's, ``rt4ksr_arch.timing``): on the GPU
``cudnn.benchmark = True``, fp16 by default, the input made before timing in the network's
precision and layout, 50 warm-ups, then 244 runs each timed by its own CUDA event pair and a
synchronize; mean, p50 and p99 are reported, and the throughput (one event pair around all
runs) as an extra line. On the CPU: fp32, ``perf_counter`` per run, 2 warm-ups and 5 runs by
default. Rows: ours, built by the same ``prepare_network`` call with the same defaults as
``rt4ksr upscale``, the official-style baseline (train form, dormant branch computed, eager,
same precision), a ``--backend`` row (onnxruntime / TensorRT, exact static-window tiles) and
``--onnx FILE``. With ``--weights`` and ``--score-data`` (a folder of <Set>/HR), the challenge
score 2·2^ΔPSNR / (0.1·sqrt(ms)) is printed per set, ΔPSNR computed on the challenge's test
degradation (``--degradation ntire23`` of ``rt4ksr evaluate``).
"""
import argparse
from functools import partial
from pathlib import Path
from typing import Callable, Dict

import numpy as np
import torch
from torch import Tensor

from rt4ksr_arch.archs.rt4ksr_arch import RT4KSR
from rt4ksr_arch.backends import BACKENDS, build_backend
from rt4ksr_arch.cli.common import (CLI_NAMES, add_inference, add_weights, device, load_network, non_negative_int,
                                    positive_int)
from rt4ksr_arch.errors import RT4KSRError
from rt4ksr_arch.evaluation import evaluate_sets
from rt4ksr_arch.inference import InferenceOptions, Upscaler, prepare_network
from rt4ksr_arch.ops.degradations import parse_degradation
from rt4ksr_arch.timing import OfficialStyle, count_macs, ntire_score, peak_memory_mb, time_ms, time_runs

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
    parser.add_argument('--scale', type=int, default=None, choices=[2, 3, 4],
                        help='scale of random weights (default 2); with --weights it must be theirs')
    parser.add_argument('--input', type=parse_size, default='1080p', help='LR size: 1080p, 720p, 4k or HxW')
    add_inference(parser, tiles=False, ensemble=False, batch_default=1, precision_default=None,
                  precision_text='fp16 on a GPU, as the NTIRE 2023 protocol; fp32 on a CPU')
    parser.add_argument('--warmup', type=non_negative_int, default=None, help='untimed runs (default 50 GPU, 2 CPU)')
    parser.add_argument('--runs', type=positive_int, default=None, help='timed runs (default 244 GPU, 5 CPU)')
    add_weights(parser, required=False)
    parser.add_argument('--onnx', default=None, help='also time this ONNX file with onnxruntime')
    parser.add_argument('--backend', default='torch', choices=list(BACKENDS),
                        help='also time onnxruntime or TensorRT (static exact windows; --tile N sets the core)')
    parser.add_argument('--tile', type=positive_int, default=None, help='window core of --backend (LR pixels)')
    parser.add_argument('--score-data', default=None, metavar='DIR',
                        help='folder of <Set>/HR images: print the NTIRE 2023 score for --weights on them')
    parser.add_argument('--score-sets', nargs='+', default=['Set5', 'Set14', 'B100'], help='sets for the score')


def onnx_runner(path: str, x: Tensor, scale: int) -> Callable[[], object]:
    """A call of onnxruntime on ``x`` (CUDA provider when available); the file must be a x``scale`` model."""
    try:
        import onnxruntime
    except ImportError:
        raise RT4KSRError('--onnx needs onnxruntime: pip install -e ".[export]"') from None
    providers = [p for p in ('CUDAExecutionProvider', 'CPUExecutionProvider')
                 if p in onnxruntime.get_available_providers()]
    session = onnxruntime.InferenceSession(path, providers=providers)
    stored = session.get_modelmeta().custom_metadata_map.get('scale')
    if stored is not None and int(stored) != scale:
        raise RT4KSRError(f'--onnx {path} is a x{stored} model, the other rows time x{scale}: give the ONNX file '
                          'exported from the same weights')
    name = session.get_inputs()[0].name
    array = x.cpu().half().numpy() if session.get_inputs()[0].type == 'tensor(float16)' else x.cpu().float().numpy()
    return partial(session.run, None, {name: array})


def run(args: argparse.Namespace) -> int:
    dev = device(args)
    on_gpu = dev.type == 'cuda'
    warmup = args.warmup if args.warmup is not None else (50 if on_gpu else 2)
    runs = args.runs if args.runs is not None else (244 if on_gpu else 5)
    args.precision = args.precision or ('fp16' if on_gpu else 'fp32')
    if on_gpu:
        torch.backends.cudnn.benchmark = True
    if args.precision == 'fp16' and not on_gpu:
        print('note: fp16 convolutions on the CPU are slow; fp32 (exact) or bf16 are the CPU choices')
    if args.weights:
        net, weights = load_network(args, deploy=False, scale=args.scale)
        print(f'benchmark: {weights.describe()}')
    else:
        net = RT4KSR(upscale=args.scale or 2)
    if not isinstance(net, RT4KSR):
        raise RT4KSRError(f'{args.weights} holds fused weights; the official-style baseline needs train-form weights')
    net = net.to(dev).eval()
    height, width = args.input
    x = torch.rand(args.batch, net.num_in_ch, height, width, device=dev)

    ours = prepare_network(net, dev, args.precision, args.channels_last, args.compile)
    baseline = OfficialStyle(net, args.precision)
    x_ours = x.to(ours.dtype, memory_format=ours.memory_format)  # made before timing, as the challenge
    x_baseline = x.to(baseline.dtype)
    macs = count_macs(ours.net, x[:1].to(ours.dtype, memory_format=ours.memory_format))
    params = sum(p.numel() for p in ours.net.parameters())
    label = f'{args.precision}{", channels_last" if args.channels_last else ""}{", compile" if args.compile else ""}'

    def measure(name: str, fn: Callable[[], object]) -> Dict[str, object]:
        if on_gpu:
            torch.cuda.reset_peak_memory_stats(dev)
        times = np.array(time_runs(fn, warmup, runs, dev)) / args.batch
        throughput = time_ms(fn, 0, runs, dev) / args.batch
        return {'name': name, 'ms': float(times.mean()), 'p50': float(np.percentile(times, 50)),
                'p99': float(np.percentile(times, 99)), 'fps': 1000 / times.mean(), 'mem': peak_memory_mb(dev),
                'throughput': throughput}

    rows = [measure(f'ours ({label})', partial(raw_forward, ours.run, x_ours)),
            measure(f'official-style ({args.precision}, eager)', partial(raw_forward, baseline, x_baseline))]
    if args.backend != 'torch':
        opts = InferenceOptions(tile_size=args.tile, tile_batch=args.batch, precision=args.precision)
        upscaler = Upscaler(build_backend(args.backend, net, opts, dev, print), opts, dev, CLI_NAMES)
        rows.append(measure(f'{args.backend} (exact static windows)', partial(upscaler, x)))
    if args.onnx:
        rows.append(measure(f'onnxruntime ({args.onnx})', onnx_runner(args.onnx, x, net.upscale)))

    name = torch.cuda.get_device_name(dev) if on_gpu else f'CPU, {torch.get_num_threads()} threads'
    scale = net.upscale
    clock = 'own CUDA event pair + synchronize per run, cudnn.benchmark' if on_gpu else 'perf_counter per run'
    print(f'RT4KSR x{scale}: {width}x{height} -> {width * scale}x{height * scale}, batch {args.batch}, {name}, '
          f'torch {torch.__version__}; NTIRE 2023 protocol: warm-up {warmup}, {runs} runs, {clock}')
    print(f'params {params:,} (fused), {macs / 1e9:.2f} GMACs per frame')
    print(f'{"":44s} {"ms/frame":>10s} {"FPS":>9s} {"peak MB":>9s} {"p50 ms":>9s} {"p99 ms":>9s}')
    for row in rows:
        print(f'{row["name"]:44s} {row["ms"]:10.3f} {row["fps"]:9.1f} {row["mem"]:9.0f} {row["p50"]:9.3f} '
              f'{row["p99"]:9.3f}')
    print('throughput (one timer around all runs): ' + ', '.join(
        f'{row["name"].split(" (")[0]} {row["throughput"]:.3f} ms/frame' for row in rows))
    if not on_gpu:
        print('(CPU peak MB is the process peak resident memory so far, not per row)')
    print(f'speed-up vs official-style: {rows[1]["ms"] / rows[0]["ms"]:.2f}x')
    if args.score_data:
        print_scores(args, net, dev, rows[0]['ms'])
    return 0


def raw_forward(module: torch.nn.Module, x: Tensor) -> Tensor:
    """``module(x)`` under inference mode: the network alone, on an input already cast and laid out."""
    with torch.inference_mode():
        return module(x)


def print_scores(args: argparse.Namespace, net: torch.nn.Module, dev: torch.device, ms: float) -> None:
    """ΔPSNR over bicubic on the NTIRE 2023 test degradation and the challenge score at ``ms``, per set."""
    if not args.weights:
        raise RT4KSRError('--score-data needs --weights (random weights have no score)')
    upscaler = Upscaler(net, InferenceOptions(precision=args.precision), dev, CLI_NAMES)
    result = evaluate_sets(upscaler, Path(args.score_data), args.score_sets, degradation=parse_degradation('ntire23'),
                           border=0)
    for name, methods in result.means.items():
        delta = methods['RT4KSR']['psnr_y'] - methods['bicubic']['psnr_y']
        print(f'NTIRE 2023 score on {name} (ntire23 degradation, Y-PSNR border 0): RT4KSR '
              f'{methods["RT4KSR"]["psnr_y"]:.3f} dB, bicubic {methods["bicubic"]["psnr_y"]:.3f} dB, ΔPSNR {delta:.3f} '
              f'dB, at {ms:.3f} ms -> score {ntire_score(delta, ms):.2f}')
