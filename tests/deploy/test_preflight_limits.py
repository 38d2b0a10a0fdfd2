"""ansible/preflight.yml refuses a plan that does not fit a Docker host of the inventory,
before anything starts, and names the limit. It reads /proc on the hosts and starts
nothing (no container, no Docker call)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from deploy_helpers import run_playbook

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
