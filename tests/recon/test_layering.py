"""Reconstruction ends at the Scene: it must not pull in the World (or anything above it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_recon_pipeline_does_not_import_the_world():
    code = ("import sys, inspatio_sim.recon.pipeline, inspatio_sim.recon.align\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[:2] in (['inspatio_sim', 'world'], "
            "['inspatio_sim', 'simulator'], ['inspatio_sim', 'control']) or m.split('.')[0] == 'envs')\n"
            "print(','.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"recon imports layers above the Scene: {out.stdout.strip()}"
