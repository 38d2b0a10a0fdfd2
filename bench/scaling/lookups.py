"""DHT lookups from inside a deployed network: the scaling study's query load.

Runs in a short-lived container of the node image on the host network (`python3 -c`, with
the image's `cqkd` package), like tests/multihost/probe.py. DHT nodes of their own (one per
port of PORTS) join the deployment's bootstrap nodes, and the first crawls the id space
for every node (cqkd.qkd.crawl, as Alice does). Then, PAIRS times (AT_ONCE at a time):

- a node lookup (iterative FIND_NODE, `DhtNode.find_node`): a random probe looks up a
  random node of the network (the id next to its own, `adjacent_id`); it succeeds when
  that node comes back first.
  This is the query CQKD's network serves (joins, Alice's and Bob's discovery);
- a store/get: a random probe stores a value under a fresh key and another random probe
  looks it up over the network (a spider crawl, never its own storage). Workers decline
  STORE (issue 11), so values rest only on the few other nodes (bootstraps, Alice, Bob,
  probes) and a get finds them only when one of those is near the key: this success
  falls as workers outnumber them.

Prints one JSON object: {"lookups": int, "succeeded": int, "seconds": [float, ...],
"store_gets": int, "store_gets_succeeded": int} (node lookups' durations). Values are
counters, nothing secret.

Usage: python3 -c "$(cat lookups.py)" PORT[,PORT...] PAIRS WORKER_COUNT BOOTSTRAP[,...]
"""

import asyncio
import json
import random
import sys
import time

from cqkd.dht.config import DhtConfig
from cqkd.dht.node import DhtNode, adjacent_id
from cqkd.qkd.crawl import Crawl
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
    ours = {node.node_id for node in nodes}
    found = await Crawl(nodes[0], workers, lambda _: None).run(nodes[0].live_peers())
    targets = sorted(set(found) - ours)
    rng = random.Random(1)
    chosen = [(rng.sample(nodes, 2), rng.choice(targets)) for _ in range(pairs)]

    async def pair(number: int) -> tuple[bool, float, bool]:
        (writer, reader), target = chosen[number]
        began = time.monotonic()
        found = await reader.find_node(adjacent_id(target))
        located = bool(found) and found[0].node_id == target
        seconds = round(time.monotonic() - began, 6)
        key = f"cqkd-scaling/{ports[0]}/{number}/{time.time_ns()}"
        await writer.set(key, number)
        return located, seconds, await reader.lookup(key) == number

    results: list[tuple[bool, float, bool]] = []
    for first in range(0, pairs, AT_ONCE):
        batch = range(first, min(pairs, first + AT_ONCE))
        results += await asyncio.gather(*(pair(n) for n in batch))
    print(json.dumps({"lookups": pairs, "succeeded": sum(r[0] for r in results),
                      "seconds": [r[1] for r in results], "store_gets": pairs,
                      "store_gets_succeeded": sum(r[2] for r in results)}), flush=True)


if __name__ == "__main__":
    ports, pairs, workers, bootstrap = sys.argv[1:5]
    asyncio.run(main([int(p) for p in ports.split(",")], int(pairs), int(workers), bootstrap))
