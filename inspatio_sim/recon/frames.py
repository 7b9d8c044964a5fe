"""Frame input for reconstruction: decode a video file or read an image folder into evenly sampled RGB frames.

Video timestamps come from the container (``CAP_PROP_POS_MSEC``), so variable-frame-rate clips keep their real
times; an image folder uses ``timestamps.txt`` (one time in seconds per image, in name order) when present, else
``1 / fps`` spacing (``recon.fps``, default 10). Frames larger than ``max_size`` (longest side) are downscaled with
area interpolation; grayscale input is expanded to three equal channels and reported.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from inspatio_sim.errors import ReconError

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
FOLDER_DEFAULT_FPS = 10.0
MIN_FRAMES = 3


@dataclass
class FrameSelection:
    """How frames are sampled from the input (hydra keys ``recon.stride``, ``fps``, ``start``, ``end``, ...)."""

    stride: int = 1  # keep every n-th decoded frame (ignored when recon.fps is set)
    fps: float | None = None  # frames per second sampled (null = use stride; image folders: default 10)
    start: float = 0.0  # first second of the video to use
    end: float | None = None  # last second of the video to use (null = to the end)
    max_frames: int = 300  # at most this many frames (evenly thinned beyond it)
    max_size: int = 640  # frames larger than this (longest side, pixels) are downscaled

    def validate(self) -> None:
        from inspatio_sim.errors import ConfigError

        if int(self.stride) < 1:
            raise ConfigError(f"recon.stride must be >= 1, got {self.stride}")
        if self.fps is not None and not float(self.fps) > 0:
            raise ConfigError(f"recon.fps must be positive or null, got {self.fps}")
        if float(self.start) < 0 or (self.end is not None and float(self.end) <= float(self.start)):
            raise ConfigError(f"recon.start/end must satisfy 0 <= start < end, got {self.start}, {self.end}")
        if int(self.max_frames) < MIN_FRAMES:
            raise ConfigError(f"recon.max_frames must be >= {MIN_FRAMES}, got {self.max_frames}")
        if int(self.max_size) < 32:
            raise ConfigError(f"recon.max_size must be >= 32 pixels, got {self.max_size}")


@dataclass
class FrameSet:
    """Decoded frames ready for reconstruction.

    Attributes:
        images: ``(N, H, W, 3)`` uint8 RGB at the working resolution.
        timestamps: ``(N,)`` float64 seconds, strictly increasing.
        source_size: ``(width, height)`` of the input before downscaling.
        scale: Working size / source size (1.0 when not downscaled).
        source_indices: ``(N,)`` index of each kept frame among the decoded input frames.
        notes: Human-readable remarks for the report (downscaling, grayscale, variable frame rate, ...).
    """

    images: np.ndarray
    timestamps: np.ndarray
    source_size: tuple[int, int]
    scale: float
    source_indices: np.ndarray
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of :attr:`images`."""
        return int(self.images.shape[2]), int(self.images.shape[1])


def read_frames(path: str | Path, sel: FrameSelection, progress: bool = True) -> FrameSet:
    """Read a video file or an image folder; raise :class:`ReconError` naming the cause when it cannot be used."""
    sel.validate()
    p = Path(path)
    if not p.exists():
        raise ReconError(f"input '{path}' does not exist; pass a video file or a folder of images")
    acc = _Accumulator(sel)
    kind = "folder" if p.is_dir() else "video"
    (_read_folder if p.is_dir() else _read_video)(p, sel, acc, progress)
    raw, times = acc.frames, np.asarray(acc.times, dtype=np.float64)
    notes: list[str] = list(acc.notes)
    if len(raw) < MIN_FRAMES:
        raise ReconError(
            f"{kind} '{path}' gave {len(raw)} usable frame(s) in the selected range; reconstruction needs at least "
            f"{MIN_FRAMES} frames with camera motion (check recon.start/end/stride/fps)"
        )
    dts = np.diff(times)
    if len(dts) > 2 and np.std(dts) > 0.05 * np.mean(dts):
        notes.append(f"variable frame rate: frame spacing {dts.min() * 1e3:.0f}-{dts.max() * 1e3:.0f} ms "
                     "(timestamps kept as recorded)")
    idx = np.arange(len(raw))
    if len(raw) > int(sel.max_frames):
        idx = np.unique(np.linspace(0, len(raw) - 1, int(sel.max_frames)).round().astype(int))
        notes.append(f"thinned {len(raw)} frames to {len(idx)} (recon.max_frames={sel.max_frames})")
    w, h = acc.source_size
    if acc.scale < 1.0:
        notes.append(f"downscaled {w}x{h} to {raw[0].shape[1]}x{raw[0].shape[0]} (recon.max_size={sel.max_size})")
    images = np.stack([raw[i] for i in idx])
    probe = images[:: max(1, len(images) // 5)].astype(np.int16)
    if np.array_equal(probe[..., 0], probe[..., 1]) and np.array_equal(probe[..., 1], probe[..., 2]):
        notes.append("grayscale input: frames are expanded to three equal channels")
    return FrameSet(images=images, timestamps=times[idx], source_size=(w, h), scale=acc.scale,
                    source_indices=np.asarray(acc.indices)[idx], notes=notes)


class _Accumulator:
    """Collects converted frames; keeps memory bounded by halving the kept frames (doubling the stride) whenever
    more than ``2 * max_frames`` accumulate."""

    def __init__(self, sel: FrameSelection) -> None:
        self.sel = sel
        self.frames: list[np.ndarray] = []
        self.times: list[float] = []
        self.indices: list[int] = []
        self.notes: list[str] = []
        self.source_size: tuple[int, int] = (0, 0)
        self.scale = 1.0
        self.keep_every = 1
        self.seen = 0

    def add(self, img: np.ndarray, t: float, index: int, where: str) -> None:
        h, w = img.shape[:2]
        if not self.frames:
            self.source_size = (w, h)
            self.scale = min(1.0, int(self.sel.max_size) / max(h, w))
            if self.scale < 1.0:
                self.scale = max(1, round(w * self.scale)) / w
        elif (w, h) != self.source_size:
            raise ReconError(f"{where} has {w}x{h} where earlier frames are {self.source_size[0]}x"
                             f"{self.source_size[1]}; all frames must have one size")
        self.seen += 1
        if (self.seen - 1) % self.keep_every:
            return
        self.frames.append(_to_rgb(img, self.scale))
        self.times.append(t)
        self.indices.append(index)
        if len(self.frames) > 2 * int(self.sel.max_frames):
            self.frames, self.times, self.indices = self.frames[::2], self.times[::2], self.indices[::2]
            self.keep_every *= 2


def _to_rgb(img: np.ndarray, scale: float) -> np.ndarray:
    """BGR / BGRA / gray / 16-bit image → uint8 RGB, area-downscaled by ``scale``."""
    if img.dtype == np.uint16:
        img = (img / 257.0).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ReconError(f"unsupported image dtype {img.dtype}; use 8- or 16-bit images")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if scale < 1.0:
        h, w = img.shape[:2]
        img = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img)


def _wanted(t: float, last_kept: float | None, count: int, sel: FrameSelection) -> bool:
    """Whether the decoded frame number ``count`` at ``t`` seconds is kept under the selection."""
    if t < float(sel.start) - 1e-9 or (sel.end is not None and t > float(sel.end) + 1e-9):
        return False
    if sel.fps is not None:
        return last_kept is None or t - last_kept >= 1.0 / float(sel.fps) - 1e-6
    return count % int(sel.stride) == 0


def _read_video(path: Path, sel: FrameSelection, acc: _Accumulator, progress: bool) -> None:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ReconError(f"cannot open '{path}' as a video (corrupt, or a codec OpenCV lacks); re-encode it "
                         "(e.g. `ffmpeg -i IN -c:v libx264 OUT.mp4`) or pass a folder of images")
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        last_kept: float | None = None
        in_range = 0
        bar = tqdm(total=total, desc="decode", unit="frame", disable=not progress, leave=False)
        n = 0
        while True:
            if not cap.grab():
                break
            msec = cap.get(cv2.CAP_PROP_POS_MSEC)
            t = msec / 1e3 if msec > 0 or n == 0 else (n / fps if fps > 0 else float(n))
            n += 1
            bar.update(1)
            if sel.end is not None and t > float(sel.end) + 1e-9:
                break
            if t < float(sel.start) - 1e-9:
                continue
            keep = _wanted(t, last_kept, in_range, sel)
            in_range += 1
            if not keep or (acc.times and t <= acc.times[-1]):
                continue
            ok, img = cap.retrieve()
            if not ok or img is None:
                continue
            acc.add(img, t, n - 1, f"frame {n - 1} of '{path}'")
            last_kept = t
        bar.close()
    finally:
        cap.release()
    if n == 0:
        raise ReconError(f"'{path}' holds no decodable video frames (empty, corrupt, or not a video); re-encode it "
                         "or pass a folder of images")


def _natural_key(name: str) -> list[object]:
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", name)]


def _read_folder(path: Path, sel: FrameSelection, acc: _Accumulator, progress: bool) -> None:
    files = sorted((f for f in path.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES),
                   key=lambda f: _natural_key(f.name))
    if not files:
        raise ReconError(f"folder '{path}' holds no images ({', '.join(IMAGE_SUFFIXES)}); pass a video or images")
    stamp_file = path / "timestamps.txt"
    if stamp_file.exists():
        try:
            all_times = np.loadtxt(stamp_file, dtype=np.float64, ndmin=1)
        except ValueError as e:
            raise ReconError(f"{stamp_file} must hold one time in seconds per line: {e}") from e
        if all_times.shape != (len(files),):
            raise ReconError(f"{stamp_file} has {all_times.size} times for {len(files)} images; give one per image")
        if not np.all(np.diff(all_times) > 0):
            raise ReconError(f"{stamp_file}: times must be strictly increasing in image-name order")
    else:
        all_times = np.arange(len(files)) / (float(sel.fps) if sel.fps else FOLDER_DEFAULT_FPS)
    last_kept: float | None = None
    in_range = 0
    items = list(zip(files, all_times, strict=True))
    for i, (f, t) in enumerate(tqdm(items, desc="read", unit="image", disable=not progress, leave=False)):
        if sel.end is not None and t > float(sel.end) + 1e-9:
            break
        if t < float(sel.start) - 1e-9:
            continue
        keep = _wanted(float(t), last_kept, in_range, sel)
        in_range += 1
        if not keep:
            continue
        img = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise ReconError(f"cannot read image '{f}' (corrupt or unsupported); remove or re-save it")
        acc.add(img, float(t), i, f"image '{f.name}'")
        last_kept = float(t)
