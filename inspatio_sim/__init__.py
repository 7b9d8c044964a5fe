"""inspatio-sim: a 4D world simulator built from a single monocular video."""

__version__ = "0.1.0"
