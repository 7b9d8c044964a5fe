"""``inspatio-sim reconstruct-many INPUT... -o WORLDS``: many videos -> many worlds, one Ray task per clip.

Inputs: video files, folders (their video files and sub-folders of images, sorted by name; a folder holding only
images is one clip), glob patterns
(``'clips/*.mp4'``) and ``.txt`` files listing clips one per line (``#`` comments; relative paths are relative to
the list). Each clip becomes ``WORLDS/<name>/`` (``name`` = the file or folder name without extension), written
exactly as ``inspatio-sim reconstruct`` writes it (:func:`inspatio_sim.recon_report.reconstruct_world`:
``scene.npz`` + ``report.json`` atomically at the end, the SfM cache in ``.cache``, a failed run leaves the folder
as it found it). A world is finished when its ``report.json`` holds the training-view PSNR; a rerun skips finished
worlds (``--force`` redoes them) and retries failed ones.

Each task declares ``cluster.cpus_per_clip`` CPUs (pycolmap's ``recon.threads`` follows unless set) and, with
``device=cuda``, ``cluster.gpus_per_clip`` GPUs; Ray runs as many at once as the cluster's resources allow. A clip
that fails is reported with its reason (one line) and does not stop the others. ``WORLDS/index.json`` lists every
finished world in ``WORLDS`` (of this run or an earlier one) with its report summary, and every failure of this
run with its reason; it is rewritten after each clip, so it is current even when the run is interrupted.
"""

from __future__ import annotations

import glob
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from inspatio_sim.cluster.session import ClusterError, cluster_cpus, ray_session
from inspatio_sim.errors import ConfigError, InSpatioError
from inspatio_sim.fileio import write_json
from inspatio_sim.paths import check_output_path

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
INDEX_FILENAME = "index.json"
SUMMARY_KEYS = ("input_frames", "registered_frames", "registered_fraction", "frame_size", "focal_px",
                "reprojection_error_px", "metres_per_sfm_unit", "ground_found", "depth_valid_fraction",
                "dynamic_fraction", "train_view_psnr", "train_view_coverage")
"""Report entries copied into ``index.json`` (plus ``seconds.total``)."""


def expand_inputs(inputs: list[str]) -> list[Path]:
    """The clips named by ``inputs`` (files, folders, globs, ``.txt`` lists), in order, duplicates removed.

    Raises:
        ConfigError: An input matches nothing, or two clips would get the same world name.
    """
    clips: list[Path] = []
    for item in inputs:
        p = Path(item).expanduser()
        if any(c in item for c in "*?["):
            found = sorted(Path(m) for m in glob.glob(str(p), recursive=True))
            if not found:
                raise ConfigError(f"the pattern '{item}' matches no file")
            clips += found
        elif p.is_dir():
            found = _folder_clips(p)
            if not found:
                raise ConfigError(f"the folder '{item}' holds no video ({', '.join(VIDEO_EXTENSIONS)}), no images "
                                  "and no sub-folder of images")
            clips += found
        elif p.suffix.lower() == ".txt" and p.is_file():
            for line in p.read_text().splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    q = Path(line).expanduser()
                    clips.append(q if q.is_absolute() else p.parent / q)
        elif p.exists():
            clips.append(p)
        else:
            raise ConfigError(f"input '{item}' does not exist (give video files, folders, globs or a .txt list)")
    unique = list(dict.fromkeys(c.resolve() for c in clips))
    names: dict[str, Path] = {}
    for c in unique:
        if world_name(c) in names:
            raise ConfigError(f"two clips would make the same world '{world_name(c)}': {names[world_name(c)]} and "
                              f"{c}; rename one")
        names[world_name(c)] = c
    if not unique:
        raise ConfigError("no clips given")
    return unique


def _folder_clips(folder: Path) -> list[Path]:
    entries = sorted(folder.iterdir())
    videos = [e for e in entries if e.is_file() and e.suffix.lower() in VIDEO_EXTENSIONS]
    image_dirs = [e for e in entries if e.is_dir() and not e.name.startswith(".")
                  and any(f.suffix.lower() in IMAGE_EXTENSIONS for f in e.iterdir())]
    if not videos and not image_dirs and any(e.suffix.lower() in IMAGE_EXTENSIONS for e in entries):
        return [folder]  # a folder of images is one clip
    return videos + image_dirs


def world_name(clip: Path) -> str:
    """The world folder name of ``clip``: its name without the extension."""
    return clip.stem if clip.is_file() or clip.suffix.lower() in VIDEO_EXTENSIONS else clip.name


def finished_report(world_dir: Path) -> dict[str, Any] | None:
    """The report of a finished world in ``world_dir`` (``scene.npz`` and a ``report.json`` with the
    training-view PSNR), else ``None``."""
    import json

    from inspatio_sim.recon.pipeline import REPORT_FILENAME
    from inspatio_sim.scene import scene_file

    try:
        report = json.loads((world_dir / REPORT_FILENAME).read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(report, dict) and "train_view_psnr" in report and Path(scene_file(world_dir)).exists()
    return report if ok else None


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The index entry of a report: :data:`SUMMARY_KEYS` and ``seconds`` (total)."""
    out = {k: report[k] for k in SUMMARY_KEYS if k in report}
    out["seconds"] = report.get("seconds", {}).get("total")
    return out


def reconstruct_clip(clip: str, output: str, cfg: dict[str, Any], force: bool = False) -> dict[str, Any]:
    """One clip -> one world (the body of a Ray task; also callable directly).

    Returns:
        ``{"status": "ok", "report": {...}, "seconds": s}`` or ``{"status": "failed", "reason": one line,
        "seconds": s}``; never raises for a bad clip.
    """
    from inspatio_sim.recon_report import reconstruct_world

    t0 = time.perf_counter()
    out = Path(output)
    created = not out.exists()
    try:
        _, report = reconstruct_world(clip, out, OmegaConf.create(cfg), force=force, progress=False)
    except InSpatioError as e:
        reason = str(e)
    except Exception as e:  # a failed clip must not stop the others; its reason is reported
        reason = f"{type(e).__name__}: {e}"
    else:
        return {"status": "ok", "report": report, "seconds": time.perf_counter() - t0}
    # a failure after the Scene was written (the World stage): leave no half world behind
    if created and out.exists() and finished_report(out) is None:
        shutil.rmtree(out, ignore_errors=True)
    return {"status": "failed", "reason": " ".join(reason.split()) or "unknown error",
            "seconds": time.perf_counter() - t0}


class Progress:
    """The live progress line: done / running / queued / failed, clips per hour (redrawn with ``\\r`` on a
    terminal; elsewhere printed when the counts change, at least once a minute)."""

    def __init__(self, total: int, skipped: int, stream: Any = None) -> None:
        self.total, self.skipped = total, skipped
        self.stream = stream or sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.perf_counter()
        self.done = self.failed = 0
        self._last: tuple[int, ...] = ()
        self._printed = 0.0

    def line(self, running: int, queued: int) -> str:
        hours = (time.perf_counter() - self.t0) / 3600.0
        finished = self.done + self.failed
        rate = f"{finished / hours:.1f} clips/h" if finished else "-- clips/h"
        return (f"reconstruct-many: {self.done + self.skipped}/{self.total} done ({self.skipped} skipped), "
                f"{running} running, {queued} queued, {self.failed} failed, {rate}, "
                f"{time.perf_counter() - self.t0:.0f} s")

    def show(self, running: int, queued: int, force: bool = False) -> None:
        """Redraw the line (terminal), or print it when the counts changed or a minute passed (log file)."""
        text = self.line(running, queued)
        key = (self.done, self.failed, running, queued)
        now = time.perf_counter()
        if self.tty:
            print("\r" + text, end="", flush=True, file=self.stream)
        elif force or key != self._last or now - self._printed >= 60.0:
            print(text, flush=True, file=self.stream)
            self._printed = now
        self._last = key

    def message(self, text: str) -> None:
        print(("\r\033[K" if self.tty else "") + text, flush=True, file=self.stream)


def reconstruct_many(inputs: list[str], output: str | Path, cfg: DictConfig, address: str | None = None,
                     force: bool = False, stream: Any = None) -> dict[str, Any]:
    """Reconstruct every clip of ``inputs`` into ``output/<name>/`` with one Ray task per clip.

    Args:
        inputs: Clips, folders, globs or ``.txt`` lists (see :func:`expand_inputs`).
        output: The worlds folder (gets ``index.json``).
        cfg: The composed configuration (``recon``, ``world``, ``render``, ``device``, ``cluster``).
        address: Ray cluster to join (``auto``, ``HOST:PORT``); ``None``: ``cluster.address``, else a local instance.
        force: Redo finished worlds.
        stream: Where the progress goes (default stdout).

    Returns:
        The index (``worlds``, ``failed``, ``clips_per_hour``, ``seconds``, ``workers``).

    Raises:
        ConfigError: Bad inputs. OutputPathError: ``output`` cannot be written. ClusterError: no Ray.
    """
    out = check_output_path(output, "dir", what="-o")
    clips = expand_inputs(inputs)
    cc = cfg.cluster
    todo = [c for c in clips if force or finished_report(out / world_name(c)) is None]
    progress = Progress(len(clips), len(clips) - len(todo), stream)
    cfg_dict = OmegaConf.to_container(cfg, resolve=True)
    if int(cfg_dict["recon"]["threads"]) == -1:  # pycolmap uses the task's declared CPUs, not the whole node
        cfg_dict["recon"]["threads"] = max(1, int(cc.cpus_per_clip))
    failed: dict[str, dict[str, Any]] = {}
    t0 = time.perf_counter()
    workers = 0
    if todo:
        with ray_session(address or cc.address, cc.num_cpus, cc.object_store_mb) as ray:
            gpus = float(cc.gpus_per_clip) if str(cfg.device).startswith("cuda") else 0.0
            task = ray.remote(reconstruct_clip).options(num_cpus=float(cc.cpus_per_clip), num_gpus=gpus,
                                                        max_retries=1)
            workers = int(cluster_cpus(ray) // float(cc.cpus_per_clip))
            if workers < 1:
                raise ClusterError(f"the cluster has {cluster_cpus(ray):g} CPUs, fewer than cluster.cpus_per_clip="
                                   f"{cc.cpus_per_clip:g}: lower it or add nodes")
            if gpus and ray.cluster_resources().get("GPU", 0.0) < gpus:
                raise ClusterError(f"device={cfg.device} but the cluster has no GPU for cluster.gpus_per_clip="
                                   f"{gpus:g} (use device=cpu or join a cluster with GPUs)")
            progress.message(f"reconstruct-many: {len(todo)} clip(s) to reconstruct ({progress.skipped} finished "
                             f"before), up to {workers} at once on {len(ray.nodes())} node(s) -> {out}")
            pending = {task.remote(str(c), str(out / world_name(c)), cfg_dict, force): c for c in todo}
            progress.show(min(workers, len(pending)), max(0, len(pending) - workers))
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                for ref in ready:
                    clip = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as e:  # the worker or its node died
                        lines = [s for s in str(e).splitlines() if s.strip()]
                        result = {"status": "failed", "reason": f"{type(e).__name__}: {lines[0] if lines else e}"}
                    name = world_name(clip)
                    if result["status"] == "ok":
                        progress.done += 1
                        failed.pop(name, None)
                        progress.message(f"  ok     {name}: {result['report']['registered_frames']} frames, "
                                         f"train-view PSNR {result['report']['train_view_psnr']:.1f} dB, "
                                         f"{result['seconds']:.0f} s")
                    else:
                        progress.failed += 1
                        failed[name] = {"name": name, "clip": str(clip), "reason": result["reason"]}
                        progress.message(f"  FAILED {name}: {result['reason']}")
                    write_index(out, clips, failed, progress)
                progress.show(min(workers, len(pending)), max(0, len(pending) - workers), force=bool(ready))
    index = write_index(out, clips, failed, progress, seconds=time.perf_counter() - t0, workers=workers)
    if progress.tty:
        print(file=progress.stream)
    progress.message(f"reconstruct-many: {len(index['worlds'])} world(s), {len(index['failed'])} failed "
                     f"-> {out / INDEX_FILENAME}")
    return index


def write_index(out: Path, clips: list[Path], failed: dict[str, dict[str, Any]], progress: Progress,
                seconds: float | None = None, workers: int | None = None) -> dict[str, Any]:
    """Write ``out/index.json``: every finished world in ``out`` (this run's clips first, in order, then the
    other finished worlds found there, by name) with its report summary, and this run's failures with reasons."""
    sources = {world_name(c): str(c) for c in clips}
    others = sorted(d.name for d in out.iterdir() if d.is_dir() and d.name not in sources) if out.is_dir() else []
    worlds = []
    for name in [*sources, *others]:
        report = finished_report(out / name)
        if report is not None:
            worlds.append({"name": name, "clip": sources.get(name, report.get("source")), "path": name,
                           **summary(report)})
    elapsed = time.perf_counter() - progress.t0 if seconds is None else seconds
    finished = progress.done + progress.failed
    index = {"worlds": worlds, "failed": list(failed.values()),
             "clips_per_hour": finished / (elapsed / 3600.0) if finished and elapsed > 0 else None,
             "seconds": round(elapsed, 3), "workers": workers}
    write_json(out / INDEX_FILENAME, index)
    return index


def run_reconstruct_many(args: Any, cfg: DictConfig) -> int:
    """CLI entry of ``inspatio-sim reconstruct-many``; exit status 1 when a clip failed."""
    index = reconstruct_many(args.inputs, args.output, cfg, address=args.address, force=args.force)
    return 1 if index["failed"] else 0

