"""Composed configuration -> World -> Simulator: the one way every face (envs, ROS node, recorder) builds one.

Worlds are shared within a process while they are in use: the cache is keyed by the composed ``scene`` and
``world`` nodes and the device, and holds *weak* references, so several environments (or ``SyncVectorEnv``'s
copies) over the same video build the World once, and the World is released as soon as no Simulator uses it
(every environment closed or collected). Nothing here imports a face (gymnasium, rclpy, ``envs``).
"""

from __future__ import annotations

import weakref

import torch
from omegaconf import DictConfig, OmegaConf

from inspatio_sim.config import to_dataclass
from inspatio_sim.control import ESCMConfig
from inspatio_sim.errors import ConfigError
from inspatio_sim.model import ModelConfig, ReferenceFrames
from inspatio_sim.render import RenderConfig
from inspatio_sim.scene_source import load_scene
from inspatio_sim.simulator import CameraConfig, Simulator
from inspatio_sim.world import World, WorldConfig, build_world

_WORLDS: weakref.WeakValueDictionary[str, World] = weakref.WeakValueDictionary()
_REFERENCES: dict[int, ReferenceFrames] = {}  # by id of a live World; dropped when the World is collected


def resolve_device(name: str | torch.device) -> torch.device:
    """``name`` as a torch device; a clear :class:`ConfigError` when it is malformed or not present here."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"device '{name}' is not a torch device (use cpu, cuda or cuda:N)") from e
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device '{name}' requested, but torch sees no CUDA device here; use device=cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device '{name}' requested, but only {torch.cuda.device_count()} CUDA device(s) exist")
    elif device.type != "cpu":
        raise ConfigError(f"device '{name}' is not supported; use cpu or cuda[:N]")
    return device


def world_from_config(cfg: DictConfig, device: str | torch.device | None = None, progress: bool = False) -> World:
    """The World of ``cfg.scene`` / ``cfg.world`` on ``device`` (default ``cfg.device``), shared while in use.

    Raises:
        SceneError: The Scene (``scene.path``) is missing or invalid.
        ConfigError: A ``world.*`` key or the device is invalid.
        WorldError: The Scene has no usable depth.
    """
    dev = resolve_device(cfg.device if device is None else device)
    key = OmegaConf.to_yaml({"scene": cfg.scene, "world": cfg.world, "device": str(dev)})
    world = _WORLDS.get(key)
    if world is None:
        world_cfg = to_dataclass(WorldConfig, cfg.world, "world")
        world = build_world(load_scene(cfg.scene, progress=progress), world_cfg, device=dev)
        _WORLDS[key] = world
    return world


def cached_worlds() -> list[World]:
    """The Worlds this process holds in its cache right now (each is used by at least one live Simulator)."""
    return list(_WORLDS.values())


def build_simulator(cfg: DictConfig, num_agents: int = 1, device: str | torch.device | None = None,
                    dt: float | None = None, progress: bool = False) -> Simulator:
    """A Simulator of ``num_agents`` agents for the composed configuration.

    Args:
        cfg: Composed configuration (``scene``, ``world``, ``control``, ``render`` and ``device`` nodes).
        num_agents: Batch size ``B``.
        device: Torch device (default ``cfg.device``).
        dt: Control step in seconds, overriding ``control.dt`` (the ROS node steps at ``1 / ros.rate``).
        progress: Show a progress bar while an oracle scene is generated.

    Raises:
        ConfigError: A key of ``control`` / ``render`` / ``world`` or the device is invalid.
        SceneError, WorldError: The Scene cannot be loaded or gives no World.
    """
    if int(num_agents) < 1:
        raise ConfigError(f"a Simulator needs at least one agent, got num_agents={num_agents}")
    control = to_dataclass(ESCMConfig, cfg.control, "control")
    if dt is not None:
        if not float(dt) > 0:
            raise ConfigError(f"the control step dt must be > 0 seconds, got {dt}")
        control.dt = float(dt)
    render = to_dataclass(RenderConfig, cfg.render, "render")
    camera = to_dataclass(CameraConfig, cfg.render.camera, "render.camera")
    model = OmegaConf.to_object(cfg.model) if "model" in cfg else ModelConfig()
    if model.name == "star" and not model.star.checkpoint and cfg.scene.get("path"):
        from inspatio_sim.model.star.checkpoint import adapted_path

        model.star.checkpoint = str(adapted_path(cfg.scene.path) or "")  # the World's own adapted checkpoint
    world = world_from_config(cfg, device, progress=progress)
    refs = references_from_config(cfg, world) if model.name != "none" else None
    return Simulator(world, int(num_agents), control=control, render=render, camera=camera, model=model,
                     references=refs)


def references_from_config(cfg: DictConfig, world: World) -> ReferenceFrames:
    """The recorded frames of ``cfg.scene`` on ``world``'s device, as the world model reads them (kept while the
    World lives)."""
    refs = _REFERENCES.get(id(world))
    if refs is None:
        refs = ReferenceFrames.from_scene(load_scene(cfg.scene, progress=False), world.device,
                                          min_confidence=world.config.min_confidence)
        _REFERENCES[id(world)] = refs
        weakref.finalize(world, _REFERENCES.pop, id(world), None)
    return refs
