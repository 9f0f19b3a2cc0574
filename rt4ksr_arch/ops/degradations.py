"""HR -> LR degradations by name: ``bicubic``, ``ntire23``, ``jpeg:Q``; one place for evaluation, datasets and tools.

- ``bicubic``: MATLAB-exact bicubic (``ops.bicubic.imresize``), rounded to 8 bit -- the
  ``LR_bicubic`` files of Set5/Set14/B100.
- ``jpeg:Q``: ``bicubic``, then a JPEG round trip at quality Q (PIL, 4:2:0 chroma).
- ``ntire23``: the NTIRE 2023 Real-Time Super-Resolution challenge's test LR, as its public
  preparation script makes it (github.com/eduardzamfir/NTIRE23-RTSR, ``demo/prepare_data.py``):
  the HR is centre-cropped (``torchvision`` ``center_crop``; default 1080x2040, "DIV2K
  dimensions"), downscaled with PIL's ``Image.resize(..., BICUBIC)`` and saved as JPEG at
  quality 90 with PIL. The challenge scored Y-PSNR (BT.601, no border crop) against that HR
  (``calc_metrics.py``). Assumption: the hidden 4K test set went through the same script; we
  crop only images larger than the crop (smaller ones are mod-cropped to the scale instead).

``parse_degradation('jpeg:75')`` gives a ``Degradation``; ``crop_hr`` and ``degrade`` apply it.
"""
import io
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from rt4ksr_arch.errors import OptionError
from rt4ksr_arch.ops.bicubic import imresize

NTIRE23_CROP = (1080, 2040)  # HR height, width of the challenge's preparation script
NTIRE23_QUALITY = 90
KINDS = ('bicubic', 'ntire23', 'jpeg')


@dataclass(frozen=True)
class Degradation:
    """A parsed degradation: ``kind`` (bicubic, ntire23, jpeg), JPEG quality, HR centre crop (H, W)."""

    kind: str
    jpeg_quality: Optional[int] = None
    crop: Optional[Tuple[int, int]] = None

    @property
    def name(self) -> str:
        return f'jpeg:{self.jpeg_quality}' if self.kind == 'jpeg' else self.kind


def parse_degradation(spec: str) -> Degradation:
    """``bicubic`` | ``ntire23`` | ``jpeg:Q`` (Q in 1..100) -> ``Degradation``.

    Raises ``OptionError('degradation', …)`` for anything else.
    """
    kind, _, arg = spec.strip().lower().partition(':')
    if kind == 'bicubic' and not arg:
        return Degradation('bicubic')
    if kind == 'ntire23' and not arg:
        return Degradation('ntire23', NTIRE23_QUALITY, NTIRE23_CROP)
    if kind == 'jpeg' and arg.isdigit() and 1 <= int(arg) <= 100:
        return Degradation('jpeg', int(arg))
    raise OptionError('degradation', f'must be bicubic, ntire23 or jpeg:Q with Q in 1..100, got {spec!r}')


def _to_uint8_rgb(img: Tensor) -> np.ndarray:
    """[3, H, W] float in [0, 1] -> HWC uint8 RGB."""
    return np.rint(img.clamp(0, 1).permute(1, 2, 0).cpu().double().numpy() * 255).astype(np.uint8)


def _from_uint8_rgb(array: np.ndarray, like: Tensor) -> Tensor:
    return torch.from_numpy(np.array(array)).permute(2, 0, 1).to(like.device, torch.float32) / 255


def jpeg(img: Tensor, quality: int) -> Tensor:
    """JPEG round trip (PIL, default 4:2:0 chroma) of [3, H, W] float RGB in [0, 1]; float32 in [0, 1]."""
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(_to_uint8_rgb(img)).save(buffer, 'JPEG', quality=quality)
    return _from_uint8_rgb(np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert('RGB')), img)


def crop_hr(hr: Tensor, scale: int, degradation: Degradation) -> Tensor:
    """The HR the LR is made from and scored against: [..., H, W] centre-cropped (ntire23), mod-cropped to ``scale``."""
    height, width = hr.shape[-2:]
    if degradation.crop:
        crop_h, crop_w = min(height, degradation.crop[0]), min(width, degradation.crop[1])
        # torchvision's centre crop rounds the offset: int(round((size - crop) / 2))
        top, left = int(round((height - crop_h) / 2)), int(round((width - crop_w) / 2))
        hr = hr[..., top:top + crop_h, left:left + crop_w]
        height, width = crop_h, crop_w
    return hr[..., :height - height % scale, :width - width % scale]


def degrade(hr: Tensor, scale: int, degradation: Degradation) -> Tensor:
    """LR of an HR image: float RGB [3, H, W] or [N, 3, H, W] in [0, 1] (H, W multiples of ``scale``,
    see ``crop_hr``) -> float32 [..., 3, H/scale, W/scale] in [0, 1], on the 8-bit grid.

    MATLAB bicubic runs on ``hr``'s device, a batch at once (a training batch of ``rt4ksr adapt``);
    PIL's bicubic (``ntire23``) and JPEG run per image on the CPU. Raises ``ValueError`` for sizes
    that are not multiples of ``scale``.
    """
    if hr.shape[-2] % scale or hr.shape[-1] % scale:
        raise ValueError(f'HR {hr.shape[-1]}x{hr.shape[-2]} is not a multiple of scale {scale}; crop_hr first')
    if degradation.kind == 'ntire23':
        lr = _per_image(hr, lambda img: _pil_bicubic(img, scale))
    else:
        lr = imresize(hr.float() * 255, 1 / scale, round_uint8=True) / 255
    return _per_image(lr, lambda img: jpeg(img, degradation.jpeg_quality)) if degradation.jpeg_quality else lr


def _pil_bicubic(img: Tensor, scale: int) -> Tensor:
    """PIL's ``Image.resize(..., BICUBIC)`` by 1/``scale`` of [3, H, W] float RGB, through 8 bit (ntire23)."""
    from PIL import Image
    small = Image.fromarray(_to_uint8_rgb(img)).resize((img.shape[-1] // scale, img.shape[-2] // scale),
                                                       resample=Image.BICUBIC)
    return _from_uint8_rgb(np.asarray(small), img)


def _per_image(images: Tensor, function: Callable[[Tensor], Tensor]) -> Tensor:
    """``function`` of a [3, H, W] image applied to [3, H, W] or to each image of [N, 3, H, W]."""
    return torch.stack([function(img) for img in images]) if images.dim() == 4 else function(images)
