#!/usr/bin/python
"""Ansible module: wait until GET /health answers 200 on many ports of one host at once.

One module call covers every node of a host (a loop of `uri` tasks costs a module start per
node), and the probes run concurrently.
"""

from __future__ import annotations

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
    required: true
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


def probe(url: str, timeout: float) -> str | None:
    """None if the URL answers 200, else why not."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return None if response.status == 200 else f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return str(getattr(exc, "reason", exc))


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "host": {"type": "str", "default": "127.0.0.1"},
            "ports": {"type": "list", "elements": "int", "required": True},
            "path": {"type": "str", "default": "/health"},
            "wait": {"type": "float", "default": 0},
            "timeout": {"type": "float", "default": 2},
        },
        supports_check_mode=True,
    )
    params = module.params
    host = f"[{params['host']}]" if ":" in params["host"] else params["host"]
    pending = {f"http://{host}:{port}{params['path']}": "not probed" for port in params["ports"]}
    deadline = time.monotonic() + params["wait"]
    with ThreadPoolExecutor(max_workers=32) as pool:
        while True:
            urls = list(pending)
            errors = pool.map(lambda url: probe(url, params["timeout"]), urls)
            pending = {url: err for url, err in zip(urls, errors, strict=True) if err is not None}
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(RETRY_SECONDS)
    failing = [{"url": url, "error": error} for url, error in sorted(pending.items())]
    result = {"changed": False, "healthy": len(params["ports"]) - len(failing), "failing": failing}
    if failing:
        shown = ", ".join(f"{f['url']} ({f['error']})" for f in failing[:10])
        module.fail_json(
            msg=f"{len(failing)} of {len(params['ports'])} nodes do not answer "
            f"{params['path']} with 200: {shown}",
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
