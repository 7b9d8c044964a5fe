"""World-model step: the Implicit Spatiotemporal Cache and the completers (see :mod:`inspatio_sim.model.step`)."""

from inspatio_sim.model.cache import CacheConfig, CacheSlots, SpatiotemporalCache, plucker_rays
from inspatio_sim.model.classical import ClassicalCompleter, ClassicalConfig, Completion
from inspatio_sim.model.references import ReferenceFrames
from inspatio_sim.model.step import MODELS, ModelConfig, ModelStep
from inspatio_sim.model.writeback import GeneratedPool, WritebackConfig

__all__ = [
           "MODELS",
           "CacheConfig",
           "CacheSlots",
           "ClassicalCompleter",
           "ClassicalConfig",
           "Completion",
           "GeneratedPool",
           "ModelConfig",
           "ModelStep",
           "ReferenceFrames",
           "SpatiotemporalCache",
           "WritebackConfig",
           "plucker_rays",
]
