"""The container scaling study's measurements; ansible/scaling.yml deploys and calls this.

    python -m bench.scaling.containers step --workers N --fresh S --rerun S --out DIR
    python -m bench.scaling.containers rerun --workers N --rerun S --changed C --rc RC --out DIR
    python -m bench.scaling.containers failed --workers N --fresh S --reason TEXT --out DIR
    python -m bench.scaling.containers finish --out DIR --started ISO --command CMD

`step` measures the deployment that runs now (deployed by deploy.yml at N workers): it
waits until Prometheus has scraped every node, runs a bounded load (DHT lookups from a
short-lived container of the node image on the host network, bench/scaling/lookups.py, and
key sessions through Alice's control API), then reads the figures from Prometheus's HTTP
API (the nodes' own metrics, QUERIES below), from `docker stats` and from /proc/net/snmp,
and writes DIR/step-N.json. `rerun` adds to it the time of a rerun with nothing to change
made after the load, on a deployment that has settled (the first rerun follows the fresh
deploy at once, while hundreds of nodes still run their first upkeep rounds). `finish`
gathers the steps into DIR/results.json (the shared schema of bench/scaling/report.py) and
writes the report beside it.

Extra figures (beside the shared schema's): bootstrap_nodes, load_average_1m (the host's
load when the figures were read: timings on a shared 2-core machine depend on it),
deploy_rerun_changed (tasks a rerun with nothing to change reported changed),
deploy_rerun_settled_seconds and deploy_rerun_settled_changed (the same, for the rerun
after the load).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib.metadata
import json
import math
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cqkd.sim import stats

REPO = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024

# Each figure read from Prometheus, from the nodes' own metrics (jobs name the roles).
QUERIES = {
    "discovery_worker_p50_seconds": 'quantile(0.5, cqkd_dht_join_duration_seconds{job="worker"})',
    "discovery_worker_p99_seconds": 'quantile(0.99, cqkd_dht_join_duration_seconds{job="worker"})',
    "discovery_bootstrap_p50_seconds":
        'quantile(0.5, cqkd_dht_join_duration_seconds{job="bootstrap"})',
    "discovery_bootstrap_p99_seconds":
        'quantile(0.99, cqkd_dht_join_duration_seconds{job="bootstrap"})',
    # Alice's own time of seeing every worker, after the last worker's own time of being up.
    # (0 until Alice has seen every worker: no sample then.)
    "alice_convergence_seconds": 'max(cqkd_network_converged_timestamp_seconds{job="alice"} > 0)'
        ' - max(cqkd_dht_joined_timestamp_seconds{job="worker"})',
    # From the first node process's start to Alice seeing every worker.
    "startup_seconds": 'max(cqkd_network_converged_timestamp_seconds{job="alice"} > 0)'
        ' - min(process_start_time_seconds{job=~"bootstrap|worker"})',
    "worker_rss_mib_mean": 'avg(process_resident_memory_bytes{job="worker"}) / 1048576',
    "worker_rss_mib_max": 'max(process_resident_memory_bytes{job="worker"}) / 1048576',
    "worker_cpu_seconds_mean": 'avg(process_cpu_seconds_total{job="worker"})',
    "routing_table_size_min": 'min(cqkd_routing_table_peers{job="worker"})',
    "routing_table_size_p50": 'quantile(0.5, cqkd_routing_table_peers{job="worker"})',
    "bootstrap_nodes": 'count(up{job="bootstrap"} == 1)',
}
# CPU over the load: a rate needs a window; the step passes its load's length.
CPU_PERCENT_QUERY = '100 * avg(rate(process_cpu_seconds_total{{job="worker"}}[{window}s]))'

SESSIONS = 10
SESSION_BITS = 256
SESSIONS_AT_ONCE = 2
PROBES = 4


def seconds(duration: str) -> float:
    """Seconds from a number or Ansible's command `delta` (H:MM:SS.ffffff)."""
    total = 0.0
    for part in duration.split(":"):
        total = total * 60 + float(part)
    return round(total, 2)


def lookups_for(workers: int) -> int:
    """The step's store/get pairs: one per worker, between 100 and 200 (a bounded load)."""
    return min(200, max(100, workers))


def percentile(values: list[float], fraction: float) -> float | None:
    """cqkd.sim.stats.percentile of `values`; None for no values."""
    return stats.percentile(values, fraction) if values else None


def prometheus(url: str, query: str) -> float | None:
    """One instant query's single value; None when it has no sample."""
    address = f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(address, timeout=30) as response:
        answer = json.load(response)
    result = answer["data"]["result"]
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if math.isnan(value) else value


def docker(*args: str) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"docker {args[0]} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


def free_udp_ports(count: int) -> list[str]:
    """Ports free on the host now, for the probes (they share the host's network)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [str(sock.getsockname()[1]) for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def containers(role: str) -> list[dict[str, Any]]:
    names = docker("ps", "-q", "--filter", "label=io.cqkd.project=cqkd",
                   "--filter", f"label=io.cqkd.role={role}").split()
    return json.loads(docker("inspect", *names)) if names else []


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in container["Config"]["Env"])


def wait_for_scrapes(url: str, workers: int, bootstraps: int, timeout: float = 300) -> None:
    """Until Prometheus holds every node's join time and Alice's convergence time."""
    deadline = time.monotonic() + timeout
    while True:
        seen = (
            prometheus(url, 'count(cqkd_dht_join_duration_seconds{job="worker"})') or 0,
            prometheus(url, 'count(cqkd_dht_join_duration_seconds{job="bootstrap"})') or 0,
            prometheus(url, 'max(cqkd_network_converged_timestamp_seconds{job="alice"})') or 0,
        )
        if seen[0] >= workers and seen[1] >= bootstraps and seen[2] > 0:
            return
        if time.monotonic() > deadline:
            sys.exit(f"Prometheus did not see every node within {timeout:.0f} s: "
                     f"{seen[0]:.0f}/{workers} workers, {seen[1]:.0f}/{bootstraps} bootstrap "
                     f"nodes, Alice converged at {seen[2]}")
        time.sleep(2)


def udp_receive_errors() -> int:
    """The host's Udp RcvbufErrors (host-networked containers share the host's counters)."""
    rows = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()
            if line.startswith("Udp:")]
    return int(rows[1][rows[0].index("RcvbufErrors")])


def run_lookups(workers: int, bootstraps: list[str], image: str) -> dict[str, Any]:
    code = (Path(__file__).with_name("lookups.py")).read_text()
    output = docker(
        "run", "--rm", "--network", "host", "--label", "io.cqkd.project=cqkd",
        "--label", "io.cqkd.role=scaling-probe", "--read-only", "--cap-drop", "ALL",
        "--entrypoint", "python3", image, "-c", code, ",".join(free_udp_ports(PROBES)),
        str(lookups_for(workers)), str(workers), ",".join(bootstraps),
    )
    return json.loads(output.strip().splitlines()[-1])


def run_sessions(alice_url: str, token: str) -> dict[str, Any]:
    """SESSIONS key sessions of SESSION_BITS bits, SESSIONS_AT_ONCE at a time."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def one(_: int) -> dict[str, Any]:
        body = json.dumps({"desired_key_length": SESSION_BITS}).encode()
        request = urllib.request.Request(f"{alice_url}/generate-key", body, headers)
        with urllib.request.urlopen(request, timeout=30) as response:
            process = json.load(response)["process_id"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = urllib.request.Request(f"{alice_url}/sessions/{process}", headers=headers)
            with urllib.request.urlopen(status, timeout=30) as response:
                session = json.load(response)
            if session.get("status") != "running":
                return session
            time.sleep(0.2)
        return {"status": "timeout"}

    began = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(SESSIONS_AT_ONCE) as pool:
        sessions = list(pool.map(one, range(SESSIONS)))
    wall = time.monotonic() - began
    confirmed = [s for s in sessions if s.get("status") == "confirmed"]
    durations = [float(s["duration_seconds"]) for s in confirmed if "duration_seconds" in s]
    return {
        "sessions": len(sessions),
        "sessions_confirmed": len(confirmed),
        "session_p50_seconds": percentile(durations, 0.5),
        "session_p99_seconds": percentile(durations, 0.99),
        "confirmed_key_bits_per_second":
            sum(int(s.get("key_bits", 0)) for s in confirmed) / wall if wall else None,
    }


def container_stats(names: list[str]) -> tuple[float | None, float | None]:
    """Mean memory (MiB) and CPU (%) of the named containers, one `docker stats` snapshot."""
    if not names:
        return None, None
    rows = docker("stats", "--no-stream", "--format", "{{json .}}", *names).splitlines()
    memory, cpu = [], []
    units = {"B": 1, "KiB": 1024, "MiB": MIB, "GiB": 1024 * MIB}
    for row in map(json.loads, rows):
        used = row["MemUsage"].split("/")[0].strip()
        unit = next(u for u in ("GiB", "MiB", "KiB", "B") if used.endswith(u))
        memory.append(float(used[: -len(unit)]) * units[unit] / MIB)
        cpu.append(float(row["CPUPerc"].rstrip("%")))
    return sum(memory) / len(memory), sum(cpu) / len(cpu)


def step(args: argparse.Namespace) -> None:
    workers = containers("worker")
    bootstraps = containers("bootstrap")
    alice = containers("alice")
    if len(workers) != args.workers or not alice:
        sys.exit(f"expected {args.workers} workers and Alice, found {len(workers)} workers "
                 f"and {len(alice)} Alice")
    wait_for_scrapes(args.prometheus, len(workers), len(bootstraps))
    drops_before = udp_receive_errors()
    load_began = time.monotonic()
    addresses = [f"127.0.0.1:{env_of(c)['DHT_PORT']}" for c in bootstraps]
    probe = run_lookups(args.workers, addresses, workers[0]["Config"]["Image"])
    alice_env = env_of(alice[0])
    alice_url = f"http://127.0.0.1:{alice_env.get('HTTP_PORT', '8001')}"
    token = Path(args.token_file).expanduser().read_text().strip()
    sessions = run_sessions(alice_url, token)
    window = max(30, math.ceil(time.monotonic() - load_began))
    time.sleep(args.scrape_wait)  # one more scrape, so the load is in Prometheus
    figures: dict[str, Any] = {name: prometheus(args.prometheus, q) for name, q in QUERIES.items()}
    figures["worker_cpu_percent_mean"] = prometheus(
        args.prometheus, CPU_PERCENT_QUERY.format(window=window))
    mib, _ = container_stats([c["Name"].lstrip("/") for c in workers])
    succeeded = probe["succeeded"]
    figures.update({
        "deploy_fresh_seconds": args.fresh,
        "deploy_rerun_seconds": args.rerun,
        "deploy_rerun_changed": args.rerun_changed,
        "lookups": probe["lookups"],
        "query_success_ratio": succeeded / probe["lookups"] if probe["lookups"] else None,
        "store_get_success_ratio": (probe["store_gets_succeeded"] / probe["store_gets"]
                                    if probe["store_gets"] else None),
        "lookup_p50_seconds": percentile(probe["seconds"], 0.5),
        "lookup_p99_seconds": percentile(probe["seconds"], 0.99),
        "worker_container_mib_mean": mib,
        "udp_drops": udp_receive_errors() - drops_before,
        "load_average_1m": os.getloadavg()[0],
        **sessions,
    })
    notes = [
        "load average 1/5/15 min when read: " + " ".join(f"{x:.1f}" for x in os.getloadavg()),
        f"load: {probe['lookups']} node lookups (query success, lookup latency) and as many "
        f"store/get pairs between {PROBES} probe nodes (workers decline STORE: values rest "
        "only on the other nodes), "
        f"{SESSIONS} sessions of {SESSION_BITS} bits, {SESSIONS_AT_ONCE} at a time",
        "udp_drops: the host's Udp RcvbufErrors during the load (host-wide: other processes"
        " of the machine count too)",
    ]
    result = {"workers": args.workers, "nodes": len(workers) + len(bootstraps) + 2,
              "figures": figures, "notes": notes}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"step-{args.workers}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


def rerun(args: argparse.Namespace) -> None:
    """The rerun after the load: its time (None if it failed, with the reason as a note)
    and the tasks it reported changed, added to DIR/step-N.json."""
    path = args.out / f"step-{args.workers}.json"
    result = json.loads(path.read_text())
    ok = args.rc == 0
    result["figures"].update({
        "deploy_rerun_settled_seconds": args.rerun if ok else None,
        "deploy_rerun_settled_changed": args.changed if ok else None,
    })
    result["notes"].append(
        "deploy_rerun_settled: a rerun with nothing to change after the load, load average "
        f"{os.getloadavg()[0]:.1f} when it ended" if ok
        else f"the rerun after the load failed (exit {args.rc}) after {args.rerun:.1f} s")
    path.write_text(json.dumps(result, indent=1) + "\n")


def failed(args: argparse.Namespace) -> None:
    """A step whose deploy failed: its figures are null but the time it took, the reason
    is its note; the study goes on."""
    notes = [
        args.reason,
        "load average 1/5/15 min when it failed: "
        + " ".join(f"{x:.1f}" for x in os.getloadavg()),
    ]
    # What Prometheus already holds when the deploy failed late (in its verification).
    figures: dict[str, Any] = {}
    for name, query in QUERIES.items():
        try:
            figures[name] = prometheus(args.prometheus, query)
        except OSError:
            figures[name] = None
    workers = containers("worker")
    figures["worker_container_mib_mean"] = container_stats(
        [c["Name"].lstrip("/") for c in workers])[0]
    figures["deploy_fresh_seconds"] = None if "fresh deploy" in args.reason else args.fresh
    figures["load_average_1m"] = os.getloadavg()[0]
    notes.append(f"{len(workers)} worker containers ran; no load was run")
    nodes = len(workers) + len(containers("bootstrap")) + len(containers("alice")) + len(
        containers("bob"))
    result = {"workers": args.workers, "nodes": nodes or None, "figures": figures, "notes": notes}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"step-{args.workers}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


def versions() -> dict[str, str]:
    def package(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    cqkd = (REPO / "node" / "src" / "cqkd" / "__init__.py").read_text()
    return {
        "cqkd": cqkd.split('__version__ = "', 1)[1].split('"', 1)[0],
        "python": platform.python_version(),
        "docker": docker("version", "--format", "{{.Server.Version}}").strip(),
        "ansible-core": package("ansible-core"),
        "kademlia": package("kademlia"),
    }


def host() -> dict[str, Any]:
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    release = dict(
        line.split("=", 1)
        for line in Path("/etc/os-release").read_text().splitlines()
        if "=" in line
    )
    return {
        "cpus": os.cpu_count(),
        "memory_bytes": int(meminfo["MemTotal"].split()[0]) * 1024,
        "kernel": platform.release(),
        "os": release.get("PRETTY_NAME", "?").strip('"'),
    }


def finish(args: argparse.Namespace) -> None:
    from bench.scaling.report import write_report

    steps = sorted(
        (json.loads(p.read_text()) for p in args.out.glob("step-*.json")),
        key=lambda s: s["workers"],
    )
    results = {
        "study": "containers",
        "started": args.started,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": args.command,
        "versions": versions(),
        "host": host(),
        "steps": steps,
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    for path in write_report(results, args.out):
        print(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command_name", required=True)
    measure = commands.add_parser("step", help="measure the running deployment")
    measure.add_argument("--workers", type=int, required=True)
    measure.add_argument("--fresh", type=seconds, required=True, help="fresh deploy, H:MM:SS.f")
    measure.add_argument("--rerun", type=seconds, required=True, help="rerun, H:MM:SS.f")
    measure.add_argument("--rerun-changed", type=int, default=0)
    measure.add_argument("--prometheus", default="http://127.0.0.1:9090")
    measure.add_argument("--token-file", default="~/.cqkd/secrets/api-token")
    measure.add_argument("--scrape-wait", type=float, default=12.0)
    measure.add_argument("--out", type=Path, required=True)
    settled = commands.add_parser("rerun", help="add the rerun after the load to a step")
    settled.add_argument("--workers", type=int, required=True)
    settled.add_argument("--rerun", type=seconds, required=True, help="rerun, H:MM:SS.f")
    settled.add_argument("--changed", type=int, default=0)
    settled.add_argument("--rc", type=int, required=True, help="the rerun's exit status")
    settled.add_argument("--out", type=Path, required=True)
    broken = commands.add_parser("failed", help="record a step whose deploy failed")
    broken.add_argument("--workers", type=int, required=True)
    broken.add_argument("--fresh", type=seconds, required=True, help="fresh deploy, H:MM:SS.f")
    broken.add_argument("--reason", required=True)
    broken.add_argument("--prometheus", default="http://127.0.0.1:9090")
    broken.add_argument("--out", type=Path, required=True)
    done = commands.add_parser("finish", help="write results.json and the report")
    done.add_argument("--out", type=Path, required=True)
    done.add_argument("--started", required=True)
    done.add_argument("--command", required=True)
    args = parser.parse_args()
    {"step": step, "rerun": rerun, "failed": failed, "finish": finish}[args.command_name](args)


if __name__ == "__main__":
    main()
