"""The DHT dashboard shows the live adaptive Kademlia parameters every node exports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cqkd import metrics
from helpers.metrics import DHT_PARAMETER_GAUGES

DASHBOARD = Path(__file__).resolve().parents[2] / "grafana" / "dashboards" / "cqkd-dht.json"


@pytest.mark.parametrize("gauge", DHT_PARAMETER_GAUGES)
def test_a_dht_panel_plots_each_parameter_gauge(gauge: str) -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    plotting = [
        panel
        for panel in panels
        for target in panel.get("targets", [])
        if target["expr"].startswith(gauge + "{")
    ]
    assert len(plotting) == 1, f"{gauge} is plotted by {len(plotting)} panels"
    assert plotting[0]["type"] == "timeseries"


@pytest.mark.parametrize("gauge", DHT_PARAMETER_GAUGES)
def test_the_nodes_metrics_hold_the_gauge(gauge: str) -> None:
    text = metrics.exposition()[0].decode()
    assert f"# TYPE {gauge} gauge" in text
