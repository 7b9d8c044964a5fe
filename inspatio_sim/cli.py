"""The inspatio-sim command line: one entry point, a subcommand per job, hydra key=value overrides.

    inspatio-sim reconstruct VIDEO -o DIR [key=value ...]   a video (or image folder) -> a Scene
    inspatio-sim reconstruct-many INPUT... -o WORLDS [--address A]  many clips -> many worlds on Ray (cluster.*)
    inspatio-sim oracle [-o DIR] [key=value ...]      generate a ground-truth oracle Scene
    inspatio-sim world [key=value ...]                 build the World from the configured Scene and summarise it
    inspatio-sim demo [key=value ...]                  fly a camera off the recorded path: out/demo.mp4 + metrics
    inspatio-sim bench NAME [--quick] [--device D] [--out DIR] [key=value ...]
    inspatio-sim ros [key=value ...]                   run the ROS 2 node (camera topics out, cmd_vel in)
    inspatio-sim record --bag OUT.mcap [key=value ...] record a rollout as a rosbag2 (MCAP or sqlite3)
    inspatio-sim config [--keys] [key=value ...]       print the composed configuration (--keys: the key table)
    inspatio-sim data star -o DIR [key=value ...]     training examples for a learned completer (data.* keys)
    inspatio-sim view [--measure] [key=value ...]     browser viewer: drive the World, watch a policy (viewer.* keys)
    inspatio-sim train star stage=teacher|student|all [--device D] [key=value ...]   train the STAR generator
    inspatio-sim adapt star WORLD_DIR [--device D] [key=value ...]   fine-tune STAR on one World's own video
    inspatio-sim train ppo [task=pointnav] [world=W] [key=value ...]   train a policy (train.ppo.* keys)
    inspatio-sim eval [policy=random|oracle|ppo] [task=...] [episodes=FILE|N|val] [out=DIR] [checkpoint=PATH]
    inspatio-sim eval transfer [key=value ...]        train in the reconstructed World, evaluate in the exact one
    inspatio-sim episodes make [world=W] [task=pointnav] [split=val] [count=N]   a fixed episode set (episodes.*)
"""

from __future__ import annotations

import argparse
import functools
import importlib
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from inspatio_sim.config import compose, describe_keys, keys_markdown, to_dataclass
from inspatio_sim.errors import InSpatioError

log = logging.getLogger("inspatio_sim")
BENCHES = ("render", "env", "recon", "ros", "model", "soak", "ray")


@functools.cache
def _keys_epilog() -> str:
    try:
        rows = describe_keys()
    except InSpatioError as e:
        return str(e)
    width = max(len(k) for k, _, _ in rows)
    lines = ["configuration keys (override with key=value; defaults shown):"]
    lines += [f"  {k:<{width}}  {v:<10} {d}" for k, v, d in rows]
    return "\n".join(lines)


def _cmd_config(args: argparse.Namespace, cfg: DictConfig) -> int:
    print(keys_markdown() if args.keys else OmegaConf.to_yaml(cfg))
    return 0


def _cmd_oracle(args: argparse.Namespace, cfg: DictConfig) -> int:
    from inspatio_sim.paths import check_output_path
    from inspatio_sim.scene_source import oracle_scene, oracle_scene_path

    if args.output:
        check_output_path(args.output, "file" if str(args.output).endswith(".npz") else "dir", what="-o")
    if args.video:
        check_output_path(args.video, "file", what="--video")
    oracle = OmegaConf.to_container(cfg.scene.oracle, resolve=True)
    t0 = time.perf_counter()
    scene = oracle_scene(oracle)
    path = scene.save(args.output) if args.output else oracle_scene_path(oracle)
    if args.video:
        from inspatio_sim.video_io import write_video

        print(f"wrote the clip {write_video(scene.frames, args.video, scene.meta.fps)} "
              f"(reconstruct it with `inspatio-sim reconstruct {args.video} -o DIR`)")
    print(f"oracle scene '{oracle['preset']}': {scene.num_frames} frames {scene.width}x{scene.height}, "
          f"{scene.duration:.2f} s, {time.perf_counter() - t0:.1f} s -> {path}")
    return 0


def _cmd_world(args: argparse.Namespace, cfg: DictConfig) -> int:
    from inspatio_sim.scene_source import load_scene
    from inspatio_sim.world import WorldConfig, build_world

    scene = load_scene(cfg.scene)
    t0 = time.perf_counter()
    world = build_world(scene, to_dataclass(WorldConfig, cfg.world, "world"), device=cfg.device, progress=True)
    occ = world.occupancy
    vox3 = occ.voxel**3
    print(f"World from {scene.meta.source}: {scene.num_frames} frames {scene.width}x{scene.height} "
          f"(built in {time.perf_counter() - t0:.2f} s on {cfg.device})")
    print(f"  static layer:    {world.static.num_points:,} points in {world.static.chunk_center.shape[0]} chunks, "
          f"{world.config.lod_levels} LOD levels, finest spacing {float(world.static.chunk_voxel0[0]) * 1000:.1f} mm")
    print(f"  dynamic layer:   {world.dynamic.num_points:,} points over {world.dynamic.chunk_center.shape[0]} frames")
    print(f"  occupancy:       {occ.shape} voxels of {occ.voxel} m, {int(occ.occupied.sum()):,} occupied, "
          f"free {float((occ.free_views > 0).sum()) * vox3:.1f} m^3, trusted {float(occ.trusted.sum()) * vox3:.1f} m^3")
    if world.ground is not None:
        n = world.ground.normal
        print(f"  ground plane:    normal ({n[0]:.3f}, {n[1]:.3f}, {n[2]:.3f}), height of origin "
              f"{world.ground.offset:.3f} m, inliers {world.ground.inlier_fraction:.0%}")
    else:
        print("  ground plane:    none found")
    return 0


def _cmd_demo(args: argparse.Namespace, cfg: DictConfig) -> int:
    from inspatio_sim.demo import run_demo

    run_demo(cfg)
    return 0


def _cmd_reconstruct(args: argparse.Namespace, cfg: DictConfig) -> int:
    from inspatio_sim.recon_report import run_reconstruct

    return run_reconstruct(args, cfg)


def _cmd_reconstruct_many(args: argparse.Namespace, cfg: DictConfig) -> int:
    from inspatio_sim.cluster.reconstruct_many import run_reconstruct_many

    return run_reconstruct_many(args, cfg)


def _cmd_ros(args: argparse.Namespace, cfg: DictConfig) -> int:
    from inspatio_sim.ros.shutdown import StopSignals

    with StopSignals() as stop:  # before the node's slow imports: a Ctrl-C during them is never lost
        from inspatio_sim.ros.commands import run_node

        return run_node(args, cfg, own_process=True, stop=stop)


def _cmd_record(args: argparse.Namespace, cfg: DictConfig) -> int:
    from inspatio_sim.ros.commands import record

    return record(args, cfg)


def _cmd_bench(args: argparse.Namespace, cfg: DictConfig) -> int:
    from inspatio_sim.paths import check_output_path

    check_output_path(args.out, "dir", what="--out")
    runner: Callable[..., dict[str, float]] = importlib.import_module(f"inspatio_sim.bench.{args.name}_bench").run
    device = args.device or cfg.device
    metrics = runner(cfg, args.quick, device, args.out)
    width = max(len(k) for k in metrics)
    for k, v in metrics.items():
        print(f"{k:<{width}}  {v:.4g}")
    print(f"wrote {args.out}/bench_{args.name}.json and .md")
    return 0


def _cmd_data(args: argparse.Namespace, cfg: DictConfig) -> int:
    from inspatio_sim.model.data import generate
    from inspatio_sim.paths import check_output_path
    from inspatio_sim.render import RenderConfig
    from inspatio_sim.world import WorldConfig

    out = check_output_path(args.output, "dir", what="-o")
    t0 = time.perf_counter()
    index = generate(OmegaConf.to_object(cfg.data), out, to_dataclass(WorldConfig, cfg.world, "world"),
                     to_dataclass(RenderConfig, cfg.render, "render"), recon_cfg=cfg.recon)
    print(f"wrote the {args.kind} training data in {time.perf_counter() - t0:.0f} s: {index}")
    return 0


def _cmd_view(args: argparse.Namespace, cfg: DictConfig) -> int:
    from inspatio_sim.viewer import run_view

    return run_view(args, cfg)


def _train_star(args: argparse.Namespace, cfg: DictConfig) -> int:
    from inspatio_sim.model.star.train import run_stages

    for summary in run_stages(OmegaConf.to_object(cfg.train.star), device=args.device or cfg.device):
        print(f"train star {summary['stage']}: {summary['iterations']} iterations in {summary['minutes']:.1f} min, "
              f"loss {summary['loss_first']:.4g} -> {summary['loss_last']:.4g}; wrote {summary['checkpoint']}")
    return 0


def _train_key(kind: str, override: str) -> str:
    """``key=value`` -> ``train.KIND.key=value`` when ``key`` is a field of ``train.KIND`` (else unchanged)."""
    import dataclasses

    from inspatio_sim.config_schema import TrainConfig

    key = override.split("=", 1)[0].lstrip("+~")
    section = getattr(TrainConfig(), kind, None)
    names = {f.name for f in dataclasses.fields(section)} if dataclasses.is_dataclass(section) else set()
    return f"train.{kind}.{override}" if key.split(".", 1)[0] in names else override


def _cmd_adapt(args: argparse.Namespace, cfg: DictConfig) -> int:
    from inspatio_sim.model.star.adapt import adapt

    summary = adapt(args.world, cfg, device=args.device or cfg.device)
    print(f"adapt star: {summary['iterations']} iterations in {summary['minutes']:.1f} min, held-out window PSNR "
          f"{summary['psnr_before']:.2f} -> {summary['psnr_after']:.2f} dB; wrote {summary['checkpoint']} "
          "(used automatically with scene.path there)")
    return 0


def _world_override(value: str) -> str:
    """``world=W``: a bundled scene preset (``configs/scene/W.yaml``) or a Scene path."""
    presets = {p.stem for p in (Path(__file__).parent / "configs" / "scene").glob("*.yaml")}
    return f"scene={value}" if value in presets else f"scene.path={value}"


def _train_ppo(args: argparse.Namespace, cfg: DictConfig) -> int:
    from policies.ppo import run_training

    run_training(cfg, args.overrides)
    return 0


# train KIND -> (runner, short key=value aliases); any other field of train.KIND may also be given by its short name
TRAIN_KINDS: dict[str, tuple[Callable[..., int], dict[str, str]]] = {
    "ppo": (_train_ppo, {"task": "train.ppo.task", "seed": "train.ppo.seed", "minutes": "train.ppo.minutes",
                         "steps": "train.ppo.total_steps", "num_envs": "train.ppo.num_envs", "world": "world",
                         "action_model": "train.ppo.action_model", "run_dir": "train.ppo.run_dir"}),
    "star": (_train_star, {}),
}
EVAL_ALIASES = {"policy": "eval.policy", "task": "eval.task", "episodes": "eval.episodes",
                "checkpoint": "eval.checkpoint", "seed": "eval.seed", "world": "world",
                "action_model": "eval.action_model", "num_envs": "eval.num_envs", "max_steps": "eval.max_steps"}
EPISODES_ALIASES = {"task": "episodes.task", "split": "episodes.split", "count": "episodes.count",
                    "seed": "episodes.seed", "bins": "episodes.bins", "output": "episodes.output", "world": "world",
                    "action_model": "episodes.action_model"}


def _cmd_train(args: argparse.Namespace, cfg: DictConfig) -> int:
    if args.device:
        cfg.device = args.device
    return TRAIN_KINDS[args.kind][0](args, cfg)


def _cmd_eval(args: argparse.Namespace, cfg: DictConfig) -> int:
    from policies.evaluate import evaluate

    if args.what == "transfer":
        from policies.transfer import run_transfer

        run_transfer(cfg, args.overrides)
        return 0
    report = evaluate(cfg, args.overrides)
    shown = {k: v for k, v in report["metrics"].items() if v is not None}
    width = max(len(k) for k in shown)
    for k, v in shown.items():
        lo, hi = report["ci95"][k]
        print(f"{k:<{width}}  {v:.4g}  [{lo:.4g}, {hi:.4g}]")
    print(f"wrote {cfg.out}/eval_{report['policy']}_{report['task']}.json, .md, .png"
          + (", .mp4" if int(cfg.eval.video_episodes) else ""))
    return 0


def _cmd_episodes(args: argparse.Namespace, cfg: DictConfig) -> int:
    from policies.episode_sets import make_episode_file

    make_episode_file(cfg, args.overrides)
    return 0


def _aliases(args: argparse.Namespace) -> dict[str, str]:
    if args.command == "train":
        return TRAIN_KINDS[args.kind][1]
    return {"eval": EVAL_ALIASES, "episodes": EPISODES_ALIASES}.get(args.command, {})


def _expand(overrides: list[str], aliases: dict[str, str]) -> list[str]:
    """Short ``key=value`` aliases of a command (``policy=oracle``) -> full keys (``eval.policy=oracle``)."""
    out = []
    for o in overrides:
        key, value = o.split("=", 1)
        target = aliases.get(key)
        out.append(o if target is None else _world_override(value) if target == "world" else f"{target}={value}")
    return out


def build_parser(keys_help: bool = True) -> argparse.ArgumentParser:
    """The argument parser; ``keys_help=False`` leaves the configuration-key table (slow to build) out of --help."""
    fmt = argparse.RawDescriptionHelpFormatter
    epilog = _keys_epilog() if keys_help else None
    parser = argparse.ArgumentParser(prog="inspatio-sim", description=__doc__, formatter_class=fmt, epilog=epilog)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(command: str, fn: Callable[..., int], help_: str, **first: dict) -> argparse.ArgumentParser:
        p = sub.add_parser(command, help=help_, description=help_, formatter_class=fmt, epilog=epilog)
        for arg, kwargs in first.items():
            p.add_argument(arg, **kwargs)
        p.add_argument("overrides", nargs="*", metavar="key=value", help="configuration overrides")
        p.set_defaults(fn=fn)
        return p

    p = add("reconstruct", _cmd_reconstruct, "reconstruct a video or image folder into a Scene (recon.* keys)",
            input={"help": "video file (mp4/avi/mov/mkv, anything OpenCV reads) or a folder of images"})
    p.add_argument("-o", "--output", required=True, help="output directory (gets scene.npz and report.json)")
    p.add_argument("--force", action="store_true", help="recompute structure-from-motion even when cached")
    p = add("reconstruct-many", _cmd_reconstruct_many, "reconstruct many clips into WORLDS/<name>/, one Ray task per "
            "clip (cluster.* keys); WORLDS/index.json lists them; a rerun skips finished worlds",
            inputs={"nargs": "+", "metavar": "INPUT", "help": "video files, folders of clips, globs, .txt lists"})
    p.add_argument("-o", "--output", required=True, help="worlds folder (one sub-folder per clip + index.json)")
    p.add_argument("--address", default=None, help="Ray cluster to join: auto or HOST:PORT (default: cluster.address,"
                   " else a local Ray instance)")
    p.add_argument("--force", action="store_true", help="redo worlds that are already finished")
    p = add("oracle", _cmd_oracle, "generate the ground-truth oracle Scene of scene.oracle.* (cached)")
    p.add_argument("-o", "--output", help="also write the Scene to this directory or .npz file")
    p.add_argument("--video", help="also write the rendered frames as a video (.mp4: mp4v, .avi: MJPG)")
    add("world", _cmd_world, "build the World of the configured Scene and print a summary")
    add("demo", _cmd_demo, "render a camera flight that leaves the recorded path: {out}/demo.mp4 + demo_metrics.json")
    add("ros", _cmd_ros, "run the ROS 2 node: camera topics out, cmd_vel in (ros.* keys; needs `pip install .[ros]`)")
    p = add("record", _cmd_record, "record a rollout of the Simulator as a rosbag2 with the node's topics")
    p.add_argument("--bag", required=True, help="output bag: *.mcap (MCAP) or a directory name (see --storage)")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default=None,
                   help="bag storage (default: mcap, or sqlite3 when --bag ends in .db3)")
    p.add_argument("--steps", type=int, default=100, help="simulation steps to record (default 100)")
    p.add_argument("--policy", choices=("scripted", "random"), default="scripted",
                   help="who drives: a scripted forward-and-turn pattern or uniform random actions")
    p.add_argument("--seed", type=int, default=0, help="seed of the start pose and the random policy")
    p = add("config", _cmd_config, "print the composed configuration")
    p.add_argument("--keys", action="store_true", help="print the table of keys, defaults and docs (Markdown)")
    p = add("bench", _cmd_bench, "run a benchmark; writes DIR/bench_NAME.json and .md",
            name={"choices": BENCHES, "help": "which benchmark"})
    p.add_argument("--quick", action="store_true", help="small version of the same measurement (about a minute)")
    p.add_argument("--device", default=None, help="torch device (default: the `device` config key)")
    p.add_argument("--out", default="out/bench", help="output directory (default out/bench)")
    p = add("data", _cmd_data, "write training data (sharded, resumable; held-out benchmark scenes excluded)",
            kind={"choices": ("star",), "help": "which data: star = examples for the learned completer"})
    p.add_argument("-o", "--output", default="out/data/star", help="output directory (default out/data/star)")
    p = add("view", _cmd_view, "serve the browser viewer on localhost (viewer.* keys; needs `pip install .[viewer]`)")
    p.add_argument("--measure", action="store_true",
                   help="drive the page in headless Chromium, print frames/s and key-to-image latency, exit")
    p.add_argument("--seconds", type=float, default=10.0, help="seconds of driving for --measure (default 10)")
    p.add_argument("--screenshot", metavar="FILE", help="save a PNG of the page in headless Chromium and exit")
    p = add("train", _cmd_train, "train a model (train.KIND.* keys, also by their short names; atomic checkpoints, "
            "resumed when present)", kind={"choices": tuple(TRAIN_KINDS), "help": "what to train: ppo = a PointNav/"
                                           "Explore policy (task=, world=, steps=, minutes=); star = the STAR "
                                           "generator (stage=teacher|student)"})
    p.add_argument("--device", default=None, help="torch device (default: the `device` config key)")
    p = add("adapt", _cmd_adapt, "fine-tune the STAR generator on one World's own video (written into its directory)",
            kind={"choices": ("star",), "help": "which model"}, world={"help": "the World's Scene directory"})
    p.add_argument("--device", default=None, help="torch device (default: the `device` config key)")
    add("eval", _cmd_eval, "evaluate a policy: policy=random|oracle|ppo task=pointnav|explore episodes=FILE|N|val "
        "out=DIR [checkpoint=PATH] (eval.* keys); `eval transfer`: the reconstructed-to-exact transfer gap",
        what={"nargs": "?", "choices": ("policy", "transfer"), "default": "policy",
              "help": "policy (default) or transfer"})
    add("episodes", _cmd_episodes, "make a fixed episode set: world=W task=pointnav split=val count=N (episodes.*)",
        action={"choices": ("make",), "help": "make: write an episode file"})
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # key=value overrides may stand anywhere (argparse cannot mix them with options after a positional)
    overrides = [a for a in argv if "=" in a and not a.startswith("-")]
    args = build_parser(keys_help="-h" in argv or "--help" in argv).parse_args([a for a in argv if a not in overrides])
    stray = [a for a in args.overrides if a not in overrides]
    if stray:
        print(f"inspatio-sim: error: unexpected argument(s) {' '.join(stray)}; overrides look like key=value",
              file=sys.stderr)
        return 2
    args.overrides = _expand(overrides, _aliases(args))
    if args.command in ("train", "adapt"):  # `train star stage=student` is short for train.star.stage=student
        args.overrides = [_train_key(args.kind, o) for o in args.overrides]
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = compose(args.overrides)
        return args.fn(args, cfg)
    except InSpatioError as e:
        print(f"inspatio-sim: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("inspatio-sim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
