"""A quick scaling study (`ansible/scaling.yml -e scaling_steps=15,30`) against the real
Docker engine: both steps deploy, the report and its plots are written, and every figure of
results.json comes from the run (a plot's data is read back and re-queried from the kept
step's Prometheus)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import REPO, run_playbook
from helpers.modules import load

pytestmark = pytest.mark.deploy

STEPS = (15, 30)
# The shared schema's figures that the container study measures (none is null here).
FIGURES = (
    "deploy_fresh_seconds", "deploy_rerun_seconds", "deploy_rerun_settled_seconds",
    "startup_seconds",
    "discovery_worker_p50_seconds", "discovery_worker_p99_seconds",
    "discovery_bootstrap_p50_seconds", "discovery_bootstrap_p99_seconds",
    "alice_convergence_seconds", "lookups", "query_success_ratio", "store_get_success_ratio",
    "lookup_p50_seconds",
    "lookup_p99_seconds", "worker_rss_mib_mean", "worker_rss_mib_max",
    "worker_container_mib_mean", "worker_cpu_percent_mean", "worker_cpu_seconds_mean",
    "sessions", "sessions_confirmed", "session_p50_seconds", "session_p99_seconds",
    "confirmed_key_bits_per_second", "routing_table_size_min", "routing_table_size_p50",
    "udp_drops",
)


def _study() -> Any:
    """bench/scaling/containers.py, loaded by path (bench/ is not an installed package)."""
    return load(REPO / "bench" / "scaling" / "containers.py", "scaling_containers")


@pytest.mark.mutates_deployment(3)
def test_quick_scaling_study_reports_figures_from_the_run(tmp_path: Path) -> None:
    run = run_playbook(
        "ansible/scaling.yml", "-e", f"scaling_steps={','.join(map(str, STEPS))}",
        "-e", "scaling_keep=true", "-e", f"scaling_reports_dir={tmp_path}",
    )
    try:
        assert run.returncode == 0 and run.failed == 0, run.explain()
        assert "step 2/2, 30 workers" in run.output  # the progress display
        [out] = list(tmp_path.iterdir())
        results = json.loads((out / "results.json").read_text())
        assert results["study"] == "containers"
        assert [step["workers"] for step in results["steps"]] == list(STEPS)
        for step in results["steps"]:
            for name in FIGURES:
                value = step["figures"][name]
                assert isinstance(value, int | float) and math.isfinite(value), (name, value)
            assert step["figures"]["sessions_confirmed"] == step["figures"]["sessions"]
            assert step["figures"]["deploy_rerun_changed"] == 0  # the rerun changed nothing
            assert step["figures"]["deploy_rerun_settled_changed"] == 0
        assert (out / "report.md").is_file()
        plots = json.loads((out / "plots.json").read_text())
        assert {"discovery.png", "deploy_time.png", "memory_per_worker.png"} <= plots.keys()
        for name in plots:
            assert (out / name).stat().st_size > 0
        # The discovery plot's p99 line is results.json's figure, which is Prometheus's
        # answer for the last step (kept): a gauge per node, so the same query gives it again.
        [line] = [s for s in plots["discovery.png"]["series"]
                  if s["figure"] == "discovery_worker_p99_seconds"]
        recorded = [step["figures"]["discovery_worker_p99_seconds"] for step in results["steps"]]
        assert line["x"] == list(STEPS) and line["y"] == pytest.approx(recorded)
        study = _study()
        again = study.prometheus(
            "http://127.0.0.1:9090", study.QUERIES["discovery_worker_p99_seconds"]
        )
        assert again == pytest.approx(recorded[-1])
    finally:
        teardown = run_playbook("ansible/teardown.yml")
        assert teardown.returncode == 0, teardown.explain()
