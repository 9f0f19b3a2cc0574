"""Upscale images, folders and videos with RT4KSR weights, no YAML needed.

    rt4ksr upscale INPUT OUTPUT [--weights rt4ksr_x2] [--scale auto] [--ext png|jpg|webp|tif|auto]
                   [--suffix x2] [--tile N] [--precision fp32|fp16|bf16] [--self-ensemble]
                   [--device auto|cpu|cuda] [--batch 4] [--overwrite]
                   [--codec h264|h265|av1|vp9|vp8|ffv1|raw|ENCODER] [--crf N] [--preset P] [--pix-fmt F]
                   [--encoder-option KEY=VALUE ...] [--drop audio|subtitle|INDEX ...] [--verbose]
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

Videos go through ``rt4ksr_arch.media`` (PyAV): any container/codec in; out, a codec the output
container holds (default H.264 for 8-bit, HEVC Main10 for 10-bit, VP9 in WebM; NVENC on CUDA
when it opens), audio and subtitles copied (text subtitles converted where the container needs
it, ``--drop`` leaves streams out), timestamps, colour, rotation, aspect ratio, HDR10 and
metadata kept, 10-bit kept 10-bit; decode, network and encode overlap. What cannot be written
is refused before the network loads. A folder of frames with a video OUTPUT name becomes one
video (``--fps``); ``--frames`` writes a video as PNG frames in ``OUTPUT/<stem>_<suffix>/``;
OUTPUT ``-`` writes raw RGB to stdout for a live viewer. A truncated video gives a warning and
exit status 1.
"""
import argparse
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from rt4ksr_arch.backends import BACKENDS, build_backend, fit_static_window
from rt4ksr_arch.cli.common import (CLI_NAMES, add_inference, add_overwrite, add_weights, inference_setup,
                                    load_network, writable_folder)
from rt4ksr_arch.data.image_io import (IMAGE_EXTENSIONS, ImageReadError, decode_unchanged, encode_image,
                                       exif_orientation, list_images)
from rt4ksr_arch.errors import OptionError
from rt4ksr_arch.fileio import atomic_write_bytes
from rt4ksr_arch.hub import RELEASED
from rt4ksr_arch.inference import Upscaler
from rt4ksr_arch.media import (PIPE, VIDEO_EXTENSIONS, ReaderClosed, VideoOptions, is_video_file, is_video_name,
                               media_ms_per_frame, open_source, parse_encoder_options, pick_realtime, plan_video,
                               refuse_encoder_settings, set_verbosity, upscale_video)

VIDEO_FLAGS = {'codec': '--codec', 'crf': '--crf', 'preset': '--preset', 'pix_fmt': '--pix-fmt',
               'encoder_options': '--encoder-option', 'drop': '--drop', 'frame_rate': '--fps',
               'target_fps': '--target-fps', 'batch': '--batch'}
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
    video.add_argument('--codec', default=None,
                       help='h264, h265, av1, vp9, vp8, ffv1 (lossless), raw or an FFmpeg video encoder name '
                       '(libx264, h264_nvenc, ...); default: chosen for the output container and bit depth (H.264 '
                       'for 8-bit, H.265 Main10 for 10-bit, VP9 in .webm); on CUDA the NVENC encoder is tried first')
    video.add_argument('--crf', type=int, default=None,
                       help="constant quality (lower is better; default per codec; 0: the encoder's lossless mode)")
    video.add_argument('--preset', default=None,
                       help='encoder speed preset (default: veryfast for x264/x265, 10 for SVT-AV1, 8 (cpu-used) '
                       'for VP9, p4 for NVENC)')
    video.add_argument('--pix-fmt', default=None,
                       help='encoder pixel format (default yuv420p, yuv420p10le for 10-bit sources; RGB for ffv1)')
    video.add_argument('--encoder-option', action='append', default=[], metavar='KEY=VALUE',
                       help="an FFmpeg option of the encoder (repeatable), e.g. qp=0, tune=film, x265-params=...")
    video.add_argument('--drop', action='append', default=[], metavar='audio|subtitle|INDEX',
                       help='leave a stream type or a stream (by index) of the source out of the output (repeatable)')
    video.add_argument('--verbose', action='store_true', help="show FFmpeg's and the encoders' own messages")
    video.add_argument('--frames', action='store_true', help='write a video as a folder of PNG frames')
    video.add_argument('--fps', type=Fraction, default=None,
                       help='frame rate of a folder of frames written as a video (default 25; a video keeps its own '
                       'timestamps)')
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
    folder ``<stem>_<suffix>`` with ``frames``, whether ``output`` exists or not); inputs whose
    targets would coincide (``scan.png``, ``scan.jpg``) get the source extension in the name
    (``scan_png_x2.png``, ``scan_jpg_x2.png``).
    ``sequence``: the single source is a folder of frames written as one video.
    """
    def is_video(source: Path) -> bool:
        return sequence or is_video_file(source)

    def name(source: Path, qualified: bool) -> str:
        source_ext = source.suffix.lower()
        if is_video(source):
            out_ext = '' if frames else written_suffix(source)
        elif ext == 'auto':
            out_ext = source_ext if source_ext in IMAGE_EXTENSIONS else '.png'
        else:
            out_ext = '.' + ext
        stem = f'{source.stem}_{source.suffix[1:].lower()}' if qualified else source.stem
        return f'{stem}_{suffix}{out_ext}' if suffix else f'{stem}{out_ext}'

    # with --frames OUTPUT is always the folder that receives <stem>_<suffix>/, existing or not
    named_file = output.suffix and not output.is_dir() and not frames
    if single and (str(output) == PIPE or named_file):
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
                            encoder_options=parse_encoder_options(args.encoder_option), drop=tuple(args.drop),
                            batch=args.batch, frame_rate=args.fps, target_fps=args.target_fps)
    except OptionError as err:
        raise err.renamed(VIDEO_FLAGS) from None


def upscale_one_video(upscaler: Upscaler, source: Path, target: Path, args: argparse.Namespace, log) -> bool:
    """Run ``rt4ksr_arch.media.upscale_video`` and report FPS (and latency in real-time mode); False when the
    source was truncated or damaged (the output holds the frames that were read; a warning says how many)."""
    try:
        stats, _ = upscale_video(upscaler, source, target, video_options(args), frames=args.frames, report=log)
    except OptionError as err:
        raise err.renamed(VIDEO_FLAGS) from None
    except ReaderClosed as closed:  # a viewer quit: the end of the run, as for FFmpeg
        log(f'{source}: stopped, {closed}')
        return True
    # the network thread's own rate, not the network alone: on a CPU decode and encode share its cores
    # meanwhile (benchmarks/video_pipeline.py times the network alone on the same frames)
    log(f'{source} -> {target}: {stats.frames} frames, {stats.fps:.2f} FPS end to end (network thread '
        f'{stats.network_fps:.2f} FPS while decode and encode ran)')
    if args.target_fps:
        p = stats.latency_percentiles()
        log(f'latency per frame (decode -> encoded): p50 {p[50]:.1f} ms, p95 {p[95]:.1f} ms, p99 {p[99]:.1f} ms; '
            f'{stats.deadline_misses} of {stats.frames} frames missed the {args.target_fps:g} FPS deadline')
    if stats.shortfall:
        print(f'warning: {stats.shortfall}; {target} holds only those frames', file=sys.stderr)
    return not stats.shortfall


def frame_size(source: Path, fps: Optional[Fraction]) -> Tuple[int, int]:
    """(height, width) of a video's (or a folder of frames') frames."""
    try:
        src = open_source(source, fps)
    except OptionError as err:
        raise err.renamed(VIDEO_FLAGS) from None
    src.close()
    return src.info.height, src.info.width


def realtime_upscaler(args: argparse.Namespace, net, opts, dev, source: Path, log) -> Upscaler:
    """``--auto``: the Upscaler whose precision / tile / batch fit ``--target-fps`` on ``source``'s frame size,
    counting the clip's decode and encode time per frame too."""
    if not args.target_fps:
        raise OptionError('--auto', 'needs --target-fps N')
    height, width = frame_size(source, args.fps)
    output = Path(args.output)
    written_as = args.output if args.output == PIPE or args.frames else \
        output if is_video_name(output) else f'x{written_suffix(source)}'
    try:
        media_ms = media_ms_per_frame(source, written_as, video_options(args), net.upscale, dev.type == 'cuda')
    except OptionError as err:
        raise err.renamed(VIDEO_FLAGS) from None
    log(f'decode + encode: {media_ms:.1f} ms/frame; measuring the network on {width}x{height} frames for '
        f'{args.target_fps:g} FPS:')
    choice = pick_realtime(net, opts, dev, height, width, args.target_fps, media_ms, report=log)
    log(choice.describe())
    args.batch, args.precision, args.tile = choice.batch, choice.options.precision, choice.options.tile_size
    return Upscaler(net, choice.options, dev, CLI_NAMES)


def preflight(sources: Sequence[Path], output: Path, single: bool, sequence: bool, options: VideoOptions,
              scale: int) -> None:
    """Plan every video's output (encoder, container, streams) before the network loads, so that what cannot
    be written is refused at once (``plan_video``'s errors). ``scale``: the expected one (frame sizes only
    matter to encoders' size limits; NVENC writes the same codecs as the software encoders tried here)."""
    for source in sources:
        if not (sequence or is_video_file(source)):
            continue
        named = single and is_video_name(output)
        probe = output if named else Path(f'x{written_suffix(source)}')
        try:
            src = open_source(source, options.frame_rate)
        except ImageReadError:
            continue  # reported, and counted as failed, when its turn comes
        except OptionError as err:
            raise err.renamed(VIDEO_FLAGS) from None
        try:
            plan_video(src, probe, options, scale)
        except OptionError as err:
            raise err.renamed(VIDEO_FLAGS) from None
        finally:
            src.close()


def check_targets(jobs: Sequence[Job], frames: bool, output: Path) -> None:
    """Refuse, before any work, an OUTPUT name whose format cannot hold what the input is."""
    if frames and (is_video_name(output) or str(output) == PIPE):
        raise OptionError('OUTPUT', f'{output} names a video; --frames writes folders of PNG frames: give a folder '
                          '(e.g. results/), or leave --frames out to write a video')
    seen: Dict[str, Path] = {}
    for job in jobs:
        if str(job.target) != PIPE and job.target.resolve() == job.source.resolve():
            raise OptionError('OUTPUT', f'{job.target} is the input itself: it would be overwritten; give another '
                              'name or folder, or a --suffix')
        other = seen.setdefault(str(job.target).lower(), job.source)
        if other != job.source:  # Scan.PNG and scan.png: one file where names ignore case (macOS, Windows)
            raise OptionError('INPUT', f'{other} and {job.source} would both be written as {job.target} on file '
                              'systems that ignore case; rename one of them')
        suffix = job.target.suffix.lower()
        if job.is_video and not frames and str(job.target) != PIPE and not is_video_name(job.target):
            raise OptionError('OUTPUT', f'{job.target}: a video needs a video name ({", ".join(VIDEO_EXTENSIONS)}), '
                              'or --frames for a folder of PNG frames')
        if not job.is_video and suffix not in IMAGE_EXTENSIONS:
            raise OptionError('OUTPUT', f'{job.target}: an image is written as one of {", ".join(IMAGE_EXTENSIONS)}; '
                              'name it so, or give a folder')


def written_suffix(source: Path) -> str:
    """The container a video source is written to by default: its own; .mp4 for a folder of frames; .mkv
    (which holds every codec and stream) for a file whose name is not a known video name."""
    return source.suffix.lower() if is_video_name(source) else '.mp4' if source.is_dir() else '.mkv'


def collect_inputs(source: Path) -> List[Path]:
    if str(source) == PIPE:
        raise OptionError('INPUT', '- (reading a stream from stdin) is not supported: save the stream to a file '
                          'and give its name (FFmpeg: -f matroska file.mkv)')
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
    set_verbosity(args.verbose)
    opts, dev = inference_setup(args, report=log)
    source_root, output = Path(args.input), Path(args.output)
    sequence = source_root.is_dir() and is_video_name(output)  # a folder of frames -> one video
    sources = [source_root] if sequence else collect_inputs(source_root)
    single = not source_root.is_dir() or sequence
    if not single and output.resolve() == source_root.resolve():
        raise OptionError('OUTPUT', f'{output} is the input folder: the outputs would be taken as inputs on the '
                          f'next run; choose another folder (e.g. {output / "upscaled"})')
    if piped and (len(sources) != 1 or not (sequence or is_video_file(sources[0]))):
        raise OptionError('OUTPUT -', 'streams one video: give a video file (or a folder of frames) as INPUT')
    scale = released_for_scale(args)
    if not piped and not args.frames:
        preflight(sources, output, single, sequence, video_options(args), scale or 2)
    net, weights = load_network(args, scale=scale, report=log)
    if args.auto:
        upscaler = realtime_upscaler(args, net, opts, dev, sources[0], log)
    else:
        sizes = [frame_size(source, args.fps) for source in sources if sequence or is_video_file(source)]
        if sizes:
            opts, note = fit_static_window(net, opts, args.backend, min(h for h, _ in sizes), min(w for _, w in sizes),
                                           '--tile')
            if note:
                log(f'note: {note}')
        upscaler = Upscaler(build_backend(args.backend, net, opts, dev, log), opts, dev, CLI_NAMES)
    jobs = plan_jobs(sources, output, single, args.suffix if args.suffix is not None else f'x{upscaler.scale}',
                     args.ext, args.frames, sequence)
    check_targets(jobs, args.frames, output)
    try:
        refuse_encoder_settings(video_options(args), args.frames, piped)
    except OptionError as err:
        raise err.renamed(VIDEO_FLAGS) from None
    if not piped:
        for folder in sorted({job.target.parent for job in jobs}):
            writable_folder(folder)
    log(f'upscale x{upscaler.scale}: {len(jobs)} input(s); {weights.describe()}; {upscaler.describe()}')
    written = skipped = failed = incomplete = 0
    for job in jobs:
        if not piped and job.target.exists() and not args.overwrite:
            log(f'skipped {job.source}: {job.target} exists (pass --overwrite to replace it)')
            skipped += 1
            continue
        start = time.perf_counter()
        try:
            if job.is_video:
                incomplete += not upscale_one_video(upscaler, job.source, job.target, args, log)
            else:
                notes = upscale_image_file(upscaler, job.source, job.target)
                log(f'{job.source} -> {job.target} ({time.perf_counter() - start:.2f} s)' +
                    ''.join(f'; {note}' for note in notes))
            written += 1
        except (ImageReadError, OSError) as err:
            print(f'failed {job.source}: {err}', file=sys.stderr)
            failed += 1
    log(f'done: {written} written' + (f' ({incomplete} from truncated or damaged sources)' if incomplete else '')
        + f', {skipped} skipped (existing), {failed} failed')
    return 1 if failed or incomplete else 0
