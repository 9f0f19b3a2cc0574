"""End-to-end video FPS against the network alone on the same frames, in the same run.

    python benchmarks/video_pipeline.py [--clip clip.mp4 | --frames 12] [--weights W] [--device cpu]
                                        [--batch 1] [--precision fp32] [--codec h264] [--preset P] [--tile N]

Makes (or takes) a 1080p H.264 clip from the ../shared photos, runs ``rt4ksr_arch.media.upscale_video``
(decode thread -> network -> encode thread, audio copied) and then the network alone on the
same decoded frames with the same batches and conversions (``network_only_fps``). The ratio
end-to-end / network-only says how much of the network's speed the pipeline delivers
(issue 13's target: >= 0.9). Prints the machine's load average before and after: the CPU is shared.
"""
import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

import rt4ksr_arch  # noqa: F401  (compat first)
from rt4ksr_arch import RT4KSR, InferenceOptions, Upscaler, load_model
from rt4ksr_arch.inference import resolve_device
from rt4ksr_arch.media import VideoOptions, network_only_fps, upscale_video

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--clip', default=None, help='a video (default: made from the ../shared photos)')
    parser.add_argument('--frames', type=int, default=12, help='frames of the made clip')
    parser.add_argument('--source', default=str(HERE.parent.parent / 'shared/data/UHD_1080p/crops_1920x1080'))
    parser.add_argument('--weights', default=None, help='default: random x2 weights (speed does not depend on them)')
    parser.add_argument('--device', default='auto')
    parser.add_argument('--precision', default='fp32')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--tile', type=int, default=None)
    parser.add_argument('--codec', default='h264')
    parser.add_argument('--preset', default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix='rt4ksr_video_'))
    clip = args.clip or str(work / 'clip1080.mp4')
    if not args.clip:
        subprocess.run([sys.executable, str(HERE / 'make_clip.py'), clip, '--frames', str(args.frames), '--source',
                        args.source], check=True)
    dev = resolve_device(args.device)
    net = load_model(args.weights)[0] if args.weights else RT4KSR(upscale=2)
    upscaler = Upscaler(net, InferenceOptions(tile_size=args.tile, tile_batch=args.batch, precision=args.precision),
                        dev)
    name = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else f'CPU, {torch.get_num_threads()} threads'
    print(f'{name}; load average before: {os.getloadavg()}')
    options = VideoOptions(batch=args.batch, codec=args.codec, preset=args.preset)
    # a warm-up pass first: allocator, kernels, encoder start
    upscale_video(upscaler, clip, work / 'warmup.mp4', options, progress=False, report=lambda _: None)
    stats, info = upscale_video(upscaler, clip, work / 'out.mp4', options, progress=False)
    network_fps, frames = network_only_fps(upscaler, clip, args.batch)
    print(f'{info.width}x{info.height} -> {info.width * upscaler.scale}x{info.height * upscaler.scale}, {frames} '
          f'frames, batch {args.batch}, {args.precision}, tile {args.tile}')
    print(f'end to end (decode + network + encode, overlapped): {stats.fps:.3f} FPS')
    print(f'network alone, same frames, same run:              {network_fps:.3f} FPS')
    print(f'ratio end-to-end / network-only: {stats.fps / network_fps:.3f}')
    print(f'load average after: {os.getloadavg()}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
