"""Helpers of the image tests: the Docker CLI, the package version, free ports."""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROJECT_LABEL = "io.cqkd.project=cqkd"


def docker(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, timeout=timeout
    )


def package_version() -> str:
    text = (REPO / "node" / "pyproject.toml").read_text()
    match = re.search(r'(?m)^version = "([^"]+)"', text)
    assert match, "node/pyproject.toml has no version"
    return match.group(1)


def free_port() -> int:
    """A port free for both UDP (DHT) and TCP (HTTP): a node uses the same number for both."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
