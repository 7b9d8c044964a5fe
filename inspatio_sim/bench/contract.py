"""The benchmark contract, as a check (DESIGN.md "Benchmarks: one contract").

``inspatio-sim bench NAME`` writes ``DIR/bench_NAME.json``::

    {"name": str, "created": ISO 8601 str,
     "machine": {"cpu": str, "cores": int, "torch": str, "cuda": str | null, ...},
     "config": {...},                      # what was measured, and how
     "metrics": {key: finite number},      # flat; the headline keys of each benchmark below
     "series": {name: [[x, y, ...], ...]}} # optional: measurements over time (e.g. the soak's RSS samples)

:func:`check_bench_json` lists what a file breaks; :func:`~inspatio_sim.bench.report.write_report` refuses to write
a document that breaks the structure, and the tests hold every benchmark to its headline keys.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

REQUIRED_KEYS = ("name", "created", "machine", "config", "metrics")
OPTIONAL_KEYS = ("series",)
MACHINE_KEYS = ("cpu", "cores", "torch", "cuda")

SOAK_ENV_KEYS = ("soak_env_rss_mb_start", "soak_env_rss_mb_end", "soak_env_rss_growth_pct", "soak_env_steps_per_s")
SOAK_ROS_KEYS = ("soak_ros_rate_hz_min_window", "soak_ros_rate_hz_mean", "soak_ros_rss_growth_pct")

HEADLINE: dict[str, tuple[str, ...]] = {
    "render": ("fps_64_b1", "fps_64_b16", "fps_64_b64", "fps_128_b16", "speedup_vs_tinyrenderer_64",
               "train_view_psnr", "novel_view_psnr_025m", "novel_view_psnr_050m",
               "novel_view_hole_fraction_025m", "novel_view_depth_absrel_025m",
               "fps_64_b64_fused", "fps_64_b1_fused", "fps_128_b16_fused", "speedup_fused_vs_torch_64_b64",
               "fps_64_b1_under_load_ratio", "fps_64_b64_under_load_ratio"),
    "recon": ("registered_fraction", "ate_percent_path", "rel_rot_err_deg", "depth_absrel", "depth_delta125",
              "dynamic_iou", "recon_seconds", "novel_view_psnr_recon_025m"),
    "env": ("native_fps_64_b1", "native_fps_64_b16", "native_fps_64_b64", "native_fps_128_b16", "sync_fps_64_b16",
            "async_fps_64_b16", "speedup_vs_sync_64_b16", "speedup_vs_async_64_b16", "mem_mb_per_env_128"),
    "ros": ("publish_hz_requested", "publish_hz_achieved_128", "publish_hz_achieved_320x240",
            "latency_ms_cmd_to_image"),
    "model": ("frame_psnr_none", "frame_psnr_classical", "hole_psnr_none", "hole_psnr_classical",
              "hole_flicker_none", "hole_flicker_classical", "revisit_psnr_classical_writeback",
              "revisit_psnr_classical_no_writeback", "latency_ms_64_b1_classical", "fps_64_b16_classical",
              "mem_mb_per_agent_cache", "frame_psnr_star1", "frame_psnr_star4", "hole_psnr_teacher", "hole_psnr_star1",
              "hole_psnr_star4", "hole_flicker_star4", "revisit_psnr_star4_writeback",
              "revisit_psnr_star4_no_writeback", "frame_psnr_star4_adapted", "latency_ms_64_b1_star4",
              "fps_64_b16_star4", "train_minutes_default"),
    "soak": SOAK_ENV_KEYS + SOAK_ROS_KEYS,
    "transfer": ("transfer_success_recon_to_exact", "transfer_success_exact_to_exact", "transfer_spl_recon_to_exact",
                 "transfer_spl_exact_to_exact", "transfer_success_drop"),
    "ray": ("native_fps_64_b16", "native_fps_64_b32", "ray_fps_64_b16x2", "ray_speedup_vs_native_same_agents",
            "ray_step_overhead_ms", "clips_per_hour_w1", "clips_per_hour_w2"),
}
"""Headline metric keys per benchmark (named by their issues; the README tables report them)."""


def structure_problems(doc: Any) -> list[str]:
    """What breaks the contract's structure (keys, machine, flat finite metrics, series), headline aside."""
    if not isinstance(doc, dict):
        return ["the document must be a JSON object"]
    problems = [f"missing top-level key '{k}'" for k in REQUIRED_KEYS if k not in doc]
    problems += [f"unknown top-level key '{k}'" for k in doc if k not in REQUIRED_KEYS + OPTIONAL_KEYS]
    if not isinstance(doc.get("name", ""), str) or not isinstance(doc.get("created", ""), str):
        problems.append("'name' and 'created' must be strings")
    machine = doc.get("machine", {})
    if not isinstance(machine, dict):
        problems.append("'machine' must be an object")
    else:
        problems += [f"machine lacks '{k}' (use null for no CUDA device)" for k in MACHINE_KEYS if k not in machine]
    if not isinstance(doc.get("config", {}), dict):
        problems.append("'config' must be an object")
    metrics = doc.get("metrics", {})
    if not isinstance(metrics, dict):
        return [*problems, "'metrics' must be a flat object of numbers"]
    for k, v in metrics.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            problems.append(f"metric '{k}' is not a number: {v!r}")
        elif not math.isfinite(v):
            problems.append(f"metric '{k}' is not finite: {v!r}")
    series = doc.get("series", {})
    if not isinstance(series, dict) or not all(
            isinstance(rows, list) and all(isinstance(r, list) and all(_is_number(x) for x in r) for r in rows)
            for rows in series.values()):
        problems.append("'series' must map names to lists of rows of finite numbers")
    return problems


def check_bench_doc(doc: Any) -> list[str]:
    """Every way ``doc`` breaks the contract, including headline keys of its benchmark that are missing."""
    problems = structure_problems(doc)
    if isinstance(doc, dict) and isinstance(doc.get("metrics"), dict):
        problems += [f"headline metric '{k}' missing" for k in HEADLINE.get(doc.get("name"), ())
                     if k not in doc["metrics"]]
    return problems


def check_bench_json(path: str | Path) -> list[str]:
    """:func:`check_bench_doc` of the JSON file at ``path`` (an unreadable file is one problem)."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        return [f"cannot read JSON: {e}"]
    return check_bench_doc(doc)


def _is_number(x: Any) -> bool:
    return not isinstance(x, bool) and isinstance(x, (int, float)) and math.isfinite(x)
