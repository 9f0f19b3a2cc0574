"""OnlineBicubicPairedDataset: MATLAB-exact pairs, augmentation, determinism, backends, bad inputs."""
import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from basicsr.data import build_dataset
from basicsr.utils.lmdb_util import make_lmdb_from_imgs
from basicsr.utils.matlab_functions import imresize as basicsr_imresize
from rt4ksr_arch.data.online_bicubic_dataset import make_lq
from rt4ksr_arch.data.sampler import ResumableEnlargedSampler
from rt4ksr_arch.errors import DatasetError, OptionError, RT4KSRError
from tests.helpers import shared


def make_opt(root, **kw):
    opt = dict(name='t', type='OnlineBicubicPairedDataset', dataroot_gt=str(root), io_backend={'type': 'disk'},
               scale=2, gt_size=16, use_hflip=True, use_rot=True, phase='train')
    opt.update(kw)
    return opt


@pytest.fixture
def image_dir(tmp_path):
    gen = np.random.default_rng(0)
    folder = tmp_path / 'hr'
    folder.mkdir()
    for i, (h, w) in enumerate([(40, 36), (33, 51), (24, 24)]):
        cv2.imwrite(str(folder / f'img{i}.png'), gen.integers(0, 256, (h, w, 3), dtype=np.uint8))
    return folder


def rgb_from_bgr_file(path):
    return cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1]


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_val_phase_reproduces_the_matlab_lr_files(scale):
    hr_dir = shared('data', 'Set5', 'HR')
    ds = build_dataset(make_opt(hr_dir, phase='val', scale=scale, name='Set5'))
    assert len(ds) == 5
    for i in range(len(ds)):
        sample = ds[i]
        stem = sample['gt_path'].split('/')[-1][:-4]
        hr = rgb_from_bgr_file(sample['gt_path'])
        h, w = hr.shape[0] // scale * scale, hr.shape[1] // scale * scale
        assert torch.equal(sample['gt'], torch.from_numpy(hr[:h, :w].copy()).permute(2, 0, 1).float() / 255)
        lr = rgb_from_bgr_file(hr_dir.parent / 'LR_bicubic' / f'X{scale}' / f'{stem}x{scale}.png')
        got = (sample['lq'] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        assert np.array_equal(got, lr), stem


def test_train_samples_are_augmented_crops_and_their_bicubic(image_dir):
    ds = build_dataset(make_opt(image_dir, round_lq=False))
    originals = [rgb_from_bgr_file(image_dir / f'img{i}.png').astype(np.float32) / 255 for i in range(3)]
    for index in range(12):
        sample = ds[index]
        gt, lq = sample['gt'], sample['lq']
        assert gt.shape == (3, 16, 16) and lq.shape == (3, 8, 8) and gt.dtype == torch.float32
        assert 0 <= gt.min() and gt.max() <= 1
        # gt is one of the 8 geometries of some crop of the (mod-cropped) source
        patch = gt.permute(1, 2, 0).numpy()
        variants = [np.rot90(patch, k) for k in range(4)] + [np.rot90(patch[:, ::-1], k) for k in range(4)]
        src = originals[index % 3]
        found = any(
            np.array_equal(src[t:t + 16, c:c + 16], v) for v in variants for t in range(src.shape[0] - 15)
            for c in range(src.shape[1] - 15))
        assert found
        # lq is the bicubic of gt, checked against basicsr's independent MATLAB port (float mode)
        ref = basicsr_imresize(patch.astype(np.float64), 0.5)
        assert np.abs(lq.permute(1, 2, 0).numpy() - ref).max() <= 1e-5


def test_round_lq_puts_lr_on_the_8bit_grid(image_dir):
    lq = build_dataset(make_opt(image_dir))[0]['lq'] * 255
    assert torch.equal(lq, lq.round())


def test_same_seed_same_samples_any_workers_new_epoch_new_samples(image_dir):

    def epoch_samples(num_workers, epoch, seed=7):
        torch.manual_seed(seed)
        ds = build_dataset(make_opt(image_dir))
        sampler = ResumableEnlargedSampler(ds, 1, 0, ratio=2)
        sampler.set_epoch(epoch)
        loader = DataLoader(ds, batch_size=2, sampler=sampler, num_workers=num_workers)
        return torch.cat([b['gt'] for b in loader])

    base = epoch_samples(0, 0)
    assert base.shape[0] == 6
    assert torch.equal(base, epoch_samples(2, 0))
    assert torch.equal(base, epoch_samples(0, 0))
    assert not torch.equal(base, epoch_samples(0, 1))
    assert not torch.equal(base, epoch_samples(0, 0, seed=8))


def test_cached_images_give_the_same_samples_and_are_decoded_once(image_dir, monkeypatch):
    import rt4ksr_arch.data.online_bicubic_dataset as module
    torch.manual_seed(3)
    plain = build_dataset(make_opt(image_dir))
    torch.manual_seed(3)
    cached = build_dataset(make_opt(image_dir, cache_images=True))
    decoded = []
    original = module.decode_image
    monkeypatch.setattr(module, 'decode_image', lambda content, name: decoded.append(name) or original(content, name))
    for index in list(range(6)) * 2:
        a, b = plain[index], cached[index]
        assert torch.equal(a['gt'], b['gt']) and torch.equal(a['lq'], b['lq'])  # the same computation path
    assert len(decoded) == 12 + 3  # plain decodes for every sample, the cache once per image


def loader_batches(image_dir, device_lq: bool, round_lq: bool, seed: int = 4):
    """Every batch of one epoch (batch 3, two workers) of the train set with or without ``lq_on_device``."""
    torch.manual_seed(seed)
    ds = build_dataset(make_opt(image_dir, round_lq=round_lq, lq_on_device=device_lq))
    sampler = ResumableEnlargedSampler(ds, 1, 0, ratio=4)
    return list(DataLoader(ds, batch_size=3, sampler=sampler, num_workers=2))


def batched_lq_error(image_dir, round_lq: bool, device: str) -> float:
    """Max |LR made from each HR batch on ``device`` - LR the workers made, crop by crop| (same crops)."""
    cpu, hr_only = loader_batches(image_dir, False, round_lq), loader_batches(image_dir, True, round_lq)
    assert len(cpu) == len(hr_only) == 4
    worst = 0.0
    for with_lq, without in zip(cpu, hr_only):
        assert 'lq' not in without and torch.equal(with_lq['gt'], without['gt'])  # the same crops
        made = make_lq(without['gt'].to(device), 2, round_lq).cpu()
        assert made.shape == with_lq['lq'].shape and made.dtype == torch.float32
        worst = max(worst, float((made - with_lq['lq']).abs().max()))
    return worst


@pytest.mark.parametrize('device', ['cpu', pytest.param('cuda', marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason='needs a CUDA device (benchmarks/gpu_checks.sh runs it)'))])
def test_lr_made_from_the_hr_batch_equals_the_workers_lr(image_dir, device):
    assert batched_lq_error(image_dir, True, device) == 0  # 8-bit: the same bits
    assert batched_lq_error(image_dir, False, device) <= 1e-6  # float


def test_lq_on_device_is_a_training_option(image_dir):
    with pytest.raises(OptionError, match='lq_on_device is a training option; the val dataset'):
        build_dataset(make_opt(image_dir, phase='val', lq_on_device=True))
    with pytest.raises(OptionError, match='lq_on_device cannot be combined with jpeg_quality'):
        build_dataset(make_opt(image_dir, lq_on_device=True, jpeg_quality=90))


def test_enlarged_repeats_get_their_own_crops(image_dir):
    torch.manual_seed(0)
    ds = build_dataset(make_opt(image_dir))
    assert not torch.equal(ds[0]['gt'], ds[3]['gt'])  # index 3 is image 0 again, another crop
    assert ds[0]['gt_path'] == ds[3]['gt_path']


def test_sampler_resume_skips_consumed_samples(image_dir):
    ds = build_dataset(make_opt(image_dir))
    sampler = ResumableEnlargedSampler(ds, 1, 0, ratio=4)
    sampler.set_epoch(3)
    full = list(sampler)
    assert sorted(full) == list(range(12)) and ds.epoch == 3
    sampler.resume_at(3, 5)
    # basicsr's prefetcher opens an iterator before the loop sets the epoch (with workers, indices are
    # drawn right then): that one is not the resumed pass
    assert len(list(sampler)) == 12
    sampler.set_epoch(3)
    assert list(sampler) == full[5:]
    assert list(sampler) == full  # the skip applies once
    sampler.resume_at(4, 5)
    sampler.set_epoch(3)
    assert list(sampler) == full  # armed only by its own epoch


def test_lmdb_and_disk_give_identical_samples(image_dir, tmp_path):
    names = sorted(p.name for p in image_dir.iterdir())
    lmdb_path = tmp_path / 'hr.lmdb'
    make_lmdb_from_imgs(str(image_dir), str(lmdb_path), names, [n[:-4] for n in names])
    torch.manual_seed(3)
    disk = build_dataset(make_opt(image_dir))
    torch.manual_seed(3)
    lmdb = build_dataset(make_opt(lmdb_path, io_backend={'type': 'lmdb'}))
    assert len(disk) == len(lmdb) == 3
    for i in range(6):
        a, b = disk[i], lmdb[i]
        assert torch.equal(a['gt'], b['gt']) and torch.equal(a['lq'], b['lq'])


def test_meta_info_file_selects_images(image_dir, tmp_path):
    meta = tmp_path / 'meta.txt'
    meta.write_text('img2.png (24,24,3)\nimg0.png (40,36,3)\n')
    ds = build_dataset(make_opt(image_dir, meta_info_file=str(meta)))
    assert [p.split('/')[-1] for p in ds.paths] == ['img2.png', 'img0.png']


def test_meta_info_listing_missing_images_fails_at_construction(image_dir, tmp_path):
    meta = tmp_path / 'meta.txt'
    meta.write_text('img0.png (40,36,3)\ngone.png (8,8,3)\nimg1.png (33,51,3)\nalso_gone.png (8,8,3)\n')
    with pytest.raises(DatasetError) as err:
        build_dataset(make_opt(image_dir, meta_info_file=str(meta)))
    assert str(err.value) == f'2 of 4 images listed in {meta} are not in {image_dir}: gone.png, also_gone.png'
    assert isinstance(err.value, RT4KSRError)
    meta.write_text('\n'.join(f'gone{i}.png (8,8,3)' for i in range(7)))
    with pytest.raises(DatasetError, match=r'7 of 7 images .*: gone0.png, gone1.png, gone2.png, gone3.png, gone4.png, '
                       r'\.\.\.$'):
        build_dataset(make_opt(image_dir, meta_info_file=str(meta)))


def test_lmdb_keys_listed_in_meta_info_are_checked_at_construction(image_dir, tmp_path, monkeypatch):
    import lmdb
    names = sorted(p.name for p in image_dir.iterdir())
    lmdb_path = tmp_path / 'hr.lmdb'
    make_lmdb_from_imgs(str(image_dir), str(lmdb_path), names, [n[:-4] for n in names])
    meta = tmp_path / 'meta.txt'
    meta.write_text('img2.png (24,24,3)\nimg0.png (40,36,3)\n')
    opened = []

    def recording_open(*args, **kwargs):
        opened.append(real_open(*args, **kwargs))
        return opened[-1]

    real_open = lmdb.open
    monkeypatch.setattr(lmdb, 'open', recording_open)
    ds = build_dataset(make_opt(lmdb_path, io_backend={'type': 'lmdb'}, meta_info_file=str(meta), phase='val'))
    assert ds.paths == ['img2', 'img0'] and len(opened) == 1
    with pytest.raises(lmdb.Error):  # closed again: no handle for the loader's worker processes to inherit
        opened[0].stat()
    monkeypatch.undo()

    listing = tmp_path / 'stale.txt'
    listing.write_text('img2.png (24,24,3)\nimg7.png (8,8,3)\nimg0.png (40,36,3)\nimg8.png (8,8,3)\nimg9.png (8,8,3)\n')
    with pytest.raises(DatasetError) as err:
        build_dataset(make_opt(lmdb_path, io_backend={'type': 'lmdb'}, meta_info_file=str(listing)))
    assert str(err.value).startswith(f'key img7 is not in {lmdb_path} (listed in {listing}); 2 more listed keys are '
                                     'not in it either (img8, img9)')
    assert isinstance(err.value, RT4KSRError)
    # last: once a dataset reads, its handle stays open, and py-lmdb opens one LMDB once per process
    assert ds[0]['gt'].shape == (3, 24, 24)


def test_any_image_kind_becomes_rgb_float(tmp_path):
    folder = tmp_path / 'mixed'
    folder.mkdir()
    gen = np.random.default_rng(1)
    gray = gen.integers(0, 256, (20, 20), dtype=np.uint8)
    rgba = gen.integers(0, 256, (20, 20, 4), dtype=np.uint8)
    deep = gen.integers(0, 65536, (20, 20, 3), dtype=np.uint16)
    cv2.imwrite(str(folder / 'a_gray.png'), gray)
    cv2.imwrite(str(folder / 'b_rgba.png'), rgba)
    cv2.imwrite(str(folder / 'c_16bit.png'), deep)
    cv2.imwrite(str(folder / 'd_photo.jpg'), rgba[..., :3])
    ds = build_dataset(make_opt(folder, phase='val'))
    samples = [ds[i] for i in range(4)]
    assert all(s['gt'].shape == (3, 20, 20) and s['lq'].shape == (3, 10, 10) for s in samples)
    assert torch.equal(samples[0]['gt'][0] * 255, torch.from_numpy(gray).float())
    assert torch.equal(samples[0]['gt'][0], samples[0]['gt'][2])
    assert torch.equal(samples[1]['gt'] * 255, torch.from_numpy(rgba[..., 2::-1].copy()).permute(2, 0, 1).float())
    expected16 = torch.from_numpy(deep[..., ::-1].astype(np.float32) / 65535).permute(2, 0, 1)
    assert torch.allclose(samples[2]['gt'], expected16, atol=1e-7)
    assert 0 <= samples[3]['gt'].min() and samples[3]['gt'].max() <= 1


def test_bad_inputs_name_the_problem(image_dir, tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(ValueError, match='no images found in dataroot_gt .*empty'):
        build_dataset(make_opt(empty))
    with pytest.raises(FileNotFoundError, match='is not a folder'):
        build_dataset(make_opt(tmp_path / 'missing'))
    with pytest.raises(ValueError, match='gt_size must be an integer multiple of scale 3'):
        build_dataset(make_opt(image_dir, scale=3, gt_size=16))
    ds = build_dataset(make_opt(image_dir, gt_size=32))
    with pytest.raises(ValueError, match=r'img2.png is 24x24, smaller than gt_size 32'):
        ds[2]
    (image_dir / 'img3.png').write_bytes(b'\x89PNG broken')
    ds = build_dataset(make_opt(image_dir))
    with pytest.raises(ValueError, match='cannot decode image .*img3.png'):
        ds[3]
    with pytest.raises(ValueError, match='persistent_workers'):
        build_dataset(make_opt(image_dir, persistent_workers=True))
