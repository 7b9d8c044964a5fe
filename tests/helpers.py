"""Hand-made scenes with known geometry for convention tests (no pybullet)."""

from __future__ import annotations

import numpy as np

from inspatio_sim.conventions import intrinsics_from_fov, look_at
from inspatio_sim.scene import Scene, SceneMeta


def checker(h: int, w: int, cell: int, seed: int = 0) -> np.ndarray:
    """A random-colour checkerboard ``(h, w, 3)`` uint8 with ``cell``-pixel cells."""
    rng = np.random.default_rng(seed)
    cells = (rng.random((h // cell + 1, w // cell + 1, 3)) * 255).astype(np.uint8)
    return np.repeat(np.repeat(cells, cell, axis=0), cell, axis=1)[:h, :w]


def wall_scene(n: int = 3, h: int = 48, w: int = 64, distance: float = 3.0) -> Scene:
    """``n`` frames of a camera at (0, 0, 1.5) looking along +x at the textured wall x = ``distance``.

    The camera translates sideways (+y) by exactly 4 pixels' worth per frame and every frame's image is the wall
    texture shifted accordingly, so all frames agree on the same wall (exact depth ``distance``).
    """
    K = intrinsics_from_fov(w, h, 70.0)
    big = checker(h, w + 4 * n, 4)
    step = 4 * distance / K[0, 0]
    poses, frames = [], []
    for i in range(n):
        poses.append(look_at([0.0, step * i, 1.5], [distance, step * i, 1.5]))
        # moving left (+y), the camera sees the wall shift right in the image: crop further left in the texture
        shift = 4 * (n - i)
        frames.append(big[:, shift:shift + w])
    return Scene(
        frames=np.stack(frames), timestamps=np.arange(n) / 10.0, K=K, poses=np.stack(poses),
        depth=np.full((n, h, w), distance, np.float32), confidence=np.ones((n, h, w), np.float32),
        dynamic_mask=np.zeros((n, h, w), bool), meta=SceneMeta(source="test:wall", fps=10.0, scale_origin="exact"),
    )


def leaf_keys(node: dict, prefix: str = ""):
    """Dotted keys of the leaves of a nested dict (a config as a container)."""
    for k, v in node.items():
        if isinstance(v, dict):
            yield from leaf_keys(v, f"{prefix}{k}.")
        else:
            yield prefix + k
