"""`rt4ksr demo`: the page's upscaling equals `rt4ksr upscale` for every image kind, and, in headless
Chromium, an uploaded image comes back as the same PNG `rt4ksr upscale` writes (plus a screenshot)."""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from rt4ksr_arch import RT4KSR, RT4KSRConfig, save_checkpoint
from rt4ksr_arch.cli.main import main as rt4ksr
from rt4ksr_arch.demo import DemoSession, bicubic_baseline, preview
from rt4ksr_arch.errors import ImageReadError, RT4KSRError
from tests.helpers import REPO, SHARED, assert_close_8bit, randomize_

CHROMIUM = os.environ.get('RT4KSR_CHROMIUM', '/usr/bin/chromium')
# Where the screenshot also goes (tests never write into the repository on their own): the README's
# docs/demo.jpg is made with RT4KSR_SCREENSHOT=docs/demo.jpg python -m pytest tests/test_demo.py -k browser
SCREENSHOT = os.environ.get('RT4KSR_SCREENSHOT')


def photo(height: int, width: int, dtype=np.uint8, channels: int = 3, translucent: bool = True) -> np.ndarray:
    """A crop of the bundled chelsea photograph as stored by OpenCV (BGR[A] / gray), 8 or 16 bit."""
    from skimage import data
    bgr = cv2.cvtColor(data.chelsea()[70:70 + height, 130:130 + width], cv2.COLOR_RGB2BGR)
    low_bits = (np.arange(width, dtype=np.uint16) * 37 % 256)[None, :, None]  # what 8 bits cannot hold
    img = bgr.astype(np.uint16) * 256 + low_bits if dtype == np.uint16 else bgr
    if channels == 1:
        return img[:, :, 1]
    if channels == 4:
        alpha = np.full((height, width, 1), np.iinfo(dtype).max, dtype)
        # a translucent band: alpha is upscaled by bicubic, never by the network
        alpha[:, :width // 3 if translucent else 0] //= 2
        return np.concatenate([img, alpha], axis=2)
    return img


@pytest.fixture(scope='module')
def random_weights(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp('weights') / 'random_x2.pth'
    net = randomize_(RT4KSR(), seed=9)
    save_checkpoint(str(path), RT4KSRConfig(), params=net.state_dict())
    return str(path)


def upscale_cli(image: Path, weights: str, out: Path, *flags: str) -> np.ndarray:
    """What `rt4ksr upscale` writes for ``image`` (run in this process)."""
    assert rt4ksr(['upscale', str(image), str(out), '--weights', weights, '--device', 'cpu', *flags]) == 0
    return cv2.imread(str(out), cv2.IMREAD_UNCHANGED)


@pytest.mark.parametrize('kind', [dict(channels=1), dict(channels=4, dtype=np.uint16), dict(channels=3)],
                         ids=['gray_8bit', 'rgba_16bit', 'rgb_odd_size'])
def test_the_page_upscales_like_the_upscale_tool(tmp_path, random_weights, kind):
    img = photo(21, 30, **kind)
    source = tmp_path / 'in.png'
    cv2.imwrite(str(source), img)
    session = DemoSession([random_weights], torch.device('cpu'), output_dir=tmp_path / 'out')
    result = session.upscale(source, random_weights, tile=8, self_ensemble=True)
    got = cv2.imread(str(result.png), cv2.IMREAD_UNCHANGED)
    expected = upscale_cli(source, random_weights, tmp_path / 'cli.png', '--tile', '8', '--self-ensemble')
    assert got.dtype == img.dtype and got.shape == (42, 60) + img.shape[2:]
    assert_close_8bit(got, expected)
    assert result.sr.shape == result.bicubic.shape == (42, 60, 4 if img.ndim == 3 and img.shape[2] == 4 else 3)
    assert result.lr.shape[:2] == (21, 30) and result.sr.dtype == np.uint8
    assert np.array_equal(result.sr, preview(got)) and result.seconds > 0
    assert '21' in result.summary and '**60x42**' in result.summary and 'tiles of 8' in result.summary


def test_bicubic_panel_is_matlab_bicubic_of_the_lr():
    img = photo(12, 16)  # a constant image stays constant under any interpolating kernel: the trivial check
    assert np.array_equal(bicubic_baseline(np.full_like(img, 77), 3), np.full((36, 48, 3), 77, np.uint8))
    # the kernel itself against basicsr's MATLAB imresize port (an independent implementation)
    from basicsr.utils.matlab_functions import imresize as basicsr_imresize
    expected = basicsr_imresize(img.astype(np.float64) / 255, 2) * 255
    assert_close_8bit(bicubic_baseline(img, 2), expected)


def test_page_errors_name_the_problem(tmp_path, random_weights):
    session = DemoSession([random_weights], torch.device('cpu'), output_dir=tmp_path)
    (tmp_path / 'notes.png').write_text('not an image')
    with pytest.raises(ImageReadError, match='cannot decode image notes.png'):
        session.upscale(tmp_path / 'notes.png', random_weights)
    cv2.imwrite(str(tmp_path / 'ok.png'), photo(8, 8))
    with pytest.raises(RT4KSRError, match='not offered by this page'):
        session.upscale(tmp_path / 'ok.png', 'other.pth')
    with pytest.raises(RT4KSRError, match='Tile must be an integer >= 1'):
        session.upscale(tmp_path / 'ok.png', random_weights, tile=-3)


def test_demo_cli_refuses_missing_weights(tmp_path, capsys):
    pytest.importorskip('gradio', reason='the [demo] extra is not installed')
    assert rt4ksr(['demo', '--weights', str(tmp_path / 'missing.pth'), '--device', 'cpu']) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: checkpoint not found') and err.count('\n') == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_for_page(url: str, server: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f'rt4ksr demo exited with {server.returncode}: {server.stdout.read()}')
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f'rt4ksr demo did not serve {url} within {timeout} s')


@pytest.mark.browser
def test_browser_upload_returns_the_upscale_output(tmp_path, random_weights):
    if not Path(CHROMIUM).exists():
        pytest.skip(f'no browser at {CHROMIUM} (apt-get install chromium; or set RT4KSR_CHROMIUM)')
    pytest.importorskip('gradio', reason='the [demo] extra is not installed')
    sync_api = pytest.importorskip('playwright.sync_api', reason='playwright is not installed')
    released = SHARED / 'weights' / 'rt4ksr_official' / 'rt4ksr_x2.pth'
    weights = str(released) if released.exists() else random_weights  # the README screenshot shows released ones
    image = tmp_path / 'chelsea_16bit_rgba.png'
    cv2.imwrite(str(image), photo(150, 220, dtype=np.uint16, channels=4, translucent=False))
    port = free_port()
    server = subprocess.Popen([sys.executable, '-m', 'rt4ksr_arch', 'demo', '--weights', weights, '--port', str(port),
                               '--device', 'cpu'], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env={**os.environ, 'PYTHONPATH': str(REPO)})
    try:
        wait_for_page(f'http://127.0.0.1:{port}/', server)
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
            page = browser.new_page(viewport={'width': 1400, 'height': 1000}, accept_downloads=True)
            page.goto(f'http://127.0.0.1:{port}/')
            page.locator('#lr-input input[type=file]').set_input_files(str(image))
            page.locator('#lr-input img').first.wait_for(timeout=30000)  # the upload is shown
            page.click('#upscale')
            page.locator('#download a').first.wait_for(timeout=60000)
            summary = page.inner_text('#summary')
            with page.expect_download() as download:
                page.locator('#download a').first.click()
            got_path = tmp_path / 'downloaded.png'
            download.value.save_as(got_path)
            page.screenshot(path=str(tmp_path / 'demo.jpg'), full_page=True, type='jpeg', quality=80)
            if SCREENSHOT:
                shutil.copy(tmp_path / 'demo.jpg', SCREENSHOT)

            bad = tmp_path / 'notes.png'  # an error is shown on the page, as one message
            bad.write_bytes(image.read_bytes()[:200])
            page.locator('#lr-input button[aria-label="Remove Image"]').first.click()
            page.locator('#lr-input input[type=file]').set_input_files(str(bad))
            page.click('#upscale')
            error_text = page.get_by_text('cannot decode image notes.png').first
            error_text.wait_for(timeout=30000)
            assert 'Traceback' not in page.inner_text('body')
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    got = cv2.imread(str(got_path), cv2.IMREAD_UNCHANGED)
    expected = upscale_cli(image, weights, tmp_path / 'cli.png')
    assert got.dtype == np.uint16 and got.shape == (300, 440, 4)
    assert '440x300 16-bit RGBA' in summary
    assert_close_8bit(got, expected)
