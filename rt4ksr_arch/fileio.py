"""Atomic file writes: a killed process never leaves a truncated file under the final name."""
import io
import os
import uuid
from os import path as osp
from typing import Any

import torch

TMP_SUFFIX = '.tmp'


def atomic_write_bytes(path: str, data: bytes, fsync: bool = False) -> None:
    """Write to a hidden temporary file beside ``path``, then rename it onto ``path``.

    A killed process leaves at most a ``.<name>.*.tmp`` file; BasicSR's folder listing
    (``scandir``) skips hidden files. ``fsync`` makes the data durable before the rename
    (checkpoints); thousands of sub-images skip it.
    """
    folder, base = osp.split(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'.{base}.{os.getpid()}-{uuid.uuid4().hex[:8]}{TMP_SUFFIX}')
    # os.open with 0o666 (not mkstemp, which makes 0600 files): the umask decides, as for any new file
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_BINARY', 0), 0o666)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save`` that never leaves a half-written ``path`` (serialized in memory first)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue(), fsync=True)
