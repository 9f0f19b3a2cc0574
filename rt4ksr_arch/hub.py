"""The authors' released weights by name: downloaded once, verified by SHA-256, cached.

``rt4ksr_x2`` and ``rt4ksr_x3`` are the checkpoints of the RT4KSR authors (repository
``eduardzamfir/RT4KSR``, Apache-2.0), pinned to one commit so a name always means the same
bytes. The cache is ``$RT4KSR_CACHE`` or ``~/.cache/rt4ksr``; the download base URL can be
replaced with ``$RT4KSR_WEIGHTS_URL`` (a mirror, or the tests' local server). Downloading uses
``torch.hub.download_url_to_file`` (temporary file, progress bar, proxies).
"""
import hashlib
import os
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

from rt4ksr_arch.errors import CheckpointError, CheckpointNotFoundError

SOURCE_REPOSITORY = 'eduardzamfir/RT4KSR'
SOURCE_COMMIT = 'f8b80dd3006788e5f78e5b75bb438403e0173010'
DEFAULT_BASE_URL = f'https://raw.githubusercontent.com/{SOURCE_REPOSITORY}/{SOURCE_COMMIT}/code/checkpoints'


@dataclass(frozen=True)
class Released:
    """One released checkpoint: its file name in the authors' repository, its SHA-256 and size (bytes)."""

    file: str
    sha256: str
    size: int


RELEASED: Dict[str, Released] = {
    'rt4ksr_x2': Released('rt4ksr_x2.pth', '9ec7500092848a480e058a9c703e4b2254bc0cc97928c076bba272177752124f', 1699164),
    'rt4ksr_x3': Released('rt4ksr_x3.pth', '13229f15a7f3897096ab0ee92b7c3d3c64fd59b4e558fea3248147cec225e65e', 1855452),
}


def cache_dir() -> Path:
    """Where released weights are kept: ``$RT4KSR_CACHE``, else ``~/.cache/rt4ksr``."""
    return Path(os.environ.get('RT4KSR_CACHE') or Path.home() / '.cache' / 'rt4ksr').expanduser()


def weights_url(name: str) -> str:
    """The download URL of a released name (``$RT4KSR_WEIGHTS_URL`` replaces the base)."""
    base = os.environ.get('RT4KSR_WEIGHTS_URL') or DEFAULT_BASE_URL
    return f'{base.rstrip("/")}/{RELEASED[name].file}'


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def released_name_of(path: str) -> Optional[str]:
    """The released name whose bytes ``path`` holds (a downloaded copy passed by path), else None.

    Only files of a released file's size are hashed, so other checkpoints cost one ``stat``.
    """
    try:
        size = os.path.getsize(path)
    except OSError:
        return None
    for name, released in RELEASED.items():
        if size == released.size and sha256_of(Path(path)) == released.sha256:
            return name
    return None


def resolve(source: str, progress: bool = True) -> str:
    """A checkpoint path for ``source``: a released name is fetched into the cache (once), anything
    else is returned unchanged (a file path).

    Raises ``CheckpointNotFoundError`` when the download fails (offline, no such URL: the message
    names the URL, the SHA-256 and the cache path for a manual download) and ``CheckpointError``
    when the downloaded bytes do not have the pinned SHA-256 (nothing is cached then).
    """
    if source not in RELEASED:
        return source
    released = RELEASED[source]
    target = cache_dir() / released.file
    if target.is_file() and sha256_of(target) == released.sha256:
        return str(target)
    url = weights_url(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f'.{released.file}.download')
    import torch.hub  # deferred: only a download needs it
    try:
        torch.hub.download_url_to_file(url, str(partial), progress=progress)
    except (urllib.error.URLError, OSError, ValueError) as err:
        partial.unlink(missing_ok=True)
        raise CheckpointNotFoundError(
            f'cannot download the released weights {source} from {url} ({getattr(err, "reason", err)}). '
            f'Offline: download that file elsewhere, check its SHA-256 is {released.sha256}, and put it at '
            f'{target} (or give its path instead of the name)') from None
    digest = sha256_of(partial)
    if digest != released.sha256:
        partial.unlink()
        raise CheckpointError(f'the file downloaded from {url} has SHA-256 {digest}, not the released '
                              f'{released.sha256}: it was not kept. Check $RT4KSR_WEIGHTS_URL or your proxy')
    os.replace(partial, target)
    return str(target)
