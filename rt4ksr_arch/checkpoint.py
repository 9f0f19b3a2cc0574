"""The one loader of RT4KSR weights, in every format they ship in, and the one checkpoint writer.

Formats read: the authors' ``.pth`` (``{'state_dict': {'module.…'}}``), PyTorch-Lightning
``.ckpt`` (``{'state_dict': {'model.…'}}``), BasicSR (``{'params': …, 'params_ema': …}``) and
bare state dicts; and ``.safetensors`` (one state dict, the config in the header's metadata; read
and written with the safetensors library, no pickle). Reading is split as spandrel splits it:
generic unwrapping (``extract_state_dict``) apart from RT4KSR detection (``infer_config``).

The network a checkpoint holds is described by an ``RT4KSRConfig``: read from the file when this
project wrote it (``CONFIG_KEY``), else sizes come from tensor shapes, and what shapes cannot tell
(GELU vs ReLU vs LeakyReLU, whether the high-frequency branch is live) comes from the caller's
overrides or, failing those, the authors' released configuration, listed in ``Weights.assumed`` so
that callers can say so. Every ``torch.load`` uses ``weights_only=True``: a checkpoint never runs code.
"""
import json
import pickle
import zipfile
from dataclasses import dataclass, replace
from os import path as osp
from typing import Any, Dict, Mapping, Optional, Tuple, Type, Union

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes
from torch import Tensor, nn

from rt4ksr_arch.archs.rt4ksr_arch import RT4KSR, RT4KSRDeploy
from rt4ksr_arch.config import CONFIG_KEY, RT4KSRConfig
from rt4ksr_arch.errors import CheckpointError, CheckpointNotFoundError, OptionError
from rt4ksr_arch.fileio import atomic_torch_save, atomic_write_bytes
from rt4ksr_arch.hub import RELEASED, released_name_of, resolve
from rt4ksr_arch.ops.fusion import fuse_state_dict

# Where state dicts hide, in the order tried when no key is asked for (EMA first: it is what
# training validated, and BasicSR writes both).
_CONTAINER_KEYS = ('params_ema', 'params', 'state_dict', 'model')
# DataParallel, PyTorch-Lightning and torch.compile prefixes.
_KEY_PREFIXES = ('module.', 'model.', '_orig_mod.')
_SHAPE_FIELDS = ('num_in_ch', 'num_out_ch', 'num_feat', 'num_block', 'upscale')
# What tensor shapes cannot tell, and the released models' value used when nobody says.
UNDETECTABLE = ('act_type', 'hf_branch')
RELEASED_CONFIG = RT4KSRConfig()
SAFETENSORS_SUFFIX = '.safetensors'  # the file type is told by its name, as spandrel and ComfyUI tell it

StateDict = Dict[str, Tensor]


@dataclass(frozen=True)
class Weights:
    """RT4KSR weights read from a checkpoint, and the network they belong to.

    ``state_dict`` has wrapper prefixes removed; ``form`` is ``train`` (ResBlocks) or ``deploy``
    (fused); ``key`` says where the weights were (``params_ema``, ``state_dict``, ``bare``);
    ``assumed`` lists the ``config`` fields that neither the file nor the caller stated;
    ``skipped`` the tensors a non-strict load left out (their shape differs).
    """

    state_dict: StateDict
    config: RT4KSRConfig
    form: str
    source: str
    key: str
    assumed: Tuple[str, ...] = ()
    skipped: Tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for logs: file, key, form and network, assumptions and skipped tensors."""
        assumed = ', '.join(f'{k}={getattr(self.config, k)}' for k in self.assumed)
        return (f'{self.source} [{self.key}], {self.form} form, {self.config.describe()}' +
                (f' (assumed: {assumed})' if assumed else '') +
                (f'; not loaded (shape differs): {list(self.skipped)}' if self.skipped else ''))


def is_safetensors(path: str) -> bool:
    """Whether ``path`` names a safetensors file (by its suffix, as every safetensors loader decides)."""
    return str(path).lower().endswith(SAFETENSORS_SUFFIX)


def read_checkpoint(path: str) -> Any:
    """A checkpoint file onto the CPU, without running code, with errors that name the problem.

    ``.safetensors``: ``{'params': tensors, CONFIG_KEY: config dict}`` (the config when the
    header's metadata holds one). Anything else: ``torch.load`` with ``weights_only=True``.
    Raises ``CheckpointNotFoundError`` (no such file) or ``CheckpointError`` (a folder, a damaged
    file, a tampered safetensors header, or a pickle holding Python objects beyond tensors and
    containers).
    """
    if not osp.exists(path):
        raise CheckpointNotFoundError(f'checkpoint not found: {path}; check the path, or use a released name '
                                      f'({", ".join(RELEASED)}: downloaded once and cached)')
    if osp.isdir(path):
        raise CheckpointError(f'checkpoint path is a folder, not a file: {path}')
    if is_safetensors(path):
        return _read_safetensors(path)
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
        corrupted: Exception = err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        corrupted = err
    raise CheckpointError(f'cannot read {path}: the file is truncated, corrupted or not a PyTorch checkpoint '
                          f'({type(corrupted).__name__} while unpacking it). '
                          'Download or copy it again.') from corrupted


def _read_safetensors(path: str) -> Dict[str, Any]:
    try:
        with safe_open(path, framework='pt', device='cpu') as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f'cannot read {path}: its safetensors header or data is damaged or was altered '
                              f'({err}). Download or copy it again.') from err
    checkpoint: Dict[str, Any] = {'params': tensors}
    if CONFIG_KEY in metadata:
        try:
            checkpoint[CONFIG_KEY] = json.loads(metadata[CONFIG_KEY])
        except json.JSONDecodeError as err:
            raise CheckpointError(f'{path}: the {CONFIG_KEY} entry of its safetensors metadata is not valid JSON '
                                  f'({err}); the header was altered, re-convert the file') from err
    if CONFIG_KEY in tensors:
        tensor_config = config_from_tensor(tensors.pop(CONFIG_KEY), path)
        if checkpoint.setdefault(CONFIG_KEY, tensor_config) != tensor_config:
            raise CheckpointError(f'{path}: its metadata and its {CONFIG_KEY} tensor hold different network configs; '
                                  'the file was altered, re-convert it')
    return checkpoint


def config_tensor(config: RT4KSRConfig) -> Tensor:
    """The config as a uint8 tensor of its JSON: state-dict-only loaders (spandrel) pass it on, metadata they drop."""
    return torch.tensor(list(json.dumps(config.to_dict()).encode()), dtype=torch.uint8)


def config_from_tensor(tensor: Tensor, name: str) -> Dict[str, Any]:
    """The config dict a ``config_tensor`` holds. Raises ``CheckpointError`` for anything else."""
    try:
        return json.loads(bytes(tensor.to(torch.uint8).flatten().tolist()).decode())
    except (ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(f'{name}: its {CONFIG_KEY} tensor is not a network config ({err})') from err


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


def extract_state_dict(checkpoint: Any, param_key: Optional[str] = None) -> Tuple[StateDict, str]:
    """The network weights inside ``checkpoint`` with wrapper prefixes removed, and their key.

    ``param_key`` (BasicSR's ``path.param_key_g``) is tried first; then ``params_ema``, ``params``,
    ``state_dict``, ``model``, then the checkpoint itself (``bare``). An asked key that is absent
    falls back like BasicSR does, and the returned key says so (``params (params_ema absent)``).
    """
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f'expected a dict-like checkpoint, got {type(checkpoint).__name__}')
    order = ((param_key, ) if param_key else ()) + _CONTAINER_KEYS
    for key in order:
        if _is_state_dict(checkpoint.get(key)):
            state_dict = checkpoint[key]
            where = key if not param_key or key == param_key else f'{key} ({param_key} absent)'
            break
    else:
        if not _is_state_dict(checkpoint):
            raise CheckpointError('no state dict found: top-level keys are '
                                  f'{sorted(map(str, checkpoint))[:12]}; expected one of {_CONTAINER_KEYS} '
                                  'or a bare state dict')
        state_dict, where = checkpoint, 'bare'
    return {_strip_prefixes(k): v for k, v in state_dict.items()}, where


def infer_config(state_dict: StateDict, num_out_ch: Optional[int] = None) -> Tuple[str, Dict[str, Any]]:
    """RT4KSR detection from tensors alone: (form, the config fields the shapes determine).

    ``form`` is ``train`` or ``deploy``. The fields are the five sizes, plus ``act_type: 'prelu'``
    when PReLU slopes are present. ``num_out_ch`` disambiguates the upsampler width
    (``out*(2s)^2``); by default it equals the input channels. Raises ``CheckpointError`` for
    weights that are not RT4KSR.
    """
    if 'head.0.weight' not in state_dict or 'upsample.0.weight' not in state_dict:
        raise CheckpointError('not an RT4KSR checkpoint: no head.0.weight / upsample.0.weight among its keys '
                              f'(first keys: {list(state_dict)[:6]})')
    has_train = any('.expand_conv.' in k for k in state_dict)
    has_deploy = any('.rep_conv.' in k for k in state_dict)
    if has_train == has_deploy:
        raise CheckpointError('not an RT4KSR checkpoint: expected either ResBlock (expand_conv) or fused '
                              f'(rep_conv) weights, found {"both" if has_train else "neither"}')
    head = state_dict['head.0.weight']
    if head.dim() != 4 or head.shape[1] % 4:
        raise CheckpointError(f'not an RT4KSR checkpoint: head.0.weight has shape {tuple(head.shape)}')
    num_feat, num_in_ch = int(head.shape[0]), int(head.shape[1]) // 4
    num_out_ch = num_out_ch or num_in_ch
    up_out = state_dict['upsample.0.weight'].shape[0]
    side = round((up_out / num_out_ch)**0.5)
    if side * side * num_out_ch != up_out or side % 2:
        raise CheckpointError(f'upsample.0.weight has {up_out} output channels, which is not '
                              f'{num_out_ch}*(2*scale)^2 for any integer scale')
    fields: Dict[str, Any] = dict(num_in_ch=num_in_ch, num_out_ch=num_out_ch, num_feat=num_feat,
                                  num_block=len({k.split('.')[1] for k in state_dict if k.startswith('body.')}),
                                  upscale=side // 2)
    if any(k.endswith('act.weight') or k == 'hfb.1.weight' for k in state_dict):
        fields['act_type'] = 'prelu'
    return 'train' if has_train else 'deploy', fields


def _stored_config(checkpoint: Any, name: str) -> Optional[RT4KSRConfig]:
    stored = checkpoint.get(CONFIG_KEY) if isinstance(checkpoint, Mapping) else None
    if stored is None:
        return None
    if isinstance(stored, Tensor):  # a bare state dict from one of our safetensors files (spandrel's route)
        stored = config_from_tensor(stored, name)
    try:
        return RT4KSRConfig.from_dict(stored, where=f'{name} {CONFIG_KEY}')
    except (OptionError, TypeError) as err:
        raise CheckpointError(f'{name}: its stored network config is invalid ({err}); re-save the checkpoint') from err


def weights_from_checkpoint(checkpoint: Any, name: str = 'checkpoint', param_key: Optional[str] = None,
                            overrides: Optional[Mapping[str, Any]] = None) -> Weights:
    """``Weights`` from an in-memory checkpoint (any supported layout).

    ``overrides`` are config fields the caller states (``act_type``, ``hf_branch``, or any
    other). They fill what the tensors cannot tell; against a config stored in the file, or
    against the tensors, a different value is a ``CheckpointError``.
    """
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    stored = _stored_config(checkpoint, name)
    if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get(CONFIG_KEY), Tensor):
        checkpoint = {k: v for k, v in checkpoint.items() if k != CONFIG_KEY}
    try:
        state_dict, key = extract_state_dict(checkpoint, param_key)
        form, found = infer_config(state_dict, stored.num_out_ch if stored else overrides.get('num_out_ch'))
    except CheckpointError as err:
        raise CheckpointError(f'{name}: {err}') from err
    if stored is not None:
        clash = [f'{k} is {getattr(stored, k)!r} in the file, {v!r} was given' for k, v in overrides.items()
                 if getattr(stored, k, v) != v]
        if clash:
            raise CheckpointError(f'{name} stores its network config and it disagrees: {"; ".join(clash)}. '
                                  'Drop the override; the stored config is what the weights were trained with')
        config, assumed = stored, ()
    else:
        clash = [f'{k} is {v!r} in the weights, {overrides[k]!r} was given' for k, v in found.items()
                 if k in overrides and overrides[k] != v]
        if 'act_type' not in found and overrides.get('act_type') == 'prelu':
            clash.append('act_type prelu was given, but the weights hold no PReLU slopes')
        if clash:
            raise CheckpointError(f'{name} does not match the given network: {"; ".join(clash)}')
        values = {**{k: getattr(RELEASED_CONFIG, k) for k in UNDETECTABLE}, **overrides, **found}
        try:
            config = RT4KSRConfig.from_dict(values)
        except OptionError as err:
            raise CheckpointError(f'{name}: {err}') from err
        assumed = tuple(k for k in UNDETECTABLE if k not in found and k not in overrides)
    mismatch = [f'{k} {found[k]} (tensors) vs {getattr(config, k)} (config)' for k in _SHAPE_FIELDS
                if found[k] != getattr(config, k)]
    if mismatch:
        raise CheckpointError(f'{name}: its stored config does not fit its tensors ({"; ".join(mismatch)}); '
                              'the file is inconsistent, re-save it')
    return Weights(state_dict, config, form, name, key, assumed)


def read_weights(source: str, param_key: Optional[str] = None,
                 overrides: Optional[Mapping[str, Any]] = None) -> Weights:
    """``Weights`` of a checkpoint file, or of a released name (``rt4ksr_x2``: downloaded once and
    cached, see ``rt4ksr_arch.hub``). The released files' network is known (by name, or by SHA-256
    for a copy passed by path), so nothing is assumed for them; see ``weights_from_checkpoint``."""
    path = resolve(source)
    if source in RELEASED or released_name_of(path):
        stated = {k: v for k, v in (overrides or {}).items() if v is not None}
        overrides = {**{k: getattr(RELEASED_CONFIG, k) for k in UNDETECTABLE}, **stated}
    return weights_from_checkpoint(read_checkpoint(path), path, param_key, overrides)


def check_compatible(weights: Weights, config: RT4KSRConfig, opt_prefix: str = 'network_g',
                     strict: bool = True) -> None:
    """Raise a ``CheckpointError`` naming every option on which ``weights`` and ``config`` disagree.

    Sizes are always compared (``strict=False`` tolerates another scale: fine-tuning x3/x4 from
    x2 weights loads all but the upsampler); ``act_type`` / ``hf_branch`` only where the weights
    state them (stored config, or PReLU slopes).
    """
    problems = []
    for key in _SHAPE_FIELDS:
        have, want = getattr(weights.config, key), getattr(config, key)
        if have != want and (strict or key != 'upscale'):
            shown = f'x{have}' if key == 'upscale' else have
            problems.append(f'checkpoint {key} is {shown}, {opt_prefix}.{key} is {want}')
    for key in UNDETECTABLE:
        have, want = getattr(weights.config, key), getattr(config, key)
        if key in weights.assumed:  # only PReLU slopes are visible in tensors
            if key == 'act_type' and want == 'prelu':
                problems.append(f'checkpoint has no PReLU weights, {opt_prefix}.act_type is prelu')
        elif have != want:
            problems.append(f'checkpoint {key} is {have}, {opt_prefix}.{key} is {want}')
    if problems:
        raise CheckpointError(f'{weights.source} does not fit the network: ' + '; '.join(problems) +
                              f'. Set {opt_prefix} to match the weights, or use the weights made for it.')


def load_rt4ksr_weights(net: nn.Module,
                        source: Union[str, Mapping[str, Any], Weights],
                        param_key: Optional[str] = None,
                        strict: bool = True,
                        opt_prefix: str = 'network_g') -> Weights:
    """Load RT4KSR weights (a file, an in-memory checkpoint or ``Weights``) into ``net``.

    ``net`` is an ``RT4KSR`` or ``RT4KSRDeploy``; train-form weights are fused on load for the
    latter. ``strict=False`` skips tensors whose shape differs (listed in the log by the caller).
    Returns the ``Weights`` loaded. Raises ``CheckpointError`` (and ``CheckpointNotFoundError``)
    with the option to change.
    """
    if isinstance(source, Weights):
        weights = source
    elif isinstance(source, str):
        weights = read_weights(source, param_key)
    else:
        weights = weights_from_checkpoint(source, 'checkpoint', param_key)
    check_compatible(weights, net.config, opt_prefix, strict)
    if weights.form == 'deploy' and not isinstance(net, RT4KSRDeploy):
        raise CheckpointError(f'{weights.source} holds fused (deploy-form) weights, which cannot be un-fused into '
                              f'the train-time {type(net).__name__}: set {opt_prefix}.type: RT4KSRDeploy, or load '
                              'train-form weights')
    state_dict = weights.state_dict
    if weights.form == 'train' and isinstance(net, RT4KSRDeploy):
        state_dict = fuse_state_dict(state_dict)
    if not strict:
        own = net.state_dict()
        skipped = sorted(k for k, v in state_dict.items() if k in own and own[k].shape != v.shape)
        state_dict = {k: v for k, v in state_dict.items() if k not in skipped}
        weights = replace(weights, skipped=tuple(skipped))
    try:
        net.load_state_dict(state_dict, strict=strict)
    except RuntimeError as err:
        raise CheckpointError(f'{weights.source} does not load into {type(net).__name__}: {err}') from err
    return weights


def load_model(source: Union[str, Weights], deploy: bool = False, param_key: Optional[str] = None,
               overrides: Optional[Mapping[str, Any]] = None, scale: Optional[int] = None) -> Tuple[nn.Module, Weights]:
    """The network a checkpoint holds, weights loaded, in eval mode, on the CPU, and its ``Weights``.

    ``deploy`` builds the fused ``RT4KSRDeploy`` (fused weights always give it). ``scale``, when
    given, must be the weights' scale. ``overrides``: see ``weights_from_checkpoint``.
    """
    weights = source if isinstance(source, Weights) else read_weights(source, param_key, overrides)
    if scale is not None and scale != weights.config.upscale:
        raise CheckpointError(f'{weights.source} holds x{weights.config.upscale} weights, but scale {scale} was '
                              f'asked: use x{scale} weights, or let the scale come from the weights')
    cls: Type[nn.Module] = RT4KSRDeploy if deploy or weights.form == 'deploy' else RT4KSR
    net = cls.from_config(weights.config)
    return net, load_rt4ksr_weights(net, weights, opt_prefix='the network')


def checkpoint_dict(config: RT4KSRConfig, **state_dicts: Mapping[str, Tensor]) -> Dict[str, Any]:
    """A BasicSR checkpoint (``params=…``, ``params_ema=…``) with the network config beside it.

    Tensors are detached and moved to the CPU. BasicSR loads it as usual (it ignores ``CONFIG_KEY``).
    """
    out: Dict[str, Any] = {key: {k: v.detach().cpu() for k, v in sd.items()} for key, sd in state_dicts.items()}
    out[CONFIG_KEY] = config.to_dict()
    return out


def save_checkpoint(path: str, config: RT4KSRConfig, **state_dicts: Mapping[str, Tensor]) -> None:
    """Write ``checkpoint_dict(config, **state_dicts)`` to ``path`` atomically (never half-written).

    A ``.safetensors`` path gets the one state dict given (``params=…``) as its tensors and the
    config as JSON under ``CONFIG_KEY`` in the header's metadata, and also as a ``config_tensor``
    under the same key (spandrel, hence ComfyUI, hands architectures the tensors alone). Raises ``ValueError`` when a
    safetensors file is asked for with more or fewer than one state dict.
    """
    if not is_safetensors(path):
        atomic_torch_save(checkpoint_dict(config, **state_dicts), path)
        return
    if len(state_dicts) != 1:
        raise ValueError(f'a safetensors file holds one state dict, got {sorted(state_dicts)}')
    (state_dict, ) = state_dicts.values()
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    tensors[CONFIG_KEY] = config_tensor(config)
    metadata = {CONFIG_KEY: json.dumps(config.to_dict()), 'format': 'pt'}  # 'format': what transformers expects
    atomic_write_bytes(path, safetensors_bytes(tensors, metadata), fsync=True)
