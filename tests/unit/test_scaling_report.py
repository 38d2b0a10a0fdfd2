"""bench/scaling/report.py: the report's table and plots hold exactly the results' figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import matplotlib.image
import pytest

ROOT = Path(__file__).resolve().parents[2]
DASH = "\N{EN DASH}"


@pytest.fixture
def report(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT))  # bench/ is a package of the repository, not installed
    import bench.scaling.report

    return bench.scaling.report


def study() -> dict[str, Any]:
    figures = [
        {"bootstrap_nodes": 2, "discovery_worker_p99_seconds": 1.234567,
         "alice_convergence_seconds": 0.8, "query_success_ratio": 0.99871,
         "lookup_p50_seconds": 0.0021, "lookup_p99_seconds": 0.0456789,
         "worker_rss_mib_mean": 31.25, "worker_container_mib_mean": None,
         "worker_cpu_seconds_mean": 1.5, "confirmed_key_bits_per_second": 12345.0,
         "deploy_fresh_seconds": 61.0, "an_extra_figure": 7},
        {"bootstrap_nodes": 3, "discovery_worker_p99_seconds": None,
         "alice_convergence_seconds": 1.9, "query_success_ratio": 0.95,
         "lookup_p99_seconds": 0.25, "worker_rss_mib_mean": 33.5,
         "worker_cpu_seconds_mean": 2.25, "deploy_fresh_seconds": 95.5},
        {"bootstrap_nodes": 6, "discovery_worker_p99_seconds": 4.5,
         "query_success_ratio": 0.9, "lookup_p99_seconds": 1.75, "worker_rss_mib_mean": 40.0},
    ]
    return {
        "study": "containers", "started": "2026-11-29T18:00:00+00:00",
        "finished": "2026-11-29T18:30:00+00:00", "command": "ansible-playbook ansible/scaling.yml",
        "versions": {"cqkd": "0.1.0", "python": "3.11.2", "docker": None},
        "host": {"cpus": 2, "memory_bytes": 25 * 2**30, "kernel": "6.1", "os": "Debian 12"},
        "steps": [{"workers": w, "nodes": n, "figures": f, "notes": [f"note {w}"]}
                  for w, n, f in zip((15, 50, 500), (17, 53, None), figures, strict=True)],
    }


def key_table(markdown: str) -> list[dict[str, str]]:
    section = markdown.split("## Key metrics", 1)[1].split("## ", 1)[0]
    lines = section.splitlines()
    rows = [line.strip("|").split("|") for line in lines if line.startswith("|")]
    header = [cell.strip() for cell in rows[0]]
    return [dict(zip(header, (c.strip() for c in row), strict=True)) for row in rows[2:]]


def test_table_cells_are_the_results_figures(report: ModuleType, tmp_path: Path) -> None:
    results = study()
    report.write_report(results, tmp_path)
    rows = key_table((tmp_path / "report.md").read_text())
    assert [row["workers"] for row in rows] == ["15", "50", "500"]
    columns = {"query success (%)": ("query_success_ratio", 100),
               "lookup p99 (ms)": ("lookup_p99_seconds", 1000),
               "discovery, workers p99 (s)": ("discovery_worker_p99_seconds", 1),
               "convergence (s)": ("alice_convergence_seconds", 1),
               "RSS per worker (MiB)": ("worker_rss_mib_mean", 1),
               "container per worker (MiB)": ("worker_container_mib_mean", 1),
               "key rate (kbit/s)": ("confirmed_key_bits_per_second", 0.001)}
    for row, step in zip(rows, results["steps"], strict=True):
        for header, (name, scale) in columns.items():
            value = step["figures"].get(name)
            if value is None:  # null and missing alike
                assert row[header] == DASH, (header, step["workers"])
            else:
                assert float(row[header]) == pytest.approx(value * scale, rel=5e-3), header
        bootstraps = step["figures"]["bootstrap_nodes"]
        assert float(row["workers per bootstrap"]) == pytest.approx(
            step["workers"] / bootstraps, rel=5e-3)
    assert [row["nodes"] for row in rows] == ["17", "53", DASH]
    assert [row["seed: discovery (s)"] for row in rows] == ["60", "90", DASH]
    assert [row["seed: success (%)"] for row in rows] == ["95", "90", DASH]
    text = (tmp_path / "report.md").read_text()
    assert f"| an_extra_figure | 7 | {DASH} | {DASH} |" in text
    assert "- 500 workers: note 500" in text


def test_plots_hold_only_the_results_figures(report: ModuleType, tmp_path: Path) -> None:
    results = study()
    paths = report.write_report(results, tmp_path)
    plots = json.loads((tmp_path / "plots.json").read_text())
    pngs = {p.name for p in paths if p.suffix == ".png"}
    assert pngs == set(plots)
    # No step has session or CPU-percent figures: no empty plot is drawn.
    assert "session_time.png" not in pngs and "cpu_per_worker_percent.png" not in pngs
    for name in pngs:
        image = matplotlib.image.imread(tmp_path / name)
        assert image.shape[0] > 100 and image.shape[1] > 100
    checked = 0
    for plot in plots.values():
        for series in plot["series"]:
            if series["figure"] == "seed":
                continue
            points = [(s["workers"], s["figures"][series["figure"]] * plot["scale"])
                      for s in results["steps"] if s["figures"].get(series["figure"]) is not None]
            assert series["x"] == [float(x) for x, _ in points]
            assert series["y"] == pytest.approx([y for _, y in points])
            checked += 1
    assert checked >= 8
    discovery = {s["figure"]: s for s in plots["discovery.png"]["series"]}
    assert discovery["discovery_worker_p99_seconds"]["x"] == [15.0, 500.0]  # null skipped
    assert discovery["seed"]["x"] == [15.0, 50.0, 100.0]
    assert discovery["seed"]["y"] == [60.0, 90.0, 120.0]
    success = {s["figure"]: s for s in plots["query_success.png"]["series"]}
    assert success["query_success_ratio"]["y"] == pytest.approx([99.871, 95.0, 90.0])


def test_command_line_writes_beside_the_results(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    results.write_text(json.dumps(study()))
    done = subprocess.run([sys.executable, "-m", "bench.scaling.report", str(results)],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "report.md").exists() and (tmp_path / "discovery.png").exists()
    assert str(tmp_path / "report.md") in done.stdout.splitlines()
