"""The teardown's removal script (ansible/teardown.yml), run by bash against a stand-in
`docker` on PATH: containers go a batch at a time, a failed batch does not stop the
others, and a batch past its deadline (dockerd 20.10 deadlocked: moby/moby#46661) stops
the run with what to do. No Docker needed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from deploy_helpers import REPO

STAND_IN = """#!/bin/sh
echo "$*" >> "$CALLS"
case " $* " in
  *" stuck "*) sleep 30 ;;
  *" bad "*) echo "Error: No such container: bad" >&2; exit 1 ;;
esac
"""


def _remove(tmp_path: Path, *names: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    play = yaml.safe_load((REPO / "ansible" / "teardown.yml").read_text())[0]
    task = next(t for t in play["tasks"] if "_teardown_remove" in t.get("vars", {}))
    script = task["vars"]["_teardown_remove"].replace("{% raw %}", "").replace("{% endraw %}", "")
    docker = tmp_path / "docker"
    docker.write_text(STAND_IN)
    docker.chmod(0o755)
    calls = tmp_path / "calls"
    calls.write_text("")
    done = subprocess.run(
        ["bash", "-c", script, "remove", "2", "1", *names],
        env={"PATH": f"{tmp_path}:/usr/bin:/bin", "CALLS": str(calls)},
        capture_output=True, text=True, timeout=60, check=False,
    )
    return done, calls.read_text().splitlines()


def test_every_container_goes_a_batch_at_a_time(tmp_path: Path) -> None:
    done, calls = _remove(tmp_path, "a", "b", "c", "d", "e")
    assert done.returncode == 0, done.stderr
    assert calls == ["rm --force --volumes a b", "rm --force --volumes c d",
                     "rm --force --volumes e"]


def test_a_failed_batch_does_not_stop_the_others(tmp_path: Path) -> None:
    done, calls = _remove(tmp_path, "a", "bad", "c", "d")
    assert done.returncode == 1
    assert calls == ["rm --force --volumes a bad", "rm --force --volumes c d"]


def test_a_batch_past_its_deadline_stops_the_run_and_says_what_to_do(tmp_path: Path) -> None:
    done, calls = _remove(tmp_path, "a", "b", "stuck", "c", "e", "f")
    assert done.returncode == 124
    assert calls == ["rm --force --volumes a b", "rm --force --volumes stuck c"]
    assert "within 1 s" in done.stderr and "moby/moby#46661" in done.stderr
    assert "Restart dockerd" in done.stderr
