"""Upscale images, folders and videos with RT4KSR weights, no YAML needed.

    rt4ksr upscale INPUT OUTPUT --weights W [--scale auto] [--tile N] [--precision fp32|fp16|bf16]
                   [--self-ensemble] [--device auto|cpu|cuda] [--batch 4] [--overwrite]

INPUT is an image, a folder of images or a video file. OUTPUT is a folder (outputs are named
``<stem>_x<scale>.png`` / ``.mp4``) or, for a single input, a file name. Gray, RGBA (the alpha
is upscaled with MATLAB bicubic), 16-bit (saved 16-bit) and odd-size images are handled;
unreadable files are reported and skipped, and the exit status is 1 when any failed.
Existing outputs are kept unless ``--overwrite``. Videos are decoded and encoded with OpenCV
(mp4v) at the source frame rate; OpenCV carries no audio, so the command to copy the audio
track with ffmpeg is printed.
"""
import argparse
import sys
import time
from pathlib import Path
from typing import List

import cv2
import numpy as np
import torch
from tqdm import tqdm

from rt4ksr_arch.cli.common import (CLI_NAMES, add_inference, add_overwrite, add_weights, device, inference_options,
                                    load_network, quote)
from rt4ksr_arch.data.image_io import IMAGE_EXTENSIONS, ImageReadError, decode_unchanged, list_images
from rt4ksr_arch.fileio import atomic_write_bytes
from rt4ksr_arch.inference import Upscaler

HELP = 'upscale an image, a folder of images or a video'
VIDEO_EXTENSIONS = ('.mp4', '.mov', '.avi', '.mkv', '.webm', '.m4v')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('input', help='image, folder of images, or video file')
    parser.add_argument('output', help='output folder (or file name for a single input)')
    add_weights(parser)
    parser.add_argument('--scale', default='auto', choices=['auto', '2', '3', '4'],
                        help='expected scale; auto reads it from the weights')
    add_inference(parser)
    add_overwrite(parser)


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
          quote('ffmpeg', '-i', target, '-i', source, '-map', '0:v', '-map', '1:a?', '-c', 'copy',
                target.with_name(target.stem + '_audio' + target.suffix)))
    return frames


def collect_inputs(source: Path) -> List[Path]:
    if source.is_dir():
        return [Path(p) for p in list_images(str(source), IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)]
    if not source.exists():
        raise FileNotFoundError(f'INPUT {source} does not exist')
    return [source]


def run(args: argparse.Namespace) -> int:
    opts = inference_options(args)
    dev = device(args)
    net, _ = load_network(args, scale=None if args.scale == 'auto' else int(args.scale))
    upscaler = Upscaler(net, opts, dev, CLI_NAMES)
    sources = collect_inputs(Path(args.input))
    single = not Path(args.input).is_dir()
    written = skipped = failed = 0
    for source in sources:
        is_video = source.suffix.lower() in VIDEO_EXTENSIONS
        target = output_path(source, Path(args.output), upscaler.scale, single, '.mp4' if is_video else '.png')
        if target.exists() and not args.overwrite:
            print(f'skipped {source}: {target} exists (pass --overwrite to replace it)')
            skipped += 1
            continue
        start = time.perf_counter()
        try:
            if is_video:
                frames = upscale_video(upscaler, source, target, args.batch)
                seconds = time.perf_counter() - start
                print(f'{source} -> {target}: {frames} frames, {frames / seconds:.2f} FPS end to end')
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                upscale_image_file(upscaler, source, target)
                print(f'{source} -> {target} ({time.perf_counter() - start:.2f} s)')
            written += 1
        except (ImageReadError, OSError) as err:
            print(f'failed {source}: {err}', file=sys.stderr)
            failed += 1
    print(f'done: {written} written, {skipped} skipped (existing), {failed} failed')
    return 1 if failed else 0
