#!/usr/bin/python
"""Ansible module: make one host's containers of one role exactly the desired ones, at once.

A loop of community.docker.docker_container tasks costs one module start (about a second on
a busy 2-core host) per container: 500 workers took minutes. The DHT nodes (roles/dht_nodes)
and Alice and Bob (roles/qkd_endpoints) run through it: one way to run a CQKD container.
This module looks up the image, lists the role's containers once, works out what to do
from each container's spec-hash label (io.cqkd.spec, the one restart mechanism), then
creates, replaces and removes containers with a bounded pool of threads. One call per host
and role: every task costs time on a rerun, so image check and containers are one. The
files containers mount are written before, by cqkd_files (the one file writer). It talks
to the engine through the Docker API client that community.docker ships (its module_utils
need only `requests` on the target).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ansible.module_utils.common.text.formatters import human_to_bytes

DOCUMENTATION = r"""
module: cqkd_containers
short_description: Create, replace and remove one host's containers of one role concurrently
description:
  - Containers of the role (labels io.cqkd.project=cqkd and io.cqkd.role=ROLE) whose spec
    label matches and that run are left alone; a desired container that is missing is
    created, one whose label differs or that does not run is replaced, and a container of
    the role that is not desired is removed.
  - A container's label is a hash of its desired spec's hash and the id the image has on
    this host, so a new image replaces every container.
  - Files the containers mount are written before this call (cqkd_files).
options:
  role:
    description: Value of the label io.cqkd.role; also the container's command.
    type: str
    required: true
  image:
    description: Image every container runs; the module fails when the host lacks it.
    type: str
    required: true
  containers:
    description: >-
      The desired containers, each a dict with name, port and optionally env (its own
      variables). Each container's spec is built here from I(common), I(env) and
      I(healthcheck), so that the play templates no per-container expression: on a host
      with 500 workers that templating was most of a rerun's cost of this task.
    type: list
    elements: dict
    required: true
  common:
    description: >-
      What every desired container shares, in the order it is hashed: memory,
      memory_reservation, user, mounts (docker_container's mount dicts) and anything else
      the spec label must cover (the probe, the shared options).
    type: dict
    required: true
  env:
    description: >-
      Environment every container shares; then DHT_PORT (the container's port), then the
      container's own env.
    type: dict
    default: {}
  healthcheck:
    description: >-
      Docker's healthcheck of every container (test list, interval, timeout, retries); an
      item "{port}" of the test is replaced by the container's port.
    type: dict
    required: true
  options:
    description: The shared hardened options of roles/cqkd_container (_cqkd_container_options).
    type: dict
    required: true
  labels:
    description: Labels every container carries besides io.cqkd.role and io.cqkd.spec.
    type: dict
    required: true
  every_role:
    description: >-
      List every container with I(labels), whatever its role, so that I(statuses) and
      I(unready) cover them all (the verify play reads them); false lists only this role's
      (listing 500 containers takes dockerd 0.3 s).
    type: bool
    default: true
  spec_label:
    description: Name of the label that holds a container's spec hash.
    type: str
    default: io.cqkd.spec
  threads:
    description: Containers handled at the same time.
    type: int
    default: 8
  stop_timeout:
    description: Seconds a removed container has to stop before it is killed.
    type: int
    default: 10
extends_documentation_fragment:
  - community.docker.docker.api_documentation
"""

RETURN = r"""
created:
  description: Names of the containers created.
  type: list
  elements: str
  returned: always
replaced:
  description: Names of the containers replaced (spec changed, or not running).
  type: list
  elements: str
  returned: always
removed:
  description: Names of the containers removed (not desired any more).
  type: list
  elements: str
  returned: always
kept:
  description: Number of containers left alone.
  type: int
  returned: always
statuses:
  description: >-
    Docker's status ("Up 2 minutes (healthy)") of every container with I(labels), of any
    role (of this role only without I(every_role)), as listed before anything was changed.
  type: dict
  returned: always
unready:
  description: >-
    Names of the containers with I(labels), of any role (of this role only without
    I(every_role)), that did not run or that Docker called unhealthy, as listed before
    anything was changed (the verify play waits when there is any, or when anything
    changed).
  type: list
  elements: str
  returned: always
"""


def label_hash(spec_hash: str, image_id: str) -> str:
    """The io.cqkd.spec label of a container: its desired spec's hash with the image's id
    (a sha256 digest as Docker gives it), as 40 hex digits."""
    return hashlib.sha1(f"{spec_hash} {image_id}".encode()).hexdigest()


def desired_specs(
    containers: list[dict[str, Any]], common: dict[str, Any], env: dict[str, str],
    healthcheck: dict[str, Any],
) -> list[dict[str, Any]]:
    """Each desired container's spec with its hash (the io.cqkd.spec label before the image's
    id is added): the SHA-1 of the JSON of {name, env, port, **common}, keys in that order,
    as the role's templates hashed it before (`spec | to_json | hash('sha1')`), so that
    running containers keep their label across this change."""
    out = []
    for container in containers:
        port = str(container["port"])
        spec = {
            "name": container["name"],
            "env": {**env, "DHT_PORT": port, **(container.get("env") or {})},
            "port": port,
            **common,
        }
        digest = hashlib.sha1(json.dumps(spec).encode()).hexdigest()
        out.append({
            **spec, "hash": digest,
            "healthcheck": {
                **healthcheck,
                "test": [port if item == "{port}" else item for item in healthcheck["test"]],
            },
        })
    return out


def unready(listed: list[dict[str, Any]]) -> list[str]:
    """Names of the listed containers (Docker's /containers/json) that do not run, or that
    Docker calls unhealthy."""
    return sorted(
        c["Names"][0].lstrip("/") for c in listed
        if c["State"] != "running" or "(unhealthy)" in c.get("Status", "")
    )


def plan(desired: list[dict[str, Any]], existing: list[dict[str, Any]]) -> dict[str, list[str]]:
    """What to do, from the desired containers ({name, hash}) and the role's existing ones
    ({name, hash: their spec label or None, running: bool}).

    Returns {"create", "replace", "remove", "keep"}, each a sorted list of names. A container
    is kept only when it runs and its label equals the desired hash: a stopped container
    with the right spec is replaced too, since its state is unknown (crashed, stopped by
    hand).
    """
    current = {c["name"]: c for c in existing}
    wanted = {d["name"]: d["hash"] for d in desired}
    result: dict[str, list[str]] = {"create": [], "replace": [], "remove": [], "keep": []}
    for name, spec_hash in wanted.items():
        found = current.get(name)
        if found is None:
            result["create"].append(name)
        elif found["running"] and found["hash"] == spec_hash:
            result["keep"].append(name)
        else:
            result["replace"].append(name)
    result["remove"] = [name for name in current if name not in wanted]
    return {action: sorted(names) for action, names in result.items()}


def _nanoseconds(duration: str | int | float) -> int:
    """Docker's durations are nanoseconds; Ansible's are '30s', '1m30s' or seconds."""
    if isinstance(duration, (int, float)):
        return int(duration * 1e9)
    seconds, number = 0.0, ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0}
    for char in str(duration):
        if char in units:
            seconds += float(number) * units[char]
            number = ""
        else:
            number += char
    if number:
        seconds += float(number)
    return int(seconds * 1e9)


def create_body(
    spec: dict[str, Any], role: str, image: str, options: dict[str, Any], labels: dict[str, str],
    spec_label: str,
) -> dict[str, Any]:
    """The Docker API's POST /containers/create body for one desired container."""
    tmpfs = {}
    for entry in options.get("tmpfs", []):
        path, _, mount_options = entry.partition(":")
        tmpfs[path] = mount_options
    health = spec["healthcheck"]
    return {
        "Image": image,
        "Cmd": [role],
        "Env": [f"{key}={value}" for key, value in sorted(spec["env"].items())],
        "User": f"{spec['user']}:{spec['user']}",
        "Labels": {**labels, "io.cqkd.role": role, spec_label: spec["hash"]},
        "Healthcheck": {
            "Test": list(health["test"]),
            "Interval": _nanoseconds(health["interval"]),
            "Timeout": _nanoseconds(health["timeout"]),
            "Retries": int(health["retries"]),
        },
        "HostConfig": {
            "NetworkMode": "host",
            "Mounts": [
                {
                    "Type": m.get("type", "bind"),
                    "Source": m["source"],
                    "Target": m["target"],
                    "ReadOnly": bool(m.get("read_only", False)),
                }
                for m in spec.get("mounts", [])
            ],
            "Memory": human_to_bytes(spec["memory"]),
            "MemoryReservation": human_to_bytes(spec["memory_reservation"]),
            "CapDrop": list(options.get("cap_drop", [])),
            "SecurityOpt": list(options.get("security_opts", [])),
            "ReadonlyRootfs": bool(options.get("read_only", False)),
            "Tmpfs": tmpfs,
            "Init": bool(options.get("init", False)),
            "RestartPolicy": {"Name": options.get("restart_policy", "no")},
            "LogConfig": {
                "Type": options.get("log_driver", "json-file"),
                "Config": {k: str(v) for k, v in options.get("log_options", {}).items()},
            },
            "PidsLimit": int(options.get("pids_limit", 0)) or None,
        },
    }


def main() -> None:
    # Imported here so that the pure functions above load without the collection (unit tests).
    from ansible_collections.community.docker.plugins.module_utils._api.errors import (
        APIError,
        NotFound,
    )
    from ansible_collections.community.docker.plugins.module_utils.common_api import (
        AnsibleDockerClient,
        RequestException,
    )

    client = AnsibleDockerClient(
        argument_spec={
            "role": {"type": "str", "required": True},
            "image": {"type": "str", "required": True},
            "containers": {"type": "list", "elements": "dict", "required": True},
            "common": {"type": "dict", "required": True},
            "env": {"type": "dict", "default": {}},
            "healthcheck": {"type": "dict", "required": True},
            "options": {"type": "dict", "required": True},
            "labels": {"type": "dict", "required": True},
            "every_role": {"type": "bool", "default": True},
            "spec_label": {"type": "str", "default": "io.cqkd.spec"},
            "threads": {"type": "int", "default": 8},
            "stop_timeout": {"type": "int", "default": 10},
        },
        supports_check_mode=True,
    )
    params = client.module.params
    role, label_name = params["role"], params["spec_label"]
    try:
        image_id = client.get_json("/images/{0}/json", params["image"])["Id"]
    except NotFound:
        client.fail(f"{params['image']} is not on this Docker host: run ansible/images.yml first")
    # Every container with the labels, of any role: the role's own to plan, and every one's
    # Docker status for the caller (the verify play need not list them all again).
    labels = [f"{key}={value}" for key, value in params["labels"].items()]
    if not params["every_role"]:
        labels.append(f"io.cqkd.role={role}")
    listed = client.get_json(
        "/containers/json", params={"all": 1, "filters": json.dumps({"label": labels})}
    )
    existing = [
        {
            "name": c["Names"][0].lstrip("/"),
            "id": c["Id"],
            "hash": (c.get("Labels") or {}).get(label_name),
            "running": c["State"] == "running",
        }
        for c in listed
        if (c.get("Labels") or {}).get("io.cqkd.role") == role
    ]
    ids = {c["name"]: c["id"] for c in existing}
    specs = {
        c["name"]: {**c, "hash": label_hash(c["hash"], image_id)}
        for c in desired_specs(params["containers"], params["common"], params["env"],
                               params["healthcheck"])
    }
    todo = plan(list(specs.values()), existing)
    result: dict[str, Any] = {
        "changed": bool(todo["create"] or todo["replace"] or todo["remove"]),
        "created": todo["create"],
        "replaced": todo["replace"],
        "removed": todo["remove"],
        "kept": len(todo["keep"]),
        "statuses": {c["Names"][0].lstrip("/"): c.get("Status", "") for c in listed},
        "unready": unready(listed),
    }
    if client.module._diff:
        before = {c["name"]: c["hash"] for c in existing}
        after = {name: spec["hash"] for name, spec in specs.items()}
        result["diff"] = {
            "before": "".join(f"{n} {before[n]}\n" for n in sorted(before)),
            "after": "".join(f"{n} {after[n]}\n" for n in sorted(after)),
        }
    if client.check_mode or not (todo["create"] or todo["replace"] or todo["remove"]):
        client.module.exit_json(**result)

    def remove(name: str) -> None:
        try:
            client.post_call(
                "/containers/{0}/stop", ids[name],
                params={"t": params["stop_timeout"]}, timeout=params["stop_timeout"] + 30,
            )
        except NotFound:
            return
        except APIError as exc:
            if exc.response is None or exc.response.status_code != 304:  # 304: not running
                raise
        with contextlib.suppress(NotFound):
            client.delete_call("/containers/{0}", ids[name], params={"force": 1})

    def start(name: str) -> None:
        body = create_body(specs[name], role, params["image"], params["options"],
                           params["labels"], label_name)
        made = client.post_json_to_json("/containers/create", data=body, params={"name": name})
        client.post_call("/containers/{0}/start", made["Id"])

    def act(action: str, name: str) -> str | None:
        """None when done, else the error (every container is tried; failures reported together)."""
        try:
            if action in ("replace", "remove"):
                remove(name)
            if action in ("replace", "create"):
                start(name)
        except (APIError, RequestException, OSError, ValueError) as exc:
            return f"{action} {name}: {exc}"
        return None

    began = time.monotonic()
    work = [(a, n) for a in ("remove", "replace", "create") for n in todo[a]]
    with ThreadPoolExecutor(max_workers=max(1, params["threads"])) as pool:
        errors = [e for e in pool.map(lambda job: act(*job), work) if e is not None]
    result["seconds"] = round(time.monotonic() - began, 2)
    if errors:
        client.fail(f"{len(errors)} of {len(work)} container operations failed: "
                    + "; ".join(errors[:10]), **result)
    client.module.exit_json(**result)


if __name__ == "__main__":
    main()
