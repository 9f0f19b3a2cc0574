"""The one family of user-facing errors: every message names the problem and the fix.

Each command-line tool turns an ``RT4KSRError`` (and an ``OSError`` on a path the user gave)
into a single ``error: …`` line and exit status 2; anything else is a bug and keeps its
traceback. Subclasses also derive from the built-in exception a caller would naturally catch
(``ValueError``, ``FileNotFoundError``), so library users can keep plain ``except`` clauses.
"""
from typing import Mapping, Sequence


class RT4KSRError(Exception):
    """Base class of every error caused by user input (options, files, checkpoints, data)."""


class OptionError(RT4KSRError, ValueError):
    """An option value that cannot be used.

    ``field`` is the option's canonical name (an ``InferenceOptions`` or ``RT4KSRConfig``
    field); ``renamed`` re-spells it the way the user wrote it (``--tile``, ``val.tile.tile_size``).
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f'{field} {problem}')
        self.field, self.problem = field, problem

    def renamed(self, names: Mapping[str, str]) -> 'OptionError':
        """The same error with ``field`` spelled as ``names[field]`` (unchanged when not listed)."""
        return OptionError(names.get(self.field, self.field), self.problem)


class CheckpointError(RT4KSRError, ValueError):
    """A checkpoint that cannot be used; the message says why and what to do."""


class CheckpointNotFoundError(RT4KSRError, FileNotFoundError):
    """A checkpoint path (or released-weights name) that does not exist."""


class ImageReadError(RT4KSRError, ValueError):
    """An image (or video) file that cannot be decoded or used; the message names the file."""


class OutputExistsError(RT4KSRError, FileExistsError):
    """An output that already exists and would be replaced without ``--overwrite``."""


class OutputNotWritableError(RT4KSRError, PermissionError):
    """An output location that cannot be written (read-only, no permission, full disk)."""


class DatasetError(RT4KSRError, ValueError):
    """Training data (a folder, meta_info file or LMDB) that does not hold what it should."""


class PrepareError(RT4KSRError, ValueError):
    """Input that ``rt4ksr prepare`` cannot prepare; the message names the file or folder and what to do."""


def first_names(names: Sequence[str], limit: int = 5) -> str:
    """The first ``limit`` of ``names`` for a message, comma-separated, with ``, ...`` when there are more.

    Enough to spot a pattern (a wrong folder, a wrong suffix) without flooding the terminal.
    """
    return ', '.join(names[:limit]) + (', ...' if len(names) > limit else '')
