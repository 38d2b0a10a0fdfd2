"""Size and build time of the node image, and memory of an idle worker container.

    .venv/bin/python bench/image.py [--base-image cqkd-base:bookworm] [--skip-base]

Measures, with the real Docker engine:
  base     debootstrap + import of a scratch copy of the Debian base (seconds, bytes)
  cold     wheelhouse + `docker build --no-cache --network none` of the node image
  warm     the same build again, every layer from the cache
  sizes    the base image and the node image (`docker image inspect`)
  memory   an idle worker next to a bootstrap, 20 s after it turned healthy (`docker stats`)
Prints one JSON object. Builds go to throwaway tags, which are removed. Nothing is asserted.
"""

import argparse
import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LABEL = "io.cqkd.project=cqkd"


def run(*args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=True, env=env).stdout


def timed(*args: str) -> float:
    started = time.monotonic()
    run(*args)
    return round(time.monotonic() - started, 1)


def image_bytes(ref: str) -> int:
    return int(run("docker", "image", "inspect", "--format", "{{.Size}}", ref))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        return int(udp.getsockname()[1])


def python_version(base: str) -> str:
    code = 'import sys; print("%d.%d" % sys.version_info[:2])'
    return run("docker", "run", "--rm", "--network", "none", base, "python3", "-c", code).strip()


def build_node(base: str, tag: str) -> dict[str, float]:
    context = Path(tempfile.mkdtemp(prefix="cqkd-bench-image-"))
    try:
        for name in ("Dockerfile", ".dockerignore"):
            shutil.copy(REPO / name, context / name)
        wheelhouse = timed(str(REPO / "images" / "build-wheelhouse.sh"),
                           str(context / "build" / "wheelhouse"), python_version(base))
        build = ("docker", "build", "--network", "none", "--build-arg", f"BASE_IMAGE={base}",
                 "--tag", tag, str(context))
        cold = timed(*build[:2], "--no-cache", *build[2:])
        warm = timed(*build)
        return {"wheelhouse_s": wheelhouse, "cold_build_s": cold, "warm_build_s": warm}
    finally:
        shutil.rmtree(context)


def stats_mib(name: str) -> float:
    usage = run("docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", name)
    value, unit = re.match(r"([\d.]+)\s*(\w+)", usage).groups()  # type: ignore[union-attr]
    return round(float(value) * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[unit], 1)


def idle_worker_mib(image: str) -> dict[str, float]:
    bootstrap_port, worker_port = free_port(), free_port()
    suffix = uuid.uuid4().hex[:8]
    names = [f"cqkd-bench-bootstrap-{suffix}", f"cqkd-bench-worker-{suffix}"]
    common = ("docker", "run", "--detach", "--network", "host", "--label", LABEL,
              "--memory", "128m", "--read-only", "--cap-drop", "ALL")
    try:
        run(*common, "--name", names[0], "--env", f"DHT_PORT={bootstrap_port}", image, "bootstrap")
        run(*common, "--name", names[1], "--env", f"DHT_PORT={worker_port}",
            "--env", f"BOOTSTRAP_NODES=127.0.0.1:{bootstrap_port}", image, "worker")
        deadline = time.monotonic() + 180
        while run("docker", "inspect", "--format", "{{.State.Health.Status}}",
                  names[1]).strip() != "healthy":
            if time.monotonic() > deadline:
                logs = subprocess.run(["docker", "logs", "--tail", "20", names[1]],
                                      capture_output=True, text=True, check=False)
                raise SystemExit(f"the worker is not healthy after 180 s:\n{logs.stderr}")
            time.sleep(0.5)
        time.sleep(20)
        return {"idle_worker_mib": stats_mib(names[1]), "idle_bootstrap_mib": stats_mib(names[0])}
    finally:
        subprocess.run(["docker", "rm", "--force", *names], capture_output=True, check=False)


# Issue 15 goal 6: a worker container at most 20 MiB; about 25 MiB when it was filed.
GOAL_CONTAINER_MIB, PEER_CONTAINER_MIB = 20, 25


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-image", default="cqkd-base:bookworm")
    parser.add_argument("--skip-base", action="store_true", help="do not time a base build")
    args = parser.parse_args()
    suffix = uuid.uuid4().hex[:8]
    result: dict[str, object] = {"base_image": args.base_image,
                                 "base_image_bytes": image_bytes(args.base_image)}
    if not args.skip_base:
        scratch_base = f"cqkd-base:bench-{suffix}"
        result["base_build_s"] = timed(str(REPO / "images" / "build-base.sh"), scratch_base)
        run("docker", "image", "rm", scratch_base)
    node_tag = f"cqkd-node:bench-{suffix}"
    try:
        result.update(build_node(args.base_image, node_tag))
        result["node_image_bytes"] = image_bytes(node_tag)
        result.update(idle_worker_mib(node_tag))
    finally:
        subprocess.run(["docker", "image", "rm", node_tag], capture_output=True, check=False)
    print(json.dumps(result, indent=2))
    worker = result["idle_worker_mib"]
    assert isinstance(worker, float)
    print(f"idle worker container {worker:.1f} MiB: {worker / GOAL_CONTAINER_MIB:.2f} of issue "
          f"15's goal ({GOAL_CONTAINER_MIB} MiB), {worker / PEER_CONTAINER_MIB:.2f} of the "
          f"{PEER_CONTAINER_MIB} MiB before it")


if __name__ == "__main__":
    main()
