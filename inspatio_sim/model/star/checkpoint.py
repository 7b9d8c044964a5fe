"""STAR checkpoints: one file holding the network's architecture, the teacher's and (once distilled) the student's
weights, and the recipe's metadata; written atomically, loaded with validation (``weights_only``: no code runs).

A missing, unreadable, foreign or mismatched file raises :class:`~inspatio_sim.errors.CheckpointError` naming the
file and what was expected.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch

from inspatio_sim.errors import CheckpointError
from inspatio_sim.model.star.network import NetConfig, STARNet

FORMAT = "inspatio-sim/star"
VERSION = 2  # 2: 18 input channels, x0 residual on the explicit completion
DEFAULT = Path(__file__).resolve().parents[1] / "checkpoints" / "star_default.pt"
"""The checkpoint shipped in the package."""
ADAPTED_NAME = "star_adapted.pt"
"""File name of a World's adapted checkpoint (``inspatio-sim adapt star``), used automatically there."""


def world_dir(scene_path: str | Path) -> Path:
    """The directory of a Scene path (a directory as is, a ``*.npz`` file's folder)."""
    p = Path(scene_path).expanduser()
    return p.parent if p.suffix == ".npz" else p


def adapted_path(scene_path: str | Path) -> Path | None:
    """The adapted checkpoint of the World at ``scene_path`` (written by ``inspatio-sim adapt star``), if any."""
    p = world_dir(scene_path) / ADAPTED_NAME
    return p if p.is_file() else None


def save(path: str | Path, nets: dict[str, STARNet], meta: dict[str, Any], extra: dict[str, Any] | None = None
         ) -> Path:
    """Write ``nets`` (``teacher``, ``student``, ...; same architecture) and ``meta`` to ``path`` atomically.
    ``extra`` (optimiser states, ...) is stored beside them for resuming."""
    if not nets:
        raise CheckpointError(f"{path}: nothing to save")
    config = next(iter(nets.values())).config
    payload = {"format": FORMAT, "version": VERSION, "net": asdict(config), "meta": meta,
               "weights": {k: {n: t.detach().cpu().clone() for n, t in v.state_dict().items()}
                           for k, v in nets.items()}}
    if extra:
        payload["extra"] = extra
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=p.name + ".", suffix=".tmp", dir=p.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a checkpoint is read by whoever uses the World
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def load(path: str | Path, want: str | None = None, device: str | torch.device = "cpu"
         ) -> tuple[dict[str, STARNet], dict[str, Any], dict[str, Any]]:
    """Networks (eval mode, on ``device``), metadata and extra state of a checkpoint.

    Args:
        path: The file.
        want: A network the file must hold (``teacher`` or ``student``); ``None``: any.

    Raises:
        CheckpointError: missing, unreadable, another format or version, or weights that do not fit the stored
            architecture.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"STAR checkpoint {p} does not exist (expected a file written by "
                              "`inspatio-sim train star`)")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"STAR checkpoint {p} is corrupt or not a torch file "
                              f"(expected a {FORMAT} v{VERSION} checkpoint): {str(e).splitlines()[0]}") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"STAR checkpoint {p} is not a {FORMAT} checkpoint (found format {found!r})")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"STAR checkpoint {p} has version {payload.get('version')}, expected {VERSION}; "
                              "retrain it with `inspatio-sim train star`")
    weights = payload.get("weights")
    if not isinstance(weights, dict) or not weights:
        raise CheckpointError(f"STAR checkpoint {p} holds no network weights (expected teacher and/or student)")
    if want is not None and want not in weights:
        raise CheckpointError(f"STAR checkpoint {p} has no {want} network (it holds {', '.join(sorted(weights))}); "
                              f"run `inspatio-sim train star stage={want}`")
    names = {f.name for f in fields(NetConfig)}
    raw = payload.get("net", {})
    if not isinstance(raw, dict) or set(raw) != names:
        raise CheckpointError(f"STAR checkpoint {p}: architecture keys {sorted(raw) if isinstance(raw, dict) else raw}"
                              f", expected {sorted(names)}")
    config = NetConfig(**raw)
    nets = {}
    for name, state in weights.items():
        net = STARNet(config)
        expected = net.state_dict()
        if set(state) != set(expected):
            missing = sorted(set(expected) - set(state))[:3]
            raise CheckpointError(f"STAR checkpoint {p}: {name} weights do not match the architecture "
                                  f"(missing {missing}, {len(set(state) - set(expected))} unexpected)")
        for k, v in state.items():
            if tuple(v.shape) != tuple(expected[k].shape):
                raise CheckpointError(f"STAR checkpoint {p}: {name}.{k} has shape {tuple(v.shape)}, expected "
                                      f"{tuple(expected[k].shape)} for {config}")
            if not torch.isfinite(v).all():
                raise CheckpointError(f"STAR checkpoint {p}: {name}.{k} holds NaN or infinite values")
        net.load_state_dict(state)
        nets[name] = net.to(device).eval()
    return nets, dict(payload.get("meta", {})), dict(payload.get("extra", {}))


def export(source: str | Path, target: str | Path, keep: tuple[str, ...] = ("teacher", "student")) -> Path:
    """Copy the networks ``keep`` of a training checkpoint and its metadata to ``target``, without the optimiser
    state and the fake model (what ships: about a third of the size)."""
    nets, meta, _ = load(source)
    return save(target, {k: v for k, v in nets.items() if k in keep}, meta)
