"""Oracle scene presets: declarative descriptions of textured boxes, ``pybullet_data`` objects, motions and the
camera path, built deterministically from ``(preset, seed)``.

World frame: REP-103, z up, ground at ``z = 0`` (see :mod:`inspatio_sim.conventions`). Lengths in metres, angles in
radians unless the name says ``_deg``, time in seconds.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass, field

import numpy as np

from inspatio_sim.oracle import textures as tx

FACES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "+x": ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "-x": ((-1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "+y": ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "-y": ((0.0, -1.0, 0.0), (0.0, 0.0, 1.0)),
    "+z": ((0.0, 0.0, 1.0), (1.0, 0.0, 0.0)),
    "-z": ((0.0, 0.0, -1.0), (1.0, 0.0, 0.0)),
}
"""Box faces in the body frame: name -> (outward normal, texture-up axis). Texture-right is ``up x normal``."""


def face_extent(size: tuple[float, float, float], face: str) -> tuple[float, float]:
    """(width, height) in metres of a face of a box with full extents ``size``, as seen from outside."""
    n, up = (np.asarray(a) for a in FACES[face])
    right = np.cross(up, n)
    s = np.asarray(size, dtype=np.float64)
    return float(np.abs(right) @ s), float(np.abs(up) @ s)


@dataclass(frozen=True)
class Slide:
    """Smooth back-and-forth translation: ``offset(t) = delta * sin(2 pi t / period + phase)`` (metres)."""

    delta: tuple[float, float, float]
    period: float
    phase: float = 0.0

    def offset(self, t: float) -> tuple[np.ndarray, float]:
        """(position offset (3,) metres, yaw offset radians) from the rest pose at time ``t`` seconds."""
        return np.asarray(self.delta, dtype=np.float64) * np.sin(2 * np.pi * t / self.period + self.phase), 0.0


@dataclass(frozen=True)
class Orbit:
    """Horizontal circle of ``radius`` around the rest position, facing along the direction of travel."""

    radius: float
    period: float
    phase: float = 0.0

    def offset(self, t: float) -> tuple[np.ndarray, float]:
        """(position offset (3,) metres, yaw offset radians) from the rest pose at time ``t`` seconds."""
        a = 2 * np.pi * t / self.period + self.phase
        return np.array([self.radius * np.cos(a), self.radius * np.sin(a), 0.0]), float(a + np.pi / 2)


Motion = Slide | Orbit


@dataclass(frozen=True)
class Block:
    """A box with photo-textured faces (a wall, the floor, a crate, a building).

    Attributes:
        name: Unique name.
        size: Full extents (x, y, z) in the body frame, metres.
        position: Rest position of the box centre in the world, metres.
        yaw: Rest rotation about world z, radians.
        faces: Face name (see :data:`FACES`) -> ``(H, W, 3)`` uint8 texture, row 0 at the face top; faces not
            listed are not drawn (but still collide).
        motion: Optional motion over time (a dynamic object).
    """

    name: str
    size: tuple[float, float, float]
    position: tuple[float, float, float]
    yaw: float
    faces: dict[str, np.ndarray]
    motion: Motion | None = None


@dataclass(frozen=True)
class UrdfObject:
    """A ``pybullet_data`` model, fixed, resting on ``support_z`` (its lowest point is lifted onto it).

    Attributes:
        name: Unique name.
        file: Path relative to ``pybullet_data.getDataPath()``.
        position: Rest (x, y) of the base and the support height z, metres.
        yaw: Rotation about world z, radians (applied after ``rpy``).
        scale: ``globalScaling``.
        rpy: Base roll/pitch/yaw bringing the model upright, radians.
        motion: Optional motion over time.
        lift: Rest the lowest collision point on ``support_z``; if False, ``support_z`` is the base z (for models
            whose collision shape does not reach the floor, like the table).
    """

    name: str
    file: str
    position: tuple[float, float, float]
    yaw: float = 0.0
    scale: float = 1.0
    rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)
    motion: Motion | None = None
    lift: bool = True


@dataclass(frozen=True)
class PathSpec:
    """Camera path: an ellipse loop looking outward, plus seeded low-frequency wobble.

    Attributes:
        centre: (x, y) of the loop centre, metres.
        semi_axes: (a, b) ellipse semi-axes along world x and y, metres.
        height: Mean camera height above the ground, metres.
        pitch_deg: Mean pitch, degrees (negative looks down).
        pos_wobble: Max position wobble per axis, metres.
        rot_wobble_deg: Max (yaw, pitch, roll) wobble, degrees.
        yaw_offset_deg: Offset of the viewing direction from the outward radial direction, degrees.
    """

    centre: tuple[float, float]
    semi_axes: tuple[float, float]
    height: float = 1.4
    pitch_deg: float = -12.0
    pos_wobble: tuple[float, float, float] = (0.05, 0.05, 0.04)
    rot_wobble_deg: tuple[float, float, float] = (4.0, 2.5, 1.5)
    yaw_offset_deg: float = 0.0


@dataclass(frozen=True)
class PresetSpec:
    """Everything needed to instantiate a preset in pybullet.

    Attributes:
        name: Preset name.
        seed: Seed it was built with.
        blocks: Textured boxes.
        urdfs: ``pybullet_data`` objects.
        path: Camera path.
        near: Near clip plane, metres.
        far: Far clip plane, metres (nothing in the scene is farther).
        light_direction: Unit vector from surfaces towards the light, world frame.
        ambient: Ambient coefficient.
        diffuse: Diffuse (Lambertian) coefficient.
        sky: Whether uncovered pixels show sky (drawn as a gradient over elevation; depth 0).
    """

    name: str
    seed: int
    blocks: tuple[Block, ...]
    urdfs: tuple[UrdfObject, ...]
    path: PathSpec
    near: float
    far: float
    light_direction: tuple[float, float, float]
    ambient: float
    diffuse: float
    sky: bool
    extra: dict[str, object] = field(default_factory=dict)


def _unit(v: tuple[float, float, float]) -> tuple[float, float, float]:
    a = np.asarray(v, dtype=np.float64)
    return tuple(float(x) for x in a / np.linalg.norm(a))  # type: ignore[return-value]


def _tex_shape(size: tuple[float, float, float], face: str, texel: float) -> tuple[int, int]:
    w, h = face_extent(size, face)
    return max(8, round(w / texel)), max(8, round(h / texel))


def _crate(rng: np.random.Generator, name: str, size: tuple[float, float, float], position: tuple[float, float, float],
           yaw_deg: float, motion: Motion | None = None, texel: float = tx.TEXEL_M) -> Block:
    """A crate with a different photo label on each side face and the top."""
    colour = tuple(float(c) for c in rng.choice([(185, 140, 95), (160, 120, 80), (200, 165, 115), (140, 150, 120)]))
    faces = {}
    for face in ("+x", "-x", "+y", "-y", "+z"):
        w, h = _tex_shape(size, face, texel)
        faces[face] = tx.crate_face(rng, w, h, str(rng.choice(tx.PHOTOS)), colour, texel)  # type: ignore[arg-type]
    return Block(name, size, position, float(np.deg2rad(yaw_deg)), faces, motion)


def _jitter(rng: np.random.Generator, xy: tuple[float, float], amount: float = 0.08) -> tuple[float, float]:
    d = rng.uniform(-amount, amount, size=2)
    return float(xy[0] + d[0]), float(xy[1] + d[1])


def _room(seed: int) -> PresetSpec:
    rng = np.random.default_rng([seed, zlib.crc32(b"room")])
    sx, sy, sz = 6.0, 5.0, 2.8
    t, eps, texel = 0.2, 0.01, tx.TEXEL_M
    blocks: list[Block] = []
    photos = list(tx.PHOTOS)
    rng.shuffle(photos)
    wall_colours = [(205, 175, 150), (195, 185, 165), (210, 190, 160), (185, 175, 170)]
    walls = [  # name, centre, size, inner face
        ("wall_px", (sx / 2 + t / 2, 0.0, sz / 2), (t, sy + 2 * eps, sz + 2 * eps), "-x"),
        ("wall_nx", (-sx / 2 - t / 2, 0.0, sz / 2), (t, sy + 2 * eps, sz + 2 * eps), "+x"),
        ("wall_py", (0.0, sy / 2 + t / 2, sz / 2), (sx + 2 * eps, t, sz + 2 * eps), "-y"),
        ("wall_ny", (0.0, -sy / 2 - t / 2, sz / 2), (sx + 2 * eps, t, sz + 2 * eps), "+y"),
    ]
    for k, (name, centre, size, face) in enumerate(walls):
        w, h = _tex_shape(size, face, texel)
        base = tx.material(rng, "brick", w, h, wall_colours[k], contrast=0.55, texels_per_tile=320)
        hung = photos[3 * k: 3 * k + 3]
        blocks.append(Block(name, size, centre, 0.0, {face: tx.wall(rng, w, h, base, hung, texel)}))
    fsize = (sx + 2 * eps, sy + 2 * eps, t)
    w, h = _tex_shape(fsize, "+z", texel)
    floor = tx.material(rng, "gravel", w, h, (150, 138, 122), contrast=0.9, texels_per_tile=200)
    rug_w, rug_h = int(1.6 / texel), int(2.2 / texel)
    tx.paste(floor, tx.poster(rng, "immunohistochemistry", rug_w, rug_h), (w - rug_w) // 2, (h - rug_h) // 2,
             frame=int(0.08 / texel), frame_colour=(90, 40, 35))
    blocks.append(Block("floor", fsize, (0.0, 0.0, -t / 2), 0.0, {"+z": floor}))
    w, h = _tex_shape(fsize, "-z", texel)
    ceiling = tx.material(rng, "moon", w, h, (232, 228, 220), contrast=0.5, texels_per_tile=400)
    blocks.append(Block("ceiling", fsize, (0.0, 0.0, sz + t / 2), 0.0, {"-z": ceiling}))

    crates = [  # name, size, (x, y), z of the support, yaw_deg
        ("crate_a", (0.7, 0.6, 0.6), (-2.45, 1.75), 0.0, 8.0),
        ("crate_c", (0.9, 0.5, 0.5), (-2.3, -1.95), 0.0, 5.0),
        ("crate_d", (0.4, 0.4, 0.4), (1.7, 2.05), 0.0, 20.0),
        ("crate_e", (0.5, 0.6, 1.0), (2.6, 0.9), 0.0, 0.0),
        ("crate_f", (0.35, 0.35, 0.35), (0.45, -2.2), 0.0, 30.0),
    ]
    placed = {}
    for name, size, xy, z0, yaw in crates:
        x, y = _jitter(rng, xy)
        yaw = yaw + rng.uniform(-10, 10)
        placed[name] = (x, y)
        blocks.append(_crate(rng, name, size, (x, y, z0 + size[2] / 2), yaw))
    ax, ay = placed["crate_a"]
    blocks.append(_crate(rng, "crate_b", (0.45, 0.45, 0.45), (ax + 0.02, ay + 0.03, 0.6 + 0.225), rng.uniform(-25, 0)))
    slide = Slide(delta=(0.5, 0.0, 0.0), period=4.0, phase=0.0)
    blocks.append(_crate(rng, "mover_crate", (0.5, 0.5, 0.5), (-0.3, 1.95, 0.25), 0.0, motion=slide))

    tx_, ty_ = _jitter(rng, (2.2, -1.55), 0.05)
    urdfs = (
        UrdfObject("table", "table/table.urdf", (tx_, ty_, 0.0), yaw=np.pi / 2, lift=False),
        UrdfObject("duck", "duck_vhacd.urdf", (tx_ + 0.1, ty_ + 0.25, 0.625), yaw=rng.uniform(0, 2 * np.pi),
                   scale=4.0, rpy=(np.pi / 2, 0.0, 0.0)),
        UrdfObject("mug", "objects/mug.urdf", (tx_ - 0.2, ty_ - 0.35, 0.625), yaw=rng.uniform(0, 2 * np.pi), scale=2.0),
        UrdfObject("teddy", "teddy_vhacd.urdf", (*_jitter(rng, (-1.2, -2.05), 0.05), 0.0),
                   yaw=rng.uniform(0, 2 * np.pi), scale=5.0, rpy=(np.pi / 2, 0.0, 0.0)),
    )
    path = PathSpec(centre=(0.0, 0.0), semi_axes=(0.8, 0.6), height=1.4, pitch_deg=-12.0)
    return PresetSpec("room", seed, tuple(blocks), urdfs, path, near=0.05, far=20.0,
                      light_direction=_unit((0.35, 0.25, 1.0)), ambient=0.62, diffuse=0.38, sky=False,
                      extra={"size_m": [sx, sy, sz]})


def _courtyard(seed: int) -> PresetSpec:
    rng = np.random.default_rng([seed, zlib.crc32(b"courtyard")])
    sx, sy, t, eps = 12.0, 10.0, 0.2, 0.01
    blocks: list[Block] = []
    gsize = (sx + 4.0, sy + 4.0, t)
    gtexel = 0.008
    w, h = _tex_shape(gsize, "+z", gtexel)
    ground = tx.material(rng, "gravel", w, h, (170, 158, 135), contrast=0.9, texels_per_tile=150)
    grass = tx.material(rng, "grass", w, h, (95, 135, 60), contrast=1.0, texels_per_tile=256)
    noise = rng.random((max(2, h // 150), max(2, w // 150))).astype(np.float32)
    blob = tx.cv2.resize(noise, (w, h), interpolation=tx.cv2.INTER_CUBIC)
    mask = (blob > 0.62)[..., None]
    ground = np.where(mask, grass, ground)
    # a paved path across the yard (image rows run along world -x, columns along world -y)
    paving = tx.material(rng, "brick", w, int(1.4 / gtexel), (150, 150, 155), contrast=0.8, texels_per_tile=200)
    ground[h // 2 - paving.shape[0] // 2: h // 2 - paving.shape[0] // 2 + paving.shape[0]] = paving
    blocks.append(Block("ground", gsize, (0.0, 0.0, -t / 2), 0.0, {"+z": np.ascontiguousarray(ground)}))

    photos = list(tx.PHOTOS)
    rng.shuffle(photos)
    ftexel, depth = 0.01, 3.0
    colours = [(200, 160, 130), (215, 200, 170), (180, 120, 95), (205, 195, 185), (190, 175, 140)]
    sides = [  # axis position, inner face, normal sign, segments (start, end, height)
        ("px", sx / 2, "-x", [(-5.0, -1.2, 5.2), (-1.2, 1.8, 2.6), (1.8, 5.0, 6.5)]),
        ("nx", -sx / 2, "+x", [(-5.0, 0.5, 3.2), (0.5, 5.0, 5.5)]),
        ("py", sy / 2, "-y", [(-6.0, -1.0, 4.5), (-1.0, 2.5, 2.8), (2.5, 6.0, 6.0)]),
        ("ny", -sy / 2, "+y", [(-6.0, 1.5, 5.0), (1.5, 6.0, 3.0)]),
    ]
    k = 0
    for side, pos, face, segs in sides:
        along_x = side in ("py", "ny")
        sign = 1.0 if pos > 0 else -1.0
        for i, (a, b, hgt) in enumerate(segs):
            a, b = a - eps, b + eps
            length = b - a
            mid = (a + b) / 2
            if along_x:
                size, centre = (length, depth, hgt), (mid, pos + sign * depth / 2, hgt / 2)
                side_faces = ("+x", "-x")
            else:
                size, centre = (depth, length, hgt), (pos + sign * depth / 2, mid, hgt / 2)
                side_faces = ("+y", "-y")
            colour = colours[k % len(colours)]
            mat = "brick" if rng.random() < 0.6 else "moon"
            faces = {}
            w, h = _tex_shape(size, face, ftexel)
            base = tx.material(rng, mat, w, h, colour, contrast=0.6, texels_per_tile=200)
            if hgt < 3.0:  # garden wall: posters only
                faces[face] = tx.wall(rng, w, h, base, photos[k % len(photos): k % len(photos) + 2], ftexel,
                                      poster_height_m=(0.7, 1.0), centre_z_m=1.4)
            else:
                faces[face] = tx.facade(rng, w, h, base, photos[k % len(photos): k % len(photos) + 1], ftexel)
            for sf in side_faces:
                w, h = _tex_shape(size, sf, ftexel * 2)
                faces[sf] = tx.material(rng, mat, w, h, colour, contrast=0.6, texels_per_tile=100)
            blocks.append(Block(f"building_{side}{i}", size, centre, 0.0, faces))
            k += 1

    crates = [
        ("crate_a", (1.0, 0.8, 0.8), (4.6, -3.8), 0.0, 10.0),
        ("crate_c", (0.8, 0.8, 0.8), (-4.5, 3.6), 0.0, -15.0),
        ("crate_d", (1.2, 0.6, 0.6), (-4.9, -3.9), 0.0, 5.0),
        ("crate_e", (0.6, 0.6, 0.6), (2.5, 3.9), 0.0, 25.0),
        ("crate_f", (0.5, 0.5, 0.5), (0.5, -4.2), 0.0, 40.0),
    ]
    placed = {}
    for name, size, xy, z0, yaw in crates:
        x, y = _jitter(rng, xy, 0.15)
        placed[name] = (x, y)
        blocks.append(_crate(rng, name, size, (x, y, z0 + size[2] / 2), yaw + rng.uniform(-10, 10), texel=0.006))
    ax, ay = placed["crate_a"]
    blocks.append(_crate(rng, "crate_b", (0.6, 0.6, 0.6), (ax, ay, 0.8 + 0.3), rng.uniform(-30, 0), texel=0.006))
    blocks.append(_crate(rng, "mover_crate", (0.6, 0.6, 0.6), (3.3, 0.0, 0.3), 0.0,
                         motion=Slide(delta=(0.0, 0.55, 0.0), period=5.0), texel=0.006))

    tx_, ty_ = _jitter(rng, (-3.6, 0.0), 0.1)
    urdfs = (
        UrdfObject("table", "table/table.urdf", (tx_, ty_, 0.0), yaw=np.pi / 2, lift=False),
        UrdfObject("duck_table", "duck_vhacd.urdf", (tx_ + 0.1, ty_ - 0.3, 0.625), yaw=rng.uniform(0, 2 * np.pi),
                   scale=4.0, rpy=(np.pi / 2, 0.0, 0.0)),
        UrdfObject("teddy", "teddy_vhacd.urdf", (*_jitter(rng, (3.4, 3.2), 0.1), 0.0), yaw=rng.uniform(0, 2 * np.pi),
                   scale=7.0, rpy=(np.pi / 2, 0.0, 0.0)),
        UrdfObject("r2d2", "r2d2.urdf", (*_jitter(rng, (-2.4, -3.7), 0.1), 0.0), yaw=rng.uniform(0, 2 * np.pi),
                   scale=1.2),
        UrdfObject("mover_duck", "duck_vhacd.urdf", (-1.0, 3.4, 0.0), scale=6.0, rpy=(np.pi / 2, 0.0, 0.0),
                   motion=Orbit(radius=0.6, period=6.0)),
    )
    path = PathSpec(centre=(0.0, 0.0), semi_axes=(1.4, 1.0), height=1.45, pitch_deg=-6.0)
    return PresetSpec("courtyard", seed, tuple(blocks), urdfs, path, near=0.05, far=60.0,
                      light_direction=_unit((0.5, 0.3, 0.8)), ambient=0.55, diffuse=0.45, sky=True,
                      extra={"size_m": [sx, sy]})


def _face_points(block_size: tuple[float, float, float], position: tuple[float, float, float], yaw: float, face: str,
                 width: int, height: int) -> np.ndarray:
    """World positions ``(height, width, 3)`` (metres) of the texel centres of ``face`` of a box (row 0 at the top),
    with the texture layout of the oracle's mesh builder (texture-right ``up x normal``, texture v = 1 at row 0)."""
    n, up = (np.asarray(a, dtype=np.float64) for a in FACES[face])
    right = np.cross(up, n)
    fw, fh = face_extent(block_size, face)
    s = (np.arange(width) + 0.5) / width - 0.5
    t = 0.5 - (np.arange(height) + 0.5) / height
    centre = n * (np.abs(n) @ (0.5 * np.asarray(block_size, dtype=np.float64)))
    body = centre + (s * fw)[None, :, None] * right + (t * fh)[:, None, None] * up
    c, si = np.cos(yaw), np.sin(yaw)
    R = np.array([[c, -si, 0.0], [si, c, 0.0], [0.0, 0.0, 1.0]])
    return body @ R.T + np.asarray(position, dtype=np.float64)


def _painted(rng: np.random.Generator, name: str, size: tuple[float, float, float],
             position: tuple[float, float, float], yaw_deg: float, colour: tuple[float, float, float],
             faces: tuple[str, ...], waves: np.ndarray, grain: float, texel: float = tx.TEXEL_M,
             motion: Motion | None = None) -> Block:
    """A box with painted faces: one colour, a faint grain and the world-continuous shading field ``waves``."""
    yaw = float(np.deg2rad(yaw_deg))
    out = {}
    for face in faces:
        w, h = _tex_shape(size, face, texel)
        shade = tx.smooth_field(_face_points(size, position, yaw, face, w, h), waves)
        out[face] = tx.paint(rng, w, h, colour, grain, shade)
    return Block(name, size, position, yaw, out, motion)


def _shading_waves(rng: np.random.Generator, count: int = 3, amplitude: float = 0.07) -> np.ndarray:
    """``(count, 5)`` random low-frequency waves (wavelengths 2-6 m) for :func:`textures.smooth_field`."""
    direction = rng.normal(size=(count, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    k = direction * (2 * np.pi / rng.uniform(2.0, 6.0, size=(count, 1)))
    amp = rng.uniform(0.5, 1.0, size=count)
    amp *= amplitude / amp.sum()
    return np.column_stack([k, amp, rng.uniform(0, 2 * np.pi, size=count)])


def _plain(seed: int) -> PresetSpec:
    """A living room with painted walls, a plain floor and ceiling, large uniform furniture, a window and a door
    to a uniform bright outside (sky: no depth), a few framed posters and a rug (texture for SfM)."""
    rng = np.random.default_rng([seed, zlib.crc32(b"plain")])
    sx, sy, sz = 6.0, 5.0, 2.8
    t, eps, texel, grain = 0.2, 0.01, tx.TEXEL_M, 0.04
    waves = _shading_waves(rng)
    photos = ["astronaut", "coffee", "text", "chelsea", "page", "camera", "coins", "rocket"]
    rng.shuffle(photos)
    wall_colour = (222.0, 217.0, 206.0)
    accent = (196.0, 204.0, 188.0)
    blocks: list[Block] = []
    inner = {"px": "-x", "nx": "+x", "py": "-y", "ny": "+y"}
    # wall: name, along-axis span, opening (a, b, z0, z1) or None, colour, photos hung (on the widest segment)
    walls = [
        ("px", None, wall_colour, photos[0:2]),
        ("nx", (-0.3, 0.6, 0.0, 2.1), wall_colour, photos[2:3]),  # door
        ("py", (-1.3, 0.5, 0.85, 2.2), accent, photos[3:5]),  # window
        ("ny", None, wall_colour, photos[5:8]),
    ]
    for side, opening, colour, hung in walls:
        along_x = side in ("py", "ny")
        length = sx if along_x else sy
        sign = 1.0 if side in ("px", "py") else -1.0
        pos = sign * ((sy if along_x else sx) / 2 + t / 2)
        spans = [(-length / 2 - eps, length / 2 + eps, -eps, sz + eps)]  # (a, b, z0, z1) along the wall
        if opening is not None:
            a, b, z0, z1 = opening
            spans = [(-length / 2 - eps, a, -eps, sz + eps), (b, length / 2 + eps, -eps, sz + eps),
                     (a, b, z1, sz + eps)] + ([(a, b, -eps, z0)] if z0 > 0 else [])
        widest = max(range(len(spans)), key=lambda k: spans[k][1] - spans[k][0])
        for k, (a, b, z0, z1) in enumerate(spans):
            size = (b - a, t, z1 - z0) if along_x else (t, b - a, z1 - z0)
            centre = ((a + b) / 2, pos, (z0 + z1) / 2) if along_x else (pos, (a + b) / 2, (z0 + z1) / 2)
            faces = (inner[side], "+z", "-z") + (("+x", "-x") if along_x else ("+y", "-y"))
            blk = _painted(rng, f"wall_{side}{k}", size, centre, 0.0, colour, faces, waves, grain, texel)
            if k == widest and hung:
                face = inner[side]
                img = blk.faces[face]
                blk.faces[face] = tx.wall(rng, img.shape[1], img.shape[0], img, hung, texel,
                                          poster_height_m=(0.7, 0.95), centre_z_m=1.55 - z0)
            blocks.append(blk)
    fsize = (sx + 2 * eps, sy + 2 * eps, t)
    floor = _painted(rng, "floor", fsize, (0.0, 0.0, -t / 2), 0.0, (176.0, 160.0, 138.0), ("+z",), waves, grain,
                     texel)
    blocks.append(floor)
    blocks.append(_painted(rng, "ceiling", fsize, (0.0, 0.0, sz + t / 2), 0.0, (236.0, 235.0, 230.0), ("-z",),
                           waves, grain, texel))
    rug = (1.5, 1.0, 0.01)
    rx, ry = _jitter(rng, (0.4, -1.55), 0.05)
    w, h = _tex_shape(rug, "+z", texel)
    blocks.append(Block("rug", rug, (rx, ry, rug[2] / 2), 0.0,
                        {"+z": tx.poster(rng, "immunohistochemistry", w, h)}))
    mats = [  # a patterned runner and a coir doormat: texture on the floor for the ground plane
        ("runner", (0.8, 1.4, 0.01), (2.05, -0.1), "brick", (150.0, 60.0, 55.0), 1.2),
        ("doormat", (0.5, 0.8, 0.01), (-2.55, 0.15), "gravel", (140.0, 105.0, 70.0), 1.5),
    ]
    for name, size, xy, mat, colour, contrast in mats:
        w, h = _tex_shape(size, "+z", texel)
        blocks.append(Block(name, size, (*_jitter(rng, xy, 0.03), size[2] / 2), 0.0,
                            {"+z": tx.material(rng, mat, w, h, colour, contrast=contrast, texels_per_tile=120)}))

    sides = ("+x", "-x", "+y", "-y", "+z")
    furniture = [  # name, size, (x, y), z of the support, yaw_deg, colour
        ("sofa_seat", (2.0, 0.9, 0.42), (-0.9, -2.0), 0.0, 0.0, (205.0, 205.0, 200.0)),
        ("sofa_back", (2.0, 0.22, 0.88), (-0.9, -2.36), 0.0, 0.0, (205.0, 205.0, 200.0)),
        ("wardrobe", (0.6, 1.3, 1.95), (2.66, 1.55), 0.0, 0.0, (232.0, 230.0, 224.0)),
        ("table", (1.2, 0.75, 0.74), (-2.2, -0.95), 0.0, 0.0, (168.0, 174.0, 186.0)),
        ("cabinet", (0.45, 1.1, 0.8), (2.7, -1.2), 0.0, 0.0, (120.0, 126.0, 136.0)),
    ]
    placed = {}
    for name, size, xy, z0, yaw, colour in furniture:
        x, y = _jitter(rng, xy, 0.04)
        placed[name] = (x, y)
        blocks.append(_painted(rng, name, size, (x, y, z0 + size[2] / 2), yaw, colour, sides, waves, grain, texel))
    # a few textured things a room has (boxes with printed labels), on the table and the cabinet
    # the wardrobe's doors: a seam and two handles on its plain front
    wardrobe = next(k for k, blk in enumerate(blocks) if blk.name == "wardrobe")
    front = blocks[wardrobe].faces["-x"].copy()
    fh, fw = front.shape[:2]
    seam, metal = max(1, int(0.008 / texel)), (70, 70, 76)
    front[:, fw // 2 - seam: fw // 2 + seam] = (front[:, fw // 2 - seam: fw // 2 + seam] * 0.55).astype(np.uint8)
    front[int(fh - 0.12 / texel): int(fh - 0.12 / texel) + seam] = metal
    for off in (-0.06, 0.05):
        x0, y0 = int(fw / 2 + off / texel), int(fh / 2 - 0.15 / texel)
        front[y0: y0 + int(0.3 / texel), x0: x0 + max(2, int(0.015 / texel))] = metal
    blocks[wardrobe] = Block("wardrobe", blocks[wardrobe].size, blocks[wardrobe].position, blocks[wardrobe].yaw,
                             {**blocks[wardrobe].faces, "-x": front})
    # a low bookshelf under the window and a tall one beside the door
    low = (1.4, 0.3, 0.8)
    lxy = _jitter(rng, (-0.5, sy / 2 - low[1] / 2 - 0.01), 0.03)
    w, h = _tex_shape(low, "-y", texel)
    low_faces = dict(_painted(rng, "low_shelf", low, (*lxy, low[2] / 2), 0.0, (92.0, 64.0, 42.0),
                              ("+x", "-x", "+z"), waves, grain, texel).faces)
    low_faces["-y"] = tx.bookshelf(rng, w, h, texel)
    blocks.append(Block("low_shelf", low, (*lxy, low[2] / 2), 0.0, low_faces))
    shelf = (0.35, 1.2, 1.8)
    sxy = _jitter(rng, (-sx / 2 + shelf[0] / 2 + 0.01, 1.75), 0.03)
    w, h = _tex_shape(shelf, "+x", texel)
    shelf_faces = dict(_painted(rng, "bookshelf", shelf, (*sxy, shelf[2] / 2), 0.0, (92.0, 64.0, 42.0),
                                ("+y", "-y", "+z"), waves, grain, texel).faces)
    shelf_faces["+x"] = tx.bookshelf(rng, w, h, texel)
    blocks.append(Block("bookshelf", shelf, (*sxy, shelf[2] / 2), 0.0, shelf_faces))
    tx_, ty_ = placed["table"]
    blocks.append(_crate(rng, "box_table", (0.4, 0.3, 0.28), (tx_ + 0.2, ty_ + 0.05, 0.74 + 0.14),
                         rng.uniform(-20, 20)))
    cx_, cy_ = placed["cabinet"]
    blocks.append(_crate(rng, "box_cabinet", (0.3, 0.4, 0.3), (cx_, cy_ + 0.2, 0.8 + 0.15), rng.uniform(-20, 20)))
    slide = Slide(delta=(0.45, 0.0, 0.0), period=4.0)
    blocks.append(_painted(rng, "mover_box", (0.5, 0.5, 0.42), (1.1, 1.9, 0.21), 0.0, (150.0, 118.0, 104.0), sides,
                           waves, grain, texel, motion=slide))
    path = PathSpec(centre=(0.0, 0.0), semi_axes=(0.8, 0.6), height=1.4, pitch_deg=-12.0)
    return PresetSpec("plain", seed, tuple(blocks), (), path, near=0.05, far=20.0,
                      light_direction=_unit((0.35, 0.25, 1.0)), ambient=0.62, diffuse=0.38, sky=True,
                      extra={"size_m": [sx, sy, sz]})


_BUILDERS = {"room": _room, "courtyard": _courtyard, "plain": _plain}

PRESETS: tuple[str, ...] = tuple(_BUILDERS)
"""Names of the available oracle presets."""


@functools.lru_cache(maxsize=4)
def build_preset(name: str, seed: int) -> PresetSpec:
    """The :class:`PresetSpec` of preset ``name`` for ``seed`` (deterministic; cached per process).

    Raises:
        KeyError: ``name`` is not in :data:`PRESETS` (the :class:`~inspatio_sim.oracle.Oracle` turns this into a
            :class:`~inspatio_sim.errors.ConfigError`).
    """
    spec = _BUILDERS[name](int(seed))
    for block in spec.blocks:
        for img in block.faces.values():
            img.setflags(write=False)
    return spec
