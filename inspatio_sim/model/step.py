"""The world-model step of the Simulator: explicit render -> completer (reads the cache) -> observation -> cache update.

``model.name`` chooses the completer: ``none`` (the explicit render as it is: no cache, no cost), ``classical``
(:mod:`inspatio_sim.model.classical`) or ``star`` (the learned generator; refused until a checkpoint ships). One
:class:`ModelStep` serves the B agents of a Simulator; every call is one step of every agent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from inspatio_sim.errors import ConfigError
from inspatio_sim.model.cache import CacheConfig, SpatiotemporalCache
from inspatio_sim.model.classical import ClassicalCompleter, ClassicalConfig, Completion
from inspatio_sim.model.references import ReferenceFrames
from inspatio_sim.model.warp import fill_depth
from inspatio_sim.render import RenderOutput

MODELS = ("none", "classical", "star")


@dataclass
class ModelConfig:
    """World-model step (hydra group ``model``)."""

    name: str = "none"  # none | classical | star: what completes the explicit render
    cache: CacheConfig = field(default_factory=CacheConfig)
    classical: ClassicalConfig = field(default_factory=ClassicalConfig)

    def validate(self) -> None:
        if self.name not in MODELS:
            raise ConfigError(f"model must be one of {', '.join(MODELS)}, got '{self.name}'")
        if self.name == "star":
            raise ConfigError("model=star needs the STAR generator's checkpoint, which is not built yet; "
                              "use model=classical or model=none")
        self.cache.validate()
        self.classical.validate()


class ModelStep:
    """Completes the B agents' renders and keeps their caches.

    Args:
        refs: The World's recorded frames (:meth:`ReferenceFrames.from_scene`).
        num_agents: ``B``.
        height, width: Output resolution.
        K: ``(3, 3)`` output intrinsics.
        config: :class:`ModelConfig` (``name`` must not be ``none``: the Simulator skips the step then).
    """

    def __init__(self, refs: ReferenceFrames, num_agents: int, height: int, width: int, K: torch.Tensor,
                 config: ModelConfig) -> None:
        config.validate()
        if config.name == "none":
            raise ConfigError("ModelStep needs a completer; model=none renders without one")
        self.config = config
        self.refs = refs
        self.K = torch.as_tensor(K, dtype=torch.float32, device=refs.rgb.device)
        self.cache = SpatiotemporalCache(refs, num_agents, height, width, config.cache)
        self.completer = ClassicalCompleter(config.classical)
        self.last: Completion | None = None

    def reset(self, mask: torch.Tensor | None = None) -> None:
        """Clear the caches of the agents in ``mask (B,)`` (all when ``None``)."""
        self.cache.reset(mask)

    def __call__(self, frame: RenderOutput, poses: torch.Tensor, scene_time: torch.Tensor) -> RenderOutput:
        """Complete ``frame`` rendered at ``poses (B, 4, 4)``; ``scene_time (B,)`` video seconds shown.

        Returns the observation: the completed colours with the render's own depth and validity (completed
        pixels stay invalid: they are not geometry). The completion itself is kept in :attr:`last`.
        """
        hole = ~frame.valid
        known = frame.valid & (frame.depth > 0)
        self.cache.select(poses, scene_time, fill_depth(frame.depth, known, "smooth"), hole, self.K)
        done = self.completer.complete(frame, poses, self.K, self.cache.slots())
        self.cache.push(done.rgb, done.depth, poses, scene_time)
        self.last = done
        return RenderOutput(rgb=done.rgb, depth=frame.depth, valid=frame.valid)
