"""World-model step: the Implicit Spatiotemporal Cache and the completers (see :mod:`inspatio_sim.model.step`)."""

from inspatio_sim.model.cache import CacheConfig, CacheSlots, SpatiotemporalCache, plucker_rays
from inspatio_sim.model.classical import ClassicalCompleter, ClassicalConfig, Completion
from inspatio_sim.model.references import ReferenceFrames
from inspatio_sim.model.step import MODELS, ModelConfig, ModelStep

__all__ = ["MODELS", "CacheConfig", "CacheSlots", "ClassicalCompleter", "ClassicalConfig", "Completion", "ModelConfig",
           "ModelStep", "ReferenceFrames", "SpatiotemporalCache", "plucker_rays"]
