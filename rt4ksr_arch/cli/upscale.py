"""Upscale images, folders and videos with RT4KSR weights, no YAML needed.

    rt4ksr upscale INPUT OUTPUT --weights W [--scale auto] [--tile N] [--precision fp32|fp16|bf16]
                   [--self-ensemble] [--device auto|cpu|cuda] [--batch 4] [--overwrite]
                   [--codec h264|h265|av1|ffv1|ENCODER] [--crf N] [--preset P] [--pix-fmt F]
                   [--frames] [--fps N] [--target-fps N [--auto]] [--backend torch|onnxruntime|tensorrt]

INPUT is an image, a folder of images or a video file. OUTPUT is a folder (outputs are named
``<stem>_x<scale>.png`` / the video's own extension) or, for a single input, a file name. Gray,
RGBA (the alpha is upscaled with MATLAB bicubic), 16-bit (saved 16-bit) and odd-size images are
handled; unreadable files are reported and skipped, and the exit status is 1 when any failed.
Existing outputs are kept unless ``--overwrite``.

Videos go through ``rt4ksr_arch.media`` (PyAV): any container/codec in, H.264 (default) /
H.265 / AV1 / FFV1 out (NVENC on CUDA when it opens), audio and subtitles copied, timestamps,
colour, rotation and metadata kept, 10-bit kept 10-bit; decode, network and encode overlap.
A folder of frames with a video OUTPUT name becomes one video (``--fps``); ``--frames`` writes
a video as a folder of PNG frames; OUTPUT ``-`` writes raw RGB to stdout for a live viewer.
"""
import argparse
import sys
import time
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import List

import cv2

from rt4ksr_arch.backends import BACKENDS, build_backend
from rt4ksr_arch.cli.common import (CLI_NAMES, add_inference, add_overwrite, add_weights, device, inference_options,
                                    load_network)
from rt4ksr_arch.data.image_io import IMAGE_EXTENSIONS, ImageReadError, decode_unchanged, list_images
from rt4ksr_arch.errors import OptionError
from rt4ksr_arch.fileio import atomic_write_bytes
from rt4ksr_arch.inference import Upscaler
from rt4ksr_arch.media import (PIPE, VIDEO_EXTENSIONS, VideoOptions, is_video_name, open_source, pick_realtime,
                               upscale_video)

HELP = 'upscale an image, a folder of images or a video'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('input', help='image, folder of images, or video file')
    parser.add_argument('output', help='output folder (or file name for a single input)')
    add_weights(parser)
    parser.add_argument('--scale', default='auto', choices=['auto', '2', '3', '4'],
                        help='expected scale; auto reads it from the weights')
    add_inference(parser)
    add_overwrite(parser)
    video = parser.add_argument_group('video (rt4ksr_arch.media, PyAV)')
    video.add_argument('--codec', default='h264',
                       help='h264 (default, plays everywhere), h265, av1, ffv1 (lossless) or an FFmpeg encoder name '
                       '(libx264, h264_nvenc, ...); on CUDA the NVENC encoder is tried first')
    video.add_argument('--crf', type=int, default=None, help='constant quality (lower is better; default per codec)')
    video.add_argument('--preset', default=None,
                       help='encoder speed preset (default: veryfast for x264/x265, p4 for NVENC)')
    video.add_argument('--pix-fmt', default=None,
                       help='encoder pixel format (default yuv420p, yuv420p10le for 10-bit sources)')
    video.add_argument('--frames', action='store_true', help='write a video as a folder of PNG frames')
    video.add_argument('--fps', type=Fraction, default=Fraction(25),
                       help='frame rate of a folder of frames written as a video (default 25)')
    video.add_argument('--target-fps', type=float, default=None, metavar='N',
                       help='real-time mode: report per-frame latency p50/p95/p99 and frames missing a live '
                       "source's deadline at N frames/s")
    video.add_argument('--auto', action='store_true',
                       help='with --target-fps: choose precision, tile and batch that fit the budget (says what)')
    parser.add_argument('--backend', default='torch', choices=list(BACKENDS),
                        help='torch (default), onnxruntime, or tensorrt (onnxruntime-gpu TensorRT provider, fp16, '
                        'static exact tiles, cached engines)')


def output_path(source: Path, output: Path, scale: int, single: bool, suffix: str) -> Path:
    """``output`` itself for a single input given a file name, else ``output/<stem>_x<scale><suffix>``."""
    if single and output.suffix and not output.is_dir():
        return output
    return output / f'{source.stem}_x{scale}{suffix}'


def upscale_image_file(upscaler: Upscaler, source: Path, target: Path) -> None:
    out = upscaler.image(decode_unchanged(source.read_bytes(), str(source)), progress=True)
    ok, encoded = cv2.imencode(target.suffix or '.png', out)
    if not ok:
        raise ImageReadError(f'cannot encode {target}: choose a .png or .tif output name')
    atomic_write_bytes(str(target), encoded.tobytes())


def video_options(args: argparse.Namespace) -> VideoOptions:
    """The validated ``VideoOptions`` of the video flags."""
    try:
        return VideoOptions(codec=args.codec, crf=args.crf, preset=args.preset, pix_fmt=args.pix_fmt,
                            batch=args.batch, frame_rate=args.fps, target_fps=args.target_fps)
    except OptionError as err:
        raise err.renamed({'crf': '--crf', 'frame_rate': '--fps', 'target_fps': '--target-fps',
                           'batch': '--batch'}) from None


def video_target(source: Path, output: Path, scale: int, single: bool, frames: bool) -> Path:
    """A video's output: ``-`` (raw pipe), a folder of frames, or a file with the source's extension."""
    if str(output) == PIPE:
        return output
    if frames:
        return output if single and not output.is_dir() and not output.suffix else output / f'{source.stem}_x{scale}'
    return output_path(source, output, scale, single, source.suffix if is_video_name(source) else '.mp4')


def upscale_one_video(upscaler: Upscaler, source: Path, target: Path, args: argparse.Namespace, log) -> None:
    """Run ``rt4ksr_arch.media.upscale_video`` and report FPS (and latency in real-time mode)."""
    stats, _ = upscale_video(upscaler, source, target, video_options(args), frames=args.frames, report=log)
    log(f'{source} -> {target}: {stats.frames} frames, {stats.fps:.2f} FPS end to end (network alone '
        f'{stats.network_fps:.2f} FPS in the same run)')
    if args.target_fps:
        p = stats.latency_percentiles()
        log(f'latency per frame (decode -> encoded): p50 {p[50]:.1f} ms, p95 {p[95]:.1f} ms, p99 {p[99]:.1f} ms; '
            f'{stats.deadline_misses} of {stats.frames} frames missed the {args.target_fps:g} FPS deadline')


def realtime_upscaler(args: argparse.Namespace, net, opts, dev, source: Path, log) -> Upscaler:
    """``--auto``: the Upscaler whose precision / tile / batch fit ``--target-fps`` on ``source``'s frame size."""
    if not args.target_fps:
        raise OptionError('--auto', 'needs --target-fps N')
    src = open_source(source, args.fps)
    height, width = src.info.height, src.info.width
    src.close()
    log(f'measuring the network on {width}x{height} frames for {args.target_fps:g} FPS:')
    choice = pick_realtime(net, opts, dev, height, width, args.target_fps, report=log)
    log(choice.describe())
    args.batch, args.precision, args.tile = choice.batch, choice.options.precision, choice.options.tile_size
    return Upscaler(net, choice.options, dev, CLI_NAMES)


def collect_inputs(source: Path) -> List[Path]:
    if source.is_dir():
        return [Path(p) for p in list_images(str(source), IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)]
    if not source.exists():
        raise FileNotFoundError(f'INPUT {source} does not exist')
    return [source]


def run(args: argparse.Namespace) -> int:
    opts = inference_options(args)
    dev = device(args)
    piped = args.output == PIPE
    log = partial(print, file=sys.stderr) if piped else print  # stdout carries the frames
    net, _ = load_network(args, scale=None if args.scale == 'auto' else int(args.scale), report=log)
    sequence = Path(args.input).is_dir() and is_video_name(args.output)  # a folder of frames -> one video
    sources = [Path(args.input)] if sequence else collect_inputs(Path(args.input))
    if piped and (len(sources) != 1 or not (sequence or is_video_name(sources[0]))):
        raise OptionError('OUTPUT -', 'streams one video: give a video file (or a folder of frames) as INPUT')
    if args.auto:
        upscaler = realtime_upscaler(args, net, opts, dev, sources[0], log)
    else:
        upscaler = Upscaler(build_backend(args.backend, net, opts, dev, log), opts, dev, CLI_NAMES)
    single = not Path(args.input).is_dir() or sequence
    written = skipped = failed = 0
    for source in sources:
        is_video = sequence or is_video_name(source)
        target = video_target(source, Path(args.output), upscaler.scale, single, args.frames) if is_video else \
            output_path(source, Path(args.output), upscaler.scale, single, '.png')
        if target.exists() and not args.overwrite:
            print(f'skipped {source}: {target} exists (pass --overwrite to replace it)')
            skipped += 1
            continue
        start = time.perf_counter()
        try:
            if is_video:
                upscale_one_video(upscaler, source, target, args, log)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                upscale_image_file(upscaler, source, target)
                print(f'{source} -> {target} ({time.perf_counter() - start:.2f} s)')
            written += 1
        except (ImageReadError, OSError) as err:
            print(f'failed {source}: {err}', file=sys.stderr)
            failed += 1
    log(f'done: {written} written, {skipped} skipped (existing), {failed} failed')
    return 1 if failed else 0
