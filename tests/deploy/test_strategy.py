"""The project's strategy (Mitogen, ansible/strategy_plugins/mitogen_linear.py) leaves
the kernel free to place Ansible's processes: nothing they run is pinned to fewer CPUs
than the run itself may use. Needs no Docker; it tells pinned from free only on a machine
of two CPUs or more."""

from __future__ import annotations

import os
import re

from deploy_helpers import run_playbook


def test_tasks_run_on_every_cpu_the_run_may_use(tmp_path, monkeypatch) -> None:
    # The project's strategy, whatever the caller's environment says (ANSIBLE_STRATEGY=linear
    # runs without Mitogen and would pass for nothing).
    monkeypatch.delenv("ANSIBLE_STRATEGY", raising=False)
    probe = tmp_path / "cpus.yml"
    probe.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.command: grep Cpus_allowed_list /proc/self/status\n"
        "      register: cpus\n"
        "    - ansible.builtin.debug:\n"
        "        msg: \"CPUS {{ cpus.stdout.split()[-1] }}\"\n"
    )
    run = run_playbook(str(probe))
    assert run.returncode == 0, run.explain()
    shown = re.search(r'"msg": "CPUS ([0-9,-]+)"', run.output)
    assert shown, run.explain()
    allowed: set[int] = set()
    for part in shown.group(1).split(","):
        first, _, last = part.partition("-")
        allowed.update(range(int(first), int(last or first) + 1))
    assert allowed == os.sched_getaffinity(0)
