"""Real `cqkd` processes: started from this interpreter (so from the tree under test),
each with its stderr log in a file, stopped with SIGTERM or killed at the end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

# `python -m cqkd` resolves the package as the test run does (its PYTHONPATH included).
CQKD = [sys.executable, "-m", "cqkd"]
STOP_SECONDS = 10.0


class Processes:
    """The processes one test started, by name; their logs are `<directory>/<name>.log`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        stdout: int | IO[bytes] = subprocess.DEVNULL,
    ) -> subprocess.Popen[bytes]:
        """`cqkd <args>` with `env` over this process's environment. Pass
        `stdout=subprocess.PIPE` to read what it prints (`local --serve --json` announces
        its URLs there); a pipe nobody reads can fill and stall a chatty process."""
        log = open(self.directory / f"{name}.log", "wb")  # noqa: SIM115 (lives with the process)
        process = subprocess.Popen(
            CQKD + args, env={**os.environ, **env}, stdout=stdout, stderr=log
        )
        self.running[name] = process
        return process

    def log(self, name: str) -> str:
        return (self.directory / f"{name}.log").read_text(errors="replace")

    def stop(self, name: str) -> tuple[int, float]:
        """SIGTERM, then the exit code and how long the process took to exit (seconds)."""
        process = self.running.pop(name)
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(STOP_SECONDS)
        return code, time.monotonic() - began

    def kill_all(self) -> None:
        for process in self.running.values():
            process.kill()
            process.wait()
        self.running.clear()


def keygen(path: Path) -> str:
    """`cqkd keygen --out path`: writes a new owner or admission key file; returns the
    public key it prints (hex)."""
    done = subprocess.run(
        [*CQKD, "keygen", "--out", str(path)], capture_output=True, check=True, text=True
    )
    return done.stdout.strip()
