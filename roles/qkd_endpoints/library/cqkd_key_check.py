#!/usr/bin/python
"""Ansible module: the deployment's end-to-end check through Alice's control API, in one call.

Waits until Alice sees the network converged, asks her for one key, waits until its session
ends, checks that it was confirmed at the asked length, and collects the key from Alice and
Bob (so that neither store keeps a key nobody will come for), checking that both handed out
the same key. One call instead of a task per step: each task costs time on a rerun, and the
waits poll every POLL_SECONDS instead of once a second. The keys are never returned.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: cqkd_key_check
short_description: Check Alice's view of the network and one key exchange with Bob
options:
  alice_url:
    description: Base URL of Alice's control API (http://host:port).
    type: str
    required: true
  bob_url:
    description: Base URL of Bob's control API.
    type: str
    required: true
  token:
    description: The control APIs' bearer token (never logged).
    type: str
    required: true
  key_bits:
    description: Length of the key to ask for.
    type: int
    default: 256
  converge_timeout:
    description: Seconds to wait until Alice sees the network converged.
    type: float
    default: 120
  session_timeout:
    description: Seconds the key session may take.
    type: float
    default: 120
"""

RETURN = r"""
network:
  description: >-
    Alice's /network-status when she saw the network converged (converged_at: her time of
    it).
  type: dict
  returned: always
session:
  description: >-
    The key session that proved the deployment (status, key_id, key_bits, qber,
    duration_seconds); no key material.
  type: dict
  returned: success
"""

POLL_SECONDS = 0.2
REQUEST_SECONDS = 10


def call(url: str, token: str = "", body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """(HTTP status, decoded JSON body or the text) of a GET, or a POST of `body` as JSON;
    status 0 with the error's text when the server cannot be reached."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_SECONDS) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (OSError, ValueError) as exc:
        return 0, str(getattr(exc, "reason", exc))
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def poll(url: str, token: str, done: Any, seconds: float) -> tuple[int, Any]:
    """Call GET `url` until `done(status, body)` or `seconds` have passed; the last answer."""
    deadline = time.monotonic() + seconds
    while True:
        status, body = call(url, token)
        if done(status, body) or time.monotonic() >= deadline:
            return status, body
        time.sleep(POLL_SECONDS)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "alice_url": {"type": "str", "required": True},
            "bob_url": {"type": "str", "required": True},
            "token": {"type": "str", "required": True, "no_log": True},
            "key_bits": {"type": "int", "default": 256},
            "converge_timeout": {"type": "float", "default": 120},
            "session_timeout": {"type": "float", "default": 120},
        },
        supports_check_mode=False,
    )
    p = module.params
    alice, token, bits = p["alice_url"].rstrip("/"), p["token"], p["key_bits"]

    def converged(status: int, body: Any) -> bool:
        return status == 200 and isinstance(body, dict) and bool(body.get("converged"))

    status, network = poll(f"{alice}/network-status", "", converged, p["converge_timeout"])
    if not converged(status, network):
        seen = network if isinstance(network, dict) else {}
        module.fail_json(
            msg=f"Alice did not see the network converge within {p['converge_timeout']:g} s: "
            f"{seen.get('live_workers', '?')} live workers of {seen.get('expected_workers', '?')} "
            f"expected, routing table {seen.get('routing_table_peers', '?')} peers, crawled "
            f"but not counted: {seen.get('not_workers', '?')}"
            + ("" if seen else f" ({status}: {network})"),
            network=seen,
        )

    status, request = call(f"{alice}/generate-key", token, {"desired_key_length": bits})
    if status != 202 or not isinstance(request, dict) or "process_id" not in request:
        module.fail_json(msg=f"POST /generate-key answered {status}: {request}", network=network)

    def ended(status: int, body: Any) -> bool:
        return isinstance(body, dict) and body.get("status", "running") != "running"

    status, session = poll(
        f"{alice}/sessions/{request['process_id']}", token, ended, p["session_timeout"]
    )
    if not (
        isinstance(session, dict)
        and session.get("status") == "confirmed"
        and int(session.get("key_bits") or 0) == bits
    ):
        module.fail_json(msg=f"the {bits}-bit key session did not confirm: {session}",
                         network=network)

    # Collected at both ends: the same key, and neither store keeps it.
    answers = [call(f"{url.rstrip('/')}/keys/{session['key_id']}", token)
               for url in (alice, p["bob_url"])]
    codes = [code for code, _ in answers]
    keys = {body.get("key") if isinstance(body, dict) else None for _, body in answers}
    if codes != [200, 200] or len(keys) != 1 or None in keys:
        module.fail_json(
            msg=f"collecting the proof key answered {codes} at Alice and Bob, or their keys differ",
            network=network, session=session,
        )
    module.exit_json(changed=False, network=network, session=session)


if __name__ == "__main__":
    main()
