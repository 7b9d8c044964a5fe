"""Small charts written with OpenCV (matplotlib is not a dependency): bar charts with intervals, line charts."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from inspatio_sim.fileio import atomic_write

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _save(img: np.ndarray, path: str | Path) -> Path:
    target = Path(path)
    with atomic_write(target) as tmp:
        cv2.imwrite(str(tmp), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return target


def bar_chart(labels: list[str], values: list[float], intervals: list[tuple[float, float]] | None, path: str | Path,
              title: str, ymax: float | None = None) -> Path:
    """A PNG bar chart of ``values`` (NaN bars are left out) with 95 % interval whiskers; returns the path."""
    w, h, left, bottom, top = 120 + 110 * len(labels), 360, 60, 60, 40
    img = np.full((h, w, 3), 255, np.uint8)
    finite = [v for v in values if np.isfinite(v)] + [hi for _, hi in (intervals or []) if np.isfinite(hi)]
    vmax = ymax if ymax is not None else max([1e-9, *finite]) * 1.1
    scale = (h - bottom - top) / vmax
    y0 = h - bottom
    cv2.line(img, (left, y0), (w - 20, y0), (0, 0, 0), 1)
    cv2.line(img, (left, y0), (left, top), (0, 0, 0), 1)
    for t in np.linspace(0, vmax, 5):
        y = int(y0 - t * scale)
        cv2.line(img, (left - 4, y), (left, y), (0, 0, 0), 1)
        cv2.putText(img, f"{t:.2g}", (5, y + 4), FONT, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    for k, (label, v) in enumerate(zip(labels, values, strict=True)):
        x = left + 20 + 110 * k
        if np.isfinite(v):
            cv2.rectangle(img, (x, int(y0 - v * scale)), (x + 70, y0), COLOURS[k % len(COLOURS)], -1)
            cv2.putText(img, f"{v:.3f}", (x + 5, int(y0 - v * scale) - 6), FONT, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        if intervals is not None and np.all(np.isfinite(intervals[k])):
            lo, hi = intervals[k]
            cx = x + 35
            cv2.line(img, (cx, int(y0 - lo * scale)), (cx, int(y0 - hi * scale)), (0, 0, 0), 1)
            for yy in (lo, hi):
                cv2.line(img, (cx - 6, int(y0 - yy * scale)), (cx + 6, int(y0 - yy * scale)), (0, 0, 0), 1)
        cv2.putText(img, label[:14], (x, y0 + 20), FONT, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, title, (left, 25), FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return _save(img, path)


def line_chart(x: np.ndarray, series: dict[str, np.ndarray], path: str | Path, title: str, xlabel: str) -> Path:
    """A PNG line chart of ``series`` (name -> ``(N,)``, NaN gaps skipped) over ``x (N,)``; returns the path."""
    w, h, left, bottom, top, right = 640, 360, 60, 50, 40, 150
    img = np.full((h, w, 3), 255, np.uint8)
    x = np.asarray(x, np.float64)
    ys = [np.asarray(v, np.float64) for v in series.values()]
    finite = np.concatenate([y[np.isfinite(y)] for y in ys] + [np.zeros(1)])
    ymin, ymax = min(0.0, float(finite.min())), max(1e-9, float(finite.max())) * 1.05
    xmax = max(float(x.max()) if x.size else 1.0, 1e-9)

    def px(xv: float, yv: float) -> tuple[int, int]:
        return (int(left + xv / xmax * (w - left - right)), int(h - bottom - (yv - ymin) / (ymax - ymin)
                                                                * (h - bottom - top)))

    cv2.rectangle(img, (left, top), (w - right, h - bottom), (0, 0, 0), 1)
    for t in np.linspace(ymin, ymax, 5):
        cv2.putText(img, f"{t:.2g}", (5, px(0, t)[1] + 4), FONT, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    for t in np.linspace(0, xmax, 5):
        cv2.putText(img, f"{t:.3g}", (px(t, ymin)[0] - 10, h - bottom + 15), FONT, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    for k, (name, y) in enumerate(zip(series, ys, strict=True)):
        c = COLOURS[k % len(COLOURS)]
        pts = [px(a, b) for a, b in zip(x, y, strict=True) if np.isfinite(b)]
        if len(pts) > 1:
            cv2.polylines(img, [np.array(pts, np.int32)], False, c, 2, cv2.LINE_AA)
        cv2.putText(img, name, (w - right + 10, top + 20 + 20 * k), FONT, 0.45, c, 1, cv2.LINE_AA)
    cv2.putText(img, title, (left, 25), FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, xlabel, (w // 2 - 40, h - 12), FONT, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return _save(img, path)
