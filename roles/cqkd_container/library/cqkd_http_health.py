#!/usr/bin/python
"""Ansible module: wait until GET /health answers 200 on many ports of one host at once,
and read fields of the answers.

One module call covers every node of a host (a loop of `uri` tasks costs a module start per
node), and the probes run concurrently. The nodes' /health gives their join time too, so
the deploy's check reads one small answer per node (reading /metrics as well cost 2 s of a
500-worker rerun).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: cqkd_http_health
short_description: Wait until the /health endpoint of many nodes of one host answers 200
options:
  host:
    description: Address the nodes listen on.
    type: str
    default: 127.0.0.1
  ports:
    description: TCP ports of the nodes' HTTP servers.
    type: list
    elements: int
    default: []
  groups:
    description: >-
      More ports, by group (e.g. role name to ports): probed as I(ports) are, and
      I(values) keeps the groups apart.
    type: dict
    default: {}
  fields:
    description: Keys of each /health JSON answer of the I(groups) to return in I(values).
    type: list
    elements: str
    default: []
  path:
    description: Path to GET.
    type: str
    default: /health
  wait:
    description: Seconds to keep probing the nodes that do not answer 200 yet.
    type: float
    default: 0
  timeout:
    description: Seconds one request may take.
    type: float
    default: 2
"""

RETURN = r"""
healthy:
  description: Number of nodes that answered 200.
  type: int
  returned: always
failing:
  description: URL and last error of every node that did not answer 200 in time.
  type: list
  elements: dict
  returned: always
"""

RETRY_SECONDS = 0.5


def probe(url: str, timeout: float) -> tuple[str | None, bytes]:
    """(None, body) if the URL answers 200, else (why not, b"")."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            if response.status != 200:
                return f"HTTP {response.status}", b""
            return None, response.read()
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}", b""
    except (OSError, ValueError) as exc:
        return str(getattr(exc, "reason", exc)), b""


def field_values(
    groups: dict[str, list[int]], bodies: dict[int, bytes], fields: list[str]
) -> dict[str, dict[str, list[object]]]:
    """For each group and field, the values found in the JSON `bodies` of its ports."""
    values: dict[str, dict[str, list[object]]] = {}
    for group, ports in groups.items():
        values[group] = {field: [] for field in fields}
        for port in ports:
            try:
                report = json.loads(bodies.get(port) or b"{}")
            except ValueError:
                continue
            for field in fields:
                if isinstance(report, dict) and report.get(field) is not None:
                    values[group][field].append(report[field])
    return values


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "host": {"type": "str", "default": "127.0.0.1"},
            "ports": {"type": "list", "elements": "int", "default": []},
            "groups": {"type": "dict", "default": {}},
            "fields": {"type": "list", "elements": "str", "default": []},
            "path": {"type": "str", "default": "/health"},
            "wait": {"type": "float", "default": 0},
            "timeout": {"type": "float", "default": 2},
        },
        supports_check_mode=True,
    )
    params = module.params
    try:
        groups = {name: [int(p) for p in ports] for name, ports in params["groups"].items()}
    except (TypeError, ValueError) as exc:
        module.fail_json(msg=f"groups must map each name to a list of port numbers: {exc}")
    ports = list(dict.fromkeys(params["ports"] + [p for group in groups.values() for p in group]))
    if not ports:
        module.fail_json(msg="no port to check: give ports or groups")
    host = f"[{params['host']}]" if ":" in params["host"] else params["host"]
    urls = {port: f"http://{host}:{port}{params['path']}" for port in ports}
    pending = {port: "not probed" for port in ports}
    bodies: dict[int, bytes] = {}
    deadline = time.monotonic() + params["wait"]
    with ThreadPoolExecutor(max_workers=32) as pool:
        while True:
            asked = list(pending)
            answers = pool.map(lambda port: probe(urls[port], params["timeout"]), asked)
            pending = {}
            for port, (error, body) in zip(asked, answers, strict=True):
                if error is None:
                    bodies[port] = body
                else:
                    pending[port] = error
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(RETRY_SECONDS)
    failing = [{"url": urls[port], "error": error} for port, error in sorted(pending.items())]
    result = {
        "changed": False, "healthy": len(ports) - len(failing), "failing": failing,
        "values": field_values(groups, bodies, params["fields"]),
    }
    if failing:
        shown = ", ".join(f"{f['url']} ({f['error']})" for f in failing[:10])
        module.fail_json(
            msg=f"{len(failing)} of {len(ports)} nodes do not answer "
            f"{params['path']} with 200: {shown}",
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
