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
   ``total_iter``, and the log then stated a wrong "Total epochs". It is computed from the
   loader's real length and logged once, and an empty loader is an error.
9. Tensorboard event files go to ``<checkout>/tb_logger/<name>`` whatever ``experiments_root``
   says: they go to ``<experiments_root>/tb_logger``, so every output of a run is in its folder.
10. ``--auto_resume`` takes the newest ``.state`` even when it is damaged (a run killed while
    writing it, a full disk), and dies in ``torch.load``: damaged states and their models are
    skipped with a warning naming them, back to the newest intact pair.
11. Options that point at nothing or contradict each other are found only after the experiment or
    results folder was archived and replaced, or hours in: data roots, weights and option
    consistency (``RT4KSRModel``'s ``validate_options``) are checked right after parsing.
12. A failed test run has already archived the previous results folder (``_archived_<time>``):
    ``run_pipeline`` puts it back. Runners print user errors as one ``error:`` line (exit 2) and,
    after training, the saved model and the command to try it.
"""
import datetime
import importlib
import math
import os
import shlex
import shutil
import sys
from collections import Counter
from os import path as osp
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from rt4ksr_arch.errors import CheckpointError, DatasetError, OptionError, RT4KSRError

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
            check_dataset_scales(raw)
        opt, args = original(root_path, is_train)
        if isinstance(opt.get('val'), dict):
            opt['val'].setdefault('suffix', None)
        _honour_user_roots(opt, user_paths, is_train)
        check_before_start(opt)
        _run.update(opt=opt, root_path=root_path)
        return opt, args

    return parse_options


_run: Dict[str, Any] = {}  # the options of the pipeline this process runs (the runner reports from them)


def check_before_start(opt: Dict[str, Any]) -> None:
    """Fix 11: fail before any folder is made or archived when data or weights are missing or the
    options contradict each other. Raises ``DatasetError`` / ``CheckpointError`` / ``OptionError``."""
    from rt4ksr_arch.hub import RELEASED
    for name, data in (opt.get('datasets') or {}).items():
        for key in ('dataroot_gt', 'dataroot_lq', 'meta_info_file'):
            path = (data or {}).get(key)
            if path and not osp.exists(path):
                raise DatasetError(f'datasets.{name}.{key}: {path} does not exist; datasets/README.md says how to '
                                   'get the data and where it goes')
    pretrained = opt['path'].get('pretrain_network_g')
    if pretrained and not opt['path'].get('resume_state') and not opt.get('auto_resume') and \
            not osp.isfile(pretrained) and pretrained not in RELEASED:
        raise CheckpointError(f'path.pretrain_network_g: {pretrained} does not exist; give a checkpoint file or a '
                              f'released name ({", ".join(RELEASED)})')
    if opt.get('model_type') == 'RT4KSRModel':
        from rt4ksr_arch.models.rt4ksr_model import validate_options
        validate_options(opt)


def check_dataset_scales(raw: Dict[str, Any]) -> None:
    """basicsr overwrites each dataset's ``scale`` with the top-level one: a different dataset scale was
    silently ignored. Raises ``OptionError`` naming both."""
    for name, data in (raw.get('datasets') or {}).items():
        scale = (data or {}).get('scale')
        if scale is not None and scale != raw.get('scale'):
            raise OptionError(f'datasets.{name}.scale', f'is {scale} but the top-level scale is {raw.get("scale")}, '
                              'which every dataset uses: set the top-level scale (and network_g.upscale) and remove '
                              'the dataset\'s')


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


def training_states(state_dir: str) -> List[str]:
    """Paths of the ``<iter>.state`` files in ``state_dir``, newest (highest iteration) first."""
    if not osp.isdir(state_dir):
        return []
    iters = [int(name[:-len('.state')]) for name in os.listdir(state_dir)
             if name.endswith('.state') and name[:-len('.state')].isdigit()]
    return [osp.join(state_dir, f'{it}.state') for it in sorted(iters, reverse=True)]


def load_training_state(path: str) -> Dict[str, Any]:
    """``torch.load`` a basicsr training state safely onto the CPU (the model moves it).

    Raises ``CheckpointError`` naming the file when it is missing, truncated or not a state.
    """
    if not osp.isfile(path):
        raise CheckpointError(f'resume state not found: {path} (check path.resume_state)')
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # truncated zip, pickle error, empty file: all mean "damaged"
        raise CheckpointError(f'training state {path} is damaged ({type(err).__name__}: {err})') from None
    if not isinstance(state, dict) or 'iter' not in state or 'epoch' not in state:
        raise CheckpointError(f'{path} is not a training state (no iter/epoch inside)')
    return state


def _intact_resume_state(opt: Dict[str, Any]) -> Tuple[Optional[str], Optional[Dict[str, Any]]]:
    """Fix 10: the newest state whose file and saved networks all load, warning about damaged ones."""
    from rt4ksr_arch.checkpoint import read_checkpoint
    networks = [key[len('network_'):] for key in opt if key.startswith('network_')]
    states = training_states(opt['path']['training_states'])
    for path in states:
        try:
            state = load_training_state(path)
            for net in networks:
                read_checkpoint(osp.join(opt['path']['models'], f'net_{net}_{state["iter"]}.pth'))
        except RT4KSRError as err:
            _warn_before_log(f'--auto_resume skips a damaged checkpoint: {err}')
            continue
        return path, state
    if states:
        _warn_before_log(f'--auto_resume found no intact training state in {opt["path"]["training_states"]}: '
                         'training starts again from iteration 0, and the old experiment folder is archived '
                         '(renamed with _archived_ and a time stamp) with its damaged files')
    return None, None


def _warn_before_log(message: str) -> None:
    """Print a warning now and write it to the run's log once the log file exists."""
    _pending_log.append(message)
    print(f'warning: {message}', file=sys.stderr)


def load_resume_state(opt: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """basicsr's load_resume_state, CPU-safe, independent of the working directory, and skipping
    damaged states on ``--auto_resume``."""
    from basicsr.utils import check_resume
    if opt['auto_resume']:
        state_path, resume_state = _intact_resume_state(opt)
        if state_path is not None:
            opt['path']['resume_state'] = state_path
    else:
        state_path = opt['path'].get('resume_state')
        try:
            resume_state = load_training_state(state_path) if state_path else None
        except CheckpointError as err:
            raise CheckpointError(f'{err}; point path.resume_state at an intact one, or run with --auto_resume '
                                  '(and no path.resume_state) to take the newest intact state') from None
    if resume_state is None:
        return None
    check_resume(opt, resume_state['iter'])
    _resume_position.update(iter=resume_state['iter'], epoch=resume_state['epoch'])
    return resume_state


_resume_position: Dict[str, int] = {}
_pending_log: List[str] = []  # warnings from before the log file exists, written to it once it does


class _WithoutStatistics:
    """A logger that drops basicsr's "Training statistics" record (fix 8 logs the right one)."""

    def __init__(self, logger: Any) -> None:
        self.logger = logger

    def info(self, message: str, *args: Any, **kwargs: Any) -> None:
        if not str(message).startswith('Training statistics:'):
            self.logger.info(message, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.logger, name)


def _wrap_create_train_val_dataloader(original: Callable) -> Callable:

    def create_train_val_dataloader(opt: Dict[str, Any], logger: Any):
        for message in _pending_log:
            logger.warning(message)
        _pending_log.clear()
        train_loader, train_sampler, val_loaders, _, total_iters = original(opt, _WithoutStatistics(logger))
        data_opt = opt['datasets']['train']
        if len(train_loader) == 0:
            raise DatasetError(f'the training set gives no full batch per process: {len(train_sampler)} samples per '
                               f'process < batch_size_per_gpu {data_opt["batch_size_per_gpu"]}; raise '
                               'dataset_enlarge_ratio or lower batch_size_per_gpu')
        total_epochs = math.ceil(total_iters / len(train_loader))
        logger.info('Training statistics:'
                    f'\n\tNumber of train images: {len(train_loader.dataset)}'
                    f'\n\tDataset enlarge ratio: {data_opt.get("dataset_enlarge_ratio", 1)}'
                    f'\n\tBatch size per gpu: {data_opt["batch_size_per_gpu"]}'
                    f'\n\tWorld size (gpu number): {opt["world_size"]}'
                    f'\n\tIterations per epoch (full batches per process): {len(train_loader)}'
                    f'\n\tTotal epochs: {total_epochs}; iters: {total_iters}.')
        result = (train_loader, train_sampler, val_loaders, total_epochs, total_iters)
        if _resume_position and hasattr(train_sampler, 'resume_at'):
            # every finished epoch ran len(train_loader) iterations (drop_last batches)
            done = _resume_position['iter'] - _resume_position['epoch'] * len(train_loader)
            train_sampler.resume_at(_resume_position['epoch'], done * train_loader.batch_size)
            logger.info(f'Resuming epoch {_resume_position["epoch"]} after its first {done} batches.')
        _resume_position.clear()
        return result

    return create_train_val_dataloader


def init_tb_loggers(opt: Dict[str, Any]) -> Any:
    """Fix 9: basicsr's tensorboard (and wandb) set-up, writing into ``<experiments_root>/tb_logger``."""
    from basicsr.utils import init_tb_logger, init_wandb_logger
    logger_opt = opt['logger']
    if (logger_opt.get('wandb') or {}).get('project') is not None and 'debug' not in opt['name']:
        if not logger_opt.get('use_tb_logger'):
            raise RT4KSRError('logger.wandb.project needs logger.use_tb_logger: true (wandb syncs tensorboard)')
        init_wandb_logger(opt)
    if logger_opt.get('use_tb_logger') and 'debug' not in opt['name']:
        return init_tb_logger(log_dir=osp.join(opt['path']['experiments_root'], 'tb_logger'))
    return None


_archived: List[Tuple[str, str]] = []  # (folder, its archive) renamed by this process


def mkdir_and_rename(path: str) -> None:
    """basicsr's archive-and-create, remembering what it archived (fix 12); the tensorboard folder
    under the checkout is no longer made (fix 9)."""
    if _run and path == osp.join(_run['root_path'], 'tb_logger', _run['opt']['name']):
        return
    from basicsr.utils.misc import get_time_str
    if osp.exists(path):
        archive = f'{path}_archived_{get_time_str()}'
        print(f'Path already exists. Rename it to {archive}', flush=True)
        os.rename(path, archive)
        _archived.append((path, archive))
    os.makedirs(path, exist_ok=True)


def restore_archived() -> List[str]:
    """Fix 12: put back what this process archived (the new folders are removed); the restored paths."""
    restored = []
    while _archived:
        path, archive = _archived.pop()
        shutil.rmtree(path, ignore_errors=True)
        os.rename(archive, path)
        restored.append(path)
    return restored


def run_pipeline(pipeline: Callable[[str], None], root_path: str) -> int:
    """Run basicsr's train or test pipeline; the exit status for the runner (fix 12).

    A user error (``RT4KSRError``) ends with one ``error:`` line and status 2; a failed test run
    first puts back the results folder it archived. After training, rank 0 names the saved model
    and the command to try it.
    """
    try:
        pipeline(root_path)
    except BaseException as err:
        is_test = bool(_run) and not _run['opt'].get('is_train')
        restored = restore_archived() if is_test else []
        if not isinstance(err, RT4KSRError):
            raise
        print(f'error: {err}' + (f' (previous results kept in {", ".join(restored)})' if restored else ''),
              file=sys.stderr)
        return 2
    opt = _run.get('opt') or {}
    if opt.get('is_train') and opt.get('rank', 0) == 0:
        model = osp.join(opt['path']['models'], 'net_g_latest.pth')
        command = shlex.join(['rt4ksr', 'upscale', 'your_image.png', 'results/', '--weights', model])
        print(f'Saved model: {model}\nTry it: {command}')
    return 0


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
    train.init_tb_loggers = init_tb_loggers
    misc = importlib.import_module('basicsr.utils.misc')
    for module in (misc, train):
        module.mkdir_and_rename = mkdir_and_rename
    _APPLIED = True
