"""The concurrent container module's diff: create, replace, remove, leave alone.

roles/cqkd_container/library/cqkd_containers.py's `plan` is a pure function of the desired
containers and the role's existing ones; no Docker needed. So are the label it gives a
container and the files it writes before the containers start (a real directory here).
"""

from __future__ import annotations

import hashlib
import json
from types import ModuleType

from deploy_helpers import REPO
from helpers.modules import load


def _module() -> ModuleType:
    return load(REPO / "roles" / "cqkd_container" / "library" / "cqkd_containers.py",
                "cqkd_containers")


def test_plan_creates_replaces_removes_and_keeps() -> None:
    desired = [
        {"name": "w-1", "hash": "a"},  # running, same hash: kept
        {"name": "w-2", "hash": "b"},  # running, other hash: replaced
        {"name": "w-3", "hash": "c"},  # same hash but exited: replaced
        {"name": "w-4", "hash": "d"},  # missing: created
    ]
    existing = [
        {"name": "w-1", "hash": "a", "running": True},
        {"name": "w-2", "hash": "old", "running": True},
        {"name": "w-3", "hash": "c", "running": False},
        {"name": "w-9", "hash": "z", "running": True},  # not desired: removed
    ]
    assert _module().plan(desired, existing) == {
        "create": ["w-4"],
        "replace": ["w-2", "w-3"],
        "remove": ["w-9"],
        "keep": ["w-1"],
    }


def test_plan_with_nothing_to_change_keeps_everything() -> None:
    desired = [{"name": f"w-{i}", "hash": "h"} for i in range(3)]
    existing = [{"name": f"w-{i}", "hash": "h", "running": True} for i in range(3)]
    plan = _module().plan(desired, existing)
    assert plan["keep"] == ["w-0", "w-1", "w-2"]
    assert plan["create"] == plan["replace"] == plan["remove"] == []


def test_plan_removes_everything_when_nothing_is_desired() -> None:
    existing = [{"name": "w-1", "hash": None, "running": False}]
    assert _module().plan([], existing)["remove"] == ["w-1"]


def test_create_body_carries_the_hardened_options_and_the_spec_label() -> None:
    spec = {
        "name": "w-1", "hash": "h1", "env": {"DHT_PORT": "7000"}, "port": "7000",
        "user": 10001, "mounts": [], "memory": "128M", "memory_reservation": "64M",
        "healthcheck": {"test": ["CMD", "true"], "interval": "30s", "timeout": "3s",
                        "retries": 3},
    }
    options = {"cap_drop": ["ALL"], "security_opts": ["no-new-privileges"], "read_only": True,
               "tmpfs": ["/tmp:size=16m,mode=1777"], "init": True,
               "restart_policy": "unless-stopped", "log_driver": "json-file",
               "log_options": {"max-size": "10m", "max-file": "3"}, "pids_limit": 256}
    body = _module().create_body(spec, "worker", "cqkd-node:0.1.0", options,
                                 {"io.cqkd.project": "cqkd"}, "io.cqkd.spec")
    host = body["HostConfig"]
    assert body["Labels"] == {"io.cqkd.project": "cqkd", "io.cqkd.role": "worker",
                              "io.cqkd.spec": "h1"}
    assert body["Healthcheck"]["Interval"] == 30 * 10**9
    assert host["Memory"] == 128 * 2**20 and host["MemoryReservation"] == 64 * 2**20
    assert host["Tmpfs"] == {"/tmp": "size=16m,mode=1777"}
    assert host["CapDrop"] == ["ALL"] and host["ReadonlyRootfs"] and host["Init"]
    assert host["NetworkMode"] == "host" and host["PidsLimit"] == 256


def test_the_label_follows_the_spec_and_the_image() -> None:
    label = _module().label_hash
    assert label("h", "sha256:aa") == label("h", "sha256:aa")
    assert len(label("h", "sha256:aa")) == 40
    # A new image replaces every container, though its spec stayed the same.
    assert label("h", "sha256:aa") != label("h", "sha256:bb")
    assert label("h", "sha256:aa") != label("g", "sha256:aa")


def test_desired_specs_hash_what_the_role_template_hashed() -> None:
    # The label of a running container must not change with the move of the spec from
    # the role's template (`spec | to_json | hash('sha1')`) into the module: the hash is
    # the SHA-1 of json.dumps({name, env, port, **common}), env ending with DHT_PORT then
    # the node's own variables.
    common = {"memory": "128M", "user": 10001, "shared": {"init": True, "pids_limit": 256}}
    health = {"test": ["CMD", "python3", "-c", "probe", "127.0.0.1", "{port}"], "interval": "30s",
              "timeout": "10s", "retries": 3}
    specs = _module().desired_specs(
        [{"name": "w-0", "port": 7000, "address": "10.0.0.1", "host": "h"},
         {"name": "b-0", "port": 6999, "env": {"BOOTSTRAP_NODES": "10.0.0.1:6998"}}],
        common, {"LOG_LEVEL": "INFO"}, health)
    worker, bootstrap = specs
    expected = {"name": "w-0", "env": {"LOG_LEVEL": "INFO", "DHT_PORT": "7000"},
                "port": "7000", **common}
    assert worker["hash"] == hashlib.sha1(json.dumps(expected).encode()).hexdigest()
    assert list(bootstrap["env"]) == ["LOG_LEVEL", "DHT_PORT", "BOOTSTRAP_NODES"]
    assert worker["healthcheck"]["test"][-2:] == ["127.0.0.1", "7000"]
    assert health["test"][-1] == "{port}"  # the shared healthcheck is left as it was
    assert "address" not in worker and worker["user"] == 10001


def test_unready_names_the_stopped_and_the_unhealthy() -> None:
    listed = [
        {"Names": ["/w-0"], "State": "running", "Status": "Up 2 minutes (healthy)"},
        {"Names": ["/w-1"], "State": "running", "Status": "Up 3 seconds (health: starting)"},
        {"Names": ["/w-2"], "State": "running", "Status": "Up 9 minutes (unhealthy)"},
        {"Names": ["/w-3"], "State": "exited", "Status": "Exited (1) 4 seconds ago"},
        {"Names": ["/w-4"], "State": "running", "Status": "Up 5 minutes"},
    ]
    assert _module().unready(listed) == ["w-2", "w-3"]
