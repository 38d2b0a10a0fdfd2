"""The Grafana dashboards and provisioning files: every panel titled, described, with a unit,
on the provisioned datasource, templated by job and instance, rates over $__rate_interval."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

GRAFANA_DIR = Path(__file__).resolve().parents[2] / "grafana"
DASHBOARDS = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
DATASOURCE_UID = "cqkd-prometheus"
# Series every dashboard filters by the template variables (everything a node exports).
NODE_METRIC = re.compile(r"\b((?:cqkd|process)_[a-z_]+|up)\{([^}]*)\}")
RANGE = re.compile(r"\[([^\]]+)\]")


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


@pytest.fixture(params=DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def dashboard(request) -> dict[str, Any]:
    return json.loads(request.param.read_text())


def test_the_three_dashboards_exist():
    assert [p.stem for p in DASHBOARDS] == ["cqkd-dht", "cqkd-resources", "cqkd-sessions"]


def test_dashboard_has_uid_title_and_job_instance_variables(dashboard):
    assert dashboard["uid"] and dashboard["title"].startswith("CQKD / ")
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert set(variables) == {"job", "instance"}
    for variable in variables.values():
        assert variable["datasource"]["uid"] == DATASOURCE_UID
        assert variable["includeAll"] and variable["multi"]
    assert '$job' in variables["instance"]["query"]["query"]


def test_every_panel_is_titled_described_with_unit_and_datasource(dashboard):
    for panel in panels(dashboard):
        name = f"{dashboard['uid']}: {panel.get('title')!r}"
        assert panel.get("title"), name
        assert len(panel.get("description", "")) > 20, name
        assert panel["fieldConfig"]["defaults"].get("unit"), name
        assert panel["datasource"]["uid"] == DATASOURCE_UID, name
        assert panel["targets"], name
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DATASOURCE_UID, name
            assert target["expr"].strip(), name


def test_panel_ids_and_positions_are_unique(dashboard):
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells = [
        (p["gridPos"]["x"] + dx, p["gridPos"]["y"] + dy)
        for p in dashboard["panels"]
        for dx in range(p["gridPos"]["w"])
        for dy in range(p["gridPos"]["h"])
    ]
    assert len(cells) == len(set(cells)), "panels overlap"
    assert all(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in dashboard["panels"])


def test_rates_use_rate_interval_and_queries_filter_job_and_instance(dashboard):
    for panel in panels(dashboard):
        for target in panel["targets"]:
            expr = target["expr"]
            for window in RANGE.findall(expr):
                assert window in ("$__rate_interval", "$__range"), (panel["title"], expr)
            if re.search(r"\b(rate|irate)\(", expr):
                assert "[$__rate_interval]" in expr, (panel["title"], expr)
            for metric, matchers in NODE_METRIC.findall(expr):
                assert 'job=~"$job"' in matchers and 'instance=~"$instance"' in matchers, (
                    panel["title"], metric)


def test_dashboard_needs_every_section_the_issue_lists():
    titles = {
        panel["title"] for path in DASHBOARDS for panel in panels(json.loads(path.read_text()))
    }
    for needed in [
        "Discovery time quantiles", "Query success rate by job", "Nodes up by job",
        "Churn: restarts and nodes down", "Session rate by outcome", "Session duration",
        "Session outcomes", "QBER", "Key bits by stage", "CPU per node", "Memory per node",
    ]:
        assert needed in titles


def test_provisioning_points_at_the_dashboards_and_datasource():
    sources = yaml.safe_load((GRAFANA_DIR / "provisioning/datasources/prometheus.yml").read_text())
    (source,) = sources["datasources"]
    assert source["uid"] == DATASOURCE_UID and source["type"] == "prometheus"
    assert source["url"] == "${CQKD_PROMETHEUS_URL}"
    providers = yaml.safe_load((GRAFANA_DIR / "provisioning/dashboards/cqkd.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]
