"""The Grafana dashboards of the CQKD network, as code: `python grafana/dashboards.py` (or
`make dashboards`) writes grafana/dashboards/*.json, which Grafana's provisioning reads.

Built with Grafana's own builders (grafana-foundation-sdk, the release of the Grafana schema
the grafana role deploys). The thresholds come from where they are defined: the query
success goal from the alert in prometheus/rules/alerts.yml, the QBER abort threshold from
the node's settings, the discovery timeouts from node/src/cqkd/dht/params.py.

Panels read the recording rules of prometheus/rules/recording.yml wherever one holds the
aggregate they show, so a dashboard and an alert never disagree. Those rules aggregate by
job, so the `instance` selection narrows only the per-node panels (raw node series); the
per-job panels follow the `job` selection.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import yaml
from cqkd.dht.params import SCALES, scale_profile
from cqkd.settings import Settings
from grafana_foundation_sdk.builders import (
    bargauge,
    common,
    dashboard,
    prometheus,
    stat,
    table,
    timeseries,
)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as dashboard_models
from grafana_foundation_sdk.models import prometheus as prometheus_models

REPO = Path(__file__).resolve().parents[1]
OUTPUT_DIR = REPO / "grafana" / "dashboards"
DATASOURCE = dashboard_models.DataSourceRef(type_val="prometheus", uid="cqkd-prometheus")

# Node series are filtered by both template variables; recording rules carry only `job`.
NODE = 'job=~"$job", instance=~"$instance"'
JOB = 'job=~"$job"'
# The panel builders used here; each is a Builder[dashboard.Panel].
Panel = stat.Panel | timeseries.Panel | bargauge.Panel | table.Panel


def _query_success_goal() -> float:
    """The share of DHT operations below which CqkdQuerySuccessLow fires."""
    rules = yaml.safe_load((REPO / "prometheus" / "rules" / "alerts.yml").read_text())
    (expr,) = [
        rule["expr"]
        for group in rules["groups"]
        for rule in group["rules"]
        if rule.get("alert") == "CqkdQuerySuccessLow"
    ]
    match = re.fullmatch(r"\S+ < ([0-9.]+)\s*", expr)
    if match is None:
        raise ValueError(f"CqkdQuerySuccessLow should read `ratio < goal`, not {expr!r}")
    return float(match.group(1))


QUERY_SUCCESS_GOAL = _query_success_goal()
QBER_ABORT_THRESHOLD = float(Settings.model_fields["qber_threshold"].default)
DISCOVERY_TIMEOUTS = {name: scale_profile(name)["discovery_timeout"] for name, _, _ in SCALES}
TIMEOUTS_TEXT = ", ".join(f"{seconds:g} s {name}" for name, seconds in DISCOVERY_TIMEOUTS.items())


def _target(expr: str, legend: str, ref_id: str, instant: bool = False) -> prometheus.Dataquery:
    query = (
        prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref_id)
        .datasource(DATASOURCE)
    )
    return query.instant() if instant else query.range()


def _targets(panel: Panel, queries: list[tuple[str, str]], instant: bool) -> None:
    for index, (expr, legend) in enumerate(queries):
        panel.with_target(_target(expr, legend, chr(ord("A") + index), instant))


def _thresholds(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    return dashboard.ThresholdsConfig().mode(dashboard_models.ThresholdsMode.ABSOLUTE).steps(
        [dashboard_models.Threshold(value=value, color=color) for value, color in steps]
    )


# Green at and above the goal, orange within 10 points below it, red further down.
SUCCESS_STEPS = _thresholds(
    (None, "red"), (QUERY_SUCCESS_GOAL - 0.10, "orange"), (QUERY_SUCCESS_GOAL, "green")
)
QBER_STEPS = _thresholds(
    (None, "green"), (QBER_ABORT_THRESHOLD / 2, "orange"), (QBER_ABORT_THRESHOLD, "red")
)


def stat_panel(title: str, description: str, unit: str, expr: str, legend: str) -> stat.Panel:
    """One number: the last value of an instant query."""
    panel = (
        stat.Panel().title(title).description(description).unit(unit).datasource(DATASOURCE)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .color_mode(common_models.BigValueColorMode.VALUE)
        .graph_mode(common_models.BigValueGraphMode.AREA)
        .text_mode(common_models.BigValueTextMode.AUTO)
    )
    _targets(panel, [(expr, legend)], instant=True)
    return panel


def timeseries_panel(
    title: str, description: str, unit: str, *queries: tuple[str, str]
) -> timeseries.Panel:
    """A graph of one or more range queries, with a legend and a shared tooltip."""
    panel = (
        timeseries.Panel().title(title).description(description).unit(unit)
        .datasource(DATASOURCE)
        .legend(common.VizLegendOptions().display_mode(common_models.LegendDisplayMode.LIST)
                .placement(common_models.LegendPlacement.BOTTOM).show_legend(True))
        .tooltip(common.VizTooltipOptions().mode(common_models.TooltipDisplayMode.MULTI)
                 .sort(common_models.SortOrder.DESCENDING))
    )
    _targets(panel, list(queries), instant=False)
    return panel


def _variable(name: str, query: str) -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable(name).label(name.capitalize()).datasource(DATASOURCE)
        .query({"query": query, "refId": name}).multi(True).include_all(True).all_value(".+")
        .refresh(dashboard_models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dashboard_models.VariableSort.ALPHABETICAL_ASC)
        .current(dashboard_models.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


class Layout:
    """Places rows and panels on Grafana's 24-column grid, left to right, top to bottom."""

    def __init__(self, board: dashboard.Dashboard) -> None:
        self.board = board
        self.x = self.y = self.row_height = 0

    def row(self, title: str) -> None:
        self.y += self.row_height
        self.board.with_row(dashboard.Row(title).grid_pos(
            dashboard_models.GridPos(h=1, w=24, x=0, y=self.y)))
        self.x, self.y, self.row_height = 0, self.y + 1, 0

    def add(self, width: int, height: int, panel: Panel) -> None:
        if self.x + width > 24:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        panel.grid_pos(dashboard_models.GridPos(h=height, w=width, x=self.x, y=self.y))
        self.board.with_panel(panel)
        self.x += width
        self.row_height = max(self.row_height, height)


def _dashboard(
    uid: str, title: str, description: str, tags: list[str]
) -> tuple[dashboard.Dashboard, Layout]:
    """A dashboard with the CQKD conventions: read-only (Grafana provisions it from files),
    a shared crosshair, UTC, links to the other CQKD dashboards, `job` and `instance`."""
    board = (
        dashboard.Dashboard(f"CQKD / {title}").uid(uid).description(description)
        .tags(["cqkd", *tags]).refresh("30s").time("now-1h", "now").timezone("utc")
        .readonly().tooltip(dashboard_models.DashboardCursorSync.CROSSHAIR)
        .link(dashboard.DashboardLink("CQKD dashboards")
              .type(dashboard_models.DashboardLinkType.DASHBOARDS).tags(["cqkd"])
              .as_dropdown(False).include_vars(True).keep_time(True))
        .with_variable(_variable("job", "label_values(cqkd_build_info, job)"))
        .with_variable(_variable(
            "instance", 'label_values(cqkd_build_info{job=~"$job"}, instance)'))
    )
    return board, Layout(board)


def dht_dashboard() -> dashboard.Dashboard:
    """Discovery, queries, network size and churn, and the live adaptive parameters."""
    board, layout = _dashboard(
        "cqkd-dht", "DHT network",
        "Discovery time, query success rate, network size and churn of the Kademlia DHT, and "
        "the adaptive Kademlia parameters each node uses.",
        ["dht"],
    )
    layout.row("Overview")
    layout.add(6, 5, stat_panel(
        "Nodes up", "Scrape targets of the selected jobs that answered the last scrape.",
        "none", f"sum(job:cqkd_nodes_up:sum{{{JOB}}})", "up"))
    layout.add(6, 5, stat_panel(
        "Query success rate",
        "Share of DHT operations (join, find_node, get, set) that answered over the last "
        "5 minutes, for the selected job that fares worst: the series the query success alert "
        f"reads (it fires below {QUERY_SUCCESS_GOAL:.0%}). Empty while the network is idle: "
        "then read the since-start figure beside it.",
        "percentunit", f"min(job:cqkd_dht_query_success:ratio_rate5m{{{JOB}}})", "success",
    ).min(0).max(1).thresholds(SUCCESS_STEPS))
    layout.add(6, 5, stat_panel(
        "Query success rate since start",
        "Share of DHT operations that answered since the nodes started, for the selected job "
        "that fares worst; every node counts its join.",
        "percentunit", f"min(job:cqkd_dht_query_success:ratio{{{JOB}}})", "success",
    ).min(0).max(1).thresholds(SUCCESS_STEPS))
    layout.add(6, 5, stat_panel(
        "Discovery time p90",
        "90th percentile of the time from a node's start of join (or of a discover() call) "
        "until it knew enough peers, over every discovery since the nodes started, for the "
        f"slowest selected job. Compare with the scale's discovery timeout ({TIMEOUTS_TEXT}).",
        "s",
        "max(job_quantile:cqkd_dht_discovery_duration_seconds:histogram_quantile"
        f'{{{JOB}, quantile="0.9"}})',
        "p90",
    ))

    layout.row("Discovery")
    layout.add(12, 8, timeseries_panel(
        "Discovery time quantiles",
        "Median, 90th and 99th percentile of the discovery time over every discovery since "
        "the nodes started, by job: joins of bootstrap nodes and workers, and Alice's "
        "discovery of workers before each session; with the deployment's discovery timeout "
        f"({TIMEOUTS_TEXT}).",
        "s",
        (f"job_quantile:cqkd_dht_discovery_duration_seconds:histogram_quantile{{{JOB}}}",
         "{{job}} p{{quantile}}"),
        ("cqkd:discovery_timeout:seconds", "discovery timeout"),
    # Joins take about a second, the timeout a minute or more: a log axis shows both.
    ).scale_distribution(common.ScaleDistributionConfig()
                         .type(common_models.ScaleDistribution.LOG).log(10)))
    layout.add(12, 8, timeseries_panel(
        "Discoveries",
        "Discoveries per second over 5 minutes, by job: joins, rejoins after losing every "
        "peer, and Alice's per-session discovery.",
        "ops", (f"job:cqkd_dht_discoveries:rate5m{{{JOB}}}", "{{job}}"),
    ))

    layout.row("Queries")
    layout.add(12, 8, timeseries_panel(
        "Query success rate by job",
        "Share of DHT operations that answered over the last 5 minutes, by job: the series "
        f"the alert reads; it fires below {QUERY_SUCCESS_GOAL:.0%} (the red line) for "
        "5 minutes.",
        "percentunit", (f"job:cqkd_dht_query_success:ratio_rate5m{{{JOB}}}", "{{job}}"),
    ).min(0).max(1).thresholds(_thresholds((None, "transparent"), (QUERY_SUCCESS_GOAL, "red")))
        .thresholds_style(common.GraphThresholdsStyleConfig().mode(
            common_models.GraphThresholdsStyleMode.DASHED)))
    layout.add(12, 8, timeseries_panel(
        "Queries by operation and result",
        "DHT operations per second over 5 minutes by operation (join, find_node, get, set) "
        "and result (ok, timeout, not_found, error).",
        "ops",
        (f"sum by (operation, result) (job:cqkd_dht_queries:rate5m{{{JOB}}})",
         "{{operation}} {{result}}"),
    ))
    lookups = (
        f"sum by (operation, le) (job:cqkd_dht_lookup_duration_seconds_bucket:rate5m{{{JOB}}})"
    )
    layout.add(24, 8, timeseries_panel(
        "Lookup duration",
        "Median and 99th percentile of the duration of DHT lookups over 5 minutes, by "
        "operation.",
        "s",
        (f"histogram_quantile(0.5, {lookups})", "{{operation}} p50"),
        (f"histogram_quantile(0.99, {lookups})", "{{operation}} p99"),
    ))

    layout.row("Network size and churn")
    layout.add(8, 8, timeseries_panel(
        "Nodes up by job",
        "Nodes per job that answered Prometheus' scrapes: the size of the network as "
        "Prometheus sees it.",
        "none", (f"job:cqkd_nodes_up:sum{{{JOB}}}", "{{job}}"),
    ))
    layout.add(8, 8, timeseries_panel(
        "Routing table peers",
        "Peers in each node's routing table: how much of the network each node knows.",
        "none", (f"cqkd_routing_table_peers{{{NODE}}}", "{{instance}}"),
    ))
    layout.add(8, 8, timeseries_panel(
        "Churn: restarts and nodes down",
        "Node restarts (changes of the process start time) over 5 minutes, and nodes that "
        "failed their last scrape, by job.",
        "none",
        (f"job:process_restarts:changes5m{{{JOB}}}", "{{job}} restarts"),
        (f"job:cqkd_nodes_down:sum{{{JOB}}}", "{{job}} down"),
    ))

    layout.row("Adaptive Kademlia parameters")
    for title, description, unit, gauge in [
        ("Alpha (lookup parallelism)",
         "The alpha each node uses now: the table in node/src/cqkd/dht/params.py for the "
         "size it estimates, unless ALPHA pins it.", "none", "cqkd_dht_alpha"),
        ("k (bucket size)",
         "The k each node uses now: the table for the size it estimates, unless K pins it.",
         "none", "cqkd_dht_k"),
        ("Query timeout",
         "The time a lookup may take on each node now: the table for the size it "
         "estimates, unless QUERY_TIMEOUT pins it.", "s", "cqkd_dht_query_timeout_seconds"),
        ("Estimated network size",
         "The network size each node estimates from its nearest peers' ids (at least the "
         "deployment's worker count); the parameters follow it.", "none",
         "cqkd_dht_network_size_estimate"),
    ]:
        layout.add(6, 8, timeseries_panel(
            title, description, unit, (f"{gauge}{{{NODE}}}", "{{instance}}")))
    return board


def resources_dashboard() -> dashboard.Dashboard:
    """CPU and memory of every node's process, per node and per job, and versions."""
    board, layout = _dashboard(
        "cqkd-resources", "Node resources",
        "CPU and memory of every node, from the process metrics each node exports.",
        ["resources"],
    )
    layout.row("Per node")
    layout.add(12, 8, timeseries_panel(
        "CPU per node",
        "CPU used by each node's process over 5 minutes, in cores (1 = one full core).",
        "percentunit", (f"instance:process_cpu_seconds:rate5m{{{NODE}}}", "{{instance}}"),
    ))
    layout.add(12, 8, timeseries_panel(
        "Memory per node", "Resident memory of each node's process.",
        "bytes", (f"process_resident_memory_bytes{{{NODE}}}", "{{instance}}"),
    ))
    layout.row("Per job")
    layout.add(8, 8, timeseries_panel(
        "Mean CPU by job",
        "Mean CPU of the nodes of each job over 5 minutes, in cores; the seed's figure for a "
        "worker is about 1 %.",
        "percentunit", (f"job:process_cpu_seconds:avg_rate5m{{{JOB}}}", "{{job}}"),
    ))
    layout.add(8, 8, timeseries_panel(
        "Mean memory by job",
        "Mean resident memory of the nodes of each job; the seed's figure for a worker is "
        "64 MB.",
        "bytes", (f"job:process_resident_memory_bytes:avg{{{JOB}}}", "{{job}}"),
    ))
    versions = (
        table.Panel().title("Versions").description(
            "Nodes per job, cqkd version and Python version.")
        .unit("none").datasource(DATASOURCE).show_header(True)
    )
    versions.with_target(
        _target(f"job:cqkd_build_info:count{{{JOB}}}", "", "A", instant=True)
        .format(prometheus_models.PromQueryFormat.TABLE)
    )
    layout.add(8, 8, versions)
    return board


def sessions_dashboard() -> dashboard.Dashboard:
    """Key sessions: outcomes, durations, QBER, key bits, error correction, worker roles."""
    board, layout = _dashboard(
        "cqkd-sessions", "Key sessions",
        "Key sessions as Alice and Bob count them: rate, duration, outcomes, QBER, key bits by "
        "stage, error correction; and the role operations of the workers.",
        ["qkd"],
    )
    layout.row("Overview")
    layout.add(6, 5, stat_panel(
        "Confirmed sessions",
        "Key sessions that ended with equal, confirmed keys since Alice started (the exact "
        "count of her counter; Bob counts the same sessions).",
        "none",
        f'sum(job:cqkd_sessions:sum{{{JOB}, party="alice", outcome="confirmed"}})',
        "confirmed",
    ))
    layout.add(6, 5, stat_panel(
        "Final key rate", "Confirmed final key bits per second over the last 5 minutes.",
        "bps", f'sum(job:cqkd_key_positions:rate5m{{{JOB}, stage="final"}})', "final",
    ))
    layout.add(6, 5, stat_panel(
        "Last QBER",
        "Highest quantum bit error rate among the last sessions of the selected Alice and Bob "
        f"endpoints; sessions abort above the threshold ({QBER_ABORT_THRESHOLD:g} by default).",
        "percentunit", f"max(job:cqkd_qber_ratio:max{{{JOB}}})", "qber",
    ).thresholds(QBER_STEPS))
    layout.add(6, 5, stat_panel(
        "Session duration p50",
        "Median duration of Alice's key sessions over the dashboard's time range, from her "
        "start to confirmation.",
        "s",
        "histogram_quantile(0.5, sum by (le) (increase(cqkd_session_duration_seconds_bucket"
        f'{{{NODE}, party="alice"}}[$__range])))',
        "p50",
    ))

    layout.row("Sessions")
    layout.add(12, 8, timeseries_panel(
        "Session rate by outcome",
        "Key sessions per second over 5 minutes by party (Alice, Bob: both count every "
        "session) and outcome (confirmed, qber_exceeded, not_enough_workers, "
        "confirmation_failed, timeout, error).",
        "ops",
        (f"sum by (party, outcome) (job:cqkd_sessions:rate5m{{{JOB}}})",
         "{{party}} {{outcome}}"),
    ))
    outcomes = (
        bargauge.Panel().title("Session outcomes").description(
            "Key sessions by party and outcome since the endpoints started: confirmed, or why "
            "no key was delivered.")
        .unit("none").datasource(DATASOURCE)
        .orientation(common_models.VizOrientation.HORIZONTAL)
        .display_mode(common_models.BarGaugeDisplayMode.GRADIENT).show_unfilled(True)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    _targets(outcomes, [(f"sum by (party, outcome) (job:cqkd_sessions:sum{{{JOB}}})",
                         "{{party}} {{outcome}}")], instant=True)
    layout.add(12, 8, outcomes)
    durations = f"sum by (party, le) (job:cqkd_session_duration_seconds_bucket:rate5m{{{JOB}}})"
    layout.add(12, 8, timeseries_panel(
        "Session duration",
        "Median and 99th percentile of the key session duration over 5 minutes, by party: "
        "Alice's from her start to confirmation, Bob's from his first message to it.",
        "s",
        (f"histogram_quantile(0.5, {durations})", "{{party}} p50"),
        (f"histogram_quantile(0.99, {durations})", "{{party}} p99"),
    ).span_nulls(True))
    layout.add(12, 8, timeseries_panel(
        "QBER",
        "Quantum bit error rate of each endpoint's last session, as Alice and Bob measured "
        "it, with the abort threshold: above it the session delivers no key (eavesdropper or "
        "noisy channel).",
        "percentunit",
        (f"cqkd_qber_ratio{{{NODE}}} and on (job, instance, party) "
         f"(cqkd_session_duration_seconds_count{{{NODE}}} > 0)", "{{party}} {{instance}}"),
        ("cqkd:qber_abort_threshold:ratio", "abort threshold"),
    ).min(0))

    layout.row("Key bits")
    layout.add(12, 8, timeseries_panel(
        "Key bits by stage",
        "Key bits per second over 5 minutes by stage: raw positions, sifted, sampled for the "
        "QBER estimate, final (after reconciliation and privacy amplification).",
        "bps", (f"sum by (stage) (job:cqkd_key_positions:rate5m{{{JOB}}})", "{{stage}}"),
    ))
    layout.add(12, 8, timeseries_panel(
        "Role operations",
        "Role commands executed per second over 5 minutes by workers, by role (QSG, BG, QPP, "
        "QPM, QPC).",
        "ops", (f"sum by (role) (job:cqkd_role_operations:rate5m{{{JOB}}})", "{{role}}"),
    ))

    layout.row("Error correction")
    layout.add(12, 8, timeseries_panel(
        "Bits disclosed by error correction",
        "Bits per second over 5 minutes that Cascade's parities and the verification hashes "
        "disclosed, beside the final key bits: privacy amplification removes what was "
        "disclosed, so the final key shrinks as disclosure grows.",
        "bps",
        (f"sum(job:cqkd_reconciliation_leaked:rate5m{{{JOB}}})", "disclosed"),
        (f'sum(job:cqkd_key_positions:rate5m{{{JOB}, stage="final"}})', "final key"),
    ))
    efficiency = (
        bargauge.Panel().title("Cascade efficiency").description(
            "Sessions over the dashboard's time range by Cascade's efficiency f = disclosed "
            "parities / (n h2(e)), each bar the sessions whose f falls in the bucket that ends "
            "at its label: 1 is the Shannon limit, Cascade reaches about 1.1 to 1.2. Only "
            "sessions with errors to correct count: all bars stay at 0 on a noiseless channel.")
        .unit("none").datasource(DATASOURCE)
        .orientation(common_models.VizOrientation.VERTICAL)
        .display_mode(common_models.BarGaugeDisplayMode.GRADIENT)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    efficiency.with_target(
        _target(
            "sum by (le) (increase(cqkd_reconciliation_efficiency_ratio_bucket"
            f"{{{NODE}}}[$__range]))",
            "{{le}}", "A", instant=True,
        ).format(prometheus_models.PromQueryFormat.HEATMAP)
    )
    layout.add(12, 8, efficiency)
    return board


DASHBOARDS: dict[str, Callable[[], dashboard.Dashboard]] = {
    "cqkd-dht": dht_dashboard,
    "cqkd-resources": resources_dashboard,
    "cqkd-sessions": sessions_dashboard,
}


def render(build: Callable[[], dashboard.Dashboard]) -> str:
    """The dashboard as the JSON file Grafana provisions, with panel ids in reading order."""
    model = json.loads(json.dumps(build().build(), cls=JSONEncoder))
    for number, panel in enumerate(model["panels"], start=1):
        panel["id"] = number
    return json.dumps(model, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    """Write every dashboard into grafana/dashboards/ (or the directory given)."""
    output = Path(argv[0]) if argv else OUTPUT_DIR
    output.mkdir(parents=True, exist_ok=True)
    for uid, build in DASHBOARDS.items():
        text = render(build)
        path = output / f"{uid}.json"
        path.write_text(text)
        panels = [p for p in json.loads(text)["panels"] if p["type"] != "row"]
        queries = sum(len(p["targets"]) for p in panels)
        shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        print(f"{shown}: {len(panels)} panels, {queries} queries")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
