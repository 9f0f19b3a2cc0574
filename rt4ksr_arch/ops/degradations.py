"""HR -> LR degradations by name: MATLAB bicubic, optionally followed by JPEG compression of the LR.

Specs (``parse_degradation``):

- ``bicubic``: MATLAB ``imresize(hr, 1/scale, 'bicubic')`` on the 8-bit grid (``make_lq``), what
  every SR benchmark's LR files are;
- ``jpeg:Q``: the same LR, then JPEG-encoded at quality Q (1..100) and decoded, as a compressed
  source (streams, web images) delivers it;
- ``ntire23``: the NTIRE 2023 Real-Time 4K Super-Resolution challenge's degradation, bicubic
  then JPEG quality 90 on the LR (Conde, Zamfir, Timofte et al., "Efficient Deep Models for
  Real-Time 4K Image Super-Resolution. NTIRE 2023 Benchmark and Report", CVPRW 2023).

JPEG is OpenCV's (libjpeg: 4:2:0 chroma subsampling, its standard quantisation tables).
"""
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np
import torch

from rt4ksr_arch.data.online_bicubic_dataset import make_lq
from rt4ksr_arch.errors import OptionError

NTIRE23_JPEG_QUALITY = 90
SPECS = ('bicubic', 'ntire23', 'jpeg:Q')


@dataclass(frozen=True)
class Degradation:
    """A parsed spec: bicubic, then JPEG at ``jpeg_quality`` when it is not None."""

    spec: str
    jpeg_quality: Optional[int] = None


def parse_degradation(spec: str, option: str = 'degradation') -> Degradation:
    """The ``Degradation`` of ``bicubic``, ``ntire23`` or ``jpeg:Q``; ``OptionError`` naming ``option`` otherwise."""
    text = spec.strip().lower()
    if text == 'bicubic':
        return Degradation('bicubic')
    if text == 'ntire23':
        return Degradation('ntire23', NTIRE23_JPEG_QUALITY)
    if text.startswith('jpeg:'):
        quality = text[len('jpeg:'):]
        if quality.isdigit() and 1 <= int(quality) <= 100:
            return Degradation(f'jpeg:{int(quality)}', int(quality))
    raise OptionError(option, f'must be one of {", ".join(SPECS)} (Q = JPEG quality 1..100), got {spec!r}')


def jpeg_roundtrip(lr: torch.Tensor, quality: int) -> torch.Tensor:
    """JPEG-encode and decode float RGB (or gray) images on the 8-bit grid, ``[..., C, h, w]`` in [0, 1]."""
    flat = lr.detach().cpu().reshape(-1, *lr.shape[-3:])
    out = []
    for image in flat:
        pixels = np.rint(image.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        pixels = np.ascontiguousarray(pixels[..., ::-1]) if pixels.shape[2] == 3 else pixels  # OpenCV is BGR
        ok, encoded = cv2.imencode('.jpg', pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError('OpenCV could not JPEG-encode the LR image')
        decoded = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
        decoded = decoded[..., ::-1] if decoded.ndim == 3 else decoded[..., None]
        out.append(torch.from_numpy(np.ascontiguousarray(decoded)).permute(2, 0, 1).float() / 255)
    return torch.stack(out).reshape(lr.shape).to(lr.device)


def degrade(hr: torch.Tensor, scale: int, degradation: Degradation) -> torch.Tensor:
    """LR of float HR in [0, 1], ``[..., C, H, W]`` (C = 1 or 3, RGB): ``[..., C, ceil(H/s), ceil(W/s)]`` in [0, 1].

    Bicubic on ``hr``'s device (``make_lq``, 8-bit grid); JPEG, when asked, on the CPU.
    """
    lr = make_lq(hr, scale, round_lq=True)
    if degradation.jpeg_quality is not None:
        lr = jpeg_roundtrip(lr, degradation.jpeg_quality)
    return lr
