"""Real `cqkd` processes: Alice's plain-HTTP control API stays on loopback while her ETSI
API and her /health and /metrics (what Prometheus scrapes) serve on DHT_HOST; and
`cqkd local --serve` honours --key-store-max-keys."""

import json
import os
import socket
import subprocess
from pathlib import Path

import httpx
import pytest
from cqkd.qkd.crypto import Identity
from cqkd.sim.pki import create_local_pki
from helpers.ports import free_port
from helpers.processes import CQKD, Processes
from helpers.tls import client_context, sae_context
from helpers.waits import wait_until

pytestmark = pytest.mark.network

TOKEN = "binding-test-token-0123456789"
# Another loopback address, standing for the host's network address: nothing leaves lo.
HOST_ADDRESS = "127.0.0.2"


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def test_control_api_binds_loopback_and_metrics_follow_dht_host(
    processes: Processes, tmp_path: Path
) -> None:
    pki = create_local_pki(
        tmp_path / "pki",
        alice_kme_id="kme-alice",
        bob_kme_id="kme-bob",
        master_sae_id="sae-m",
        slave_sae_id="sae-s",
        hosts=(HOST_ADDRESS,),
    )
    alice = Identity.generate()
    alice.write_key_file(tmp_path / "alice.key")
    (tmp_path / "token").write_text(TOKEN + "\n")
    bootstrap, dht, http, etsi = free_port(), free_port(), free_port(), free_port()
    processes.start(
        "bootstrap", ["bootstrap"], {"DHT_HOST": "127.0.0.1", "DHT_PORT": str(bootstrap)}
    )
    processes.start(
        "alice",
        ["alice"],
        {
            "DHT_HOST": HOST_ADDRESS,
            "DHT_PORT": str(dht),
            "HTTP_PORT": str(http),
            "ETSI_PORT": str(etsi),
            "BOOTSTRAP_NODES": f"127.0.0.1:{bootstrap}",
            "BOB_ADDRESS": "127.0.0.1:9",
            "OWNER_KEY_FILE": str(tmp_path / "alice.key"),
            "TRUSTED_OWNERS": alice.public_key.hex(),
            "ADMISSION_KEYS": Identity.generate().public_key.hex(),
            "API_TOKEN_FILE": str(tmp_path / "token"),
            "TLS_CERT_FILE": str(pki.alice.cert),
            "TLS_KEY_FILE": str(pki.alice.key),
            "TLS_CA_FILE": str(pki.ca),
            "MASTER_SAE_ID": "sae-m",
            "SLAVE_SAE_ID": "sae-s",
        },
    )
    wait_until(
        lambda: answers("127.0.0.1", http) or answers(HOST_ADDRESS, http),
        lambda: f"Alice's control API: {processes.log('alice')[-2000:]}",
    )
    assert answers("127.0.0.1", http)
    assert not answers(HOST_ADDRESS, http), "the control API listens beyond loopback"
    with httpx.Client(timeout=30) as client:
        assert client.get(f"http://127.0.0.1:{http}/health").status_code == 200
        scraped = wait_until(
            lambda: (r := client.get(f"http://{HOST_ADDRESS}:{dht}/metrics")).status_code == 200
            and r,
            "Alice's /metrics on DHT_HOST at the DHT port number",
        )
        assert "cqkd_build_info" in scraped.text
        health = client.get(f"http://{HOST_ADDRESS}:{dht}/health").json()
        assert health["role"] == "alice"
    with httpx.Client(verify=sae_context(pki, "master"), timeout=30) as sae:
        status = sae.get(f"https://{HOST_ADDRESS}:{etsi}/api/v1/keys/sae-s/status")
        assert status.status_code == 200, status.text
    # The container's health check: it asks the control API where it listens.
    probe = subprocess.run(
        [*CQKD, "probe", "--role", "alice"],
        env={**os.environ, "DHT_HOST": HOST_ADDRESS, "HTTP_PORT": str(http)},
        capture_output=True,
        timeout=30,
    )
    assert probe.returncode == 0, probe.stderr
    code, _ = processes.stop("alice")
    assert code == 0, processes.log("alice")


def test_local_serve_honours_key_store_max_keys(processes: Processes) -> None:
    process = processes.start(
        "local",
        ["local", "--serve", "--api-ports", "any", "--workers", "4", "--json",
         "--key-store-max-keys", "20"],
        {},
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    announced = json.loads(process.stdout.readline())
    master = announced["master_sae"]
    context = client_context(announced["ca"], master["cert"], master["key"])
    with httpx.Client(base_url=announced["alice_etsi"], verify=context, timeout=30) as sae:
        status = sae.get(f"/api/v1/keys/{announced['slave_sae']['id']}/status").json()
    assert status["max_key_count"] == 20
    code, _ = processes.stop("local")
    assert code == 0, processes.log("local")
