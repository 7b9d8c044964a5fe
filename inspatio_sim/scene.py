"""Scene: what reconstruction (or the ground-truth oracle) produces, and its versioned on-disk format.

A Scene is a monocular video with one shared pinhole camera, camera poses, dense depth, confidence and dynamic
masks. Conventions (units, frames, depth=0 means no data) are those of :mod:`inspatio_sim.conventions`.

On disk a Scene is one ``.npz`` file (``scene.npz`` inside a directory, or any ``*.npz`` path). Arrays are stored
by name; the metadata is a JSON string under the key ``meta``. Writes are atomic
(:func:`inspatio_sim.fileio.atomic_write`), so a crash never leaves a half-written Scene.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inspatio_sim.errors import SceneError
from inspatio_sim.fileio import atomic_write
from inspatio_sim.validation import check_intrinsics, check_poses

SCENE_FORMAT_VERSION = 1
SCENE_FILENAME = "scene.npz"

_ARRAY_KEYS = ("frames", "timestamps", "K", "poses", "depth", "confidence", "dynamic_mask")


@dataclass
class SceneMeta:
    """Scene metadata.

    Attributes:
        source: Where the frames came from (a video path, ``oracle:room``, ...).
        fps: Nominal frame rate of the source video (frames per second).
        scale_origin: How metric scale was set, e.g. ``"exact"`` (oracle), ``"camera_height:1.50"``, ``"user"``.
        version: Scene format version; loading rejects other versions.
        extra: Free-form JSON-serialisable details (oracle preset and seed, reconstruction report, ...).
    """

    source: str
    fps: float
    scale_origin: str
    version: int = SCENE_FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Scene:
    """A reconstructed (or ground-truth) monocular video.

    Attributes:
        frames: ``(N, H, W, 3)`` uint8 RGB.
        timestamps: ``(N,)`` float64 seconds, strictly increasing.
        K: ``(3, 3)`` float64 intrinsics in pixels for ``(H, W)``.
        poses: ``(N, 4, 4)`` float64 ``T_world_camera`` (OpenCV camera, REP-103 world, metres).
        depth: ``(N, H, W)`` float32 z-depth in metres, 0 = no data.
        confidence: ``(N, H, W)`` float32 in ``[0, 1]``.
        dynamic_mask: ``(N, H, W)`` bool, True on moving content.
        meta: :class:`SceneMeta`.
    """

    frames: np.ndarray
    timestamps: np.ndarray
    K: np.ndarray
    poses: np.ndarray
    depth: np.ndarray
    confidence: np.ndarray
    dynamic_mask: np.ndarray
    meta: SceneMeta

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def duration(self) -> float:
        """Seconds from the first to the last frame."""
        return float(self.timestamps[-1] - self.timestamps[0])

    def validate(self) -> None:
        """Check shapes, dtypes and values; raise :class:`SceneError` naming the first problem found."""
        _validate(self)

    def subset(self, indices: np.ndarray | list[int]) -> Scene:
        """A new Scene holding only the frames at ``indices`` (in the given order, which must keep time increasing)."""
        idx = np.asarray(indices, dtype=np.int64)
        scene = Scene(
            frames=self.frames[idx], timestamps=self.timestamps[idx], K=self.K.copy(), poses=self.poses[idx],
            depth=self.depth[idx], confidence=self.confidence[idx], dynamic_mask=self.dynamic_mask[idx],
            meta=SceneMeta(**{**asdict(self.meta), "extra": dict(self.meta.extra)}),
        )
        scene.validate()
        return scene

    def save(self, path: str | Path) -> Path:
        """Validate and write atomically; return the ``.npz`` file written."""
        self.validate()
        target = scene_file(path)
        with atomic_write(target) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, meta=np.array(json.dumps(asdict(self.meta))),
                                **{k: getattr(self, k) for k in _ARRAY_KEYS})
        return target

    @staticmethod
    def load(path: str | Path) -> Scene:
        """Read and validate a Scene written by :meth:`save`."""
        file = scene_file(path)
        if not file.exists():
            raise SceneError(
                f"no Scene at '{path}' (looked for {file}); build one with `inspatio-sim oracle` or "
                "`inspatio-sim reconstruct VIDEO -o DIR`"
            )
        try:
            with np.load(file, allow_pickle=False) as data:
                present = set(data.files)
                missing = [k for k in ("meta", *_ARRAY_KEYS) if k not in present]
                if missing:
                    raise SceneError(f"Scene file {file} lacks {', '.join(missing)}; it is not a complete Scene")
                meta_raw = json.loads(str(data["meta"]))
                arrays = {k: data[k] for k in _ARRAY_KEYS}
        except SceneError:
            raise
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
            raise SceneError(f"cannot read Scene file {file}: {e}; the file is corrupt or not a Scene") from e
        version = meta_raw.get("version")
        if version != SCENE_FORMAT_VERSION:
            raise SceneError(
                f"Scene {file} has format version {version!r}, this inspatio-sim reads version "
                f"{SCENE_FORMAT_VERSION}; rebuild the Scene with this version"
            )
        try:
            meta = SceneMeta(**meta_raw)
        except TypeError as e:
            raise SceneError(f"Scene {file} has malformed metadata: {e}") from e
        scene = Scene(meta=meta, **arrays)
        scene.validate()
        return scene


def scene_file(path: str | Path) -> Path:
    """Resolve a Scene location: a ``*.npz`` path as is, anything else as a directory holding ``scene.npz``."""
    p = Path(path)
    return p if p.suffix == ".npz" else p / SCENE_FILENAME


def _validate(s: Scene) -> None:
    def fail(msg: str) -> None:
        raise SceneError(f"invalid Scene: {msg}")

    if not isinstance(s.frames, np.ndarray) or s.frames.ndim != 4 or s.frames.shape[-1] != 3:
        fail(f"frames must be (N, H, W, 3), got {getattr(s.frames, 'shape', type(s.frames))}")
    if s.frames.dtype != np.uint8:
        fail(f"frames must be uint8, got {s.frames.dtype}")
    n, h, w = s.frames.shape[:3]
    if n < 1 or h < 1 or w < 1:
        fail(f"frames must hold at least one non-empty image, got shape {s.frames.shape}")
    expect = {
        "timestamps": ((n,), np.floating), "K": ((3, 3), np.floating), "poses": ((n, 4, 4), np.floating),
        "depth": ((n, h, w), np.floating), "confidence": ((n, h, w), np.floating),
        "dynamic_mask": ((n, h, w), np.bool_),
    }
    for key, (shape, kind) in expect.items():
        a = getattr(s, key)
        if not isinstance(a, np.ndarray) or a.shape != shape:
            fail(f"{key} must have shape {shape} for {n} frames of {h}x{w}, got {getattr(a, 'shape', type(a))}")
        if not np.issubdtype(a.dtype, kind):
            fail(f"{key} must be {kind.__name__}, got {a.dtype}")
    ts = s.timestamps
    if not np.all(np.isfinite(ts)):
        fail("timestamps contain NaN or inf")
    if n > 1 and not np.all(np.diff(ts) > 0):
        bad = int(np.argmin(np.diff(ts) > 0))
        fail(f"timestamps must be strictly increasing (frame {bad + 1}: {ts[bad + 1]} after {ts[bad]})")
    check_intrinsics(s.K, what="invalid Scene: K", error=SceneError)
    check_poses(s.poses, what="invalid Scene: poses", error=SceneError, count=n)
    d = s.depth
    if not np.isfinite(d).all():
        fail("depth contains NaN or inf; use 0 for pixels without depth")
    if (d < 0).any():
        fail("depth contains negative values; use 0 for pixels without depth")
    c = s.confidence
    if not np.isfinite(c).all() or (c < 0).any() or (c > 1).any():
        fail("confidence must be finite and within [0, 1]")
    if not np.isfinite(s.meta.fps) or s.meta.fps <= 0:
        fail(f"meta.fps must be a positive number, got {s.meta.fps}")
