"""Grafana's datasource URL follows Prometheus' listen address (ansible/monitoring.yml), read
from a real check-mode run of the monitoring play: nothing is created. No Grafana image
exists here, so the run names a local image in its place; Docker must answer."""

from __future__ import annotations

import json
import re

import pytest
from deploy_helpers import run_playbook

# The plan facts ansible/preflight.yml would hand over; the Grafana tasks do not read them.
PLAN = {
    "cqkd_plan_bootstrap_addresses": [],
    "cqkd_plan_worker_addresses": [],
    "cqkd_plan_alice": {"address": "127.0.0.1", "port": 6000},
    "cqkd_plan_bob": {"address": "127.0.0.1", "port": 6001},
    "cqkd_scale": {"discovery_timeout": 60},
}


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        ("127.0.0.2:9191", "http://127.0.0.2:9191"),
        ("0.0.0.0:9292", "http://127.0.0.1:9292"),
        ("[::1]:9393", "http://[::1]:9393"),
    ],
)
def test_datasource_url_follows_the_prometheus_listen_address(
    listen: str, url: str, tmp_path
) -> None:
    run = run_playbook(
        "ansible/monitoring.yml",
        "-vvv",
        "--check",
        "--tags",
        "grafana",
        "-e",
        json.dumps(PLAN),
        "-e",
        f"prometheus_web_listen_address={listen}",
        "-e",
        "grafana_image=cqkd-base:bookworm",
        "-e",
        "grafana_admin_password=unused",
        "-e",
        f"grafana_config_dir={tmp_path}",
    )
    assert run.returncode == 0, run.explain()
    assert set(re.findall(r'"CQKD_PROMETHEUS_URL": "([^"]*)"', run.output)) == {url}, run.explain()
