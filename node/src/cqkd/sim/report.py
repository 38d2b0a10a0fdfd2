"""The report of `cqkd local`: a network, its start-up and discovery times, lookups,
optionally key sessions and killed workers, and the process's peak memory.

`run_local()` returns the JSON-able report that the CLI prints (and that other parts
extend with their own keys); `run_lookups()` is its lookup part, for tests and benchmarks.
"""

from __future__ import annotations

import os
import random
import resource
import time
from typing import Any

from cqkd.settings import Settings
from cqkd.sim.network import LocalNetwork
from cqkd.sim.stats import percentile


async def run_lookups(net: LocalNetwork, lookups: int) -> dict[str, Any]:
    """`lookups` store/get pairs between random running nodes, one at a time."""
    durations: list[float] = []
    set_durations: list[float] = []
    found = 0
    cpu = time.process_time()
    nodes = net.nodes  # once: a list of every running node (10,000 of them at most)
    for index in range(lookups):
        writer, reader = net.rng.choice(nodes), net.rng.choice(nodes)
        key, value = f"cqkd-local-{index}-{os.urandom(4).hex()}", os.urandom(16).hex()
        began = time.monotonic()
        await writer.set(key, value)
        set_durations.append(time.monotonic() - began)
        began = time.monotonic()
        got = await reader.get(key)
        durations.append(time.monotonic() - began)
        found += got == value
    cpu = time.process_time() - cpu
    return {
        "lookups": lookups,
        "lookup_p50_seconds": round(percentile(durations, 0.50), 6) if durations else 0.0,
        "lookup_p99_seconds": round(percentile(durations, 0.99), 6) if durations else 0.0,
        "set_p50_seconds": round(percentile(set_durations, 0.50), 6) if set_durations else 0.0,
        "set_p99_seconds": round(percentile(set_durations, 0.99), 6) if set_durations else 0.0,
        # CPU of the whole process (every node) per store/get pair.
        "cpu_per_pair_seconds": round(cpu / lookups, 6) if lookups else None,
        "query_success_rate": round(found / lookups, 6) if lookups else None,
    }


def peak_rss_bytes() -> int:
    """This process's peak RSS (bytes): VmHWM, which starts afresh at exec. ru_maxrss keeps
    the parent's peak across exec, so a small run started by a benchmark that had imported
    matplotlib reported the benchmark's 66 MiB (Linux getrusage(2))."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


async def run_local(
    settings: Settings,
    workers: int,
    lookups: int,
    kill_fraction: float,
    seed: int | None,
    key_bits: int | None = None,
    sessions: int = 1,
    concurrency: int = 1,
    rogue: str | None = None,
) -> dict[str, Any]:
    """Start a network, wait for convergence, optionally kill workers, run lookups.

    With `key_bits`, Alice and Bob join and run `sessions` key sessions first, and the
    workers are killed while those run (see cqkd.sim.sessions); with `rogue`, one worker
    misbehaves so (cqkd.sim.rogue) and the report says in how many sessions it had a role.
    """
    async with LocalNetwork(settings, workers, rng=random.Random(seed)) as net:
        report: dict[str, Any] = {
            "nodes": len(net.nodes),
            "workers": workers,
            "bootstrap_nodes": net.bootstrap_count,
            "discovery_seconds": round(net.discovery_seconds, 3),
            "startup_seconds": round(net.startup_seconds, 3),
            "k": net.workers[0].params.k if net.workers else None,
            "alpha": net.workers[0].params.alpha if net.workers else None,
        }
        if key_bits:
            # Only here: a DHT-only run (bench/dht.py measures its memory) loads no protocol.
            from cqkd.sim.sessions import attach, run_sessions

            protocol = await attach(net, settings, rogue=rogue)
            try:
                outcome = await run_sessions(
                    net, protocol, key_bits, sessions, concurrency, kill_fraction
                )
                report.update(outcome)
            finally:
                await protocol.stop()
            killed = net.killed
        else:
            killed = await net.kill_workers(kill_fraction) if kill_fraction else []
        report["killed_workers"] = len(killed)
        report.update(await run_lookups(net, lookups))
        report["peak_rss_bytes"] = peak_rss_bytes()
        return report
