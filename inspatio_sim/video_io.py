"""Video writing (OpenCV's wheel writes ``mp4v`` MPEG-4 Part 2; it reads H.264 too). Writes are atomic."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from inspatio_sim.errors import InSpatioError
from inspatio_sim.fileio import atomic_write


def write_video(frames: Iterable[np.ndarray], path: str | Path, fps: float) -> Path:
    """Write ``(H, W, 3)`` uint8 RGB frames to ``path`` (``.mp4``: mp4v, ``.avi``: MJPG); return the path.

    The file appears only when complete (:func:`inspatio_sim.fileio.atomic_write`).
    """
    target = Path(path)
    codec = "MJPG" if target.suffix.lower() == ".avi" else "mp4v"
    with atomic_write(target) as tmp:
        writer: cv2.VideoWriter | None = None
        try:
            for img in frames:
                if writer is None:
                    h, w = img.shape[:2]
                    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*codec), float(fps), (w, h))
                    if not writer.isOpened():
                        raise InSpatioError(f"OpenCV cannot write {target} with the {codec} codec; use .mp4 or .avi")
                writer.write(cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR))
            if writer is None:
                raise InSpatioError(f"no frames to write to {target}")
        finally:
            if writer is not None:
                writer.release()
    return target
