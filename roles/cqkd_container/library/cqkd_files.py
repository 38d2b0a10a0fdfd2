#!/usr/bin/python
"""Ansible module: make a set of files and directories current in one call, each file
validated before it replaces the old one, and read back the few files the play needs.

Prometheus's directories, targets, rules, thresholds and configuration were five tasks
(seven module calls), and Alice's and Bob's directories, token, keys and certificates
five more (a find, directories, copies, a slurp of their public keys); every task costs
time on a rerun (0.2-0.4 s each on a host loaded by hundreds of running nodes), and on a
rerun none of them changes anything. This module compares each file's content, owner and
mode with what is on disk and writes only what differs (content through a temporary file
beside the target, checked by the file's `validate` command, then renamed). It returns
every file's SHA-1 checksum, which is what ansible.builtin.copy returns too, so the
containers' spec labels stay what they were.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import subprocess
import tempfile
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: cqkd_files
short_description: Write the files and directories that differ, each file validated first
description:
  - Directories are made when missing (with their parents) and given their mode and owner.
    Files are compared by content, mode and owner; a file whose content differs is written
    to a temporary file in its directory, validated with its command (C(%s) stands for the
    temporary file) and renamed over the old one, in the order given, so a later file's
    validation sees the earlier ones in place. The content is never logged.
options:
  directories:
    description: >-
      Directories, each a dict with path, mode (octal string) and owner (uid, also the
      group; optional).
    type: list
    elements: dict
    default: []
  files:
    description: >-
      Files, each a dict with path, content, mode (octal string), owner (uid, also the
      group; optional) and validate (a command with %s; optional).
    type: list
    elements: dict
    default: []
  read:
    description: >-
      Files to read back after the writes (public, small files: their text is returned).
    type: list
    elements: str
    default: []
  exists:
    description: Paths whose existence to report (their content is not read).
    type: list
    elements: str
    default: []
"""

RETURN = r"""
changed_files:
  description: Paths of the files and directories made, written, or whose owner or mode was set.
  type: list
  elements: str
  returned: always
checksums:
  description: SHA-1 of each file's content, in the order of I(files).
  type: list
  elements: str
  returned: always
contents:
  description: Text of each file of I(read), or null when it is missing.
  type: dict
  returned: always
existing:
  description: For each path of I(exists), whether it exists.
  type: dict
  returned: always
"""


def checksum(content: str) -> str:
    """What ansible.builtin.copy returns as `checksum`: the SHA-1 of the file's bytes."""
    return hashlib.sha1(content.encode()).hexdigest()


def differs(path: str, content: str) -> bool:
    """Whether `path` is missing or holds other bytes than `content`."""
    try:
        with open(path, "rb") as current:
            return current.read() != content.encode()
    except FileNotFoundError:
        return True


def attributes_differ(path: str, mode: int, owner: int | None) -> bool:
    """Whether `path` has another mode, or (when `owner` is given) another owner or group."""
    status = os.stat(path)
    wrong_owner = owner is not None and (status.st_uid, status.st_gid) != (owner, owner)
    return wrong_owner or status.st_mode & 0o7777 != mode


def set_attributes(path: str, mode: int, owner: int | None) -> None:
    if owner is not None:
        os.chown(path, owner, owner)
    os.chmod(path, mode)


def write(path: str, content: str, mode: int, owner: int | None, validate: str | None) -> None:
    """Write `content` to `path` through a temporary file in the same directory, checked by
    `validate` (with %s) first. Raises ValueError with the command's output when the check
    fails (the old file stays), OSError when the file cannot be written."""
    fd, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".cqkd-")
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            if owner is not None:
                os.fchown(out.fileno(), owner, owner)
            out.write(content.encode())
        if validate:
            command = [temporary if word == "%s" else word for word in shlex.split(validate)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                output = (done.stdout + done.stderr).replace(temporary, path).strip()
                raise ValueError(f"{validate.replace('%s', path)} failed: {output}")
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def apply(
    directories: list[dict[str, Any]], files: list[dict[str, Any]], check: bool = False
) -> list[str]:
    """Make `directories` and `files` (as the module's options) current, in order; the
    paths changed (or, with `check`, that would be). Raises OSError or ValueError."""
    changed: list[str] = []
    for directory in directories:
        path, mode, owner = directory["path"], int(directory["mode"], 8), directory.get("owner")
        if not os.path.isdir(path):
            changed.append(path)
            if check:
                continue
            os.makedirs(path, mode)
            set_attributes(path, mode, owner)
        elif attributes_differ(path, mode, owner):
            changed.append(path)
            if not check:
                set_attributes(path, mode, owner)
    for wanted in files:
        path, mode, owner = wanted["path"], int(wanted["mode"], 8), wanted.get("owner")
        if differs(path, wanted["content"]):
            changed.append(path)
            if not check:
                write(path, wanted["content"], mode, owner, wanted.get("validate"))
        elif attributes_differ(path, mode, owner):
            changed.append(path)
            if not check:
                set_attributes(path, mode, owner)
    return changed


def read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as found:
            return found.read()
    except FileNotFoundError:
        return None


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "directories": {
                "type": "list", "elements": "dict", "default": [],
                "options": {
                    "path": {"type": "str", "required": True},
                    "mode": {"type": "str", "required": True},
                    "owner": {"type": "int"},
                },
            },
            "files": {
                "type": "list", "elements": "dict", "default": [],
                "options": {
                    "path": {"type": "str", "required": True},
                    "content": {"type": "str", "required": True, "no_log": True},
                    "mode": {"type": "str", "required": True},
                    "owner": {"type": "int"},
                    "validate": {"type": "str"},
                },
            },
            "read": {"type": "list", "elements": "str", "default": []},
            "exists": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    params = module.params
    try:
        changed = apply(params["directories"], params["files"], check=module.check_mode)
    except (OSError, ValueError) as exc:
        module.fail_json(msg=f"cannot make the files current: {exc}")
    module.exit_json(
        changed=bool(changed),
        changed_files=changed,
        checksums=[checksum(f["content"]) for f in params["files"]],
        contents={path: read_text(path) for path in params["read"]},
        existing={path: os.path.exists(path) for path in params["exists"]},
    )


if __name__ == "__main__":
    main()
