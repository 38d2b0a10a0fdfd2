"""Benchmark of the DHT layer: `cqkd local` at several sizes, with and without killed workers,
plus the RSS of one real `cqkd worker` process. Prints a Markdown table; never asserts.

    .venv/bin/python bench/dht.py                        # N = 15 ... 1000, F = 0 and 0.1
    .venv/bin/python bench/dht.py --sizes 15 100 --lookups 200

    .venv/bin/python bench/dht.py --peer stock --sizes 500 --repeat 3   # against kademlia 2.2.3

With `--peer stock`, each size is built alternately by `cqkd local` and by stock `kademlia`
2.2.3 classes (bench/peers/kademlia_stock.py, same harness definitions, same k, alpha and
bootstrap count) in a virtualenv of its own, made under STOCK_VENV when missing; it prints
both, the medians of the interleaved runs and their ratios, and writes a plot.

Each run is a separate process (so peak RSS is per run). UDP receive-buffer drops are read
from /proc/net/snmp (Udp: RcvbufErrors, host-wide) before and after each run.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cqkd-bench"
STOCK_VENV = CACHE / "kademlia-2.2.3-venv"
STOCK_SCRIPT = Path(__file__).parent / "peers" / "kademlia_stock.py"
# figure, report key, scale, unit; lower is better for each.
COMPARED = (
    ("start-up", "startup_seconds", 1, "s"),
    ("discovery", "discovery_seconds", 1, "s"),
    ("get p50", "lookup_p50_seconds", 1000, "ms"),
    ("get p99", "lookup_p99_seconds", 1000, "ms"),
    ("set p50", "set_p50_seconds", 1000, "ms"),
    ("set p99", "set_p99_seconds", 1000, "ms"),
    ("CPU per store/get pair", "cpu_per_pair_seconds", 1000, "ms"),
    ("peak RSS", "peak_rss_bytes", 2**-20, "MiB"),
)
# The seed guide's figures by scale: discovery time (s) and query success rate.
SEED = {15: ("60", "> 95 %"), 50: ("90", "> 90 %"), 100: ("120", "> 85 %")}


def rcvbuf_errors() -> int:
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()]
    udp = [line for line in lines if line[0] == "Udp:"]
    return int(dict(zip(udp[0][1:], udp[1][1:], strict=True))["RcvbufErrors"])


def local_command(workers: int, lookups: int, kill: float, seed: int) -> list[str]:
    """The `cqkd local --json` command line of one run (also bench/scaling/in_process.py's)."""
    return [
        sys.executable,
        "-m",
        "cqkd",
        "local",
        "--workers",
        str(workers),
        "--lookups",
        str(lookups),
        "--kill-fraction",
        str(kill),
        "--seed",
        str(seed),
        "--json",
    ]


def run_local(workers: int, lookups: int, kill: float, seed: int) -> dict[str, object]:
    command = local_command(workers, lookups, kill, seed)
    drops = rcvbuf_errors()
    began = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.monotonic() - began
    if done.returncode != 0:
        return {"workers": workers, "kill_fraction": kill, "error": done.stderr.strip()[-300:]}
    report: dict[str, object] = json.loads(done.stdout)
    report.update(
        kill_fraction=kill, wall_seconds=round(wall, 2), udp_rcvbuf_errors=rcvbuf_errors() - drops
    )
    return report


def stock_python() -> Path:
    """The stock virtualenv's interpreter, made (python3 -m venv, pip install) if missing."""
    python = STOCK_VENV / "bin" / "python"
    if not python.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(STOCK_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "kademlia==2.2.3"],
                       check=True)
    return python


def run_stock(project: dict[str, object], lookups: int, kill: float, seed: int
              ) -> dict[str, object]:
    """The same network with stock classes: k, alpha and bootstraps as `project` used."""
    command = [
        str(stock_python()), str(STOCK_SCRIPT),
        "--workers", str(project["workers"]),
        "--bootstrap-nodes", str(project["bootstrap_nodes"]),
        "--k", str(project["k"]), "--alpha", str(project["alpha"]),
        "--lookups", str(lookups), "--kill-fraction", str(kill), "--seed", str(seed),
    ]
    began = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"workers": project["workers"], "kill_fraction": kill,
                "error": done.stderr.strip()[-300:]}
    report: dict[str, object] = json.loads(done.stdout)
    report.update(kill_fraction=kill, wall_seconds=round(time.monotonic() - began, 2))
    return report


def median(reports: list[dict[str, object]], key: str) -> float:
    values = sorted(float(r[key]) for r in reports if key in r)  # type: ignore[arg-type]
    if not values:
        return float("nan")
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def compare(pairs: dict[tuple[int, float], tuple[list[dict[str, object]], list[dict[str, object]]]]
            ) -> str:
    rows = ["| nodes, killed | figure | this project | stock kademlia 2.2.3 | ratio |",
            "|---|---|---:|---:|---:|"]
    for (workers, kill), (ours, stock) in pairs.items():
        label = f"{workers}, {kill * 100:.0f} %"
        for name, key, scale, unit in (*COMPARED, ("success", "query_success_rate", 100, "%")):
            a, b = median(ours, key) * scale, median(stock, key) * scale
            ratio = f"{a / b:.2f}" if b else "-"
            rows.append(f"| {label} | {name} | {a:.1f} {unit} | {b:.1f} {unit} | {ratio} |")
    return "\n".join(rows)


def plot(pairs: dict[tuple[int, float], tuple[list[dict[str, object]], list[dict[str, object]]]],
         out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(pairs)
    fig, axes = plt.subplots(1, len(COMPARED), figsize=(3 * len(COMPARED), 3.4))
    for axis, (name, key, scale, unit) in zip(axes, COMPARED, strict=True):
        labels = [f"{w}/{k * 100:.0f}%" for w, k in cases]
        xs = range(len(cases))
        ours = [median(pairs[c][0], key) * scale for c in cases]
        stock = [median(pairs[c][1], key) * scale for c in cases]
        axis.bar([x - 0.2 for x in xs], ours, 0.4, label="cqkd")
        axis.bar([x + 0.2 for x in xs], stock, 0.4, label="stock kademlia")
        axis.set_xticks(list(xs), labels)
        axis.set_title(name, fontsize=9)
        axis.set_ylabel(unit)
    axes[0].legend(fontsize=8)
    fig.suptitle("DHT: cqkd against stock kademlia 2.2.3 (nodes/killed; lower is better)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main_stock(args: argparse.Namespace) -> None:
    pairs: dict[tuple[int, float], tuple[list[dict[str, object]], list[dict[str, object]]]] = {}
    for workers in args.sizes:
        for kill in args.kill_fractions:
            ours: list[dict[str, object]] = []
            stock: list[dict[str, object]] = []
            for attempt in range(args.repeat):  # interleaved: both see the same load
                seed = args.seed + attempt
                mine = run_local(workers, args.lookups, kill, seed)
                print(json.dumps(mine), file=sys.stderr, flush=True)
                if "error" in mine:
                    break
                ours.append(mine)
                theirs = run_stock(mine, args.lookups, kill, seed)
                print(json.dumps(theirs), file=sys.stderr, flush=True)
                if "error" not in theirs:
                    stock.append(theirs)
            pairs[(workers, kill)] = (ours, stock)
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = RESULTS / f"dht-stock-{stamp}.json"
    out.write_text(json.dumps([{"workers": w, "kill_fraction": k, "cqkd": a, "stock": b}
                               for (w, k), (a, b) in pairs.items()], indent=1))
    figure = RESULTS / f"dht-stock-{stamp}.png"
    plot(pairs, figure)
    print(compare(pairs))
    print()
    print(f"Medians of {args.repeat} interleaved runs each; load average at the end "
          f"{os.getloadavg()[0]:.1f}. Raw results: {out}; plot: {figure}")


# Issue 15 goal 6: `cqkd worker` at most 30 MiB RSS; 40.4 MiB when it was filed.
GOAL_WORKER_MIB, PEER_WORKER_MIB = 30, 40.4


def worker_rss() -> dict[str, int]:
    """VmRSS and VmHWM (kB) of a real bootstrap and worker after the worker joined."""
    env = {**os.environ, "DHT_PORT": "0", "LOG_LEVEL": "INFO"}

    def start(role: str, extra: dict[str, str]) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cqkd", role],
            env={**env, **extra},
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        assert proc.stderr is not None
        threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr], daemon=True).start()
        return proc, lines

    def wait(lines: queue.Queue[str], event: str) -> dict[str, object]:
        while True:
            entry = json.loads(lines.get(timeout=30))
            if entry["event"] == event:
                return entry  # type: ignore[no-any-return]

    boot, boot_lines = start("bootstrap", {})
    port = wait(boot_lines, "http_listening")["port"]
    worker, worker_lines = start("worker", {"BOOTSTRAP_NODES": f"127.0.0.1:{port}"})
    try:
        wait(worker_lines, "joined")
        time.sleep(2)
        figures = {}
        for role, proc in (("bootstrap", boot), ("worker", worker)):
            status = Path(f"/proc/{proc.pid}/status").read_text()
            for field in ("VmRSS", "VmHWM"):
                figures[f"{role}_{field}_kB"] = int(re.search(rf"{field}:\s+(\d+)", status)[1])  # type: ignore[index]
        return figures
    finally:
        for proc in (worker, boot):
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)


def table(reports: list[dict[str, object]]) -> str:
    rows = [
        "| workers | killed | nodes | discovery (s) | start-up (s) | lookup p50 (ms) "
        "| lookup p99 (ms) | query success | peak RSS (MiB) | UDP drops | seed: discovery (s) "
        "| seed: success |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in reports:
        seed_discovery, seed_success = SEED.get(int(r["workers"]), ("-", "-"))  # type: ignore[call-overload]
        if "error" in r:
            rows.append(f"| {r['workers']} | {r['kill_fraction']} | failed: {r['error']} |")
            continue
        rows.append(
            f"| {r['workers']} | {r['killed_workers']} | {r['nodes']} "
            f"| {r['discovery_seconds']:.2f} | {r['startup_seconds']:.2f} "
            f"| {float(r['lookup_p50_seconds']) * 1000:.1f} "  # type: ignore[arg-type]
            f"| {float(r['lookup_p99_seconds']) * 1000:.1f} "  # type: ignore[arg-type]
            f"| {float(r['query_success_rate']) * 100:.2f} % "  # type: ignore[arg-type]
            f"| {int(r['peak_rss_bytes']) / 2**20:.0f} | {r['udp_rcvbuf_errors']} "  # type: ignore[call-overload]
            f"| {seed_discovery} | {seed_success} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[15, 50, 100, 200, 500, 1000])
    parser.add_argument("--kill-fractions", type=float, nargs="+", default=[0.0, 0.1])
    parser.add_argument("--lookups", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--peer", choices=["stock"], help="compare with stock kademlia 2.2.3")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs (--peer)")
    args = parser.parse_args()
    if args.peer == "stock":
        main_stock(args)
        return
    reports = []
    for workers in args.sizes:
        for kill in args.kill_fractions:
            report = run_local(workers, args.lookups, kill, args.seed)
            print(json.dumps(report), file=sys.stderr, flush=True)
            reports.append(report)
    rss = worker_rss()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"dht-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps({"runs": reports, "processes": rss}, indent=1))
    load = os.getloadavg()
    print(table(reports))
    print()
    print(
        f"`cqkd worker` RSS {rss['worker_VmRSS_kB'] / 1024:.1f} MiB (peak "
        f"{rss['worker_VmHWM_kB'] / 1024:.1f} MiB); `cqkd bootstrap` "
        f"{rss['bootstrap_VmRSS_kB'] / 1024:.1f} MiB. Load average at the end: "
        f"{load[0]:.1f}. Raw results: {out}"
    )
    worker = rss["worker_VmRSS_kB"] / 1024
    print(f"`cqkd worker` RSS: {worker / GOAL_WORKER_MIB:.2f} of issue 15's goal "
          f"({GOAL_WORKER_MIB} MiB), {worker / PEER_WORKER_MIB:.2f} of the {PEER_WORKER_MIB} "
          "MiB before it")


if __name__ == "__main__":
    main()
