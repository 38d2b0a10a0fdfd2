"""Latency of Alice's and Bob's HTTP APIs on an in-process network (loopback, real UDP).

    .venv/bin/python bench/api.py [--workers 15] [--requests 50] [--key-bits 256]

Measures, with the key store empty so that every key costs a real session:
  control  POST /generate-key until GET /sessions/{id} says confirmed (polled every 5 ms)
  enc_keys one ETSI 014 enc_keys request at Alice over mutual TLS (a top-up session each)
  dec_keys the matching dec_keys request at Bob
Prints one JSON object with p50/p99 in milliseconds. Nothing here is asserted.
"""

import argparse
import asyncio
import json
import ssl
import tempfile
import time
from pathlib import Path

import httpx
from common.latency import summary_ms
from cqkd.api.server import TlsFiles
from cqkd.endpoint import EndpointApis
from cqkd.settings import load_settings
from cqkd.sim.network import LOOPBACK, LocalNetwork
from cqkd.sim.pki import create_local_pki
from cqkd.sim.sessions import attach

# Issue 15 goal 5: POST /generate-key until confirmed, p50 at most 100 ms on 15 workers. Its
# peer: the issue states no earlier figure for this route; the nearest, one 256-bit key by
# ETSI enc_keys (a session per request) under 20 clients, p50 0.6-0.9 s, is not the same
# load, so none is printed.
GOAL_CONTROL_P50_MS = 100.0


async def bench(workers: int, requests: int, key_bits: int) -> dict[str, object]:
    directory = Path(tempfile.mkdtemp(prefix="cqkd-bench-api-"))
    pki = create_local_pki(
        directory,
        alice_kme_id="kme-a",
        bob_kme_id="kme-b",
        master_sae_id="sae-m",
        slave_sae_id="sae-s",
    )
    settings = load_settings(
        api_token="bench-token-0123456789",
        master_sae_id="sae-m",
        slave_sae_id="sae-s",
        etsi_key_size=key_bits,
        key_pool_low=0,  # no keys ahead of demand: each enc_keys waits for its session
        key_pool_high=0,
    )
    auth = {"Authorization": "Bearer bench-token-0123456789"}
    async with LocalNetwork(settings, workers) as net:
        protocol = await attach(net, settings)
        apis = {}
        for side, party, store, pair in (
            ("alice", protocol.alice, protocol.alice_keys, pki.alice),
            ("bob", protocol.bob, protocol.bob_keys, pki.bob),
        ):
            apis[side] = EndpointApis(
                side,
                party,
                store,
                settings,  # type: ignore[arg-type]
                node_id="bench",
                host=LOOPBACK,
                http_port=0,
                etsi_port=0,
                tls=TlsFiles(pair.cert, pair.key, pki.ca),
            )
            await apis[side].start()

        def tls(pair: object) -> ssl.SSLContext:
            context = ssl.create_default_context(cafile=str(pki.ca))
            context.load_cert_chain(str(pair.cert), str(pair.key))  # type: ignore[attr-defined]
            return context

        control, enc, dec = [], [], []
        async with (
            httpx.AsyncClient(base_url=f"http://{LOOPBACK}:{apis['alice'].control.port}") as a,
            httpx.AsyncClient(
                base_url=f"https://{LOOPBACK}:{apis['alice'].etsi.port}", verify=tls(pki.master_sae)
            ) as master,
            httpx.AsyncClient(
                base_url=f"https://{LOOPBACK}:{apis['bob'].etsi.port}", verify=tls(pki.slave_sae)
            ) as slave,
        ):
            for _ in range(requests):
                began = time.perf_counter()
                url = (
                    await a.post(
                        "/generate-key", json={"desired_key_length": key_bits}, headers=auth
                    )
                ).json()["status_url"]
                # An HTTP client learns the outcome only by asking again.
                while (await a.get(url, headers=auth)).json()["status"] == "running":  # noqa: ASYNC110
                    await asyncio.sleep(0.005)
                control.append(time.perf_counter() - began)
            protocol.alice_keys.take(protocol.alice_keys.count(), key_bits // 8)
            for _ in range(requests):
                began = time.perf_counter()
                keys = (await master.get("/api/v1/keys/sae-s/enc_keys")).json()["keys"]
                enc.append(time.perf_counter() - began)
                began = time.perf_counter()
                response = await slave.get(
                    "/api/v1/keys/sae-m/dec_keys", params={"key_ID": keys[0]["key_ID"]}
                )
                dec.append(time.perf_counter() - began)
                assert response.json()["keys"] == keys
        for server in apis.values():
            await server.stop()
        await protocol.stop()
    return {
        "workers": workers,
        "requests": requests,
        "key_bits": key_bits,
        "control_generate_to_confirmed": summary_ms(control),
        "control_goal_p50_ms": GOAL_CONTROL_P50_MS,
        "control_p50_to_goal": round(summary_ms(control)["p50_ms"] / GOAL_CONTROL_P50_MS, 2),
        "etsi_enc_keys_with_top_up": summary_ms(enc),
        "etsi_dec_keys": summary_ms(dec),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=15)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--key-bits", type=int, default=256)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(bench(args.workers, args.requests, args.key_bits))))


if __name__ == "__main__":
    main()
