"""Benchmark reports: ``DIR/bench_NAME.json`` (the contract of :mod:`inspatio_sim.bench.contract`) + Markdown tables."""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path
from typing import Any

import torch

from inspatio_sim.bench.contract import structure_problems
from inspatio_sim.fileio import write_json, write_text


def machine_info(device: str) -> dict[str, Any]:
    """CPU model, usable cores, torch version and the CUDA device name (or None)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cuda = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else None
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "cuda": cuda}


def write_report(
    name: str, out_dir: str | Path, config: dict[str, Any], metrics: dict[str, float], device: str,
    tables: list[tuple[str, list[str], list[list[Any]]]], notes: list[str] | None = None,
    series: dict[str, list[list[float]]] | None = None,
) -> tuple[Path, Path]:
    """Write ``bench_NAME.json`` and ``bench_NAME.md`` (atomically); ``tables`` are ``(title, header, rows)``,
    ``series`` optional measurements over time (:mod:`inspatio_sim.bench.contract`).

    Raises:
        ValueError: the document would break the contract (a bug of the benchmark, not a user error).
    """
    out = Path(out_dir)
    doc: dict[str, Any] = {"name": name, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                           "machine": machine_info(device), "config": config, "metrics": metrics}
    if series is not None:
        doc["series"] = series
    problems = structure_problems(doc)
    if problems:
        raise ValueError(f"bench {name}: the report breaks the benchmark contract: {'; '.join(problems)}")
    json_path, md_path = out / f"bench_{name}.json", out / f"bench_{name}.md"
    write_json(json_path, doc)
    m = doc["machine"]
    lines = [f"# bench {name}", "", f"{doc['created']} · {m['cpu']} · {m['cores']} cores · torch {m['torch']}"
             + (f" · {m['cuda']}" if m["cuda"] else ""), ""]
    for title, header, rows in tables:
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
        lines.append("")
    lines += ["## Metrics", "", "| key | value |", "|---|---|"]
    lines += [f"| `{k}` | {_fmt(v)} |" for k, v in metrics.items()]
    if notes:
        lines += ["", *notes]
    write_text(md_path, "\n".join(lines) + "\n")
    return json_path, md_path


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.4f}" if abs(v) < 1 else f"{v:,.1f}" if abs(v) >= 100 else f"{v:.2f}"
    return str(v)
