"""The in-process scaling study: `cqkd local --json` at 100 ... 10,000 nodes, one process each.

    .venv/bin/python -m bench.scaling.in_process                 # 100 1000 5000 10000
    .venv/bin/python -m bench.scaling.in_process --sizes 100 1000 --out /tmp/study

Each step runs bench/dht.py's `cqkd local` command (no killed workers) in its own process,
bounded by `--step-timeout` seconds, and samples that process every `--sample-seconds` from
/proc: RSS, CPU seconds and the number of open sockets (every node holds one UDP socket, so
it counts the nodes started). A step that ends in time gives the run's own figures; a step
cut off by the bound gives how far it got (nodes started, join rate, RSS) in its notes and
extra figures. The study is written as results.json in the shared schema
(bench/scaling/report.py) after every step, and the report beside it at the end.
Steps run one after another: never two big networks in memory at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.dht import local_command, rcvbuf_errors
from bench.scaling.report import write_report

REFERENCE = Path(__file__).parent / "in-process"
MIB = 2**20
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def sample(pid: int) -> dict[str, float]:
    """RSS (MiB), CPU seconds and open sockets of a running process, read from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = next(int(line.split()[1]) for line in status.splitlines()
                  if line.startswith("VmRSS:"))
    # Fields 14 and 15 of /proc/PID/stat (utime, stime), counted after the command's ")".
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    sockets = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            sockets += os.readlink(fd).startswith("socket:")
        except OSError:
            continue  # closed while we looked
    return {"rss_mib": rss_kb / 1024, "cpu_seconds": (int(stat[11]) + int(stat[12])) / CLOCK_TICKS,
            "sockets": sockets}


def watch(proc: subprocess.Popen[str], timeout: float, every: float
          ) -> tuple[list[dict[str, float]], bool]:
    """/proc samples of `proc` every `every` seconds until it ends or `timeout` passes (then
    SIGTERM, SIGKILL 30 s later); returns the samples and whether it was stopped."""
    began = time.monotonic()
    samples: list[dict[str, float]] = []
    while proc.poll() is None:
        elapsed = time.monotonic() - began
        if elapsed > timeout:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            return samples, True
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, StopIteration):
            samples.append({"seconds": round(elapsed, 1), **sample(proc.pid)})
        print(f"  {elapsed:5.0f} s {samples[-1] if samples else ''}", file=sys.stderr, flush=True)
        time.sleep(every)
    return samples, False


def run_step(workers: int, lookups: int, seed: int, timeout: float, every: float
             ) -> dict[str, Any]:
    """One bounded `cqkd local` run: its JSON report, or how far it got, plus /proc samples."""
    command = local_command(workers, lookups, 0.0, seed)
    drops = rcvbuf_errors()
    load_before = os.getloadavg()[0]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.monotonic()
    # Files, not pipes: a child that logs more than a pipe holds would stall on a full pipe.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        samples, timed_out = watch(proc, timeout, every)
        proc.wait()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    # Exact CPU of the child (steps run one at a time, so the difference is this child's).
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    return {
        "workers": workers,
        "command": shlex.join(command),
        "step_timeout": timeout,
        "returncode": proc.returncode,
        "timed_out": timed_out,
        "wall_seconds": round(time.monotonic() - began, 1),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
        "udp_drops": rcvbuf_errors() - drops,
        "cpu_seconds": round(cpu, 2),
        "report": json.loads(stdout) if proc.returncode == 0 and stdout.strip() else None,
        "stderr_tail": stderr.strip()[-500:],
        "samples": samples,
    }


def join_rate(samples: list[dict[str, float]]) -> float | None:
    """Nodes started per second over the last half of the samples (the rate near the end)."""
    if len(samples) < 4:
        return None
    first, last = samples[len(samples) // 2], samples[-1]
    return round((last["sockets"] - first["sockets"]) / (last["seconds"] - first["seconds"]), 2)


def step_entry(run: dict[str, Any]) -> dict[str, Any]:
    """The shared schema's step from one run (figures the in-process study cannot measure:
    null)."""
    report = run["report"]
    samples = run["samples"]
    peak_rss = max((s["rss_mib"] for s in samples), default=None)
    load = f"load average {run['load_average_before']:.1f} before, " \
           f"{run['load_average_after']:.1f} after"
    figures: dict[str, float | int | None] = {
        "load_average_before": round(run["load_average_before"], 2),
        "load_average_after": round(run["load_average_after"], 2),
        "wall_seconds": run["wall_seconds"],
        "udp_drops": run["udp_drops"],
        # Below 1 when the process waited for the CPU (other jobs), or for timers.
        "cpu_share_of_one_core": round(run["cpu_seconds"] / run["wall_seconds"], 2),
    }
    if report is None:
        started = samples[-1]["sockets"] if samples else None
        figures.update(
            nodes_started=started, join_rate_nodes_per_second=join_rate(samples),
            process_rss_mib_max=round(peak_rss, 1) if peak_rss else None,
            process_cpu_seconds=run["cpu_seconds"],
            rss_mib_per_started_node=round(peak_rss / started, 4) if peak_rss and started
            else None)
        why = (f"stopped after {run['step_timeout']:.0f} s" if run["timed_out"]
               else f"failed (exit {run['returncode']}): {run['stderr_tail']}")
        return {"workers": run["workers"], "nodes": None, "figures": figures,
                "notes": [f"{why}; {started} nodes had opened their socket; {load}"]}
    nodes = report["nodes"]
    rss_mib = report["peak_rss_bytes"] / MIB
    cpu = run["cpu_seconds"]
    figures.update(
        bootstrap_nodes=report["bootstrap_nodes"],
        startup_seconds=report["startup_seconds"],
        discovery_seconds=report["discovery_seconds"],
        lookups=report["lookups"],
        query_success_ratio=report["query_success_rate"],
        lookup_p50_seconds=report["lookup_p50_seconds"],
        lookup_p99_seconds=report["lookup_p99_seconds"],
        set_p50_seconds=report["set_p50_seconds"],
        set_p99_seconds=report["set_p99_seconds"],
        process_rss_mib_max=round(rss_mib, 1),
        worker_rss_mib_mean=round(rss_mib / nodes, 4),
        process_cpu_seconds=cpu,
        worker_cpu_seconds_mean=round(cpu / nodes, 4),
        k=report["k"],
        alpha=report["alpha"],
    )
    return {"workers": run["workers"], "nodes": nodes, "figures": figures,
            "notes": [load]}


def plot_progress(raw: list[dict[str, Any]], path: Path) -> Path:
    """Nodes started against time, and RSS against nodes started, from each run's /proc
    samples (runs.json): where a size that did not finish stopped, and how memory grew."""
    import matplotlib.pyplot as plt  # bench.scaling.report chose the Agg backend

    fig, (joins, memory) = plt.subplots(1, 2, figsize=(11, 4))
    latest = {run["workers"]: run for run in raw}
    for workers in sorted(latest):
        samples = latest[workers]["samples"]
        if samples:  # up to the most sockets: after that the network is shutting down
            peak = max(range(len(samples)), key=lambda i: samples[i]["sockets"])
            samples = samples[: peak + 1]
        seconds = [s["seconds"] for s in samples]
        sockets = [s["sockets"] for s in samples]
        label = f"{workers} workers" + (" (stopped)" if latest[workers]["timed_out"] else "")
        joins.plot(seconds, sockets, label=label)
        memory.plot(sockets, [s["rss_mib"] for s in samples], label=label)
    joins.set(xlabel="seconds since the process started", ylabel="nodes started (open sockets)",
              title="Join progress")
    memory.set(xlabel="nodes started (open sockets)", ylabel="process RSS (MiB)",
               title="Memory as nodes join")
    for axis in (joins, memory):
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("cqkd", "kademlia"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def host() -> dict[str, Any]:
    os_release = dict(line.split("=", 1) for line in
                      Path("/etc/os-release").read_text().splitlines() if "=" in line)
    return {"cpus": os.cpu_count(),
            "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
            "kernel": platform.release(),
            "os": os_release.get("PRETTY_NAME", "").strip('"')}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 5000, 10000])
    parser.add_argument("--lookups", type=int, default=200, help="store/get pairs per step")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--step-timeout", type=float, default=600.0, help="seconds per step")
    parser.add_argument("--sample-seconds", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=REFERENCE)
    parser.add_argument("--append", action="store_true",
                        help="add these steps to the study in --out (a size run again: the "
                             "new run replaces the step, the old one stays in runs.json)")
    parser.add_argument("--rebuild", action="store_true",
                        help="run nothing: remake results.json's steps and the report from "
                             "--out's runs.json")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    command = shlex.join(["python", "-m", "bench.scaling.in_process", *sys.argv[1:]])
    if args.append or args.rebuild:
        results = json.loads((args.out / "results.json").read_text())
        raw = json.loads((args.out / "runs.json").read_text())
        if args.append:
            results["command"] += f"; then {command}"
    else:
        results = {"study": "in-process", "started": utc_now(), "finished": None,
                   "command": command, "versions": versions(), "host": host(), "steps": []}
        raw = []
    for workers in [] if args.rebuild else args.sizes:
        raw.append(run_step(workers, args.lookups, args.seed, args.step_timeout,
                            args.sample_seconds))
        save(results, raw, args.out)
    save(results, raw, args.out, keep_finished=args.rebuild)
    for path in [*write_report(results, args.out),
                 plot_progress(raw, args.out / "join_progress.png")]:
        print(path)


def save(results: dict[str, Any], raw: list[dict[str, Any]], out: Path,
         keep_finished: bool = False) -> None:
    """results.json from the runs (the last run of each size, by size) and runs.json."""
    latest = {run["workers"]: run for run in raw}
    results["steps"] = [step_entry(latest[w]) for w in sorted(latest)]
    for step in results["steps"]:  # a replaced run is still part of the record
        earlier = [run for run in raw if run["workers"] == step["workers"]][:-1]
        step["notes"] += [f"an earlier run: {step_entry(run)['notes'][0]}" for run in earlier]
    if not keep_finished:
        results["finished"] = utc_now()
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "runs.json").write_text(json.dumps(raw, indent=1) + "\n")


if __name__ == "__main__":
    main()
