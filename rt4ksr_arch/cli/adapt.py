"""Fine-tune RT4KSR weights on your own images and keep the result only if it measurably helps.

    rt4ksr adapt INPUT --weights W --out adapted.pth [--iters N] [--degradation bicubic|ntire23|jpeg:Q]
                 [--max-frames N] [--holdout F] [--batch N] [--patch N] [--lr LR] [--eval-every N] [--patience N]
                 [--work DIR] [--restart] [--device D] [--overwrite]

INPUT is a folder of images, one image, or a video (any container and codec FFmpeg reads; up to
``--max-frames`` frames evenly spaced over it): your content, e.g. a show, game captures, scanned
pages, satellite or microscope images. They are the HR; the LR is made from them as
``rt4ksr_arch.ops.degradations`` says: MATLAB bicubic (``--degradation bicubic``), then JPEG
compression of the LR as a real source has it (``jpeg:Q``), or the NTIRE 2023 real-time 4K SR
challenge's LR (``ntire23``: PIL bicubic, then JPEG quality 90).

The right ``--holdout`` part of every image is held out: adapt reports its Y-PSNR before and after
and writes the adapted weights only when they beat the given ones there; otherwise it writes the
given weights and says so. Training: AdamW, warmup, cosine decay, EMA, early stop on the held-out
part; progress bar. ``--work`` (default ``<out>.adapt/``) keeps the state, ``curves.png`` and
``curves.csv``: running the same command again continues an interrupted run. The output stores
the network config, so ``rt4ksr upscale --weights adapted.pth`` uses it.
"""
import argparse
import os
import sys
from pathlib import Path
from typing import Callable, List, Tuple

import numpy as np

from rt4ksr_arch.adapt import AdaptOptions, adapt, video_frames
from rt4ksr_arch.checkpoint import read_weights
from rt4ksr_arch.cli.common import (add_device, add_overwrite, add_weights, assumption_note, device, positive_int,
                                    refuse_existing, writable_folder)
from rt4ksr_arch.data.image_io import decode_image, is_image_name, list_images
from rt4ksr_arch.errors import ImageReadError, OptionError
from rt4ksr_arch.media.streams import is_video_name

HELP = 'fine-tune weights on your own images or video (held-out check; keeps the original if it does not help)'
DEFAULTS = AdaptOptions()
OUT_SUFFIXES = ('.pth', '.safetensors')
MAX_FRAMES = 32  # frames taken from a video by default: enough variety, and 32 1080p frames hold ~200 MB
FLAGS = {'iters': '--iters', 'batch': '--batch', 'patch': '--patch', 'lr': '--lr', 'warmup': '--warmup',
         'eval_every': '--eval-every', 'patience': '--patience', 'holdout': '--holdout', 'min_gain': '--min-gain',
         'degradation': '--degradation', 'seed': '--seed', 'eval_frames': '--eval-frames'}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('input', help='your content as HR: a folder of images, one image, or a video file')
    add_weights(parser)
    parser.add_argument('--out', required=True, help='adapted weights to write (.pth or .safetensors)')
    parser.add_argument('--iters', type=positive_int, default=DEFAULTS.iters,
                        help=f'training iterations at most (default {DEFAULTS.iters})')
    parser.add_argument('--degradation', default=DEFAULTS.degradation,
                        help='how your LR is made from HR: bicubic (default), jpeg:Q (bicubic, then JPEG quality Q), '
                        'ntire23 (bicubic, then JPEG quality 90)')
    parser.add_argument('--max-frames', type=positive_int, default=MAX_FRAMES,
                        help=f'video INPUT: frames used, evenly spaced over the video (default {MAX_FRAMES})')
    parser.add_argument('--holdout', type=float, default=DEFAULTS.holdout,
                        help=f'held-out fraction of each image\'s width, its right part (default {DEFAULTS.holdout})')
    parser.add_argument('--batch', type=positive_int, default=DEFAULTS.batch,
                        help=f'crops per iteration (default {DEFAULTS.batch})')
    parser.add_argument('--patch', type=positive_int, default=DEFAULTS.patch,
                        help=f'HR crop side in pixels (default {DEFAULTS.patch})')
    parser.add_argument('--lr', type=float, default=DEFAULTS.lr, help=f'peak learning rate (default {DEFAULTS.lr})')
    parser.add_argument('--warmup', type=int, default=None,
                        help='iterations of linear learning-rate warmup, below --iters (default: a tenth of --iters, '
                        'at most 30)')
    parser.add_argument('--eval-every', type=positive_int, default=DEFAULTS.eval_every,
                        help=f'iterations between held-out measurements (default {DEFAULTS.eval_every})')
    parser.add_argument('--patience', type=positive_int, default=DEFAULTS.patience,
                        help=f'stop after this many measurements without a new best (default {DEFAULTS.patience})')
    parser.add_argument('--min-gain', type=float, default=DEFAULTS.min_gain,
                        help='dB the held-out Y-PSNR must rise to keep the adapted weights (default 0)')
    parser.add_argument('--eval-frames', type=positive_int, default=DEFAULTS.eval_frames,
                        help='held-out regions measured, evenly spread over the images (default '
                        f'{DEFAULTS.eval_frames})')
    parser.add_argument('--seed', type=int, default=DEFAULTS.seed, help='seed of the crops (default 0)')
    parser.add_argument('--work', default=None,
                        help='folder for the state and curves (default: OUT with .adapt appended); the same command '
                        'continues an interrupted run')
    parser.add_argument('--restart', action='store_true', help='start over, discarding the run in --work')
    add_device(parser)
    add_overwrite(parser)


def read_frames(source: str, max_frames: int = MAX_FRAMES,
                warn: Callable[[str], None] = lambda message: print(f'warning: {message}', file=sys.stderr)
                ) -> Tuple[List[np.ndarray], List[str]]:
    """The RGB frames and names of a video file (up to ``max_frames``, evenly spaced; uint8/uint16),
    an image file or a folder's images (sorted; float32 [0, 1]).

    A folder's unreadable images are left out, each named through ``warn``. Raises ``OptionError``
    for another kind of file, ``ImageReadError`` for an unreadable file or a folder with no readable image.
    """
    path = Path(source)
    if not path.exists():
        raise OptionError('INPUT', f'{source} does not exist (a folder of images, one image or a video file)')
    if path.is_file() and is_video_name(path.name):
        return video_frames(str(path), max_frames)
    if path.is_file() and not is_image_name(path.name):
        raise OptionError('INPUT', f'{source} is neither an image nor a video (by its extension): adapt reads a '
                          'folder of images, one image or a video file')
    if path.is_file():
        return [read_rgb(str(path))], [path.name]
    frames, names = [], []
    for name in list_images(source):
        try:
            frames.append(read_rgb(name))
            names.append(os.path.basename(name))
        except (ImageReadError, OSError) as err:
            warn(f'skipped {os.path.basename(name)}: {err}')
    if not frames:
        raise ImageReadError(f'{source} holds no readable image (each was skipped above)')
    return frames, names


def read_rgb(path: str) -> np.ndarray:
    """One image file as HWC RGB (EXIF orientation applied; ``decode_image``'s dtype and range)."""
    with open(path, 'rb') as f:
        bgr, _ = decode_image(f.read(), path)
    return np.ascontiguousarray(bgr[..., ::-1])


def run(args: argparse.Namespace) -> int:
    try:
        opts = AdaptOptions(iters=args.iters, batch=args.batch, patch=args.patch, lr=args.lr, warmup=args.warmup,
                            eval_every=args.eval_every, patience=args.patience, holdout=args.holdout,
                            min_gain=args.min_gain, eval_frames=args.eval_frames, degradation=args.degradation,
                            seed=args.seed)
    except OptionError as err:
        raise err.renamed(FLAGS) from None
    dev = device(args)
    if Path(args.out).suffix.lower() not in OUT_SUFFIXES:
        raise OptionError('--out', f'must end in {" or ".join(OUT_SUFFIXES)} (the formats adapt writes), got '
                          f'{Path(args.out).name}; for ONNX or TensorRT, `rt4ksr export` the adapted file')
    if os.path.abspath(args.weights) == os.path.abspath(args.out):
        raise OptionError('--out', 'is the --weights file; write the adapted weights to another file')
    refuse_existing([args.out], args.overwrite)
    writable_folder(Path(args.out).resolve().parent, '--out')
    work = args.work or f'{args.out}.adapt'
    writable_folder(Path(work).resolve(), '--work')
    hf_branch = None if args.hf_branch is None else args.hf_branch == 'on'
    overrides = {'act_type': args.act_type, 'hf_branch': hf_branch}
    given = read_weights(args.weights, args.param_key, overrides)
    if given.assumed:
        print(assumption_note(given))
    try:
        frames, names = read_frames(args.input, args.max_frames)
    except ImageReadError as err:
        raise OptionError('INPUT', str(err)) from None
    try:
        result = adapt(frames, args.weights, args.out, work, opts, dev, param_key=args.param_key,
                       overrides=overrides, names=names,
                       restart=args.restart, progress=True, report=print)
    except OptionError as err:  # options checked against the weights (e.g. --patch and the scale)
        raise err.renamed(FLAGS) from None
    best_iter, best = result.best_trained
    how = f'stopped early after {result.iterations}' if result.stopped_early else f'{result.iterations}'
    print(f'held-out Y-PSNR: given weights {result.before:.3f} dB, adapted {best:.3f} dB at best (iteration '
          f'{best_iter} of {how} iterations); bicubic {result.bicubic:.3f} dB')
    if result.adapted:
        print(f'wrote the adapted weights to {result.output} ({result.gain:+.3f} dB on the held-out part)')
    elif best > result.before:
        print(f'the adapted weights gained {best - result.before:+.3f} dB on the held-out part, less than --min-gain '
              f'{args.min_gain:g} dB: wrote the GIVEN weights to {result.output} (unchanged)')
    else:
        advice = ('training diverged: try a smaller --lr or a longer --warmup' if best < result.before - 1 else
                  'try more --iters, a larger --lr or more images')
        print(f'adaptation did not beat the given weights on the held-out part: wrote the GIVEN weights to '
              f'{result.output} (unchanged; {advice})')
    print(f'curves: {result.curves[1]} ({result.curves[0]})')
    if result.adapted:
        print(f'Try it: rt4ksr upscale your_image.png results/ --weights {result.output}')
    return 0
