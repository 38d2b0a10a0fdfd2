"""The node image: labels, non-root user, CLI, healthcheck, graceful stop on SIGTERM.
Runs against the image `make setup` built, with the real Docker engine."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import pytest
from docker_helpers import REPO, docker, package_version
from helpers.ports import free_port

pytestmark = pytest.mark.docker

HEALTHY_WITHIN_SECONDS = 120


def health(name: str) -> str:
    return docker("inspect", "--format", "{{.State.Health.Status}}", name).stdout.strip()


def wait_healthy(name: str) -> None:
    deadline = time.monotonic() + HEALTHY_WITHIN_SECONDS
    while (status := health(name)) != "healthy":
        if status == "unhealthy" or time.monotonic() > deadline:
            logs = docker("logs", "--tail", "20", name, check=False)
            pytest.fail(f"{name} is {status}:\n{logs.stdout}{logs.stderr}")
        time.sleep(0.5)


def test_image_is_labelled_with_project_version_and_current_sources(
    node_image: dict[str, object],
) -> None:
    labels = node_image["Config"]["Labels"]  # type: ignore[index]
    digest = subprocess.run(
        [str(REPO / "images" / "source-digest.sh")], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert labels["io.cqkd.project"] == "cqkd"
    assert labels["org.opencontainers.image.version"] == package_version()
    assert labels["io.cqkd.source-digest"] == digest, "image is stale: run `make setup`"


def test_image_runs_as_a_fixed_non_root_user(node_image: dict[str, object]) -> None:
    assert node_image["Config"]["User"] == "10001:10001"  # type: ignore[index]
    ids = docker("run", "--rm", "--entrypoint", "id", str(node_image["Ref"])).stdout
    assert "uid=10001(cqkd) gid=10001(cqkd)" in ids


def test_image_declares_healthcheck_and_stop_signal(node_image: dict[str, object]) -> None:
    config = node_image["Config"]
    assert config["Healthcheck"]["Test"] == ["CMD", "cqkd", "probe"]  # type: ignore[index]
    assert config["StopSignal"] == "SIGTERM"  # type: ignore[index]


def test_cli_help_lists_every_role(node_image: dict[str, object]) -> None:
    result = docker("run", "--rm", "--network", "none", str(node_image["Ref"]), "--help")
    for role in ("bootstrap", "worker", "alice", "bob", "probe"):
        assert role in result.stdout


def test_worker_with_bootstrap_turns_healthy_and_stops_on_sigterm(
    run_node: Callable[..., str],
) -> None:
    bootstrap_port, worker_port = free_port(), free_port()
    bootstrap = run_node("bootstrap", env={"DHT_PORT": str(bootstrap_port)})
    worker = run_node(
        "worker",
        env={"DHT_PORT": str(worker_port), "BOOTSTRAP_NODES": f"127.0.0.1:{bootstrap_port}"},
    )
    wait_healthy(bootstrap)
    wait_healthy(worker)

    # Without a SIGTERM handler Docker would wait the whole grace period, then SIGKILL (137).
    started = time.monotonic()
    docker("stop", "--time", "20", worker, timeout=30)
    elapsed = time.monotonic() - started
    exit_code = docker("inspect", "--format", "{{.State.ExitCode}}", worker).stdout.strip()
    assert exit_code == "0"
    assert elapsed < 5, f"SIGTERM took {elapsed:.1f} s"


def test_bad_setting_fails_with_a_clear_message(node_image: dict[str, object]) -> None:
    result = docker(
        "run", "--rm", "--network", "none", "--env", "DHT_PORT=99999",
        str(node_image["Ref"]), "worker", check=False,
    )
    assert result.returncode != 0
    assert "DHT_PORT" in result.stderr or "dht_port" in result.stderr
