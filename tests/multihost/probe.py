"""DHT query probe of the multi-host fault test; it runs in a node container on each Docker
host (`python3 -c`, with the `cqkd` package of the image).

Every probe is a DHT node of its own. In each round of PERIOD seconds (rounds are aligned on
the clock the hosts share) it stores one value, then looks up the values the other probes
stored one round earlier: store/get pairs between nodes on different hosts. The lookups go
over the network even when a copy sits in the probe's own storage (with k at least the
network size every node holds one), so they measure what the DHT answers. Each lookup prints
one JSON line {"t": unix time, "ok": bool}. Values are round numbers, nothing secret.

Usage: python3 -c "$(cat probe.py)" NAME PORT PERIOD BOOTSTRAP[,BOOTSTRAP...] PEER[,PEER...]
"""

import asyncio
import json
import sys
import time

from cqkd.dht.config import DhtConfig
from cqkd.dht.node import DhtNode
from cqkd.settings import load_settings


def key(name: str, round_number: int) -> str:
    return f"cqkd-probe/{name}/{round_number}"


async def probe(name: str, port: int, period: float, bootstrap: str, peers: list[str]) -> None:
    settings = load_settings(dht_port=port, bootstrap_nodes=bootstrap)
    node = DhtNode(DhtConfig(**settings.dht_options()), role="probe")
    await node.start()
    await node.join(settings.bootstrap_nodes)
    while True:
        round_number = int(time.time() // period)
        began = time.time()
        await node.set(key(name, round_number), round_number)
        found = await asyncio.gather(*(node.lookup(key(p, round_number - 1)) for p in peers))
        for value in found:
            print(json.dumps({"t": round(began, 3), "ok": value == round_number - 1}), flush=True)
        await asyncio.sleep(max(0.0, (round_number + 1) * period - time.time()))


if __name__ == "__main__":
    name, port, period, bootstrap, peers = sys.argv[1:6]
    asyncio.run(probe(name, int(port), float(period), bootstrap, peers.split(",")))
