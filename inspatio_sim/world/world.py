"""World: the explicit 4D state built from a Scene, resident on a torch device.

Layers:
  * static: surface points fused across frames (confidence-weighted, deduplicated on voxels), multi-resolution;
  * sky (the backdrop): static pixels without depth, in every direction (sky, a window's view, a wall that has no
    depth), placed on a sphere of radius ``sky_distance`` around the recorded path (an environment map: far enough
    that its parallax is negligible), so re-rendering a recorded view returns the video's colours there. It is
    never part of the occupancy grid or the signed distance field (no depth, no geometry);
  * dynamic: points of the moving regions (Scene dynamic masks), one segment per video frame;
plus an occupancy grid with a signed distance field, the ground plane and the trusted region. What the world model
writes back lives with the model step of each Simulator (:mod:`inspatio_sim.model.writeback`), per agent.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from inspatio_sim.camera import pixel_rays
from inspatio_sim.errors import WorldError
from inspatio_sim.ground import GroundPlane, fit_ground_plane
from inspatio_sim.scene import Scene, SceneMeta
from inspatio_sim.world.occupancy import OccupancyGrid, build_occupancy
from inspatio_sim.world.splats import SplatCloud, build_frame_cloud, build_lod_cloud, concat_clouds
from inspatio_sim.world.timeline import TIME_MODES, frame_index

log = logging.getLogger(__name__)


@dataclass
class WorldConfig:
    """How a World is built from a Scene (hydra group ``world``).

    Attributes:
        voxel_size: Finest point spacing in metres; ``None`` = ``voxel_footprint_ratio`` times the Scene's median
            pixel footprint (depth / fx).
        voxel_footprint_ratio: Finest spacing relative to the median pixel footprint when ``voxel_size`` is
            ``None``; below 1, the fused colours keep detail finer than a pixel (sharper renders, more points).
        lod_levels: Number of levels of detail (each multiplies the point spacing by sqrt(2)).
        chunk_size: Edge of the cubic chunks whose level of detail is chosen per camera (metres).
        block_size: Points per block, the unit of frustum culling and gathering.
        min_confidence: Depth pixels below this confidence are ignored.
        edge_threshold: Relative depth jump to a 4-neighbour above which a pixel is a depth edge; edge pixels
            (mixed colours) get ``edge_weight`` in the fusion.
        edge_weight: Fusion weight of depth-edge pixels relative to others.
        occupancy_voxel: Occupancy/SDF voxel edge (metres).
        occupancy_min_points: Static points needed to call a voxel occupied.
        trusted_min_views: Frames that must see a free voxel for it to be trusted.
        sky: Build the sky/backdrop layer from the depth-less static pixels (every viewing direction).
        sky_distance: Radius (metres) of the backdrop sphere around the mean camera position; ``None`` = four times
            the scene radius (distance of the farthest static point), at least 20 m. Keep it below ``render.far``.
            Renders report depth 0 (no geometry) beyond ``sky_distance - scene radius``, i.e. on the backdrop.
        time_mode: Scene time mode, one of ``loop``, ``pingpong``, ``clamp``, ``frozen``.
        frozen_time: Video time (seconds) shown in ``frozen`` mode.
        seed: Seed of the random choices (ground-plane RANSAC).
    """

    voxel_size: float | None = None
    voxel_footprint_ratio: float = 0.7
    lod_levels: int = 10
    chunk_size: float = 0.5
    block_size: int = 64
    min_confidence: float = 0.5
    edge_threshold: float = 0.05
    edge_weight: float = 0.1
    occupancy_voxel: float = 0.05
    occupancy_min_points: int = 1
    trusted_min_views: int = 3
    sky: bool = True
    sky_distance: float | None = None
    time_mode: str = "loop"
    frozen_time: float = 0.0
    seed: int = 0

    def validate(self) -> None:
        from inspatio_sim.errors import ConfigError

        if self.time_mode not in TIME_MODES:
            raise ConfigError(f"world.time_mode must be one of {', '.join(TIME_MODES)}, got '{self.time_mode}'")
        for key in ("chunk_size", "occupancy_voxel", "voxel_footprint_ratio"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"world.{key} must be > 0, got {getattr(self, key)}")
        if self.sky_distance is not None and not self.sky_distance > 0:
            raise ConfigError(f"world.sky_distance must be > 0 or null (auto), got {self.sky_distance}")
        if self.voxel_size is not None and not self.voxel_size > 0:
            raise ConfigError(f"world.voxel_size must be > 0 or null (auto), got {self.voxel_size}")
        if self.block_size < 1:
            raise ConfigError(f"world.block_size must be >= 1, got {self.block_size}")
        if self.lod_levels < 1:
            raise ConfigError(f"world.lod_levels must be >= 1, got {self.lod_levels}")


@dataclass
class World:
    """Explicit 4D state on ``device``.

    Attributes:
        meta: Metadata of the source Scene.
        K: ``(3, 3)`` float64 intrinsics of the Scene frames (numpy).
        image_size: ``(H, W)`` of the Scene frames.
        timestamps: ``(N,)`` float64 frame times (seconds).
        poses: ``(N, 4, 4)`` float32 Scene camera poses ``T_world_camera``.
        static, sky, dynamic: the point layers (``sky`` is the backdrop of depth-less pixels).
        scene_radius: Distance (metres) of the farthest static point from the mean camera position.
        sky_distance: Radius (metres) of the backdrop sphere (see :class:`WorldConfig`).
        occupancy: :class:`OccupancyGrid` with SDF and trusted region.
        ground: :class:`GroundPlane`, or ``None`` when the Scene shows no near-horizontal ground.
        config: The :class:`WorldConfig` used.
    """

    meta: SceneMeta
    K: np.ndarray
    image_size: tuple[int, int]
    timestamps: torch.Tensor
    poses: torch.Tensor
    static: SplatCloud
    sky: SplatCloud
    dynamic: SplatCloud
    occupancy: OccupancyGrid
    ground: GroundPlane | None
    config: WorldConfig
    scene_radius: float = 0.0
    sky_distance: float = 0.0
    _cloud: SplatCloud | None = field(default=None, repr=False)

    @property
    def device(self) -> torch.device:
        return self.timestamps.device

    @property
    def num_frames(self) -> int:
        return int(self.timestamps.shape[0])

    def frame_at(self, sim_time: torch.Tensor) -> torch.Tensor:
        """Scene frame index ``(B,)`` shown at simulation times ``(B,)`` seconds (per ``config.time_mode``)."""
        return frame_index(sim_time.to(self.device), self.timestamps, self.config.time_mode, self.config.frozen_time)

    def cloud(self) -> SplatCloud:
        """All layers as one renderable :class:`SplatCloud` (built once, on first use)."""
        if self._cloud is None:
            self._cloud = concat_clouds([self.static, self.sky, self.dynamic])
        return self._cloud


def build_world(
    scene: Scene, config: WorldConfig | None = None, device: str | torch.device = "cpu", progress: bool = False
) -> World:
    """Build a :class:`World` from a validated Scene on ``device`` (``progress``: a bar over the build stages).

    Raises:
        WorldError: when the Scene has no usable static depth (an empty world).
    """
    cfg = config or WorldConfig()
    cfg.validate()
    scene.validate()
    dev = torch.device(device)
    K = torch.as_tensor(scene.K, dtype=torch.float32, device=dev)
    poses = torch.as_tensor(scene.poses, dtype=torch.float32, device=dev)
    depth = torch.as_tensor(scene.depth, device=dev)
    conf = torch.as_tensor(scene.confidence, device=dev)
    dyn = torch.as_tensor(scene.dynamic_mask, device=dev)
    valid = (depth > 0) & (conf >= cfg.min_confidence)
    if not (valid & ~dyn).any():
        raise WorldError(
            "the Scene has no static pixel with valid depth and confidence >= world.min_confidence "
            f"({cfg.min_confidence}); the World would be empty"
        )
    bar = tqdm(total=4, desc="build world", unit="stage", disable=not progress)
    weight = conf * torch.where(_depth_edges(depth, cfg.edge_threshold), cfg.edge_weight, 1.0)
    voxel0 = cfg.voxel_size or cfg.voxel_footprint_ratio * _median_footprint(depth, valid, float(scene.K[0, 0]))

    xyz, rgb, w, frame = _backproject(scene, poses, K, depth, valid, weight, dev)
    is_dyn = dyn[valid]
    bar.update()
    static = build_lod_cloud(xyz[~is_dyn], rgb[~is_dyn], w[~is_dyn], voxel0=voxel0, num_levels=cfg.lod_levels,
                             chunk_size=cfg.chunk_size, block_size=cfg.block_size)
    dynamic = build_frame_cloud(xyz[is_dyn], rgb[is_dyn], frame[is_dyn], voxel0=voxel0, block_size=cfg.block_size)
    finest, _ = static.points(level=0)
    centre = poses[:, :3, 3].mean(0)
    scene_radius = float((finest - centre).norm(dim=1).max())
    sky_distance = cfg.sky_distance or max(4.0 * scene_radius, 20.0)
    sky = (_sky_layer(scene, poses, K, depth, dyn, voxel0, sky_distance, cfg) if cfg.sky
           else SplatCloud.empty(dev, cfg.block_size))
    bar.update()
    occupancy = build_occupancy(
        finest, torch.where(valid, depth, 0.0), valid & ~dyn, poses, K, voxel=cfg.occupancy_voxel,
        min_points=cfg.occupancy_min_points, trusted_min_views=cfg.trusted_min_views,
    )
    bar.update()
    try:
        ground: GroundPlane | None = fit_ground_plane(finest.cpu().numpy(), np.random.default_rng(cfg.seed))
    except WorldError as e:
        log.warning("World has no ground plane (%s); ground-following motion will be unavailable", e)
        ground = None
    bar.update()
    bar.close()
    return World(
        meta=scene.meta, K=scene.K.copy(), image_size=(scene.height, scene.width),
        timestamps=torch.as_tensor(scene.timestamps, dtype=torch.float64, device=dev), poses=poses,
        static=static, sky=sky, dynamic=dynamic, occupancy=occupancy,
        ground=ground, config=cfg, scene_radius=scene_radius, sky_distance=sky_distance,
    )


def _sky_layer(
    scene: Scene, poses: torch.Tensor, K: torch.Tensor, depth: torch.Tensor, dyn: torch.Tensor, voxel0: float,
    distance: float, cfg: WorldConfig,
) -> SplatCloud:
    """The backdrop: depth-less static pixels (any viewing direction) on a sphere of radius ``distance`` around the
    mean camera position; spacing and chunks scaled to that distance. Pixels of moving objects are left out (their
    colour belongs to one moment, not to the background)."""
    device = depth.device
    rays = pixel_rays(K, *depth.shape[1:])
    dirs = torch.einsum("nij,hwj->nhwi", poses[:, :3, :3], rays / rays.norm(dim=-1, keepdim=True))
    mask = (depth == 0) & ~dyn
    if not mask.any():
        return SplatCloud.empty(device, cfg.block_size)
    centre = poses[:, :3, 3].mean(0)
    xyz = centre + dirs[mask] * distance
    rgb = torch.as_tensor(scene.frames, device=device)[mask].float()
    voxel = cfg.voxel_footprint_ratio * distance / float(K[0, 0])
    return build_lod_cloud(xyz, rgb, torch.ones(xyz.shape[0], device=device), voxel0=voxel,
                           num_levels=cfg.lod_levels, chunk_size=cfg.chunk_size * voxel / voxel0,
                           block_size=cfg.block_size)


def _depth_edges(depth: torch.Tensor, threshold: float) -> torch.Tensor:
    """``(N, H, W)`` bool: pixels whose depth differs from a 4-neighbour by more than ``threshold`` (relative)."""
    d = depth
    edge = torch.zeros_like(d, dtype=torch.bool)
    for dim in (1, 2):
        a = d.narrow(dim, 0, d.shape[dim] - 1)
        b = d.narrow(dim, 1, d.shape[dim] - 1)
        jump = (a - b).abs() > threshold * torch.minimum(a, b).clamp(min=1e-6)
        edge.narrow(dim, 0, d.shape[dim] - 1).logical_or_(jump)
        edge.narrow(dim, 1, d.shape[dim] - 1).logical_or_(jump)
    return edge


def _median_footprint(depth: torch.Tensor, valid: torch.Tensor, fx: float) -> float:
    """Median size (metres) of a pixel on the surface it sees: depth / fx."""
    sample = depth[valid]
    if sample.numel() > 1_000_000:
        sample = sample[:: math.ceil(sample.numel() / 1_000_000)]
    return float(sample.median()) / fx


def _backproject(
    scene: Scene, poses: torch.Tensor, K: torch.Tensor, depth: torch.Tensor, valid: torch.Tensor,
    weight: torch.Tensor, device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """World points ``(M, 3)``, colours ``(M, 3)``, weights ``(M,)`` and frame ids ``(M,)`` of all valid pixels."""
    n, h, w = depth.shape
    rays = pixel_rays(K, h, w)
    frame_ids = torch.arange(n, device=device)[:, None, None].expand(n, h, w)
    pc = rays[None] * depth[..., None]  # (N, H, W, 3) camera frame
    pw = torch.einsum("nij,nhwj->nhwi", poses[:, :3, :3], pc) + poses[:, None, None, :3, 3]
    rgb = torch.as_tensor(scene.frames, device=device)
    return pw[valid], rgb[valid].float(), weight[valid], frame_ids[valid]
