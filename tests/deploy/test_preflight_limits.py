"""ansible/preflight.yml refuses a plan that does not fit a Docker host of the inventory,
before anything starts, and names the limit. It reads /proc on the hosts and starts
nothing (no container, no Docker call)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import REPO, run_playbook
from helpers.modules import load

pytestmark = pytest.mark.deploy


def test_more_memory_reserved_than_the_host_has_is_refused() -> None:
    # 1,000 workers reserve 32 MiB each: 31 GiB, more than this 24 GiB machine has. Only
    # those without a running container count (another test's deployment may be up).
    run = run_playbook("ansible/preflight.yml", "-e", "scale=custom", "-e", "workers=1000")
    assert run.returncode != 0, run.explain()
    assert re.search(r"\b\d+ new workers and \d new bootstrap nodes reserve", run.output), (
        run.explain())
    assert "more than its MemAvailable" in run.output
    assert "dht_nodes_worker_memory_reservation" in run.output


def test_ports_in_the_ephemeral_range_are_refused() -> None:
    start, end = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    run = run_playbook(
        "ansible/preflight.yml", "-e", "scale=small",
        "-e", f'{{"cqkd_ports": {{"worker": {start + 100}}}}}',
    )
    assert run.returncode != 0, run.explain()
    assert f"net.ipv4.ip_local_port_range {start}-{end}" in run.output, run.explain()


def test_a_plan_that_fits_passes() -> None:
    run = run_playbook("ansible/preflight.yml", "-e", "scale=small")
    assert run.returncode == 0 and run.failed == 0, run.explain()


# The same checks as plain functions (ansible/filter_plugins/cqkd_plan.py): no Docker host.
_PROC = (
    "cqkd-worker-0\ncqkd-bootstrap-0\n"
    "MemTotal:       24684000 kB\nMemAvailable:    1048576 kB\n"
    "32768\t60999\n"
    "1000\t0\t100000\n"
)
_WORKERS = [{"name": f"cqkd-worker-{i}", "host": "h1", "port": 7000 + i} for i in range(40)]
_BOOTSTRAPS = [{"name": "cqkd-bootstrap-0", "host": "h1", "port": 5678},
               {"name": "cqkd-bootstrap-1", "host": "h2", "port": 5678}]
_MIB = 1048576


def _limits() -> Any:
    return load(REPO / "ansible" / "filter_plugins" / "cqkd_plan.py", "cqkd_plan_limits")


def test_only_nodes_without_a_running_container_reserve_memory() -> None:
    # 1 GiB available: 39 new workers of 32 MiB (1248 MiB) do not fit, 31 do.
    problems = _limits().cqkd_host_limits(_PROC, "h1", _WORKERS, _BOOTSTRAPS, 32 * _MIB, 64 * _MIB)
    assert len(problems) == 1
    assert problems[0].startswith("39 new workers and 0 new bootstrap nodes reserve 1248 MiB of "
                                  "memory on h1 (dht_nodes_worker_memory_reservation 32 MiB, ")
    assert "more than its MemAvailable of 1024 MiB" in problems[0]
    assert _limits().cqkd_host_limits(_PROC, "h1", _WORKERS[:32], _BOOTSTRAPS, 32 * _MIB,
                                      64 * _MIB) == []


def test_every_limit_exceeded_is_named() -> None:
    workers = [{**w, "port": 40000 + i} for i, w in enumerate(_WORKERS)]
    proc = _PROC.replace("1000\t0\t100000", "99000\t0\t100000")
    problems = _limits().cqkd_host_limits(proc, "h1", workers, _BOOTSTRAPS, 1, 1)
    assert [p.split(" ", 3)[:3] for p in problems] == [
        ["the", "nodes", "of"], ["41", "nodes", "need"]]
    assert "net.ipv4.ip_local_port_range 32768-60999" in problems[0]
    assert "but 99000 of its fs.file-max 100000 are in use" in problems[1]
