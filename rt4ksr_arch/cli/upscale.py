"""Upscale images, folders and videos with RT4KSR weights, no YAML needed.

    rt4ksr upscale INPUT OUTPUT [--weights rt4ksr_x2] [--scale auto] [--ext png|jpg|webp|tif|auto]
                   [--suffix x2] [--tile N] [--precision fp32|fp16|bf16] [--self-ensemble]
                   [--device auto|cpu|cuda] [--batch 4] [--overwrite]

INPUT is an image, a folder of images (and videos) or a video file. OUTPUT is a folder (outputs
are named ``<stem>_<suffix>.<ext>``, suffix ``x<scale>`` by default) or, for a single input, a file
name. Without ``--weights`` the authors' released x2 weights are used (downloaded once); with
``--scale 3`` and no ``--weights``, their x3 weights. Gray, RGBA (the alpha is upscaled with
MATLAB bicubic), 16-bit and odd-size images are handled; images are turned upright by their EXIF
orientation (as viewers show them). 16-bit images stay 16-bit in PNG and TIFF; formats that hold 8
bits get an exact 8-bit conversion, and JPEG drops the alpha, each said once per image. Two
inputs with the same name stem get distinct outputs (the source extension is added). Unreadable
files are reported and skipped, and the exit status is 1 when any failed. Existing outputs are
kept unless ``--overwrite``; OUTPUT must not be the input folder (outputs would become inputs).
"""
import argparse
import shlex
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import cv2
import numpy as np
import torch
from tqdm import tqdm

from rt4ksr_arch.cli.common import (add_inference, add_overwrite, add_weights, inference_setup, load_network,
                                    make_upscaler, writable_folder)
from rt4ksr_arch.data.image_io import (IMAGE_EXTENSIONS, ImageReadError, decode_unchanged, encode_image,
                                       exif_orientation, list_images)
from rt4ksr_arch.errors import OptionError
from rt4ksr_arch.fileio import atomic_write_bytes
from rt4ksr_arch.hub import RELEASED
from rt4ksr_arch.inference import Upscaler

HELP = 'upscale an image, a folder of images or a video'
VIDEO_EXTENSIONS = ('.mp4', '.mov', '.avi', '.mkv', '.webm', '.m4v')
OUTPUT_FORMATS = ('png', 'jpg', 'webp', 'tif', 'auto')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('input', help='image, folder of images, or video file')
    parser.add_argument('output', help='output folder (or file name for a single input)')
    add_weights(parser, default='rt4ksr_x2')
    parser.add_argument('--scale', default='auto', choices=['auto', '2', '3', '4'],
                        help='expected scale; auto reads it from the weights (without --weights: the released '
                        'weights of this scale)')
    parser.add_argument('--ext', default='png', choices=OUTPUT_FORMATS,
                        help='image output format (default png; auto: the input\'s format)')
    parser.add_argument('--suffix', default=None, help='added to output names: <stem>_<suffix> (default x<scale>)')
    add_inference(parser)
    add_overwrite(parser)


@dataclass(frozen=True)
class Job:
    """One input and the file it becomes."""

    source: Path
    target: Path
    is_video: bool


def plan_jobs(sources: Sequence[Path], output: Path, single: bool, suffix: str, ext: str) -> List[Job]:
    """Targets for ``sources``: ``output`` itself for a single input named like a file, else
    ``output/<stem>_<suffix><ext>``; inputs whose targets would coincide (``scan.png``, ``scan.jpg``)
    get the source extension in the name (``scan_png_x2.png``, ``scan_jpg_x2.png``).
    """
    def name(source: Path, qualified: bool) -> str:
        source_ext = source.suffix.lower()
        if source_ext in VIDEO_EXTENSIONS:
            out_ext = '.mp4'
        elif ext == 'auto':
            out_ext = source_ext if source_ext in IMAGE_EXTENSIONS else '.png'
        else:
            out_ext = '.' + ext
        stem = f'{source.stem}_{source.suffix[1:].lower()}' if qualified else source.stem
        return f'{stem}_{suffix}{out_ext}' if suffix else f'{stem}{out_ext}'

    if single and output.suffix and not output.is_dir():
        return [Job(sources[0], output, sources[0].suffix.lower() in VIDEO_EXTENSIONS)]
    by_target = defaultdict(list)
    for source in sources:
        by_target[name(source, False).lower()].append(source)
    return [Job(source, output / name(source, len(by_target[name(source, False).lower()]) > 1),
                source.suffix.lower() in VIDEO_EXTENSIONS) for source in sources]


def upscale_image_file(upscaler: Upscaler, source: Path, target: Path) -> List[str]:
    """Write ``target`` from ``source``; return notes (orientation applied, format conversions)."""
    content = source.read_bytes()
    out = upscaler.image(decode_unchanged(content, str(source)), progress=True)
    encoded, notes = encode_image(out, target.suffix or '.png')
    atomic_write_bytes(str(target), encoded)
    orientation = exif_orientation(content)
    return notes + ([f'turned upright by its EXIF orientation {orientation}'] if orientation != 1 else [])


def upscale_video(upscaler: Upscaler, source: Path, target: Path, batch: int) -> int:
    """Upscale every frame of ``source`` into ``target`` (mp4v, source FPS); return the frame count."""
    capture = cv2.VideoCapture(str(source))
    if not capture.isOpened():
        raise ImageReadError(f'cannot open video {source}: unreadable file or unsupported codec')
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f'.{target.stem}.partial{target.suffix}')  # renamed once complete
    writer, frames = None, 0
    bar = tqdm(total=total, unit='frame', desc=source.name)
    try:
        while True:
            chunk = [frame for frame in (capture.read() for _ in range(batch)) if frame[0]]
            if not chunk:
                break
            lq = torch.from_numpy(np.stack([f[1][:, :, ::-1] for f in chunk])).permute(0, 3, 1, 2).float() / 255
            out = upscaler(lq)
            out = (out.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).flip(-1).cpu().numpy()
            if writer is None:
                writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*'mp4v'), fps,
                                         (out.shape[2], out.shape[1]))
                if not writer.isOpened():
                    raise ImageReadError(f'OpenCV cannot write {target}: use an .mp4 output name')
            for frame in out:
                writer.write(np.ascontiguousarray(frame))
            frames += len(chunk)
            bar.update(len(chunk))
    finally:
        bar.close()
        capture.release()
        if writer is not None:
            writer.release()
    if frames == 0:
        partial.unlink(missing_ok=True)
        raise ImageReadError(f'{source} has no decodable frames')
    partial.replace(target)
    print('audio is not copied by OpenCV; to keep it: ' +
          shlex.join(['ffmpeg', '-i', str(target), '-i', str(source), '-map', '0:v', '-map', '1:a?', '-c', 'copy',
                      str(target.with_name(target.stem + '_audio' + target.suffix))]))
    return frames


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
    setup = inference_setup(args)
    source_root, output = Path(args.input), Path(args.output)
    single = not source_root.is_dir()
    sources = collect_inputs(source_root)
    if not single and output.resolve() == source_root.resolve():
        raise OptionError('OUTPUT', f'{output} is the input folder: the outputs would be taken as inputs on the '
                          f'next run; choose another folder (e.g. {output / "upscaled"})')
    net, weights = load_network(args, scale=released_for_scale(args))
    upscaler = make_upscaler(net, setup)
    jobs = plan_jobs(sources, output, single, args.suffix if args.suffix is not None else f'x{upscaler.scale}',
                     args.ext)
    for folder in sorted({job.target.parent for job in jobs}):
        writable_folder(folder)
    print(f'upscale x{upscaler.scale}: {len(jobs)} input(s); {weights.describe()}; {upscaler.describe()}')
    written = skipped = failed = 0
    for job in jobs:
        if job.target.exists() and not args.overwrite:
            print(f'skipped {job.source}: {job.target} exists (pass --overwrite to replace it)')
            skipped += 1
            continue
        start = time.perf_counter()
        try:
            if job.is_video:
                frames = upscale_video(upscaler, job.source, job.target, args.batch)
                seconds = time.perf_counter() - start
                print(f'{job.source} -> {job.target}: {frames} frames, {frames / seconds:.2f} FPS end to end')
            else:
                notes = upscale_image_file(upscaler, job.source, job.target)
                print(f'{job.source} -> {job.target} ({time.perf_counter() - start:.2f} s)' +
                      ''.join(f'; {note}' for note in notes))
            written += 1
        except (ImageReadError, OSError) as err:
            print(f'failed {job.source}: {err}', file=sys.stderr)
            failed += 1
    print(f'done: {written} written, {skipped} skipped (existing), {failed} failed')
    return 1 if failed else 0
