"""The Docker hosts of the `multihost` Molecule scenario, as the fault test drives them:
commands in a host and in its engine, the nodes each host runs, Alice's and Bob's APIs, and
the query probes (probe.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml
from helpers.keys import finished_session

REPO = Path(__file__).resolve().parents[2]
SCENARIO = "multihost"
SCENARIO_CONFIG = yaml.safe_load((REPO / "molecule" / SCENARIO / "molecule.yml").read_text())
# The bridge the scenario's hosts share, as their molecule.yml `networks` key names it.
NETWORK = SCENARIO_CONFIG["platforms"][0]["networks"][0]["name"]
PROBE_SOURCE = (Path(__file__).parent / "probe.py").read_text()
PROBE_NAME = "cqkd-probe"
PROBE_PORT = 7999
PROBE_PERIOD = 2.0
PROJECT_LABEL = "io.cqkd.project=cqkd"


def run(*argv: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv[:6])} failed ({result.returncode}): {result.stderr}")
    return result


def molecule(*args: str, timeout: float = 1200) -> None:
    """Run a Molecule command on the scenario; its output goes to the test's log."""
    command = [str(Path(sys.executable).parent / "molecule"), *args, "--scenario-name", SCENARIO]
    result = subprocess.run(command, cwd=REPO, text=True, timeout=timeout,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    print(result.stdout[-20000:])
    assert result.returncode == 0, f"molecule {args[0]} failed: see the output above"


@dataclass(frozen=True)
class Node:
    """A node container on a host; `port` answers GET /health over HTTP."""

    name: str
    role: str
    port: int


@dataclass(frozen=True)
class DockerHost:
    name: str
    address: str
    groups: tuple[str, ...]

    def sh(self, *argv: str, timeout: float = 60, check: bool = True) -> str:
        return run("docker", "exec", self.name, *argv, timeout=timeout, check=check).stdout

    def docker(self, *argv: str, timeout: float = 60, check: bool = True) -> str:
        """The Docker CLI of this host's own engine."""
        return self.sh("docker", *argv, timeout=timeout, check=check)

    def nodes(self) -> list[Node]:
        names = self.docker("ps", "--all", "--quiet", "--filter", f"label={PROJECT_LABEL}",
                            "--filter", "label=io.cqkd.role").split()
        if not names:
            return []
        found = []
        for container in json.loads(self.docker("inspect", *names)):
            env = dict(item.split("=", 1) for item in container["Config"]["Env"])
            port = env.get("HTTP_PORT") or env["DHT_PORT"]
            found.append(Node(container["Name"].lstrip("/"),
                              container["Config"]["Labels"]["io.cqkd.role"], int(port)))
        return found

    def health(self, node: Node) -> dict[str, object] | None:
        """The node's /health answer, None if it does not answer 200."""
        try:
            answer = httpx.get(f"http://{self.address}:{node.port}/health", timeout=2)
        except httpx.HTTPError:
            return None
        return answer.json() if answer.status_code == 200 else None

    def kill_node(self, node: Node) -> None:
        """Kill the node's process tree as a crash would (SIGKILL to the container's init):
        unlike `docker kill`, this leaves the restart policy to act."""
        pid = self.docker("inspect", "--format", "{{.State.Pid}}", node.name).strip()
        self.sh("kill", "-KILL", pid)

    def start_probe(self, image: str, bootstrap: str, peers: list[str]) -> None:
        self.docker("rm", "--force", PROBE_NAME, check=False)
        self.docker(
            "run", "--detach", "--name", PROBE_NAME, "--label", PROJECT_LABEL,
            "--network", "host", "--read-only", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges", "--no-healthcheck", "--entrypoint", "python3",
            image,
            "-c", PROBE_SOURCE, self.name, str(PROBE_PORT), str(PROBE_PERIOD), bootstrap,
            ",".join(peers),
        )

    def probe_results(self) -> list[tuple[float, bool]]:
        lines = self.docker("logs", PROBE_NAME).splitlines()
        return [(r["t"], r["ok"]) for r in map(json.loads, lines) if "ok" in r]


def hosts() -> list[DockerHost]:
    """The scenario's hosts, as its molecule.yml declares them."""
    return [
        DockerHost(p["name"], p["networks"][0]["ipv4_address"], tuple(p["groups"]))
        for p in SCENARIO_CONFIG["platforms"]
    ]


class Api:
    """Alice's and Bob's control APIs, with the deployment's bearer token."""

    def __init__(self, alice: str, bob: str, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        self.alice = httpx.Client(base_url=alice, headers=headers, timeout=10)
        self.bob = httpx.Client(base_url=bob, headers=headers, timeout=10)

    def converged(self) -> bool:
        try:
            return bool(self.alice.get("/network-status").json().get("converged"))
        except httpx.HTTPError:
            return False

    def start_session(self, key_bits: int) -> str:
        answer = self.alice.post("/generate-key", json={"desired_key_length": key_bits})
        assert answer.status_code == 202, f"/generate-key answered {answer.status_code}"
        return str(answer.json()["process_id"])

    def wait_session(self, process_id: str, timeout: float = 180) -> dict[str, object]:
        return finished_session(
            self.alice, f"/sessions/{process_id}", seconds=timeout, interval=0.5
        )

    def keys_match(self, key_id: str) -> bool:
        """Fetch the key under key_id from both sides (once: delivery consumes it)."""
        alice = self.alice.get(f"/keys/{key_id}")
        bob = self.bob.get(f"/keys/{key_id}")
        assert alice.status_code == 200 and bob.status_code == 200, (
            f"key {key_id}: Alice answered {alice.status_code}, Bob {bob.status_code}"
        )
        return bool(alice.json()["key"] == bob.json()["key"])
