"""``inspatio-sim ros`` (run the node), ``inspatio-sim record`` (rollout -> rosbag2) and the colcon entry point.

Both build the Simulator from the composed configuration: the World of ``scene.*`` (``scene.path`` or the oracle
scene), ``control.action_model`` (``ground`` or ``fly``), ``render.camera.*`` (resolution, field of view) and the
``ros.*`` keys. The node steps with ``dt = 1 / ros.rate``; the recorder with ``control.dt``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import sys
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from inspatio_sim.config import compose, to_dataclass
from inspatio_sim.errors import ConfigError, InSpatioError
from inspatio_sim.ros import messages as M
from inspatio_sim.ros.shutdown import StopSignals, end_process
from inspatio_sim.simulator import Simulator

log = logging.getLogger(__name__)


def ros_settings(cfg: DictConfig) -> M.RosSettings:
    """The validated ``ros`` config node."""
    return to_dataclass(M.RosSettings, cfg.ros, "ros")


def simulator_from_config(cfg: DictConfig, dt: float | None = None, device: str | None = None) -> Simulator:
    """A one-agent Simulator of the composed configuration (``dt`` overrides ``control.dt``).

    Raises:
        SceneError: The Scene (``scene.path``) is missing or invalid.
        ConfigError: The action model is not ``ground``/``fly`` or another key is invalid.
    """
    from inspatio_sim.assemble import build_simulator
    from inspatio_sim.control import ESCMConfig

    control = to_dataclass(ESCMConfig, cfg.control, "control")
    if control.action_model not in ("ground", "fly"):
        raise ConfigError(f"the ROS node maps cmd_vel (Twist) to control.action_model=ground or fly, "
                          f"not '{control.action_model}'")
    model = cfg.ros.get("model")
    threads = int(cfg.ros.get("threads") or 0)
    cfg = cfg.copy()
    if model is not None and model != cfg.model.name:  # ros.model chooses the node's completer
        cfg.model.name = model
    if threads > 0:  # ros.threads bounds the renderer's thread policy too (it re-applies its count every call)
        cfg.render.threads = str(threads)
    return build_simulator(cfg, 1, device=device, dt=dt)


def _set_threads(settings: M.RosSettings) -> int:
    """Apply ``ros.threads``; return the previous torch thread count."""
    previous = torch.get_num_threads()
    if settings.threads > 0:  # torch's spinning worker threads starve the middleware's threads on small machines
        torch.set_num_threads(int(settings.threads))
    return previous


def _import_rclpy() -> None:
    try:
        import rclpy  # noqa: F401
    except ImportError as e:
        raise ConfigError(f"the ROS 2 wheels are not installed ({e}); run `pip install -e .[ros]`") from e


SPIN_POLL_S = 0.1
"""Longest wait of the spin loop between two looks at the stop request (seconds)."""


def run_node(args: argparse.Namespace | None, cfg: DictConfig, ros_args: list[str] | None = None,
             own_process: bool = False, stop: StopSignals | None = None) -> int:
    """Run ``inspatio_world_node`` until SIGINT / SIGTERM / ROS shutdown; 0 on a clean stop.

    Configuration errors and a missing world raise before ROS starts (the CLI prints one line and exits 2). A stop
    signal while the World is built abandons the build (:class:`KeyboardInterrupt`, exit 128 + signal: 130 for
    Ctrl-C); once ROS is starting it stops the node cleanly within one tick plus :data:`SPIN_POLL_S` (exit 0).

    Args:
        own_process: The node is the whole process (the ``ros`` command, the colcon entry point): on a stop, clean
            or while starting, end the process at once with the exit code instead of returning
            (:func:`inspatio_sim.ros.shutdown.end_process`). Errors are raised either way.
        stop: Stop handlers the caller installed already (the CLI does, before this module's imports, so that a
            signal during them is not lost); default: installed here.
    """
    settings = ros_settings(cfg)
    previous_threads = torch.get_num_threads()
    try:
        with contextlib.nullcontext(stop) if stop is not None else StopSignals() as stop:
            try:
                code = _serve(cfg, settings, ros_args, stop)
            except KeyboardInterrupt:
                if not own_process:
                    raise
                log.warning("stopped by %s while starting, before ROS started", stop.name)
                code = stop.exit_code
            if own_process:
                end_process(code)
    finally:
        torch.set_num_threads(previous_threads)
    return code


def _build_simulator(cfg: DictConfig, settings: M.RosSettings) -> Simulator:
    """The node's one-agent Simulator (``dt = 1 / ros.rate``): the World build, the long part of the start."""
    return simulator_from_config(cfg, dt=1.0 / settings.rate)


def _serve(cfg: DictConfig, settings: M.RosSettings, ros_args: list[str] | None, stop: StopSignals) -> int:
    """Build the World, then run the node until ``stop`` is requested or ROS shuts down; 0."""
    _import_rclpy()
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    from inspatio_sim.ros.node import WorldNode

    _set_threads(settings)
    scene = str(cfg.scene.path or f"oracle:{cfg.scene.oracle.preset}")
    log.debug("building the World of %s", scene)
    stop.check()
    sim = _build_simulator(cfg, settings)
    info = {"scene_path": scene, "device": str(cfg.device)}
    context = rclpy.Context()
    stop.check()
    stop.running()  # before rclpy.init: from here on every stop goes through the cleanup below
    node = None
    executor = None
    try:
        # no rclpy signal handlers: StopSignals decides, so a signal never lands inside a tick or rclpy's bookkeeping
        rclpy.init(args=ros_args or ["inspatio-sim"], context=context,
                   signal_handler_options=SignalHandlerOptions.NO)
        executor = SingleThreadedExecutor(context=context)
        node = WorldNode(sim, settings, info=info, context=context)
        executor.add_node(node)
        while not stop.requested and context.ok():
            executor.spin_once(timeout_sec=SPIN_POLL_S)
    except ExternalShutdownException:
        pass
    finally:
        if executor is not None:
            executor.shutdown()
        if node is not None:
            why = stop.name if stop.requested else "ROS shutdown"
            node.get_logger().info(f"stopped after {node.steps} steps ({why})")
            node.destroy_node()  # also the DDS participant: nothing of the node outlives this process
        rclpy.try_shutdown(context=context)
    return 0


def node_main(argv: list[str] | None = None, own_process: bool = False) -> int:
    """Console entry ``inspatio_world_node [key=value ...] [--ros-args ...]`` (the colcon package calls this).

    ``own_process``: see :func:`run_node` (the console script passes True).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    ros_args = argv[argv.index("--ros-args"):] if "--ros-args" in argv else []
    overrides = [a for a in argv[:len(argv) - len(ros_args)] if "=" in a and not a.startswith("-")]
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run_node(None, compose(overrides), ros_args=["inspatio_world_node", *ros_args],
                        own_process=own_process)
    except InSpatioError as e:
        log.error("inspatio_world_node: %s", e)
        return 2
    except KeyboardInterrupt:  # a stop signal before ROS started, when the node does not own the process
        return 130


# -- recording ---------------------------------------------------------------------------------------------------
def _policy(name: str, action_model: str, cfg: DictConfig, rng: np.random.Generator, step: int) -> np.ndarray:
    """A body twist ``(6,)`` (m/s, rad/s): ``scripted`` drives forward while weaving; ``random`` is uniform."""
    v_max, w_max = float(cfg.control.max_speed), float(cfg.control.max_angular_speed)
    twist = np.zeros(6)
    if name == "scripted":
        twist[0] = 0.5 * v_max
        twist[5] = 0.5 * w_max * math.sin(2 * math.pi * step / 40)
    else:
        if action_model == "fly":
            twist[:3] = rng.uniform(-v_max, v_max, 3)
            twist[3:] = rng.uniform(-w_max, w_max, 3)
        else:
            twist[0], twist[5] = rng.uniform(-v_max, v_max), rng.uniform(-w_max, w_max)
    return twist


def record(args: argparse.Namespace, cfg: DictConfig) -> int:
    """Roll the Simulator out for ``args.steps`` steps and write every node topic to a rosbag2 (``--bag``)."""
    try:
        from inspatio_sim.ros.bag import bag_location
    except ImportError as e:
        raise ConfigError(f"rosbags is not installed ({e}); run `pip install -e .[ros]`") from e
    if args.steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {args.steps}")
    settings = ros_settings(cfg)
    path, storage = bag_location(args.bag, args.storage)
    previous_threads = _set_threads(settings)
    try:
        path, total, counts, sim = _record(args, cfg, settings, path, storage)
    finally:
        torch.set_num_threads(previous_threads)
    print(f"recorded {args.steps} steps ({args.policy} policy, {sim.escm.config.action_model} model, "
          f"{sim.camera.width}x{sim.camera.height}, dt {sim.dt:g} s): {total} messages on {len(counts)} topics "
          f"-> {path} ({storage})")
    return 0


def _record(args: argparse.Namespace, cfg: DictConfig, settings: M.RosSettings, path: Path,
            storage: str) -> tuple[Path, int, dict[str, int], Simulator]:
    from inspatio_sim.ros.bag import BagWriter

    sim = simulator_from_config(cfg)
    model = sim.escm.config.action_model
    rng = np.random.default_rng(args.seed)
    sim.reset(None, [rng])
    frames = M.FrameMaker(settings.depth_no_data)
    frames.capture(sim, 0, sim.dt)
    with BagWriter(path, storage) as bag:
        bag.write_static_tf(0)
        for step in range(1, args.steps + 1):
            twist = _policy(args.policy, model, cfg, rng, step)
            action = M.twist_to_action(tuple(twist[:3]), tuple(twist[3:]), model)
            sim.step(torch.as_tensor(action[None], device=sim.device))
            stamp = round(step * sim.dt * 1e9)
            bag.write_step(frames.capture(sim, stamp, sim.dt), twist)
        counts = dict(bag.counts)
    return path, sum(counts.values()), counts, sim


def flatten_overrides(cfg: DictConfig, groups: tuple[str, ...] = ("scene",)) -> list[str]:
    """``key=value`` overrides that reproduce ``cfg``'s ``groups`` in another process (e.g. the node in a bench)."""
    out: list[str] = []

    def walk(node: object, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}.{k}")
        else:
            out.append(f"{prefix}={'null' if node is None else node}")

    container = OmegaConf.to_container(cfg, resolve=True)
    for g in groups:
        walk(container[g], g)
    return out
