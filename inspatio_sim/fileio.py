"""Atomic writes: a file (or directory) appears at its path complete, or not at all.

Every output of the package (Scenes, videos, reports, caches, bags, benchmark results) is written through
:func:`atomic_write`: the writer gets a temporary path in the same directory (so the final rename stays on one
file system), the result is flushed to disk and renamed into place with :func:`os.replace`, and on any error
(Ctrl-C included) the temporary is removed and an existing file at the path is left as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s content to; on success move it into place atomically.

    The temporary path has the same file name as ``path`` (inside a fresh hidden directory beside it), so writers
    that choose a format by the suffix (OpenCV, numpy, rosbags) behave as for ``path``. The writer may create a
    file or a directory there; a file is fsynced before the rename. Parent directories are created.

    Raises:
        Whatever the writer raised; ``FileNotFoundError`` if the writer created nothing.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        tmp = tmp_dir / target.name
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to {target}")
        if tmp.is_file():
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return the path."""
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON (with a final newline) to ``path`` atomically; return the path."""
    return write_text(path, json.dumps(data, indent=2) + "\n")


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort: not every platform can open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
