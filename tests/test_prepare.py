"""rt4ksr prepare: tiling, sub-images, idempotence and recovery, meta-info, LMDB, errors, bundled, worker outcomes."""
import dataclasses
import itertools
import shutil
from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np
import pytest

from rt4ksr_arch import fileio
from rt4ksr_arch.cli.main import main as rt4ksr
from rt4ksr_arch.prepare import BUNDLED_TRAIN, ImageOutcome, crop_positions
from tests.helpers import run_module, shared

CROP, STEP = 32, 16


def main(argv: List[str]) -> int:
    """``rt4ksr prepare <argv>`` in this process; the exit status."""
    return rt4ksr(['prepare', *argv])


def brute_force_positions(length: int, crop: int, step: int, thresh: int) -> List[int]:
    """Every start on the step grid where a whole crop fits, plus one crop flush with the far border
    when the pixels left uncovered after the last grid crop are more than ``thresh``."""
    starts = [p for p in range(length) if p % step == 0 and p + crop <= length]
    if starts and length - (starts[-1] + crop) > thresh:
        starts.append(length - crop)
    return starts


def imread(path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img


def write_images(folder: Path, images: Dict[str, np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, img in images.items():
        assert cv2.imwrite(str(folder / name), img), name
    return folder


def synthetic_images() -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        'rgb.png': rng.integers(0, 256, (70, 53, 3), dtype=np.uint8),
        'gray.png': rng.integers(0, 256, (40, 45), dtype=np.uint8),
        'deep.PNG': rng.integers(0, 65536, (36, 50, 3), dtype=np.uint16),
        'alpha.png': rng.integers(0, 256, (33, 33, 4), dtype=np.uint8),
        'deep_gray.tif': rng.integers(0, 65536, (40, 32), dtype=np.uint16),
        'photo.JPG': cv2.GaussianBlur(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), (5, 5), 2),
        'pal.bmp': rng.integers(0, 256, (32, 40, 3), dtype=np.uint8),
        'tiny.png': rng.integers(0, 256, (20, 60, 3), dtype=np.uint8),  # shorter than the crop: no sub-image
    }


@pytest.fixture
def hr_dir(tmp_path: Path) -> Path:
    folder = write_images(tmp_path / 'hr', synthetic_images())
    (folder / 'notes.txt').write_text('not an image')
    write_images(folder / 'nested', {'ignored.png': np.zeros((64, 64, 3), np.uint8)})
    return folder


def expected_crops(folder: Path, crop: int = CROP, step: int = STEP, thresh: int = 0) -> Dict[str, np.ndarray]:
    """name -> pixels of every sub-image, cut by hand from the decoded sources."""
    crops = {}
    for src in sorted(folder.iterdir()):
        if not src.is_file() or src.suffix.lower() == '.txt':
            continue
        img = imread(src)
        rows = brute_force_positions(img.shape[0], crop, step, thresh)
        cols = brute_force_positions(img.shape[1], crop, step, thresh)
        for index, (y, x) in enumerate(itertools.product(rows, cols), start=1):
            crops[f'{src.stem}_s{index:03d}.png'] = img[y:y + crop, x:x + crop]
    return crops


def mtimes(folder: Path) -> Dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


# ----------------------------------------------------------------------------------------------
# tiling


def test_crop_positions_match_brute_force():
    for length, crop, step, thresh in itertools.product(range(1, 41), range(1, 13), range(1, 13), range(0, 8)):
        got = crop_positions(length, crop, step, thresh)
        assert got == brute_force_positions(length, crop, step, thresh), (length, crop, step, thresh)
        if got:  # in bounds, increasing, and at most `thresh` pixels left uncovered at the end
            assert got[0] == 0 and got[-1] + crop <= length and got == sorted(set(got))
            assert length - (got[-1] + crop) <= thresh
    # BasicSR's DIV2K settings on a 2040x1356 image: 7 grid crops + 1 flush across, 4 + 1 down
    assert crop_positions(2040, 480, 240, 0) == [0, 240, 480, 720, 960, 1200, 1440, 1560]
    assert crop_positions(1356, 480, 240, 0) == [0, 240, 480, 720, 876]
    assert crop_positions(1356, 480, 240, 156) == [0, 240, 480, 720]  # remainder 156 is not > 156
    assert crop_positions(479, 480, 240, 0) == []
    with pytest.raises(ValueError):
        crop_positions(100, 0, 10, 0)


# ----------------------------------------------------------------------------------------------
# subimages


def test_subimages_names_sizes_and_pixels(hr_dir, tmp_path, capsys):
    out = tmp_path / 'sub'
    assert main(['subimages', str(hr_dir), str(out), '--crop-size', str(CROP), '--step', str(STEP),
                 '--workers', '2']) == 0
    summary = capsys.readouterr().out
    expected = expected_crops(hr_dir)
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)  # no temp files, nothing for tiny/nested
    # rgb.png is 70x53: rows 0,16,32 + flush 38; columns 0,16 + flush 21 -> 12 crops in row-major order
    assert len([n for n in expected if n.startswith('rgb_')]) == 12
    assert np.array_equal(imread(out / 'rgb_s012.png'), imread(hr_dir / 'rgb.png')[38:70, 21:53])
    for name, pixels in expected.items():
        got = imread(out / name)
        assert got.dtype == pixels.dtype and got.shape == pixels.shape and np.array_equal(got, pixels), name
    # stored as read: gray stays 2-D, 16-bit stays 16-bit, alpha stays
    assert imread(out / 'gray_s001.png').ndim == 2 and imread(out / 'deep_gray_s001.png').dtype == np.uint16
    assert imread(out / 'deep_s001.png').dtype == np.uint16 and imread(out / 'alpha_s001.png').shape == (32, 32, 4)
    assert f'{len(expected)} sub-images written' in summary and '1 smaller than 32x32 skipped (tiny.png)' in summary


def test_subimages_rerun_writes_nothing_and_recovers_a_killed_run(hr_dir, tmp_path, capsys):
    out = tmp_path / 'sub'
    args = ['subimages', str(hr_dir), str(out), '--crop-size', str(CROP), '--step', str(STEP), '--workers', '1']
    assert main(args) == 0
    before = mtimes(out)
    assert main(args) == 0
    assert mtimes(out) == before
    assert '0 sub-images written, 7 images already complete' in capsys.readouterr().out

    # a killed run: one crop never written, one only as a half-written temporary file
    (out / 'rgb_s005.png').unlink()
    (out / 'rgb_s007.png').unlink()
    (out / '.rgb_s007.png.4242-deadbeef.tmp').write_bytes(b'\x89PNG\r\n\x1a\n half')
    assert main(args) == 0
    after = mtimes(out)
    assert sorted(after) == sorted(before)  # the temp file is gone, both crops are back
    assert {n: t for n, t in after.items() if n not in ('rgb_s005.png', 'rgb_s007.png')} == \
        {n: t for n, t in before.items() if n not in ('rgb_s005.png', 'rgb_s007.png')}
    expected = expected_crops(hr_dir)
    for name in ('rgb_s005.png', 'rgb_s007.png'):
        assert np.array_equal(imread(out / name), expected[name])
    assert '2 sub-images written' in capsys.readouterr().out

    # other settings into the same folder would mix two tilings: refused, by name
    assert main(args[:3] + ['--crop-size', '24', '--step', '12']) == 2
    assert 'other settings' in capsys.readouterr().err


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / 'a.png'

    def killed(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(fileio.os, 'replace', killed)
    with pytest.raises(KeyboardInterrupt):
        fileio.atomic_write_bytes(str(target), b'data')
    assert list(tmp_path.iterdir()) == []


def test_subimages_cli_on_t91(tmp_path):
    src = tmp_path / 'T91'
    src.mkdir()
    for name in ('t1.bmp', 't2.bmp', 't55.bmp'):  # 176x197, 179x172, 198x291 (t55 is R=G=B)
        shutil.copy(shared('data', 'T91', 'HR', name), src / name)
    out = tmp_path / 'sub'
    result = run_module('-m', 'rt4ksr_arch', 'prepare', 'subimages', str(src), str(out), '--crop-size', '96', '--step',
                        '48', '--workers', '2')
    assert result.returncode == 0, result.stderr
    expected = expected_crops(src, 96, 48)
    assert len(expected) == 3 * 4 + 3 * 3 + 4 * 6  # rows x columns per image, counted by hand
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)
    for name, pixels in expected.items():
        assert np.array_equal(imread(out / name), pixels), name
    assert f'{len(expected)} sub-images written' in result.stdout


# ----------------------------------------------------------------------------------------------
# meta-info


def test_meta_info_content_and_overwrite(tmp_path, capsys):
    rng = np.random.default_rng(1)
    folder = write_images(tmp_path / 'imgs', {
        'rgb.png': rng.integers(0, 256, (70, 53, 3), dtype=np.uint8),
        'gray.png': rng.integers(0, 256, (40, 45), dtype=np.uint8),
        'deep.PNG': rng.integers(0, 65536, (36, 50, 3), dtype=np.uint16),
        'alpha.png': rng.integers(0, 256, (33, 34, 4), dtype=np.uint8),
    })
    assert main(['meta-info', str(folder), '--workers', '2']) == 0
    meta = tmp_path / 'meta_info_imgs.txt'  # beside the folder: inside, BasicSR would list it as an image
    assert meta.read_text() == 'alpha.png (33,34,4)\ndeep.PNG (36,50,3)\ngray.png (40,45,1)\nrgb.png (70,53,3)\n'
    from basicsr.data.data_util import paired_paths_from_meta_info_file
    paths = paired_paths_from_meta_info_file([str(folder), str(folder)], ['lq', 'gt'], str(meta), '{}')
    assert [p['gt_path'] for p in paths] == [str(folder / n) for n in ('alpha.png', 'deep.PNG', 'gray.png', 'rgb.png')]

    capsys.readouterr()
    meta.write_text('mine\n')
    assert main(['meta-info', str(folder)]) == 2
    assert f'{meta} exists' in capsys.readouterr().err and meta.read_text() == 'mine\n'
    custom = tmp_path / 'lists' / 'gt.txt'
    assert main(['meta-info', str(folder), '--overwrite', '--output', str(custom)]) == 0
    assert main(['meta-info', str(folder), '--overwrite']) == 0
    assert meta.read_text() == custom.read_text() and meta.read_text().count('\n') == 4


# ----------------------------------------------------------------------------------------------
# lmdb


def test_lmdb_readable_by_basicsr(hr_dir, tmp_path, capsys):
    from basicsr.data.data_util import paths_from_lmdb
    from basicsr.utils import FileClient, imfrombytes
    sources = {p.stem: p for p in hr_dir.iterdir() if p.is_file() and p.suffix != '.txt'}
    out = tmp_path / 'hr.lmdb'
    assert main(['lmdb', str(hr_dir), str(out), '--workers', '2', '--batch', '3']) == 0
    keys = sorted(sources, key=lambda k: sources[k].name)
    assert paths_from_lmdb(str(out)) == keys
    client = FileClient('lmdb', db_paths=[str(out)], client_keys=['gt'])
    for key in keys:
        source = imread(sources[key])
        stored = imfrombytes(client.get(key, 'gt'), flag='unchanged')
        assert stored.dtype == source.dtype and np.array_equal(stored, source), key
    shapes = [(s.shape[0], s.shape[1], s.shape[2] if s.ndim == 3 else 1) for s in map(imread, map(sources.get, keys))]
    lines = ''.join(f'{k}.png ({h},{w},{c}) 1\n' for k, (h, w, c) in zip(keys, shapes))
    assert (out / 'meta_info.txt').read_text() == lines

    # refused without --overwrite, the existing LMDB untouched
    stamp = (out / 'data.mdb').stat().st_mtime_ns
    capsys.readouterr()
    assert main(['lmdb', str(hr_dir), str(out)]) == 2
    assert f'{out} exists' in capsys.readouterr().err and (out / 'data.mdb').stat().st_mtime_ns == stamp

    # --meta-info: only what it lists, in its order; --overwrite replaces
    listing = tmp_path / 'subset.txt'
    listing.write_text('rgb.png (70,53,3)\ndeep.PNG (36,50,3)\n\nalpha.png (33,33,4)\n')
    assert main(['lmdb', str(hr_dir), str(out), '--meta-info', str(listing), '--overwrite', '--workers', '1']) == 0
    assert paths_from_lmdb(str(out)) == ['rgb', 'deep', 'alpha']
    import lmdb
    with lmdb.open(str(out), readonly=True, lock=False) as env:
        assert env.stat()['entries'] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ['hr', 'hr.lmdb', 'subset.txt']  # no partial/old folders


def test_lmdb_never_looks_complete_after_a_failure(tmp_path, capsys):
    folder = write_images(tmp_path / 'imgs', {'a.png': np.zeros((8, 8, 3), np.uint8)})
    (folder / 'b.png').write_bytes(b'\x89PNG\r\n\x1a\n truncated')
    stale = tmp_path / '.out.partial-k1ll3d.lmdb'  # what a killed run leaves
    stale.mkdir()
    out = tmp_path / 'out.lmdb'
    assert main(['lmdb', str(folder), str(out), '--workers', '1']) == 2
    err = capsys.readouterr().err
    assert str(folder / 'b.png') in err and f'{out} was not written' in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['imgs']  # neither OUTPUT nor a partial build
    (folder / 'b.png').unlink()
    assert main(['lmdb', str(folder), str(out)]) == 0
    assert main(['lmdb', str(folder), str(tmp_path / 'no_suffix')]) == 2
    assert 'must end with .lmdb' in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# errors


def test_clear_errors_for_missing_empty_and_unreadable_inputs(tmp_path, capsys):
    missing = tmp_path / 'missing'
    empty = tmp_path / 'empty'
    empty.mkdir()
    only_nested = write_images(tmp_path / 'nested_only' / 'DIV2K_train_HR', {'a.png': np.zeros((4, 4), np.uint8)})
    for command in ('subimages', 'meta-info', 'lmdb'):
        extra = {'subimages': [str(tmp_path / 'o')], 'meta-info': [], 'lmdb': [str(tmp_path / 'o.lmdb')]}[command]
        assert main([command, str(missing)] + extra) == 2
        assert f'error: folder not found: {missing}' in capsys.readouterr().err
        assert main([command, str(empty)] + extra) == 2
        assert f'no images (png/jpg/jpeg/bmp/tif/tiff/webp) in {empty}' in capsys.readouterr().err
    assert main(['meta-info', str(only_nested.parent)]) == 2
    assert 'subfolders (DIV2K_train_HR) are not searched' in capsys.readouterr().err

    folder = write_images(tmp_path / 'mixed', {'good.png': np.full((40, 40, 3), 7, np.uint8)})
    (folder / 'bad.png').write_bytes(b'not a png at all')
    (folder / 'empty.jpg').write_bytes(b'')
    out = tmp_path / 'sub'
    assert main(['subimages', str(folder), str(out), '--crop-size', '32', '--step', '16', '--workers', '1']) == 2
    err = capsys.readouterr().err
    assert f'cannot decode image {folder / "bad.png"}' in err and f'cannot decode image {folder / "empty.jpg"}' in err
    assert '2 of 3 images failed' in err
    # one failed: line per file (its reason), then the one error: line, the count naming every failing file
    assert sum(line.startswith('error: ') for line in err.splitlines()) == 1
    assert err.splitlines()[-1] == (f'error: 2 of 3 images failed ({folder / "bad.png"}, {folder / "empty.jpg"}); '
                                    'the others are done; fix these and run again')
    assert sorted(p.name for p in out.iterdir()) == ['good_s001.png', 'good_s002.png', 'good_s003.png',
                                                     'good_s004.png']  # the readable image is done
    assert main(['meta-info', str(folder)]) == 2
    assert not (tmp_path / 'meta_info_mixed.txt').exists()

    # one stem twice would write the same outputs; a dotted stem cannot be an LMDB key BasicSR reads back
    twins = write_images(tmp_path / 'twins', {'a.png': np.zeros((4, 4), np.uint8), 'a.jpg': np.zeros((4, 4), np.uint8)})
    capsys.readouterr()
    assert main(['subimages', str(twins), str(tmp_path / 'o2')]) == 2
    assert 'a.jpg and a.png have the same name stem' in capsys.readouterr().err
    dotted = write_images(tmp_path / 'dotted', {'img.v2.png': np.zeros((4, 4), np.uint8)})
    assert main(['lmdb', str(dotted), str(tmp_path / 'd.lmdb')]) == 2
    assert 'img.v2.png: LMDB keys' in capsys.readouterr().err


def test_prepare_and_the_dataset_find_the_same_images(tmp_path, capsys):
    from basicsr.data import build_dataset
    rng = np.random.default_rng(2)
    folder = tmp_path / 'cased'
    folder.mkdir()
    for name, ext in (('a.Png', '.png'), ('b.JPG', '.jpg'), ('c.webp', '.webp'), ('.hidden.png', '.png')):
        ok, buf = cv2.imencode(ext, rng.integers(0, 256, (12, 10, 3), dtype=np.uint8))
        assert ok, name
        (folder / name).write_bytes(buf.tobytes())
    (folder / 'notes.txt').write_text('not an image')
    assert main(['meta-info', str(folder), '--workers', '1']) == 0
    listed = [line.split(' ')[0] for line in (tmp_path / 'meta_info_cased.txt').read_text().splitlines()]
    assert listed == ['a.Png', 'b.JPG', 'c.webp']
    ds = build_dataset(dict(name='cased', type='OnlineBicubicPairedDataset', dataroot_gt=str(folder), scale=2,
                            io_backend={'type': 'disk'}, phase='val'))
    assert [Path(p).name for p in ds.paths] == listed


# ----------------------------------------------------------------------------------------------
# worker outcomes


def test_workers_report_each_image_as_one_outcome(tmp_path):
    from rt4ksr_arch.prepare.lmdb import png_of
    from rt4ksr_arch.prepare.meta_info import shape_of
    from rt4ksr_arch.prepare.subimages import extract_subimages_of
    gray = np.arange(40 * 48, dtype=np.uint16).reshape(40, 48)
    folder = write_images(tmp_path / 'in', {'gray.png': gray, 'tiny.png': np.zeros((20, 60, 3), np.uint8)})
    (folder / 'bad.png').write_bytes(b'not a png')
    out = tmp_path / 'out'
    out.mkdir()

    def crop(name: str) -> ImageOutcome:
        return extract_subimages_of(str(folder / name), str(out), CROP, STEP, 0, compression=1)

    assert crop('gray.png') == ImageOutcome(str(folder / 'gray.png'), written=4)  # rows 0, 8 (flush) x columns 0, 16
    assert crop('gray.png') == ImageOutcome(str(folder / 'gray.png'), complete=True)
    assert crop('tiny.png') == ImageOutcome(str(folder / 'tiny.png'), small=True)
    failed = crop('bad.png')
    assert failed.failed and f'cannot decode image {folder / "bad.png"}' in failed.error
    assert failed.written == 0 and not (failed.complete or failed.small)
    assert not crop('gray.png').failed

    assert shape_of(str(folder / 'gray.png')) == ImageOutcome(str(folder / 'gray.png'), shape=(40, 48, 1))
    encoded = png_of(str(folder / 'gray.png'), compression=1)
    assert encoded.shape == (40, 48, 1) and np.array_equal(cv2.imdecode(np.frombuffer(encoded.png, np.uint8),
                                                                        cv2.IMREAD_UNCHANGED), gray)
    assert shape_of(str(folder / 'bad.png')).failed and png_of(str(folder / 'bad.png'), 1).png is None

    # frozen (it crosses process boundaries as is), and a contradictory outcome is a bug, refused
    with pytest.raises(dataclasses.FrozenInstanceError):
        failed.written = 1
    for contradictory in (dict(error='x', written=1), dict(error='x', shape=(1, 1, 3)), dict(complete=True, written=1),
                          dict(small=True, complete=True), dict(written=-1)):
        with pytest.raises(ValueError, match='outcome'):
            ImageOutcome('a.png', **contradictory)


# ----------------------------------------------------------------------------------------------
# bundled


def test_bundled_writes_rgb_train_and_val(tmp_path, capsys):
    from skimage import data
    out = tmp_path / 'bundled'
    assert main(['bundled', str(out)]) == 0
    train = sorted(p.name for p in (out / 'train').iterdir())
    val = sorted(p.name for p in (out / 'val').iterdir())
    assert train == sorted(f'{n}.png' for n in BUNDLED_TRAIN) and val == ['chelsea.png']
    for path in list((out / 'train').iterdir()) + list((out / 'val').iterdir()):
        img = imread(path)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 256, path
    assert np.array_equal(imread(out / 'val' / 'chelsea.png')[..., ::-1], data.chelsea())  # BGR on disk
    before = {**mtimes(out / 'train'), **mtimes(out / 'val')}
    assert main(['bundled', str(out)]) == 0
    assert {**mtimes(out / 'train'), **mtimes(out / 'val')} == before
    assert '0 written, 8 already present' in capsys.readouterr().out


def test_bicubic_writes_the_benchmark_lr_files_matlab_made(tmp_path):
    hr = tmp_path / 'Set5' / 'HR'
    shutil.copytree(shared('data', 'Set5', 'HR'), hr)
    done = run_module('-m', 'rt4ksr_arch', 'prepare', 'bicubic', str(hr), '--scales', '2', '3', '--workers', '1')
    assert done.returncode == 0, done.stderr[-2000:]
    assert '10 LR files written' in done.stdout
    for scale in (2, 3):
        for made in sorted((tmp_path / 'Set5' / 'LR_bicubic' / f'X{scale}').iterdir()):
            shipped = shared('data', 'Set5', 'LR_bicubic', f'X{scale}', made.name)
            # the project's MATLAB-exact resize: bit-exact on every shipped LR file (tests/test_bicubic.py)
            np.testing.assert_array_equal(cv2.imread(str(made)), cv2.imread(str(shipped)), made.name)
    again = run_module('-m', 'rt4ksr_arch', 'prepare', 'bicubic', str(hr), '--scales', '2', '3', '--workers', '1')
    assert again.returncode == 0 and '0 LR files written' in again.stdout
