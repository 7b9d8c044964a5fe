"""Output paths checked before any work starts: one clear line naming the path and the problem.

Every command that writes (``reconstruct -o``, ``oracle -o`` / ``--video``, ``record --bag``, ``bench --out``, the
demo's ``out=``) calls :func:`check_output_path` first, so a bad path fails in milliseconds instead of after minutes
of decoding or structure-from-motion, and never as a ``NotADirectoryError`` / ``OSError [Errno 36]`` traceback.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Literal

from inspatio_sim.errors import OutputPathError

DEFAULT_NAME_MAX = 255
"""Longest file or folder name (bytes) assumed where the file system does not say (Linux ext4, xfs, tmpfs)."""
DEFAULT_PATH_MAX = 4096
"""Longest absolute path (bytes) assumed where the file system does not say (Linux)."""


def check_output_path(path: str | os.PathLike[str], kind: Literal["dir", "file"], what: str = "output") -> Path:
    """Check that ``path`` can be created (or reused) as a folder (``kind="dir"``) or a file (``kind="file"``).

    Checks, without creating anything: the path is not empty and has no NUL byte; every name in it fits the file
    system's name limit and the whole path its path limit; an existing path is of the right kind and writable;
    otherwise its nearest existing ancestor is a folder (not a file) in which this process can create entries
    (probed by creating and removing an empty temporary folder, which also catches read-only mounts and root on
    them). Missing intermediate folders are fine: the command creates them.

    Args:
        path: The output path as the user gave it.
        kind: Whether the command writes a folder or a single file there.
        what: How the path is named in the message (e.g. ``"output"``, ``"--bag"``).

    Returns:
        The path as a :class:`Path` (not resolved).

    Raises:
        OutputPathError: One line naming the path and the problem.
    """
    text = os.fspath(path)
    if not text.strip():
        raise OutputPathError(f"{what} path is empty; give a {_noun(kind)} to write")
    if "\0" in text:
        raise OutputPathError(f"{what} path {text!r} contains a NUL byte")
    p = Path(text)
    anchor = _nearest_existing(p)
    name_max = _pathconf(anchor, "PC_NAME_MAX", DEFAULT_NAME_MAX)
    for part in p.parts:
        n = len(os.fsencode(part))
        if n > name_max:
            raise OutputPathError(f"{what} '{_short(text)}': the name '{_short(part)}' is {n} bytes long, the file "
                                  f"system allows at most {name_max}; choose a shorter name")
    full = len(os.fsencode(os.path.abspath(text)))
    path_max = _pathconf(anchor, "PC_PATH_MAX", DEFAULT_PATH_MAX)
    if full >= path_max:
        raise OutputPathError(f"{what} '{_short(text)}': the full path is {full} bytes long, the file system allows "
                              f"at most {path_max - 1}; choose a shorter path")
    if anchor == p and p.is_symlink() and not p.exists():
        raise OutputPathError(f"{what} '{text}' is a broken symbolic link; remove it or choose another path")
    if anchor == p:
        if kind == "dir" and not p.is_dir():
            raise OutputPathError(f"{what} '{text}' exists and is not a directory; choose a folder name")
        if kind == "file" and p.is_dir():
            raise OutputPathError(f"{what} '{text}' is a directory; give a file name")
        if kind == "dir":
            _probe(p, text, what)
        elif not os.access(p, os.W_OK):
            raise OutputPathError(f"{what} '{text}' exists and is not writable")
        return p
    if not anchor.is_dir():
        raise OutputPathError(f"{what} '{text}' cannot be created: '{anchor}' is a file, not a directory")
    _probe(anchor, text, what)
    return p


def _nearest_existing(p: Path) -> Path:
    """``p`` itself or its nearest ancestor that exists (``.`` for a relative path whose first part is missing)."""
    for q in (p, *p.parents):
        try:
            os.lstat(q)
            return q
        except OSError:  # missing, a name too long, or a file where a folder should be: look further up
            continue
    return Path.cwd() if not p.is_absolute() else Path(p.anchor)


def _probe(folder: Path, text: str, what: str) -> None:
    """Create and remove an empty temporary folder in ``folder``: the only check that also holds for root and for
    read-only mounts (``os.access`` says yes to root everywhere)."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".inspatio-sim-check-", dir=folder))
    except OSError as e:
        raise OutputPathError(f"{what} '{text}' cannot be written: no permission to create entries in '{folder}' "
                              f"({e.strerror})") from None


def _pathconf(p: Path, name: str, default: int) -> int:
    try:
        return int(os.pathconf(p if p.is_dir() else p.parent, name))
    except (OSError, ValueError):
        return default


def _noun(kind: str) -> str:
    return "folder" if kind == "dir" else "file name"


def _short(text: str, keep: int = 40) -> str:
    """``text`` cut to about ``keep`` characters for a one-line message."""
    return text if len(text) <= keep else f"{text[:keep // 2]}...{text[-keep // 2:]}"
