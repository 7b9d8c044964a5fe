"""The world-model step of the Simulator: explicit render -> written-back content -> completer (reads the cache) ->
observation -> cache update -> write-back.

``model.name`` chooses the completer: ``none`` (the explicit render as it is: no cache, no cost), ``classical``
(:mod:`inspatio_sim.model.classical`) or ``star`` (the learned STAR generator, :mod:`inspatio_sim.model.star`). One
:class:`ModelStep` serves the B agents of a Simulator; every call is one step of every agent. Observations keep the
explicit render's depth and validity: completed pixels carry colour, not geometry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from inspatio_sim.errors import ConfigError
from inspatio_sim.model.cache import CacheConfig, SpatiotemporalCache
from inspatio_sim.model.classical import SOURCE_INPAINT, ClassicalCompleter, ClassicalConfig, Completion
from inspatio_sim.model.references import ReferenceFrames
from inspatio_sim.model.star.completer import SOURCE_MODEL, StarCompleter, StarConfig
from inspatio_sim.model.warp import fill_depth, lift
from inspatio_sim.model.writeback import GeneratedPool, WritebackConfig
from inspatio_sim.render import RenderConfig, RenderOutput

MODELS = ("none", "classical", "star")


@dataclass
class ModelConfig:
    """World-model step (hydra node ``model``; ``model=NAME`` is short for ``model.name=NAME``)."""

    name: str = "none"  # none | classical | star: what completes the explicit render
    cache: CacheConfig = field(default_factory=CacheConfig)
    classical: ClassicalConfig = field(default_factory=ClassicalConfig)
    writeback: WritebackConfig = field(default_factory=WritebackConfig)
    star: StarConfig = field(default_factory=StarConfig)

    def validate(self) -> None:
        if self.name not in MODELS:
            raise ConfigError(f"model must be one of {', '.join(MODELS)}, got '{self.name}'")
        self.cache.validate()
        self.classical.validate()
        self.writeback.validate()
        self.star.validate()


class ModelStep:
    """Completes the B agents' renders, keeps their caches and their written-back content.

    Args:
        refs: The World's recorded frames (:meth:`ReferenceFrames.from_scene`).
        num_agents: ``B``.
        height, width: Output resolution.
        K: ``(3, 3)`` output intrinsics.
        config: :class:`ModelConfig` (``name`` must not be ``none``: the Simulator skips the step then).
        render: Renderer settings (the generated layer is drawn with them).
        block_size: Points per block of the World (the generated layer uses the same).
        world_dir: The World's Scene directory (``model=star`` uses the adapted checkpoint found there).
    """

    def __init__(self, refs: ReferenceFrames, num_agents: int, height: int, width: int, K: torch.Tensor,
                 config: ModelConfig, render: RenderConfig | None = None, block_size: int = 64,
                 world_dir: str | None = None) -> None:
        config.validate()
        if config.name == "none":
            raise ConfigError("ModelStep needs a completer; model=none renders without one")
        self.config = config
        self.refs = refs
        self.height, self.width = height, width
        self.render_config = render or RenderConfig()
        self.K = torch.as_tensor(K, dtype=torch.float32, device=refs.rgb.device)
        self.cache = SpatiotemporalCache(refs, num_agents, height, width, config.cache)
        self.completer: ClassicalCompleter | StarCompleter
        if config.name == "star":
            self.completer = StarCompleter(config.star, num_agents, height, width, int(config.cache.ref_slots),
                                           int(config.cache.history_slots), refs.rgb.device, world_dir,
                                           config.classical)
        else:
            self.completer = ClassicalCompleter(config.classical)
        self.pool = (None if config.writeback.scope == "off"
                     else GeneratedPool(num_agents, config.writeback, block_size, refs.rgb.device))
        self.last: Completion | None = None

    def reset(self, mask: torch.Tensor | None = None, rngs: list | None = None) -> None:
        """Clear the caches and written-back content of the agents in ``mask (B,)`` (all when ``None``); a learned
        completer re-seeds agent ``i``'s noise from ``rngs[i]`` (the env's seeded numpy generator) when given."""
        self.cache.reset(mask)
        if isinstance(self.completer, StarCompleter):
            self.completer.reset(mask, rngs)
        if self.pool is not None and self.config.writeback.scope == "per_agent":
            self.pool.reset(mask)

    def memory_per_agent(self) -> int:
        """Bytes of per-agent state: cache slots and history, plus the write-back pool."""
        return self.cache.nbytes_per_agent() + (self.pool.nbytes_per_agent if self.pool is not None else 0)

    def __call__(self, frame: RenderOutput, poses: torch.Tensor, scene_time: torch.Tensor,
                 agents: torch.Tensor | None = None) -> RenderOutput:
        """Complete ``frame`` rendered at ``poses (B, 4, 4)``; ``scene_time (B,)`` video seconds shown.

        ``agents (B,)`` bool selects the agents that take a step (``None``: all); the others are handed their
        previous observation unchanged and their caches are left alone (e.g. the envs that did not reset when
        others did). Returns the observation: the completed colours with the render's own depth and validity. The
        completion (with the depth estimate of filled pixels and where each came from) is kept in :attr:`last`.
        """
        generated = None
        if self.pool is not None:
            generated = self.pool.render(poses, self.K, self.height, self.width, self.render_config)
        hole = ~frame.valid
        known = frame.valid & (frame.depth > 0)
        self.cache.select(poses, scene_time, fill_depth(frame.depth, known, "smooth"), hole, self.K)
        done = self.completer.complete(frame, poses, self.K, self.cache.slots(), generated)
        step = torch.ones_like(hole[:, 0, 0]) if agents is None else agents.to(hole.device).bool()
        if self.last is not None and not bool(step.all()):
            keep = ~step
            done = Completion(rgb=torch.where(keep[:, None, None, None], self.last.rgb, done.rgb),
                              depth=torch.where(keep[:, None, None], self.last.depth, done.depth),
                              filled=torch.where(keep[:, None, None], self.last.filled, done.filled),
                              source=torch.where(keep[:, None, None], self.last.source, done.source))
        self.cache.push(done.rgb, done.depth, poses, scene_time, step)
        if isinstance(self.completer, StarCompleter):
            self.completer.push(done, step)
        if self.pool is not None:
            self._write_back(done, poses, step)
        self.last = done
        return RenderOutput(rgb=done.rgb, depth=frame.depth, valid=frame.valid)

    def _write_back(self, done: Completion, poses: torch.Tensor, step: torch.Tensor) -> None:
        """Lift this step's invented pixels (inpainted: nothing in the video or the written-back layer showed them)
        with their estimated depth into each agent's part of the pool. Pixels taken from the video are not written:
        the same step derives them again on a revisit."""
        s = int(self.config.writeback.stride)
        invent = done.filled & ((done.source == SOURCE_INPAINT) | (done.source == SOURCE_MODEL)) & step[:, None, None]
        depth = torch.where(invent, done.depth, torch.zeros_like(done.depth))
        points = lift(depth, poses.float(), self.K, stride=s)
        keep = depth[:, ::s, ::s] > 0
        colours = done.rgb[:, ::s, ::s]
        fx = float(self.K[0, 0])
        for agent in keep.any((1, 2)).nonzero().squeeze(1).tolist():
            m = keep[agent]
            d = depth[agent, ::s, ::s][m]
            self.pool.write(agent, points[agent][m], colours[agent][m], spacing=float(d.median()) * s / fx)
