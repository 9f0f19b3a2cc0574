"""Where the network runs: torch (``prepare_network``), onnxruntime, or TensorRT (onnxruntime-gpu's provider).

An ONNX backend runs the exported network (``export.export_onnx``, verified against torch when
written) and exposes what ``Upscaler`` needs: ``scale``, ``receptive_radius``, ``config``,
``device`` and ``static_window``. TensorRT gets one *static* input shape, a window of
``tile + 2 x pad`` LR pixels: because our tiles are exact (``ops/tiling.py``), windows of that
one shape, placed inside the frame, give the whole-frame output for any frame size at least one
window large -- no dynamic-shape engine, no seams. Engines are cached on disk, keyed by the
weights' hash, the window and batch, the precision and the GPU. The TensorRT path needs a CUDA
machine with ``onnxruntime-gpu`` and TensorRT (``benchmarks/gpu_checks.sh``); on the CPU the
same static-window logic runs with onnxruntime's CPU provider.
"""
import hashlib
import os
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
from torch import Tensor, nn

from rt4ksr_arch.archs.rt4ksr_arch import reparameterize
from rt4ksr_arch.errors import OptionError
from rt4ksr_arch.inference import InferenceOptions, prepare_network
from rt4ksr_arch.ops.tiling import round_up

BACKENDS = ('torch', 'onnxruntime', 'tensorrt')
TENSORRT_TILE = 512  # LR pixels per window core when --tile is not given
CACHE = Path(os.environ.get('RT4KSR_CACHE', Path.home() / '.cache' / 'rt4ksr'))


def weights_digest(net: nn.Module) -> str:
    """SHA-256 (hex) of the fused network's parameters and config: the engine cache key's weights part."""
    fused = reparameterize(net).float()
    digest = hashlib.sha256(repr(fused.config.to_dict()).encode())
    for name, tensor in sorted(fused.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class OnnxRuntimeNetwork:
    """An exported RT4KSR run by onnxruntime: float [N, C, h, w] in [0, 1] -> float32 [N, C', s*h, s*w] (CPU).

    ``static_window``: the model's fixed input side (LR pixels), or None for a dynamic model.
    ``batch``: the model's fixed batch, or None; other batch sizes are split and the last chunk
    padded by repeating its final item.
    """

    def __init__(self, path: str, reference: nn.Module, providers: List, static_window: Optional[int] = None,
                 batch: Optional[int] = None) -> None:
        import onnxruntime
        self.session = onnxruntime.InferenceSession(str(path), providers=providers)
        self.input = self.session.get_inputs()[0].name
        self.config, self.scale = reference.config, reference.upscale
        self.receptive_radius = reference.receptive_radius
        self.device = torch.device('cpu')  # tiles and results live on the host; the provider moves them
        self.static_window, self.batch = static_window, batch

    def __call__(self, x: Tensor) -> Tensor:
        array = x.detach().float().cpu().numpy()
        step = self.batch or len(array)
        outputs = []
        for first in range(0, len(array), step):
            chunk = array[first:first + step]
            missing = step - len(chunk)
            if missing:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], missing, axis=0)])
            outputs.append(self.session.run(None, {self.input: chunk})[0][:step - missing])
        return torch.from_numpy(np.concatenate(outputs)).float()


def _gpu_name(device: torch.device) -> str:
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'
    return ''.join(c if c.isalnum() else '-' for c in name)


def engine_dir(digest: str, window: Optional[int], batch: Optional[int], precision: str, device: torch.device) -> Path:
    """The cache folder of one engine: weights hash, input shape, precision and GPU in its name."""
    shape = f'b{batch}_{window}x{window}' if window else 'dynamic'
    return CACHE / 'engines' / f'{digest[:16]}_{shape}_{precision}_{_gpu_name(device)}'


def onnx_backend(net: nn.Module, opts: InferenceOptions, device: torch.device, tensorrt: bool,
                 report: Callable[[str], None] = lambda _: None) -> OnnxRuntimeNetwork:
    """Export (once, cached) and open ``net`` with onnxruntime; TensorRT provider when ``tensorrt``.

    onnxruntime: a dynamic model, or a static window of ``tile + 2 x pad`` when ``opts.tile_size``
    is set. TensorRT: always a static window (core ``TENSORRT_TILE`` unless ``opts.tile_size``),
    batch ``opts.tile_batch``, fp16 unless ``opts.precision`` is fp32. Raises ``OptionError``
    when the provider is not installed.
    """
    from rt4ksr_arch.export import export_onnx
    try:
        import onnxruntime
    except ImportError:
        raise OptionError('--backend', 'onnxruntime needs: pip install -e ".[export]" (onnxruntime-gpu for '
                          'tensorrt)') from None
    available = onnxruntime.get_available_providers()
    if tensorrt and 'TensorrtExecutionProvider' not in available:
        raise OptionError('--backend', f'tensorrt needs onnxruntime-gpu with TensorRT (providers here: '
                          f'{", ".join(available)}); pip install onnxruntime-gpu tensorrt, or use --backend torch')
    reference = reparameterize(net).float().eval()
    pad = round_up(opts.tile_pad if opts.tile_pad is not None else reference.receptive_radius, 2)
    tile = opts.tile_size or (TENSORRT_TILE if tensorrt else None)
    window = round_up(tile, 2) + 2 * pad if tile else None
    batch = opts.tile_batch if window else None
    precision = ('fp32' if opts.precision == 'fp32' else 'fp16') if tensorrt else 'fp32'
    folder = engine_dir(weights_digest(reference), window, batch, precision, device)
    model = folder / 'model.onnx'
    if not model.exists():
        report(f'exporting {"a static " + str(window) + "x" + str(window) + " window" if window else "a dynamic"} '
               f'ONNX model to {model}')
        export_onnx(reference, str(model), dynamic=window is None, size=(window, window) if window else (64, 64),
                    batch=batch or 1, clamp=False)
    providers: List = ['CPUExecutionProvider']
    if device.type == 'cuda' and 'CUDAExecutionProvider' in available:
        providers.insert(0, ('CUDAExecutionProvider', {'device_id': device.index or 0}))
    if tensorrt:
        options: Dict[str, object] = {'device_id': device.index or 0, 'trt_fp16_enable': precision == 'fp16',
                                      'trt_engine_cache_enable': True, 'trt_engine_cache_path': str(folder),
                                      'trt_timing_cache_enable': True, 'trt_timing_cache_path': str(folder)}
        providers.insert(0, ('TensorrtExecutionProvider', options))
        report(f'TensorRT engine ({precision}, window {window}x{window}, batch {batch}) cached in {folder}')
    return OnnxRuntimeNetwork(str(model), reference, providers, window, batch)


def build_backend(backend: str, net: nn.Module, opts: InferenceOptions, device: torch.device,
                  report: Callable[[str], None] = lambda _: None):
    """The network ``Upscaler`` runs: a ``PreparedNetwork`` (torch) or an ``OnnxRuntimeNetwork``.

    Raises ``OptionError`` for an unknown backend or one that is not installed.
    """
    if backend == 'torch':
        return prepare_network(net, device, opts.precision, opts.channels_last, opts.compile)
    if backend not in BACKENDS:
        raise OptionError('--backend', f'must be one of {", ".join(BACKENDS)}, got {backend!r}')
    if opts.compile:
        raise OptionError('--compile', f'is for the torch backend; {backend} runs its own optimised graph')
    return onnx_backend(net, opts, device, backend == 'tensorrt', report)
