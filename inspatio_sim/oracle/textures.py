"""Procedural photo textures for the oracle scenes, built from images bundled with scikit-image (no download).

Every function takes a seeded :class:`numpy.random.Generator` and returns an ``(H, W, 3)`` uint8 RGB image whose
row 0 is the *top* of the surface. Sizes are given in texels; callers pick the texel size in metres
(:data:`TEXEL_M` by default), so a texture ``w`` texels wide covers ``w * texel`` metres of surface.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from inspatio_sim.fileio import atomic_write

TEXEL_M: float = 0.005
"""Default texel size on walls and crates, in metres (5 mm: sharp for SIFT, not an aliasing mess at 320x240)."""

PHOTOS: tuple[str, ...] = (
    "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
    "camera", "coins", "page", "text", "moon", "clock", "colorwheel",
)
"""``skimage.data`` images used as posters, labels and signs (all bundled with scikit-image, load offline)."""

MATERIALS: tuple[str, ...] = ("brick", "gravel", "grass", "moon")
"""``skimage.data`` grey images used as tileable surface materials (tinted)."""

CACHE_ENV: str = "INSPATIO_ORACLE_CACHE"
"""Environment variable overriding the texture cache directory."""


@functools.cache
def photo(name: str) -> np.ndarray:
    """A ``skimage.data`` image as ``(H, W, 3)`` uint8 RGB (grey images replicated, alpha dropped). Read-only."""
    import skimage.data

    img = np.asarray(getattr(skimage.data, name)())
    if img.dtype == np.bool_:
        img = img.astype(np.uint8) * 255
    elif img.dtype != np.uint8:
        img = np.clip(img * (255.0 if img.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = np.ascontiguousarray(img[..., :3])
    img.setflags(write=False)
    return img


def resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize with area averaging when shrinking and cubic interpolation when enlarging."""
    width, height = max(1, int(width)), max(1, int(height))
    shrink = width * height < img.shape[0] * img.shape[1]
    out = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    return out.reshape(height, width, 3)


def random_crop(rng: np.random.Generator, img: np.ndarray, aspect: float, min_frac: float = 0.75) -> np.ndarray:
    """A seeded crop of ``img`` with width/height ratio ``aspect`` covering at least ``min_frac`` of the short side."""
    h, w = img.shape[:2]
    ch_max = min(h, w / aspect)
    ch = ch_max * rng.uniform(min_frac, 1.0)
    cw = ch * aspect
    y0 = rng.uniform(0, h - ch)
    x0 = rng.uniform(0, w - cw)
    return img[int(y0): int(y0 + ch), int(x0): int(x0 + cw)]


def tint(grey: np.ndarray, colour: tuple[float, float, float], contrast: float = 1.0) -> np.ndarray:
    """Colourise a grey image as ``colour * (1 + contrast * z / 4)``, ``z`` the standardised grey level (uint8 RGB)."""
    g = grey[..., :3].mean(axis=2, keepdims=True).astype(np.float32) / 255.0
    g = 1.0 + contrast * (g - g.mean()) / max(float(g.std()), 1e-3) * 0.25
    out = g * np.asarray(colour, dtype=np.float32)[None, None, :]
    return np.clip(out, 0, 255).astype(np.uint8)


def material(
    rng: np.random.Generator, name: str, width: int, height: int, colour: tuple[float, float, float],
    contrast: float = 1.0, texels_per_tile: int = 320,
) -> np.ndarray:
    """A ``height x width`` surface tiled with randomly flipped, tinted copies of a grey ``skimage.data`` material.

    Args:
        rng: Seeded generator (flips of each tile).
        name: One of :data:`MATERIALS`.
        width: Output width in texels.
        height: Output height in texels.
        colour: Mean RGB colour (0-255).
        contrast: Relative contrast of the material pattern (1 = moderate).
        texels_per_tile: Size of one copy of the source image on the surface, in texels.
    """
    src = photo(name)
    side = min(src.shape[:2])
    tile = tint(resize(src[:side, :side], texels_per_tile, texels_per_tile), colour, contrast)
    ny, nx = -(-height // texels_per_tile), -(-width // texels_per_tile)
    rows = []
    for _ in range(ny):
        row = []
        for _ in range(nx):
            t = tile
            if rng.random() < 0.5:
                t = t[:, ::-1]
            if rng.random() < 0.5:
                t = t[::-1]
            row.append(t)
        rows.append(np.concatenate(row, axis=1))
    return np.ascontiguousarray(np.concatenate(rows, axis=0)[:height, :width])


def paste(canvas: np.ndarray, img: np.ndarray, x0: int, y0: int, frame: int = 0,
          frame_colour: tuple[int, int, int] = (40, 34, 30)) -> None:
    """Paste ``img`` (with an optional ``frame``-texel border) into ``canvas`` at top-left ``(x0, y0)``, clipped."""
    if frame > 0:
        img = cv2.copyMakeBorder(img, frame, frame, frame, frame, cv2.BORDER_CONSTANT, value=frame_colour)
        x0, y0 = x0 - frame, y0 - frame
    h, w = img.shape[:2]
    H, W = canvas.shape[:2]
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + w, W), min(y0 + h, H)
    if xa < xb and ya < yb:
        canvas[ya:yb, xa:xb] = img[ya - y0: yb - y0, xa - x0: xb - x0]


def poster(rng: np.random.Generator, name: str, width: int, height: int) -> np.ndarray:
    """A seeded crop of photo ``name`` resized to ``width x height`` texels."""
    return resize(random_crop(rng, photo(name), width / height), width, height)


def wall(
    rng: np.random.Generator, width: int, height: int, base: np.ndarray, photos: list[str],
    texel: float = TEXEL_M, poster_height_m: tuple[float, float] = (0.6, 1.1), centre_z_m: float = 1.45,
) -> np.ndarray:
    """A wall: ``base`` material with framed photo posters spread along it (seeded size, crop and position).

    Args:
        rng: Seeded generator.
        width: Width in texels.
        height: Height in texels (row 0 is the top of the wall).
        base: ``(height, width, 3)`` base material.
        photos: Names of the photos hung on this wall, left to right.
        texel: Texel size in metres.
        poster_height_m: Range of poster heights in metres.
        centre_z_m: Height of the poster centres above the bottom edge, in metres.
    """
    canvas = base.copy()
    n = len(photos)
    for i, name in enumerate(photos):
        src = photo(name)
        aspect = float(np.clip(src.shape[1] / src.shape[0] * rng.uniform(0.85, 1.15), 0.6, 1.8))
        ph = int(rng.uniform(*poster_height_m) / texel)
        pw = int(ph * aspect)
        slot = width / n
        cx = slot * (i + 0.5) + rng.uniform(-0.15, 0.15) * slot
        cz = centre_z_m / texel + rng.uniform(-0.1, 0.1) / texel
        x0 = int(np.clip(cx - pw / 2, 0.05 / texel, max(0.05 / texel, width - pw - 0.05 / texel)))
        y0 = int(np.clip(height - cz - ph / 2, 0.05 / texel, max(0.05 / texel, height - ph - 0.05 / texel)))
        paste(canvas, poster(rng, name, pw, ph), x0, y0, frame=max(2, int(0.03 / texel)))
    return canvas


def facade(
    rng: np.random.Generator, width: int, height: int, base: np.ndarray, photos: list[str], texel: float,
) -> np.ndarray:
    """A building facade: ``base`` material, rows of framed windows (dark glass with a faint photo reflection) and,
    on the ground floor, shop signs / posters from ``photos``."""
    canvas = base.copy()
    m = 1.0 / texel
    floor_h = 2.6
    n_floors = max(1, int(height / m // floor_h))
    win_w, win_h = 1.0, 1.3
    n_win = max(1, int(width / m // 2.2))
    for f in range(n_floors):
        for k in range(n_win):
            if f == 0 and k % 2 == 1 and photos:
                continue
            cx = (k + 0.5) * width / n_win + rng.uniform(-0.1, 0.1) * m
            zb = f * floor_h + 0.9 + rng.uniform(-0.05, 0.05)
            if (zb + win_h) * m > height - 0.2 * m:
                continue
            reflection = str(rng.choice(["hubble_deep_field", "rocket", "moon", "camera"]))
            glass = poster(rng, reflection, int(win_w * m), int(win_h * m))
            glass = (glass.astype(np.float32) * 0.35 + np.array([20, 30, 45], np.float32)).clip(0, 255).astype(np.uint8)
            # mullions make each window a distinct local pattern
            t = max(2, int(0.04 * m))
            glass[:, glass.shape[1] // 2 - t // 2: glass.shape[1] // 2 + t // 2 + 1] = (225, 220, 205)
            glass[glass.shape[0] // 3 - t // 2: glass.shape[0] // 3 + t // 2 + 1] = (225, 220, 205)
            paste(canvas, glass, int(cx - win_w * m / 2), int(height - (zb + win_h) * m),
                  frame=max(2, int(0.06 * m)), frame_colour=(230, 225, 210))
    for k, name in enumerate(photos):
        slot = width / max(1, len(photos))
        pw = int(min(1.6 * m, 0.8 * slot))
        ph = int(pw * rng.uniform(0.6, 0.9))
        cx = slot * (k + 0.5)
        paste(canvas, poster(rng, name, pw, ph), int(cx - pw / 2), int(height - 2.3 * m), frame=max(2, int(0.05 * m)))
    return canvas


def crate_face(rng: np.random.Generator, width: int, height: int, label: str, colour: tuple[float, float, float],
               texel: float = TEXEL_M) -> np.ndarray:
    """A cardboard/wood crate face: tinted material, dark edge band and a photo label in the middle."""
    canvas = material(rng, "gravel", width, height, colour, contrast=0.6, texels_per_tile=max(64, int(0.8 / texel)))
    band = max(2, int(0.025 / texel))
    edge = (60, 40, 25)
    canvas[:band], canvas[-band:], canvas[:, :band], canvas[:, -band:] = edge, edge, edge, edge
    lw, lh = int(width * rng.uniform(0.55, 0.75)), int(height * rng.uniform(0.5, 0.7))
    if lw > 4 and lh > 4:
        x0 = int((width - lw) * rng.uniform(0.3, 0.7))
        y0 = int((height - lh) * rng.uniform(0.3, 0.7))
        paste(canvas, poster(rng, label, lw, lh), x0, y0, frame=max(1, int(0.01 / texel)), frame_colour=(245, 240, 230))
    return canvas


def cache_dir() -> Path:
    """Directory where texture PNGs are cached (``$INSPATIO_ORACLE_CACHE`` or ``<tmp>/inspatio_sim_oracle``).

    Files are named by a hash of their content (about 10 MB per preset and seed), so stale files are never reused
    and the directory can be deleted at any time.
    """
    return Path(os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "inspatio_sim_oracle")


def write_png(img: np.ndarray, directory: Path | None = None) -> Path:
    """Write ``img`` (RGB uint8) as a PNG named by its content hash, atomically; reuse it if already there."""
    directory = cache_dir() if directory is None else directory
    img = np.ascontiguousarray(img, dtype=np.uint8)
    digest = hashlib.sha1(img.tobytes() + repr(img.shape).encode()).hexdigest()[:20]
    path = directory / f"tex_{digest}.png"
    if not path.exists():
        with atomic_write(path) as tmp:
            if not cv2.imwrite(str(tmp), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
                raise OSError(f"cannot write texture {path}")
    return path


def paint(
    rng: np.random.Generator, width: int, height: int, colour: tuple[float, float, float], grain: float = 0.05,
    shade: np.ndarray | None = None,
) -> np.ndarray:
    """A painted surface: ``colour`` times a smooth shading field, with at most a faint grain (uint8 RGB).

    Args:
        rng: Seeded generator (flips of the grain tiles).
        width: Width in texels.
        height: Height in texels.
        colour: Mean RGB colour (0-255).
        grain: Contrast of the faint plaster grain (``material`` contrast of the ``moon`` image; 0 = none).
        shade: Optional ``(height, width)`` multiplicative shading field (about 1), e.g. from
            :func:`smooth_field`; ``None`` = uniform.
    """
    base = np.broadcast_to(np.asarray(colour, np.float32), (height, width, 3)).copy()
    if grain > 0:
        base = material(rng, "moon", width, height, colour, contrast=grain, texels_per_tile=256).astype(np.float32)
    if shade is not None:
        base *= shade[..., None]
    return np.clip(np.round(base), 0, 255).astype(np.uint8)


def smooth_field(points: np.ndarray, waves: np.ndarray) -> np.ndarray:
    """A smooth shading factor at world points ``(..., 3)`` (metres): ``1 + sum_k a_k sin(k_k . p + phi_k)``.

    ``waves`` is ``(K, 5)``: wave vector (3, radians per metre), amplitude and phase per row. Evaluated on world
    positions, the field is continuous across faces and boxes (like soft light fall-off on painted walls).
    """
    p = np.asarray(points, np.float64)
    arg = p @ waves[:, :3].T + waves[:, 4]
    return (1.0 + (np.sin(arg) * waves[:, 3]).sum(axis=-1)).astype(np.float32)


def bookshelf(rng: np.random.Generator, width: int, height: int, texel: float = TEXEL_M) -> np.ndarray:
    """The front of a filled bookshelf: dark shelf boards every ~0.35 m, rows of books of seeded colours, widths
    and heights (a strongly textured object; row 0 at the top)."""
    wood = np.array([92, 64, 42], np.uint8)
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = wood
    board, shelf = max(2, int(0.025 / texel)), max(8, int(0.35 / texel))
    y = board
    while y + shelf // 2 < height - board:
        x = board
        while x < width - board:
            bw = int(rng.uniform(0.02, 0.05) / texel)
            bh = int(shelf * rng.uniform(0.6, 0.92))
            colour = rng.integers(30, 230, size=3).astype(np.uint8)
            top = y + shelf - bh
            canvas[top: y + shelf, x: min(x + bw, width - board)] = colour
            band = max(1, bw // 6)
            canvas[top + bh // 5: top + bh // 5 + band, x: min(x + bw, width - board)] = 255 - colour
            x += bw + int(rng.integers(0, 2))
            if rng.random() < 0.08:
                x += int(rng.uniform(0.05, 0.15) / texel)  # a gap
        y += shelf + board
    return canvas
