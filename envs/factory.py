"""The environments' keyword arguments -> hydra overrides -> :func:`inspatio_sim.assemble.build_simulator`.

Worlds are shared per process while in use (see :mod:`inspatio_sim.assemble`): ``SyncVectorEnv`` of many single
environments, or several environments over the same video, build the World once; closing the last environment
that uses a World releases it.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from typing import Any

from inspatio_sim.assemble import build_simulator
from inspatio_sim.config import compose
from inspatio_sim.errors import ConfigError
from inspatio_sim.simulator import Simulator


@dataclass
class SimulatorSpec:
    """What an environment simulates.

    Attributes:
        world: A Scene directory or ``.npz`` (``None``: the bundled oracle scene, or ``scene.path`` in overrides).
        action_model: ``ground``, ``fly``, ``discrete`` or ``robot`` (``control.action_model``).
        width, height, hfov_deg: Output camera (``render.camera.*``); ``None`` keeps the configured value.
        depth: Add a ``depth`` observation.
        device: Torch device of the World, the renderer and (with ``torch_obs``) the observations (``None``: the
            configured ``device``, ``cpu`` by default).
        model: World-model completer (``model.name``): ``none``, ``classical`` or ``star``; ``None`` keeps the
            configured one (``none`` by default).
        overrides: Extra hydra overrides (``key=value``), e.g. ``["control.radius=0.3", "scene=courtyard"]``.
    """

    world: str | None = None
    action_model: str | None = None
    width: int | None = None
    height: int | None = None
    hfov_deg: float | None = None
    depth: bool = False
    device: str | None = None
    model: str | None = None
    overrides: list[str] = field(default_factory=list)

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any], accepted: tuple[str, ...] = ()) -> SimulatorSpec:
        """The spec of an environment's keyword arguments; unknown names raise one :class:`ConfigError` line.

        ``accepted`` names the environment's own arguments, listed in the message next to the spec's fields.
        """
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(kwargs) - set(names))
        if unknown:
            known = sorted({*names, *accepted})
            hints = [f"'{k}' (did you mean '{m[0]}'?)" if (m := difflib.get_close_matches(k, known, 1)) else f"'{k}'"
                     for k in unknown]
            raise ConfigError(f"unknown environment argument(s) {', '.join(hints)}; the arguments are "
                              f"{', '.join(known)}")
        if isinstance(kwargs.get("overrides"), str):
            raise ConfigError("overrides must be a list of 'key=value' strings, got one string")
        return cls(**kwargs)


def make_simulator(spec: SimulatorSpec, num_agents: int) -> Simulator:
    """A Simulator of ``num_agents`` agents for ``spec`` (the World comes from the per-process cache)."""
    overrides = list(spec.overrides)
    if spec.world is not None:
        overrides.append(f"scene.path={spec.world}")
    for key, value in (("control.action_model", spec.action_model), ("render.camera.width", spec.width),
                       ("render.camera.height", spec.height), ("render.camera.hfov_deg", spec.hfov_deg),
                       ("model.name", spec.model)):
        if value is not None:
            overrides.append(f"{key}={value}")
    return build_simulator(compose(overrides), num_agents, device=spec.device)
