"""The viewer is a face: the core, the envs and the CLI's start-up import neither it nor viser or selenium."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_core_does_not_import_the_viewer():
    code = ("import sys, inspatio_sim.simulator, inspatio_sim.assemble, inspatio_sim.cli, inspatio_sim.config_schema, "
            "envs\n"
            "bad = sorted(m for m in sys.modules if m.startswith(('inspatio_sim.viewer', 'viser', 'selenium')))\n"
            "print(','.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"imported by the core: {out.stdout.strip()}"
