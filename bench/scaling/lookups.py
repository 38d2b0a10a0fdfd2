"""DHT lookups from inside a deployed network: the scaling study's query load.

Runs in a short-lived container of the node image on the host network (`python3 -c`, with
the image's `cqkd` package), like tests/multihost/probe.py. DHT nodes of their own (one per
port of PORTS) join the deployment's bootstrap nodes; then, PAIRS times (AT_ONCE at a
time), a random probe stores a value under a fresh key and another random probe looks it
up over the network (a spider crawl, never its own storage). Prints one JSON object:
{"lookups": int, "succeeded": int, "seconds": [float, ...]} (each lookup's duration).
Values are counters, nothing secret.

Usage: python3 -c "$(cat lookups.py)" PORT[,PORT...] PAIRS WORKER_COUNT BOOTSTRAP[,...]
"""

import asyncio
import json
import random
import sys
import time

from cqkd.dht.config import DhtConfig
from cqkd.dht.node import DhtNode
from cqkd.settings import load_settings

AT_ONCE = 10  # pairs in flight together: a bounded load that ends in about a minute


async def main(ports: list[int], pairs: int, workers: int, bootstrap: str) -> None:
    settings = [load_settings(dht_port=port, bootstrap_nodes=bootstrap, worker_count=workers)
                for port in ports]
    nodes = [DhtNode(DhtConfig(**s.dht_options()), role="probe") for s in settings]
    for node in nodes:
        await node.start()
    await asyncio.gather(*(node.join(s.bootstrap_nodes) for node, s in zip(nodes, settings,
                                                                            strict=True)))
    rng = random.Random(1)
    chosen = [rng.sample(nodes, 2) for _ in range(pairs)]

    async def pair(number: int) -> tuple[bool, float]:
        writer, reader = chosen[number]
        key = f"cqkd-scaling/{ports[0]}/{number}/{time.time_ns()}"
        await writer.set(key, number)
        began = time.monotonic()
        found = await reader.lookup(key)
        return found == number, round(time.monotonic() - began, 6)

    results: list[tuple[bool, float]] = []
    for first in range(0, pairs, AT_ONCE):
        batch = range(first, min(pairs, first + AT_ONCE))
        results += await asyncio.gather(*(pair(n) for n in batch))
    print(json.dumps({"lookups": pairs, "succeeded": sum(ok for ok, _ in results),
                      "seconds": [s for _, s in results]}), flush=True)


if __name__ == "__main__":
    ports, pairs, workers, bootstrap = sys.argv[1:5]
    asyncio.run(main([int(p) for p in ports.split(",")], int(pairs), int(workers), bootstrap))
