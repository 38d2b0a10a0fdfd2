"""bench/scaling/in_process.py: a real `cqkd local` run becomes a step of the shared schema,
and a run stopped at its bound still says how far it got."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.network


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT))  # bench/ is a package of the repository, not installed
    import bench.scaling.in_process

    return bench.scaling.in_process


def test_a_finished_run_gives_the_runs_own_figures(in_process: ModuleType) -> None:
    run = in_process.run_step(workers=15, lookups=20, seed=1, timeout=120, every=0.2)
    step = in_process.step_entry(run)
    report, figures = run["report"], step["figures"]
    assert not run["timed_out"] and report is not None, run["stderr_tail"]
    assert step["workers"] == 15 and step["nodes"] == report["nodes"] == 17
    assert figures["startup_seconds"] == report["startup_seconds"] > 0
    assert figures["query_success_ratio"] == report["query_success_rate"] == 1.0
    assert figures["lookup_p99_seconds"] == report["lookup_p99_seconds"]
    assert figures["worker_rss_mib_mean"] == pytest.approx(
        report["peak_rss_bytes"] / 2**20 / 17, abs=1e-4)
    # The child's own CPU time: a run of a network uses some, and no more than its wall time
    # on the 2 cores.
    assert 0 < figures["process_cpu_seconds"] <= 2 * run["wall_seconds"]
    assert figures["worker_cpu_seconds_mean"] == pytest.approx(run["cpu_seconds"] / 17, abs=1e-4)


def test_a_stopped_run_says_how_far_it_got(in_process: ModuleType) -> None:
    run = in_process.run_step(workers=3000, lookups=0, seed=1, timeout=4, every=0.5)
    step = in_process.step_entry(run)
    assert run["timed_out"] and run["report"] is None
    assert step["nodes"] is None and "stopped after 4 s" in step["notes"][0]
    started = step["figures"]["nodes_started"]
    assert 0 < started < 3006, "the sockets counted are the nodes started so far"
    assert step["figures"]["process_rss_mib_max"] > 0
