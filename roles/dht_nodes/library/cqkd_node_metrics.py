#!/usr/bin/python
"""Ansible module: read a few unlabelled gauges from the /metrics of many nodes of one host,
after each node's health endpoint has answered 200 when asked to.

The verify play reports the nodes' own discovery times (cqkd_dht_join_duration_seconds,
cqkd_dht_joined_timestamp_seconds) without depending on Prometheus, which is optional. It
also checks each node's /health in the same call: the two were one task and one pass over
506 nodes each (0.7-1.0 s for the /health task alone at 500 workers), and every task costs
time on a rerun.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: cqkd_node_metrics
short_description: Read unlabelled metrics from the /metrics endpoint of many nodes of one host
options:
  host:
    description: Address the nodes listen on.
    type: str
    default: 127.0.0.1
  ports:
    description: >-
      TCP ports of the nodes' HTTP servers, by group (a dict of lists, e.g. per role): one
      call reads every group.
    type: dict
    required: true
  names:
    description: Names of the unlabelled samples to read.
    type: list
    elements: str
    required: true
  timeout:
    description: Seconds one request may take.
    type: float
    default: 5
  health_path:
    description: >-
      Path each node must answer with 200 before its metrics are read (the module fails
      naming the nodes that did not); none to read the metrics only.
    type: str
  wait:
    description: Seconds to keep asking a node's I(health_path) until it answers 200.
    type: float
    default: 0
"""

RETURN = r"""
values:
  description: >-
    For each group, for each name, the values read, one per node that exported it (nodes
    that did not answer or have no such sample are left out).
  type: dict
  returned: always
unreachable:
  description: Number of nodes whose /metrics did not answer.
  type: int
  returned: always
failing:
  description: URL and last error of every node whose I(health_path) did not answer 200 in time.
  type: list
  elements: dict
  returned: always
"""

RETRY_SECONDS = 0.5


def samples(text: str, names: set[str]) -> dict[str, float]:
    """Values of the unlabelled samples named in `names`, from the Prometheus text format."""
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in names:
            found[name] = float(value.split()[0])
    return found


def health_error(url: str, timeout: float, wait: float) -> str | None:
    """None once GET `url` answers 200 (asked again every RETRY_SECONDS for `wait` seconds),
    else the last answer or error."""
    deadline = time.monotonic() + wait
    while True:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                error = None if response.status == 200 else f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            error = f"HTTP {exc.code}"
        except (OSError, ValueError) as exc:
            error = str(getattr(exc, "reason", exc))
        if error is None or time.monotonic() >= deadline:
            return error
        time.sleep(RETRY_SECONDS)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "host": {"type": "str", "default": "127.0.0.1"},
            "ports": {"type": "dict", "required": True},
            "names": {"type": "list", "elements": "str", "required": True},
            "timeout": {"type": "float", "default": 5},
            "health_path": {"type": "str"},
            "wait": {"type": "float", "default": 0},
        },
        supports_check_mode=True,
    )
    params = module.params
    host = f"[{params['host']}]" if ":" in params["host"] else params["host"]
    names = set(params["names"])

    failing: dict[str, str] = {}

    def read(port: int) -> dict[str, float] | None:
        if params["health_path"]:
            url = f"http://{host}:{port}{params['health_path']}"
            error = health_error(url, params["timeout"], params["wait"])
            if error is not None:
                failing[url] = error
                return None
        try:
            url = f"http://{host}:{port}/metrics"
            with urllib.request.urlopen(url, timeout=params["timeout"]) as response:
                return samples(response.read().decode(), names)
        except (OSError, ValueError):
            return None

    try:
        groups = {group: [int(port) for port in ports] for group, ports in params["ports"].items()}
    except (TypeError, ValueError) as exc:
        module.fail_json(msg=f"ports must map each group to a list of port numbers: {exc}")
    every_port = [port for ports in groups.values() for port in ports]
    with ThreadPoolExecutor(max_workers=32) as pool:
        read_all = dict(zip(every_port, pool.map(read, every_port), strict=True))
    values: dict[str, dict[str, list[float]]] = {}
    for group, ports in groups.items():
        values[group] = {name: [] for name in params["names"]}
        for port in ports:
            for name, value in (read_all[port] or {}).items():
                values[group][name].append(value)
    failed = [{"url": url, "error": error} for url, error in sorted(failing.items())]
    result = {
        "changed": False, "values": values,
        "unreachable": sum(found is None for found in read_all.values()), "failing": failed,
    }
    if failed:
        shown = ", ".join(f"{f['url']} ({f['error']})" for f in failed[:10])
        module.fail_json(msg=f"{len(failing)} of {len(every_port)} nodes do not answer "
                             f"{params['health_path']} with 200: {shown}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
