"""The files module of the roles (roles/cqkd_container/library/cqkd_files.py): one call makes
a set of directories and files current, validating each file before it replaces the old,
and tells what it changed; the Prometheus and the Alice and Bob plays rely on a rerun
changing nothing. Real files in a temporary directory; no Docker needed."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from types import ModuleType

import pytest
from deploy_helpers import REPO
from helpers.modules import load


def _module() -> ModuleType:
    return load(REPO / "roles" / "cqkd_container" / "library" / "cqkd_files.py", "cqkd_files")


def test_files_are_written_once_then_left_alone(tmp_path: Path) -> None:
    apply = _module().apply
    owner = os.getuid()
    directories = [{"path": str(tmp_path / "etc"), "mode": "0755", "owner": None},
                   {"path": str(tmp_path / "etc" / "alice"), "mode": "0700", "owner": owner}]
    files = [{"path": str(tmp_path / "etc" / "alice" / "api-token"), "content": "t1\n",
              "mode": "0400", "owner": owner},
             {"path": str(tmp_path / "etc" / "targets.yml"), "content": "- a\n", "mode": "0644"}]

    made = [d["path"] for d in directories] + [f["path"] for f in files]
    assert apply(directories, files) == made
    assert (tmp_path / "etc" / "alice" / "api-token").read_text() == "t1\n"
    assert stat.S_IMODE((tmp_path / "etc" / "alice").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "etc" / "alice" / "api-token").stat().st_mode) == 0o400
    assert apply(directories, files) == []

    # A dry run tells and writes nothing; then only the file that differs is written.
    changed = [{**files[0], "content": "t2\n"}, files[1]]
    assert apply(directories, changed, check=True) == [files[0]["path"]]
    assert (tmp_path / "etc" / "alice" / "api-token").read_text() == "t1\n"
    assert apply(directories, changed) == [files[0]["path"]]
    assert (tmp_path / "etc" / "alice" / "api-token").read_text() == "t2\n"

    # A mode set by hand is put back; no temporary file is left behind.
    (tmp_path / "etc" / "targets.yml").chmod(0o600)
    assert apply(directories, changed) == [files[1]["path"]]
    assert stat.S_IMODE((tmp_path / "etc" / "targets.yml").stat().st_mode) == 0o644
    assert sorted(p.name for p in (tmp_path / "etc").iterdir()) == ["alice", "targets.yml"]


def test_a_file_that_fails_validation_leaves_the_old_one(tmp_path: Path) -> None:
    apply = _module().apply
    path = tmp_path / "prometheus.yml"
    good = {"path": str(path), "content": "ok\n", "mode": "0644",
            "validate": "grep -q ok %s"}
    assert apply([], [good]) == [str(path)]
    with pytest.raises(ValueError, match=f"grep -q ok {path} failed"):
        apply([], [{**good, "content": "bad\n"}])
    assert path.read_text() == "ok\n"
    assert [p.name for p in tmp_path.iterdir()] == ["prometheus.yml"]


def test_the_checksum_is_the_one_copy_returns() -> None:
    # ansible.builtin.copy's `checksum`, the SHA-1 of the bytes: the containers' spec labels
    # stay what they were.
    assert _module().checksum("x\n") == "6fcf9dfbd479ed82697fee719b9f8c610a11ff2a"


def test_the_workers_admission_key_is_written_once_then_left_alone(tmp_path: Path) -> None:
    # dht_nodes' call: a 0700 directory made with its parents, a 0400 key file, one owner.
    apply = _module().apply
    path = tmp_path / "etc" / "workers" / "admission.key"
    owner = os.getuid()

    def ensure(content: str, check: bool = False) -> bool:
        directories = [{"path": str(path.parent), "mode": "0700", "owner": owner}]
        files = [{"path": str(path), "content": content, "mode": "0400", "owner": owner}]
        return bool(apply(directories, files, check=check))

    assert ensure("k1\n") is True
    assert path.read_text() == "k1\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o400
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert ensure("k1\n") is False

    # A dry run reports the change and writes nothing.
    assert ensure("k2\n", check=True) is True
    assert path.read_text() == "k1\n"
    assert ensure("k2\n") is True
    assert path.read_text() == "k2\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o400

    # A mode set by hand is put back; no temporary file is left behind.
    path.chmod(0o644)
    path.parent.chmod(0o755)
    assert ensure("k2\n") is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o400
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["admission.key"]
