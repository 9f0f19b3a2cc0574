"""Upscale images, folders and videos with RT4KSR weights, no YAML needed.

    python -m rt4ksr_arch.upscale INPUT OUTPUT --weights W [--scale auto] [--tile 512]
                                  [--fp16 | --bf16] [--self-ensemble] [--device auto|cuda|cpu]
                                  [--batch 4] [--overwrite]

INPUT is an image, a folder of images or a video file. OUTPUT is a folder (outputs are named
``<stem>_x<scale>.png`` / ``.mp4``) or, for a single input, a file name. Gray, RGBA (the alpha
is upscaled with MATLAB bicubic), 16-bit (saved 16-bit) and odd-size images are handled;
unreadable files are reported and skipped, and the exit status says whether any failed.
Existing outputs are kept unless ``--overwrite``. Videos are decoded and encoded with OpenCV
(mp4v) at the source frame rate; OpenCV carries no audio, so the command to copy the audio
track with ffmpeg is printed.
"""
import argparse
import sys
import time
from pathlib import Path
from typing import List, Optional, Tuple

import cv2
import numpy as np
import torch
from tqdm import tqdm

import rt4ksr_arch  # noqa: F401  (compat + registries)
from rt4ksr_arch.checkpoint import load_from_file
from rt4ksr_arch.data.image_io import IMAGE_EXTENSIONS, ImageReadError, decode_unchanged
from rt4ksr_arch.fileio import atomic_write_bytes
from rt4ksr_arch.inference import InferenceOptions, resolve_device, upscale
from rt4ksr_arch.ops.bicubic import imresize

VIDEO_EXTENSIONS = ('.mp4', '.mov', '.avi', '.mkv', '.webm', '.m4v')


def load_network(weights: str, scale: Optional[int], device: torch.device) -> torch.nn.Module:
    """The fused network of ``weights`` on ``device``; ``scale`` (if given) must match the weights."""
    # channels_last: LayerNorm2d becomes one native kernel (2.3x faster on a CPU at 1080p, README)
    return load_from_file(weights, deploy=True, scale=scale).to(device, memory_format=torch.channels_last)


def upscale_array(net: torch.nn.Module, img: np.ndarray, opts: InferenceOptions) -> np.ndarray:
    """Upscale a decoded image as stored (uint8/uint16, HW, HWC gray/BGR/BGRA); same dtype and channels."""
    peak = 65535.0 if img.dtype == np.uint16 else 255.0
    planes = img[:, :, None] if img.ndim == 2 else img
    color = planes[:, :, :3] if planes.shape[2] >= 3 else np.repeat(planes[:, :, :1], 3, axis=2)
    lq = torch.from_numpy(np.ascontiguousarray(color[:, :, ::-1]).astype(np.float32) / peak).permute(2, 0, 1)
    out = upscale(net, lq[None], net.upscale, opts, progress=True, tile_option='--tile')[0].clamp(0, 1)
    out = out.permute(1, 2, 0).cpu().numpy()[:, :, ::-1]
    if planes.shape[2] < 3:  # gray in, gray out: the three outputs of a gray input are averaged
        out = out.mean(axis=2, keepdims=True)
    elif planes.shape[2] == 4:  # the alpha channel is not an image: plain bicubic, never the network
        alpha = imresize(torch.from_numpy(planes[:, :, 3].astype(np.float32) / peak), float(net.upscale))
        out = np.concatenate([out, alpha.clamp_(0, 1).numpy()[:, :, None]], axis=2)
    out = np.rint(out * peak).astype(img.dtype)
    return out[:, :, 0] if img.ndim == 2 or planes.shape[2] == 1 else out


def output_path(source: Path, output: Path, scale: int, single: bool, suffix: str) -> Path:
    """``output`` itself for a single input given a file name, else ``output/<stem>_x<scale><suffix>``."""
    if single and output.suffix and not output.is_dir():
        return output
    return output / f'{source.stem}_x{scale}{suffix}'


def upscale_image_file(net: torch.nn.Module, source: Path, target: Path, opts: InferenceOptions) -> None:
    img = decode_unchanged(source.read_bytes(), str(source))
    out = upscale_array(net, img, opts)
    ok, encoded = cv2.imencode(target.suffix or '.png', out)
    if not ok:
        raise ImageReadError(f'cannot encode {target}: choose a .png or .tif output name')
    atomic_write_bytes(str(target), encoded.tobytes())


def upscale_video(net: torch.nn.Module, source: Path, target: Path, opts: InferenceOptions, batch: int) -> int:
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
            out = upscale(net, lq, net.upscale, opts)
            out = (out.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).flip(-1).cpu().numpy()
            if writer is None:
                writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*'mp4v'), fps,
                                         (out.shape[2], out.shape[1]))
                if not writer.isOpened():
                    raise RuntimeError(f'OpenCV cannot write {target}: use an .mp4 output name')
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
    print(f'audio is not copied by OpenCV; to keep it: ffmpeg -i {target} -i {source} -map 0:v -map 1:a? '
          f'-c copy {target.with_name(target.stem + "_audio" + target.suffix)}')
    return frames


def collect_inputs(source: Path) -> List[Path]:
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)
        if not files:
            raise FileNotFoundError(f'no images or videos in {source} ({", ".join(IMAGE_EXTENSIONS)})')
        return files
    if not source.exists():
        raise FileNotFoundError(f'INPUT {source} does not exist')
    return [source]


def run(args: argparse.Namespace) -> Tuple[int, int, int]:
    """Upscale every input; return (written, skipped as existing, failed)."""
    device = resolve_device(args.device)
    net = load_network(args.weights, None if args.scale == 'auto' else int(args.scale), device)
    opts = InferenceOptions(tile_size=args.tile, tile_pad=args.tile_pad, tile_batch=1,
                            self_ensemble=args.self_ensemble,
                            precision='fp16' if args.fp16 else 'bf16' if args.bf16 else 'fp32', channels_last=True)
    sources = collect_inputs(Path(args.input))
    single = not Path(args.input).is_dir()
    written = skipped = failed = 0
    for source in sources:
        is_video = source.suffix.lower() in VIDEO_EXTENSIONS
        target = output_path(source, Path(args.output), net.upscale, single, '.mp4' if is_video else '.png')
        if target.exists() and not args.overwrite:
            print(f'skipped {source}: {target} exists (pass --overwrite to replace it)')
            skipped += 1
            continue
        start = time.perf_counter()
        try:
            if is_video:
                frames = upscale_video(net, source, target, opts, args.batch)
                seconds = time.perf_counter() - start
                print(f'{source} -> {target}: {frames} frames, {frames / seconds:.2f} FPS end to end')
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                upscale_image_file(net, source, target, opts)
                print(f'{source} -> {target} ({time.perf_counter() - start:.2f} s)')
            written += 1
        except (ImageReadError, OSError) as err:
            print(f'failed {source}: {err}', file=sys.stderr)
            failed += 1
    return written, skipped, failed


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m rt4ksr_arch.upscale', description=__doc__.split('\n')[0])
    parser.add_argument('input', help='image, folder of images, or video file')
    parser.add_argument('output', help='output folder (or file name for a single input)')
    parser.add_argument('--weights', required=True, help='RT4KSR checkpoint (any format rt4ksr_arch.convert reads)')
    parser.add_argument('--scale', default='auto', choices=['auto', '2', '3', '4'],
                        help='expected scale; auto reads it from the weights')
    parser.add_argument('--tile', type=int, default=None, help='tile size in LR pixels (default: whole image)')
    parser.add_argument('--tile-pad', type=int, default=None, help='LR context per tile (default: exact radius)')
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument('--fp16', action='store_true', help='half precision (GPU)')
    precision.add_argument('--bf16', action='store_true', help='bfloat16')
    parser.add_argument('--self-ensemble', action='store_true', help='x8 geometric self-ensemble (8x slower)')
    parser.add_argument('--device', default='auto', help='auto (cuda when available), cuda, cuda:1, cpu')
    parser.add_argument('--batch', type=int, default=4, help='video frames per forward (default 4)')
    parser.add_argument('--overwrite', action='store_true', help='replace existing outputs')
    args = parser.parse_args(argv)
    if args.tile is not None and args.tile < 1 or args.batch < 1:
        parser.error('--tile and --batch must be positive')
    try:
        written, skipped, failed = run(args)
    except (FileNotFoundError, ValueError) as err:  # CheckpointError, ImageReadError, bad --device
        print(f'error: {err}', file=sys.stderr)
        return 2
    print(f'done: {written} written, {skipped} skipped (existing), {failed} failed')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
