#!/usr/bin/python
"""Ansible module: read a few unlabelled gauges from the /metrics of many nodes of one host.

The verify play reports the nodes' own discovery times (cqkd_dht_join_duration_seconds,
cqkd_dht_joined_timestamp_seconds) without depending on Prometheus, which is optional.
"""

from __future__ import annotations

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
    description: TCP ports of the nodes' HTTP servers.
    type: list
    elements: int
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
"""

RETURN = r"""
values:
  description: >-
    For each name, the values read, one per node that exported it (nodes that did not
    answer or have no such sample are left out).
  type: dict
  returned: always
unreachable:
  description: Number of nodes whose /metrics did not answer.
  type: int
  returned: always
"""


def samples(text: str, names: set[str]) -> dict[str, float]:
    """Values of the unlabelled samples named in `names`, from the Prometheus text format."""
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in names:
            found[name] = float(value.split()[0])
    return found


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "host": {"type": "str", "default": "127.0.0.1"},
            "ports": {"type": "list", "elements": "int", "required": True},
            "names": {"type": "list", "elements": "str", "required": True},
            "timeout": {"type": "float", "default": 5},
        },
        supports_check_mode=True,
    )
    params = module.params
    host = f"[{params['host']}]" if ":" in params["host"] else params["host"]
    names = set(params["names"])

    def read(port: int) -> dict[str, float] | None:
        try:
            url = f"http://{host}:{port}/metrics"
            with urllib.request.urlopen(url, timeout=params["timeout"]) as response:
                return samples(response.read().decode(), names)
        except (OSError, ValueError):
            return None

    with ThreadPoolExecutor(max_workers=32) as pool:
        read_all = list(pool.map(read, params["ports"]))
    values: dict[str, list[float]] = {name: [] for name in params["names"]}
    for found in read_all:
        for name, value in (found or {}).items():
            values[name].append(value)
    module.exit_json(
        changed=False, values=values, unreachable=sum(found is None for found in read_all)
    )


if __name__ == "__main__":
    main()
