"""A real node's /metrics: clean for `promtool check metrics`, and holding every series the
rules and dashboards read, so a renamed metric breaks this test rather than a panel."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
import yaml
from cqkd.httpd import HttpServer, metrics_response
from cqkd.settings import Settings
from cqkd.sim.network import LocalNetwork
from cqkd.sim.report import run_lookups
from cqkd.sim.sessions import attach, run_sessions

REPO = Path(__file__).resolve().parents[2]
SERIES = re.compile(r"(?<![\w:])((?:cqkd|process)_[a-z_]+)\b")
HISTOGRAM_SUFFIX = re.compile(r"_(bucket|sum|count)$")

pytestmark = pytest.mark.network


@pytest.fixture
async def scrape() -> str:
    """/metrics of an in-process network that joined, ran lookups and a key session (so every
    labelled series has samples for promtool to lint), over real HTTP."""
    settings = Settings()
    async with LocalNetwork(settings, workers=6) as net:
        await run_lookups(net, 3)
        protocol = await attach(net, settings)
        try:
            report = await run_sessions(net, protocol, key_bits=64, sessions=1, concurrency=1)
        finally:
            await protocol.stop()
        assert report["sessions_confirmed"] == 1, report
        server = HttpServer({"/metrics": metrics_response}, "127.0.0.1", 0)
        await server.start()
        try:
            async with httpx.AsyncClient() as client:
                response = await client.get(f"http://127.0.0.1:{server.port}/metrics")
        finally:
            await server.stop()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def referenced_series() -> set[str]:
    """Every node series a rule or a dashboard panel reads."""
    texts = [
        rule["expr"]
        for name in ("recording.yml", "alerts.yml")
        for group in yaml.safe_load((REPO / "prometheus/rules" / name).read_text())["groups"]
        for rule in group["rules"]
    ]
    for path in (REPO / "grafana/dashboards").glob("*.json"):
        dashboard = json.loads(path.read_text())
        texts += [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
        texts += [v["query"]["query"] for v in dashboard["templating"]["list"]]
    return {m for text in texts for m in SERIES.findall(text)}


async def test_node_metrics_pass_promtool_check(scrape, promtool):
    result = promtool("check", "metrics", stdin=scrape)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""


async def test_node_exports_every_series_the_rules_and_dashboards_read(scrape):
    families = set(re.findall(r"^# TYPE (\S+) ", scrape, re.MULTILINE))
    referenced = referenced_series()
    assert {"cqkd_sessions_total", "process_cpu_seconds_total"} <= referenced
    missing = {
        series for series in referenced
        if series not in families and HISTOGRAM_SUFFIX.sub("", series) not in families
        and series.removesuffix("_total") not in families
    }
    assert not missing, f"read by rules or dashboards, exported by no node: {sorted(missing)}"


async def test_node_exports_process_cpu_and_memory(scrape):
    assert re.search(r"^process_cpu_seconds_total \d", scrape, re.MULTILINE)
    assert re.search(r"^process_resident_memory_bytes \d", scrape, re.MULTILINE)
    assert re.search(r'^cqkd_dht_queries_total\{operation="join",result="ok"\} [1-9]', scrape,
                     re.MULTILINE)
    assert re.search(r'^cqkd_sessions_total\{outcome="confirmed",party="alice"\} [1-9]', scrape,
                     re.MULTILINE)
