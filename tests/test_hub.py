"""Released weights by name: downloaded once from a (local) server, verified by SHA-256, cached; offline says how."""
import functools
import http.server
import shutil
import socket
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from rt4ksr_arch import hub
from rt4ksr_arch.errors import CheckpointError, CheckpointNotFoundError
from tests.helpers import run_module, shared


class CountingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder and counts GET requests (to show the cache avoids a second download)."""

    requests = 0

    def do_GET(self):  # noqa: N802 (http.server's name)
        type(self).requests += 1
        super().do_GET()

    def log_message(self, *args):  # keep pytest's output clean
        pass


@pytest.fixture
def server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving copies of the released files; yields (base URL, folder)."""
    folder = tmp_path / 'served' / 'checkpoints'
    folder.mkdir(parents=True)
    for released in hub.RELEASED.values():
        shutil.copy(shared('weights', 'rt4ksr_official', released.file), folder / released.file)
    CountingHandler.requests = 0
    handler = functools.partial(CountingHandler, directory=str(folder.parent))
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{httpd.server_address[1]}/checkpoints', folder
    finally:
        httpd.shutdown()


def use(monkeypatch, tmp_path, base_url):
    monkeypatch.setenv('RT4KSR_WEIGHTS_URL', base_url)
    monkeypatch.setenv('RT4KSR_CACHE', str(tmp_path / 'cache'))


def test_a_released_name_is_downloaded_once_verified_and_cached(tmp_path, monkeypatch, server):
    use(monkeypatch, tmp_path, server[0])
    path = hub.resolve('rt4ksr_x2', progress=False)
    assert Path(path) == tmp_path / 'cache' / 'rt4ksr_x2.pth'
    assert hub.sha256_of(Path(path)) == hub.RELEASED['rt4ksr_x2'].sha256
    assert hub.resolve('rt4ksr_x2', progress=False) == path and CountingHandler.requests == 1  # cached
    Path(path).write_bytes(b'damaged')  # a damaged cache entry is fetched again
    assert hub.sha256_of(Path(hub.resolve('rt4ksr_x2', progress=False))) == hub.RELEASED['rt4ksr_x2'].sha256
    assert CountingHandler.requests == 2
    assert hub.resolve('some/file.pth') == 'some/file.pth'  # paths pass through


def test_a_tampered_download_is_refused_and_not_cached(tmp_path, monkeypatch, server):
    base, folder = server
    data = bytearray((folder / 'rt4ksr_x3.pth').read_bytes())
    data[-100] ^= 0xFF
    (folder / 'rt4ksr_x3.pth').write_bytes(bytes(data))
    use(monkeypatch, tmp_path, base)
    with pytest.raises(CheckpointError, match='SHA-256 .* not the released'):
        hub.resolve('rt4ksr_x3', progress=False)
    assert not any((tmp_path / 'cache').iterdir())


def test_offline_names_the_url_and_the_cache_path(tmp_path, monkeypatch):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    use(monkeypatch, tmp_path, f'http://127.0.0.1:{port}/w')
    with pytest.raises(CheckpointNotFoundError) as caught:
        hub.resolve('rt4ksr_x2', progress=False)
    message = str(caught.value)
    assert f'http://127.0.0.1:{port}/w/rt4ksr_x2.pth' in message
    assert str(tmp_path / 'cache' / 'rt4ksr_x2.pth') in message and hub.RELEASED['rt4ksr_x2'].sha256 in message


def test_upscale_without_weights_uses_the_released_x2_after_one_download(tmp_path, server):
    image = np.zeros((12, 16, 3), np.uint8)
    image[:, 8:] = 200
    cv2.imwrite(str(tmp_path / 'photo.jpg'), image)
    env = {'RT4KSR_WEIGHTS_URL': server[0], 'RT4KSR_CACHE': str(tmp_path / 'cache')}
    done = run_module('-m', 'rt4ksr_arch', 'upscale', str(tmp_path / 'photo.jpg'), str(tmp_path / 'out'), env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert cv2.imread(str(tmp_path / 'out' / 'photo_x2.png')).shape == (24, 32, 3)
    assert 'rt4ksr_x2.pth' in done.stdout and (tmp_path / 'cache' / 'rt4ksr_x2.pth').is_file()
    assert 'assumed' not in done.stdout  # a released name's network is known

    offline = {'RT4KSR_WEIGHTS_URL': 'http://127.0.0.1:9/none', 'RT4KSR_CACHE': str(tmp_path / 'empty_cache')}
    done = run_module('-m', 'rt4ksr_arch', 'upscale', str(tmp_path / 'photo.jpg'), str(tmp_path / 'out2'), env=offline)
    assert done.returncode == 2 and done.stderr.startswith('error: cannot download the released weights rt4ksr_x2')
    assert 'http://127.0.0.1:9/none/rt4ksr_x2.pth' in done.stderr and str(tmp_path / 'empty_cache') in done.stderr
