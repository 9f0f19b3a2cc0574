"""A local browser page to try RT4KSR: upload an image, see LR / bicubic / RT4KSR and a before/after slider.

    rt4ksr demo [--weights W [W ...]] [--port 7860] [--device auto|cpu|cuda] [--precision fp32|fp16|bf16]

Serves http://127.0.0.1:PORT (this machine only) until Ctrl+C. Choose the weights (their scale),
tiles and self-ensemble on the page; the time taken and the output size are shown, and the output
PNG, identical to what ``rt4ksr upscale`` writes, can be downloaded. Without ``--weights`` the
released x2 and x3 weights are offered (downloaded once). Needs the optional extra:
``pip install -e ".[demo]"``.
"""
import argparse

from rt4ksr_arch.cli.common import add_device, add_precision, device, positive_int
from rt4ksr_arch.errors import RT4KSRError
from rt4ksr_arch.hub import RELEASED

HELP = 'serve a local browser demo (Gradio): upload an image, compare bicubic and RT4KSR, download the PNG'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--weights', nargs='+', default=list(RELEASED), metavar='W',
                        help='RT4KSR checkpoints or released names offered on the page (default: '
                        f'{" ".join(RELEASED)})')
    parser.add_argument('--port', type=positive_int, default=7860, help='port on 127.0.0.1 (default 7860)')
    add_device(parser)
    add_precision(parser)


def run(args: argparse.Namespace) -> int:
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise RT4KSRError('rt4ksr demo needs Gradio: pip install -e ".[demo]"') from None
    from rt4ksr_arch.demo import DemoSession, build_app, launch
    session = DemoSession(args.weights, device(args), args.precision)
    for label, _ in session.choices():
        print(f'weights: {label}')
    print(f'serving http://127.0.0.1:{args.port} (this machine only); Ctrl+C stops')
    launch(build_app(session), args.port, files=[session.output_dir])
    return 0
