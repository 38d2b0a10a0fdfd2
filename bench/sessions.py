"""Key session time and confirmed final-key throughput on in-process networks.

    .venv/bin/python bench/sessions.py [--quick] [--profile FILE]

Real UDP on loopback, real workers, Alice and Bob (cqkd.sim.sessions). For each case:
session time p50/p99 (one session at a time) and confirmed final-key bits per second
(sessions run `concurrency` at a time; keys compared in both stores, never printed).
Prints one JSON object per case, with its figures beside issue 15's goal and peer (the
figures it was filed with) as ratios. Nothing here is asserted.
"""

import argparse
import asyncio
import cProfile
import json
import time

from cqkd.settings import load_settings
from cqkd.sim.network import LocalNetwork
from cqkd.sim.sessions import attach, run_sessions

# (workers, key bits, sessions, concurrency)
CASES = [
    (15, 256, 50, 1),
    (15, 4096, 10, 1),
    (100, 256, 50, 1),
    (100, 4096, 10, 1),
    (15, 256, 100, 10),
    (15, 4096, 20, 10),
    (100, 256, 100, 10),
    (100, 4096, 20, 10),
]
QUICK = [(15, 256, 20, 1), (15, 4096, 4, 1), (15, 256, 40, 10)]
# Issue 15 goal 3 (15 workers, 10 sessions at once), kbit/s of confirmed key by key length,
# and its peer: the figures issue 15 was filed with (upper ends of its ranges), with about 36
# sealed messages per session whatever its length.
GOAL_KBIT_PER_SECOND = {256: 20.0, 4096: 100.0}
PEER = "issue 15 as filed"
PEER_KBIT_PER_SECOND = {256: 3.9, 4096: 28.0}
PEER_MESSAGES_PER_SESSION = 36.0


def beside_peer(report: dict) -> dict:
    """The case's throughput and messages per session beside the goal and the peer, as
    ratios (throughput only for the goal's cases: 15 workers, 10 sessions at once)."""
    added: dict = {"peer": PEER, "peer_messages_per_session": PEER_MESSAGES_PER_SESSION}
    if report.get("messages_per_session") is not None:
        added["messages_per_session_to_peer"] = round(
            report["messages_per_session"] / PEER_MESSAGES_PER_SESSION, 3)
    bits, kbit = report["key_bits"], report["final_key_bits_per_second"] / 1000
    if report["workers"] == 15 and report["concurrency"] == 10 and bits in GOAL_KBIT_PER_SECOND:
        added |= {"goal_kbit_per_second": GOAL_KBIT_PER_SECOND[bits],
                  "kbit_per_second_to_goal": round(kbit / GOAL_KBIT_PER_SECOND[bits], 2),
                  "peer_kbit_per_second": PEER_KBIT_PER_SECOND[bits],
                  "kbit_per_second_to_peer": round(kbit / PEER_KBIT_PER_SECOND[bits], 2)}
    return added


async def run_case(workers: int, key_bits: int, sessions: int, concurrency: int) -> dict:
    settings = load_settings()
    async with LocalNetwork(settings, workers) as net:
        protocol = await attach(net, settings)
        try:
            await run_sessions(net, protocol, key_bits, 2, 1)  # warm the worker cache
            began = time.monotonic()
            report = await run_sessions(net, protocol, key_bits, sessions, concurrency)
            report["wall_seconds"] = round(time.monotonic() - began, 3)
        finally:
            await protocol.stop()
    report["workers"] = workers
    return report | beside_peer(report)


async def main(cases: list[tuple[int, int, int, int]]) -> None:
    for case in cases:
        print(json.dumps(await run_case(*case)), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three small cases")
    parser.add_argument("--profile", default=None, help="write a cProfile of the run here")
    args = parser.parse_args()
    chosen = QUICK if args.quick else CASES
    if args.profile:
        cProfile.run("asyncio.run(main(chosen))", args.profile)
    else:
        asyncio.run(main(chosen))
