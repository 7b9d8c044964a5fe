import json
import math

import numpy as np
import pytest

from inspatio_sim.bench.contract import HEADLINE, check_bench_doc, check_bench_json
from inspatio_sim.bench.render_bench import MIN_CLEARANCE, TRIES_PER_POSE, offset_poses
from inspatio_sim.bench.report import write_report
from inspatio_sim.cli import main
from inspatio_sim.errors import ConfigError
from tests.helpers import wall_scene


def test_report_follows_the_contract(tmp_path):
    json_path, md_path = write_report("render", tmp_path, {"a": 1}, {"fps_64_b1": 10.0}, "cpu",
                                      [("t", ["x", "y"], [[1, 2.5]])], series={"rss": [[0.0, 1.5], [1.0, 2.0]]})
    doc = json.loads(json_path.read_text())
    assert set(doc) == {"name", "created", "machine", "config", "metrics", "series"}
    assert doc["machine"]["cuda"] is None and doc["machine"]["cores"] >= 1
    assert doc["series"] == {"rss": [[0.0, 1.5], [1.0, 2.0]]}
    assert "| 1 | 2.50 |" in md_path.read_text()
    # only the headline keys are missing from this toy report
    assert check_bench_json(json_path) == [f"headline metric '{k}' missing" for k in HEADLINE["render"][1:]]
    with pytest.raises(ValueError, match="not finite"):
        write_report("render", tmp_path / "bad", {}, {"x": float("nan")}, "cpu", [])
    with pytest.raises(ValueError, match="series"):
        write_report("render", tmp_path / "bad", {}, {"x": 1.0}, "cpu", [], series={"rss": [[math.inf]]})
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda d: d.pop("created"), "missing top-level key 'created'"),
        (lambda d: d.update(extra=1), "unknown top-level key 'extra'"),
        (lambda d: d["machine"].pop("cuda"), "machine lacks 'cuda'"),
        (lambda d: d["metrics"].update(x="fast"), "metric 'x' is not a number"),
        (lambda d: d["metrics"].update(x=True), "metric 'x' is not a number"),
        (lambda d: d["metrics"].update(x=float("inf")), "metric 'x' is not finite"),
        (lambda d: d.update(metrics=[1.0]), "'metrics' must be a flat object"),
        (lambda d: d["metrics"].pop("fps_64_b1"), "headline metric 'fps_64_b1' missing"),
        (lambda d: d.update(series={"rss": [1.0]}), "'series'"),
    ],
)
def test_the_contract_check_names_each_problem(mutate, problem):
    doc = {"name": "render", "created": "2026-01-01T00:00:00+00:00",
           "machine": {"cpu": "x", "cores": 2, "torch": "2", "cuda": None}, "config": {},
           "metrics": dict.fromkeys(HEADLINE["render"], 1.0)}
    assert check_bench_doc(doc) == []
    mutate(doc)
    assert any(problem in p for p in check_bench_doc(doc)), check_bench_doc(doc)


def test_check_bench_json_reports_an_unreadable_file(tmp_path):
    (tmp_path / "b.json").write_text("{not json")
    assert check_bench_json(tmp_path / "b.json")[0].startswith("cannot read JSON")
    assert check_bench_json(tmp_path / "missing.json")[0].startswith("cannot read JSON")


class _Walled:
    """An oracle stand-in whose geometry is everywhere: no pose is ever clear."""

    calls = 0

    def clearance(self, points):
        self.calls += 1
        return np.zeros(len(points))


def test_offset_poses_fail_loudly_when_no_clear_pose_exists():
    oracle = _Walled()
    with pytest.raises(ConfigError, match=r"only 0 of 4 held-out poses 0.25 m off .* 800 random draws"):
        offset_poses(wall_scene(), oracle, 0.25, 4, np.random.default_rng(0))
    assert oracle.calls == TRIES_PER_POSE * 4  # bounded: it gave up after its budget of draws


def test_offset_poses_are_at_the_offset_and_clear():
    class Open:
        def clearance(self, points):
            return np.where(points[:, 1] > 0, 1.0, 0.0)  # only the +y half-space is clear

    scene = wall_scene(n=3)
    poses, times = offset_poses(scene, Open(), 0.25, 12, np.random.default_rng(0))
    assert poses.shape == (12, 4, 4) and times.shape == (12,)
    assert (poses[:, 1, 3] > 0).all()
    dist = np.min(np.linalg.norm(poses[:, None, :3, 3] - scene.poses[None, :, :3, 3], axis=-1), axis=1)
    assert np.all(dist <= 0.25 + 1e-9) and np.all(dist > 0)
    assert MIN_CLEARANCE > 0


def _expected_render_keys(resolutions, batches, offsets):
    keys = {f"fps_{r}_b{b}{be}" for r in resolutions for b in batches for be in ("", "_fused")}
    keys |= {f"speedup_fused_vs_torch_{r}_b{b}" for r in resolutions for b in batches}
    keys |= {f"fps_64_b{b}_{k}" for b in (1, 64) for k in ("quiet", "loaded", "under_load_ratio")}
    keys |= {"threads_quiet", "threads_under_load"}
    keys |= {f"tinyrenderer_fps_{r}" for r in resolutions} | {f"speedup_vs_tinyrenderer_{r}" for r in resolutions}
    keys |= {"train_view_psnr", "train_view_ssim", "world_build_seconds", "world_points"}
    keys |= {f"novel_view_{m}_{o}" for m in ("psnr", "psnr_valid", "ssim", "depth_absrel", "hole_fraction")
             for o in offsets}
    return keys


def test_quick_render_bench_writes_every_headline_metric(tmp_path):
    rc = main(["bench", "render", "--quick", "--out", str(tmp_path), "bench.render.seconds_per_case=0.1",
               "bench.render.novel_views_per_offset=3"])
    assert rc == 0
    path = tmp_path / "bench_render.json"
    assert check_bench_json(path) == []
    m = json.loads(path.read_text())["metrics"]
    assert set(m) == _expected_render_keys((64, 128), (1, 16, 64), ("010m", "025m", "050m"))
    assert 25.0 < m["train_view_psnr"] < 60.0  # the world reproduces its own training views, not perfectly
    assert 0.8 < m["train_view_ssim"] <= 1.0
    for off in ("010m", "025m", "050m"):
        assert 15.0 < m[f"novel_view_psnr_{off}"] < m["train_view_psnr"] + 1.0
        assert m[f"novel_view_psnr_valid_{off}"] >= m[f"novel_view_psnr_{off}"] - 1.0  # holes only lower PSNR
        assert 0.0 <= m[f"novel_view_hole_fraction_{off}"] < 0.3
        assert 0.0 <= m[f"novel_view_depth_absrel_{off}"] < 0.1
        assert 0.0 < m[f"novel_view_ssim_{off}"] <= m["train_view_ssim"] + 0.05
    assert m["novel_view_psnr_010m"] > m["novel_view_psnr_050m"] - 3.0
    for r in (64, 128):
        assert m[f"speedup_vs_tinyrenderer_{r}"] == pytest.approx(
            max(m[f"fps_{r}_b{b}{be}"] for b in (1, 16, 64) for be in ("", "_fused")) / m[f"tinyrenderer_fps_{r}"])
        assert all(1.0 < m[f"fps_{r}_b{b}{be}"] < 1e6 for b in (1, 16, 64) for be in ("", "_fused"))
        for b in (1, 16, 64):
            assert m[f"speedup_fused_vs_torch_{r}_b{b}"] == pytest.approx(m[f"fps_{r}_b{b}_fused"] / m[f"fps_{r}_b{b}"])
    for b in (1, 64):  # both sides of each ratio measured (no bound on the ratio itself: the machine is shared)
        assert m[f"fps_64_b{b}_under_load_ratio"] == pytest.approx(m[f"fps_64_b{b}_loaded"] / m[f"fps_64_b{b}_quiet"])
        assert m[f"fps_64_b{b}_loaded"] > 0 and m[f"fps_64_b{b}_quiet"] > 0
    assert m["threads_under_load"] >= 1 and m["threads_quiet"] >= 1
    assert m["world_points"] > 1000 and m["world_build_seconds"] > 0
    assert (tmp_path / "bench_render.md").read_text().startswith("# bench render")
