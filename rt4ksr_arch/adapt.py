"""Adapt RT4KSR weights to a user's own content: a short, measured fine-tune on their HR frames.

The frames (any iterable of HWC RGB arrays: a folder's images, or a video's frames from
``video_frames``, decoded by ``rt4ksr_arch.media``) are the HR. Each frame is split into disjoint
regions: its left ``1 - holdout`` part trains, its right ``holdout`` part is held out; every
region's LR is made from that region alone (``ops.degradations``), so nothing of the held-out pixels
reaches training. Training starts from the given weights and runs ``RT4KSRModel``'s own step (loss,
AdamW, warmup, cosine decay, EMA: the same semantics as ``train.py``; BasicSR's pipeline itself
wants datasets and experiment folders from YAML, which a tool on a user's frames does not have).
Every ``eval_every`` iterations the EMA network is measured on the held-out regions (Y-PSNR in dB,
crop border = scale, 8-bit, as BasicSR); the best EMA weights are kept, and training stops early
after ``patience`` measurements without a new best. The output holds the adapted weights only when
they beat the given weights on the held-out part by more than ``min_gain`` dB, else the given
weights (``AdaptResult.adapted`` says which). A work folder holds the state (an interrupted run
continues from its last measurement), ``curves.csv`` and ``curves.png``.
"""
import hashlib
import json
import math
import os
import shutil
from dataclasses import asdict, dataclass
from os import path as osp
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm import tqdm

from basicsr.metrics import calculate_psnr
from basicsr.models import build_model
from basicsr.utils import tensor2img
from rt4ksr_arch.checkpoint import Weights, read_weights, save_checkpoint
from rt4ksr_arch.compat import load_training_state, training_states
from rt4ksr_arch.curves import CSV_NAME, FIGURE_NAME
from rt4ksr_arch.data.online_bicubic_dataset import random_crop_and_augment, sample_generator
from rt4ksr_arch.errors import DatasetError, OptionError
from rt4ksr_arch.fileio import atomic_write_bytes
from rt4ksr_arch.ops.bicubic import imresize
from rt4ksr_arch.ops.degradations import Degradation, degrade, parse_degradation

HELD_OUT = 'held-out'  # the validation set's name in the curves
SETTINGS_NAME, PROGRESS_NAME, BEST_NAME = 'settings.json', 'progress.json', 'best.pth'


@dataclass(frozen=True)
class AdaptOptions:
    """The schedule and the split. ``iters``/``warmup``/``eval_every``/``patience`` in iterations
    (measurements for ``patience``), ``patch`` in HR pixels, ``lr`` peak learning rate (AdamW,
    cosine to a tenth of it), ``holdout`` the held-out fraction of each frame's width,
    ``min_gain`` in dB, ``eval_frames`` the most frames measured (evenly spaced). ``warmup`` None:
    a tenth of ``iters``, at most 30."""

    iters: int = 300
    batch: int = 16
    patch: int = 96
    lr: float = 1e-4
    warmup: Optional[int] = None
    ema_decay: float = 0.99
    eval_every: int = 50
    patience: int = 3
    holdout: float = 0.25
    min_gain: float = 0.0
    eval_frames: int = 16
    degradation: str = 'bicubic'
    seed: int = 0

    def __post_init__(self) -> None:
        if self.warmup is None and isinstance(self.iters, int):
            object.__setattr__(self, 'warmup', min(30, self.iters // 10))  # frozen: set once, here
        for name in ('iters', 'batch', 'patch', 'eval_every', 'patience', 'eval_frames'):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise OptionError(name, f'must be an integer >= 1, got {value!r}')
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise OptionError('warmup', f'must be an integer >= 0, got {self.warmup!r}')
        if self.warmup >= self.iters:
            raise OptionError('warmup', f'must be below the number of iterations ({self.warmup} >= {self.iters}): '
                              'the learning rate would never reach its peak; lower the warmup (0 for none) or '
                              'raise the iterations')
        if not 0 < self.holdout < 1:
            raise OptionError('holdout', f'must be between 0 and 1 (a fraction of each frame\'s width), got '
                              f'{self.holdout!r}')
        if not 0 <= self.ema_decay < 1:
            raise OptionError('ema_decay', f'must be in [0, 1), got {self.ema_decay!r}')
        if not self.min_gain >= 0:
            raise OptionError('min_gain', f'must be >= 0 dB (weights that lose on the held-out part are never kept), '
                              f'got {self.min_gain!r}')
        if not self.lr > 0:
            raise OptionError('lr', f'must be positive, got {self.lr!r}')
        parse_degradation(self.degradation)


@dataclass
class AdaptResult:
    """What ``adapt`` did. PSNRs are Y-PSNR (dB) on the held-out regions; ``after`` is the written weights'."""

    before: float
    after: float
    bicubic: float
    history: List[Tuple[int, float]]  # (iteration, held-out Y-PSNR of the EMA weights); iteration 0 = before
    best_iter: int
    iterations: int
    stopped_early: bool
    adapted: bool
    output: str
    curves: Tuple[str, str]

    @property
    def gain(self) -> float:
        """dB the written weights gain over the given ones on the held-out regions (0 when they are the given)."""
        return self.after - self.before

    @property
    def best_trained(self) -> Tuple[int, float]:
        """(iteration, dB) of the best measurement after training began (what was compared with ``before``)."""
        trained = [p for p in self.history if p[0] > 0]
        return max(trained, key=lambda p: p[1]) if trained else (0, self.before)


@dataclass
class Split:
    """Train regions and held-out pairs of the frames (RGB, float32 [0, 1] for the held-out)."""

    train: List[np.ndarray]  # HWC RGB, the frames' dtype
    held_out_hr: List[torch.Tensor]  # [1, C, H, W] float, H and W multiples of the scale
    held_out_lr: List[torch.Tensor]  # [1, C, H/s, W/s]
    skipped: List[str]  # why each frame too small to split was left out


def as_float(image: np.ndarray) -> np.ndarray:
    """HWC uint8 (/255), uint16 (/65535) or float (as is) -> float32 in [0, 1]."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535
    return image.astype(np.float32)


def evenly_spaced(items: Iterable[Any], count: int) -> List[Tuple[int, Any]]:
    """At most ``count`` (index, item) pairs of ``items``, evenly spaced over the whole sequence.

    One pass over a sequence of unknown length (a video whose container does not say how many
    frames it has), holding at most ``2 * count`` items: every ``stride``-th item is kept, and the
    stride doubles (every other kept item dropped) whenever ``2 * count`` are held. Raises
    ``ValueError`` when ``count`` < 1.
    """
    if count < 1:
        raise ValueError(f'count must be >= 1, got {count}')
    kept: List[Tuple[int, Any]] = []
    stride = 1
    for index, item in enumerate(items):
        if index % stride == 0:
            kept.append((index, item))
            if len(kept) == 2 * count:
                kept, stride = kept[::2], stride * 2
    picks = np.unique(np.linspace(0, len(kept) - 1, min(count, len(kept))).round().astype(int)) if kept else []
    return [kept[i] for i in picks]


def video_frames(path: str, max_frames: int) -> Tuple[List[np.ndarray], List[str]]:
    """Up to ``max_frames`` decoded frames of a video file, evenly spaced over it, and their names.

    Frames are RGB HWC ``uint8`` (``uint16`` for deeper sources), decoded by ``rt4ksr_arch.media``
    (PyAV: any container and codec FFmpeg reads). Raises ``ImageReadError`` for a file that is not
    a readable video.
    """
    from rt4ksr_arch.media import DecodedFrame, VideoFileSource  # PyAV is loaded only for video input
    source = VideoFileSource(path)
    try:
        frames = (item.array for item in source.items() if isinstance(item, DecodedFrame))
        picked = evenly_spaced(frames, max_frames)
    finally:
        source.close()
    name = osp.basename(path)
    return [array for _, array in picked], [f'{name} frame {index}' for index, _ in picked]


def split_frames(frames: Iterable[np.ndarray], scale: int, opts: AdaptOptions, degradation: Degradation,
                 names: Optional[Sequence[str]] = None) -> Split:
    """Cut every frame into its train (left) and held-out (right) region; make the held-out LR.

    Frames are HWC RGB (3 channels), uint8, uint16 or float in [0, 1]. A frame whose regions are
    too small (the train part must hold a ``patch`` crop, the held-out part ``8 * scale`` pixels a
    side) is left out, and ``Split.skipped`` says which and why (a folder of photos may hold a
    thumbnail). Raises ``DatasetError`` when there are no frames or none is large enough (naming
    the first), and for a frame that is not (H, W, 3).
    """
    train, hr, skipped, count = [], [], [], 0
    for index, frame in enumerate(frames):
        count += 1
        name = names[index] if names else f'frame {index}'
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise DatasetError(f'{name} has shape {frame.shape}; adapt needs RGB frames (H, W, 3)')
        height, width = frame.shape[:2]
        cut = int(round(width * (1 - opts.holdout)))
        held_w, held_h = (width - cut) // scale * scale, height // scale * scale
        reasons = []
        if min(cut, height) < opts.patch:
            reasons.append(f'its train part ({cut}x{height}) cannot hold a {opts.patch}x{opts.patch} crop (lower '
                           '--patch' + (' or --holdout)' if cut < opts.patch <= height else ')'))
        if held_w < 8 * scale:
            reasons.append(f'its held-out part ({width - cut}x{height}) is under {8 * scale} pixels wide (raise '
                           '--holdout)')
        if held_h < 8 * scale:
            reasons.append(f'it is under {8 * scale} pixels high')
        if reasons:
            skipped.append(f'{name} is {width}x{height}: {"; ".join(reasons)}')
            continue
        train.append(frame[:, :cut])
        hr.append(torch.from_numpy(as_float(frame[:held_h, cut:cut + held_w])).permute(2, 0, 1)[None])
    if not count:
        raise DatasetError('no frames to adapt to')
    if not train:
        raise DatasetError(f'no frame is large enough: {skipped[0]}' +
                           (f' (and {len(skipped) - 1} more)' if len(skipped) > 1 else ''))
    keep = np.unique(np.linspace(0, len(hr) - 1, min(len(hr), opts.eval_frames)).round().astype(int))
    hr = [hr[i] for i in keep]
    lr = [degrade(h, scale, degradation) for h in hr]
    return Split(train, hr, lr, skipped)


def training_batch(regions: Sequence[np.ndarray], opts: AdaptOptions, iteration: int) -> torch.Tensor:
    """The HR batch of one iteration, [batch, 3, patch, patch] float in [0, 1]: random frames, crops and
    flips drawn from a stream that depends only on (seed, iteration), so a resumed run repeats it."""
    gen = sample_generator(opts.seed, 0, iteration)
    crops = []
    for _ in range(opts.batch):
        region = regions[int(torch.randint(len(regions), (), generator=gen))]
        crops.append(as_float(random_crop_and_augment(region, opts.patch, True, True, gen)))
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()


def y_psnr(sr: torch.Tensor, hr: torch.Tensor, scale: int) -> float:
    """Y-PSNR (dB) of [1, C, H, W] images in [0, 1], 8-bit, crop border = scale (BasicSR's protocol)."""
    return calculate_psnr(tensor2img(sr.clamp(0, 1)), tensor2img(hr), crop_border=scale, test_y_channel=True)


def fingerprint(frames: Sequence[np.ndarray]) -> str:
    """SHA-256 of the frames' pixels and shapes: a resumed run must see the same content."""
    digest = hashlib.sha256()
    for frame in frames:
        digest.update(repr((frame.shape, str(frame.dtype))).encode())
        digest.update(np.ascontiguousarray(frame).tobytes())
    return digest.hexdigest()


def model_options(weights: Weights, source: str, param_key: Optional[str], opts: AdaptOptions, device: torch.device,
                  work_dir: str, resume_from: Optional[str] = None) -> Dict[str, Any]:
    """``RT4KSRModel`` options: the weights' network, AdamW with warmup and cosine decay, EMA, L1."""
    return {
        'name': 'adapt', 'model_type': 'RT4KSRModel', 'scale': weights.config.upscale, 'is_train': True,
        'dist': False, 'rank': 0, 'world_size': 1, 'num_gpu': 1 if device.type == 'cuda' else 0,
        'network_g': {'type': 'RT4KSR', **weights.config.to_dict()},
        'path': {'pretrain_network_g': resume_from or source, 'param_key_g': 'params' if resume_from else param_key,
                 'strict_load_g': True, 'resume_state': resume_from, 'experiments_root': work_dir,
                 'training_states': osp.join(work_dir, 'training_states'), 'models': osp.join(work_dir, 'models')},
        'train': {'ema_decay': opts.ema_decay,
                  'optim_g': {'type': 'AdamW', 'lr': opts.lr, 'weight_decay': 0.0, 'betas': [0.9, 0.999]},
                  'scheduler': {'type': 'CosineAnnealingRestartLR', 'periods': [opts.iters], 'restart_weights': [1],
                                'eta_min': opts.lr / 10},
                  'total_iter': opts.iters, 'warmup_iter': opts.warmup,
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}},
        'val': {'metrics': None},
        'logger': {'print_freq': opts.eval_every},
    }


class Session:
    """One adapt run's model, held-out measurement, progress record and work folder."""

    def __init__(self, weights: Weights, source: str, param_key: Optional[str], split: Split, opts: AdaptOptions,
                 device: torch.device, work_dir: str, resume: Optional[Dict[str, Any]]) -> None:
        self.split, self.opts, self.work_dir = split, opts, work_dir
        self.scale = weights.config.upscale
        self.config = weights.config
        torch.manual_seed(opts.seed)
        if device.type == 'cuda' and device.index is not None:
            torch.cuda.set_device(device)
        resume_from = resume['model'] if resume else None
        self.model = build_model(model_options(weights, source, param_key, opts, device, work_dir, resume_from))
        if resume:
            self.model.resume_training(resume['state'])  # optimizer, schedulers, curves
            self.progress = resume['progress']
        else:
            self.model.model_ema(decay=0)  # the EMA starts as the given weights (not a params_ema beside them)
            self.progress = {}

    def measure(self) -> float:
        """Mean held-out Y-PSNR (dB) of the EMA network."""
        scores = []
        for lr, hr in zip(self.split.held_out_lr, self.split.held_out_hr):
            self.model.feed_data({'lq': lr})
            self.model.test()
            scores.append(y_psnr(self.model.output.cpu(), hr, self.scale))
        return float(np.mean(scores))

    def bicubic(self) -> float:
        """Mean held-out Y-PSNR (dB) of MATLAB-bicubic upscaling of the same LR."""
        return float(np.mean([y_psnr(imresize(lr, float(self.scale)), hr, self.scale)
                              for lr, hr in zip(self.split.held_out_lr, self.split.held_out_hr)]))

    def record(self, iteration: int, psnr: float) -> bool:
        """Add a measurement: curves, best weights (``best.pth``), the resumable state, the progress file.

        Returns whether the run is finished (last iteration, or ``patience`` measurements without a new best).
        """
        progress, opts = self.progress, self.opts
        self.model.curves.add_validation(HELD_OUT, iteration, {'psnr': psnr}, {'psnr': progress['bicubic']})
        self.model.curves.write(self.work_dir, title=f'rt4ksr adapt (held-out Y-PSNR, x{self.scale})')
        if psnr > progress.get('best', -math.inf):
            progress.update(best=psnr, best_iter=iteration)
            save_checkpoint(osp.join(self.work_dir, BEST_NAME), self.config, params=self.model.net_g_ema.state_dict())
        progress['iter'] = iteration
        progress['history'] = progress.get('history', []) + [[iteration, psnr]]
        progress['stopped_early'] = iteration - progress['best_iter'] >= opts.patience * opts.eval_every and \
            iteration < opts.iters
        progress['finished'] = progress['stopped_early'] or iteration == opts.iters
        if iteration:
            self.save_state(iteration)
        write_json(osp.join(self.work_dir, PROGRESS_NAME), progress)
        return progress['finished']

    def save_state(self, iteration: int) -> None:
        """The training state and both networks of ``iteration``; older ones are removed."""
        for folder in ('training_states', 'models'):
            os.makedirs(osp.join(self.work_dir, folder), exist_ok=True)
        save_checkpoint(model_path(self.work_dir, iteration), self.config,
                        params=self.model.net_g.state_dict(), params_ema=self.model.net_g_ema.state_dict())
        self.model.save_training_state(epoch=0, current_iter=iteration)
        for path in training_states(osp.join(self.work_dir, 'training_states'))[1:]:  # newest first
            os.remove(path)
            model = model_path(self.work_dir, int(osp.basename(path)[:-len('.state')]))
            if osp.isfile(model):
                os.remove(model)


def write_json(path: str, data: Dict[str, Any]) -> None:
    atomic_write_bytes(path, json.dumps(data, indent=1).encode())


def settings_changes(stored: Dict[str, Any], settings: Dict[str, Any]) -> List[str]:
    """'name: old -> new' for every setting that differs (options one by one; the images by name only)."""
    flat = [({**a, **a.get('options', {})}) for a in (stored, settings)]
    keys = sorted(k for k in set(flat[0]) | set(flat[1]) if k != 'options' and flat[0].get(k) != flat[1].get(k))
    return [f'{k} differ' if k == 'frames' else f'{k}: {flat[0].get(k)} -> {flat[1].get(k)}' for k in keys]


def resumable_iteration(work_dir: str) -> int:
    """The iteration a run in ``work_dir`` would continue from (0: none, it starts over)."""
    states = training_states(osp.join(work_dir, 'training_states'))
    if not states or not osp.isfile(osp.join(work_dir, PROGRESS_NAME)):
        return 0
    iteration = int(osp.basename(states[0])[:-len('.state')])
    with open(osp.join(work_dir, PROGRESS_NAME)) as f:
        recorded = json.load(f).get('iter')
    return iteration if recorded == iteration and osp.isfile(model_path(work_dir, iteration)) else 0


def model_path(work_dir: str, iteration: int) -> str:
    """Both networks of ``iteration`` in ``work_dir``."""
    return osp.join(work_dir, 'models', f'net_g_{iteration}.pth')


def find_resume(work_dir: str, settings: Dict[str, Any], restart: bool) -> Optional[Dict[str, Any]]:
    """The state to continue from in ``work_dir``, or None for a fresh run (the folder is then prepared).

    Raises ``OptionError`` when the folder holds a run with other settings and ``restart`` is not set.
    """
    settings_path = osp.join(work_dir, SETTINGS_NAME)
    if osp.isfile(settings_path) and not restart:
        with open(settings_path) as f:
            stored = json.load(f)
        if stored != settings:
            raise OptionError('--work', f'{work_dir} holds an adapt run with other settings '
                              f'({"; ".join(settings_changes(stored, settings))}): pass --restart to start over '
                              'there, or choose another --work folder')
        iteration = resumable_iteration(work_dir)
        if iteration:
            with open(osp.join(work_dir, PROGRESS_NAME)) as f:
                progress = json.load(f)
            state = osp.join(work_dir, 'training_states', f'{iteration}.state')
            return {'state': load_training_state(state), 'model': model_path(work_dir, iteration),
                    'progress': progress, 'iter': iteration}
    if osp.isdir(work_dir) and restart:
        shutil.rmtree(work_dir)
    os.makedirs(work_dir, exist_ok=True)
    write_json(settings_path, settings)
    return None


def adapt(frames: Iterable[np.ndarray], weights: str, output: str, work_dir: str,
          opts: AdaptOptions = AdaptOptions(), device: torch.device = torch.device('cpu'),
          param_key: Optional[str] = None, overrides: Optional[Dict[str, Any]] = None,
          names: Optional[Sequence[str]] = None, restart: bool = False, progress: bool = False,
          report: Callable[[str], None] = lambda _: None) -> AdaptResult:
    """Fine-tune ``weights`` (any checkpoint or released name; train form) on ``frames`` and write ``output``.

    ``frames``: HWC RGB arrays (uint8, uint16 or float in [0, 1]), e.g. the images of a folder or
    the frames of a video, in a stable order; ``names`` name them in errors. ``output`` (``.pth`` or
    ``.safetensors``) gets the adapted EMA weights with their network config, or the given weights
    when adaptation did not beat them on the held-out regions. ``work_dir`` keeps the state: the
    same call continues an interrupted run; ``restart`` starts over. ``report`` receives one-line
    messages; ``progress`` shows a bar. Raises ``OptionError``, ``DatasetError``, ``CheckpointError``.
    """
    degradation = parse_degradation(opts.degradation)
    loaded = read_weights(weights, param_key, overrides)
    if loaded.form != 'train':
        raise OptionError('--weights', f'{weights} holds fused (deploy-form) weights, which cannot be trained: '
                          'adapt the train-form checkpoint they were fused from')
    frames = list(frames)
    scale = loaded.config.upscale
    if opts.patch % scale:
        raise OptionError('patch', f'must be a multiple of the network\'s scale {scale}, got {opts.patch}')
    split = split_frames(frames, scale, opts, degradation, names)
    for reason in split.skipped:
        report(f'warning: skipped {reason}')
    settings = {'weights': str(weights), 'param_key': param_key, 'frames': fingerprint(frames), 'scale': scale,
                'options': asdict(opts)}
    resume = find_resume(work_dir, settings, restart)
    session = Session(loaded, str(weights), param_key, split, opts, device, work_dir, resume)
    pixels = sum(h.shape[-1] * h.shape[-2] for h in split.held_out_hr)
    used, held = len(split.train), len(split.held_out_hr)
    small = f' ({len(split.skipped)} too small, skipped)' if split.skipped else ''
    report(f'adapt: {used} frame{"s" * (used != 1)}{small}, '
           f'trained on the left {1 - opts.holdout:.0%} of each, {held} held-out region{"s" * (held != 1)} '
           f'({pixels / 1e6:.2f} MP, right {opts.holdout:.0%}), x{scale}, degradation {degradation.name}, '
           f'{opts.iters} iteration{"s" * (opts.iters != 1)} of {opts.batch} x {opts.patch}px '
           f'on {device}')
    start = 0
    if resume:
        start = resume['iter']
        report(f'continuing the run in {work_dir} from iteration {start} (held-out best so far '
               f'{session.progress["best"]:.3f} dB)')
    else:
        session.progress['bicubic'] = session.bicubic()
        session.progress['before'] = session.measure()
        session.record(0, session.progress['before'])
        report(f'held-out Y-PSNR before: {session.progress["before"]:.3f} dB (bicubic '
               f'{session.progress["bicubic"]:.3f} dB)')
        if session.progress['before'] < session.progress['bicubic']:
            assumed = ', '.join(f'{k}={getattr(loaded.config, k)}' for k in loaded.assumed)
            report(f'warning: the given weights score {session.progress["bicubic"] - session.progress["before"]:.2f} '
                   'dB below bicubic on your content: check they are the network you meant (scale, file)' +
                   (f'; {weights} stores no network config and was read as {assumed}' if assumed else ''))
    model, info = session.model, session.progress
    iteration = start
    bar = tqdm(total=opts.iters, initial=start, unit='it', disable=not progress or info.get('finished'), leave=False)
    try:
        with bar:
            for iteration in range(start + 1, opts.iters + 1 if not info.get('finished') else start + 1):
                model.update_learning_rate(iteration, warmup_iter=opts.warmup)
                gt = training_batch(split.train, opts, iteration).to(model.device)
                model.feed_data({'lq': degrade(gt, scale, degradation), 'gt': gt})
                model.optimize_parameters(iteration)
                bar.update()
                if iteration % opts.eval_every == 0 or iteration == opts.iters:
                    psnr = session.measure()
                    finished = session.record(iteration, psnr)
                    bar.set_postfix_str(f'held-out {psnr:.3f} dB (best {info["best"]:.3f})')
                    if finished:
                        break
    except KeyboardInterrupt:
        kept = resumable_iteration(work_dir)
        report(f'\nstopped at iteration {iteration}: ' + (
            f'{work_dir} keeps the state of iteration {kept} (the last held-out measurement); the same adapt '
            'continues from there' if kept else
            f'no state saved yet (the first is at iteration {min(opts.eval_every, opts.iters)}); the same adapt '
            'starts again'))
        raise
    adapted = info['best'] > info['before'] + opts.min_gain and info['best_iter'] > 0
    if adapted:
        best = torch.load(osp.join(work_dir, BEST_NAME), map_location='cpu', weights_only=True)['params']
        save_checkpoint(output, loaded.config, params=best)
    else:
        save_checkpoint(output, loaded.config, params=loaded.state_dict)
    after = info['best'] if adapted else info['before']
    return AdaptResult(before=info['before'], after=after, bicubic=info['bicubic'],
                       history=[(int(i), float(v)) for i, v in info['history']], best_iter=info['best_iter'],
                       iterations=info['iter'], stopped_early=bool(info.get('stopped_early')), adapted=adapted,
                       output=output,
                       curves=(osp.join(work_dir, CSV_NAME), osp.join(work_dir, FIGURE_NAME)))
