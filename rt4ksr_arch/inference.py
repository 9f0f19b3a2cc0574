"""The one inference runner: every entry point (validation, test.py, the CLIs, benchmarks) uses it.

``prepare_network`` builds the network as it is run: fused into ``RT4KSRDeploy`` (the dormant
high-frequency branch is then never computed), on its device, cast to the precision, in
channels_last memory (where LayerNorm2d is one native kernel) and optionally compiled.
``Upscaler`` wraps it with exact tiles, x8 self-ensemble and an out-of-memory fallback, for
tensors and for decoded images (gray, RGBA, 16-bit, 1-channel networks). The YAML ``val``
section and the CLI flags both become one validated ``InferenceOptions``.

Tiling is exact (see ops/tiling.py) for every precision: each tile sees what the whole image
would, so tiled and untiled outputs differ only by float rounding of the same computation.
"""
from contextlib import nullcontext
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Callable, Mapping, Optional, Union

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from basicsr.utils import get_root_logger
from rt4ksr_arch.archs.rt4ksr_arch import RT4KSR, RT4KSRDeploy, reparameterize
from rt4ksr_arch.errors import OptionError
from rt4ksr_arch.ops.bicubic import imresize
from rt4ksr_arch.ops.ensemble import self_ensemble
from rt4ksr_arch.ops.tiling import count_tiles, round_up, tiled_forward_with_retry

PRECISIONS = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}
FALLBACK_TILE = 512  # LR pixels: what a whole image that does not fit is tiled at
PROGRESS_MIN_TILES = 16  # a bar for large images only; validation of small sets stays quiet
# How the YAML val section spells each InferenceOptions field (errors name what the user wrote).
YAML_NAMES = {'tile_size': 'val.tile.tile_size', 'tile_pad': 'val.tile.tile_pad', 'tile_batch': 'val.tile.tile_batch',
              'self_ensemble': 'val.self_ensemble', 'precision': 'val.fp16 / val.bf16',
              'channels_last': 'val.channels_last', 'compile': 'val.compile'}


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise OptionError(name, f'must be an integer >= {minimum}, got {value!r}')


@dataclass(frozen=True)
class InferenceOptions:
    """How a network is run; validated on creation (``OptionError`` names the field).

    Defaults are the fastest exact settings: whole image, fp32, channels_last, no compile.
    """

    tile_size: Optional[int] = None  # LR pixels per tile side; None: the whole image at once
    tile_pad: Optional[int] = None  # LR pixels of context per tile side; None: the receptive radius (exact)
    tile_batch: int = 1  # equal-sized tiles per forward pass
    self_ensemble: bool = False  # x8 flips x rot90, averaged (EDSR+); 8x the time
    precision: str = 'fp32'  # weights and activations: fp32, fp16 (GPU) or bf16
    channels_last: bool = True  # NHWC memory: LayerNorm2d becomes one native kernel
    compile: bool = False  # torch.compile (CUDA graphs on the GPU); pays off on many equal-sized inputs

    def __post_init__(self) -> None:
        if self.tile_size is not None:
            _check_int('tile_size', self.tile_size, 1)
        if self.tile_pad is not None:
            _check_int('tile_pad', self.tile_pad, 0)
            if self.tile_size is None:
                raise OptionError('tile_pad', 'needs tile_size (it is the context of each tile; without tiles there '
                                  'is nothing to pad)')
        _check_int('tile_batch', self.tile_batch, 1)
        if self.precision not in PRECISIONS:
            raise OptionError('precision', f'must be one of {", ".join(PRECISIONS)}, got {self.precision!r}')
        for name in ('self_ensemble', 'channels_last', 'compile'):
            if not isinstance(getattr(self, name), bool):
                raise OptionError(name, f'must be true or false, got {getattr(self, name)!r}')

    @classmethod
    def from_val_opt(cls, val_opt: Optional[Mapping[str, Any]]) -> 'InferenceOptions':
        """Options from a YAML ``val`` section: ``tile: {tile_size, tile_pad, tile_batch}``,
        ``self_ensemble``, ``fp16`` / ``bf16``, ``channels_last``, ``compile``.

        Raises ``OptionError`` naming the YAML key.
        """
        val_opt = val_opt or {}
        tile = val_opt.get('tile') or {}
        if not isinstance(tile, Mapping):
            raise OptionError('val.tile', f'must be a mapping like {{tile_size: 512, tile_pad: 14}}, got {tile!r}')
        unknown = set(tile) - {'tile_size', 'tile_pad', 'tile_batch'}
        if unknown:
            raise OptionError('val.tile', f'has unknown keys {sorted(unknown)}; use tile_size, tile_pad, tile_batch')
        if tile and 'tile_size' not in tile:
            raise OptionError('val.tile', 'needs tile_size (LR pixels), e.g. tile: {tile_size: 512}')
        if val_opt.get('fp16') and val_opt.get('bf16'):
            raise OptionError('val.fp16 / val.bf16', 'are exclusive: choose one of them')
        try:
            return cls(tile_size=tile.get('tile_size'), tile_pad=tile.get('tile_pad'),
                       tile_batch=tile.get('tile_batch', 1), self_ensemble=val_opt.get('self_ensemble', False),
                       precision='fp16' if val_opt.get('fp16') else 'bf16' if val_opt.get('bf16') else 'fp32',
                       channels_last=val_opt.get('channels_last', True), compile=val_opt.get('compile', False))
        except OptionError as err:
            raise err.renamed(YAML_NAMES) from None


def resolve_device(name: Union[str, torch.device, None] = 'auto') -> torch.device:
    """``auto`` (or None) -> CUDA when available, else the CPU; otherwise as torch names it (``cuda:1``).

    Raises ``OptionError('device', …)`` for a name torch does not know or a device that is absent.
    """
    if name is None or name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise OptionError('device', f'must be auto, cpu, cuda or cuda:N, got {name!r}') from None
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise OptionError('device', f'{name}: no CUDA device is available here; use cpu (or auto)')
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise OptionError('device', f'{name}: only {torch.cuda.device_count()} CUDA device(s) here')
    elif device.type != 'cpu':
        raise OptionError('device', f'must be auto, cpu, cuda or cuda:N, got {name!r}')
    return device


class PreparedNetwork(nn.Module):
    """An RT4KSR network as it is run: fused, on ``device``, cast, laid out, optionally compiled.

    ``forward``: float [N, C, h, w] (any device, values in [0, 1]) -> float32 [N, C', s*h, s*w]
    on ``device``, not clamped, computed in inference mode. Build it with ``prepare_network``.
    """

    def __init__(self, net: RT4KSRDeploy, device: torch.device, dtype: torch.dtype,
                 memory_format: torch.memory_format, compiled: Optional[Callable[[Tensor], Tensor]] = None) -> None:
        super().__init__()
        self.net, self.device, self.dtype, self.memory_format = net, device, dtype, memory_format
        self.run = net if compiled is None else compiled
        self.config = net.config
        self.scale = net.upscale
        self.receptive_radius = net.receptive_radius

    def forward(self, x: Tensor) -> Tensor:
        with torch.inference_mode():
            return self.run(x.to(self.device, self.dtype, memory_format=self.memory_format)).float()


def prepare_network(net: nn.Module, device: Union[str, torch.device, None] = 'auto', precision: str = 'fp32',
                    channels_last: bool = True, compile: bool = False) -> PreparedNetwork:
    """A new ``PreparedNetwork`` from an ``RT4KSR`` / ``RT4KSRDeploy`` (``net`` is not modified).

    ``compile`` uses ``torch.compile`` with static shapes (CUDA graphs on the GPU).
    Raises ``TypeError`` for other networks and ``OptionError`` for a bad device or precision.
    """
    if not isinstance(net, (RT4KSR, RT4KSRDeploy)):
        raise TypeError(f'prepare_network expects an RT4KSR network, got {type(net).__name__}')
    InferenceOptions(precision=precision, channels_last=channels_last, compile=compile)  # validates
    device = resolve_device(device)
    dtype = PRECISIONS[precision]
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    deploy = reparameterize(net).eval().requires_grad_(False)
    deploy = deploy.to(device=device, dtype=dtype, memory_format=memory_format)
    compiled = None
    if compile:
        mode = 'reduce-overhead' if device.type == 'cuda' else 'max-autotune-no-cudagraphs'
        compiled = torch.compile(deploy, mode=mode, dynamic=False)
    return PreparedNetwork(deploy, device, dtype, memory_format, compiled)


class Upscaler:
    """Prepared network + exact tiles + self-ensemble + out-of-memory fallback, for tensors and images.

    ``net`` is an RT4KSR network (prepared here with ``opts``), a ``PreparedNetwork``, or another
    runner with the same attributes (``backends.OnnxRuntimeNetwork``); one with a
    ``static_window`` (one input shape) is always run in exact windows of that size.
    ``option_names`` spells option names in messages as the caller's user wrote them
    (``{'tile_size': '--tile'}``; YAML names by default).
    """

    def __init__(self, net: nn.Module, opts: InferenceOptions = InferenceOptions(),
                 device: Union[str, torch.device, None] = 'auto',
                 option_names: Mapping[str, str] = YAML_NAMES) -> None:
        self.opts = opts
        self.network = prepare_network(net, device, opts.precision, opts.channels_last, opts.compile) \
            if isinstance(net, (RT4KSR, RT4KSRDeploy)) else net
        self.scale = self.network.scale
        self.option_names = option_names

    def describe(self) -> str:
        """One line for logs: device, precision, layout and how images are cut (LR pixels)."""
        opts, net = self.opts, self.network
        parts = [str(net.device), opts.precision, 'channels_last' if opts.channels_last else 'NCHW']
        if opts.compile:
            parts.append('compiled')
        pad = opts.tile_pad if opts.tile_pad is not None else net.receptive_radius
        parts.append(f'tiles {opts.tile_size} LR px (pad {pad}), {opts.tile_batch} per pass' if opts.tile_size
                     else 'whole images')
        if opts.self_ensemble:
            parts.append('x8 self-ensemble')
        return ', '.join(parts)

    def __call__(self, lq: Tensor, progress: bool = False) -> Tensor:
        """Upscale float [N, C, h, w] in [0, 1]; float32 [N, C', s*h, s*w], not clamped.

        Whole-image results are on the network's device; tiled results on the CPU. A whole
        image that does not fit in device memory is tiled at ``FALLBACK_TILE`` instead (exact,
        logged); tiles that do not fit are halved (``ops.tiling``).
        """
        with torch.inference_mode():
            try:
                return self._apply(lq, self.opts, progress)
            except torch.OutOfMemoryError:
                if self.opts.tile_size:
                    raise
            if self.network.device.type == 'cuda':
                torch.cuda.empty_cache()
            get_root_logger().warning(
                f'Out of memory on the whole {lq.shape[-1]}x{lq.shape[-2]} image; tiling it at {FALLBACK_TILE} '
                f'instead (exact; set {self.option_names.get("tile_size", "tile_size")} to choose the size)')
            return self._apply(lq, replace(self.opts, tile_size=FALLBACK_TILE), progress)

    def _apply(self, lq: Tensor, opts: InferenceOptions, progress: bool) -> Tensor:
        forward = self.network
        window = getattr(forward, 'static_window', None)
        pad = opts.tile_pad if opts.tile_pad is not None else self.network.receptive_radius
        if window:
            if min(lq.shape[-2:]) < window:
                raise OptionError(self.option_names.get('tile_size', 'tile_size'),
                                  f'must fit: the network runs one static {window}x{window} LR window; a '
                                  f'{lq.shape[-1]}x{lq.shape[-2]} input needs a smaller tile or the torch backend')
            opts = replace(opts, tile_size=window - 2 * round_up(pad, 2))
        if not opts.tile_size:
            return self_ensemble(forward, lq) if opts.self_ensemble else forward(lq)
        total = count_tiles(*lq.shape[-2:], opts.tile_size) * (8 if opts.self_ensemble else 1)
        bar = tqdm(total=total, unit='tile', leave=False) if progress and total >= PROGRESS_MIN_TILES else None
        run = partial(tiled_forward_with_retry, forward, scale=self.scale, tile_size=opts.tile_size, tile_pad=pad,
                      option=self.option_names.get('tile_size', 'tile_size'), tile_batch=opts.tile_batch,
                      device=self.network.device, progress=bar.update if bar is not None else None,
                      window=window)
        with bar if bar is not None else nullcontext():
            return self_ensemble(run, lq) if opts.self_ensemble else run(lq)

    def image(self, img: np.ndarray, progress: bool = False) -> np.ndarray:
        """Upscale a decoded image as stored: uint8/uint16, HW or HWC gray / BGR / BGRA (OpenCV order).

        Returns the same dtype and channels at ``scale`` x the size. Gray is run as RGB with equal
        channels and averaged back (3-channel networks) or directly (1-channel networks); a colour
        image through a 1-channel network is run on its BT.601 Y channel with Cb/Cr upscaled by
        MATLAB bicubic; an alpha channel is upscaled by MATLAB bicubic, never by the network.
        Raises ``OptionError`` for a network whose output channels differ from its input channels.
        """
        config = self.network.config
        if config.num_out_ch != config.num_in_ch or config.num_in_ch not in (1, 3):
            raise OptionError('network', f'maps {config.num_in_ch} to {config.num_out_ch} channels; images need a '
                              '1->1 (gray/Y) or 3->3 (RGB) network')
        peak = 65535.0 if img.dtype == np.uint16 else 255.0
        planes = (img[:, :, None] if img.ndim == 2 else img).astype(np.float32) / peak
        color, alpha = planes[:, :, :min(3, planes.shape[2])], planes[:, :, 3:]
        out = self._color(color, progress)
        if alpha.shape[2]:  # not an image: plain bicubic, never the network
            out = np.concatenate([out, self._bicubic(alpha)], axis=2)
        out = np.rint(np.clip(out, 0, 1) * peak).astype(img.dtype)
        return out[:, :, 0] if img.ndim == 2 else out

    def _network(self, planes: np.ndarray, progress: bool) -> np.ndarray:
        """HWC float planes (RGB order when 3) through the network; HWC float32."""
        lq = torch.from_numpy(np.ascontiguousarray(planes)).permute(2, 0, 1)[None]
        return self(lq, progress)[0].permute(1, 2, 0).cpu().numpy()

    def _bicubic(self, planes: np.ndarray) -> np.ndarray:
        upscaled = imresize(torch.from_numpy(np.ascontiguousarray(planes)).permute(2, 0, 1), float(self.scale))
        return upscaled.clamp_(0, 1).permute(1, 2, 0).numpy()

    def _color(self, bgr: np.ndarray, progress: bool) -> np.ndarray:
        """HWC BGR (3) or gray (1) float in [0, 1] -> the same channels, upscaled."""
        from basicsr.utils.color_util import bgr2ycbcr, ycbcr2bgr
        if self.network.config.num_in_ch == 3:
            rgb = bgr[:, :, ::-1] if bgr.shape[2] == 3 else np.repeat(bgr, 3, axis=2)
            out = self._network(rgb, progress)
            # gray in, gray out: the three outputs of a gray input are averaged
            return out[:, :, ::-1] if bgr.shape[2] == 3 else out.mean(axis=2, keepdims=True)
        if bgr.shape[2] == 1:
            return self._network(bgr, progress)
        ycbcr = bgr2ycbcr(bgr)
        y = self._network(ycbcr[:, :, :1], progress)
        return ycbcr2bgr(np.concatenate([y, self._bicubic(ycbcr[:, :, 1:])], axis=2).astype(np.float32))
