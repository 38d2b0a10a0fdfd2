"""How long Alice and Bob take to see every worker that joins after them (issue 14's goal:
at most 2 s after the last worker is up), in one process on loopback.

    .venv/bin/python bench/discovery.py [--sizes 100 200 500] [--join-seconds 10] [--runs 1]

Each run is its own process (`--one N`) running cqkd.sim.late_join: bootstrap nodes, Bob
and Alice start first, then N admitted workers join at an even pace over `--join-seconds`
(at most 8 at a time). A worker is up when its join returns. Prints one JSON object per run
(seconds from the last worker up until Alice, and Bob, saw every worker, null if not within
`--wait` seconds; how many each saw; the 1-minute load average before and after; wall
seconds), then a markdown table. The code measured is whichever `cqkd` PYTHONPATH finds, so
an older checkout's node/src (with sim/late_join.py copied in) gives the "before" figures.
Nothing here is asserted.
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any


async def one(workers: int, join_seconds: float, wait: float) -> dict[str, Any]:
    from cqkd.settings import load_settings
    from cqkd.sim.late_join import late_join

    load_before, began = os.getloadavg()[0], time.monotonic()
    result = await late_join(load_settings(), workers, join_seconds, wait_seconds=wait)

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    return {
        "workers": workers,
        "join_seconds": join_seconds,
        "alice_delay_seconds": rounded(result.alice_delay_seconds),
        "bob_delay_seconds": rounded(result.bob_delay_seconds),
        "alice_seen": result.alice_seen,
        "bob_seen": result.bob_seen,
        "load_before": round(load_before, 1),
        "load_after": round(os.getloadavg()[0], 1),
        "wall_seconds": round(time.monotonic() - began, 1),
    }


def run(workers: int, join_seconds: float, wait: float) -> dict[str, Any]:
    command = [sys.executable, __file__, "--one", str(workers),
               "--join-seconds", str(join_seconds), "--wait", str(wait)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.splitlines()[-1]))


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| workers | load (1 min) | Alice sees every worker after the last is up (s) "
             "| Bob (s) | seen by Alice / Bob |", "|---:|---:|---:|---:|---:|"]
    def shown(value: float | None) -> str:
        return "not within --wait" if value is None else f"{value:.2f}"

    for r in rows:
        lines.append(
            f"| {r['workers']} | {r['load_before']:.0f}-{r['load_after']:.0f} "
            f"| {shown(r['alice_delay_seconds'])} | {shown(r['bob_delay_seconds'])} "
            f"| {r['alice_seen']} / {r['bob_seen']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 200, 500])
    parser.add_argument("--join-seconds", type=float, default=10.0)
    parser.add_argument("--wait", type=float, default=120.0,
                        help="seconds after the last worker is up before giving up")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(asyncio.run(one(args.one, args.join_seconds, args.wait))))
        return
    rows = []
    for workers in args.sizes:
        for _ in range(args.runs):
            rows.append(run(workers, args.join_seconds, args.wait))
            print(json.dumps(rows[-1]), flush=True)
    print(table(rows))


if __name__ == "__main__":
    main()
