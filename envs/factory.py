"""Build a Simulator for the environments from keyword arguments and the hydra configuration.

Worlds are cached per process (keyed by the composed scene and world configuration and the device), so
``SyncVectorEnv`` of many single environments, or several environments over the same video, build the World once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import OmegaConf

from inspatio_sim.config import compose, to_dataclass
from inspatio_sim.control import ESCMConfig
from inspatio_sim.render import RenderConfig
from inspatio_sim.scene_source import load_scene
from inspatio_sim.simulator import CameraConfig, Simulator
from inspatio_sim.world import World, WorldConfig, build_world

_WORLDS: dict[str, World] = {}


@dataclass
class SimulatorSpec:
    """What an environment simulates.

    Attributes:
        world: A Scene directory or ``.npz`` (``None``: the bundled oracle scene, or ``scene.path`` in overrides).
        action_model: ``ground``, ``fly`` or ``discrete`` (``control.action_model``).
        width, height, hfov_deg: Output camera (``render.camera.*``); ``None`` keeps the configured value.
        depth: Add a ``depth`` observation.
        device: Torch device of the World, the renderer and (with ``torch_obs``) the observations.
        overrides: Extra hydra overrides (``key=value``), e.g. ``["control.radius=0.3", "scene=courtyard"]``.
    """

    world: str | None = None
    action_model: str | None = None
    width: int | None = None
    height: int | None = None
    hfov_deg: float | None = None
    depth: bool = False
    device: str = "cpu"
    overrides: list[str] = field(default_factory=list)


def make_simulator(spec: SimulatorSpec, num_agents: int) -> Simulator:
    """A Simulator of ``num_agents`` agents for ``spec`` (the World comes from the per-process cache)."""
    overrides = list(spec.overrides)
    if spec.world is not None:
        overrides.append(f"scene.path={spec.world}")
    for key, value in (("control.action_model", spec.action_model), ("render.camera.width", spec.width),
                       ("render.camera.height", spec.height), ("render.camera.hfov_deg", spec.hfov_deg)):
        if value is not None:
            overrides.append(f"{key}={value}")
    cfg = compose(overrides)
    key = OmegaConf.to_yaml({"scene": cfg.scene, "world": cfg.world, "device": spec.device})
    if key not in _WORLDS:
        _WORLDS[key] = build_world(load_scene(cfg.scene), to_dataclass(WorldConfig, cfg.world, "world"),
                                   device=spec.device)
    camera = to_dataclass(CameraConfig, cfg.render.camera, "render.camera")
    return Simulator(_WORLDS[key], num_agents, control=to_dataclass(ESCMConfig, cfg.control, "control"),
                     render=to_dataclass(RenderConfig, cfg.render, "render"), camera=camera)
