"""Figures of several Docker hosts (three Docker-in-Docker hosts, scale=small).

    .venv/bin/python bench/multihost.py [--skip-molecule]

Measures, with the real Docker engine, Molecule and ansible-playbook:
  molecule  wall time of `molecule test -s multihost` (create, converge, idempotence,
            verify, destroy), and of each of its steps
  faults    the fault test (tests/multihost): time to heal after a worker crash, a 30 s
            pause of a host and a host leaving the network for 20 s; the probes' lookup
            success before the faults and in the minute after the host rejoined, and the
            time until a 20 s window of lookups succeeds at 99 % or more
Prints one JSON object and writes it to bench/results/multihost-<time>.json. Nothing is
asserted here (the fault test itself asserts healing and equal keys).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STEP = re.compile(r"multihost ➜ (\w+): .*?Executed: (\w+)")
COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # Molecule colours its output whatever NO_COLOR says


def molecule_test() -> dict[str, object]:
    started = time.monotonic()
    steps: dict[str, float] = {}
    last = started
    with subprocess.Popen(
        [str(BIN / "molecule"), "test", "--scenario-name", "multihost"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "NO_COLOR": "1"},
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            match = STEP.search(COLOUR.sub("", line))
            if match:
                now = time.monotonic()
                steps[match.group(1)] = round(now - last, 1)
                last = now
    return {"seconds": round(time.monotonic() - started, 1), "passed": process.returncode == 0,
            "steps": steps}


def fault_test() -> dict[str, object]:
    with tempfile.TemporaryDirectory() as results:
        started = time.monotonic()
        passed = subprocess.run(
            [str(BIN / "pytest"), "-q", "-p", "no:cacheprovider", "tests/multihost"],
            cwd=REPO, env={**os.environ, "CQKD_BENCH_RESULTS": results},
            stdout=subprocess.DEVNULL, check=False,
        ).returncode == 0
        figures_file = Path(results) / "multihost-faults.json"
        figures = json.loads(figures_file.read_text()) if figures_file.exists() else {}
    return {"seconds": round(time.monotonic() - started, 1), "passed": passed, **figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-molecule", action="store_true",
                        help="only the fault test, not `molecule test -s multihost`")
    args = parser.parse_args()
    report: dict[str, object] = {"load_average_at_start": os.getloadavg()[0]}
    if not args.skip_molecule:
        report["molecule_test_multihost"] = molecule_test()
    report["faults"] = fault_test()
    out = REPO / "bench" / "results" / time.strftime("multihost-%Y%m%dT%H%M%SZ.json", time.gmtime())
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
