"""`cqkd local --serve`: an in-process network whose Alice and Bob serve their control and
ETSI 014 APIs on loopback, with a throwaway CA (cqkd.sim.pki), until SIGTERM or SIGINT."""

from __future__ import annotations

import json
import random
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

from cqkd.api.server import TlsFiles
from cqkd.endpoint import EndpointApis
from cqkd.lifecycle import Lifecycle
from cqkd.ports import DEFAULT_PORTS, Role
from cqkd.settings import Settings
from cqkd.sim.network import LOOPBACK, LocalNetwork
from cqkd.sim.pki import LocalPki, create_local_pki
from cqkd.sim.sessions import attach


async def serve_local(
    settings: Settings, workers: int, any_ports: bool, seed: int | None, as_json: bool,
    rogue: str | None = None,
) -> None:
    """`cqkd local --serve`: an in-process network whose Alice and Bob serve their APIs on
    loopback until SIGTERM or SIGINT. Prints the URLs and the files a client needs (a
    throwaway CA and SAE certificates; a generated token unless API_TOKEN(_FILE) is set),
    which live in a private temporary directory removed at exit."""
    directory = Path(tempfile.mkdtemp(prefix="cqkd-local-"))
    try:
        async with Lifecycle("local", workers=workers) as process:
            settings, token_file = _local_token(settings, directory)
            pki = create_local_pki(
                directory,
                alice_kme_id=settings.alice_kme_id,
                bob_kme_id=settings.bob_kme_id,
                master_sae_id=settings.master_sae_id,
                slave_sae_id=settings.slave_sae_id,
            )
            net = await process.start(LocalNetwork(settings, workers, rng=random.Random(seed)))
            protocol = await attach(net, settings, rogue=rogue)
            process.on_stop(protocol.stop)
            sides: tuple[Role, ...] = ("alice", "bob")
            servers = {
                side: await process.start(_local_apis(side, protocol, pki, settings, any_ports))
                for side in sides
            }
            announced = _announcement(servers, settings, pki, token_file, workers)
            announced["rogue_worker"] = rogue
            print(json.dumps(announced) if as_json else _how_to(announced), flush=True)
            await process.stopped()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _local_apis(
    side: Role, protocol: Any, pki: LocalPki, settings: Settings, any_ports: bool
) -> EndpointApis:
    """The APIs of the in-process network's Alice or Bob on loopback, with the throwaway
    PKI's certificates: at the default ports, or at any free ones."""
    party, store, pair = {
        "alice": (protocol.alice, protocol.alice_keys, pki.alice),
        "bob": (protocol.bob, protocol.bob_keys, pki.bob),
    }[side]
    ports = DEFAULT_PORTS[side]
    return EndpointApis(
        side,
        party,
        store,
        settings,
        node_id=party.node.node_id.hex(),
        host=LOOPBACK,
        http_port=0 if any_ports else ports.http,
        etsi_port=0 if any_ports else ports.etsi,
        tls=TlsFiles(cert=pair.cert, key=pair.key, ca=pki.ca),
    )


def _local_token(settings: Settings, directory: Path) -> tuple[Settings, Path | None]:
    """The API token file the user gave, or a new random one in `directory` (mode 0600)
    when API_TOKEN and API_TOKEN_FILE are both unset."""
    token_file = settings.api_token_file
    if token_file is None and settings.api_token is None:
        token_file = directory / "api-token"
        token_file.touch(mode=0o600)
        token_file.write_text(secrets.token_urlsafe(32) + "\n")
        settings = settings.model_copy(update={"api_token_file": token_file})
    return settings, token_file


def _announcement(
    servers: dict[Role, EndpointApis],
    settings: Settings,
    pki: LocalPki,
    token_file: Path | None,
    workers: int,
) -> dict[str, Any]:
    urls: dict[str, str] = {}
    for side, apis in servers.items():
        urls[f"{side}_control"] = f"http://127.0.0.1:{apis.control.port}"
        assert apis.etsi is not None
        urls[f"{side}_etsi"] = f"https://127.0.0.1:{apis.etsi.port}"
    return {
        "workers": workers,
        **urls,
        "token_file": str(token_file) if token_file else None,
        "ca": str(pki.ca),
        "master_sae": {
            "id": settings.master_sae_id,
            "cert": str(pki.master_sae.cert),
            "key": str(pki.master_sae.key),
        },
        "slave_sae": {
            "id": settings.slave_sae_id,
            "cert": str(pki.slave_sae.cert),
            "key": str(pki.slave_sae.key),
        },
    }


def _how_to(a: dict[str, Any]) -> str:
    token = f"$(cat {a['token_file']})" if a["token_file"] else "$API_TOKEN"
    master, slave = a["master_sae"], a["slave_sae"]
    return "\n".join(
        [
            f"Alice  control {a['alice_control']}/docs   ETSI 014 {a['alice_etsi']}",
            f"Bob    control {a['bob_control']}/docs   ETSI 014 {a['bob_etsi']}",
            f"{a['workers']} workers"
            + (f", one of them rogue ({a['rogue_worker']})" if a.get("rogue_worker") else "")
            + "; Ctrl-C stops the network. Try:",
            f"  curl -s -X POST {a['alice_control']}/generate-key "
            f'-H "Authorization: Bearer {token}" -H "Content-Type: application/json" '
            f"-d '{{\"desired_key_length\": 256}}'",
            f"  curl -s --cacert {a['ca']} --cert {master['cert']} --key {master['key']} "
            f"{a['alice_etsi']}/api/v1/keys/{slave['id']}/enc_keys",
            f"  curl -s --cacert {a['ca']} --cert {slave['cert']} --key {slave['key']} "
            f"'{a['bob_etsi']}/api/v1/keys/{master['id']}/dec_keys?key_ID=<key_ID>'",
        ]
    )
