"""The browser demo behind ``rt4ksr demo``: a local Gradio page (optional ``[demo]`` extra).

``DemoSession`` is the part without a browser: it loads the weights once and upscales an image
file exactly as ``rt4ksr upscale`` does (``decode_unchanged`` -> ``Upscaler.image`` -> PNG), so
gray, RGBA and 16-bit images come out the same, and adds the previews the page shows (LR, MATLAB
bicubic of the same LR, RT4KSR) with the time taken. ``build_app`` lays the page out; ``launch``
serves it on 127.0.0.1 only.
"""
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from torch import nn

from rt4ksr_arch.checkpoint import Weights, load_model
from rt4ksr_arch.data.image_io import decode_unchanged
from rt4ksr_arch.errors import ImageReadError, OptionError, RT4KSRError
from rt4ksr_arch.fileio import atomic_write_bytes
from rt4ksr_arch.inference import InferenceOptions, Upscaler
from rt4ksr_arch.ops.bicubic import imresize

HOST = '127.0.0.1'  # the page is for this machine only
BUNDLED_DEMO = ('chelsea', 'astronaut', 'coffee', 'rocket')  # skimage.data photographs offered on the page
# How the page names InferenceOptions fields in its error messages.
PAGE_NAMES = {'tile_size': 'Tile', 'self_ensemble': 'Self-ensemble', 'precision': 'precision'}
KINDS = {1: 'gray', 3: 'RGB', 4: 'RGBA'}  # by channel count


@dataclass(frozen=True)
class DemoResult:
    """One upscaled image: 8-bit RGB(A) previews for the page, the exact output PNG, and figures.

    ``lr``: the input; ``bicubic``: MATLAB bicubic of it at the output size; ``sr``: RT4KSR's output
    (both ``scale`` x the LR size). ``png``: the output as ``rt4ksr upscale`` writes it (same dtype
    and channels as the input). ``seconds``: wall time of ``Upscaler.image`` (network, tiles,
    ensemble, alpha), not decoding or encoding.
    """

    lr: np.ndarray
    bicubic: np.ndarray
    sr: np.ndarray
    png: Path
    seconds: float
    summary: str


def preview(img: np.ndarray) -> np.ndarray:
    """A decoded image (uint8/uint16, HW gray, HWC BGR or BGRA) as uint8 RGB or RGBA for display."""
    if img.dtype == np.uint16:
        img = np.rint(img / 257.0).astype(np.uint8)
    if img.ndim == 2 or img.shape[2] == 1:
        return cv2.cvtColor(img.reshape(img.shape[:2]), cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA if img.shape[2] == 4 else cv2.COLOR_BGR2RGB)


def bicubic_baseline(img: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB bicubic of a decoded image, every channel, same dtype (the baseline RT4KSR is compared to)."""
    peak = 65535.0 if img.dtype == np.uint16 else 255.0
    planes = torch.from_numpy((img[:, :, None] if img.ndim == 2 else img).astype(np.float32) / peak)
    out = imresize(planes.permute(2, 0, 1), float(scale)).clamp_(0, 1).permute(1, 2, 0).numpy()
    out = np.rint(out * peak).astype(img.dtype)
    return out[:, :, 0] if img.ndim == 2 else out


def write_bundled_photos(folder: Path) -> List[Path]:
    """The ``BUNDLED_DEMO`` photographs as PNG in ``folder`` (those this scikit-image ships offline)."""
    from rt4ksr_arch.prepare.bundled import bundled_loaders
    loaders, paths = bundled_loaders(), []
    folder.mkdir(parents=True, exist_ok=True)
    for name in BUNDLED_DEMO:
        try:
            rgb = loaders[name]()
        except Exception:  # a future scikit-image may move a photo behind a download: offer the others
            continue
        path = folder / f'{name}.png'
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


class DemoSession:
    """The weights the page offers, loaded once, and the upscaling behind its button.

    ``weights``: checkpoint files (any format the one loader reads); ``device`` a ``torch.device``
    (``resolve_device``); ``precision`` fp32/fp16/bf16; outputs go to ``output_dir``. Raises
    ``CheckpointError`` / ``CheckpointNotFoundError`` for weights that cannot be loaded.
    """

    def __init__(self, weights: Sequence[str], device: torch.device, precision: str = 'fp32',
                 output_dir: Optional[Path] = None) -> None:
        self.device, self.precision = device, precision
        self.output_dir = Path(output_dir or tempfile.mkdtemp(prefix='rt4ksr_demo_'))
        self.networks: Dict[str, Tuple[nn.Module, Weights]] = {w: load_model(w, deploy=True) for w in weights}

    def choices(self) -> List[Tuple[str, str]]:
        """(label, weights path) for the page's weights menu."""
        return [(f'{Path(path).name}: {weights.config.describe()}', path)
                for path, (_, weights) in self.networks.items()]

    def upscale(self, image_path: Union[str, Path], weights: str, tile: int = 0,
                self_ensemble: bool = False) -> DemoResult:
        """Upscale the image file at ``image_path`` with ``weights`` (one of the session's).

        ``tile``: exact tiles of that many LR pixels (0: the whole image). Raises ``ImageReadError``
        (not an image), ``OptionError`` (a bad tile) or ``RT4KSRError`` (weights not offered).
        """
        if weights not in self.networks:
            raise RT4KSRError(f'weights {weights!r} are not offered by this page; choose one from the menu')
        net, loaded = self.networks[weights]
        source = Path(image_path)
        img = decode_unchanged(source.read_bytes(), source.name)
        try:
            opts = InferenceOptions(tile_size=int(tile) or None, self_ensemble=bool(self_ensemble),
                                    precision=self.precision)
        except OptionError as err:
            raise err.renamed(PAGE_NAMES) from None
        upscaler = Upscaler(net, opts, self.device, option_names=PAGE_NAMES)
        start = time.perf_counter()
        out = upscaler.image(img)
        seconds = time.perf_counter() - start
        ok, encoded = cv2.imencode('.png', out)
        if not ok:
            raise ImageReadError(f'cannot encode the output of {source.name} as PNG')
        png = self.output_dir / f'{source.stem}_x{upscaler.scale}.png'
        atomic_write_bytes(str(png), encoded.tobytes())
        kind = f'{img.dtype.itemsize * 8}-bit {KINDS[1 if img.ndim == 2 else img.shape[2]]}'
        how = ', '.join([self.device.type, self.precision] + ([f'tiles of {opts.tile_size}'] if tile else []) +
                        (['self-ensemble x8'] if self_ensemble else []))
        named = replace(loaded, source=Path(weights).name)  # no local folders on the page
        summary = (f'**x{upscaler.scale} in {seconds:.2f} s** ({how}): {img.shape[1]}x{img.shape[0]} -> '
                   f'**{out.shape[1]}x{out.shape[0]}** {kind}  \nweights: {named.describe()}')
        return DemoResult(preview(img), preview(bicubic_baseline(img, upscaler.scale)), preview(out), png, seconds,
                          summary)


def build_app(session: DemoSession) -> Any:
    """The Gradio page (``gr.Blocks``) of ``session``. Needs ``gradio`` (the ``[demo]`` extra)."""
    import gradio as gr

    def run(image_path: Optional[str], weights: str, tile: Optional[float], ensemble: bool) -> tuple:
        if not image_path:
            raise gr.Error('Upload an image or pick a bundled photo first.', print_exception=False)
        try:
            result = session.upscale(image_path, weights, int(tile or 0), ensemble)
        except (RT4KSRError, OSError) as err:  # the user's input: shown on the page, never a traceback
            raise gr.Error(str(err), print_exception=False) from None
        return (result.summary, (result.bicubic, result.sr), result.lr, result.bicubic, result.sr, str(result.png))

    choices = session.choices()
    photos = write_bundled_photos(session.output_dir / 'bundled')
    with gr.Blocks(title='RT4KSR demo', analytics_enabled=False) as app:
        gr.Markdown('## RT4KSR super-resolution\nUpload an image (8/16-bit, gray, RGB or RGBA) or pick a bundled '
                    'photo; the result is what `rt4ksr upscale` writes.')
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(label='LR image', type='filepath', image_mode=None, format='png',
                                 sources=['upload', 'clipboard'], elem_id='lr-input')
                if photos:
                    gr.Examples([[str(p)] for p in photos], inputs=[image], label='Bundled photos (scikit-image)')
                weights = gr.Dropdown(choices=choices, value=choices[0][1], label='Weights (the scale comes from them)')
                tile = gr.Number(value=0, precision=0, minimum=0, label='Tile (LR pixels; 0 = whole image)')
                ensemble = gr.Checkbox(label='Self-ensemble x8 (8x the time)')
                button = gr.Button('Upscale', variant='primary', elem_id='upscale')
            with gr.Column(scale=2):
                summary = gr.Markdown(elem_id='summary')
                slider = gr.ImageSlider(label='Bicubic | RT4KSR (drag)', type='numpy', format='png')
                with gr.Row():
                    views = [gr.Image(label=label, format='png', interactive=False)
                             for label in ('LR', 'Bicubic', 'RT4KSR')]
                download = gr.File(label='Output PNG (download)', elem_id='download')
        button.click(run, [image, weights, tile, ensemble], [summary, slider, *views, download])
    return app


def launch(app: Any, port: int, files: Sequence[Path] = (), block: bool = True) -> Any:
    """Serve ``app`` on ``127.0.0.1:port`` (errors shown on the page); returns Gradio's ``launch`` result.

    ``files``: folders the page may serve (the session's ``output_dir``). ``block=False`` returns
    at once with the server running in a thread. Raises ``OSError`` when the port is taken.
    """
    import gradio as gr
    system_fonts = gr.themes.Default(font=['ui-sans-serif', 'system-ui', 'sans-serif'],
                                     font_mono=['ui-monospace', 'monospace'])  # nothing fetched from the web
    return app.launch(server_name=HOST, server_port=port, show_error=True, share=False, inbrowser=False,
                      prevent_thread_lock=not block, ssr_mode=False, quiet=True, theme=system_fonts,
                      footer_links=[], allowed_paths=[str(f) for f in files])
