"""BB84 with finite-size statistics: final key fraction and Cascade's efficiency against
the QBER, and the largest QBER that still yields a key of a given length.

    .venv/bin/python bench/finite_key.py [--sessions N] [--key-bits B]

Sessions run on an in-process network (15 workers, real UDP on loopback) with the channel
error rate set at the QBER. For each QBER: confirmed sessions, mean raw positions and
sifted bits per key, the final key fraction (key bits / sifted bits), Cascade's efficiency
f = parities / (n h2(e)) (e: the error rate Cascade corrected), beside the asymptotic
fraction 1 - 2 h2(Q) (Shor-Preskill, f = 1). Then, from the finite-size bound
(cqkd.qkd.lengths, TLGR 2012) with the measured f and the default budget of raw
positions, the largest QBER at which a key of 256, 4096 and 65,536 bits is possible.
Prints a Markdown table and one JSON line; nothing here is asserted.
"""

import argparse
import asyncio
import json
import statistics

from cqkd.qkd.lengths import Security, h2, largest_qber, plan
from cqkd.qkd.planner import SIFTED_PER_POSITION
from cqkd.settings import load_settings
from cqkd.sim.network import LocalNetwork
from cqkd.sim.sessions import attach

QBERS = [i / 100 for i in range(12)]


async def measure(key_bits: int, qber: float, sessions: int) -> dict:
    settings = load_settings(channel_error=qber, rpc_timeout=3.0, session_timeout=600.0,
                             max_key_bits=1 << 17)
    async with LocalNetwork(settings, 15) as net:
        protocol = await attach(net, settings)
        try:
            views = [await protocol.alice.run_session(key_bits) for _ in range(sessions)]
        finally:
            await protocol.stop()
    confirmed = [v for v in views if v.outcome == "confirmed" and protocol.keys_equal(v)]
    f = [v.reconciliation_efficiency for v in confirmed if v.reconciliation_efficiency]
    return {
        "qber": qber,
        "confirmed": len(confirmed),
        "sessions": sessions,
        "outcomes": sorted({str(v.outcome) for v in views}),
        "qber_measured": round(statistics.fmean(v.qber or 0.0 for v in views), 4),
        "raw_mean": round(statistics.fmean(v.raw_bits for v in confirmed)) if confirmed else None,
        "sifted_mean": (round(statistics.fmean(v.sifted_bits or 0 for v in confirmed))
                        if confirmed else None),
        "key_fraction": (round(key_bits / statistics.fmean(v.sifted_bits or 1 for v in confirmed),
                               4) if confirmed else None),
        "f_mean": round(statistics.fmean(f), 3) if f else None,
        "f_max": round(max(f), 3) if f else None,
        "seconds_mean": round(statistics.fmean(v.duration_seconds or 0.0 for v in views), 2),
    }


def largest_key_qber(key_bits: int, efficiency: float, max_sifted: int) -> float:
    """The largest QBER (to 0.001) with a plan for `key_bits` within `max_sifted`."""
    security = Security()
    q = 0.0
    while plan(key_bits, q + 0.001, efficiency, security, max_sifted) is not None:
        q += 0.001
    return round(q, 3)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--key-bits", type=int, default=4096)
    args = parser.parse_args()
    rows = [await measure(args.key_bits, q, args.sessions) for q in QBERS]
    print("| QBER | confirmed | raw positions | sifted bits | final key / sifted | "
          "1 - 2 h2(Q) | f mean | f max |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        q = row["qber"]
        print(f"| {q:.2f} | {row['confirmed']}/{row['sessions']} | {row['raw_mean']} | "
              f"{row['sifted_mean']} | {row['key_fraction']} | {max(0.0, 1 - 2 * h2(q)):.3f} | "
              f"{row['f_mean']} | {row['f_max']} |")
    measured = [r["f_mean"] for r in rows if r["f_mean"]]
    f = round(statistics.fmean(measured), 3) if measured else 1.2
    max_sifted = int(load_settings().max_raw_positions * SIFTED_PER_POSITION)
    limits = {bits: largest_key_qber(bits, f, max_sifted) for bits in (256, 4096, 65536)}
    print(f"\nlargest QBER with a key (f = {f}, {max_sifted} sifted bits at most): {limits}; "
          f"asymptotic, f = 1: {largest_qber(1.0):.3f}, f = {f}: {largest_qber(f):.3f}")
    print(json.dumps({"rows": rows, "largest_qber": limits, "f": f}))


if __name__ == "__main__":
    asyncio.run(main())
