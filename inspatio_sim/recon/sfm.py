"""Structure-from-motion with pycolmap: SIFT features, matching, global or incremental mapping, one shared camera.

Frames are written as PNG files into a work directory, COLMAP builds its database there, and the largest model is
converted to this package's conventions: ``T_world_camera`` poses (OpenCV camera, SfM world frame and units) and
intrinsics with pixel centres at integer coordinates (COLMAP puts them at ``+0.5``). Results are cached in the work
directory under a hash of the frames, masks and options, so re-running with the same input skips SfM.

Process: COLMAP's native calls do not return to Python until they finish (a Ctrl-C during matching used to act
after about 40 s), so they run in a child process (:mod:`inspatio_sim.recon.colmap_job`) that this process polls and
terminates at once on Ctrl-C or any error. The child works in a staging folder ``WORKDIR/.sfm-KEY.partial-PID``
that becomes the cache folder ``WORKDIR/sfm-KEY`` only when it succeeded (a previous cache stays until then); a
failed or interrupted run removes it. COLMAP's own log goes to ``colmap.log`` there, not to the terminal, unless
``verbose`` (the CLI's ``-v``); its last lines are shown when the child crashes.

Mapping: ``auto`` (default) runs COLMAP's global and incremental mappers on the same matches (mapping is cheap next
to matching) and keeps the global model when the two camera paths agree, else the incremental one
(:func:`choose_model`). Measured on the oracle room: global mapping is the more accurate when it succeeds (ATE 0.13%
of the path at 60 frames vs. 0.35-0.48% for incremental) but with coarser frame spacing (40 frames over the same path)
it mis-scaled path segments in 5 of 5 runs (ATE 4-15%), while incremental stayed at 0.4%.

Matching: ``sequential`` (default: each frame with its ``overlap`` successors and with the frames 2, 4, 8, ...
later, which closes loops along a video path) or ``exhaustive`` (every pair). With ``vocab_tree`` set to a COLMAP
vocabulary-tree file, sequential matching adds COLMAP's loop detection (no tree ships with the wheel, and none is
downloaded). Measured on the oracle room, whose walls repeat photo textures: exhaustive matching and all-pairs loop
candidates among keyframes both accepted wrong matches between different walls with the same texture (ATE 12-16% of
the path), while the sequential pairs gave 0.13-0.18%. Repetitive real scenes behave the same, hence the default.

Scene cuts: after matching, the frames joined by verified matches form the segments of the video
(:func:`match_segments`); neighbouring segments separated by feature-starved frames are one shot
(:func:`bridge_feature_gaps`). Two or more segments mean a cut (an edited clip, a camera switched off and on elsewhere):
the run stops naming the segments (``on_cut=fail``, default) or maps the longest one only (``on_cut=longest``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from inspatio_sim.errors import ConfigError, ReconError
from inspatio_sim.fileio import atomic_write

log = logging.getLogger(__name__)
MIN_MEDIAN_FEATURES = 80
CACHE_VERSION = 5
MAPPER_AGREEMENT_PERCENT = 1.5
"""Largest disagreement (ATE % of path) between the global and incremental models for the global one to be kept."""
MIN_PAIR_INLIERS = 30
"""Verified (geometrically consistent) matches for two frames to count as connected."""
MIN_WEAK_INLIERS = 15
WEAK_SPAN = 2
"""Frames at most ``WEAK_SPAN`` apart in time are also connected by ``MIN_WEAK_INLIERS`` verified matches (COLMAP's
own verification minimum). A continuous shot across a plain wall has frames with few features whose links are weak
but local (measured on the `plain` preset: 16-22 inliers between neighbours, where an edited cut between the room and
the courtyard had none); wrong matches far apart in time still need ``MIN_PAIR_INLIERS``."""
CUT_MIN_FEATURES = 200
"""Frames around a boundary between segments need this many SIFT features for it to count as a scene cut (measured:
the plain preset's frames facing a bare wall have 69-160; the frames of an edited cut between the textured presets
436-526 at 240x180)."""
MIN_SEGMENT_FRAMES = 3
MIN_SEGMENT_FRACTION = 0.1
"""A connected group of frames counts as a segment of the video (a cut when there are two) with at least
``max(MIN_SEGMENT_FRAMES, MIN_SEGMENT_FRACTION * N)`` frames; smaller groups are isolated frames (blur, occlusion)
that are dropped with their own reason."""
POLL_SECONDS = 0.05
"""How often the parent checks on the COLMAP child (and lets a Ctrl-C through)."""
STOP_SECONDS = 2.0
"""How long a terminated child gets before it is killed."""
LOG_TAIL_LINES = 20
JOB_FILE, RESULT_FILE, FAILURE_FILE, LOG_FILE = "job.json", "result.npz", "failure.txt", "colmap.log"
EXIT_REFUSED = 3
"""Exit status of the child when it refused the input (its one-line reason is in ``FAILURE_FILE``)."""
ON_CUT = ("fail", "longest")


@dataclass
class SfMOptions:
    """pycolmap settings (hydra keys ``recon.mapper``, ``matcher``, ``overlap``, ``max_features``, ``seed``,
    ``on_cut``)."""

    mapper: str = "auto"  # auto, global or incremental: pycolmap mapping (auto: run both, keep the better model)
    matcher: str = "sequential"  # sequential (successors + jumps of 2, 4, 8... frames) or exhaustive (every pair)
    overlap: int = 10  # sequential matcher: successors matched per frame
    vocab_tree: str | None = None  # a COLMAP vocabulary-tree file enabling loop detection in sequential matching
    max_features: int = 4096  # SIFT features per frame
    seed: int = 0  # seed of pycolmap's and the ground-plane RANSAC's random choices
    threads: int = -1  # CPU threads of pycolmap's extraction, matching and mapping (-1 = all)
    on_cut: str = "fail"  # fail | longest: a video with a scene cut stops, or only its longest segment is mapped

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
        if self.on_cut not in ON_CUT:
            raise ConfigError(f"recon.on_cut must be 'fail' or 'longest', got {self.on_cut!r}")


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
        segments: ``(first, last)`` frame range of each connected segment of the video (one unless it has a cut).
        kept: ``(first, last)`` frame range that was mapped (all frames, or the longest segment after a cut).
        notes: Remarks for the report.
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
    segments: list[tuple[int, int]] = field(default_factory=list)
    kept: tuple[int, int] = (0, 0)
    notes: list[str] = field(default_factory=list)


def run_sfm(images: np.ndarray, K: np.ndarray | None, options: SfMOptions, workdir: Path,
            masks: np.ndarray | None = None, force: bool = False, progress: bool = True, verbose: bool = False,
            timestamps: np.ndarray | None = None) -> SfMResult:
    """Camera poses and sparse points for ``images (N, H, W, 3)`` uint8 RGB.

    Args:
        images: Frames in time order.
        K: Known ``(3, 3)`` intrinsics (kept fixed), or None to estimate one shared focal length.
        options: Matching and mapping settings.
        workdir: Directory for the COLMAP database, models and the cache.
        masks: Optional ``(N, H, W)`` bool, True where features must NOT be extracted (moving objects).
        force: Recompute even when a cached result exists.
        progress: Print stage progress.
        verbose: Show COLMAP's own log (all levels) instead of keeping it in ``colmap.log``.
        timestamps: Optional ``(N,)`` seconds of the frames, used to name the segments of a scene cut.

    Raises:
        ReconError: The input was refused (too few features, no camera path, a scene cut) or COLMAP crashed.
        KeyboardInterrupt: After the child was stopped and the staging folder removed.
    """
    options.validate()
    n, h, w = images.shape[:3]
    workdir = Path(workdir)
    key = _cache_key(images, K, options, masks)
    run_dir = workdir / f"sfm-{key}"
    cache_file = run_dir / RESULT_FILE
    if cache_file.exists() and not force:
        try:
            result = _load_result(cache_file)
            log.info("structure-from-motion: reusing the cached result in %s", run_dir)
            return result
        except (OSError, ValueError, KeyError) as e:
            log.warning("ignoring an unreadable SfM cache %s: %s", cache_file, e)
    stage = workdir / f".sfm-{key}.partial-{os.getpid()}"
    try:
        if stage.exists():
            shutil.rmtree(stage)
        names = [f"{i:06d}.png" for i in range(n)]
        (stage / "images").mkdir(parents=True)
        for name, img in zip(names, images, strict=True):
            cv2.imwrite(str(stage / "images" / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        if masks is not None:
            (stage / "masks").mkdir()
            for name, m in zip(names, masks, strict=True):  # COLMAP: zero pixels are ignored, mask named IMAGE.png
                cv2.imwrite(str(stage / "masks" / f"{name}.png"), np.where(m, 0, 255).astype(np.uint8))
        job = {"names": names, "width": w, "height": h, "K": None if K is None else np.asarray(K).tolist(),
               "options": asdict(options), "masks": masks is not None, "progress": progress, "verbose": verbose,
               "timestamps": None if timestamps is None else [float(t) for t in timestamps]}
        (stage / JOB_FILE).write_text(json.dumps(job))
        _run_child(stage, progress, verbose)
        result = _load_result(stage / RESULT_FILE)
        for d in ("images", "masks"):
            shutil.rmtree(stage / d, ignore_errors=True)
        if run_dir.exists():
            shutil.rmtree(run_dir)
        os.replace(stage, run_dir)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    result.cached = False
    return result


def _run_child(stage: Path, progress: bool, verbose: bool) -> None:
    """Run :mod:`inspatio_sim.recon.colmap_job` on ``stage`` and wait for it, polling so a Ctrl-C acts at once.

    The child runs in its own session (a terminal's Ctrl-C reaches only this process, which then stops the child:
    SIGTERM, which ends native code at once, then SIGKILL after :data:`STOP_SECONDS`).
    """
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # the same inspatio_sim in the child, installed or not
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    log_path = stage / LOG_FILE
    with open(log_path, "wb") as log_fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "inspatio_sim.recon.colmap_job", str(stage)], stdin=subprocess.DEVNULL,
            stdout=None if progress else subprocess.DEVNULL, stderr=None if verbose else log_fh, env=env,
            start_new_session=True)
        try:
            while True:
                try:
                    rc = proc.wait(timeout=POLL_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    continue
        except BaseException:
            _stop(proc)
            raise
    if rc == 0 and (stage / RESULT_FILE).exists():
        return
    failure = stage / FAILURE_FILE
    if rc == EXIT_REFUSED and failure.exists():
        raise ReconError(failure.read_text().strip())
    tail = log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:] if log_path.exists() else []
    for line in tail:
        print(f"  colmap: {line}", file=sys.stderr)
    raise ReconError(f"structure-from-motion stopped unexpectedly (COLMAP process exit status {rc}"
                     f"{'; its last log lines are above' if tail else ''}); run again with -v to see COLMAP's full "
                     "log, and report it if it repeats")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the child now (native work cannot finish its step first), kill it if it lingers."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def match_segments(n: int, inliers: dict[tuple[int, int], int],
                   min_inliers: int = MIN_PAIR_INLIERS) -> list[tuple[int, int]]:
    """The connected segments of a video of ``n`` frames, from verified matches between frame pairs.

    Args:
        n: Number of frames.
        inliers: ``(i, j) -> number of verified matches`` for the matched pairs.
        min_inliers: Matches for a pair to join its two frames (``MIN_WEAK_INLIERS`` for frames at most
            ``WEAK_SPAN`` apart).

    Returns:
        ``(first, last)`` frame range of every connected group of at least
        ``max(MIN_SEGMENT_FRAMES, MIN_SEGMENT_FRACTION * n)`` frames, in time order.
    """
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for (i, j), c in inliers.items():
        if c >= min_inliers or (c >= min(MIN_WEAK_INLIERS, min_inliers) and abs(i - j) <= WEAK_SPAN):
            parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    least = max(MIN_SEGMENT_FRAMES, int(np.ceil(MIN_SEGMENT_FRACTION * n)))
    return sorted((g[0], g[-1]) for g in groups.values() if len(g) >= least)


def bridge_feature_gaps(segments: list[tuple[int, int]], num_features: np.ndarray,
                        min_features: int = CUT_MIN_FEATURES) -> list[tuple[int, int]]:
    """``segments`` (from :func:`match_segments`, time order) with neighbours joined where a frame between them, or
    at their boundary, has fewer than ``min_features`` SIFT features (``num_features (N,)``): the matcher could
    not tell there, so it is a featureless stretch of one shot (a plain wall filling the view), not a cut. Mapping
    then registers what it can; the frames it cannot place are reported with their reason."""
    out: list[tuple[int, int]] = []
    for seg in sorted(segments):
        if out and seg[0] > out[-1][1] and int(np.min(num_features[out[-1][1]:seg[0] + 1])) < min_features:
            out[-1] = (out[-1][0], seg[1])
        else:
            out.append(seg)
    return out


def choose_segment(segments: list[tuple[int, int]], n: int, on_cut: str,
                   timestamps: list[float] | None = None) -> tuple[int, int]:
    """The frame range to map: all ``n`` frames without a cut; with one, the longest segment (``on_cut="longest"``,
    the earlier one on a tie) or a :class:`ReconError` naming the segments (``on_cut="fail"``)."""
    if len(segments) <= 1:
        return (0, n - 1)
    longest = max(segments, key=lambda s: (s[1] - s[0], -s[0]))
    if on_cut == "longest":
        return longest
    listed = ", ".join(frame_range(s, timestamps) for s in segments)
    raise ReconError(
        f"the video has a scene cut: its frames fall into {len(segments)} segments that share no verified feature "
        f"matches ({listed}), so they cannot be placed in one world. Trim the video to one continuous shot "
        f"(recon.start / recon.end), or set recon.on_cut=longest to keep the longest segment "
        f"({frame_range(longest, timestamps)})")


def frame_range(segment: tuple[int, int], timestamps: list[float] | None = None) -> str:
    """``"frames 0-29 (0.00-1.93 s)"`` (frame numbers after sampling; seconds in the video when known)."""
    a, b = segment
    text = f"frames {a}-{b}"
    return text if timestamps is None else f"{text} ({timestamps[a]:.2f}-{timestamps[b]:.2f} s)"


def choose_model(models: dict[str, SfMResult]) -> tuple[str, float | None]:
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


def _cache_key(images: np.ndarray, K: np.ndarray | None, options: SfMOptions, masks: np.ndarray | None) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"v": CACHE_VERSION, "pycolmap": importlib.metadata.version("pycolmap"),
                         "shape": images.shape, "options": asdict(options),
                         "K": None if K is None else np.round(K, 6).tolist()}, sort_keys=True).encode())
    h.update(np.ascontiguousarray(images).tobytes())
    if masks is not None:
        h.update(np.packbits(masks).tobytes())
    return h.hexdigest()[:16]


def save_result(path: Path, r: SfMResult) -> None:
    """Write ``r`` to ``path`` (``.npz``) atomically."""
    counts = np.array([len(o) for o in r.observations], dtype=np.int64)
    obs = np.concatenate(r.observations) if r.observations else np.zeros((0, 3), np.float32)
    meta = json.dumps({"reprojection_error": r.reprojection_error, "dropped": {str(k): v for k, v in r.dropped.items()},
                       "seconds": r.seconds, "mapper": r.mapper, "mapper_scores": r.mapper_scores,
                       "segments": [list(s) for s in r.segments], "kept": list(r.kept), "notes": r.notes})
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
                         cached=True, mapper=meta["mapper"], mapper_scores=meta["mapper_scores"],
                         segments=[(int(a), int(b)) for a, b in meta["segments"]],
                         kept=(int(meta["kept"][0]), int(meta["kept"][1])), notes=list(meta["notes"]))
