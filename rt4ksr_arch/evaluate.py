"""Run a checkpoint over every benchmark set present and write a Markdown + CSV table (+ figure).

    python -m rt4ksr_arch.evaluate WEIGHTS [--data datasets] [--out results/evaluate_x2]
                                   [--sets Set5 Set14 B100 Urban100 Manga109] [--tile 512]
                                   [--self-ensemble] [--precision fp32|fp16|bf16] [--figure Set5/butterfly Set14/zebra] [--overwrite]

A set is ``<data>/<Set>/HR`` plus, when present, ``<Set>/LR_bicubic/X<s>/<stem>x<s>.png``;
without LR files the LR is made with MATLAB-exact bicubic from the mod-cropped HR. Metrics:
PSNR and SSIM on the BT.601 Y channel and PSNR on RGB, crop border = scale, on 8-bit outputs
(as BasicSR's test.py reports them). Bicubic upscaling of the same LR is a row of the table.
Missing sets are listed and skipped. Existing tables are kept unless ``--overwrite``.
"""
import argparse
import csv
import io
import sys
from os import path as osp
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
import torch

import rt4ksr_arch  # noqa: F401  (compat + registries)
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.utils import bgr2ycbcr, tensor2img
from rt4ksr_arch.data.image_io import IMAGE_EXTENSIONS, ImageReadError, decode_image
from rt4ksr_arch.figure import comparison_row, stack_rows
from rt4ksr_arch.fileio import atomic_write_bytes
from rt4ksr_arch.inference import InferenceOptions, resolve_device, upscale
from rt4ksr_arch.ops.bicubic import imresize
from rt4ksr_arch.upscale import load_network

SETS = ('Set5', 'Set14', 'B100', 'Urban100', 'Manga109')
METRICS = ('psnr_y', 'ssim_y', 'psnr_rgb')
FIGURE_PANEL = 192  # display side of every crop, so rows from any image line up


def to_tensor(bgr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).permute(2, 0, 1)[None]


def load_pair(hr_path: Path, lr_dir: Path, scale: int) -> Tuple[np.ndarray, torch.Tensor]:
    """(mod-cropped HR, 8-bit BGR) and its LR ([1,3,h,w] RGB float in [0, 1])."""
    hr, _ = decode_image(hr_path.read_bytes(), str(hr_path))
    hr = hr[:hr.shape[0] // scale * scale, :hr.shape[1] // scale * scale]
    hr8 = np.rint(hr * 255).astype(np.uint8)
    lr_path = lr_dir / f'{hr_path.stem}x{scale}.png'
    if lr_path.is_file():
        lr, _ = decode_image(lr_path.read_bytes(), str(lr_path))
        if lr.shape[:2] != (hr.shape[0] // scale, hr.shape[1] // scale):
            raise ImageReadError(f'{lr_path} is {lr.shape[1]}x{lr.shape[0]}, not HR/{scale} of {hr_path}')
        return hr8, to_tensor(lr)
    return hr8, imresize(to_tensor(hr8).float(), 1 / scale, round_uint8=True) / 255


def scores(sr: np.ndarray, hr: np.ndarray, scale: int) -> Dict[str, float]:
    return {'psnr_y': calculate_psnr(sr, hr, scale, test_y_channel=True),
            'ssim_y': calculate_ssim(sr, hr, scale, test_y_channel=True),
            'psnr_rgb': calculate_psnr(sr, hr, scale)}


def hardest_window(bicubic: np.ndarray, hr: np.ndarray, size: int) -> Tuple[int, int]:
    """Top-left of the ``size`` x ``size`` HR window where bicubic errs most (the figure's crop)."""
    error = np.abs(bgr2ycbcr(bicubic, y_only=True).astype(np.float64) - bgr2ycbcr(hr, y_only=True))
    window = cv2.boxFilter(error, -1, (size, size), normalize=False, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
    valid = window[:hr.shape[0] - size + 1, :hr.shape[1] - size + 1]
    top, left = np.unravel_index(np.argmax(valid), valid.shape)
    return int(top), int(left)


def evaluate(args: argparse.Namespace) -> Tuple[str, str, Optional[np.ndarray]]:
    """(Markdown table, CSV table, figure or None)."""
    device = resolve_device(args.device)
    net = load_network(args.weights, None, device)
    scale = net.upscale
    opts = InferenceOptions(tile_size=args.tile, self_ensemble=args.self_ensemble, channels_last=True,
                            precision=args.precision)
    method = 'RT4KSR+' if args.self_ensemble else 'RT4KSR'
    wanted = {tuple(f.split('/', 1)) for f in args.figure}
    results: Dict[str, Dict[str, Dict[str, float]]] = {}
    rows = []
    for name in args.sets:
        hr_dir = Path(args.data) / name / 'HR'
        if not hr_dir.is_dir():
            print(f'skipped {name}: {hr_dir} not found (datasets/README.md says how to get it)')
            continue
        files = sorted(p for p in hr_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        totals = {m: {k: 0.0 for k in METRICS} for m in ('bicubic', method)}
        for hr_path in files:
            hr, lq = load_pair(hr_path, hr_dir.parent / 'LR_bicubic' / f'X{scale}', scale)
            outputs = {'bicubic': tensor2img(imresize(lq, float(scale)).clamp(0, 1)),
                       method: tensor2img(upscale(net, lq, scale, opts, device=device))}
            for m, img in outputs.items():
                for k, v in scores(img, hr, scale).items():
                    totals[m][k] += v / len(files)
            if (name, hr_path.stem) in wanted:
                rows.append(figure_row(hr, lq, outputs, scale, args.crop, method))
        results[name] = totals
        print(f'{name} ({len(files)} images): ' + ', '.join(
            f'{m} {t["psnr_y"]:.2f} dB' for m, t in totals.items()))
    if not results:
        raise FileNotFoundError(f'no benchmark set found under {args.data} (looked for {", ".join(args.sets)})')
    header = ['method'] + [f'{s} {k}' for s in results for k in METRICS]
    table = [[m] + [results[s][m][k] for s in results for k in METRICS] for m in ('bicubic', method)]
    markdown = '\n'.join(
        [f'x{scale}, {osp.basename(args.weights)}; Y: BT.601, crop border {scale}; RGB PSNR same crop', '',
         '| ' + ' | '.join(header) + ' |', '|' + ' --- |' * len(header)] +
        ['| ' + ' | '.join([r[0]] + [f'{v:.4f}' if 'ssim' in h else f'{v:.2f}' for h, v in zip(header[1:], r[1:])])
         + ' |' for r in table]) + '\n'
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows([[r[0]] + [f'{v:.6f}' for v in r[1:]] for r in table])
    return markdown, buffer.getvalue(), stack_rows(rows) if rows else None


def figure_row(hr: np.ndarray, lq: torch.Tensor, outputs: Dict[str, np.ndarray], scale: int, crop: int,
               method: str) -> np.ndarray:
    """LR (nearest) / bicubic / method / HR crops of the window where bicubic errs most."""
    size = min(crop * scale, hr.shape[0], hr.shape[1]) // scale * scale
    top, left = hardest_window(outputs['bicubic'], hr, size)
    top, left = top // scale * scale, left // scale * scale
    window = (slice(top, top + size), slice(left, left + size))
    lr = tensor2img(lq)[top // scale:(top + size) // scale, left // scale:(left + size) // scale]
    crops = [(lr, 'LR')]
    for m in ('bicubic', method):
        psnr = calculate_psnr(outputs[m][window], hr[window], 0, test_y_channel=True)
        crops.append((outputs[m][window], f'{m} {psnr:.2f} dB'))
    crops.append((hr[window], 'HR'))
    return comparison_row(crops, size=FIGURE_PANEL)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m rt4ksr_arch.evaluate', description=__doc__.split('\n')[0])
    parser.add_argument('weights', help='RT4KSR checkpoint (any format rt4ksr_arch.convert reads)')
    parser.add_argument('--data', default='datasets', help='folder holding <Set>/HR (default: datasets)')
    parser.add_argument('--sets', nargs='+', default=list(SETS), help=f'sets to run (default: {" ".join(SETS)})')
    parser.add_argument('--out', default=None, help='output folder (default: results/evaluate_<weights stem>)')
    parser.add_argument('--tile', type=int, default=None, help='tile size in LR pixels (exact; default: whole)')
    parser.add_argument('--self-ensemble', action='store_true', help='x8 geometric self-ensemble (RT4KSR+)')
    parser.add_argument('--figure', nargs='*', default=[], metavar='SET/STEM',
                        help='images for figure.png, e.g. Set5/butterfly Set14/zebra')
    parser.add_argument('--crop', type=int, default=48, help='figure crop side in LR pixels (default 48)')
    parser.add_argument('--precision', default='fp32', choices=['fp32', 'fp16', 'bf16'], help='autocast precision')
    parser.add_argument('--device', default='auto', help='auto, cuda, cpu')
    parser.add_argument('--overwrite', action='store_true', help='replace existing tables and figure')
    args = parser.parse_args(argv)
    out = Path(args.out or osp.join('results', f'evaluate_{Path(args.weights).stem}'))
    targets = [out / 'table.md', out / 'table.csv'] + ([out / 'figure.png'] if args.figure else [])
    existing = [str(t) for t in targets if t.exists()]
    if existing and not args.overwrite:
        print(f'error: {", ".join(existing)} exist; pass --overwrite or choose another --out', file=sys.stderr)
        return 2
    try:
        markdown, table, figure = evaluate(args)
    except (FileNotFoundError, ValueError) as err:  # CheckpointError, ImageReadError, bad --device
        print(f'error: {err}', file=sys.stderr)
        return 2
    atomic_write_bytes(str(out / 'table.md'), markdown.encode())
    atomic_write_bytes(str(out / 'table.csv'), table.encode())
    if args.figure:
        if figure is None:
            print(f'error: none of {args.figure} was found among the evaluated images', file=sys.stderr)
            return 2
        atomic_write_bytes(str(out / 'figure.png'), cv2.imencode('.png', figure)[1].tobytes())
    print(markdown)
    print(f'written: {", ".join(str(t) for t in targets)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
