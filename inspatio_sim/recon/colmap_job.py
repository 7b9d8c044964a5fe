"""The native side of structure-from-motion: pycolmap feature extraction, matching and mapping in a child process.

Run as ``python -m inspatio_sim.recon.colmap_job STAGE`` by :func:`inspatio_sim.recon.sfm.run_sfm`, which writes the
frames (``STAGE/images``, optional ``STAGE/masks``) and the job (``STAGE/job.json``: frame names and size, known
intrinsics, :class:`~inspatio_sim.recon.sfm.SfMOptions`, timestamps, progress and verbosity) and terminates this
process at once on Ctrl-C. Outcome: exit 0 with ``STAGE/result.npz``; exit :data:`~inspatio_sim.recon.sfm.EXIT_REFUSED`
with the one-line reason in ``STAGE/failure.txt`` when the input is refused; anything else is a crash.

Ctrl-C (SIGINT) is ignored here: the parent decides, and the child runs in its own session so a terminal's Ctrl-C
reaches only the parent. The child also exits when its parent goes away (killed).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pycolmap

from inspatio_sim.errors import ReconError
from inspatio_sim.recon.sfm import (
    EXIT_REFUSED,
    FAILURE_FILE,
    JOB_FILE,
    MIN_MEDIAN_FEATURES,
    MIN_PAIR_INLIERS,
    RESULT_FILE,
    SfMOptions,
    SfMResult,
    bridge_feature_gaps,
    choose_model,
    choose_segment,
    frame_range,
    match_segments,
    save_result,
    sequential_pairs,
)

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    """Run the job in the staging folder ``argv[0]``; return the exit status (see the module docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stage = Path((sys.argv[1:] if argv is None else argv)[0])
    _exit_with_parent()
    job = json.loads((stage / JOB_FILE).read_text())
    try:
        result = run_job(stage, job)
    except ReconError as e:
        (stage / FAILURE_FILE).write_text(str(e) + "\n")
        return EXIT_REFUSED
    save_result(stage / RESULT_FILE, result)
    return 0


def _exit_with_parent() -> None:
    """End this process when the parent is gone (it was killed and cannot stop us)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def run_job(stage: Path, job: dict[str, Any]) -> SfMResult:
    """Extract, match, check for scene cuts, map with the configured mapper(s) and keep the better model."""
    options = SfMOptions(**job["options"])
    names: list[str] = job["names"]
    n, w, h = len(names), int(job["width"]), int(job["height"])
    K = None if job["K"] is None else np.asarray(job["K"], dtype=np.float64)
    progress = bool(job["progress"])
    timestamps: list[float] | None = job["timestamps"]
    image_dir, mask_dir, model_dir = stage / "images", stage / "masks", stage / "models"
    db_path = stage / "database.db"
    pycolmap.set_random_seed(int(options.seed))
    # all levels with -v (on the terminal); else warnings and errors, into the log file only
    pycolmap.logging.minloglevel = 0 if job["verbose"] else 1
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
    if job["masks"]:
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
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = int(options.threads)
    _stage(progress, f"matching features ({options.matcher})")
    if options.matcher == "exhaustive":
        pycolmap.match_exhaustive(db_path, matching_options=matching, device=device)
    elif options.vocab_tree:
        pairing_seq = pycolmap.SequentialPairingOptions()
        pairing_seq.overlap = int(options.overlap)
        pairing_seq.quadratic_overlap = True
        pairing_seq.loop_detection = True
        pairing_seq.vocab_tree_path = str(options.vocab_tree)
        pycolmap.match_sequential(db_path, matching_options=matching, pairing_options=pairing_seq, device=device)
    else:
        pairs_file = stage / "pairs.txt"
        pairs = sequential_pairs(n, int(options.overlap))
        pairs_file.write_text("".join(f"{names[i]} {names[j]}\n" for i, j in pairs))
        pairing = pycolmap.ImportedPairingOptions()
        pairing.match_list_path = str(pairs_file)
        pycolmap.match_image_pairs(db_path, matching_options=matching, pairing_options=pairing, device=device)
    seconds["match"] = time.perf_counter() - t0
    inliers = _pair_inliers(db_path, names)
    segments = bridge_feature_gaps(match_segments(n, inliers), num_features)
    kept = choose_segment(segments, n, options.on_cut, timestamps)
    notes = []
    if kept != (0, n - 1):
        notes.append(f"scene cut: {len(segments)} segments ({', '.join(frame_range(s, timestamps) for s in segments)})"
                     f"; kept the longest, {frame_range(kept, timestamps)} (recon.on_cut=longest)")

    t0 = time.perf_counter()
    mappers = ("global", "incremental") if options.mapper == "auto" else (options.mapper,)
    candidates: dict[str, pycolmap.Reconstruction] = {}
    others: dict[str, list[pycolmap.Reconstruction]] = {}
    for mapper in mappers:
        _stage(progress, f"{mapper} mapping")
        models = _map(mapper, db_path, image_dir, model_dir / mapper, options, fixed_intrinsics=K is not None,
                      image_names=names[kept[0]:kept[1] + 1] if kept != (0, n - 1) else None)
        if models:
            ranked = sorted(models.values(), key=lambda r: r.num_reg_images(), reverse=True)
            candidates[mapper], others[mapper] = ranked[0], ranked[1:]
    seconds["map"] = time.perf_counter() - t0
    if not candidates:
        raise ReconError(
            "structure-from-motion found no camera path: the frames share too few matches. Typical causes: the "
            "camera did not move (no parallax), it only rotated, or consecutive frames differ too much (lower "
            "recon.stride / raise recon.fps)"
        )
    best_inliers = np.zeros(n, dtype=np.int64)
    for (i, j), c in inliers.items():
        best_inliers[i], best_inliers[j] = max(best_inliers[i], c), max(best_inliers[j], c)
    converted = {m: _convert(r, names, num_features, best_inliers, kept, others[m], timestamps)
                 for m, r in candidates.items()}
    used, agreement = choose_model(converted)
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
    result.segments, result.kept, result.notes = segments, kept, notes
    return result


def _stage(progress: bool, msg: str) -> None:
    if progress:
        print(f"  sfm: {msg} ...", flush=True)
    log.debug(msg)


def _pair_inliers(db_path: Path, names: list[str]) -> dict[tuple[int, int], int]:
    """``(i, j) -> verified matches`` (``i < j``, frame indices) of every geometrically verified pair."""
    position = {nm: i for i, nm in enumerate(names)}
    with pycolmap.Database.open(db_path) as db:
        index = {im.image_id: position[im.name] for im in db.read_all_images()}
        pair_ids, counts = db.read_two_view_geometry_num_inliers()
    out: dict[tuple[int, int], int] = {}
    for pair_id, c in zip(pair_ids, counts, strict=True):
        a, b = (index[k] for k in pycolmap.pair_id_to_image_pair(pair_id))
        out[(min(a, b), max(a, b))] = int(c)
    return out


def _map(mapper: str, db_path: Path, image_dir: Path, model_dir: Path, options: SfMOptions, fixed_intrinsics: bool,
         image_names: list[str] | None) -> dict[int, pycolmap.Reconstruction]:
    """Run one mapper; ``image_names`` restricts it to those frames (the kept segment after a scene cut)."""
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
        if image_names is not None:
            opts.image_names = image_names
        return pycolmap.global_mapping(db_path, image_dir, model_dir, options=opts)
    opts = pycolmap.IncrementalPipelineOptions()
    opts.random_seed = int(options.seed)
    opts.num_threads = int(options.threads)
    opts.ba_refine_principal_point = False
    if fixed_intrinsics:
        opts.ba_refine_focal_length = opts.ba_refine_extra_params = False
        opts.mapper.abs_pose_refine_focal_length = opts.mapper.abs_pose_refine_extra_params = False
    if image_names is not None:
        opts.image_names = image_names
    return pycolmap.incremental_mapping(db_path, image_dir, model_dir, options=opts)


def _convert(rec: pycolmap.Reconstruction, names: list[str], num_features: np.ndarray, best_inliers: np.ndarray,
             kept: tuple[int, int], others: list[pycolmap.Reconstruction],
             timestamps: list[float] | None) -> SfMResult:
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
    separate = [sorted(index[im.name] for im in r.images.values() if im.has_pose) for r in others]
    dropped = _drop_reasons(len(names), registered, num_features, best_inliers, kept, separate, timestamps)
    return SfMResult(registered=registered, poses=np.array(poses).reshape(-1, 4, 4), K=K, points=points,
                     observations=obs, num_features=num_features,
                     reprojection_error=float(rec.compute_mean_reprojection_error()), dropped=dropped)


def _drop_reasons(n: int, registered: np.ndarray, num_features: np.ndarray, best_inliers: np.ndarray,
                  kept: tuple[int, int], separate: list[list[int]], timestamps: list[float] | None) -> dict[int, str]:
    """Why each unregistered frame was left out: outside the kept segment, few features, few verified matches,
    placed in a separate model the mapper could not join, or not placed at all."""
    in_other = {i: m for m in separate for i in m}
    reasons = {}
    for i in sorted(set(range(n)) - set(registered.tolist())):
        if not kept[0] <= i <= kept[1]:
            reasons[i] = f"outside the kept segment {frame_range(kept, timestamps)} (scene cut, recon.on_cut=longest)"
        elif num_features[i] < MIN_MEDIAN_FEATURES:
            reasons[i] = f"only {int(num_features[i])} features (blur, darkness or no texture)"
        elif best_inliers[i] < MIN_PAIR_INLIERS:
            reasons[i] = f"at most {int(best_inliers[i])} verified matches with any other frame"
        elif i in in_other:
            m = in_other[i]
            reasons[i] = (f"placed in a separate model ({len(m)} frames, {frame_range((m[0], m[-1]), timestamps)}) "
                          "that the mapper could not join to the kept one")
        else:
            reasons[i] = "matched, but the mapper could not place it consistently"
    return reasons


if __name__ == "__main__":
    sys.exit(main())
