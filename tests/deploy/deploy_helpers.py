"""Running the repository's playbooks and looking at what they deployed on this machine."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))
PLAYBOOK_TIMEOUT_SECONDS = 30 * 60
SCALE = "small"
SECRETS_DIR = Path.home() / ".cqkd" / "secrets"
# What deploy.yml creates on a host: containers, networks and volumes with these roles.
DEPLOYED_ROLES = ("bootstrap", "worker", "alice", "bob", "keygen", "prometheus", "grafana")

_RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


@dataclass
class PlaybookRun:
    """One ansible-playbook run: its command, exit code, output and PLAY RECAP per host."""

    args: list[str]
    returncode: int
    output: str
    seconds: float
    recap: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def changed(self) -> int:
        return sum(host["changed"] for host in self.recap.values())

    @property
    def failed(self) -> int:
        return sum(host["failed"] + host["unreachable"] for host in self.recap.values())

    @property
    def changed_tasks(self) -> list[str]:
        """The tasks that reported a change, with the items that changed."""
        tasks, task = [], ""
        for line in self.output.splitlines():
            if line.startswith("TASK ["):
                task = line.split("]")[0].removeprefix("TASK [")
            elif line.startswith("changed:"):
                tasks.append(f"{task}: {line}")
        return tasks

    def explain(self) -> str:
        """The command, the tasks that changed something and the end of the output."""
        changed = "\n".join(self.changed_tasks[:40])
        return (
            f"{' '.join(self.args)} -> {self.returncode}\nchanged:\n{changed}\n"
            + self.output[-6000:]
        )


def run_playbook(playbook: str, *extra: str) -> PlaybookRun:
    """Run a playbook of the repository with the local inventory, from the repository."""
    args = [ANSIBLE_PLAYBOOK, playbook, *extra]
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    began = time.monotonic()
    done = subprocess.run(
        args,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=PLAYBOOK_TIMEOUT_SECONDS,
        check=False,
    )
    recap = {
        host: {"ok": int(ok), "changed": int(ch), "unreachable": int(un), "failed": int(fa)}
        for host, ok, ch, un, fa in _RECAP.findall(done.stdout)
    }
    return PlaybookRun(args, done.returncode, done.stdout, time.monotonic() - began, recap)


def docker_json(*args: str) -> list[dict]:
    """`docker <args> --format '{{json .}}'`, one object per line."""
    done = subprocess.run(
        ["docker", *args, "--format", "{{json .}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def deployed_containers() -> dict[str, str]:
    """Name -> id of every container on this machine that deploy.yml made."""
    rows = docker_json("ps", "--all", "--no-trunc", "--filter", "label=io.cqkd.project=cqkd")
    return {
        row["Names"]: row["ID"]
        for row in rows
        if _label(row["Labels"], "io.cqkd.role") in DEPLOYED_ROLES
    }


def _label(labels: str, name: str) -> str:
    """A label's value from `docker ps`'s comma-separated Labels column."""
    for pair in labels.split(","):
        key, _, value = pair.partition("=")
        if key == name:
            return value
    return ""


@dataclass
class Deployment:
    """The deployed network: the run that made it and where to reach it."""

    scale: str
    first_run: PlaybookRun
    alice_url: str = "http://127.0.0.1:8001"
    bob_url: str = "http://127.0.0.1:8002"
    alice_etsi_url: str = "https://127.0.0.1:8443"
    bob_etsi_url: str = "https://127.0.0.1:8444"
    secrets_dir: Path = SECRETS_DIR

    @property
    def api_token(self) -> str:
        return (self.secrets_dir / "api-token").read_text().strip()

    def deploy(self, *extra: str) -> PlaybookRun:
        """Run deploy.yml again at this deployment's scale (unless `extra` says otherwise)."""
        return run_playbook("deploy.yml", "-e", f"scale={self.scale}", *extra)
