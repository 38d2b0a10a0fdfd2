"""Fixtures for the image tests: the node image `make setup` built, and containers of it
that are removed whatever the outcome."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator

import pytest
from docker_helpers import PROJECT_LABEL, docker, package_version


@pytest.fixture(scope="session")
def node_image() -> dict[str, object]:
    """`docker image inspect` of the node image; `make setup` builds it."""
    ref = f"cqkd-node:{package_version()}"
    result = docker("image", "inspect", ref, check=False)
    if result.returncode != 0:
        pytest.fail(f"image {ref} is missing: run `make setup` first ({result.stderr.strip()})")
    image: dict[str, object] = json.loads(result.stdout)[0]
    image["Ref"] = ref
    return image


@pytest.fixture
def run_node(node_image: dict[str, object]) -> Iterator[Callable[..., str]]:
    """Start a labelled, host-networked, least-privileged node container; return its name."""
    names: list[str] = []

    def run(role: str, *, env: dict[str, str]) -> str:
        name = f"cqkd-test-{role}-{uuid.uuid4().hex[:8]}"
        flags = [f"--env={key}={value}" for key, value in env.items()]
        docker(
            "run", "--detach", "--name", name, "--label", PROJECT_LABEL, "--network", "host",
            "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            *flags, str(node_image["Ref"]), role,
        )
        names.append(name)
        return name

    yield run
    if names:
        docker("rm", "--force", *names, check=False)
