"""``inspatio-sim data star``: training examples for a learned completer, from many ground-truth scenes.

Each shard holds one oracle scene (preset x seed) turned into a World *the way users get them*: by default
(``data.world=reconstructed``) the oracle's video is run through ``inspatio-sim reconstruct``'s pipeline, exactly as
``bench model`` makes its Worlds; ``data.world=degraded`` degrades the exact Scene to imitate a reconstruction
instead (:class:`DegradeConfig`: depth lost on low-texture pixels and in random blobs, low-frequency relative depth
noise, per-frame pose jitter; much faster, but cleaner than a real reconstruction). Then ``examples`` short
trajectories leave the recorded path by 0.25-1.5 m and may turn to look where the video never looked (drawn in the
oracle's frame, whose render is the truth, and carried into the reconstruction's frame by the path's Sim(3)). Per
frame: the explicit render (rgb, depth, validity), the cache's reference slots (indices into the scene's reference
frames, which the shard stores once), the camera, and the ground-truth frame from the oracle. History slots are not
stored: a learned model fills them with its own outputs during training.

Layout: ``DIR/index.json`` (settings, shards, held-out scenes) and ``DIR/shard-PRESET-SEED.npz``. Shards are written
atomically and skipped when present (resume). The benchmark's held-out scenes (:data:`HELD_OUT`) are refused.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from scipy import ndimage
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from inspatio_sim.errors import ConfigError
from inspatio_sim.scene import Scene

HELD_OUT: tuple[tuple[str, int], ...] = (("room", 101), ("plain", 101), ("courtyard", 101))
"""Oracle scenes (preset, seed) reserved for ``bench model``: never written as training data."""
SHARD_VERSION = 1
WORLDS = ("degraded", "reconstructed")
"""``data.world``: how a shard's World is made from its oracle scene."""
_ARRAYS = ("render_rgb", "render_depth", "render_valid", "gt_rgb", "poses", "times", "ref_index", "K", "ref_rgb",
           "ref_depth", "ref_poses", "ref_K", "ref_times")


@dataclass
class DegradeConfig:
    """How an exact Scene is degraded to look like a reconstruction (hydra node ``data.degrade``)."""

    min_texture: float = 0.02  # depth is dropped where the grey-level std in a 7x7 window is below this (0..1)
    drop_fraction: float = 0.05  # extra depth dropped in random blobs (fraction of pixels)
    depth_noise: float = 0.02  # relative depth noise (low-frequency, standard deviation)
    pose_jitter_m: float = 0.005  # per-frame camera position noise (metres, standard deviation)
    pose_jitter_deg: float = 0.1  # per-frame camera rotation noise (degrees, standard deviation)


@dataclass
class DataConfig:
    """Training-data settings (hydra node ``data``)."""

    world: str = "reconstructed"  # reconstructed: oracle video -> recon pipeline (recon.*) | degraded (data.degrade)
    presets: list[str] = field(default_factory=lambda: ["room", "courtyard", "plain"])  # oracle presets of the scenes
    seeds: list[int] = field(default_factory=lambda: list(range(5)))  # oracle seeds per preset (held-out ones refused)
    examples: int = 16  # trajectories per scene
    steps: int = 8  # frames per trajectory
    width: int = 80  # camera width of the examples (pixels)
    height: int = 64  # camera height (pixels)
    hfov_deg: float = 70.0  # camera horizontal field of view (degrees; bench model's cameras have 70)
    scene_frames: int = 60  # frames of each oracle video (bench model's videos have 60 at 320x240)
    scene_width: int = 320  # oracle video width (pixels; the reference frames' resolution)
    scene_height: int = 240  # oracle video height (pixels)
    min_offset: float = 0.25  # trajectories start this far off the recorded path at least (metres)
    max_offset: float = 1.5  # ... and at most (metres)
    max_turn_deg: float = 8.0  # largest yaw change per step (degrees): looks where the video never looked
    degrade: DegradeConfig = field(default_factory=DegradeConfig)

    def validate(self) -> None:
        held = [(p, s) for p in self.presets for s in self.seeds if (p, int(s)) in HELD_OUT]
        if held:
            raise ConfigError(f"data: {held} are the benchmark's held-out scenes; choose other data.seeds")
        if self.world not in WORLDS:
            raise ConfigError(f"data.world must be one of {', '.join(WORLDS)}, got '{self.world}'")
        if not self.presets or not self.seeds:
            raise ConfigError("data.presets and data.seeds must not be empty")
        for key in ("examples", "steps", "width", "height", "scene_frames", "scene_width", "scene_height"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"data.{key} must be >= 1, got {getattr(self, key)}")
        if not 0 <= self.min_offset <= self.max_offset:
            raise ConfigError(f"data.min_offset/max_offset must satisfy 0 <= min <= max, got "
                              f"{self.min_offset}, {self.max_offset}")


def degrade(scene: Scene, cfg: DegradeConfig, rng: np.random.Generator) -> Scene:
    """A copy of an exact Scene with reconstruction-like errors (see :class:`DegradeConfig`)."""
    grey = scene.frames.astype(np.float32).mean(-1) / 255.0
    mean = np.stack([cv2.blur(g, (7, 7)) for g in grey])
    sq = np.stack([cv2.blur(g * g, (7, 7)) for g in grey])
    texture = np.sqrt(np.clip(sq - mean * mean, 0.0, None))
    keep = (scene.depth > 0) & (texture >= cfg.min_texture)
    n, h, w = scene.depth.shape
    if cfg.drop_fraction > 0:
        blobs = ndimage.gaussian_filter(rng.standard_normal((n, h, w)), sigma=(0, h / 16, w / 16))
        cut = np.quantile(blobs, 1.0 - cfg.drop_fraction)
        keep &= blobs < cut
    noise = ndimage.gaussian_filter(rng.standard_normal((n, h, w)), sigma=(0, h / 8, w / 8))
    noise *= cfg.depth_noise / max(float(noise.std()), 1e-9)
    depth = np.where(keep, scene.depth * (1.0 + noise), 0.0).astype(np.float32)
    poses = scene.poses.copy()
    poses[:, :3, 3] += rng.normal(scale=cfg.pose_jitter_m, size=(n, 3))
    rot = Rotation.from_rotvec(rng.normal(size=(n, 3)) * np.deg2rad(cfg.pose_jitter_deg) / math.sqrt(3))
    poses[:, :3, :3] = rot.as_matrix() @ poses[:, :3, :3]
    return Scene(frames=scene.frames, timestamps=scene.timestamps, K=scene.K, poses=poses, depth=depth,
                 confidence=keep.astype(np.float32), dynamic_mask=scene.dynamic_mask, meta=scene.meta)


def make_shard(preset: str, seed: int, cfg: DataConfig, world_cfg: Any, render_cfg: Any, recon_cfg: Any = None
               ) -> dict[str, np.ndarray]:
    """All examples of one oracle scene (see the module docstring for the arrays); ``recon_cfg`` (the ``recon``
    node) is needed for ``data.world=reconstructed``. Trajectories are drawn in the oracle's frame (its render is
    the ground truth) and carried into the reconstruction's frame for everything the model reads."""
    from inspatio_sim.conventions import intrinsics_from_fov
    from inspatio_sim.metrics import trajectory_errors
    from inspatio_sim.model.paths import carry_trajectories, trajectories
    from inspatio_sim.model.references import ReferenceFrames
    from inspatio_sim.oracle import Oracle
    from inspatio_sim.scene_source import reconstructed_oracle
    from inspatio_sim.world import build_world

    rng = np.random.default_rng([zlib.crc32(preset.encode()), seed])
    if cfg.world == "reconstructed":
        if recon_cfg is None:
            raise ConfigError("data.world=reconstructed needs the recon settings (make_shard(..., recon_cfg=))")
        exact, scene, index = reconstructed_oracle(preset, seed, cfg.scene_frames, cfg.scene_width,
                                                   cfg.scene_height, recon_cfg, progress=False)
        scale = trajectory_errors(scene.poses, exact.poses[index])["sim3_scale"]
    with Oracle(preset, seed) as oracle:
        if cfg.world == "degraded":
            exact = oracle.make_scene(num_frames=cfg.scene_frames, width=cfg.scene_width, height=cfg.scene_height,
                                      progress=False)
            scene = degrade(exact, cfg.degrade, rng)
        traj, times = trajectories(exact, oracle, cfg.examples, cfg.steps, rng, offsets=(cfg.min_offset,
                                   cfg.max_offset), max_turn_deg=cfg.max_turn_deg)
        K = intrinsics_from_fov(cfg.width, cfg.height, cfg.hfov_deg)
        truth = oracle.render(traj.reshape(-1, 4, 4), times.reshape(-1), K, cfg.width, cfg.height, supersample=3)
    if cfg.world == "reconstructed":
        traj = carry_trajectories(traj, exact, scene, index, scale)
    world = build_world(scene, world_cfg, progress=False)
    refs = ReferenceFrames.from_scene(scene, min_confidence=world.config.min_confidence)
    return _examples(cfg, world, refs, scene, traj, times, K, truth.rgb, render_cfg)


def _examples(cfg: DataConfig, world: Any, refs: Any, scene: Scene, traj: np.ndarray, times: np.ndarray,
              K: np.ndarray, truth: np.ndarray, render_cfg: Any) -> dict[str, np.ndarray]:
    """A shard's arrays: trajectories ``traj (E, T, 4, 4)`` (the World's frame) at ``times (E, T)`` rendered and
    cached through a Simulator on ``world``, with the oracle's frames ``truth (E * T, H, W, 3)``."""
    from inspatio_sim.control import ESCMConfig
    from inspatio_sim.model.cache import CacheConfig, SpatiotemporalCache
    from inspatio_sim.simulator import CameraConfig, Simulator

    sim = Simulator(world, cfg.examples, control=ESCMConfig(action_model="fly"), render=render_cfg,
                    camera=CameraConfig(width=cfg.width, height=cfg.height, hfov_deg=cfg.hfov_deg))
    cache = SpatiotemporalCache(refs, cfg.examples, cfg.height, cfg.width, CacheConfig())
    Kt = torch.as_tensor(K, dtype=torch.float32)
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("render_rgb", "render_depth", "render_valid", "ref_index")}
    for t in range(cfg.steps):
        poses = torch.as_tensor(traj[:, t], dtype=torch.float32)
        sim.escm.reset(poses)
        sim.time = torch.as_tensor(times[:, t], dtype=torch.float64)
        frame = sim.observe()
        scene_time = world.timestamps[world.frame_at(sim.time)]
        cache.select(sim.poses(), scene_time, frame.depth, ~frame.valid, Kt)
        out["render_rgb"].append(frame.rgb.numpy())
        out["render_depth"].append(frame.depth.numpy().astype(np.float16))
        out["render_valid"].append(frame.valid.numpy())
        out["ref_index"].append(cache.ref_index.numpy().copy())
    shape = (cfg.examples, cfg.steps)
    return {
        **{k: np.stack(v, 1) for k, v in out.items()},
        "gt_rgb": truth.reshape(*shape, cfg.height, cfg.width, 3), "poses": traj.astype(np.float32),
        "times": times, "K": K, "ref_rgb": scene.frames, "ref_depth": refs.depth.numpy().astype(np.float16),
        "ref_poses": scene.poses.astype(np.float32), "ref_K": scene.K, "ref_times": scene.timestamps,
    }


def shard_path(root: Path, preset: str, seed: int) -> Path:
    return root / f"shard-{preset}-{seed}.npz"


def save_shard(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write a shard atomically (temporary file in the same directory, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, meta=json.dumps({**meta, "version": SHARD_VERSION}), **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_shard(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A shard's arrays and metadata, validated (version, keys, shapes).

    Raises:
        ConfigError: Not a shard of this version, or missing/mismatched arrays.
    """
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise ConfigError(f"{p}: not a readable training shard ({e})") from e
    meta = json.loads(str(data.pop("meta", "{}")))
    if meta.get("version") != SHARD_VERSION:
        raise ConfigError(f"{p}: training shard version {meta.get('version')} (expected {SHARD_VERSION}); "
                          "regenerate it with `inspatio-sim data star`")
    missing = [k for k in _ARRAYS if k not in data]
    if missing:
        raise ConfigError(f"{p}: training shard lacks {missing}")
    e, t = data["render_rgb"].shape[:2]
    for k in ("render_depth", "render_valid", "gt_rgb", "poses", "times", "ref_index"):
        if data[k].shape[:2] != (e, t):
            raise ConfigError(f"{p}: {k} has shape {data[k].shape}, expected ({e}, {t}, ...)")
    return data, meta


def generate(cfg: DataConfig, out_dir: str | Path, world_cfg: Any, render_cfg: Any, recon_cfg: Any = None) -> Path:
    """Write every shard of ``cfg`` into ``out_dir`` (existing shards are kept: resume); return the index path.
    ``recon_cfg``: the ``recon`` node (``data.world=reconstructed``; its settings are recorded in the index)."""
    cfg.validate()
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    scenes = [(p, int(s)) for p in cfg.presets for s in cfg.seeds]
    if cfg.world == "reconstructed" and recon_cfg is None:
        raise ConfigError("data.world=reconstructed needs the recon settings (generate(..., recon_cfg=))")
    settings = {**asdict(cfg), "world_config": asdict(world_cfg), "render": asdict(render_cfg)}
    if cfg.world == "reconstructed":
        from omegaconf import OmegaConf

        settings["recon"] = OmegaConf.to_container(OmegaConf.create(recon_cfg), resolve=True)
    index_path = root / "index.json"
    if index_path.exists():
        previous = json.loads(index_path.read_text()).get("settings")
        if previous is not None and previous != json.loads(json.dumps(settings)):
            raise ConfigError(f"{root} holds shards made with other settings; use another directory or delete it")
    done = []
    for preset, seed in tqdm(scenes, desc="data star", unit="scene"):
        path = shard_path(root, preset, seed)
        if not path.exists():
            save_shard(path, make_shard(preset, seed, cfg, world_cfg, render_cfg, recon_cfg),
                       {"preset": preset, "seed": seed})
        done.append({"file": path.name, "preset": preset, "seed": seed})
    index = {"version": SHARD_VERSION, "settings": settings, "shards": done,
             "held_out": [list(h) for h in HELD_OUT]}
    tmp = index_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(index, indent=2) + "\n")
    os.replace(tmp, index_path)
    return index_path
