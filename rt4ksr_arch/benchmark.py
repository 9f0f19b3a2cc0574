"""Time RT4KSR the way the NTIRE 2023 challenge did, ours against the official-style baseline.

    python -m rt4ksr_arch.benchmark [--scale 2] [--input 1080p|720p|HxW] [--precision fp32|fp16|bf16]
                                    [--compile] [--channels-last] [--batch 1] [--device auto|cuda|cpu]
                                    [--warmup N] [--runs N] [--weights W] [--onnx FILE]

Protocol: ``warmup`` untimed runs, then the mean of ``runs`` timed runs of one batch (CUDA events
on the GPU, perf_counter on the CPU), network time only (input already on the device). Rows:
ours (fused, dormant branch skipped, the chosen precision / layout / compile) and the
official-style baseline (train form, dormant branch computed, eager, same precision) measured in
the same run, then ``speed-up vs official-style: N.NNx``. Weights default to random ones (speed
does not depend on them); ``--onnx`` adds onnxruntime on the same input.
"""
import argparse
import resource
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

import rt4ksr_arch  # noqa: F401  (compat + registries)
from rt4ksr_arch.archs.rt4ksr_arch import RT4KSR
from rt4ksr_arch.checkpoint import load_from_file
from rt4ksr_arch.deploy import OfficialStyle, fast_path
from rt4ksr_arch.inference import resolve_device

INPUTS = {'1080p': (1080, 1920), '720p': (720, 1280), '4k': (2160, 3840)}


def parse_size(text: str) -> Tuple[int, int]:
    """``1080p``/``720p``/``4k`` or ``HxW`` -> (height, width) of the LR input."""
    if text.lower() in INPUTS:
        return INPUTS[text.lower()]
    try:
        height, width = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'--input must be 1080p, 720p, 4k or HxW (e.g. 540x960), got {text!r}')
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f'--input sizes must be positive, got {text!r}')
    return height, width


def count_macs(net: nn.Module, x: Tensor) -> int:
    """Multiply-accumulates of every convolution in one forward of ``x``."""
    total = 0

    def hook(module: nn.Conv2d, _inputs, output: Tensor) -> None:
        nonlocal total
        per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        total += output.numel() * per_output

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.Conv2d)]
    try:
        net(x)
    finally:
        for handle in handles:
            handle.remove()
    return total


def time_ms(fn: Callable[[], object], warmup: int, runs: int, device: torch.device) -> float:
    """Mean milliseconds per call after ``warmup`` calls (CUDA events on GPU, perf_counter on CPU)."""
    for _ in range(warmup):
        fn()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(runs):
            fn()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end) / runs
    start_s = time.perf_counter()
    for _ in range(runs):
        fn()
    return (time.perf_counter() - start_s) * 1000 / runs


def peak_memory_mb(device: torch.device) -> float:
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS (Linux: KiB)


def measure(name: str, fn: Callable[[Tensor], object], x: Tensor, args: argparse.Namespace,
            device: torch.device) -> Dict[str, float]:
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    ms = time_ms(lambda: fn(x), args.warmup, args.runs, device)
    return {'name': name, 'ms': ms / args.batch, 'fps': 1000 * args.batch / ms, 'mem': peak_memory_mb(device)}


def onnx_runner(path: str, x: Tensor) -> Callable[[Tensor], object]:
    try:
        import onnxruntime
    except ImportError:
        raise SystemExit('--onnx needs onnxruntime: pip install -e ".[export]"')
    providers = [p for p in ('CUDAExecutionProvider', 'CPUExecutionProvider')
                 if p in onnxruntime.get_available_providers()]
    session = onnxruntime.InferenceSession(path, providers=providers)
    name = session.get_inputs()[0].name
    is_half = session.get_inputs()[0].type == 'tensor(float16)'
    array = x.cpu().half().numpy() if is_half else x.cpu().float().numpy()
    return lambda _: session.run(None, {name: array})


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m rt4ksr_arch.benchmark', description=__doc__.split('\n')[0])
    parser.add_argument('--scale', type=int, default=2, choices=[2, 3, 4])
    parser.add_argument('--input', type=parse_size, default='1080p', help='LR size: 1080p, 720p, 4k or HxW')
    parser.add_argument('--precision', default='fp32', choices=['fp32', 'fp16', 'bf16'])
    parser.add_argument('--compile', action='store_true', help='torch.compile ours (CUDA graphs on GPU)')
    parser.add_argument('--channels-last', action='store_true', help='channels_last layout for ours')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--device', default='auto', help='auto (cuda when available), cuda, cpu')
    parser.add_argument('--warmup', type=int, default=None, help='untimed runs (default 50 GPU, 2 CPU)')
    parser.add_argument('--runs', type=int, default=None, help='timed runs (default 244 GPU, 5 CPU)')
    parser.add_argument('--weights', default=None, help='RT4KSR checkpoint (default: random weights)')
    parser.add_argument('--onnx', default=None, help='also time this ONNX file with onnxruntime')
    args = parser.parse_args(argv)
    try:
        device = resolve_device(args.device)
    except ValueError as err:
        parser.error(str(err))
    on_gpu = device.type == 'cuda'
    args.warmup = args.warmup if args.warmup is not None else (50 if on_gpu else 2)
    args.runs = args.runs if args.runs is not None else (244 if on_gpu else 5)
    if args.precision == 'fp16' and not on_gpu:
        print('note: fp16 convolutions on the CPU are slow or unsupported; bf16 or fp32 are the CPU choices')

    try:
        net = load_from_file(args.weights, scale=args.scale) if args.weights else RT4KSR(upscale=args.scale)
    except ValueError as err:  # CheckpointError
        parser.error(str(err))
    net = net.to(device).eval()
    height, width = args.input
    x = torch.rand(args.batch, 3, height, width, device=device)

    ours = fast_path(net, args.precision, args.channels_last, args.compile, cuda_graphs=args.compile and on_gpu)
    baseline = OfficialStyle(net, args.precision)
    with torch.inference_mode():
        macs = count_macs(ours.net, x[:1].to(ours.dtype, memory_format=ours.memory_format))
    params = sum(p.numel() for p in ours.net.parameters())
    label = f'{args.precision}{" channels_last" if args.channels_last else ""}{" compile" if args.compile else ""}'
    rows = [measure(f'ours ({label})', ours, x, args, device),
            measure(f'official-style ({args.precision}, eager)', baseline, x, args, device)]
    if args.onnx:
        rows.append(measure(f'onnxruntime ({args.onnx})', onnx_runner(args.onnx, x), x, args, device))

    name = torch.cuda.get_device_name(device) if on_gpu else f'CPU, {torch.get_num_threads()} threads'
    print(f'RT4KSR x{args.scale}: {width}x{height} -> {width * args.scale}x{height * args.scale}, batch {args.batch}, '
          f'{name}, torch {torch.__version__}; warm-up {args.warmup}, mean of {args.runs}')
    print(f'params {params:,} (fused), {macs / 1e9:.2f} GMACs per frame')
    print(f'{"":44s} {"ms/frame":>10s} {"FPS":>9s} {"peak MB":>9s}')
    for row in rows:
        print(f'{row["name"]:44s} {row["ms"]:10.3f} {row["fps"]:9.1f} {row["mem"]:9.0f}')
    if not on_gpu:
        print('(CPU peak MB is the process peak resident memory so far, not per row)')
    print(f'speed-up vs official-style: {rows[1]["ms"] / rows[0]["ms"]:.2f}x')
    return 0


if __name__ == '__main__':
    sys.exit(main())
