"""Upscale images, folders and videos with RT4KSR weights, no YAML needed.

    rt4ksr upscale INPUT OUTPUT [--weights rt4ksr_x2] [--scale auto] [--ext png|jpg|webp|tif|auto]
                   [--suffix x2] [--tile N] [--precision fp32|fp16|bf16] [--self-ensemble]
                   [--device auto|cpu|cuda] [--batch 4] [--overwrite]
                   [--codec h264|h265|av1|ffv1|ENCODER] [--crf N] [--preset P] [--pix-fmt F]
                   [--frames] [--fps N] [--target-fps N [--auto]] [--backend torch|onnxruntime|tensorrt]

INPUT is an image, a folder of images (and videos) or a video file. OUTPUT is a folder (outputs
are named ``<stem>_<suffix>.<ext>``, suffix ``x<scale>`` by default; videos keep their extension)
or, for a single input, a file name. Without ``--weights`` the authors' released x2 weights are
used (downloaded once); with ``--scale 3`` and no ``--weights``, their x3 weights. Gray, RGBA (the
alpha is upscaled with MATLAB bicubic), 16-bit and odd-size images are handled; images are turned
upright by their EXIF orientation (as viewers show them). 16-bit images stay 16-bit in PNG and
TIFF; formats that hold 8 bits get an exact 8-bit conversion, and JPEG drops the alpha, each said
once per image. Two inputs with the same name stem get distinct outputs (the source extension is
added). Unreadable files are reported and skipped, and the exit status is 1 when any failed.
Existing outputs are kept unless ``--overwrite``; OUTPUT must not be the input folder (outputs
would become inputs).

Videos go through ``rt4ksr_arch.media`` (PyAV): any container/codec in, H.264 (default) /
H.265 / AV1 / FFV1 out (NVENC on CUDA when it opens), audio and subtitles copied, timestamps,
colour, rotation and metadata kept, 10-bit kept 10-bit; decode, network and encode overlap.
A folder of frames with a video OUTPUT name becomes one video (``--fps``); ``--frames`` writes
a video as a folder of PNG frames; OUTPUT ``-`` writes raw RGB to stdout for a live viewer.
"""
import argparse
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import List, Optional, Sequence

from rt4ksr_arch.backends import BACKENDS, build_backend
from rt4ksr_arch.cli.common import (CLI_NAMES, add_inference, add_overwrite, add_weights, inference_setup,
                                    load_network, writable_folder)
from rt4ksr_arch.data.image_io import (IMAGE_EXTENSIONS, ImageReadError, decode_unchanged, encode_image,
                                       exif_orientation, list_images)
from rt4ksr_arch.errors import OptionError
from rt4ksr_arch.fileio import atomic_write_bytes
from rt4ksr_arch.hub import RELEASED
from rt4ksr_arch.inference import Upscaler
from rt4ksr_arch.media import (PIPE, VIDEO_EXTENSIONS, VideoOptions, is_video_name, open_source, pick_realtime,
                               upscale_video)

HELP = 'upscale an image, a folder of images or a video'
OUTPUT_FORMATS = ('png', 'jpg', 'webp', 'tif', 'auto')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('input', help='image, folder of images, or video file')
    parser.add_argument('output', help='output folder (or file name for a single input; - streams a video)')
    add_weights(parser, default='rt4ksr_x2')
    parser.add_argument('--scale', default='auto', choices=['auto', '2', '3', '4'],
                        help='expected scale; auto reads it from the weights (without --weights: the released '
                        'weights of this scale)')
    parser.add_argument('--ext', default='png', choices=OUTPUT_FORMATS,
                        help='image output format (default png; auto: the input\'s format)')
    parser.add_argument('--suffix', default=None, help='added to output names: <stem>_<suffix> (default x<scale>)')
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


@dataclass(frozen=True)
class Job:
    """One input and what it becomes (a file, a folder of frames, or ``-``)."""

    source: Path
    target: Path
    is_video: bool


def plan_jobs(sources: Sequence[Path], output: Path, single: bool, suffix: str, ext: str,
              frames: bool = False, sequence: bool = False) -> List[Job]:
    """Targets for ``sources``: ``output`` itself for a single input named like a file (``-``: the
    raw pipe), else ``output/<stem>_<suffix><ext>`` (videos keep their extension, or become a
    folder ``<stem>_<suffix>`` with ``frames``); inputs whose targets would coincide (``scan.png``,
    ``scan.jpg``) get the source extension in the name (``scan_png_x2.png``, ``scan_jpg_x2.png``).
    ``sequence``: the single source is a folder of frames written as one video.
    """
    def is_video(source: Path) -> bool:
        return sequence or is_video_name(source)

    def name(source: Path, qualified: bool) -> str:
        source_ext = source.suffix.lower()
        if is_video(source):
            out_ext = '' if frames else source_ext if is_video_name(source) else '.mp4'
        elif ext == 'auto':
            out_ext = source_ext if source_ext in IMAGE_EXTENSIONS else '.png'
        else:
            out_ext = '.' + ext
        stem = f'{source.stem}_{source.suffix[1:].lower()}' if qualified else source.stem
        return f'{stem}_{suffix}{out_ext}' if suffix else f'{stem}{out_ext}'

    if single and (str(output) == PIPE or (output.suffix or frames) and not output.is_dir()):
        return [Job(sources[0], output, is_video(sources[0]))]
    by_target = defaultdict(list)
    for source in sources:
        by_target[name(source, False).lower()].append(source)
    return [Job(source, output / name(source, len(by_target[name(source, False).lower()]) > 1), is_video(source))
            for source in sources]


def upscale_image_file(upscaler: Upscaler, source: Path, target: Path) -> List[str]:
    """Write ``target`` from ``source``; return notes (orientation applied, format conversions)."""
    content = source.read_bytes()
    out = upscaler.image(decode_unchanged(content, str(source)), progress=True)
    encoded, notes = encode_image(out, target.suffix or '.png')
    atomic_write_bytes(str(target), encoded)
    orientation = exif_orientation(content)
    return notes + ([f'turned upright by its EXIF orientation {orientation}'] if orientation != 1 else [])


def video_options(args: argparse.Namespace) -> VideoOptions:
    """The validated ``VideoOptions`` of the video flags."""
    try:
        return VideoOptions(codec=args.codec, crf=args.crf, preset=args.preset, pix_fmt=args.pix_fmt,
                            batch=args.batch, frame_rate=args.fps, target_fps=args.target_fps)
    except OptionError as err:
        raise err.renamed({'crf': '--crf', 'frame_rate': '--fps', 'target_fps': '--target-fps',
                           'batch': '--batch'}) from None


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


def check_targets(jobs: Sequence[Job], frames: bool) -> None:
    """Refuse, before any work, an OUTPUT name whose format cannot hold what the input is."""
    for job in jobs:
        suffix = job.target.suffix.lower()
        if job.is_video and not frames and str(job.target) != PIPE and not is_video_name(job.target):
            raise OptionError('OUTPUT', f'{job.target}: a video needs a video name ({", ".join(VIDEO_EXTENSIONS)}), '
                              'or --frames for a folder of PNG frames')
        if not job.is_video and suffix not in IMAGE_EXTENSIONS:
            raise OptionError('OUTPUT', f'{job.target}: an image is written as one of {", ".join(IMAGE_EXTENSIONS)}; '
                              'name it so, or give a folder')


def collect_inputs(source: Path) -> List[Path]:
    if source.is_dir():
        return [Path(p) for p in list_images(str(source), IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)]
    if not source.exists():
        raise FileNotFoundError(f'INPUT {source} does not exist')
    return [source]


def released_for_scale(args: argparse.Namespace) -> Optional[int]:
    """The expected scale (None: auto); without --weights, the released weights of that scale."""
    scale = None if args.scale == 'auto' else int(args.scale)
    if scale is not None and args.weights == 'rt4ksr_x2' and f'rt4ksr_x{scale}' in RELEASED:
        args.weights = f'rt4ksr_x{scale}'
    return scale


def run(args: argparse.Namespace) -> int:
    piped = args.output == PIPE
    log = partial(print, file=sys.stderr) if piped else print  # stdout carries the frames
    opts, dev = inference_setup(args, report=log)
    source_root, output = Path(args.input), Path(args.output)
    sequence = source_root.is_dir() and is_video_name(output)  # a folder of frames -> one video
    sources = [source_root] if sequence else collect_inputs(source_root)
    single = not source_root.is_dir() or sequence
    if not single and output.resolve() == source_root.resolve():
        raise OptionError('OUTPUT', f'{output} is the input folder: the outputs would be taken as inputs on the '
                          f'next run; choose another folder (e.g. {output / "upscaled"})')
    if piped and (len(sources) != 1 or not (sequence or is_video_name(sources[0]))):
        raise OptionError('OUTPUT -', 'streams one video: give a video file (or a folder of frames) as INPUT')
    net, weights = load_network(args, scale=released_for_scale(args), report=log)
    if args.auto:
        upscaler = realtime_upscaler(args, net, opts, dev, sources[0], log)
    else:
        upscaler = Upscaler(build_backend(args.backend, net, opts, dev, log), opts, dev, CLI_NAMES)
    jobs = plan_jobs(sources, output, single, args.suffix if args.suffix is not None else f'x{upscaler.scale}',
                     args.ext, args.frames, sequence)
    check_targets(jobs, args.frames)
    if not piped:
        for folder in sorted({job.target.parent for job in jobs}):
            writable_folder(folder)
    log(f'upscale x{upscaler.scale}: {len(jobs)} input(s); {weights.describe()}; {upscaler.describe()}')
    written = skipped = failed = 0
    for job in jobs:
        if not piped and job.target.exists() and not args.overwrite:
            log(f'skipped {job.source}: {job.target} exists (pass --overwrite to replace it)')
            skipped += 1
            continue
        start = time.perf_counter()
        try:
            if job.is_video:
                upscale_one_video(upscaler, job.source, job.target, args, log)
            else:
                notes = upscale_image_file(upscaler, job.source, job.target)
                log(f'{job.source} -> {job.target} ({time.perf_counter() - start:.2f} s)' +
                    ''.join(f'; {note}' for note in notes))
            written += 1
        except (ImageReadError, OSError) as err:
            print(f'failed {job.source}: {err}', file=sys.stderr)
            failed += 1
    log(f'done: {written} written, {skipped} skipped (existing), {failed} failed')
    return 1 if failed else 0
