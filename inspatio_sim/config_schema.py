"""The configuration schema: one typed dataclass tree, registered in hydra's ConfigStore as ``inspatio_schema``.

Each section reuses the config dataclass of the module it configures (``world`` = :class:`WorldConfig`,
``control`` = :class:`ESCMConfig`, ...), so every key, type and default is written once, in that dataclass. Where
the key tree nests a node that the module's dataclass does not have (``render.camera`` beside the renderer's
fields, ``ros.bench`` beside the node's settings, the flat ``recon.*`` keys of several stages), a section class here
adds it. Sections with no module of their own (``scene``, ``bench``, ``demo``) are defined here.

A field's one-line doc (``inspatio-sim --help``, the README's key table) is the ``# comment`` on its line, else its
entry in the ``Attributes:`` section of its class docstring (see :func:`inspatio_sim.config.field_doc`).

Every section has ``validate()`` (raising :class:`~inspatio_sim.errors.ConfigError`);
:func:`inspatio_sim.config.compose` runs :meth:`InSpatioConfig.validate` on every composed configuration. Importing
this module imports torch (the sections' home modules need it) but neither gymnasium, rclpy nor pycolmap.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from inspatio_sim.cluster.session import ClusterConfig
from inspatio_sim.control.escm import ESCMConfig
from inspatio_sim.errors import ConfigError
from inspatio_sim.model.data import DataConfig
from inspatio_sim.model.star.train import TrainStarConfig
from inspatio_sim.model.step import ModelConfig
from inspatio_sim.recon.frames import FrameSelection
from inspatio_sim.recon.pipeline import ReconConfig
from inspatio_sim.recon.sfm import SfMOptions
from inspatio_sim.render.splat import RenderConfig
from inspatio_sim.ros.messages import RosSettings
from inspatio_sim.simulator import CameraConfig
from inspatio_sim.world.world import WorldConfig

SCHEMA_NAME = "inspatio_schema"
"""Name of the root schema in hydra's ConfigStore (first entry of the defaults list in ``configs/config.yaml``)."""


def _positive(prefix: str, obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not value > 0:
            raise ConfigError(f"{prefix}.{name} must be > 0, got {value}")


def _positive_list(prefix: str, obj: Any, *names: str) -> None:
    for name in names:
        values = list(getattr(obj, name))
        if not values or not all(v > 0 for v in values):
            raise ConfigError(f"{prefix}.{name} must be a non-empty list of positive numbers, got {values}")


@dataclass
class OracleSettings:
    """The bundled ground-truth oracle scene (``scene.oracle``), generated on first use and cached."""

    preset: str = "room"  # oracle preset: room or courtyard
    seed: int = 0  # placement/texture jitter of the oracle scene
    num_frames: int = 60  # frames along the handheld camera path
    width: int = 320  # frame width in pixels
    height: int = 240  # frame height in pixels
    hfov_deg: float = 70.0  # horizontal field of view of the Scene camera (degrees)
    fps: float = 15.0  # frame rate of the camera path (frames per second)
    supersample: int = 3  # oracle anti-aliasing: render ss x ss sub-pixels per pixel (odd)

    def validate(self) -> None:
        """Ranges of the numbers; the preset name is checked by the Oracle when the scene is generated (importing
        the preset list loads pybullet, which prints to stdout: ``inspatio-sim config`` must print only YAML)."""
        if self.seed < 0:
            raise ConfigError(f"scene.oracle.seed must be >= 0, got {self.seed}")
        if self.num_frames < 2:
            raise ConfigError(f"scene.oracle.num_frames must be >= 2, got {self.num_frames}")
        _positive("scene.oracle", self, "width", "height", "fps")
        if not 0 < self.hfov_deg < 180:
            raise ConfigError(f"scene.oracle.hfov_deg must be within (0, 180), got {self.hfov_deg}")
        if self.supersample < 1 or self.supersample % 2 == 0:
            raise ConfigError(f"scene.oracle.supersample must be an odd integer >= 1, got {self.supersample}")


@dataclass
class SceneConfig:
    """The Scene a command works on (``scene``): ``path`` if set, else the oracle scene (presets: ``scene=NAME``)."""

    path: str | None = None  # a Scene directory or .npz; null = the oracle scene below, generated once and cached
    oracle: OracleSettings = field(default_factory=OracleSettings)

    def validate(self) -> None:
        if self.path is not None and not str(self.path).strip():
            raise ConfigError("scene.path must name a Scene directory or .npz file, or be null (the oracle scene)")
        self.oracle.validate()


@dataclass
class RenderSection(RenderConfig):
    """``render``: the renderer's settings (:class:`RenderConfig`) and the output camera (``render.camera``)."""

    camera: CameraConfig = field(default_factory=CameraConfig)

    def validate(self) -> None:
        super().validate()
        self.camera.validate()


def _flat_section(name: str, parts: tuple[type, ...], own: type) -> type:
    """A dataclass with the fields of each of ``parts`` side by side, then ``own``'s fields except those whose type
    is one of ``parts`` (``own`` holds them as nodes; the flat section holds their fields instead), nodes last.

    Field docs are looked up in ``parts`` and ``own`` (``__doc_sources__``); no default is copied.
    """
    specs: list[tuple[str, Any, Any]] = []
    nodes: list[tuple[str, Any, Any]] = []
    for cls in (*parts, own):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if cls is own and hints[f.name] in parts:
                continue
            if any(f.name == s[0] for s in specs + nodes):
                raise TypeError(f"{name}: field {f.name} of {cls.__name__} is defined twice")
            default = (field(default_factory=f.default_factory) if f.default_factory is not dataclasses.MISSING
                       else field(default=f.default))
            (nodes if dataclasses.is_dataclass(hints[f.name]) else specs).append((f.name, hints[f.name], default))
    section = dataclasses.make_dataclass(name, specs + nodes, namespace={"__doc_sources__": (*parts, own)})
    section.__module__ = __name__
    return section


@dataclass
class ReconSection(_flat_section("_ReconFields", (FrameSelection, SfMOptions), ReconConfig)):  # type: ignore[misc]
    """``recon``: the frame-sampling (:class:`FrameSelection`) and pycolmap (:class:`SfMOptions`) keys side by side
    with the other :class:`ReconConfig` fields and its ``mvs`` and ``dynamic`` nodes."""

    def validate(self) -> None:
        ReconConfig.from_node(dataclasses.asdict(self))


@dataclass
class BenchRender:
    """``bench.render``: sizes of ``inspatio-sim bench render`` (``--quick`` shrinks them, same metric keys)."""

    resolutions: list[int] = field(default_factory=lambda: [64, 128])  # square output sizes of the speed table
    batch_sizes: list[int] = field(default_factory=lambda: [1, 16, 64])  # cameras per render call
    seconds_per_case: float = 3.0  # timed seconds per case, split over 5 interleaved rounds (median reported)
    novel_offsets: list[float] = field(default_factory=lambda: [0.1, 0.25, 0.5])  # offsets from the path (metres)
    novel_views_per_offset: int = 48  # held-out poses per offset
    fidelity_width: int = 320  # width of the fidelity renders (pixels; the Scene resolution)
    fidelity_height: int = 240  # height of the fidelity renders (pixels; the Scene resolution)

    def validate(self) -> None:
        _positive_list("bench.render", self, "resolutions", "batch_sizes", "novel_offsets")
        _positive("bench.render", self, "seconds_per_case", "novel_views_per_offset", "fidelity_width",
                  "fidelity_height")


@dataclass
class BenchEnv:
    """``bench.env``: sizes of ``inspatio-sim bench env``."""

    resolutions: list[int] = field(default_factory=lambda: [64, 128])  # square camera sizes of the native vector env
    batch_sizes: list[int] = field(default_factory=lambda: [1, 16, 64, 256])  # agents per native vector env
    compare_batch: int = 16  # B of the SyncVectorEnv / AsyncVectorEnv comparison (64x64)
    seconds_per_case: float = 3.0  # timed seconds per case, split over 5 interleaved rounds (median reported)

    def validate(self) -> None:
        _positive_list("bench.env", self, "resolutions", "batch_sizes")
        _positive("bench.env", self, "compare_batch", "seconds_per_case")


@dataclass
class BenchSoak:
    """``bench.soak``: sizes of ``inspatio-sim bench soak`` (``--quick`` shrinks them, keeping the keys)."""

    env_steps: int = 100000  # vector steps of the env phase (--quick: 2000)
    num_envs: int = 16  # agents B of the native PointNav vector env
    resolution: int = 64  # square camera size (pixels)
    samples: int = 20  # RSS samples, evenly spaced over the env phase
    warmup_fraction: float = 0.1  # memory growth is measured from the sample at this fraction of a phase
    ros_minutes: float = 10.0  # minutes of cmd_vel flood against the ROS node (--quick: 0.5; 0 skips the phase)
    ros_rate: float = 15.0  # publish rate requested from the node (Hz)
    ros_window: float = 30.0  # seconds per rate / RSS sample of the ROS phase (--quick: 5)
    flood_hz: float = 200.0  # cmd_vel messages published per second

    def validate(self) -> None:
        _positive("bench.soak", self, "env_steps", "num_envs", "resolution", "ros_rate", "ros_window", "flood_hz")
        if self.samples < 2 or not 0 <= self.warmup_fraction < 1 or self.ros_minutes < 0:
            raise ConfigError("bench.soak: samples must be >= 2, warmup_fraction in [0, 1) and ros_minutes >= 0")


@dataclass
class BenchConfig:
    """``bench``: settings of ``inspatio-sim bench NAME``."""

    render: BenchRender = field(default_factory=BenchRender)
    env: BenchEnv = field(default_factory=BenchEnv)
    soak: BenchSoak = field(default_factory=BenchSoak)

    def validate(self) -> None:
        self.render.validate()
        self.env.validate()
        self.soak.validate()


@dataclass
class RosBench:
    """``ros.bench``: settings of ``inspatio-sim bench ros``."""

    rate: float = 30.0  # publish rate requested by `inspatio-sim bench ros` (Hz)
    seconds: float = 10.0  # timed seconds per resolution (--quick: 3)
    latency_trials: int = 20  # cmd_vel -> image latency samples (--quick: 8)

    def validate(self) -> None:
        _positive("ros.bench", self, "rate", "seconds", "latency_trials")


@dataclass
class RosSection(RosSettings):
    """``ros``: the ROS 2 node's settings (:class:`RosSettings`) and its benchmark (``ros.bench``)."""

    bench: RosBench = field(default_factory=RosBench)

    def validate(self) -> None:
        super().validate()
        self.bench.validate()


@dataclass
class DemoConfig:
    """``demo``: ``make demo`` / ``inspatio-sim demo``."""

    reconstruct: bool = True  # build the World from the oracle clip reconstructed as a video (false: the exact Scene)

    def validate(self) -> None:
        """Nothing to check beyond the type."""


@dataclass
class ViewerConfig:
    """``viewer``: the browser viewer of ``inspatio-sim view`` (:mod:`inspatio_sim.viewer`)."""

    host: str = "127.0.0.1"  # address the viewer listens on (127.0.0.1: this machine only; 0.0.0.0: the network)
    port: int = 8080  # port of the page (viser); the next free port is taken when it is busy
    api_port: int = 0  # port of the JSON state / key API the page's keyboard talks to (0: the page's port + 1)
    task: str = "videoworld"  # task at start: videoworld, pointnav or explore (the page has a selector)
    policy: str = "keyboard"  # who drives at start: keyboard, random, oracle or ppo (oracle/ppo: policies package)
    checkpoint: str | None = None  # checkpoint of a learned policy (viewer.policy=ppo)
    fps: float = 15.0  # cap on simulation steps (and page updates) per second
    max_points: int = 30000  # World points shown in the 3D overview (uniformly decimated; a browser without GPU slows)
    trail: int = 600  # agent positions kept for the trail (3D overview and map)
    key_timeout: float = 0.6  # seconds after which a held key whose release never arrived is released
    seed: int = 0  # seed of the first episode (successive resets use seed+1, seed+2, ...)
    out: str = "out/viewer"  # folder of recordings (view-<time>.mp4, and .mcap with record_bag)
    record_bag: bool = False  # also record a rosbag2 (MCAP) of the recorded steps with the ROS node's topics
    threads: int = 1  # torch CPU threads (1 leaves a core to the web server; 0 = torch default)
    idle_steps: bool = False  # keep stepping with no key held (scene time runs, moving objects move); false saves CPU

    def validate(self) -> None:
        _positive("viewer", self, "fps", "max_points", "trail", "key_timeout")
        if not 0 < int(self.port) < 65536 or not 0 <= int(self.api_port) < 65536:
            raise ConfigError(f"viewer.port must be in 1..65535 and viewer.api_port in 0..65535, got "
                              f"{self.port} and {self.api_port}")
        if self.task not in ("videoworld", "pointnav", "explore"):
            raise ConfigError(f"viewer.task must be videoworld, pointnav or explore, got '{self.task}'")
        if self.policy not in ("keyboard", "random", "oracle", "ppo"):
            raise ConfigError(f"viewer.policy must be keyboard, random, oracle or ppo, got '{self.policy}'")
        if self.threads < 0:
            raise ConfigError(f"viewer.threads must be >= 0, got {self.threads}")


@dataclass
class TrainPPO:
    """``train.ppo``: ``inspatio-sim train ppo`` (torch-native PPO on the native vector env, ``policies/ppo.py``)."""

    task: str = "pointnav"  # task to train: pointnav or explore
    action_model: str = "ground"  # action model of the agents: ground (continuous), discrete, fly or robot
    width: int = 64  # camera width of the observations (pixels)
    height: int = 48  # camera height of the observations (pixels)
    depth: bool = True  # add the depth image to the encoder's input
    num_envs: int = 16  # agents per native vector env (one Simulator call steps them all)
    total_steps: int = 200000  # agent steps to train for (all envs together)
    minutes: float = 30.0  # wall-clock budget (minutes); training stops at whichever of the two comes first
    max_episode_steps: int = 150  # truncate training episodes after this many steps
    num_steps: int = 64  # rollout length per env between updates
    epochs: int = 4  # optimisation epochs per rollout
    minibatches: int = 4  # minibatches per epoch
    lr: float = 0.00025  # Adam learning rate (annealed linearly to 0 over total_steps)
    gamma: float = 0.99  # discount factor
    gae_lambda: float = 0.95  # GAE lambda
    clip: float = 0.2  # PPO clipping range
    ent_coef: float = 0.01  # entropy bonus coefficient
    vf_coef: float = 0.5  # value loss coefficient
    max_grad_norm: float = 0.5  # gradient clipping norm
    seed: int = 0  # seed of torch, the envs and the minibatch order
    run_dir: str | None = None  # checkpoint/log directory (default {out}/train_ppo_{task})
    checkpoint_every: int = 10  # save the checkpoint every this many updates (and at the end)
    resume: bool = True  # continue from run_dir/checkpoint.pt when it exists

    def validate(self) -> None:
        if self.task not in ("pointnav", "explore"):
            raise ConfigError(f"train.ppo.task must be pointnav or explore, got '{self.task}'")
        _positive("train.ppo", self, "width", "height", "num_envs", "total_steps", "minutes", "max_episode_steps",
                  "num_steps", "epochs", "minibatches", "lr", "checkpoint_every")
        if (self.num_envs * self.num_steps) % self.minibatches:
            raise ConfigError("train.ppo.minibatches must divide num_envs * num_steps")
        if not (0 < self.gamma <= 1 and 0 <= self.gae_lambda <= 1 and self.clip > 0):
            raise ConfigError("train.ppo needs 0 < gamma <= 1, 0 <= gae_lambda <= 1 and clip > 0")


@dataclass
class TrainConfig:
    """``train``: settings of ``inspatio-sim train KIND``."""

    star: TrainStarConfig = field(default_factory=TrainStarConfig)
    ppo: TrainPPO = field(default_factory=TrainPPO)

    def validate(self) -> None:
        self.star.validate()
        self.ppo.validate()


@dataclass
class EvalTransfer:
    """``eval.transfer``: ``inspatio-sim eval transfer`` (train in the World reconstructed from the oracle's video,
    evaluate in the World of the exact Scene, and the other way round)."""

    train_steps: int = 200000  # PPO agent steps per training run (train.ppo.* for the rest)
    train_minutes: float = 30.0  # wall-clock budget per training run (minutes)
    episodes: int = 50  # episodes per evaluation (drawn per World with eval.seed)
    recon_scene: str | None = None  # the reconstructed Scene (default: reconstruct the oracle clip to {out}/recon_*)

    def validate(self) -> None:
        _positive("eval.transfer", self, "train_steps", "train_minutes", "episodes")


@dataclass
class EvalConfig:
    """``eval``: ``inspatio-sim eval`` (policy=random|oracle|ppo task=... episodes=FILE|N|val out=DIR)."""

    policy: str = "random"  # policy to evaluate: random, oracle or ppo (needs checkpoint)
    task: str = "pointnav"  # task: pointnav or explore
    episodes: str = "val"  # episode file, a count N (seeded episodes) or val (the bundled set of the oracle scene)
    checkpoint: str | None = None  # PPO checkpoint (run_dir/checkpoint.pt of inspatio-sim train ppo)
    action_model: str = "ground"  # action model of random/oracle runs (ppo: the checkpoint's)
    width: int = 64  # camera width (pixels; ppo: the checkpoint's)
    height: int = 48  # camera height (pixels; ppo: the checkpoint's)
    num_envs: int = 8  # episodes played at once (one native vector env)
    max_steps: int = 300  # step limit per episode (explore: coverage after this many steps)
    seed: int = 0  # seed of the drawn episodes and the random policy
    video_episodes: int = 3  # episodes of env 0 in the mp4 (0: no video)
    transfer: EvalTransfer = field(default_factory=EvalTransfer)

    def validate(self) -> None:
        if self.policy not in ("random", "oracle", "ppo"):
            raise ConfigError(f"eval.policy must be random, oracle or ppo, got '{self.policy}'")
        if self.task not in ("pointnav", "explore"):
            raise ConfigError(f"eval.task must be pointnav or explore, got '{self.task}'")
        _positive("eval", self, "width", "height", "num_envs", "max_steps")
        if self.video_episodes < 0:
            raise ConfigError(f"eval.video_episodes must be >= 0, got {self.video_episodes}")
        self.transfer.validate()


@dataclass
class EpisodesConfig:
    """``episodes``: ``inspatio-sim episodes make`` (fixed episode sets, ``envs/episodes.py``)."""

    task: str = "pointnav"  # task of the set: pointnav or explore
    split: str = "val"  # split name written into the file (val, test, ...)
    count: int = 50  # number of episodes
    bins: list[float] = field(default_factory=lambda: [1.0, 2.5, 4.0, 6.0])  # geodesic bin edges (m), round-robin
    seed: int = 0  # seed of the draws (same seed, same set)
    action_model: str = "ground"  # action model whose navigation grid the starts and goals are checked on
    output: str | None = None  # output file (default {out}/episodes/{world}_{task}_{split}.json.gz)

    def validate(self) -> None:
        if self.task not in ("pointnav", "explore"):
            raise ConfigError(f"episodes.task must be pointnav or explore, got '{self.task}'")
        _positive("episodes", self, "count")
        _positive_list("episodes", self, "bins")


@dataclass
class InSpatioConfig:
    """The whole configuration; every command composes it (``inspatio-sim config`` prints it)."""

    device: str = "cpu"  # torch device of the World and the renderer: cpu, cuda, cuda:1, ...
    out: str = "out"  # output directory of commands that write files (demo video, metrics)
    scene: SceneConfig = field(default_factory=SceneConfig)
    world: WorldConfig = field(default_factory=WorldConfig)
    control: ESCMConfig = field(default_factory=ESCMConfig)
    render: RenderSection = field(default_factory=RenderSection)
    recon: ReconSection = field(default_factory=ReconSection)
    demo: DemoConfig = field(default_factory=DemoConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    ros: RosSection = field(default_factory=RosSection)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    episodes: EpisodesConfig = field(default_factory=EpisodesConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    viewer: ViewerConfig = field(default_factory=ViewerConfig)

    def validate(self) -> None:
        import torch

        try:
            torch.device(self.device)
        except (RuntimeError, ValueError) as e:
            raise ConfigError(f"device '{self.device}' is not a torch device (cpu, cuda, cuda:1, ...)") from e
        if not str(self.out).strip():
            raise ConfigError("out must name an output directory")
        for f in dataclasses.fields(self):
            section = getattr(self, f.name)
            if dataclasses.is_dataclass(section):
                section.validate()


def register() -> None:
    """Store :class:`InSpatioConfig` in hydra's ConfigStore under :data:`SCHEMA_NAME` (idempotent)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=SCHEMA_NAME, node=InSpatioConfig)
