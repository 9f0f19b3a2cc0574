"""The CLI kit: one parser class, one spelling and check of every shared flag, one error rule.

Every tool (``rt4ksr <tool>``) builds its flags from here, so ``--device``, ``--precision``,
``--tile``, ``--tile-pad``, ``--batch``, ``--weights`` and friends mean and check the same thing
everywhere. User errors (``RT4KSRError``, and ``OSError`` on a user's path) become one
``error: …`` line and exit status 2; any other exception is a bug and keeps its traceback.
"""
import argparse
import signal
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterable, NoReturn, Optional, Sequence, Tuple

import torch
from torch import nn

from rt4ksr_arch.checkpoint import Weights, load_model
from rt4ksr_arch.config import ACTIVATIONS
from rt4ksr_arch.errors import CheckpointError, OptionError, OutputExistsError, OutputNotWritableError, RT4KSRError
from rt4ksr_arch.hub import RELEASED
from rt4ksr_arch.inference import PRECISIONS, InferenceOptions, Upscaler, resolve_device

# How the command line spells option and config fields (errors name what the user typed).
CLI_NAMES = {'tile_size': '--tile', 'tile_pad': '--tile-pad', 'tile_batch': '--batch', 'precision': '--precision',
             'self_ensemble': '--self-ensemble', 'channels_last': '--no-channels-last', 'compile': '--compile',
             'device': '--device', 'act_type': '--act-type', 'hf_branch': '--hf-branch'}


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the project's error rule: one ``error:`` line and exit status 2, no usage dump."""

    def error(self, message: str) -> NoReturn:
        print(f'error: {message} (see {self.prog} --help)', file=sys.stderr)
        sys.exit(2)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _int_at_least(text, 0)


def _int_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected an integer, got {text!r}') from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f'must be >= {minimum}, got {value}')
    return value


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--device', default='auto',
                        help='auto (CUDA when available, else the CPU), cpu, cuda or cuda:N (default: auto)')


PRECISION_HELP = {'fp32': 'fp32 (exact)', 'fp16': 'fp16 (GPUs)', 'bf16': 'bf16 (lossy: README, "Precision")'}


def add_precision(parser: argparse.ArgumentParser, choices: Sequence[str] = tuple(PRECISIONS),
                  default: Optional[str] = 'fp32', default_text: str = 'fp32') -> None:
    parser.add_argument('--precision', default=default, choices=list(choices),
                        help='weights and activations: ' + ', '.join(PRECISION_HELP[c] for c in choices) +
                        f' (default: {default_text})')


def add_inference(parser: argparse.ArgumentParser, tiles: bool = True, ensemble: bool = True,
                  batch: bool = True, batch_default: int = 4, precision_default: Optional[str] = 'fp32',
                  precision_text: str = 'fp32') -> None:
    """``--device --precision [--tile --tile-pad] [--self-ensemble] --no-channels-last --compile [--batch]``."""
    add_device(parser)
    add_precision(parser, default=precision_default, default_text=precision_text)
    if tiles:
        parser.add_argument('--tile', type=positive_int, default=None, metavar='N',
                            help='tile side in LR pixels (exact tiles; default: the whole image)')
        parser.add_argument('--tile-pad', type=non_negative_int, default=None, metavar='N',
                            help="LR context pixels per tile side (default: the network's receptive radius, exact)")
    if ensemble:
        parser.add_argument('--self-ensemble', action='store_true', help='x8 geometric self-ensemble (8x slower)')
    parser.add_argument('--no-channels-last', dest='channels_last', action='store_false',
                        help='run in NCHW memory instead of channels_last (slower; for comparison)')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the network (CUDA graphs on GPU); pays off over many same-size inputs')
    if batch:
        what = 'video frames, or tiles of one image with --tile' if tiles else 'frames'
        parser.add_argument('--batch', type=positive_int, default=batch_default, metavar='N',
                            help=f'inputs per forward pass: {what} (default {batch_default})')


def inference_options(args: argparse.Namespace) -> InferenceOptions:
    """The validated ``InferenceOptions`` of the flags ``add_inference`` added."""
    try:
        return InferenceOptions(tile_size=getattr(args, 'tile', None), tile_pad=getattr(args, 'tile_pad', None),
                                tile_batch=getattr(args, 'batch', 1),
                                self_ensemble=getattr(args, 'self_ensemble', False), precision=args.precision,
                                channels_last=args.channels_last, compile=args.compile)
    except OptionError as err:
        raise err.renamed(CLI_NAMES) from None


def device(args: argparse.Namespace) -> torch.device:
    """``torch.device`` of ``--device``; an ``OptionError`` naming the flag otherwise."""
    try:
        return resolve_device(args.device)
    except OptionError as err:
        raise err.renamed(CLI_NAMES) from None


def inference_setup(args: argparse.Namespace,
                    report: Callable[[str], None] = print) -> Tuple[InferenceOptions, torch.device]:
    """The validated options and device of the ``add_inference`` flags (check them before any slow
    work); warns when fp16 would run on a CPU."""
    opts, dev = inference_options(args), device(args)
    if opts.precision == 'fp16' and dev.type == 'cpu':
        report('warning: --precision fp16 on a CPU is slower than fp32 (CPUs lack fast fp16 convolutions); '
               'use fp32 there, fp16 on GPUs')
    return opts, dev


def make_upscaler(net: nn.Module, setup: Tuple[InferenceOptions, torch.device]) -> Upscaler:
    """The ``Upscaler`` of ``net`` with the options and device from ``inference_setup``; CLI names in messages."""
    return Upscaler(net, *setup, option_names=CLI_NAMES)


def add_weights(parser: argparse.ArgumentParser, positional: bool = False, required: bool = True,
                default: Optional[str] = None) -> None:
    """The checkpoint and what to read from it: ``--weights``, ``--param-key``, ``--act-type``, ``--hf-branch``.

    A released name (``rt4ksr_x2``, ``rt4ksr_x3``) is downloaded once and cached (``rt4ksr_arch.hub``).
    """
    what = ('checkpoint file (authors\' .pth, Lightning .ckpt, BasicSR .pth, bare state dict, .safetensors) or a '
            f'released name ({", ".join(RELEASED)}: downloaded once, verified, cached)' +
            (f'; default: {default}' if default else ''))
    if positional:
        parser.add_argument('weights', help=what)
    else:
        parser.add_argument('--weights', required=required and default is None, default=default, help=what)
    parser.add_argument('--param-key', default=None, choices=['params', 'params_ema', 'state_dict'],
                        help='which weights of the file (default: params_ema when present, else params); an asked '
                        'key the file lacks is an error')
    parser.add_argument('--act-type', default=None, choices=list(ACTIVATIONS),
                        help='activation the weights were trained with, for files that do not store their config '
                        '(default: read from the file, else gelu as released)')
    parser.add_argument('--hf-branch', default=None, choices=['on', 'off'],
                        help='whether the weights were trained with the high-frequency branch, for files that do '
                        'not store their config (default: read from the file, else off as released)')


def load_network(args: argparse.Namespace, deploy: bool = True, scale: Optional[int] = None,
                 report: Callable[[str], None] = print) -> Tuple[nn.Module, Weights]:
    """The network of ``--weights`` (eval mode, CPU) and its ``Weights`` (``describe()`` for a header).

    A file that does not store its config, read without ``--act-type`` / ``--hf-branch``, gets a
    note naming the assumption and the flags that change it.
    """
    hf_branch = None if args.hf_branch is None else args.hf_branch == 'on'
    overrides = {'act_type': args.act_type, 'hf_branch': hf_branch}
    net, weights = load_model(args.weights, deploy=deploy, param_key=args.param_key, overrides=overrides,
                              scale=scale)
    if args.param_key and weights.key != args.param_key:  # the loader fell back, as BasicSR does for YAML
        raise CheckpointError(f'--param-key {args.param_key}: {weights.source} holds no {args.param_key} weights '
                              f'(found: {weights.key.split(" ")[0]}); drop --param-key or choose that key')
    if weights.assumed:
        report(assumption_note(weights))
    return net, weights


def assumption_note(weights: Weights) -> str:
    """The note for weights whose file does not store its network config: what was assumed and the flags
    that say otherwise (``weights.assumed`` non-empty)."""
    flags = ' / '.join(CLI_NAMES[k] for k in weights.assumed)
    return (f'note: {weights.source} does not store its network config; assumed '
            f'{", ".join(f"{k}={getattr(weights.config, k)}" for k in weights.assumed)} (the released models). '
            f'If it was trained otherwise, pass {flags}.')


def add_overwrite(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--overwrite', action='store_true', help='replace existing outputs (default: keep them)')


def writable_folder(folder: Path, flag: str = 'the output') -> Path:
    """``folder``, created if needed, after proving a file can be written in it (before any long work).

    Raises ``OutputNotWritableError`` naming the folder, the cause (read-only, no permission, a
    file in the way, disk full) and ``flag``, the option that chose the folder.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputNotWritableError(f'{folder} is a file, not a folder; give {flag} a folder (or remove the file)')
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix='.rt4ksr-write-test-'):
            pass
    except OSError as err:
        raise OutputNotWritableError(f'cannot write to {folder} ({err.strerror or err}); give {flag} another '
                                     'folder or fix its permissions') from None
    return folder


def refuse_existing(paths: Iterable[Path], overwrite: bool) -> None:
    """Raise ``OutputExistsError`` naming every path that exists, unless ``overwrite``."""
    existing = [str(p) for p in paths if Path(p).exists()]
    if existing and not overwrite:
        verb = 'already exists' if len(existing) == 1 else 'already exist'
        raise OutputExistsError(f'{", ".join(existing)} {verb}; pass --overwrite to replace, or choose '
                                'another output')


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a service manager, a container stop), handled as Ctrl-C: partial outputs are removed."""


def _terminate(signum: int, frame) -> NoReturn:
    raise Terminated()


def run_tool(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """``run(args)``, with user errors turned into one ``error:`` line and exit status 2; Ctrl-C (130) and
    SIGTERM (143) stop it the same way, through every cleanup."""
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread (an embedding application): leave its handlers alone
        previous = None
    try:
        return run(args)
    except (RT4KSRError, OSError) as err:
        message = str(err) if isinstance(err, RT4KSRError) or not getattr(err, 'filename', None) else \
            f'{err.strerror or err}: {err.filename}'
        print(f'error: {message}', file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print('terminated' if isinstance(err, Terminated) else 'interrupted', file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(err, Terminated) else signal.SIGINT)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
