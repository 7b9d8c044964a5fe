import importlib.util
import json
from pathlib import Path

import pytest

from inspatio_sim.bench.report import write_report
from inspatio_sim.cli import main

CHECKER = Path(__file__).resolve().parents[3] / "shared" / "tools" / "check_bench.py"


def _checker():
    if not CHECKER.exists():
        pytest.skip(f"the shared benchmark checker is not beside this checkout ({CHECKER})")
    spec = importlib.util.spec_from_file_location("check_bench", CHECKER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_report_follows_the_contract(tmp_path):
    json_path, md_path = write_report("render", tmp_path, {"a": 1}, {"fps_64_b1": 10.0}, "cpu",
                                      [("t", ["x", "y"], [[1, 2.5]])])
    doc = json.loads(json_path.read_text())
    assert set(doc) == {"name", "created", "machine", "config", "metrics"}
    assert doc["machine"]["cuda"] is None and doc["machine"]["cores"] >= 1
    assert "| 1 | 2.50 |" in md_path.read_text()
    with pytest.raises(ValueError, match="finite"):
        write_report("render", tmp_path, {}, {"x": float("nan")}, "cpu", [])


def test_quick_render_bench_writes_every_headline_metric(tmp_path, capsys):
    rc = main(["bench", "render", "--quick", "--out", str(tmp_path), "bench.render.seconds_per_case=0.1",
               "bench.render.novel_views_per_offset=3"])
    assert rc == 0
    path = tmp_path / "bench_render.json"
    assert _checker().check(str(path)) == []
    metrics = json.loads(path.read_text())["metrics"]
    assert metrics["train_view_psnr"] > 25.0  # the world reproduces its own training views
    assert metrics["novel_view_psnr_010m"] > metrics["novel_view_psnr_050m"] - 3.0
    assert 0.0 <= metrics["novel_view_hole_fraction_025m"] < 0.3
    assert metrics["fps_64_b64"] > 0 and metrics["speedup_vs_tinyrenderer_64"] > 0
    assert (tmp_path / "bench_render.md").read_text().startswith("# bench render")
