"""Convert any RT4KSR checkpoint into a BasicSR one: ``{'params': state_dict}``.

    python -m rt4ksr_arch.convert INPUT OUTPUT [--deploy] [--param-key KEY] [--overwrite]

INPUT may be the authors' ``.pth``, a PyTorch-Lightning ``.ckpt``, a BasicSR checkpoint or a
bare state dict. Scale, width and depth are read from the weights. ``--deploy`` writes the
fused (``RT4KSRDeploy``) weights. The result is verified by loading it into the network it
describes, and written atomically; an existing OUTPUT is kept unless ``--overwrite``.
"""
import argparse
import sys
from os import path as osp
from typing import List, Optional

import rt4ksr_arch  # noqa: F401  (compat + registries)
from rt4ksr_arch.checkpoint import (CheckpointError, build_from_state_dict, describe_state_dict, extract_state_dict,
                                    read_checkpoint)
from rt4ksr_arch.fileio import atomic_torch_save


def convert(src: str, dst: str, deploy: bool = False, param_key: Optional[str] = None,
            overwrite: bool = False) -> str:
    """Write ``dst`` from ``src``; return a one-line summary of the network it holds."""
    if osp.abspath(src) == osp.abspath(dst):
        raise CheckpointError('INPUT and OUTPUT are the same file; choose another OUTPUT')
    if osp.exists(dst) and not overwrite:
        raise FileExistsError(f'{dst} exists; pass --overwrite to replace it, or choose another OUTPUT')
    checkpoint = read_checkpoint(src)
    try:
        state_dict, where = extract_state_dict(checkpoint, param_key)
        if describe_state_dict(state_dict)['form'] == 'deploy' and not deploy:
            raise CheckpointError('it holds fused weights, which cannot be un-fused: pass --deploy')
        net = build_from_state_dict(state_dict, deploy=deploy)
    except CheckpointError as err:
        raise CheckpointError(f'{src}: {err}') from err
    atomic_torch_save({'params': net.state_dict()}, dst)
    cfg = net.config
    return (f'{src} {where} -> {dst}: {type(net).__name__} x{cfg["upscale"]}, num_feat={cfg["num_feat"]}, '
            f'num_block={cfg["num_block"]}, {sum(p.numel() for p in net.parameters()):,} parameters')


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m rt4ksr_arch.convert', description=__doc__.split('\n')[0])
    parser.add_argument('input', help='RT4KSR checkpoint (.pth, Lightning .ckpt, BasicSR, bare state dict)')
    parser.add_argument('output', help='BasicSR checkpoint to write')
    parser.add_argument('--deploy', action='store_true', help='write fused RT4KSRDeploy weights')
    parser.add_argument('--param-key', default=None, help='key holding the weights (default: auto, params first)')
    parser.add_argument('--overwrite', action='store_true', help='replace OUTPUT if it exists')
    args = parser.parse_args(argv)
    try:
        print(convert(args.input, args.output, args.deploy, args.param_key, args.overwrite))
    except (CheckpointError, FileNotFoundError, FileExistsError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
