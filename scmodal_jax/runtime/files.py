"""Atomic file writes: a file appears under its final name complete, or not at all.

A run killed while writing an output (SIGKILL, a scheduler's time limit, a full disk) must not leave a half
`integrated.h5ad` or `metrics.json` that looks like the result of a finished run. Writers write to a hidden
temporary name in the same folder and `os.replace` it onto the final name, which POSIX makes atomic within one
file system.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside `path`; when the block succeeds it becomes `path`, else it is removed.

    The temporary name keeps the final suffix (`.NAME.tmp-XXXX.h5ad`) because some writers check it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: the writer creates the file, so it gets the usual permissions (mkstemp's are owner-only).
    tmp_path = path.parent / f".{path.stem}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}"
    try:
        yield tmp_path
        _fsync(tmp_path)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """`Path.write_text`, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def _fsync(path: Path) -> None:
    # Without it a power loss right after os.replace can leave the new name pointing at an empty file.
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
