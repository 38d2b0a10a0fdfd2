"""Every container the deployment runs has the hardened options of roles/cqkd_container,
read back from `docker inspect`: a rotated json-file log, a pids limit, no capabilities and
no privilege gain."""

from __future__ import annotations

import json
import subprocess

import yaml
from deploy_helpers import REPO, Deployment, deployed_containers

SHARED = yaml.safe_load((REPO / "roles/cqkd_container/defaults/main.yml").read_text())


def test_every_container_has_log_rotation_and_a_pids_limit(deployment: Deployment) -> None:
    names = sorted(deployed_containers())
    inspected = json.loads(subprocess.check_output(["docker", "inspect", *names]))
    roles = {c["Config"]["Labels"]["io.cqkd.role"] for c in inspected}
    # Every kind of long-running container of a scale=small deployment on this machine.
    assert {"bootstrap", "worker", "alice", "bob", "prometheus"} <= roles, roles
    for container in inspected:
        name, host = container["Name"].lstrip("/"), container["HostConfig"]
        assert host["LogConfig"] == {
            "Type": "json-file",
            "Config": {
                "max-size": SHARED["cqkd_container_log_max_size"],
                "max-file": str(SHARED["cqkd_container_log_max_files"]),
            },
        }, name
        assert host["PidsLimit"] == SHARED["cqkd_container_pids_limit"], name
        assert host["CapDrop"] == ["ALL"], name
        assert host["SecurityOpt"] == ["no-new-privileges"], name
