"""Read RT4KSR weights in every format they ship in, check them against a network, save safely.

Formats: the authors' ``.pth`` (``{'state_dict': {'module.…'}}``), PyTorch-Lightning
``.ckpt`` (``{'state_dict': {'model.…'}}``), BasicSR (``{'params': …, 'params_ema': …}``)
and bare state dicts. Train-form weights are fused on the fly for ``RT4KSRDeploy``.
Every load uses ``weights_only=True``: a checkpoint can never run code.
"""
import pickle
import zipfile
from os import path as osp
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from rt4ksr_arch.archs.rt4ksr_arch import RT4KSR, RT4KSRDeploy
from rt4ksr_arch.ops.fusion import fuse_state_dict

# Where state dicts hide, in the order tried after the key the caller asked for.
_CONTAINER_KEYS = ('params', 'params_ema', 'state_dict', 'model')
# DataParallel, PyTorch-Lightning and torch.compile prefixes.
_KEY_PREFIXES = ('module.', 'model.', '_orig_mod.')
_SHAPE_KEYS = ('num_in_ch', 'num_feat', 'num_block', 'upscale')

StateDict = Dict[str, Tensor]


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says why and what to do."""


def read_checkpoint(path: str) -> Any:
    """``torch.load`` onto the CPU with ``weights_only=True``, with errors that name the problem."""
    if not osp.exists(path):
        raise FileNotFoundError(f'checkpoint not found: {path} — check the path (e.g. path.pretrain_network_g); '
                                'the released weights are listed in the README, "Evaluate the released weights"')
    if osp.isdir(path):
        raise CheckpointError(f'checkpoint path is a folder, not a file: {path}')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        # weights_only names a refused type as "Unsupported global"; anything else is damage.
        if 'Unsupported global' in str(err):
            detail = str(err).split('Unsupported global')[1].split('\n')[0].strip(' :')
            raise CheckpointError(
                f'{path} holds Python objects beyond tensors and plain containers ({detail}), so it was not '
                'loaded (weights_only=True). Re-save only its state dict: torch.save(model.state_dict(), ...)'
            ) from err
        corrupted = err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        corrupted = err
    raise CheckpointError(f'cannot read {path}: the file is truncated, corrupted or not a PyTorch checkpoint '
                          f'({type(corrupted).__name__} while unpacking it). '
                          'Download or copy it again.') from corrupted


def _strip_prefixes(key: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for prefix in _KEY_PREFIXES:
            if key.startswith(prefix):
                key, stripped = key[len(prefix):], True
    return key


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(v, Tensor) for v in obj.values())


def extract_state_dict(checkpoint: Any, param_key: Optional[str] = 'params') -> Tuple[StateDict, str]:
    """The network weights inside ``checkpoint`` with wrapper prefixes removed, and where they were.

    ``param_key`` is tried first (BasicSR's ``path.param_key_g``), then ``params``,
    ``params_ema``, ``state_dict``, ``model``, then the checkpoint itself.
    """
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f'expected a dict-like checkpoint, got {type(checkpoint).__name__}')
    for key in ((param_key, ) if param_key else ()) + _CONTAINER_KEYS:
        if _is_state_dict(checkpoint.get(key)):
            state_dict, where = checkpoint[key], f'[{key}]'
            break
    else:
        if not _is_state_dict(checkpoint):
            raise CheckpointError('no state dict found: top-level keys are '
                                  f'{sorted(map(str, checkpoint))[:12]}; expected one of {_CONTAINER_KEYS} '
                                  'or a bare state dict')
        state_dict, where = checkpoint, 'bare state dict'
    return {_strip_prefixes(k): v for k, v in state_dict.items()}, where


def describe_state_dict(state_dict: StateDict, num_out_ch: Optional[int] = None) -> Dict[str, Any]:
    """Form (``train``/``deploy``) and shape of RT4KSR weights, read from the tensors alone.

    ``num_out_ch`` disambiguates the upsampler width (out*(2s)^2); by default it equals
    the input channels, as in every RT4KSR released so far.
    """
    if 'head.0.weight' not in state_dict or 'upsample.0.weight' not in state_dict:
        raise CheckpointError('not an RT4KSR checkpoint: no head.0.weight / upsample.0.weight among its keys '
                              f'(first keys: {list(state_dict)[:6]})')
    has_train = any('.expand_conv.' in k for k in state_dict)
    has_deploy = any('.rep_conv.' in k for k in state_dict)
    if has_train == has_deploy:
        raise CheckpointError('not an RT4KSR checkpoint: expected either ResBlock (expand_conv) or fused '
                              f'(rep_conv) weights, found {"both" if has_train else "neither"}')
    num_feat, head_in = state_dict['head.0.weight'].shape[:2]
    num_in_ch = head_in // 4
    num_out_ch = num_out_ch or num_in_ch
    up_out = state_dict['upsample.0.weight'].shape[0]
    side = round((up_out / num_out_ch)**0.5)
    if side * side * num_out_ch != up_out or side % 2:
        raise CheckpointError(f'upsample.0.weight has {up_out} output channels, which is not '
                              f'{num_out_ch}*(2*scale)^2 for any integer scale')
    has_prelu = any(k.endswith('act.weight') or k == 'hfb.1.weight' for k in state_dict)
    return dict(form='train' if has_train else 'deploy', num_in_ch=int(num_in_ch), num_out_ch=int(num_out_ch),
                num_feat=int(num_feat), num_block=len({k.split('.')[1] for k in state_dict if k.startswith('body.')}),
                upscale=side // 2, prelu=has_prelu)


def check_compatible(found: Dict[str, Any], net_config: Dict[str, Any], source: str,
                     opt_prefix: str = 'network_g', strict: bool = True) -> None:
    """Raise a CheckpointError naming every shape option on which weights and network disagree.

    ``strict=False`` tolerates another scale (fine-tuning x3/x4 from x2 weights: all but the
    upsampler loads).
    """
    problems = []
    for key in _SHAPE_KEYS:
        if found[key] != net_config[key] and (strict or key != 'upscale'):
            shown = f'x{found[key]}' if key == 'upscale' else found[key]
            problems.append(f'checkpoint {key} is {shown}, {opt_prefix}.{key} is {net_config[key]}')
    if found['prelu'] != (net_config['act_type'] == 'prelu'):
        problems.append(f'checkpoint {"has" if found["prelu"] else "has no"} PReLU weights, '
                        f'{opt_prefix}.act_type is {net_config["act_type"]}')
    if problems:
        raise CheckpointError(f'{source} does not fit the network: ' + '; '.join(problems) +
                              f'. Set {opt_prefix} to match the weights, or use the weights made for it.')


def load_rt4ksr_weights(net: nn.Module,
                        source: Union[str, Mapping[str, Any]],
                        param_key: Optional[str] = 'params',
                        strict: bool = True,
                        opt_prefix: str = 'network_g') -> str:
    """Load RT4KSR weights of any supported format into ``net`` (RT4KSR or RT4KSRDeploy).

    Returns a one-line description of what was loaded, for the log.
    """
    name = source if isinstance(source, str) else 'checkpoint'
    checkpoint = read_checkpoint(source) if isinstance(source, str) else source
    try:
        state_dict, where = extract_state_dict(checkpoint, param_key)
        found = describe_state_dict(state_dict, getattr(net, 'num_out_ch', None))
    except CheckpointError as err:
        raise CheckpointError(f'{name}: {err}') from err
    check_compatible(found, net.config, name, opt_prefix, strict)
    if found['form'] == 'deploy' and not isinstance(net, RT4KSRDeploy):
        raise CheckpointError(f'{name} holds fused (deploy-form) weights, which cannot be un-fused into the '
                              f'train-time {type(net).__name__}: set {opt_prefix}.type: RT4KSRDeploy, or load '
                              'train-form weights')
    fused = found['form'] == 'train' and isinstance(net, RT4KSRDeploy)
    if fused:
        state_dict = fuse_state_dict(state_dict)
    skipped = []
    if not strict:
        own = net.state_dict()
        skipped = sorted(k for k, v in state_dict.items() if k in own and own[k].shape != v.shape)
        state_dict = {k: v for k, v in state_dict.items() if k not in skipped}
    try:
        net.load_state_dict(state_dict, strict=strict)
    except RuntimeError as err:
        raise CheckpointError(f'{name} does not load into {type(net).__name__}: {err}') from err
    return (f'{where}, {found["form"]} form{" fused on load" if fused else ""}, x{found["upscale"]}, '
            f'C={found["num_feat"]}, N={found["num_block"]}' +
            (f'; not loaded (shape differs, strict_load_g: false): {skipped}' if skipped else ''))


def build_from_state_dict(state_dict: StateDict, deploy: bool = False, **overrides: Any) -> nn.Module:
    """A network shaped like ``state_dict`` (fused if ``deploy``), with those weights loaded."""
    found = describe_state_dict(state_dict, overrides.get('num_out_ch'))
    config = {k: found[k] for k in ('num_in_ch', 'num_out_ch', 'num_feat', 'num_block', 'upscale')}
    config['act_type'] = 'prelu' if found['prelu'] else 'gelu'
    config.update(overrides)
    net = (RT4KSRDeploy if deploy else RT4KSR)(**config)
    load_rt4ksr_weights(net, {'params': state_dict}, opt_prefix='the inferred network')
    return net


def load_from_file(path: str, deploy: bool = False, scale: Optional[int] = None) -> nn.Module:
    """The network described by the checkpoint at ``path`` (any format), weights loaded, in eval mode.

    ``scale``, when given, must be the weights' scale (a clear error otherwise).
    """
    net = build_from_state_dict(extract_state_dict(read_checkpoint(path))[0], deploy=deploy).eval()
    if scale is not None and scale != net.upscale:
        raise CheckpointError(f'{path} holds x{net.upscale} weights, but scale {scale} was asked: '
                              f'use x{scale} weights, or let the scale come from the weights')
    return net
