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
            "ports": {"type": "dict", "required": True},
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
    module.exit_json(
        changed=False, values=values,
        unreachable=sum(found is None for found in read_all.values()),
    )


if __name__ == "__main__":
    main()
