"""Hydra configuration: compose the ``configs/`` tree with ``key=value`` overrides, and turn it into objects.

Groups: ``scene`` (room, courtyard, tiny), ``world``, ``render``, ``bench``; later issues add env, task, model,
train and ros. The tree lives in the repository's top-level ``configs/`` directory (or ``INSPATIO_CONFIG_DIR``).
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf

from inspatio_sim.errors import ConfigError

CONFIG_DIR_ENV = "INSPATIO_CONFIG_DIR"
T = TypeVar("T")


def config_dir() -> Path:
    """Directory of the hydra config tree."""
    env = os.environ.get(CONFIG_DIR_ENV)
    path = Path(env) if env else Path(__file__).resolve().parents[1] / "configs"
    if not (path / "config.yaml").exists():
        raise ConfigError(
            f"config tree not found at {path}; install inspatio-sim from its repository (pip install -e .) "
            f"or point {CONFIG_DIR_ENV} at a copy of its configs/ directory"
        )
    return path


def compose(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Compose ``configs/config.yaml`` with hydra overrides such as ``scene=courtyard`` or ``render.near=0.1``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ConfigError(f"overrides must look like key=value, got {bad}; see --help for the keys")
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return hydra_compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as e:
        first = str(e).strip().splitlines()[0]
        raise ConfigError(f"invalid configuration override: {first}; `inspatio-sim --help` lists the keys") from e


def to_dataclass(cls: type[T], node: DictConfig | dict[str, Any], prefix: str) -> T:
    """Build dataclass ``cls`` from a config node, ignoring sub-nodes that are not fields (e.g. ``render.camera``)."""
    data = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = [k for k, v in data.items() if k not in names and not isinstance(v, dict)]
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(prefix + '.' + k for k in unknown)}")
    obj = cls(**{k: v for k, v in data.items() if k in names})
    validate = getattr(obj, "validate", None)
    if validate is not None:
        validate()
    return obj


_LINE = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_][\w]*):(?P<value>[^#]*)(#\s*(?P<doc>.*))?$")


def describe_keys() -> list[tuple[str, str, str]]:
    """``(key, default, description)`` for every config key, read from the YAML files and their comments."""
    root = config_dir()
    rows: list[tuple[str, str, str]] = []
    files = [(root / "config.yaml", "")] + [
        (f, f"{f.parent.name}.") for f in sorted(root.glob("*/*.yaml")) if f.stem in ("default", "room")
    ]
    for file, prefix in files:
        stack: list[tuple[int, str]] = []
        pending: list[str] = []
        for line in file.read_text().splitlines():
            if line.strip().startswith("#"):
                pending.append(line.strip().lstrip("#").strip())
                continue
            m = _LINE.match(line)
            if not m or m["key"] == "defaults" or line.startswith("  - "):
                pending = []
                continue
            indent = len(m["indent"])
            while stack and stack[-1][0] >= indent:
                stack.pop()
            key = ".".join([s for _, s in stack] + [m["key"]])
            value = m["value"].strip()
            doc = m["doc"] or " ".join(pending)
            pending = []
            if value:
                rows.append((prefix + key, value, doc.strip()))
            else:
                stack.append((indent, m["key"]))
    groups = sorted({p.parent.name + "=" + p.stem for p in root.glob("*/*.yaml")})
    rows.append(("(groups)", ", ".join(groups), "choose a preset file of a group, e.g. scene=courtyard"))
    return rows
