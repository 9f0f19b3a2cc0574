"""RT4KSRModel: BasicSR's SRModel with RT4KSR-aware loading and a modern training loop.

On top of SRModel: any-format checkpoint loading; optimizers and schedulers by name;
warmup that reaches the peak LR; no weight decay on norms/biases; EMA over parameters and
buffers; bf16/fp16 autocast (GradScaler for fp16 only); channels_last; torch.compile with
clean checkpoint keys; gradient clipping; atomic checkpoints; option validation; a bicubic
baseline logged beside the validation metrics.
"""
from collections import OrderedDict
from contextlib import nullcontext
from os import path as osp
from typing import Any, Dict, Iterable, List, Optional, Tuple

import torch
from torch.nn.parallel import DataParallel, DistributedDataParallel

from basicsr.metrics import calculate_metric
from basicsr.models import lr_scheduler as basicsr_schedulers
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger, tensor2img
from basicsr.utils.dist_util import master_only
from basicsr.utils.registry import MODEL_REGISTRY
from rt4ksr_arch.archs.linear_start import linear_structure_, solve_upsampler_, upsampler_equations
from rt4ksr_arch.archs.rt4ksr_arch import RT4KSR, RT4KSRDeploy, reparameterize
from rt4ksr_arch.checkpoint import UNDETECTABLE, load_rt4ksr_weights, read_weights, save_checkpoint
from rt4ksr_arch.config import RT4KSRConfig
from rt4ksr_arch.data.online_bicubic_dataset import check_lq_on_device
from rt4ksr_arch.curves import CSV_NAME, LearningCurves
from rt4ksr_arch.data.online_bicubic_dataset import make_lq
from rt4ksr_arch.errors import DatasetError, OptionError
from rt4ksr_arch.fileio import atomic_torch_save
from rt4ksr_arch.inference import InferenceOptions, Upscaler
from rt4ksr_arch.ops.bicubic import imresize

_AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}
# a scheduler's state that is its position in training, not a setting of the options
_SCHEDULER_POSITION = {'last_epoch', '_step_count', '_last_lr', 'base_lrs', '_get_lr_called_within_step', 'verbose',
                       '_is_initial'}
LINEAR_START_BATCHES = 10  # batches the linear start fits on (train.linear_start: true)
LINEAR_START_WARMUP = 500  # iterations of LR warmup after the fit, at least (Adam's first steps at the peak LR
# knocked the started network far below its start)
# basicsr's own schedulers; any other name is looked up in torch.optim.lr_scheduler
_BASICSR_SCHEDULERS = {'MultiStepLR': 'MultiStepRestartLR', 'MultiStepRestartLR': 'MultiStepRestartLR',
                       'CosineAnnealingRestartLR': 'CosineAnnealingRestartLR'}


def find_numeric_strings(tree: Any, prefix: str = '') -> List[str]:
    """Dotted keys of string values that read as numbers (PyYAML loads ``2e-4`` as the text '2e-4')."""
    found = []
    if isinstance(tree, dict):
        for key, value in tree.items():
            found += find_numeric_strings(value, f'{prefix}.{key}' if prefix else str(key))
    elif isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            found += find_numeric_strings(value, f'{prefix}[{i}]')
    elif isinstance(tree, str):
        try:
            float(tree)
        except ValueError:
            return []
        number = float(tree)
        written = str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)
        found.append(f'{prefix}: {tree!r} (write {written})')
    return found


def validate_options(opt: Dict[str, Any]) -> None:
    """Fail early, naming the keys and the fix, on options that would break training later or silently.

    Run on the parsed options before any folder is made (``rt4ksr_arch.compat``) and again by the
    model. Raises ``OptionError``.
    """
    sections = {k: opt.get(k) for k in ('train', 'network_g', 'val')}
    sections['datasets'] = {name: {k: v for k, v in (d or {}).items() if not k.startswith(('dataroot', 'name'))}
                            for name, d in (opt.get('datasets') or {}).items()}
    bad = find_numeric_strings(sections)
    if bad:
        raise OptionError('options', 'text where a number belongs (YAML reads an exponent without a dot, like 1e-4, '
                          'as text): ' + '; '.join(bad))
    amp = (opt.get('train') or {}).get('amp')
    if amp not in (None, False, *_AMP_DTYPES):
        raise OptionError('train.amp', f'must be bf16, fp16 or omitted, got {amp!r}')
    start = (opt.get('train') or {}).get('linear_start')
    if start not in (None, False, True) and not (type(start) is int and start >= 1):
        raise OptionError('train.linear_start', f'must be true (fit on {LINEAR_START_BATCHES} batches), false, or the '
                          f'number of batches to fit on, got {start!r}')
    network = opt.get('network_g') or {}
    if network.get('type') in ('RT4KSR', 'RT4KSRDeploy'):
        try:
            config = RT4KSRConfig.from_dict(network, where='network_g')
        except OptionError as err:
            raise err.renamed({f: f'network_g.{f}' for f in RT4KSRConfig.__dataclass_fields__}) from None
        check_consistent(opt, config)


def check_consistent(opt: Dict[str, Any], config: RT4KSRConfig) -> None:
    """Options that are each valid but contradict one another (each would fail hours later, deep in
    torch or basicsr, or silently do the wrong thing)."""
    if opt.get('scale') is not None and opt['scale'] != config.upscale:
        raise OptionError('scale', f'is {opt["scale"]} but network_g.upscale is {config.upscale}: the network '
                          'would make outputs of another size than the data; set both to the same scale')
    gpus = opt.get('num_gpu')
    if isinstance(gpus, int) and gpus > torch.cuda.device_count():
        raise OptionError('num_gpu', f'is {gpus} but this machine has {torch.cuda.device_count()} CUDA device(s): '
                          'use num_gpu: auto (every device there is, or the CPU)')
    decay = (opt.get('train') or {}).get('ema_decay')
    if decay is not None and not (isinstance(decay, (int, float)) and 0 <= decay < 1):
        raise OptionError('train.ema_decay', f'is {decay!r}: the EMA keeps this fraction of itself per iteration, '
                          'so it must be in [0, 1) (0.999 for long runs, 0.99 for short ones; 0 turns it off)')
    for name, data in (opt.get('datasets') or {}).items():
        data = data or {}
        if data.get('type') == 'OnlineBicubicPairedDataset':
            try:
                check_lq_on_device(data, data.get('phase') or name.split('_')[0])
            except OptionError as err:
                raise err.renamed({'lq_on_device': f'datasets.{name}.lq_on_device'}) from None
        if data.get('color') == 'y' and config.num_in_ch != 1:
            raise OptionError(f'datasets.{name}.color', f'is y (1-channel images) but network_g.num_in_ch is '
                              f'{config.num_in_ch}: set network_g.num_in_ch: 1 and num_out_ch: 1, or remove color')
        if data.get('color') != 'y' and config.num_in_ch == 1:
            raise OptionError('network_g.num_in_ch', f'is 1 but datasets.{name} gives 3-channel images: add color: y '
                              'to every dataset (the Y channel, as BasicSR), or set num_in_ch: 3 and num_out_ch: 3')
        if data.get('prefetch_mode') == 'cuda':
            if not opt.get('num_gpu'):
                raise OptionError(f'datasets.{name}.prefetch_mode', 'is cuda but this run has no GPU (num_gpu: '
                                  f'{opt.get("num_gpu")}): use prefetch_mode: cpu (or ~) on the CPU')
            if data.get('pin_memory') is not True:
                raise OptionError(f'datasets.{name}.pin_memory', 'must be true with prefetch_mode: cuda')
        if data.get('lq_on_device') and data.get('type') != 'OnlineBicubicPairedDataset':
            raise OptionError(f'datasets.{name}.lq_on_device', f'needs type OnlineBicubicPairedDataset (HR crops in, '
                              f'LR made on the device), got {data.get("type")!r}, which loads its own LR')
    train = opt.get('train') or {}
    scheduler = train.get('scheduler') or {}
    total = train.get('total_iter')
    if scheduler.get('type') == 'CosineAnnealingRestartLR':
        periods = list(scheduler.get('periods') or [])
        weights = list(scheduler.get('restart_weights') or [1])  # basicsr's default
        if len(weights) != len(periods):
            raise OptionError('train.scheduler.restart_weights', f'has {len(weights)} entries but periods has '
                              f'{len(periods)}: give one weight per period')
        if total is not None and sum(periods) < total:
            raise OptionError('train.scheduler.periods', f'sum to {sum(periods)}, fewer than train.total_iter '
                              f'{total}: the scheduler would fail after its last period; make them sum to at least '
                              f'{total} (e.g. periods: [{total}])')
    if scheduler.get('type') in ('MultiStepRestartLR', 'MultiStepLR') and 'restarts' in scheduler:
        restarts, weights = list(scheduler['restarts'] or []), list(scheduler.get('restart_weights') or [1])
        if len(weights) != len(restarts):
            raise OptionError('train.scheduler.restart_weights', f'has {len(weights)} entries but restarts has '
                              f'{len(restarts)}: give one weight per restart')


def split_decay_groups(named_params: Iterable, weight_decay: float) -> List[Dict[str, Any]]:
    """Param groups: conv/linear weights decay; norm weights, biases and other 1-D params do not."""
    decay, no_decay = [], []
    for _, param in named_params:
        if param.requires_grad:
            (decay if param.ndim > 1 else no_decay).append(param)
    groups = [{'params': decay, 'weight_decay': weight_decay}]
    if no_decay:
        groups.append({'params': no_decay, 'weight_decay': 0.0})
    return groups


def device_lq_options(opt: Dict[str, Any]) -> Optional[Tuple[int, bool]]:
    """``(scale, round_lq)`` of the train dataset when it asks for ``lq_on_device``, else None."""
    for name, data in (opt.get('datasets') or {}).items():
        if name.split('_')[0] == 'train' and (data or {}).get('lq_on_device'):
            return int(data.get('scale', opt['scale'])), bool(data.get('round_lq', True))
    return None


def _all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    torch.distributed.all_reduce(tensor)
    return tensor


@MODEL_REGISTRY.register()
class RT4KSRModel(SRModel):
    """SRModel for RT4KSR; every option is documented in options/train/rt4ksr_x2.yml."""

    def __init__(self, opt: Dict[str, Any]) -> None:
        validate_options(opt)
        train_opt = opt.get('train') or {}
        self.amp_dtype = _AMP_DTYPES.get(train_opt.get('amp')) if opt['is_train'] else None
        self.inference_opts = InferenceOptions.from_val_opt(opt.get('val'))
        # training layout only: test() runs an Upscaler that lays its own network out per val.channels_last
        # (default true), which must not switch training to NHWC against train.channels_last: false
        self.channels_last = bool(train_opt.get('channels_last', False)) and opt['is_train']
        self.device_lq = device_lq_options(opt) if opt['is_train'] else None  # (scale, round_lq)
        self.scaler = None
        self._scheduled_lrs: Optional[List[List[float]]] = None
        self._bicubic_cache: Dict[str, Dict[str, float]] = {}
        self._validated: set = set()  # (dataset name, iteration) pairs already validated
        super().__init__(opt)
        bare = self.get_bare_model(self.net_g)
        if not opt['is_train'] and type(bare) is RT4KSR:
            # test.py runs the deploy path: the same outputs (tests/test_official_eval.py), one conv per block
            self.net_g = self.model_to_device(reparameterize(bare).eval())
            get_root_logger().info('Fused RT4KSR into RT4KSRDeploy for testing.')

    # ----------------------------------------------------------------- networks and weights
    def model_to_device(self, net):
        net = net.to(self.device)
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        if self.opt['dist']:
            on_gpu = self.device.type == 'cuda'
            return DistributedDataParallel(
                net, device_ids=[torch.cuda.current_device()] if on_gpu else None,
                find_unused_parameters=self.opt.get('find_unused_parameters', False))
        if self.opt['num_gpu'] > 1:
            return DataParallel(net)
        return net

    def load_network(self, net, load_path, strict=True, param_key='params'):
        """The one loader (any format). ``param_key_g`` unset in the YAML: ``params_ema`` when present,
        except when resuming (``path.resume_state``): training then continues from ``params``."""
        bare = self.get_bare_model(net)
        if not isinstance(bare, (RT4KSR, RT4KSRDeploy)):
            return super().load_network(net, load_path, strict, param_key)
        if net is self.net_g and self.opt['path'].get('param_key_g') is None and \
                not self.opt['path'].get('resume_state'):
            param_key = None  # what training validated: the EMA weights when the file has them
        # what network_g states is what the weights are taken for when the file does not say
        stated = {k: getattr(bare.config, k) for k in UNDETECTABLE if k in (self.opt.get('network_g') or {})}
        weights = load_rt4ksr_weights(bare, read_weights(load_path, param_key, stated), strict=strict)
        logger = get_root_logger()
        logger.info(f'Loaded {type(bare).__name__} from {weights.describe()}.')
        if weights.assumed:
            logger.warning(f'{weights.source} does not store its network config and network_g does not state '
                           f'{", ".join(weights.assumed)}: assumed the released models\' values. If it was trained '
                           f'otherwise, set {" / ".join("network_g." + k for k in weights.assumed)}.')

    @master_only
    def save_network(self, net, net_label, current_iter, param_key='params'):
        """BasicSR's checkpoint (``params``, ``params_ema``) plus the network config, written atomically."""
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        tag = 'latest' if current_iter == -1 else current_iter
        bare = [self.get_bare_model(n) for n in nets]
        path = osp.join(self.opt['path']['models'], f'{net_label}_{tag}.pth')
        save_checkpoint(path, bare[0].config, **{key: n.state_dict() for n, key in zip(bare, keys)})

    # ----------------------------------------------------------------- optimization setup
    def init_training_settings(self):
        train_opt = self.opt['train']
        super().init_training_settings()
        if self.amp_dtype is torch.float16:
            self.scaler = torch.amp.GradScaler(self.device.type)
        self.grad_clip = train_opt.get('grad_clip')
        self.curves = LearningCurves(loss_every=int((self.opt.get('logger') or {}).get('print_freq', 100)))
        self.net_g_forward = torch.compile(self.net_g) if train_opt.get('compile') else self.net_g
        # a pretrained network keeps its weights; a resumed run continues its fit (resume_training) or its steps
        option, resuming = train_opt.get('linear_start'), bool(self.opt['path'].get('resume_state'))
        started = bool(option) and (resuming or not self.opt['path'].get('pretrain_network_g'))
        self.linear_start_batches = (LINEAR_START_BATCHES if option is True else int(option or 0)) if started else 0
        self._linear_fit: Optional[Dict[str, Any]] = {'batches': 0, 'gram': None, 'cross': None} \
            if self.linear_start_batches and not resuming else None
        logger = get_root_logger()
        logger.info(f'Training with amp={train_opt.get("amp") or "off"}, channels_last={self.channels_last}, '
                    f'compile={bool(train_opt.get("compile"))}, grad_clip={self.grad_clip}, LR made '
                    f'{f"on {self.device} (lq_on_device)" if self.device_lq else "by the data loader"}')

    def get_optimizer(self, optim_type, params, lr, **kwargs):
        optimizer_cls = getattr(torch.optim, optim_type, None)
        if not (isinstance(optimizer_cls, type) and issubclass(optimizer_cls, torch.optim.Optimizer)):
            names = sorted(n for n in dir(torch.optim) if n[0].isupper() and n != 'Optimizer')
            raise OptionError('train.optim_g.type', f'{optim_type!r} is not a torch.optim optimizer; one of {names}')
        return optimizer_cls(params, lr, **kwargs)

    def setup_optimizers(self):
        optim_opt = dict(self.opt['train']['optim_g'])
        optim_type = optim_opt.pop('type')
        weight_decay = optim_opt.pop('weight_decay', 0.0)
        net = self.get_bare_model(self.net_g)
        frozen = [name for name, p in net.named_parameters() if not p.requires_grad]
        if frozen:
            get_root_logger().info(f'Not optimized (frozen): {len(frozen)} tensors, e.g. {frozen[:3]}')
        groups = split_decay_groups(net.named_parameters(), weight_decay)
        self.optimizer_g = self.get_optimizer(optim_type, groups, **optim_opt)
        self.optimizers.append(self.optimizer_g)

    def setup_schedulers(self):
        sched_opt = dict(self.opt['train']['scheduler'])
        sched_type = sched_opt.pop('type')
        if sched_type in _BASICSR_SCHEDULERS:
            scheduler_cls = getattr(basicsr_schedulers, _BASICSR_SCHEDULERS[sched_type])
        else:
            scheduler_cls = getattr(torch.optim.lr_scheduler, sched_type, None)
            if not isinstance(scheduler_cls, type):
                raise OptionError('train.scheduler.type', f'{sched_type!r} is neither a basicsr scheduler '
                                  f'({sorted(_BASICSR_SCHEDULERS)}) nor in torch.optim.lr_scheduler')
        for optimizer in self.optimizers:
            self.schedulers.append(scheduler_cls(optimizer, **sched_opt))

    @property
    def linear_start_warmed(self) -> int:
        """The iteration until which the LR warms up at least after a linear start (its fit, then the warmup)."""
        return self.linear_start_batches + LINEAR_START_WARMUP

    def update_learning_rate(self, current_iter, warmup_iter=-1):
        """Step schedulers once per iteration (BasicSR semantics) with a linear warmup on top.

        The schedulers step on the un-warmed LRs, so chainable schedulers (StepLR,
        MultiStepRestartLR) reach the peak LR when warmup ends; BasicSR's warmup overwrote
        the LR the scheduler chains from, and stayed below the peak.
        """
        if self.linear_start_batches:
            warmup_iter = max(warmup_iter, self.linear_start_warmed)
        if current_iter > 1:
            if self._scheduled_lrs is not None:
                self._set_lr(self._scheduled_lrs)
            for scheduler in self.schedulers:
                scheduler.step()
        self._scheduled_lrs = [[g['lr'] for g in o.param_groups] for o in self.optimizers]
        if current_iter < warmup_iter:
            self._set_lr([[lr * current_iter / warmup_iter for lr in lrs] for lrs in self._scheduled_lrs])

    # ----------------------------------------------------------------- training step
    def feed_data(self, data):
        """``lq`` (and ``gt``) of a batch on the device; a batch of HR crops only (``lq_on_device``) gets
        its LR made here with the data set's ``make_lq``, the same values the loader's workers give."""
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        if 'gt' in data:
            self.gt = data['gt'].to(self.device, non_blocking=True)
        if 'lq' in data:
            self.lq = data['lq'].to(self.device, memory_format=memory_format, non_blocking=True)
        elif self.device_lq is not None and 'gt' in data:
            scale, round_lq = self.device_lq
            self.lq = make_lq(self.gt, scale, round_lq).contiguous(memory_format=memory_format)
        else:
            raise DatasetError('a batch without lq reached the model: set lq_on_device: true in the train dataset '
                               '(the model then makes the LR), or use a dataset that returns lq')

    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _losses(self, output: torch.Tensor, gt: torch.Tensor):
        losses = OrderedDict()
        if self.cri_pix:
            losses['l_pix'] = self.cri_pix(output, gt)
        if self.cri_perceptual:
            l_percep, l_style = self.cri_perceptual(output, gt)
            if l_percep is not None:
                losses['l_percep'] = l_percep
            if l_style is not None:
                losses['l_style'] = l_style
        return sum(losses.values()), losses

    @torch.no_grad()
    def _linear_fit_step(self, current_iter: int) -> None:
        """One of the linear start's iterations (rt4ksr_arch/archs/linear_start.py): the first sets the
        looks-linear structure, each adds its batch to the upsampler's normal equations (all-reduced under
        DDP) and re-solves it; net_ema follows. No optimizer step."""
        net, fit = self.get_bare_model(self.net_g), self._linear_fit
        reduce = _all_reduce_sum if self.opt['dist'] else None
        lq, gt = self.lq.float(), self.gt.float()
        if fit['batches'] == 0:
            linear_structure_(net, lq, reduce=reduce)
        gram, cross = upsampler_equations(net, lq, gt)
        if reduce is not None:
            gram, cross = reduce(gram), reduce(cross)
        fit['gram'] = gram if fit['gram'] is None else fit['gram'] + gram
        fit['cross'] = cross if fit['cross'] is None else fit['cross'] + cross
        fit['batches'] += 1
        solve_upsampler_(net, fit['gram'], fit['cross'])
        if self.ema_decay > 0:
            self.model_ema(decay=0)
        self.output = self.net_g(self.lq)
        _, loss_dict = self._losses(self.output.float(), self.gt)
        self.log_dict = self.reduce_loss_dict(loss_dict)
        self.curves.add_loss(current_iter, self.log_dict)
        if fit['batches'] == self.linear_start_batches:
            psnr = -10 * torch.log10(((self.output.float() - self.gt)**2).mean()).item()
            get_root_logger().info(
                f'Linear start: net_g is the least-squares linear upscaler of the first {fit["batches"]} batches '
                f'(last batch PSNR {psnr:.2f} dB, RGB, no crop); optimizer steps from iteration {current_iter + 1}, '
                f'the LR warmed up until iteration {self.linear_start_warmed} at least')
            if int(self.opt['train']['total_iter']) < self.linear_start_warmed:
                get_root_logger().warning(
                    f'train.total_iter {self.opt["train"]["total_iter"]} ends before the linear start\'s warmup '
                    f'({self.linear_start_warmed}): the LR never reaches its peak; train longer for the full schedule')
            self._linear_fit = None

    def optimize_parameters(self, current_iter):
        if self._linear_fit is not None:
            self._linear_fit_step(current_iter)
            return
        self.optimizer_g.zero_grad(set_to_none=True)
        with self._autocast():
            self.output = self.net_g_forward(self.lq)
        l_total, loss_dict = self._losses(self.output.float(), self.gt)
        if not torch.isfinite(l_total):
            raise FloatingPointError(f'loss is {l_total.item()} at iter {current_iter}: lower train.optim_g.lr, '
                                     'set train.grad_clip, or use train.amp: bf16 instead of fp16')
        if self.scaler is not None:
            self.scaler.scale(l_total).backward()
            self.scaler.unscale_(self.optimizer_g)
        else:
            l_total.backward()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.net_g.parameters(), float(self.grad_clip))
        if self.scaler is not None:
            self.scaler.step(self.optimizer_g)
            self.scaler.update()
        else:
            self.optimizer_g.step()
        self.log_dict = self.reduce_loss_dict(loss_dict)
        self.curves.add_loss(current_iter, self.log_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    @torch.no_grad()
    def model_ema(self, decay=0.999):
        """EMA of every parameter and floating buffer; integer buffers are copied."""
        net = self.get_bare_model(self.net_g)
        source = dict(net.named_parameters())
        source.update(net.named_buffers())
        for name, target in list(self.net_g_ema.named_parameters()) + list(self.net_g_ema.named_buffers()):
            value = source[name].detach()
            if target.is_floating_point():
                target.mul_(decay).add_(value, alpha=1 - decay)
            else:
                target.copy_(value)

    # ----------------------------------------------------------------- training state
    @master_only
    def save_training_state(self, epoch, current_iter):
        if current_iter == -1:
            return
        state = {
            'epoch': epoch, 'iter': current_iter,
            'optimizers': [o.state_dict() for o in self.optimizers],
            'schedulers': [s.state_dict() for s in self.schedulers],
            'scaler': self.scaler.state_dict() if self.scaler is not None else None,
            'scheduled_lrs': self._scheduled_lrs,
            'curves': self.curves.state_dict(),
            'linear_fit': self._linear_fit,  # the linear start's sums while it is still fitting
        }
        atomic_torch_save(state, osp.join(self.opt['path']['training_states'], f'{current_iter}.state'))

    def resume_training(self, resume_state):
        super().resume_training(resume_state)
        self._schedule_from_options()
        if self.scaler is not None and resume_state.get('scaler'):
            self.scaler.load_state_dict(resume_state['scaler'])
        self._scheduled_lrs = resume_state.get('scheduled_lrs')
        if resume_state.get('curves'):
            self.curves.load_state_dict(resume_state['curves'])
        fit = resume_state.get('linear_fit')
        if fit and self.linear_start_batches:
            self._linear_fit = {'batches': int(fit['batches']), 'gram': fit['gram'].to(self.device),
                                'cross': fit['cross'].to(self.device)}
        written = osp.join(self.opt['path']['experiments_root'], CSV_NAME)
        if osp.isfile(written):  # the validation of the state's own iteration ran after the state was saved
            with open(written) as f:
                self.curves.merge_validations(LearningCurves.from_csv(f.read()), up_to=int(resume_state['iter']))

    def _schedule_from_options(self) -> None:
        """Keep the resumed schedulers' position but take their settings (periods, milestones, ...)
        from the options: basicsr restores the state's settings, so a run resumed with a longer
        ``total_iter`` ran past the old last period into a ``TypeError`` inside basicsr's scheduler."""
        resumed = [scheduler.state_dict() for scheduler in self.schedulers]
        lrs = [[group['lr'] for group in optimizer.param_groups] for optimizer in self.optimizers]
        self.schedulers = []
        self.setup_schedulers()  # a fresh scheduler resets the LRs: restored below
        changed = set()
        for scheduler, old in zip(self.schedulers, resumed):
            settings = {k: v for k, v in scheduler.state_dict().items() if k not in _SCHEDULER_POSITION}
            changed.update(k for k, v in settings.items() if old.get(k) != v)
            scheduler.load_state_dict({**old, **settings})
        self._set_lr(lrs)
        if changed:
            get_root_logger().warning(f'Resumed with the options\' scheduler settings ({", ".join(sorted(changed))} '
                                      'differ from the training state\'s): the learning rate follows the new schedule '
                                      'from the resumed iteration on.')

    # ----------------------------------------------------------------- validation
    def test(self):
        """The EMA network (else net_g) on self.lq with the val options: tiles, self-ensemble, precision."""
        net = self.get_bare_model(self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g)
        upscaler = Upscaler(net, self.inference_opts, self.device)
        self.output = upscaler(self.lq, progress=bool(self.opt['val'].get('pbar')))

    def validation(self, dataloader, current_iter, tb_logger, save_img=False):
        """BasicSR's validation, once per iteration and labelled with an iteration that ran.

        basicsr's training loop ends at ``total_iter + 1`` and validates again there: the run's last
        iteration is validated twice and its best value labelled with an iteration that never ran.
        """
        if self.is_train and isinstance(current_iter, int):
            current_iter = min(current_iter, int(self.opt['train']['total_iter']))
            key = (dataloader.dataset.opt['name'], current_iter)
            if key in self._validated:
                return
            self._validated.add(key)
        super().validation(dataloader, current_iter, tb_logger, save_img)

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        """BasicSR's validation, the bicubic baseline (``val.bicubic_baseline``) and, in training, the
        learning curves (``curves.csv``, ``curves.png`` in the experiment folder; rank 0 only runs this)."""
        super().nondist_validation(dataloader, current_iter, tb_logger, save_img)
        name = dataloader.dataset.opt['name']
        if self.opt['val'].get('bicubic_baseline') and self.opt['val'].get('metrics'):
            self._log_bicubic_baseline(dataloader)
        if self.is_train and isinstance(current_iter, int) and self.opt['val'].get('metrics'):
            self.curves.add_validation(name, current_iter, self.metric_results, self._bicubic_cache.get(name))
            self.curves.write(self.opt['path']['experiments_root'], title=self.opt['name'])

    def _log_bicubic_baseline(self, dataloader) -> None:
        """Log the same metrics for MATLAB-bicubic upscaling of the same LR inputs (computed once)."""
        name = dataloader.dataset.opt['name']
        if name not in self._bicubic_cache:
            totals = {metric: 0.0 for metric in self.opt['val']['metrics']}
            for count, data in enumerate(dataloader, 1):
                upscaled = imresize(data['lq'][0], float(self.opt['scale'])).clamp_(0, 1)
                pair = {'img': tensor2img([upscaled]), 'img2': tensor2img([data['gt'][0]])}
                for metric, metric_opt in self.opt['val']['metrics'].items():
                    totals[metric] += calculate_metric(pair, metric_opt)
            self._bicubic_cache[name] = {m: v / count for m, v in totals.items()}
        line = '\t'.join(f'# {m}: {v:.4f}' for m, v in self._bicubic_cache[name].items())
        get_root_logger().info(f'Validation {name} bicubic baseline (same LR, MATLAB bicubic x{self.opt["scale"]})'
                               f'\n\t {line}')
