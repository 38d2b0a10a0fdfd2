"""Issue 15 goal 2: 10,000 nodes in one process (and 5,000), each figure beside its goal.

    PYTHONPATH=. .venv/bin/python bench/large.py          # 10,000 and 5,000, 1,000 lookups
    PYTHONPATH=. .venv/bin/python bench/large.py --sizes 2000 --lookups 200

Each size is one bounded `cqkd local --json` run in its own process (bench/scaling's
run_step: /proc samples, exact child CPU, UDP drops), one after the other. Memory per node
is the run's peak RSS over its nodes, gross and above the RSS of an interpreter that only
imported what `cqkd local` imports. Prints a Markdown table (goal, figure, ratio) and the
runs as JSON; never asserts. Takes about 5 minutes alone on 2 cores; figures taken beside
other jobs are bounds (the load average is printed).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

from bench.scaling.in_process import run_step, step_entry

KIB = 1024
# Issue 15 goal 2: (figure, key of the step's figures, goal, unit).
GOALS = {
    10000: (("start-up", "startup_seconds", 120.0, "s"),
            ("discovery", "discovery_seconds", 10.0, "s"),
            ("query success", "query_success_ratio", 0.999, ""),
            ("memory per node, gross", "kib_per_node", 40.0, "KiB")),
    5000: (("query success", "query_success_ratio", 0.999, ""),),
}
INTERPRETER = "import cqkd.cli, cqkd.sim.network, cqkd.sim.report as r; print(r.peak_rss_bytes())"


def interpreter_kib() -> int:
    """Peak RSS (KiB) of a process that imported `cqkd local`'s modules and nothing more."""
    out = subprocess.run([sys.executable, "-c", INTERPRETER], capture_output=True, text=True,
                         check=True)
    return int(out.stdout) // KIB


def figures(run: dict[str, Any], base_kib: int) -> dict[str, Any]:
    step = step_entry(run)
    found = dict(step["figures"])
    if step["nodes"]:
        peak_kib = run["report"]["peak_rss_bytes"] / KIB
        found["kib_per_node"] = round(peak_kib / step["nodes"], 1)
        found["kib_per_node_above_interpreter"] = round((peak_kib - base_kib) / step["nodes"], 1)
    return {"workers": run["workers"], "nodes": step["nodes"], "notes": step["notes"],
            "figures": found}


def table(results: list[dict[str, Any]]) -> str:
    rows = ["| workers | figure | this run | goal | ratio to goal |",
            "|---:|---|---:|---:|---:|"]
    for result in results:
        for name, key, goal, unit in GOALS.get(result["workers"], ()):
            value = result["figures"].get(key)
            shown = "did not finish" if value is None else f"{value:g} {unit}".strip()
            ratio = "" if value is None else f"{value / goal:.2f}"
            rows.append(f"| {result['workers']:,} | {name} | {shown} | {goal:g} {unit} | {ratio} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 5000])
    parser.add_argument("--lookups", type=int, default=1000, help="store/get pairs per size")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--step-timeout", type=float, default=840.0, help="seconds per size")
    args = parser.parse_args()
    base_kib = interpreter_kib()
    results = [figures(run_step(n, args.lookups, args.seed, args.step_timeout, 10.0), base_kib)
               for n in args.sizes]
    print(table(results))
    print(json.dumps({"interpreter_rss_kib": base_kib, "sizes": results}))


if __name__ == "__main__":
    main()
