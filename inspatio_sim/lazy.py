"""Deferred imports of heavy optional modules (importlib's ``LazyLoader``), so light code paths never load them."""

from __future__ import annotations

import importlib.util
import sys
import types


def lazy_import(name: str) -> types.ModuleType:
    """Module ``name``, executed on its first attribute access; a module already imported is returned as is.

    Used where a module-level name is convenient but the module is slow or heavy to load and most importers never
    touch it (e.g. ``pycolmap`` in :mod:`inspatio_sim.recon.sfm`, which the configuration schema imports).

    Raises:
        ModuleNotFoundError: ``name`` is not installed (raised here, not at first use).
    """
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named '{name}'", name=name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
