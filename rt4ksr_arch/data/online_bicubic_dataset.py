"""OnlineBicubicPairedDataset: HR images in, (LR, HR) pairs out, the LR made on the fly.

RT4KSR trains on HR images only: each sample crops a random HR patch, augments it and
downscales the *patch* with MATLAB-exact bicubic (``rt4ksr_arch.ops.bicubic``), so the LR is
exactly what ``imresize(gt, 1/scale)`` in MATLAB gives for that patch.

With ``lq_on_device: true`` (train phase) the samples carry the HR crop only and the model makes
the LR batch on its training device with the same ``make_lq`` (``RT4KSRModel.feed_data``): at GPU
scale the CPU workers' resizes were the bottleneck.
"""
from os import path as osp
from typing import Any, Dict, List, Optional, Sequence

import lmdb
import numpy as np
import torch
from torch.utils import data

from basicsr.data.data_util import paths_from_lmdb
from basicsr.utils import FileClient, bgr2ycbcr
from basicsr.utils.registry import DATASET_REGISTRY
from rt4ksr_arch.data.image_io import decode_image, list_images
from rt4ksr_arch.data.meta_info import listed_images, read_meta_info_names
from rt4ksr_arch.errors import DatasetError, ImageReadError, OptionError, first_names
from rt4ksr_arch.ops.bicubic import imresize
from rt4ksr_arch.ops.degradations import jpeg


def gt_paths(root: str, backend: str, meta_info_file: Optional[str] = None) -> List[str]:
    """Image paths (``backend`` disk) or keys (lmdb) of ``root``, restricted to ``meta_info_file`` when given.

    A disk folder is searched with its subfolders (``list_images``). Every image or key the
    meta_info file lists is checked to be there now, not hours into training. Raises
    ``FileNotFoundError`` for a missing folder, LMDB or meta_info file, and ``DatasetError`` for a
    folder without images or listed images / keys that are missing.
    """
    if backend == 'lmdb':
        if not osp.isfile(osp.join(root, 'meta_info.txt')):
            raise FileNotFoundError(f'dataroot_gt {root} is not a BasicSR lmdb (no meta_info.txt inside); '
                                    'build one with `rt4ksr prepare lmdb`')
        if not meta_info_file:
            return paths_from_lmdb(root)
        keys = [osp.splitext(n)[0] for n in read_meta_info_names(meta_info_file)]
        check_lmdb_keys(root, keys, meta_info_file)
        return keys
    if not osp.isdir(root):
        raise FileNotFoundError(f'dataroot_gt {root} is not a folder; see datasets/README.md for the layout')
    if meta_info_file:
        return [osp.join(root, n) for n in listed_images(meta_info_file, root)]
    try:
        return list_images(root, recursive=True)
    except ImageReadError as err:
        raise DatasetError(f'no images found in dataroot_gt {root} (subfolders included): {err}') from None


def check_lmdb_keys(root: str, keys: Sequence[str], meta_info_file: str) -> None:
    """Raise ``DatasetError`` naming the first of ``keys`` (listed in ``meta_info_file``) not in the LMDB ``root``.

    The LMDB is opened read-only and closed again here: an open handle must not be inherited
    by the data loader's worker processes. (py-lmdb opens one LMDB once per process, so this
    fails with a ``DatasetError`` while a dataset of this process holds ``root`` open for
    reading.) Keys no LMDB read could find count as missing: non-ASCII (BasicSR's
    ``FileClient`` encodes keys as ASCII), empty or over LMDB's key size.
    """
    try:
        with lmdb.open(root, readonly=True, lock=False, readahead=False) as env, env.begin() as txn:
            cursor, longest = txn.cursor(), env.max_key_size()
            # set_key finds a key without copying its value (an encoded image) out of the map
            missing = [k for k in keys if not (k.isascii() and 0 < len(k) <= longest and cursor.set_key(k.encode()))]
    except lmdb.Error as err:
        raise DatasetError(f'cannot open dataroot_gt {root} as an LMDB: {type(err).__name__}: {err}') from err
    if missing:
        others = f'; {len(missing) - 1} more listed keys are not in it either ({first_names(missing[1:])})' \
            if len(missing) > 1 else ''
        raise DatasetError(f'key {missing[0]} is not in {root} (listed in {meta_info_file}){others}; build the LMDB '
                           'from the images the list names, or list only what the LMDB holds')


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The random stream of one sample: a pure function of (run seed, epoch, enlarged index).

    Samples are then identical whatever the number of workers or a mid-epoch resume, and
    differ across epochs. (basicsr's ``augment``/``paired_random_crop`` draw from ``random``,
    which its worker_init_fn reseeds identically every epoch.)
    """
    state = np.random.SeedSequence([seed % 2**63, epoch, index]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def random_crop_and_augment(img: np.ndarray, size: int, hflip: bool, rot: bool,
                            gen: Optional[torch.Generator] = None) -> np.ndarray:
    """A random ``size``x``size`` HWC crop, then random h-flip / v-flip / transpose (8 geometries)."""
    h, w = img.shape[:2]
    top = int(torch.randint(h - size + 1, (), generator=gen))
    left = int(torch.randint(w - size + 1, (), generator=gen))
    patch = img[top:top + size, left:left + size]
    flips = torch.rand(3, generator=gen) < 0.5
    if hflip and flips[0]:
        patch = patch[:, ::-1]
    if rot and flips[1]:
        patch = patch[::-1]
    if rot and flips[2]:
        patch = patch.transpose(1, 0, 2)
    return np.ascontiguousarray(patch)


def check_lq_on_device(opt: Dict[str, Any], phase: str) -> None:
    """``lq_on_device`` is a YAML boolean, of a train dataset, without ``jpeg_quality``. Raises ``OptionError``
    (run by the dataset and, before any folder is made, by the model's option checks)."""
    value = opt.get('lq_on_device')
    if value is not None and not isinstance(value, bool):  # 1 == True: a number is not a YAML boolean either
        hint = 'text: write it without quotes' if isinstance(value, str) else 'YAML writes a boolean as true or false'
        raise OptionError('lq_on_device', f'must be true or false, got {value!r} ({hint})')
    if value and phase != 'train':
        raise OptionError('lq_on_device', f'is a training option; the {phase} dataset makes its own LR (remove it '
                          'there)')
    if value and opt.get('jpeg_quality'):
        raise OptionError('lq_on_device', 'cannot be combined with jpeg_quality (the JPEG round trip runs in the '
                          'CPU workers): remove one of them')


@DATASET_REGISTRY.register()
class OnlineBicubicPairedDataset(data.Dataset):
    """Paired SR samples from HR images alone; returns what PairedImageDataset returns.

    Options: ``dataroot_gt`` (folder or ``.lmdb``), ``meta_info_file``, ``io_backend: {type:
    disk|lmdb}``, ``scale``, ``gt_size`` (train crop), ``use_hflip``, ``use_rot``, ``round_lq``
    (LR on the 8-bit grid like MATLAB files; default true), ``jpeg_quality`` (1..100: a JPEG round
    trip of the LR, PIL, as in the NTIRE 2023 real-time SR test data at 90; needs ``round_lq``),
    ``color: y``, ``phase``, ``cache_images`` (keep every decoded image in memory, per worker: for
    small sets such as the bundled photos or T91 + BSDS200, where decoding a whole image for each
    crop dominates), ``lq_on_device`` (train only, not with ``jpeg_quality``: samples hold ``gt``
    and paths but no ``lq``; ``RT4KSRModel`` makes the LR batch on its device with ``make_lq``,
    bit-identical in 8-bit mode). Train: random crop of the mod-cropped HR, augmentation, LR from
    the crop. Val/test: the whole mod-cropped HR and its LR. Randomness: see ``sample_generator``.
    Construction checks that every image or LMDB key ``meta_info_file`` lists is there
    (``gt_paths``); errors in the options raise ``OptionError``, in the data ``DatasetError``.
    """

    accepts_enlarged_index = True  # ResumableEnlargedSampler hands over indices before the modulo

    def __init__(self, opt: Dict[str, Any]) -> None:
        super().__init__()
        self.opt = opt
        self.scale = int(opt['scale'])
        self.phase = opt.get('phase', 'train')
        self.round_lq = bool(opt.get('round_lq', True))
        self.jpeg_quality = opt.get('jpeg_quality')
        if self.jpeg_quality is not None:
            if isinstance(self.jpeg_quality, bool) or not isinstance(self.jpeg_quality, int) or \
                    not 1 <= self.jpeg_quality <= 100:
                raise OptionError('jpeg_quality', f'must be an integer in 1..100, got {self.jpeg_quality!r}')
            if not self.round_lq:
                raise OptionError('jpeg_quality', 'needs round_lq: true (JPEG stores 8-bit values)')
        self.color = opt.get('color')
        if self.color not in (None, 'y'):
            raise OptionError('color', f'must be omitted or "y", got {self.color!r}')
        self.io_backend_opt = dict(opt.get('io_backend') or {'type': 'disk'})
        if self.io_backend_opt['type'] not in ('disk', 'lmdb'):
            raise OptionError('io_backend.type', f'must be disk or lmdb, got {self.io_backend_opt["type"]!r}')
        self.gt_size = opt.get('gt_size')
        if self.phase == 'train':
            if not isinstance(self.gt_size, int) or self.gt_size % self.scale:
                raise OptionError('gt_size', f'must be an integer multiple of scale {self.scale}, got {self.gt_size!r}')
            if opt.get('persistent_workers'):
                raise OptionError('persistent_workers', 'must be off: workers would keep epoch 0 and repeat crops')
        check_lq_on_device(opt, self.phase)
        self.lq_on_device = bool(opt.get('lq_on_device'))
        self.paths = gt_paths(opt['dataroot_gt'], self.io_backend_opt['type'], opt.get('meta_info_file'))
        self.file_client = None  # opened lazily: lmdb handles must not cross worker processes
        self._cache: Optional[Dict[str, np.ndarray]] = {} if opt.get('cache_images') else None
        self.seed = torch.initial_seed()  # basicsr seeds torch with manual_seed + rank before building us
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by the sampler at each epoch (before the workers start), so crops change per epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths)

    def _read(self, path: str) -> np.ndarray:
        if self._cache is not None and path in self._cache:
            return self._cache[path]
        if self.file_client is None:
            backend = dict(self.io_backend_opt)
            if backend['type'] == 'lmdb':
                backend.update(db_paths=[self.opt['dataroot_gt']], client_keys=['gt'])
            self.file_client = FileClient(backend.pop('type'), **backend)
        name = path if self.io_backend_opt['type'] == 'disk' else f'{self.opt["dataroot_gt"]}[{path}]'
        try:
            content = self.file_client.get(path, 'gt')
        except (OSError, TypeError) as err:  # lmdb returns None for a missing key -> TypeError
            raise FileNotFoundError(f'cannot read {name}: {err}') from err
        img = decode_image(content, name)[0]
        if self._cache is not None:
            self._cache[path] = img
        return img

    def __getitem__(self, index: int) -> Dict[str, Any]:
        path = self.paths[index % len(self.paths)]
        img = self._read(path)
        h, w = img.shape[:2]
        img = img[:h - h % self.scale, :w - w % self.scale]
        if self.phase == 'train':
            if min(img.shape[:2]) < self.gt_size:
                raise DatasetError(f'{path} is {w}x{h}, smaller than gt_size {self.gt_size}: remove it, or lower '
                                   'gt_size')
            gen = sample_generator(self.seed, self.epoch, index)
            img = random_crop_and_augment(img, self.gt_size, self.opt.get('use_hflip', False),
                                          self.opt.get('use_rot', False), gen)
        elif min(img.shape[:2]) < self.scale:
            raise DatasetError(f'{path} is {w}x{h}, smaller than the scale {self.scale}')
        if self.color == 'y':
            img = bgr2ycbcr(img, y_only=True)[..., None]
        gt = torch.from_numpy(np.ascontiguousarray(img[..., ::-1] if img.shape[2] == 3 else img)).permute(2, 0, 1)
        sample = {'gt': gt.contiguous(), 'lq_path': path, 'gt_path': path}
        if not self.lq_on_device:
            lq = make_lq(gt, self.scale, self.round_lq)
            if self.jpeg_quality:  # a Y-only LR is compressed as the gray image it is
                lq = jpeg(lq.expand(3, -1, -1), self.jpeg_quality)[:lq.shape[0]] if lq.shape[0] == 1 else \
                    jpeg(lq, self.jpeg_quality)
            sample['lq'] = lq
        return sample


def make_lq(gt: torch.Tensor, scale: int, round_lq: bool) -> torch.Tensor:
    """LR of float HR in [0, 1], ``[..., C, H, W]`` (one crop or a batch, any device): MATLAB bicubic
    1/scale (``ops.bicubic.imresize``), on the 8-bit grid (each pass rounded) if ``round_lq``.

    Returns float ``[..., C, ceil(H/scale), ceil(W/scale)]`` in [0, 1] on ``gt``'s device. A batch
    gives the same values as its crops one by one (the workers' path and ``RT4KSRModel.feed_data``'s).
    """
    return imresize(gt * 255.0, 1.0 / scale, round_uint8=round_lq) / 255.0
