"""Exceptions raised for user mistakes and bad data.

Every error names the problem and what to do about it; commands catch :class:`InSpatioError` and print its message
without a traceback.
"""

from __future__ import annotations


class InSpatioError(Exception):
    """Base class of every error this package raises on purpose."""


class SceneError(InSpatioError):
    """A Scene on disk or in memory is missing data, inconsistent or of the wrong version."""


class WorldError(InSpatioError):
    """A World cannot be built (e.g. no valid depth) or is used wrongly."""


class RenderError(InSpatioError):
    """A render request is malformed (NaN poses, B=0, zero-size resolution, mismatched batch)."""


class ConfigError(InSpatioError):
    """A configuration key or value is unknown or invalid."""


class ActionError(InSpatioError):
    """An action batch has the wrong shape, dtype or non-finite values."""


class ReconError(InSpatioError):
    """A video cannot be reconstructed (unreadable, too short, static camera, textureless, ...)."""


class OutputPathError(InSpatioError):
    """An output path cannot be written (its parent is a file, a name is too long, no permission, wrong kind)."""


class CheckpointError(InSpatioError):
    """A model checkpoint is missing, corrupt, of another format, or does not fit what it is loaded into."""
