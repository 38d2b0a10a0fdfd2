"""The scale table has one source, node/src/cqkd/dht/params.py: the README shows its output
and the preflight reads it (no Docker needed)."""

from __future__ import annotations

import json
import subprocess
import sys

from cqkd.dht.params import SCALES, scale_profile, scales_markdown
from deploy_helpers import REPO, run_playbook


def test_readme_scale_table_is_the_params_table() -> None:
    readme = (REPO / "README.md").read_text()
    assert scales_markdown() in readme, (
        "README.md's scale table differs from node/src/cqkd/dht/params.py; paste the output "
        "of `python3 node/src/cqkd/dht/params.py markdown`"
    )


def test_params_runs_as_a_script_without_the_package() -> None:
    """Ansible's filter loads params.py by path: it must need only the standard library."""
    done = subprocess.run(
        [sys.executable, "-I", str(REPO / "node/src/cqkd/dht/params.py"), "profile", "large"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout) == scale_profile("large")


def test_preflight_reports_the_table_for_every_scale() -> None:
    for name, _, _ in SCALES:
        run = run_playbook("ansible/preflight.yml", "-e", f"scale={name}")
        profile = scale_profile(name)
        assert run.returncode == 0, run.explain()
        assert (
            f"{profile['bootstrap_count']} bootstrap nodes on localhost, "
            f"{profile['workers']} workers" in run.output
        ), run.explain()
        # The values are where the nodes start, not pinned: the preflight says so.
        assert (
            f"the nodes start from alpha {profile['alpha']}, k {profile['k']}, query timeout "
            f"{profile['query_timeout']} s and adapt" in run.output
        ), run.explain()
