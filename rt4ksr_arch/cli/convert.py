"""Convert any RT4KSR checkpoint into a BasicSR one (``{'params': …, 'rt4ksr_config': …}``) or a safetensors file.

    rt4ksr convert INPUT OUTPUT [--format pth|safetensors] [--deploy] [--param-key KEY] [--act-type A]
                   [--hf-branch] [--overwrite]

INPUT may be the authors' ``.pth``, a PyTorch-Lightning ``.ckpt``, a BasicSR checkpoint or a
bare state dict. Sizes and scale are read from the weights; the activation and the
high-frequency branch from the file's stored config, else from ``--act-type`` / ``--hf-branch``,
else the released configuration (said so). The output stores that config, so every later tool
reads the right network. ``--deploy`` writes the fused (``RT4KSRDeploy``) weights. The result
is verified by loading it back, and written atomically; an existing OUTPUT is kept unless
``--overwrite``. ``--format safetensors`` (the default for an OUTPUT ending in ``.safetensors``)
writes the weights as safetensors (tensors only, no pickle) with the config in the header's
metadata.
"""
import argparse
from os import path as osp
from pathlib import Path
from typing import Optional

from rt4ksr_arch.checkpoint import SAFETENSORS_SUFFIX, is_safetensors, load_model, save_checkpoint
from rt4ksr_arch.cli.common import add_overwrite, add_weights, load_network, refuse_existing, writable_folder
from rt4ksr_arch.errors import CheckpointError, OptionError

HELP = 'convert any RT4KSR checkpoint to a BasicSR .pth or a .safetensors file that stores its network config'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_weights(parser, positional=True)
    parser.add_argument('output', help='file to write: a BasicSR checkpoint (.pth) or .safetensors')
    parser.add_argument('--format', choices=['pth', 'safetensors'], default=None,
                        help='file format (default: safetensors for an OUTPUT ending in .safetensors, else pth)')
    parser.add_argument('--deploy', action='store_true', help='write fused RT4KSRDeploy weights')
    add_overwrite(parser)


def check_format(output: str, file_format: Optional[str]) -> None:
    """Raise ``OptionError`` when ``--format`` contradicts OUTPUT's suffix (loaders choose the reader by it)."""
    if file_format is not None and (file_format == 'safetensors') != is_safetensors(output):
        wanted = f'a name ending in {SAFETENSORS_SUFFIX}' if file_format == 'safetensors' else \
            f'a name not ending in {SAFETENSORS_SUFFIX} (e.g. .pth)'
        raise OptionError('--format', f'{file_format} does not fit OUTPUT {output}: loaders (this one, spandrel, '
                          f'ComfyUI) choose the reader by the suffix, so give OUTPUT {wanted}')


def run(args: argparse.Namespace) -> int:
    check_format(args.output, args.format)
    if osp.abspath(args.weights) == osp.abspath(args.output):
        raise CheckpointError('INPUT and OUTPUT are the same file; choose another OUTPUT')
    refuse_existing([args.output], args.overwrite)
    writable_folder(Path(args.output).parent)
    net, weights = load_network(args, deploy=args.deploy)
    print(f'convert: {weights.describe()}')
    if weights.form == 'deploy' and not args.deploy:
        raise CheckpointError(f'{args.weights} holds fused weights, which cannot be un-fused: pass --deploy')
    save_checkpoint(args.output, net.config, params=net.state_dict())
    load_model(args.output)  # the written file reads back as a network
    print(f'wrote {args.output} ({"safetensors" if is_safetensors(args.output) else "pth"}): '
          f'{type(net).__name__} {net.config.describe()}, {sum(p.numel() for p in net.parameters()):,} parameters')
    return 0
