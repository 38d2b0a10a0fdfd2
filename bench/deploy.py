"""Deploy time by scale, idempotent rerun time and memory per worker container.

    .venv/bin/python bench/deploy.py [--scales small medium large] [--keep]

For each scale, with the real Docker engine and the local inventory:
  deploy    `ansible-playbook deploy.yml -e scale=S -e clean=true` from a built image: the
            previous deployment is removed first, so every container starts fresh
  rerun     the same command without clean (idempotent: changed=0 expected)
  converged seconds between the last worker being up and Alice seeing every worker, and
            the workers' join time p50/p99, as the nodes measured them (the verify play's
            discovery line)
  memory    `docker stats` of every worker container, 20 s after the rerun (MiB)
Prints one JSON object and writes it to bench/results/deploy.json. The last deployment is
torn down unless --keep. Nothing is asserted.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))
SETTLE_SECONDS = 20
_RECAP = re.compile(r"^\S+\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
_CONVERGED = re.compile(r"Alice saw every worker (-?[0-9.]+) s after the last worker was up")
_JOINED = re.compile(r"workers joined in p50 ([0-9.]+) s, p99 ([0-9.]+) s")
_KEY = re.compile(r"key: 256-bit key confirmed in ([0-9.]+) s")


def playbook(*args: str) -> dict:
    began = time.monotonic()
    done = subprocess.run(
        [PLAYBOOK, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
    )
    seconds = round(time.monotonic() - began, 1)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed after {seconds} s:\n{done.stdout[-4000:]}")
    recap = [tuple(map(int, row)) for row in _RECAP.findall(done.stdout)]
    converged = _CONVERGED.search(done.stdout)
    joined = _JOINED.search(done.stdout)
    key = _KEY.search(done.stdout)
    return {
        "seconds": seconds,
        "changed": sum(row[0] for row in recap),
        "converged_after_last_worker_s": float(converged.group(1)) if converged else None,
        "worker_join_p50_s": float(joined.group(1)) if joined else None,
        "worker_join_p99_s": float(joined.group(2)) if joined else None,
        "key_256_seconds": float(key.group(1)) if key else None,
    }


def worker_memory_mib() -> dict:
    names = subprocess.run(
        ["docker", "ps", "--filter", "label=io.cqkd.role=worker", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    stats = subprocess.run(
        ["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", *names],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    used = [float(line.split("MiB")[0]) for line in stats if "MiB" in line.split("/")[0]]
    return (
        {
            "workers": len(names),
            "median": round(statistics.median(used), 1),
            "max": round(max(used), 1),
        }
        if used
        else {"workers": len(names)}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", nargs="+", default=["small", "medium", "large"])
    parser.add_argument("--keep", action="store_true", help="leave the last deployment running")
    args = parser.parse_args()
    results = {}
    for scale in args.scales:
        deploy = playbook("deploy.yml", "-e", f"scale={scale}", "-e", "clean=true")
        rerun = playbook("deploy.yml", "-e", f"scale={scale}")
        time.sleep(SETTLE_SECONDS)
        results[scale] = {
            "deploy": deploy,
            "rerun": rerun,
            "worker_memory_mib": worker_memory_mib(),
        }
        print(json.dumps({scale: results[scale]}), file=sys.stderr)
    if not args.keep:
        playbook("ansible/teardown.yml")
    out = REPO / "bench" / "results" / "deploy.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
