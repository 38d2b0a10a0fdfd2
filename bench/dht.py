"""Benchmark of the DHT layer: `cqkd local` at several sizes, with and without killed workers,
plus the RSS of one real `cqkd worker` process. Prints a Markdown table; never asserts.

    .venv/bin/python bench/dht.py                        # N = 15 ... 1000, F = 0 and 0.1
    .venv/bin/python bench/dht.py --sizes 15 100 --lookups 200

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
# The seed guide's figures by scale: discovery time (s) and query success rate.
SEED = {15: ("60", "> 95 %"), 50: ("90", "> 90 %"), 100: ("120", "> 85 %")}


def rcvbuf_errors() -> int:
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()]
    udp = [line for line in lines if line[0] == "Udp:"]
    return int(dict(zip(udp[0][1:], udp[1][1:], strict=True))["RcvbufErrors"])


def run_local(workers: int, lookups: int, kill: float, seed: int) -> dict[str, object]:
    command = [
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
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
