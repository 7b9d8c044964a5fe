"""``inspatio-sim reconstruct``: a video (or image folder) → a Scene on disk, with a report.

Stages (each timed, each with progress): decode → motion check → structure-from-motion (pycolmap) → gravity and
metric scale → dense depth (plane-sweep MVS) → dynamic masks (flow vs. rigid flow) → Scene. The output path is
checked before any work (:func:`~inspatio_sim.paths.check_output_path`). The Scene (``scene.npz``) and
``report.json`` are written atomically at the end; the SfM cache lives in ``OUTPUT/.cache`` and is reused when the
same frames and options come again. A run that fails or is interrupted (Ctrl-C acts within a fraction of a second at
every stage, structure-from-motion included) leaves the output folder as it found it: a folder it created is removed,
and in an existing one only what this run added to ``.cache`` goes.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from omegaconf import DictConfig, OmegaConf

from inspatio_sim.config import to_dataclass
from inspatio_sim.conventions import intrinsics_from_fov, intrinsics_matrix, scale_intrinsics
from inspatio_sim.errors import ConfigError, ReconError
from inspatio_sim.fileio import write_json
from inspatio_sim.paths import check_output_path
from inspatio_sim.recon.align import align_to_gravity
from inspatio_sim.recon.dynamic import DynamicConfig, dynamic_masks
from inspatio_sim.recon.frames import FrameSelection, FrameSet, read_frames
from inspatio_sim.recon.mvs import MVSConfig, estimate_depth
from inspatio_sim.recon.sfm import MIN_MEDIAN_FEATURES, SfMOptions, SfMResult, run_sfm
from inspatio_sim.scene import Scene, SceneMeta

log = logging.getLogger(__name__)
REPORT_FILENAME = "report.json"
STATIC_FLOW_PX = 0.5
"""Median optical flow (pixels at 160 px width) below which the camera counts as static."""
MIN_BASELINE_RATIO = 0.05
"""Camera-path extent / median scene depth below which the clip has no usable parallax (pure rotation)."""
MIN_POINTS_PER_FRAME = 8
"""Triangulated SfM points per registered frame below which the clip has no usable parallax. Measured on oracle
clips at 160x120: a pure rotation gave 2 points per frame (extent/depth 0.035), a walk 29 (extent/depth 1.0)."""


@dataclass
class ReconConfig:
    """The ``recon.*`` keys (schema: ``config_schema.ReconSection``). They are flat; frame-sampling keys go to
    :class:`FrameSelection`, pycolmap keys to :class:`SfMOptions`, the ``mvs`` and ``dynamic`` nodes to their stages'
    configs, and the rest are fields here."""

    frames: FrameSelection = field(default_factory=FrameSelection)
    sfm: SfMOptions = field(default_factory=SfMOptions)
    mvs: MVSConfig = field(default_factory=MVSConfig)
    dynamic: DynamicConfig = field(default_factory=DynamicConfig)
    intrinsics: str | None = None  # known intrinsics "fx,fy,cx,cy" in pixels of the original video (null = estimate)
    hfov_deg: float | None = None  # known horizontal field of view (degrees) without intrinsics (null = estimate)
    camera_height: float = 1.5  # metric scale: camera height above the dominant ground plane (metres)
    scale: float | None = None  # metric scale: multiply the SfM units by this instead of using camera_height
    min_registered: float = 0.5  # fail when fewer than this fraction of frames register

    @classmethod
    def from_node(cls, node: DictConfig | dict[str, Any]) -> ReconConfig:
        """Build from the ``recon`` config node; unknown keys raise :class:`ConfigError`."""
        data = OmegaConf.to_container(node if isinstance(node, DictConfig) else OmegaConf.create(dict(node)),
                                      resolve=True)
        own = {f.name for f in fields(cls)} - {"frames", "sfm", "mvs", "dynamic"}
        parts: dict[type, dict[str, Any]] = {FrameSelection: {}, SfMOptions: {}, cls: {}}
        for key, value in data.items():
            if key in ("mvs", "dynamic"):
                continue
            target = next((c for c in (FrameSelection, SfMOptions) if key in {f.name for f in fields(c)}),
                          cls if key in own else None)
            if target is None:
                raise ConfigError(f"unknown key recon.{key}")
            parts[target][key] = value
        rc = cls(frames=FrameSelection(**parts[FrameSelection]), sfm=SfMOptions(**parts[SfMOptions]),
                 mvs=to_dataclass(MVSConfig, data.get("mvs", {}), "recon.mvs"),
                 dynamic=to_dataclass(DynamicConfig, data.get("dynamic", {}), "recon.dynamic"), **parts[cls])
        rc.validate()
        return rc

    def validate(self) -> None:
        self.frames.validate()
        self.sfm.validate()
        self.mvs.validate()
        self.dynamic.validate()
        if not 0 < float(self.min_registered) <= 1:
            raise ConfigError(f"recon.min_registered must be in (0, 1], got {self.min_registered}")
        if not float(self.camera_height) > 0:
            raise ConfigError(f"recon.camera_height must be positive metres, got {self.camera_height}")
        if self.scale is not None and not float(self.scale) > 0:
            raise ConfigError(f"recon.scale must be positive or null, got {self.scale}")
        if self.hfov_deg is not None and not 1 < float(self.hfov_deg) < 179:
            raise ConfigError(f"recon.hfov_deg must be within (1, 179) degrees or null, got {self.hfov_deg}")
        if self.intrinsics is not None:
            parse_intrinsics(self.intrinsics)


def parse_intrinsics(text: str | Any) -> np.ndarray:
    """``"fx,fy,cx,cy"`` (pixels, pixel centres at integers) → K."""
    try:
        vals = [float(v) for v in str(text).replace(" ", "").split(",")]
    except ValueError:
        vals = []
    if len(vals) != 4 or not all(np.isfinite(vals)) or vals[0] <= 0 or vals[1] <= 0:
        raise ConfigError(f"recon.intrinsics must be 'fx,fy,cx,cy' in pixels with fx, fy > 0, got {text!r}")
    return intrinsics_matrix(*vals)


def reconstruct(source: str | Path, output: str | Path, cfg: DictConfig | dict[str, Any], device: str = "cpu",
                force: bool = False, progress: bool = True, verbose: bool = False) -> tuple[Scene, dict[str, Any]]:
    """Reconstruct ``source`` into ``output/scene.npz`` (+ ``report.json``); return the Scene and the report.

    Args:
        source: Video file or image folder.
        output: Output directory.
        cfg: The ``recon`` config node.
        device: Torch device of the dense stages.
        force: Recompute structure-from-motion even when cached.
        progress: Stage messages and progress bars.
        verbose: Show COLMAP's own log on the terminal.

    Raises:
        OutputPathError: ``output`` cannot be written (checked before any work).
        ReconError: The input cannot be reconstructed; the output folder is left as it was.
    """
    rc = ReconConfig.from_node(cfg)
    out = check_output_path(output, "dir")
    with _leave_as_found(out):
        return _reconstruct(source, out, rc, device, force, progress, verbose)


def _reconstruct(source: str | Path, out: Path, rc: ReconConfig, device: str, force: bool, progress: bool,
                 verbose: bool) -> tuple[Scene, dict[str, Any]]:
    seconds: dict[str, float] = {}
    t_all = time.perf_counter()

    def stage(name: str, msg: str) -> float:
        if progress:
            print(f"[{name}] {msg}", flush=True)
        return time.perf_counter()

    t0 = stage("decode", f"reading {source}")
    fs = read_frames(source, rc.frames, progress=progress)
    seconds["decode"] = time.perf_counter() - t0
    w, h = fs.size
    K_known = _known_intrinsics(rc, fs)

    t0 = stage("motion", "checking texture and camera motion")
    _check_texture(fs.images)
    _check_motion(fs.images)
    seconds["motion_check"] = time.perf_counter() - t0

    t0 = stage("sfm", f"structure-from-motion on {len(fs.images)} frames {w}x{h}")
    sfm = run_sfm(fs.images, K_known, rc.sfm, out / ".cache", force=force, progress=progress, verbose=verbose,
                  timestamps=fs.timestamps)
    seconds["sfm"] = time.perf_counter() - t0
    n_in, n_reg = sfm.kept[1] - sfm.kept[0] + 1, len(sfm.registered)  # all frames, or the segment kept after a cut
    if n_reg < max(3, rc.min_registered * n_in):
        reasons = "; ".join(f"frame {i}: {r}" for i, r in list(sfm.dropped.items())[:5])
        raise ReconError(f"only {n_reg} of {n_in} frames registered (need {rc.min_registered:.0%}): {reasons}. "
                         "Lower recon.stride (more overlap between frames) or film with more texture")
    _check_parallax(sfm)

    t0 = stage("align", "gravity, metric scale (camera height) and heading")
    align = align_to_gravity(sfm.poses, sfm.points, float(rc.camera_height), rc.scale,
                             np.random.default_rng(int(rc.sfm.seed)))
    poses = align.apply_poses(sfm.poses)
    sparse = [np.column_stack([o[:, :2], o[:, 2] * align.scale]).astype(np.float32) for o in sfm.observations]
    seconds["align"] = time.perf_counter() - t0

    frames = fs.images[sfm.registered]
    t0 = stage("depth", f"plane-sweep multi-view stereo on {device}")
    depth, confidence = estimate_depth(frames, sfm.K, poses, sparse, rc.mvs, device=device, progress=progress)
    seconds["depth"] = time.perf_counter() - t0

    t0 = stage("dynamic", "moving-object masks (optical flow vs. camera motion)")
    dynamic = dynamic_masks(frames, depth, sfm.K, poses, rc.dynamic, confidence=confidence, progress=progress)
    seconds["dynamic"] = time.perf_counter() - t0
    seconds["total"] = time.perf_counter() - t_all

    times = fs.timestamps[sfm.registered]
    fps = float(1.0 / np.median(np.diff(times))) if len(times) > 1 else 0.0
    report = _report(source, fs, sfm, align, depth, dynamic, seconds, K_known is not None)
    scene = Scene(frames=frames, timestamps=times, K=sfm.K, poses=poses, depth=depth.astype(np.float32),
                  confidence=confidence.astype(np.float32), dynamic_mask=dynamic.astype(bool),
                  meta=SceneMeta(source=str(source), fps=fps, scale_origin=align.scale_origin,
                                 extra={"reconstruction": report}))
    scene.validate()
    scene.save(out)
    write_json(out / REPORT_FILENAME, report)
    return scene, report


def format_report(r: dict[str, Any]) -> str:
    """A short human-readable summary of a reconstruction report."""
    lines = [
        f"reconstructed {r['source']}: {r['registered_frames']}/{r['input_frames']} frames registered "
        f"({r['frame_size'][0]}x{r['frame_size'][1]}), {r['mapper']} mapper, reprojection error "
        f"{r['reprojection_error_px']:.2f} px",
        f"  focal {r['focal_px']:.1f} px ({r['intrinsics']}), scale {r['scale_origin']}, ground plane "
        f"{'found' if r['ground_found'] else 'NOT found'}, median camera height {r['camera_height_m']:.2f} m",
        f"  depth on {r['depth_valid_fraction']:.0%} of pixels, dynamic {r['dynamic_fraction']:.2%} of pixels",
    ]
    if "train_view_psnr" in r:  # added above the pipeline (inspatio_sim.recon_report), where the World is built
        lines.append(f"  World re-rendered at the recorded views: {r['train_view_psnr']:.1f} dB PSNR against the "
                     f"frames, {r['train_view_coverage']:.0%} of pixels covered")
    lines += [
        "  seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in r["seconds"].items()),
    ]
    lines += [f"  dropped frame {k}: {v}" for k, v in r["dropped"].items()]
    lines += [f"  note: {n}" for n in r["notes"]]
    return "\n".join(lines)


def _known_intrinsics(rc: ReconConfig, fs: FrameSet) -> np.ndarray | None:
    w, h = fs.size
    if rc.intrinsics is not None:
        return scale_intrinsics(parse_intrinsics(rc.intrinsics), fs.scale, fs.scale)
    if rc.hfov_deg is not None:
        return intrinsics_from_fov(w, h, float(rc.hfov_deg))
    return None


def _check_texture(images: np.ndarray) -> None:
    """Refuse textureless input early: SIFT keypoints on a few frames (the same detector COLMAP uses)."""
    sift = cv2.SIFT_create(nfeatures=2000)
    probes = np.unique(np.linspace(0, len(images) - 1, min(5, len(images))).round().astype(int))
    counts = [len(sift.detect(cv2.cvtColor(images[i], cv2.COLOR_RGB2GRAY), None)) for i in probes]
    if float(np.median(counts)) < MIN_MEDIAN_FEATURES:
        raise ReconError(
            f"too few image features: a median of {np.median(counts):.0f} SIFT keypoints per frame (need "
            f"{MIN_MEDIAN_FEATURES}); the video is textureless, blurred, dark or tiny. Film textured surfaces in good "
            "light, or raise recon.max_size if the frames were downscaled"
        )


def _check_motion(images: np.ndarray) -> None:
    """Refuse a static camera: median DIS optical flow between the first frame and later frames, at 160 px width."""
    h, w = images.shape[1:3]
    s = 160.0 / w
    size = (160, max(8, round(h * s)))
    grey = [cv2.resize(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA) for im in images]
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    probes = np.unique(np.linspace(1, len(grey) - 1, min(6, len(grey) - 1)).round().astype(int))
    motion = max(float(np.median(np.linalg.norm(dis.calc(grey[0], grey[i], None), axis=-1))) for i in probes)
    if motion < STATIC_FLOW_PX:
        raise ReconError(f"the camera does not move (median image motion {motion:.2f} px at 160 px width): a static "
                         "camera has no parallax to recover depth from. Move the camera through the scene (walk, "
                         "or slide sideways) while filming")


def _check_parallax(sfm: SfMResult) -> None:
    """Refuse a (nearly) pure rotation: the camera centres span too little compared with the scene depth."""
    centres = sfm.poses[:, :3, 3]
    extent = float(np.linalg.norm(centres.max(axis=0) - centres.min(axis=0)))
    z = np.concatenate([o[:, 2] for o in sfm.observations if len(o)]) if sfm.observations else np.zeros(0)
    depth = float(np.median(z[z > 0])) if np.any(z > 0) else 0.0
    per_frame = len(sfm.points) / max(len(sfm.registered), 1)
    ratio = extent / depth if depth > 0 else 0.0
    if ratio < MIN_BASELINE_RATIO or per_frame < MIN_POINTS_PER_FRAME:
        raise ReconError(
            f"the camera only rotated or barely moved (its path spans {ratio:.1%} of the scene depth, need "
            f"{MIN_BASELINE_RATIO:.0%}; {per_frame:.1f} triangulated points per frame, need {MIN_POINTS_PER_FRAME}): "
            "depth cannot be recovered without parallax, and inspatio-sim does not build panorama worlds. Film "
            "while walking or sliding the camera sideways"
        )


def _report(source: str | Path, fs: FrameSet, sfm: SfMResult, align: Any, depth: np.ndarray, dynamic: np.ndarray,
            seconds: dict[str, float], intrinsics_given: bool) -> dict[str, Any]:
    return {
        "source": str(source),
        "input_frames": len(fs.images),
        "registered_frames": len(sfm.registered),
        "registered_fraction": float(len(sfm.registered) / len(fs.images)),
        "dropped": {str(k): v for k, v in sfm.dropped.items()},
        "frame_size": list(fs.size),
        "source_size": list(fs.source_size),
        "focal_px": float(sfm.K[0, 0]),
        "intrinsics": "given" if intrinsics_given else "estimated",
        "reprojection_error_px": float(sfm.reprojection_error),
        "mapper": sfm.mapper,
        "mapper_scores": sfm.mapper_scores,
        "sparse_points": len(sfm.points),
        "sfm_cached": bool(sfm.cached),
        "scale_origin": align.scale_origin,
        "metres_per_sfm_unit": float(align.scale),
        "ground_found": bool(align.ground_found),
        "ground_inliers": float(align.ground_inliers),
        "camera_height_m": float(align.camera_height),
        "depth_valid_fraction": float((depth > 0).mean()),
        "dynamic_fraction": float(dynamic.mean()),
        "seconds": {k: round(v, 3) for k, v in {**{f"sfm_{k}": v for k, v in sfm.seconds.items()}, **seconds}.items()},
        "segments": [list(s) for s in sfm.segments],
        "notes": list(fs.notes) + list(sfm.notes) + list(align.notes),
    }


@contextmanager
def _leave_as_found(out: Path) -> Iterator[None]:
    """On any exception (Ctrl-C included) undo what the run added under ``out``: the folders it created (``out``
    and missing parents), else ``out/.cache`` if it created it, else the entries it added to ``out/.cache``.
    ``scene.npz`` and ``report.json`` are only written (atomically) at the very end."""
    created = next((q for q in reversed([out, *out.parents]) if not q.exists()), None)
    cache = out / ".cache"
    before = set(os.listdir(cache)) if cache.is_dir() else None
    try:
        yield
    except BaseException:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        elif before is None:
            shutil.rmtree(cache, ignore_errors=True)
        else:
            for name in set(os.listdir(cache)) - before:
                entry = cache / name
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
        raise
