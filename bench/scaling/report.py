"""The scaling study's report: report.md, PNG plots and plots.json from a study's results.json.

    .venv/bin/python -m bench.scaling.report RESULTS.json [--out DIR]   # DIR: beside RESULTS
    write_report(results, out_dir) -> [report.md, plots.json, *.png]

results.json, written by the container study (ansible/scaling.yml) and the in-process study
(bench/scaling/in_process.py), is this one shape:

    {"study": "containers" | "in-process",
     "started": "<UTC ISO 8601>", "finished": "<UTC ISO 8601>",
     "command": "<the command line that made it>",
     "versions": {"cqkd": ..., "python": ..., "docker": ..., "ansible-core": ..., "kademlia": ...},
     "host": {"cpus": int, "memory_bytes": int, "kernel": str, "os": str},
     "steps": [{"workers": int, "nodes": int | null, "figures": {NAME: number | null},
                "notes": [str]}]}

Figure names carry their unit; a figure a study cannot measure is null or missing (shown
as a dash, left out of the plots):

    deploy_fresh_seconds, deploy_rerun_seconds (right after the fresh deploy),
    deploy_rerun_settled_seconds (after the load), startup_seconds,
    discovery_worker_p50_seconds, discovery_worker_p99_seconds,
    discovery_bootstrap_p50_seconds, discovery_bootstrap_p99_seconds,
    alice_convergence_seconds (last worker's start/up until Alice sees every worker, hers),
    lookups, query_success_ratio (0..1: containers, node lookups that found their node;
    in-process, gets that returned the stored value), store_get_success_ratio (0..1,
    containers: gets, where workers decline STORE), lookup_p50_seconds, lookup_p99_seconds,
    worker_rss_mib_mean, worker_rss_mib_max, worker_container_mib_mean (docker stats),
    worker_cpu_percent_mean, worker_cpu_seconds_mean,
    sessions, sessions_confirmed, session_p50_seconds, session_p99_seconds,
    confirmed_key_bits_per_second, routing_table_size_min, routing_table_size_p50, udp_drops

Extra figures used here: bootstrap_nodes (for the workers per bootstrap column) and
discovery_seconds (in-process: from the last worker's start until every node knows
min(k, N-1) live peers). Any other extra figure appears in the full table only.

Every plotted point is a figure of results.json times the plot's scale; plots.json holds
each plot's series as read back from the matplotlib figure before it was saved, so a test
can compare a plot with results.json. The seed guide's promised figures are drawn as
reference marks: discovery 60 / 90 / 120 s and query success > 95 / 90 / 85 % for 15 / 50 /
100 workers, 64 MB per worker (drawn at 64 MiB, the unit of Docker's `64m` limit).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

SEED_DISCOVERY_SECONDS = {15: 60.0, 50: 90.0, 100: 120.0}
SEED_SUCCESS_PERCENT = {15: 95.0, 50: 90.0, 100: 85.0}
SEED_WORKER_MIB = 64.0
DASH = "\N{EN DASH}"


@dataclass(frozen=True)
class Plot:
    """One PNG: figures (name, label) against workers, each value times `scale`."""

    file: str
    title: str
    unit: str
    series: tuple[tuple[str, str], ...]
    scale: float = 1.0
    seed: dict[int, float] | float | None = None  # per worker count, or one line for all
    log_y: bool = False


PLOTS = (
    Plot("discovery.png", "Discovery time", "s", (
        ("discovery_worker_p50_seconds", "workers p50"),
        ("discovery_worker_p99_seconds", "workers p99"),
        ("discovery_bootstrap_p50_seconds", "bootstrap p50"),
        ("discovery_bootstrap_p99_seconds", "bootstrap p99"),
        ("alice_convergence_seconds", "Alice sees every worker"),
        ("discovery_seconds", "every node knows min(k, N-1) peers"),
    ), seed=SEED_DISCOVERY_SECONDS, log_y=True),
    Plot("startup.png", "Start-up (first node started until converged)", "s",
         (("startup_seconds", "start-up"),), log_y=True),
    Plot("query_success.png", "Query success", "%",
         (("query_success_ratio", "queries answered (containers: node lookups; in-process: gets)"),
          ("store_get_success_ratio", "containers: gets that returned the stored value")),
         scale=100.0, seed=SEED_SUCCESS_PERCENT),
    Plot("lookup_latency.png", "Lookup latency", "ms", (
        ("lookup_p50_seconds", "p50"), ("lookup_p99_seconds", "p99"),
    ), scale=1000.0, log_y=True),
    Plot("memory_per_worker.png", "Memory per worker", "MiB", (
        ("worker_rss_mib_mean", "RSS mean"), ("worker_rss_mib_max", "RSS max"),
        ("worker_container_mib_mean", "container (docker stats) mean"),
    ), seed=SEED_WORKER_MIB, log_y=True),
    Plot("cpu_per_worker_percent.png", "CPU per worker", "% of one core",
         (("worker_cpu_percent_mean", "mean"),)),
    Plot("cpu_per_worker_seconds.png", "CPU time per worker, whole run", "s",
         (("worker_cpu_seconds_mean", "mean"),), log_y=True),
    Plot("deploy_time.png", "Deploy time", "s", (
        ("deploy_fresh_seconds", "fresh"),
        ("deploy_rerun_seconds", "rerun right after, nothing to change"),
        ("deploy_rerun_settled_seconds", "rerun after the load, nothing to change"),
    )),
    Plot("session_time.png", "Key session time", "s", (
        ("session_p50_seconds", "p50"), ("session_p99_seconds", "p99"),
    )),
)


def figure(step: dict[str, Any], name: str) -> float | None:
    """A step's figure as a float, or None when null or missing."""
    value = step.get("figures", {}).get(name)
    return None if value is None or isinstance(value, bool) else float(value)


def fmt(value: float | None, scale: float = 1.0, digits: int = 3) -> str:
    """`value * scale` with `digits` significant digits, integer part always whole."""
    if value is None:
        return DASH
    scaled = value * scale
    if math.isfinite(scaled) and abs(scaled) >= 10**digits:
        return f"{scaled:.0f}"
    return f"{scaled:.{digits}g}"


def _ratio(step: dict[str, Any]) -> float | None:
    bootstraps = figure(step, "bootstrap_nodes")
    return step["workers"] / bootstraps if bootstraps else None


def _first(step: dict[str, Any], *names: str) -> float | None:
    return next((v for v in (figure(step, n) for n in names) if v is not None), None)


# The key-metrics table: header, how to get the cell from a step, scale.
KEY_COLUMNS: tuple[tuple[str, Any, float], ...] = (
    ("workers", lambda s: float(s["workers"]), 1.0),
    ("nodes", lambda s: None if s.get("nodes") is None else float(s["nodes"]), 1.0),
    ("workers per bootstrap", _ratio, 1.0),
    ("discovery, workers p99 (s)", lambda s: figure(s, "discovery_worker_p99_seconds"), 1.0),
    ("convergence (s)", lambda s: _first(s, "alice_convergence_seconds", "discovery_seconds"),
     1.0),
    ("seed: discovery (s)", lambda s: SEED_DISCOVERY_SECONDS.get(s["workers"]), 1.0),
    ("query success (%)", lambda s: figure(s, "query_success_ratio"), 100.0),
    ("seed: success (%)", lambda s: SEED_SUCCESS_PERCENT.get(s["workers"]), 1.0),
    ("lookup p99 (ms)", lambda s: figure(s, "lookup_p99_seconds"), 1000.0),
    ("RSS per worker (MiB)", lambda s: figure(s, "worker_rss_mib_mean"), 1.0),
    ("container per worker (MiB)", lambda s: figure(s, "worker_container_mib_mean"), 1.0),
    ("CPU per worker (%)", lambda s: figure(s, "worker_cpu_percent_mean"), 1.0),
    ("CPU per worker (s)", lambda s: figure(s, "worker_cpu_seconds_mean"), 1.0),
    ("session p99 (s)", lambda s: figure(s, "session_p99_seconds"), 1.0),
    ("key rate (kbit/s)", lambda s: figure(s, "confirmed_key_bits_per_second"), 1e-3),
)


def key_table(steps: list[dict[str, Any]]) -> str:
    rows = ["| " + " | ".join(h for h, _, _ in KEY_COLUMNS) + " |",
            "|" + "---:|" * len(KEY_COLUMNS)]
    for step in steps:
        rows.append("| " + " | ".join(fmt(get(step), scale) for _, get, scale in KEY_COLUMNS)
                    + " |")
    return "\n".join(rows)


def full_table(steps: list[dict[str, Any]]) -> str:
    """Every figure of every step, as recorded (6 significant digits)."""
    names = list(dict.fromkeys(n for s in steps for n in s.get("figures", {})))
    rows = ["| figure | " + " | ".join(f"{s['workers']} workers" for s in steps) + " |",
            "|---|" + "---:|" * len(steps)]
    for name in names:
        rows.append(f"| {name} | " + " | ".join(fmt(figure(s, name), digits=6) for s in steps)
                    + " |")
    return "\n".join(rows)


def draw(plot: Plot, steps: list[dict[str, Any]], study: str, path: Path
         ) -> dict[str, Any] | None:
    """Save `plot` as `path`; returns its series as read back from the figure, or None (and
    no file) when no step has any of its figures."""
    ordered = sorted(steps, key=lambda s: s["workers"])
    fig, axis = plt.subplots(figsize=(6.4, 4.0))
    for name, label in plot.series:
        points = [(s["workers"], v * plot.scale) for s in ordered
                  if (v := figure(s, name)) is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            axis.plot(xs, ys, marker="o", label=label, gid=name)
    if not axis.get_lines():
        plt.close(fig)
        return None
    workers = [s["workers"] for s in ordered]
    if isinstance(plot.seed, dict):
        marks = sorted((w, v) for w, v in plot.seed.items() if min(workers) <= w <= max(workers))
        if marks:
            xs, ys = zip(*marks, strict=True)
            axis.plot(xs, ys, "k*", markersize=11, linestyle="none", label="seed's promise",
                      gid="seed")
    elif plot.seed is not None:
        axis.axhline(plot.seed, color="k", linestyle="--", label="seed's promise", gid="seed")
    if max(workers) >= 10 * min(workers):
        axis.set_xscale("log")
        axis.minorticks_off()
    axis.set_xticks(workers, [str(w) for w in workers])
    plotted = {x for line in axis.get_lines() if line.get_gid() != "seed"
               for x in np.asarray(line.get_xdata(), dtype=float).tolist()}
    unmeasured = [str(w) for w in workers if w not in plotted]
    if unmeasured:  # say so on the plot: a missing point is not a zero
        fig.text(0.01, 0.01, f"no figure at {', '.join(unmeasured)} workers (see the notes)",
                 fontsize=8, color="dimgray")
    if plot.log_y:
        axis.set_yscale("log")
    axis.set_xlabel("workers")
    axis.set_ylabel(plot.unit)
    axis.set_title(f"{plot.title} ({study})")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8)
    fig.tight_layout()
    # Read back what the figure holds, so plots.json is the plot's data, not a second copy.
    series = [{"figure": line.get_gid(), "label": line.get_label(),
               "x": np.asarray(line.get_xdata(), dtype=float).tolist(),
               "y": np.asarray(line.get_ydata(), dtype=float).tolist()}
              for line in axis.get_lines()]
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return {"title": plot.title, "unit": plot.unit, "scale": plot.scale, "series": series}


def write_report(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write report.md, one PNG per plot that has data, and plots.json into `out_dir`;
    returns their paths. `results` is a study in the shape of this module's docstring."""
    out_dir.mkdir(parents=True, exist_ok=True)
    steps = results["steps"]
    study = results["study"]
    plotted: dict[str, Any] = {}
    for plot in PLOTS:
        drawn = draw(plot, steps, study, out_dir / plot.file)
        if drawn is not None:
            plotted[plot.file] = drawn
    (out_dir / "plots.json").write_text(json.dumps(plotted, indent=1) + "\n")
    host = results.get("host", {})
    versions = ", ".join(f"{k} {v}" for k, v in results.get("versions", {}).items() if v)
    notes = [f"- {s['workers']} workers: {note}" for s in steps for note in s.get("notes", [])]
    lines = [
        f"# Scaling study: {study}",
        "",
        f"Run {results.get('started')} to {results.get('finished')} with "
        f"`{results.get('command')}`.",
        f"Host: {host.get('os')}, kernel {host.get('kernel')}, {host.get('cpus')} CPUs, "
        f"{fmt(host.get('memory_bytes'), 2**-30)} GiB. Versions: {versions}.",
        "",
        "## Key metrics",
        "",
        "Seed columns: the seed guide's promised figures (its success figures are lower "
        f"bounds); its memory promise is {SEED_WORKER_MIB:g} MB per worker. {DASH}: not "
        "measured by this study. Convergence: Alice's own time from the last worker's start "
        "to seeing every worker (containers), or until every node knows min(k, N-1) live "
        "peers (in-process).",
        "",
        key_table(steps),
        "",
        "## Notes",
        "",
        *(notes or ["- none"]),
        "",
        "## Plots",
        "",
        *(f"![{p['title']}]({name})" for name, p in plotted.items()),
        "",
        "## Every figure",
        "",
        full_table(steps),
        "",
    ]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines))
    return [report, out_dir / "plots.json", *(out_dir / name for name in plotted)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a study's results.json")
    parser.add_argument("--out", type=Path, help="directory (default: beside results.json)")
    args = parser.parse_args()
    results = json.loads(args.results.read_text())
    for path in write_report(results, args.out or args.results.parent):
        print(path)


if __name__ == "__main__":
    main()
