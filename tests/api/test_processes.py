"""`cqkd alice`, `cqkd bob` and `cqkd local --serve` as real processes: they serve, exchange
keys through their APIs, keep secrets out of their logs, and stop on SIGTERM."""

import base64
import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest
from cqkd.sim.pki import LocalPki
from helpers.api import make_pki
from helpers.keys import finished_session, start_session
from helpers.ports import free_port
from helpers.processes import CQKD, Processes, keygen
from helpers.tls import client_context, sae_context
from helpers.waits import wait_until

pytestmark = pytest.mark.network

TOKEN = "process-test-token-0123456789"
WORKERS = 6


def sae_client(pki: LocalPki, sae: str, port: int) -> httpx.Client:
    return httpx.Client(
        base_url=f"https://127.0.0.1:{port}", verify=sae_context(pki, sae), timeout=30
    )


def test_alice_and_bob_processes_exchange_keys_and_stop_on_sigterm(
    processes: Processes, tmp_path: Path
) -> None:
    pki = make_pki(tmp_path / "pki")
    (tmp_path / "token").write_text(TOKEN + "\n")
    owners = [keygen(tmp_path / f"{side}.key") for side in ("alice", "bob")]
    admission = keygen(tmp_path / "admission.key")
    bootstrap = free_port()
    ports = {side: (free_port(), free_port(), free_port()) for side in ("alice", "bob")}
    common = {
        "DHT_HOST": "127.0.0.1",
        "BOOTSTRAP_NODES": f"127.0.0.1:{bootstrap}",
        "WORKER_COUNT": str(WORKERS),
        "TRUSTED_OWNERS": ",".join(owners),
        "LOG_LEVEL": "INFO",
        # Nine Python processes start at once on a small machine: allow slow answers.
        "RPC_TIMEOUT": "3",
    }
    processes.start("bootstrap", ["bootstrap"], {**common, "DHT_PORT": str(bootstrap)})
    for side in ("bob", "alice"):
        dht, http, etsi = ports[side]
        pair = pki.alice if side == "alice" else pki.bob
        env = {
            **common,
            "DHT_PORT": str(dht),
            "HTTP_PORT": str(http),
            "ETSI_PORT": str(etsi),
            "OWNER_KEY_FILE": str(tmp_path / f"{side}.key"),
            "API_TOKEN_FILE": str(tmp_path / "token"),
            "TLS_CERT_FILE": str(pair.cert),
            "TLS_KEY_FILE": str(pair.key),
            "TLS_CA_FILE": str(pki.ca),
            "ALICE_KME_ID": "kme-alice",
            "BOB_KME_ID": "kme-bob",
            "MASTER_SAE_ID": "sae-master-1",
            "SLAVE_SAE_ID": "sae-slave-1",
            "BOB_ADDRESS": f"127.0.0.1:{ports['bob'][0]}",
            # Alice derives the admission public key from the key file, Bob is given it.
            **({"ADMISSION_KEY_FILE": str(tmp_path / "admission.key")} if side == "alice"
               else {"ADMISSION_KEYS": admission}),
        }
        processes.start(side, [side], env)
    for j in range(WORKERS):
        processes.start(f"worker-{j}", ["worker"], {
            **common, "DHT_PORT": "0", "ADMISSION_KEY_FILE": str(tmp_path / "admission.key")})
    # A node that joins and offers every role, but was not admitted: never counted, never used.
    processes.start("intruder", ["worker"], {**common, "DHT_PORT": "0"})

    alice = httpx.Client(base_url=f"http://127.0.0.1:{ports['alice'][1]}", timeout=30)
    bob = httpx.Client(base_url=f"http://127.0.0.1:{ports['bob'][1]}", timeout=30)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with alice, bob:
        for client in (alice, bob):
            wait_until(
                lambda c=client: c.get("/ready").status_code == 200,
                lambda c=client: f"ready: {c.get('/network-status').text}",
            )
        probe = subprocess.run(
            [*CQKD, "probe", "--role", "alice"],
            env={**os.environ, "HTTP_PORT": str(ports["alice"][1])},
            capture_output=True,
            timeout=30,
        )
        assert probe.returncode == 0, probe.stderr
        view = finished_session(alice, start_session(alice, 256, auth), auth)
        assert view["outcome"] == "confirmed", (view["error"], view)
        alice_key = alice.get(f"/keys/{view['key_id']}", headers=auth).json()
        bob_key = bob.get(f"/keys/{view['key_id']}", headers=auth).json()
        assert alice_key == bob_key
        # The intruder joined the DHT long ago by now, yet it is not counted as a worker.
        assert alice.get("/network-status").json()["live_workers"] == WORKERS

    with (
        sae_client(pki, "master", ports["alice"][2]) as master,
        sae_client(pki, "slave", ports["bob"][2]) as slave,
    ):
        issued = master.get("/api/v1/keys/sae-slave-1/enc_keys", params={"number": 2})
        assert issued.status_code == 200, issued.text
        keys = issued.json()["keys"]
        delivered = slave.post(
            "/api/v1/keys/sae-master-1/dec_keys",
            json={"key_IDs": [{"key_ID": k["key_ID"]} for k in keys]},
        )
        assert delivered.json()["keys"] == keys

    for side in ("alice", "bob"):
        code, seconds = processes.stop(side)
        assert code == 0, processes.log(side)
        assert seconds < 5.0
        log = processes.log(side)
        assert TOKEN not in log
        for key in [*keys, alice_key]:
            assert key["key"] not in log
            assert base64.b64decode(key["key"]).hex() not in log
        assert '"event": "stopped"' in log


def test_local_serve_exchanges_a_key_and_cleans_up(processes: Processes) -> None:
    process = processes.start(
        "local",
        ["local", "--serve", "--api-ports", "any", "--workers", "8", "--json"],
        {},
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    announced = json.loads(process.stdout.readline())
    directory = Path(announced["ca"]).parent
    assert oct(directory.stat().st_mode & 0o777) == "0o700"
    token = Path(announced["token_file"]).read_text().strip()
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=announced["alice_control"], timeout=30) as alice:
        accepted = alice.post("/generate-key", json={"desired_key_length": 256}, headers=auth)
        assert accepted.status_code == 202
    master, slave = announced["master_sae"], announced["slave_sae"]
    with (
        httpx.Client(
            base_url=announced["alice_etsi"], timeout=30,
            verify=client_context(announced["ca"], master["cert"], master["key"]),
        ) as m,
        httpx.Client(
            base_url=announced["bob_etsi"], timeout=30,
            verify=client_context(announced["ca"], slave["cert"], slave["key"]),
        ) as s,
    ):
        keys = m.get(f"/api/v1/keys/{slave['id']}/enc_keys").json()["keys"]
        got = s.get(
            f"/api/v1/keys/{master['id']}/dec_keys", params={"key_ID": keys[0]["key_ID"]}
        ).json()["keys"]
        assert got == keys
    code, _ = processes.stop("local")
    assert code == 0, processes.log("local")
    assert not directory.exists()
    assert token not in processes.log("local")
