"""Make basicsr 1.4.2 (2022) run on today's torch/torchvision; applied once on ``import rt4ksr_arch``.

Every fix replaces or wraps a basicsr attribute at run time; site-packages is never
edited. Each fix states the breakage it answers:

1. ``torchvision.transforms.functional_tensor`` was removed (torchvision 0.17) and
   ``basicsr.data.degradations`` imports it on ``import basicsr``: alias it.
2. ``torch.distributed.launch`` passes ``--local-rank=N`` but basicsr's parser knows
   only ``--local_rank``: both spellings are accepted.
3. ``init_dist`` hard-codes NCCL and ``torch.cuda.set_device`` (fails on CPU) and uses
   RANK instead of LOCAL_RANK as the device index (wrong on multi-node): gloo on CPU,
   NCCL on GPU, ``dist_params.backend`` / ``dist_params.timeout_minutes`` override.
4. Resume calls ``torch.cuda.current_device()`` (fails on CPU), looks for
   ``experiments/`` relative to the working directory, and ``torch.load`` now defaults
   to ``weights_only=True`` which rejects the ``Counter`` in basicsr's scheduler state:
   states load on the model's device, from the experiment folder, with that type allowed.
5. ``SRModel`` reads ``opt['val']['suffix']`` unguarded (KeyError): default it to None.
6. Output roots are always forced under the repository: a ``path.experiments_root`` /
   ``path.results_root`` given in the YAML is honoured (the tests and users write elsewhere).
7. Resume restarts the saved epoch from its first batch (samples seen twice, others never):
   the train sampler becomes ``ResumableEnlargedSampler``, which skips what was consumed.
8. The epoch count assumes ``ceil(samples / (batch * world_size))`` iterations per epoch, but
   the loader drops the last partial batch of every rank: runs (DDP especially) stopped before
   ``total_iter``. It is recomputed from the loader's real length, and an empty loader is an error.
"""
import datetime
import importlib
import math
import os
import sys
from collections import Counter
from os import path as osp
from typing import Any, Callable, Dict, List, Optional

import torch

_APPLIED = False
_DEFAULT_TIMEOUT_MINUTES = 120  # rank 0 validates alone while the others wait in a collective


def _alias_functional_tensor() -> None:
    try:
        import torchvision.transforms.functional_tensor  # noqa: F401
    except ImportError:
        import torchvision.transforms.functional as functional
        sys.modules['torchvision.transforms.functional_tensor'] = functional


def normalize_local_rank_argv(argv: List[str]) -> List[str]:
    """Rewrite ``--local-rank`` (torch>=2 launchers) to basicsr's ``--local_rank``."""
    return [('--local_rank' + a[len('--local-rank'):]) if a.startswith('--local-rank') else a for a in argv]


def _option_file_from_argv(argv: List[str]) -> Optional[str]:
    for i, arg in enumerate(argv):
        if arg == '-opt' and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith('-opt='):
            return arg[len('-opt='):]
    return None


def _read_yaml(path: str) -> Dict[str, Any]:
    import yaml
    from basicsr.utils.options import ordered_yaml
    if not osp.isfile(path):
        raise FileNotFoundError(f'option file not found: {path} (pass an existing YAML with -opt)')
    with open(path, 'r') as f:
        return yaml.load(f, Loader=ordered_yaml()[0]) or {}


_pending_dist_params: Dict[str, Any] = {}


def init_dist(launcher: str, backend: Optional[str] = None, **kwargs: Any) -> None:
    """basicsr's init_dist without its GPU-only assumptions (see module docstring, fix 3)."""
    import torch.distributed as dist
    import torch.multiprocessing as mp
    if launcher != 'pytorch':
        from basicsr.utils import dist_util
        slurm_kwargs = {k: v for k, v in kwargs.items() if k == 'port'}  # slurm takes no other option
        return dist_util.init_dist(launcher, backend=backend or 'nccl', **slurm_kwargs)
    if mp.get_start_method(allow_none=True) is None:
        mp.set_start_method('spawn')
    params = {**_pending_dist_params, **kwargs}
    backend = backend or params.pop('backend', None)
    timeout_minutes = float(params.pop('timeout_minutes', _DEFAULT_TIMEOUT_MINUTES))
    params.pop('port', None)  # slurm-only option
    use_cuda = torch.cuda.is_available()
    if use_cuda:
        local_rank = int(os.environ.get('LOCAL_RANK', os.environ.get('RANK', 0)))
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    dist.init_process_group(
        backend=backend or ('nccl' if use_cuda else 'gloo'),
        timeout=datetime.timedelta(minutes=timeout_minutes),
        **params)


def _wrap_parse_options(original: Callable) -> Callable:

    def parse_options(root_path: str, is_train: bool = True):
        sys.argv = normalize_local_rank_argv(sys.argv)
        opt_file = _option_file_from_argv(sys.argv)
        user_paths: Dict[str, Any] = {}
        if opt_file is not None:
            raw = _read_yaml(opt_file)
            _pending_dist_params.clear()
            _pending_dist_params.update(dict(raw.get('dist_params') or {}))
            user_paths = dict(raw.get('path') or {})
        opt, args = original(root_path, is_train)
        if isinstance(opt.get('val'), dict):
            opt['val'].setdefault('suffix', None)
        _honour_user_roots(opt, user_paths, is_train)
        return opt, args

    return parse_options


def _honour_user_roots(opt: Dict[str, Any], user_paths: Dict[str, Any], is_train: bool) -> None:
    paths = opt['path']
    if is_train and user_paths.get('experiments_root'):
        root = osp.abspath(osp.expanduser(user_paths['experiments_root']))
        paths.update(experiments_root=root, models=osp.join(root, 'models'),
                     training_states=osp.join(root, 'training_states'), log=root,
                     visualization=osp.join(root, 'visualization'))
    elif not is_train and user_paths.get('results_root'):
        root = osp.abspath(osp.expanduser(user_paths['results_root']))
        paths.update(results_root=root, log=root, visualization=osp.join(root, 'visualization'))


def latest_training_state(state_dir: str) -> Optional[str]:
    """Path of the highest-iteration ``<iter>.state`` file in ``state_dir`` (None if none)."""
    if not osp.isdir(state_dir):
        return None
    iters = [int(name[:-len('.state')]) for name in os.listdir(state_dir)
             if name.endswith('.state') and name[:-len('.state')].isdigit()]
    return osp.join(state_dir, f'{max(iters)}.state') if iters else None


def load_training_state(path: str) -> Dict[str, Any]:
    """``torch.load`` a basicsr training state safely onto the CPU (the model moves it)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'resume state not found: {path} (check path.resume_state)')
    return torch.load(path, map_location='cpu', weights_only=True)


def load_resume_state(opt: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """basicsr's load_resume_state, CPU-safe and independent of the working directory."""
    from basicsr.utils import check_resume
    if opt['auto_resume']:
        state_path = latest_training_state(opt['path']['training_states'])
        if state_path is not None:
            opt['path']['resume_state'] = state_path
    else:
        state_path = opt['path'].get('resume_state')
    if not state_path:
        return None
    resume_state = load_training_state(state_path)
    check_resume(opt, resume_state['iter'])
    _resume_position.update(iter=resume_state['iter'], epoch=resume_state['epoch'])
    return resume_state


_resume_position: Dict[str, int] = {}


def _wrap_create_train_val_dataloader(original: Callable) -> Callable:

    def create_train_val_dataloader(opt: Dict[str, Any], logger: Any):
        result = original(opt, logger)
        train_loader, train_sampler, val_loaders, _, total_iters = result
        if len(train_loader) == 0:
            data_opt = opt['datasets']['train']
            raise ValueError(f'the training set gives no full batch per process: {len(train_sampler)} samples per '
                             f'process < batch_size_per_gpu {data_opt["batch_size_per_gpu"]}; raise '
                             'dataset_enlarge_ratio or lower batch_size_per_gpu')
        total_epochs = math.ceil(total_iters / len(train_loader))
        if total_epochs != result[3]:
            logger.info(f'Total epochs: {total_epochs} (the loader gives {len(train_loader)} full batches per epoch '
                        'per process, not the count above)')
        result = (train_loader, train_sampler, val_loaders, total_epochs, total_iters)
        if _resume_position and hasattr(train_sampler, 'resume_at'):
            # every finished epoch ran len(train_loader) iterations (drop_last batches)
            done = _resume_position['iter'] - _resume_position['epoch'] * len(train_loader)
            train_sampler.resume_at(done * train_loader.batch_size)
            logger.info(f'Resuming epoch {_resume_position["epoch"]} after its first {done} batches.')
        _resume_position.clear()
        return result

    return create_train_val_dataloader


def apply() -> None:
    """Apply every fix once (idempotent)."""
    global _APPLIED
    if _APPLIED:
        return
    _alias_functional_tensor()
    torch.serialization.add_safe_globals([Counter])
    from rt4ksr_arch.data.sampler import ResumableEnlargedSampler

    options, train, test = (importlib.import_module(f'basicsr.{name}') for name in ('utils.options', 'train', 'test'))
    parse_options = _wrap_parse_options(options.parse_options)
    for module in (options, train, test):
        module.parse_options = parse_options
    options.init_dist = init_dist
    train.load_resume_state = load_resume_state
    train.create_train_val_dataloader = _wrap_create_train_val_dataloader(train.create_train_val_dataloader)
    train.EnlargedSampler = ResumableEnlargedSampler
    _APPLIED = True
