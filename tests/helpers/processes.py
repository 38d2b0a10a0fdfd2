"""Real `cqkd` processes: started from this interpreter (so from the tree under test),
each with its stderr log in a file, stopped with SIGTERM or killed at the end."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from helpers.ports import LOOPBACK

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


class NodeProcess:
    """`cqkd <role>` (DHT_PORT 0 unless `env` says otherwise) whose stderr, one JSON log
    event a line, is read as it comes; ready once it logged `http_listening`, whose port
    is `port`. `python_flags` go to the interpreter (`-X importtime` adds lines that are
    not JSON: they are kept in `lines` like the others, and never parsed)."""

    def __init__(
        self,
        role: str,
        env: dict[str, str],
        python_flags: tuple[str, ...] = (),
        start_seconds: float = 15.0,
    ) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, *python_flags, "-m", "cqkd", role],
            env={**os.environ, "DHT_PORT": "0", **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        try:
            self.port = int(self.wait_for("http_listening", start_seconds)["port"])
        except BaseException:
            self.proc.kill()
            self.proc.wait()
            raise

    def wait_for(self, event: str, timeout: float = 15.0) -> dict[str, Any]:
        """The next log entry of `event`; AssertionError with the stderr read so far if
        none comes within `timeout` seconds or the process ends first."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if line.startswith("{") and (entry := json.loads(line))["event"] == event:
                return entry  # type: ignore[no-any-return]
        raise AssertionError(f"no {event} event; stderr so far: {''.join(self.lines)[-4000:]}")

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._queue.put(line)
        self._queue.put(None)

    def url(self, path: str) -> str:
        return f"http://{LOOPBACK}:{self.port}{path}"

    def stop(self) -> float:
        """SIGTERM; the node's own shutdown time in seconds (signal to `stopped`, as it
        logs it). Waiting for the exit is bounded loosely (10 s): a loaded machine may be
        slow to schedule the process at all."""
        self.proc.send_signal(signal.SIGTERM)
        stopped = self.wait_for("stopped", timeout=10)
        self.proc.wait(timeout=10)
        return float(stopped["shutdown_seconds"])


@contextmanager
def node(
    role: str, env: dict[str, str] | None = None, *python_flags: str, start_seconds: float = 15.0
) -> Iterator[NodeProcess]:
    """A `NodeProcess`, killed on the way out if it still runs."""
    process = NodeProcess(role, env or {}, python_flags, start_seconds)
    try:
        yield process
    finally:
        if process.proc.poll() is None:
            process.proc.kill()
        process.proc.wait()
