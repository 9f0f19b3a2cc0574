"""Benchmark-set evaluation: PSNR/SSIM tables against bicubic, and comparison figures.

A set is ``<root>/<Set>/HR`` plus, when present, ``<Set>/LR_bicubic/X<s>/<stem>x<s>.png``;
without LR files the LR is made with MATLAB-exact bicubic from the mod-cropped HR (the same
files: tests/test_bicubic.py). Metrics follow BasicSR's test protocol: PSNR and SSIM on the
BT.601 Y channel and PSNR on RGB, crop border = scale, on 8-bit outputs. Bicubic upscaling of
the same LR is the baseline row.
"""
import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from tqdm import tqdm

from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.utils import bgr2ycbcr, tensor2img
from rt4ksr_arch.data.image_io import ImageReadError, decode_image, is_image_name
from rt4ksr_arch.evaluation.figure import comparison_row, stack_rows
from rt4ksr_arch.inference import Upscaler
from rt4ksr_arch.ops.bicubic import imresize
from rt4ksr_arch.ops.degradations import Degradation, crop_hr, degrade

SETS = ('Set5', 'Set14', 'B100', 'Urban100', 'Manga109')
METRICS = ('psnr_y', 'ssim_y', 'psnr_rgb')
FIGURE_PANEL = 192  # display side of every crop, so rows from any image line up

Scores = Dict[str, float]  # metric -> value (dB for PSNR)


@dataclass
class Evaluation:
    """Mean scores per set and method (``bicubic`` and the network's), and the figure rows."""

    scale: int
    method: str
    means: Dict[str, Dict[str, Scores]] = field(default_factory=dict)  # set -> method -> metric -> mean
    figure_rows: List[np.ndarray] = field(default_factory=list)  # 8-bit BGR rows for stack_rows

    def markdown(self, title: str) -> str:
        """A Markdown table, one row per method, columns ``<set> <metric>``."""
        header = ['method'] + [f'{s} {k}' for s in self.means for k in METRICS]
        lines = [title, '', '| ' + ' | '.join(header) + ' |', '|' + ' --- |' * len(header)]
        for method in ('bicubic', self.method):
            values = [self.means[s][method][k] for s in self.means for k in METRICS]
            cells = [f'{v:.4f}' if h.endswith('ssim_y') else f'{v:.2f}' for h, v in zip(header[1:], values)]
            lines.append('| ' + ' | '.join([method] + cells) + ' |')
        return '\n'.join(lines) + '\n'

    def csv(self) -> str:
        """The same table as CSV with 6 decimals."""
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(['method'] + [f'{s} {k}' for s in self.means for k in METRICS])
        for method in ('bicubic', self.method):
            writer.writerow([method] + [f'{self.means[s][method][k]:.6f}' for s in self.means for k in METRICS])
        return buffer.getvalue()

    def figure(self) -> np.ndarray:
        """The comparison figure (8-bit BGR); needs at least one figure row."""
        return stack_rows(self.figure_rows)


def to_tensor(bgr: np.ndarray) -> torch.Tensor:
    """HWC BGR array -> [1, 3, H, W] RGB tensor of the same dtype."""
    return torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).permute(2, 0, 1)[None]


def load_pair(hr_path: Path, lr_dir: Path, scale: int,
              degradation: Optional[Degradation] = None) -> Tuple[np.ndarray, torch.Tensor]:
    """(mod-cropped HR as 8-bit BGR, its LR as [1, 3, h, w] RGB float in [0, 1]).

    ``degradation`` other than bicubic (``ops.degradations``): the HR is cropped as it says and
    the LR made from it; LR files are then ignored. Raises ``ImageReadError`` when an LR file
    is not HR/scale in size.
    """
    hr, _ = decode_image(hr_path.read_bytes(), str(hr_path))
    if degradation is not None and degradation.kind != 'bicubic':
        rgb = crop_hr(to_tensor(np.rint(hr * 255).astype(np.uint8))[0].float() / 255, scale, degradation)
        return tensor2img(rgb[None]), degrade(rgb, scale, degradation)[None]
    hr = hr[:hr.shape[0] // scale * scale, :hr.shape[1] // scale * scale]
    hr8 = np.rint(hr * 255).astype(np.uint8)
    lr_path = lr_dir / f'{hr_path.stem}x{scale}.png'
    if lr_path.is_file():
        lr, _ = decode_image(lr_path.read_bytes(), str(lr_path))
        if lr.shape[:2] != (hr.shape[0] // scale, hr.shape[1] // scale):
            raise ImageReadError(f'{lr_path} is {lr.shape[1]}x{lr.shape[0]}, not HR/{scale} of {hr_path}')
        return hr8, to_tensor(lr)
    return hr8, imresize(to_tensor(hr8).float(), 1 / scale, round_uint8=True) / 255


def scores(sr: np.ndarray, hr: np.ndarray, border: int) -> Scores:
    """Y-PSNR (dB), Y-SSIM and RGB-PSNR (dB) of 8-bit BGR images, ``border`` pixels cropped per side."""
    return {'psnr_y': calculate_psnr(sr, hr, border, test_y_channel=True),
            'ssim_y': calculate_ssim(sr, hr, border, test_y_channel=True),
            'psnr_rgb': calculate_psnr(sr, hr, border)}


def hardest_window(bicubic: np.ndarray, hr: np.ndarray, size: int) -> Tuple[int, int]:
    """Top-left of the ``size`` x ``size`` HR window where bicubic errs most (the figure's crop)."""
    error = np.abs(bgr2ycbcr(bicubic, y_only=True).astype(np.float64) - bgr2ycbcr(hr, y_only=True))
    window = cv2.boxFilter(error, -1, (size, size), normalize=False, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
    valid = window[:hr.shape[0] - size + 1, :hr.shape[1] - size + 1]
    top, left = np.unravel_index(np.argmax(valid), valid.shape)
    return int(top), int(left)


def figure_row(hr: np.ndarray, lq: torch.Tensor, outputs: Dict[str, np.ndarray], scale: int, crop: int,
               method: str, name: str) -> np.ndarray:
    """LR (nearest) / bicubic / method / HR crops of the window where bicubic errs most.

    ``crop`` is the window side in LR pixels; labels carry each crop's Y-PSNR (dB, no border crop),
    and the LR panel the image ``name`` and the crop's top-left HR pixel (x, y).
    """
    size = min(crop * scale, hr.shape[0], hr.shape[1]) // scale * scale
    top, left = hardest_window(outputs['bicubic'], hr, size)
    top, left = top // scale * scale, left // scale * scale
    window = (slice(top, top + size), slice(left, left + size))
    lr = tensor2img(lq)[top // scale:(top + size) // scale, left // scale:(left + size) // scale]
    crops = [(lr, f'{name} ({left},{top})')]
    for m in ('bicubic', method):
        psnr = calculate_psnr(outputs[m][window], hr[window], 0, test_y_channel=True)
        crops.append((outputs[m][window], f'{m} {psnr:.2f} dB'))
    crops.append((hr[window], 'HR'))
    return comparison_row(crops, size=FIGURE_PANEL)


def evaluate_sets(upscaler: Upscaler, root: Path, sets: Sequence[str], method: str = 'RT4KSR',
                  figure_images: Sequence[Tuple[str, str]] = (), crop: int = 48,
                  report: Callable[[str], None] = lambda _: None, progress: bool = False,
                  degradation: Optional[Degradation] = None, border: Optional[int] = None) -> Evaluation:
    """Run ``upscaler`` and bicubic over every set of ``sets`` found under ``root``.

    ``figure_images`` are (set, stem) pairs that get a figure row. ``degradation``: how the LR
    is made (default: ``LR_bicubic`` files, else MATLAB bicubic). ``border``: pixels cropped
    per side for the metrics (default: the scale; the NTIRE 2023 challenge used 0). Missing or
    empty sets are reported and skipped; ``progress`` shows a bar per set. Raises
    ``FileNotFoundError`` when none of ``sets`` holds images.
    """
    border = upscaler.scale if border is None else border
    scale = upscaler.scale
    result = Evaluation(scale, method)
    wanted = set(figure_images)
    for name in sets:
        hr_dir = root / name / 'HR'
        if not hr_dir.is_dir():
            report(f'skipped {name}: {hr_dir} not found (datasets/README.md says how to get it)')
            continue
        files = sorted(p for p in hr_dir.iterdir() if is_image_name(p.name))
        if not files:
            report(f'skipped {name}: {hr_dir} holds no images')
            continue
        totals = {m: dict.fromkeys(METRICS, 0.0) for m in ('bicubic', method)}
        for hr_path in tqdm(files, desc=name, unit='image', leave=False, disable=not progress):
            hr, lq = load_pair(hr_path, hr_dir.parent / 'LR_bicubic' / f'X{scale}', scale, degradation)
            outputs = {'bicubic': tensor2img(imresize(lq, float(scale)).clamp(0, 1)),
                       method: tensor2img(upscaler(lq).clamp(0, 1))}
            for m, img in outputs.items():
                for k, v in scores(img, hr, border).items():
                    totals[m][k] += v / len(files)
            if (name, hr_path.stem) in wanted:
                result.figure_rows.append(figure_row(hr, lq, outputs, scale, crop, method, f'{name}/{hr_path.stem}'))
        result.means[name] = totals
        report(f'{name} ({len(files)} images): ' + ', '.join(f'{m} {t["psnr_y"]:.2f} dB' for m, t in totals.items()))
    if not result.means:
        raise FileNotFoundError(f'no benchmark set with images found under {root} (looked for {", ".join(sets)}); '
                                'datasets/README.md says how to get them')
    return result
