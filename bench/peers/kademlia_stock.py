"""The network of `cqkd local`, built with stock `kademlia` 2.2.3 classes: the peer of
bench/dht.py --peer stock. Runs in its own virtualenv (kademlia and the standard library
only, no cqkd), so it repeats the harness definitions of cqkd.sim.network:

- bootstraps start first, the others join the first; then the workers start and join the
  bootstraps, one after another (JOIN_CONCURRENCY);
- discovery runs from the last worker's start until every node knows min(k, N-1) live
  peers (laggards refresh their table), start-up from the first node's start;
- optionally a fraction of the workers stops without notice;
- then `lookups` store/get pairs between random running nodes, one at a time: set and get
  latencies, query success, process CPU per pair, peak RSS.

Prints one JSON object with the keys of `cqkd local --json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import statistics
import time
from pathlib import Path

from kademlia.network import Server

LOOPBACK = "127.0.0.1"
JOIN_CONCURRENCY = 1  # as cqkd.sim.network's
CONVERGENCE_POLL_SECONDS = 0.05


def percentile(values: list[float], fraction: float) -> float:
    # cqkd.sim.stats.percentile's definition (this peer imports no cqkd), 0 for no values
    # as in `cqkd local --json`.
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[round(fraction * 1000) - 1]


def address(server: Server) -> tuple[str, int]:
    return server.transport.get_extra_info("sockname")[:2]  # type: ignore[no-any-return]


def peak_rss_bytes() -> int:
    """VmHWM, as cqkd.sim.report reads it (this venv has no cqkd): ru_maxrss would keep the
    benchmark's own peak across exec."""
    status = Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) * 1024 for line in status.splitlines()
                if line.startswith("VmHWM:"))


async def run(args: argparse.Namespace) -> dict[str, object]:
    rng = random.Random(args.seed)
    began = time.monotonic()

    def make() -> Server:
        return Server(ksize=args.k, alpha=args.alpha)

    bootstraps = [make() for _ in range(args.bootstrap_nodes)]
    for node in bootstraps:
        await node.listen(0, LOOPBACK)
    boot_addresses = [address(n) for n in bootstraps]
    for node in bootstraps[1:]:
        await node.bootstrap(boot_addresses[:1])
    workers = [make() for _ in range(args.workers)]
    gate = asyncio.Semaphore(JOIN_CONCURRENCY)
    last_start = time.monotonic()

    async def start_worker(node: Server) -> None:
        nonlocal last_start
        async with gate:
            await node.listen(0, LOOPBACK)
            last_start = time.monotonic()
            await node.bootstrap(boot_addresses)

    await asyncio.gather(*(start_worker(n) for n in workers))
    running = bootstraps + workers
    live = {address(n) for n in running}

    def converged(node: Server) -> bool:
        known = sum(1 for bucket in node.protocol.router.buckets
                    for c in bucket.nodes.values() if (c.ip, c.port) in live)
        return known >= min(args.k, len(running) - 1)

    deadline = time.monotonic() + args.discovery_timeout
    while True:
        lagging = [n for n in running if not converged(n)]
        if not lagging:
            break
        if time.monotonic() > deadline:
            return {"error": f"{len(lagging)} of {len(running)} nodes did not converge"}

        async def refresh(node: Server) -> None:
            async with gate:
                await node._refresh_table()  # the stock refresh

        await asyncio.gather(*(refresh(n) for n in lagging))
        await asyncio.sleep(CONVERGENCE_POLL_SECONDS)
    discovery = time.monotonic() - last_start
    startup = time.monotonic() - began

    victims = rng.sample(workers, round(args.kill_fraction * len(workers)))
    for node in victims:
        node.stop()
    alive = [n for n in running if n not in victims]

    gets: list[float] = []
    sets: list[float] = []
    found = 0
    cpu = time.process_time()
    for index in range(args.lookups):
        writer, reader = rng.choice(alive), rng.choice(alive)
        key, value = f"cqkd-local-{index}-{os.urandom(4).hex()}", os.urandom(16).hex()
        t0 = time.monotonic()
        await writer.set(key, value)
        sets.append(time.monotonic() - t0)
        t0 = time.monotonic()
        got = await reader.get(key)
        gets.append(time.monotonic() - t0)
        found += got == value
    cpu = time.process_time() - cpu
    report: dict[str, object] = {
        "peer": "kademlia 2.2.3",
        "nodes": len(running),
        "workers": args.workers,
        "bootstrap_nodes": args.bootstrap_nodes,
        "k": args.k,
        "alpha": args.alpha,
        "discovery_seconds": round(discovery, 3),
        "startup_seconds": round(startup, 3),
        "killed_workers": len(victims),
        "lookups": args.lookups,
        "lookup_p50_seconds": round(percentile(gets, 0.50), 6),
        "lookup_p99_seconds": round(percentile(gets, 0.99), 6),
        "set_p50_seconds": round(percentile(sets, 0.50), 6),
        "set_p99_seconds": round(percentile(sets, 0.99), 6),
        "cpu_per_pair_seconds": round(cpu / args.lookups, 6) if args.lookups else None,
        "query_success_rate": round(found / args.lookups, 6) if args.lookups else None,
        "peak_rss_bytes": peak_rss_bytes(),
    }
    for node in alive:
        node.stop()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--bootstrap-nodes", type=int, required=True)
    parser.add_argument("--k", type=int, required=True)
    parser.add_argument("--alpha", type=int, required=True)
    parser.add_argument("--lookups", type=int, default=300)
    parser.add_argument("--kill-fraction", type=float, default=0.0)
    parser.add_argument("--discovery-timeout", type=float, default=180.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # kademlia logs every RPC at DEBUG and timeouts at WARNING
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
