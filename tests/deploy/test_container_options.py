"""Every container the deployment runs has the hardened options of roles/cqkd_container,
read back from `docker inspect`: a rotated json-file log, a pids limit, no capabilities, no
privilege gain, a read-only root with a tmpfs /tmp, an init, the shared restart policy, the
project label and a non-root user."""

from __future__ import annotations

import json
import subprocess

import yaml
from deploy_helpers import REPO, Deployment, deployed_containers

SHARED = yaml.safe_load((REPO / "roles/cqkd_container/defaults/main.yml").read_text())


def test_every_container_has_the_shared_hardened_options(deployment: Deployment) -> None:
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
        assert host["ReadonlyRootfs"] is True, name
        assert host["Tmpfs"] == {"/tmp": f"size={SHARED['cqkd_container_tmp_size']},mode=1777"}, (
            name
        )
        assert host["Init"] is True, name
        assert host["RestartPolicy"]["Name"] == SHARED["cqkd_container_restart_policy"], name
        assert container["Config"]["Labels"]["io.cqkd.project"] == "cqkd", name
        # Set by the role, not left to the image: the uid the role's files belong to.
        user = container["Config"]["User"]
        assert user and user.split(":")[0] not in ("0", "root"), (name, user)
        assert container["Config"]["Labels"].get("io.cqkd.spec"), name
