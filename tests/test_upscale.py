"""The upscale CLI on a folder of awkward images and on a short video."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from basicsr.archs import build_network
from rt4ksr_arch.ops.bicubic import imresize
from tests.helpers import REPO, assert_close_8bit, randomize_, run_module


@pytest.fixture(scope='module')
def weights(tmp_path_factory) -> Path:
    net = randomize_(build_network({'type': 'RT4KSR', 'upscale': 2}), seed=7)
    path = tmp_path_factory.mktemp('weights') / 'x2.pth'
    torch.save({'params': net.state_dict()}, path)
    return path


def reference(weights: Path, bgr: np.ndarray) -> np.ndarray:
    """The train-form network applied directly to an 8-bit BGR image: float BGR in [0, 255]."""
    net = build_network({'type': 'RT4KSR', 'upscale': 2})
    net.load_state_dict(torch.load(weights, weights_only=True)['params'])
    lq = torch.from_numpy(bgr[:, :, ::-1].copy()).permute(2, 0, 1).float()[None] / 255
    with torch.no_grad():
        out = net.eval()(lq)[0].clamp(0, 1)
    return out.permute(1, 2, 0).numpy()[:, :, ::-1] * 255


def test_folder_of_gray_rgba_16bit_odd_and_broken_images(tmp_path, weights):
    gen = np.random.default_rng(0)
    inputs = tmp_path / 'in'
    inputs.mkdir()
    smooth = lambda h, w, c, peak: cv2.resize(  # noqa: E731
        gen.integers(0, peak, (6, 6, c)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC).clip(0, peak)
    images = {
        'gray.png': smooth(20, 18, 1, 255).astype(np.uint8),
        'rgba.png': smooth(16, 22, 4, 255).astype(np.uint8),
        'deep.png': smooth(14, 12, 3, 65535).astype(np.uint16),
        'odd.png': smooth(17, 23, 3, 255).astype(np.uint8),
    }
    for name, img in images.items():
        cv2.imwrite(str(inputs / name), img)
    (inputs / 'broken.png').write_bytes(b'\x89PNG not really')
    out = tmp_path / 'out'
    done = run_module('-m', 'rt4ksr_arch', 'upscale', str(inputs), str(out), '--weights', str(weights),
                      '--device', 'cpu')
    assert done.returncode == 1, done.stderr  # one failure, reported, the rest written
    assert 'failed' in done.stderr and 'broken.png' in done.stderr
    assert 'done: 4 written, 0 skipped (existing), 1 failed' in done.stdout
    for name, img in images.items():
        result = cv2.imread(str(out / f'{Path(name).stem}_x2.png'), cv2.IMREAD_UNCHANGED)
        assert result.dtype == img.dtype and result.shape[:2] == (img.shape[0] * 2, img.shape[1] * 2), name
        assert result.ndim == img.ndim and (img.ndim == 2 or result.shape[2] == img.shape[2]), name
    assert_close_8bit(cv2.imread(str(out / 'odd_x2.png')), reference(weights, images['odd.png']))
    alpha = imresize(torch.from_numpy(images['rgba.png'][:, :, 3]).double() / 255, 2.0).clamp(0, 1)
    assert_close_8bit(cv2.imread(str(out / 'rgba_x2.png'), cv2.IMREAD_UNCHANGED)[:, :, 3], alpha.numpy() * 255)

    before = {p.name: p.read_bytes() for p in out.iterdir()}
    again = run_module('-m', 'rt4ksr_arch', 'upscale', str(inputs / 'odd.png'), str(out), '--weights', str(weights))
    assert 'skipped' in again.stdout and '--overwrite' in again.stdout
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_wrong_scale_is_refused(tmp_path, weights):
    cv2.imwrite(str(tmp_path / 'a.png'), np.zeros((8, 8, 3), np.uint8))
    done = run_module('-m', 'rt4ksr_arch', 'upscale', str(tmp_path / 'a.png'), str(tmp_path / 'o.png'),
                      '--weights', str(weights), '--scale', '3')
    assert done.returncode == 2 and 'holds x2 weights' in done.stderr
    assert not (tmp_path / 'o.png').exists()


def test_video_keeps_frame_count_rate_and_doubles_size(tmp_path, weights):
    import av
    source = tmp_path / 'clip.mp4'
    with av.open(str(source), 'w') as out:
        stream = out.add_stream('libx264', rate=12, options={'preset': 'ultrafast'})
        stream.width, stream.height, stream.pix_fmt = 32, 24, 'yuv420p'
        for k in range(10):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.full((24, 32, 3), 20 * k, np.uint8))))
        out.mux(stream.encode(None))
    done = run_module('-m', 'rt4ksr_arch', 'upscale', str(source), str(tmp_path / 'out'), '--weights', str(weights),
                      '--batch', '3', '--tile', '8')
    assert done.returncode == 0, done.stderr[-2000:]
    with av.open(str(tmp_path / 'out' / 'clip_x2.mp4')) as result:
        frames = [f.to_ndarray(format='rgb24') for f in result.decode(video=0)]
        assert result.streams.video[0].average_rate == 12
    assert len(frames) == 10 and frames[0].shape == (48, 64, 3)
    assert 'FPS end to end' in done.stdout and 'ffmpeg' not in done.stdout


def test_lr_only_yaml_through_test_py(tmp_path, weights):
    folder = tmp_path / 'mine'
    folder.mkdir()
    cv2.imwrite(str(folder / 'gray.png'), np.full((9, 13), 100, np.uint8))
    cv2.imwrite(str(folder / 'rgba.png'), np.full((10, 7, 4), 200, np.uint8))
    cv2.imwrite(str(folder / 'deep.png'), np.full((6, 8, 3), 40000, np.uint16))
    opt = yaml.safe_load((REPO / 'options' / 'test' / 'rt4ksr_x2_lr_only.yml').read_text())
    opt['datasets']['test_1']['dataroot_lq'] = str(folder)
    opt['num_gpu'] = 0
    opt['path'].update(pretrain_network_g=str(weights), results_root=str(tmp_path / 'results'))
    opt['val']['tile']['tile_size'] = 4
    options = tmp_path / 'lr_only.yml'
    options.write_text(yaml.safe_dump(opt))
    done = run_module('rt4ksr_arch/test.py', '-opt', str(options))
    assert done.returncode == 0, done.stderr[-3000:]
    saved = tmp_path / 'results' / 'visualization' / 'my_images'
    for name, (h, w) in {'gray': (9, 13), 'rgba': (10, 7), 'deep': (6, 8)}.items():
        assert cv2.imread(str(saved / f'{name}_x2.png')).shape == (2 * h, 2 * w, 3), name
