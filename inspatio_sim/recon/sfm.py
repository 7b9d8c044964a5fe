"""Structure-from-motion with pycolmap: SIFT features, matching, global or incremental mapping, one shared camera.

Frames are written as PNG files into a work directory, COLMAP builds its database there, and the largest model is
converted to this package's conventions: ``T_world_camera`` poses (OpenCV camera, SfM world frame and units) and
intrinsics with pixel centres at integer coordinates (COLMAP puts them at ``+0.5``). Results are cached in the work
directory under a hash of the frames, masks and options, so re-running with the same input skips SfM.

Mapping: ``auto`` (default) runs COLMAP's global and incremental mappers on the same matches (mapping is cheap next
to matching) and keeps the global model when the two camera paths agree, else the incremental one
(:func:`_choose_model`). Measured on the oracle room: global mapping is the more accurate when it succeeds (ATE 0.13%
of the path at 60 frames vs. 0.35-0.48% for incremental) but with coarser frame spacing (40 frames over the same path)
it mis-scaled path segments in 5 of 5 runs (ATE 4-15%), while incremental stayed at 0.4%.

Matching: ``sequential`` (default: each frame with its ``overlap`` successors and with the frames 2, 4, 8, ...
later, which closes loops along a video path) or ``exhaustive`` (every pair). With ``vocab_tree`` set to a COLMAP
vocabulary-tree file, sequential matching adds COLMAP's loop detection (no tree ships with the wheel, and none is
downloaded). Measured on the oracle room, whose walls repeat photo textures: exhaustive matching and all-pairs loop
candidates among keyframes both accepted wrong matches between different walls with the same texture (ATE 12-16% of
the path), while the sequential pairs gave 0.13-0.18%. Repetitive real scenes behave the same, hence the default.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pycolmap

from inspatio_sim.errors import ConfigError, ReconError
from inspatio_sim.fileio import atomic_write

log = logging.getLogger(__name__)
MIN_MEDIAN_FEATURES = 80
CACHE_VERSION = 2
MAPPER_AGREEMENT_PERCENT = 1.5
"""Largest disagreement (ATE % of path) between the global and incremental models for the global one to be kept."""


@dataclass
class SfMOptions:
    """pycolmap settings (hydra keys ``recon.mapper``, ``matcher``, ``overlap``, ``max_features``, ``seed``)."""

    mapper: str = "auto"
    matcher: str = "sequential"
    overlap: int = 10
    vocab_tree: str | None = None
    max_features: int = 4096
    seed: int = 0
    threads: int = -1

    def validate(self) -> None:
        if self.mapper not in ("auto", "global", "incremental"):
            raise ConfigError(f"recon.mapper must be 'auto', 'global' or 'incremental', got {self.mapper!r}")
        if self.matcher not in ("exhaustive", "sequential"):
            raise ConfigError(f"recon.matcher must be 'sequential' or 'exhaustive', got {self.matcher!r}")
        if self.vocab_tree is not None and not Path(self.vocab_tree).is_file():
            raise ConfigError(f"recon.vocab_tree '{self.vocab_tree}' is not a file; give a COLMAP vocabulary tree "
                              "or null")
        if int(self.overlap) < 1 or int(self.max_features) < 64:
            raise ConfigError(f"recon.overlap must be >= 1 and recon.max_features >= 64, got {self.overlap}, "
                              f"{self.max_features}")


@dataclass
class SfMResult:
    """The largest SfM model, in this package's conventions (SfM world frame, arbitrary scale).

    Attributes:
        registered: ``(M,)`` int indices of the registered frames (ascending).
        poses: ``(M, 4, 4)`` float64 ``T_world_camera`` of the registered frames.
        K: ``(3, 3)`` float64 intrinsics (pixel centres at integers).
        points: ``(P, 3)`` float64 sparse 3-D points.
        observations: per registered frame an ``(m, 3)`` float32 array ``(u, v, z)``: pixel and z-depth of the
            sparse points it sees.
        num_features: ``(N,)`` SIFT features per input frame.
        reprojection_error: Mean reprojection error in pixels.
        dropped: frame index -> why it was not registered.
        seconds: stage -> wall time (``extract``, ``match``, ``map``) of the run that computed it.
        cached: True when loaded from the cache.
        mapper: The mapping pipeline whose model was kept (``global`` or ``incremental``).
        mapper_scores: Per pipeline tried: registered frames, inlier observations, reprojection error.
    """

    registered: np.ndarray
    poses: np.ndarray
    K: np.ndarray
    points: np.ndarray
    observations: list[np.ndarray]
    num_features: np.ndarray
    reprojection_error: float
    dropped: dict[int, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    cached: bool = False
    mapper: str = ""
    mapper_scores: dict[str, dict[str, float]] = field(default_factory=dict)


def run_sfm(images: np.ndarray, K: np.ndarray | None, options: SfMOptions, workdir: Path,
            masks: np.ndarray | None = None, force: bool = False, progress: bool = True) -> SfMResult:
    """Camera poses and sparse points for ``images (N, H, W, 3)`` uint8 RGB.

    Args:
        images: Frames in time order.
        K: Known ``(3, 3)`` intrinsics (kept fixed), or None to estimate one shared focal length.
        options: Matching and mapping settings.
        workdir: Directory for the COLMAP database, models and the cache.
        masks: Optional ``(N, H, W)`` bool, True where features must NOT be extracted (moving objects).
        force: Recompute even when a cached result exists.
        progress: Print stage progress.
    """
    options.validate()
    n, h, w = images.shape[:3]
    key = _cache_key(images, K, options, masks)
    run_dir = Path(workdir) / f"sfm-{key}"
    cache_file = run_dir / "result.npz"
    if cache_file.exists() and not force:
        try:
            result = _load_result(cache_file)
            log.info("structure-from-motion: reusing the cached result in %s", run_dir)
            return result
        except (OSError, ValueError, KeyError) as e:
            log.warning("ignoring an unreadable SfM cache %s: %s", cache_file, e)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    image_dir, mask_dir, model_dir = run_dir / "images", run_dir / "masks", run_dir / "models"
    db_path = run_dir / "database.db"
    for d in (image_dir, model_dir):
        d.mkdir(parents=True)
    names = [f"{i:06d}.png" for i in range(n)]
    for name, img in zip(names, images, strict=True):
        cv2.imwrite(str(image_dir / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    if masks is not None:
        mask_dir.mkdir()
        for name, m in zip(names, masks, strict=True):  # COLMAP: zero pixels are ignored, mask named IMAGE.png
            cv2.imwrite(str(mask_dir / f"{name}.png"), np.where(m, 0, 255).astype(np.uint8))
    pycolmap.set_random_seed(int(options.seed))
    # COLMAP logs every step to stderr; keep warnings and errors unless debugging
    pycolmap.logging.minloglevel = 0 if log.isEnabledFor(logging.DEBUG) else 1
    seconds: dict[str, float] = {}
    device = pycolmap.Device.cpu

    t0 = time.perf_counter()
    reader = pycolmap.ImageReaderOptions()
    if K is not None:
        reader.camera_model = "PINHOLE"
        reader.camera_params = ",".join(f"{v:.8f}" for v in (K[0, 0], K[1, 1], K[0, 2] + 0.5, K[1, 2] + 0.5))
    else:
        # a low initial focal (0.6 x width) converges; COLMAP's default (1.2 x max side) can lock too high
        reader.camera_model = "SIMPLE_PINHOLE"
        reader.default_focal_length_factor = 0.6 * w / max(w, h)
    if masks is not None:
        reader.mask_path = str(mask_dir)
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.num_threads = int(options.threads)
    extraction.sift.max_num_features = int(options.max_features)
    _stage(progress, f"extracting SIFT features from {n} frames")
    pycolmap.extract_features(db_path, image_dir, camera_mode=pycolmap.CameraMode.SINGLE, reader_options=reader,
                              extraction_options=extraction, device=device)
    with pycolmap.Database.open(db_path) as db:
        by_name = {im.name: im.image_id for im in db.read_all_images()}
        num_features = np.array([db.num_keypoints_for_image(by_name[nm]) if nm in by_name else 0 for nm in names])
    seconds["extract"] = time.perf_counter() - t0
    med = float(np.median(num_features))
    if med < MIN_MEDIAN_FEATURES:
        raise ReconError(
            f"too few image features: a median of {med:.0f} SIFT features per frame (need {MIN_MEDIAN_FEATURES}); "
            "the video is textureless, blurred, dark or tiny. Film textured surfaces in good light, or raise "
            "recon.max_size if the frames were downscaled"
        )

    t0 = time.perf_counter()
    matcher = options.matcher
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = int(options.threads)
    _stage(progress, f"matching features ({matcher})")
    if matcher == "exhaustive":
        pycolmap.match_exhaustive(db_path, matching_options=matching, device=device)
    elif options.vocab_tree:
        pairing_seq = pycolmap.SequentialPairingOptions()
        pairing_seq.overlap = int(options.overlap)
        pairing_seq.quadratic_overlap = True
        pairing_seq.loop_detection = True
        pairing_seq.vocab_tree_path = str(options.vocab_tree)
        pycolmap.match_sequential(db_path, matching_options=matching, pairing_options=pairing_seq, device=device)
    else:
        pairs_file = run_dir / "pairs.txt"
        pairs = sequential_pairs(n, int(options.overlap))
        pairs_file.write_text("".join(f"{names[i]} {names[j]}\n" for i, j in pairs))
        pairing = pycolmap.ImportedPairingOptions()
        pairing.match_list_path = str(pairs_file)
        pycolmap.match_image_pairs(db_path, matching_options=matching, pairing_options=pairing, device=device)
    seconds["match"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    mappers = ("global", "incremental") if options.mapper == "auto" else (options.mapper,)
    candidates: dict[str, pycolmap.Reconstruction] = {}
    for mapper in mappers:
        _stage(progress, f"{mapper} mapping")
        models = _map(mapper, db_path, image_dir, model_dir / mapper, options, fixed_intrinsics=K is not None)
        if models:
            candidates[mapper] = max(models.values(), key=lambda r: r.num_reg_images())
    seconds["map"] = time.perf_counter() - t0
    if not candidates:
        raise ReconError(
            "structure-from-motion found no camera path: the frames share too few matches. Typical causes: the "
            "camera did not move (no parallax), it only rotated, or consecutive frames differ too much (lower "
            "recon.stride / raise recon.fps)"
        )
    converted = {m: _convert(r, names, num_features, db_path) for m, r in candidates.items()}
    used, agreement = _choose_model(converted)
    result = converted[used]
    result.seconds = seconds
    result.mapper = used
    result.mapper_scores = {
        m: {"registered": int(r.num_reg_images()), "observations": int(r.compute_num_observations()),
            "reprojection_error": float(r.compute_mean_reprojection_error())}
        for m, r in candidates.items()
    }
    if agreement is not None:
        result.mapper_scores["disagreement_percent_path"] = {"ate": agreement}
    _save_result(cache_file, result)
    shutil.rmtree(image_dir, ignore_errors=True)
    shutil.rmtree(mask_dir, ignore_errors=True)
    return result


def _choose_model(models: dict[str, SfMResult]) -> tuple[str, float | None]:
    """The model to keep and, when both mappers ran, how far their camera paths disagree (ATE % of path).

    Global mapping is the more accurate when it succeeds, and its failure mode is gross (mis-scaled path segments),
    so it is kept when it registers as many frames as incremental mapping and the two paths agree within
    :data:`MAPPER_AGREEMENT_PERCENT` of the path length. When they disagree, the model with more registered frames,
    then more inlier observations, is kept (a model with mis-scaled segments explains fewer of them).
    """
    from inspatio_sim.metrics import trajectory_errors

    if len(models) == 1:
        return next(iter(models)), None
    g, inc = models["global"], models["incremental"]
    common, gi, ii = np.intersect1d(g.registered, inc.registered, return_indices=True)
    if len(common) < 3:
        return ("global" if len(g.registered) > len(inc.registered) else "incremental"), None
    ate = trajectory_errors(g.poses[gi], inc.poses[ii])["ate_percent_path"]
    if len(g.registered) >= len(inc.registered) and ate < MAPPER_AGREEMENT_PERCENT:
        return "global", float(ate)
    return max(models, key=lambda m: (len(models[m].registered), sum(len(o) for o in models[m].observations))), ate


def sequential_pairs(n: int, overlap: int) -> list[tuple[int, int]]:
    """Frame pairs for sequential matching: ``overlap`` successors and jumps of 2, 4, 8, ... frames (COLMAP's
    quadratic overlap). Sorted, unique, ``i < j``."""
    pairs: set[tuple[int, int]] = set()
    for i in range(n):
        for d in range(1, overlap + 1):
            if i + d < n:
                pairs.add((i, i + d))
        d = 2
        while i + d < n:
            pairs.add((i, i + d))
            d *= 2
    return sorted(pairs)


def _stage(progress: bool, msg: str) -> None:
    if progress:
        print(f"  sfm: {msg} ...", flush=True)
    log.debug(msg)


def _map(mapper: str, db_path: Path, image_dir: Path, model_dir: Path, options: SfMOptions,
         fixed_intrinsics: bool) -> dict[int, pycolmap.Reconstruction]:
    model_dir.mkdir(parents=True, exist_ok=True)
    if mapper == "global":
        opts = pycolmap.GlobalPipelineOptions()
        opts.random_seed = int(options.seed)
        opts.num_threads = int(options.threads)
        opts.mapper.global_positioning.use_gpu = False
        opts.mapper.bundle_adjustment.ceres.use_gpu = False
        if fixed_intrinsics:
            ba = opts.mapper.bundle_adjustment
            ba.refine_focal_length = ba.refine_principal_point = ba.refine_extra_params = False
        return pycolmap.global_mapping(db_path, image_dir, model_dir, options=opts)
    opts = pycolmap.IncrementalPipelineOptions()
    opts.random_seed = int(options.seed)
    opts.num_threads = int(options.threads)
    opts.ba_refine_principal_point = False
    if fixed_intrinsics:
        opts.ba_refine_focal_length = opts.ba_refine_extra_params = False
        opts.mapper.abs_pose_refine_focal_length = opts.mapper.abs_pose_refine_extra_params = False
    return pycolmap.incremental_mapping(db_path, image_dir, model_dir, options=opts)


def _convert(rec: pycolmap.Reconstruction, names: list[str], num_features: np.ndarray, db_path: Path) -> SfMResult:
    index = {nm: i for i, nm in enumerate(names)}
    cam = next(iter(rec.cameras.values()))
    p = np.asarray(cam.params, dtype=np.float64)
    if cam.model.name in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
        fx = fy = p[0]
        cx, cy = p[1], p[2]
    else:
        fx, fy, cx, cy = p[:4]
    K = np.array([[fx, 0.0, cx - 0.5], [0.0, fy, cy - 0.5], [0.0, 0.0, 1.0]])
    point_ids = list(rec.points3D.keys())
    points = np.array([rec.points3D[i].xyz for i in point_ids], dtype=np.float64).reshape(-1, 3)
    row = {pid: k for k, pid in enumerate(point_ids)}
    regs = sorted((index[im.name], im) for im in rec.images.values() if im.has_pose)
    poses, obs = [], []
    for _, im in regs:
        cam_from_world = np.vstack([im.cam_from_world().matrix(), [0, 0, 0, 1]])
        poses.append(np.linalg.inv(cam_from_world))
        pts2d = [(p2.xy, row[p2.point3D_id]) for p2 in im.points2D if p2.has_point3D()]
        if pts2d:
            xy = np.array([a for a, _ in pts2d], dtype=np.float64)
            xyz = points[[b for _, b in pts2d]]
            z = xyz @ cam_from_world[2, :3] + cam_from_world[2, 3]
            obs.append(np.column_stack([xy - 0.5, z]).astype(np.float32))
        else:
            obs.append(np.zeros((0, 3), np.float32))
    registered = np.array([i for i, _ in regs], dtype=np.int64)
    dropped = _drop_reasons(names, registered, num_features, db_path)
    return SfMResult(registered=registered, poses=np.array(poses).reshape(-1, 4, 4), K=K, points=points,
                     observations=obs, num_features=num_features,
                     reprojection_error=float(rec.compute_mean_reprojection_error()), dropped=dropped)


def _drop_reasons(names: list[str], registered: np.ndarray, num_features: np.ndarray, db_path: Path) -> dict[int, str]:
    """Why each unregistered frame was left out: few features, few verified matches, or not placed by the mapper."""
    missing = sorted(set(range(len(names))) - set(registered.tolist()))
    if not missing:
        return {}
    with pycolmap.Database.open(db_path) as db:
        id_of = {im.name: im.image_id for im in db.read_all_images()}
        name_of = {v: k for k, v in id_of.items()}
        inliers: dict[int, int] = {}
        pair_ids, counts = db.read_two_view_geometry_num_inliers()
        for pair_id, c in zip(pair_ids, counts, strict=True):
            a, b = pycolmap.pair_id_to_image_pair(pair_id)
            for im in (a, b):
                i = names.index(name_of[im])
                inliers[i] = max(inliers.get(i, 0), int(c))
    reasons = {}
    for i in missing:
        if num_features[i] < MIN_MEDIAN_FEATURES:
            reasons[i] = f"only {int(num_features[i])} features (blur, darkness or no texture)"
        elif inliers.get(i, 0) < 30:
            reasons[i] = f"at most {inliers.get(i, 0)} verified matches with any other frame"
        else:
            reasons[i] = "matched, but the mapper could not place it consistently"
    return reasons


def _cache_key(images: np.ndarray, K: np.ndarray | None, options: SfMOptions, masks: np.ndarray | None) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"v": CACHE_VERSION, "pycolmap": pycolmap.__version__, "shape": images.shape,
                         "options": asdict(options), "K": None if K is None else np.round(K, 6).tolist()},
                        sort_keys=True).encode())
    h.update(np.ascontiguousarray(images).tobytes())
    if masks is not None:
        h.update(np.packbits(masks).tobytes())
    return h.hexdigest()[:16]


def _save_result(path: Path, r: SfMResult) -> None:
    counts = np.array([len(o) for o in r.observations], dtype=np.int64)
    obs = np.concatenate(r.observations) if r.observations else np.zeros((0, 3), np.float32)
    meta = json.dumps({"reprojection_error": r.reprojection_error, "dropped": {str(k): v for k, v in r.dropped.items()},
                       "seconds": r.seconds, "mapper": r.mapper, "mapper_scores": r.mapper_scores})
    with atomic_write(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, registered=r.registered, poses=r.poses, K=r.K, points=r.points, obs=obs, obs_counts=counts,
                 num_features=r.num_features, meta=np.array(meta))


def _load_result(path: Path) -> SfMResult:
    with np.load(path, allow_pickle=False) as d:
        meta = json.loads(str(d["meta"]))
        splits = np.cumsum(d["obs_counts"])[:-1]
        return SfMResult(registered=d["registered"], poses=d["poses"], K=d["K"], points=d["points"],
                         observations=list(np.split(d["obs"], splits)), num_features=d["num_features"],
                         reprojection_error=float(meta["reprojection_error"]),
                         dropped={int(k): v for k, v in meta["dropped"].items()}, seconds=meta["seconds"],
                         cached=True, mapper=meta["mapper"], mapper_scores=meta["mapper_scores"])
