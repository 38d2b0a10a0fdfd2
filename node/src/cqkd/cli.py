"""The `cqkd` command: bootstrap and worker processes, a local network, a health probe.

Settings come from the environment (the seed's names) and from one flag per setting
(`--k 30` overrides `K`); they are built once here and passed down.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cqkd.settings import Settings, SettingsError, load_settings

log = logging.getLogger("cqkd")

EXIT_FAILURE, EXIT_USAGE = 1, 2
PROBE_TIMEOUT_SECONDS = 2.0
# Secrets on a command line are visible to every user (ps): environment or file only.
SECRET_SETTINGS = frozenset({"api_token"})


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (each also an environment variable)")
    for name, field in Settings.model_fields.items():
        if name in SECRET_SETTINGS:
            continue
        group.add_argument(
            f"--{name.replace('_', '-')}",
            dest=f"setting_{name}",
            metavar=name.upper(),
            default=argparse.SUPPRESS,
            help=field.description,
        )


def _add_local_parser(commands: Any) -> None:
    local = commands.add_parser("local", help="run a whole network in this process")
    local.add_argument("--workers", type=int, default=15, help="number of workers (default 15)")
    local.add_argument(
        "--lookups",
        type=int,
        default=100,
        help="store/get pairs between random nodes (default 100)",
    )
    local.add_argument(
        "--kill-fraction",
        type=float,
        default=0.0,
        help="fraction of workers stopped after convergence (default 0)",
    )
    local.add_argument("--seed", type=int, default=None, help="seed of the random choices")
    local.add_argument(
        "--key-bits",
        type=int,
        default=None,
        help="run key sessions of this many bits (Alice and Bob join)",
    )
    local.add_argument("--sessions", type=int, default=1, help="key sessions (default 1)")
    local.add_argument(
        "--concurrency", type=int, default=1, help="key sessions at once (default 1)"
    )
    local.add_argument(
        "--serve",
        action="store_true",
        help="keep the network up with Alice's and Bob's APIs until Ctrl-C",
    )
    local.add_argument(
        "--api-ports",
        choices=("default", "any"),
        default="default",
        help="with --serve: 8001/8002 and 8443/8444, or any free ports",
    )
    local.add_argument(
        "--rogue-worker",
        default=None,
        metavar="BEHAVIOUR",
        # Checked in local(): naming the choices here would load the simulation into
        # every process, a worker's included.
        help="one admitted worker misbehaves (with --key-bits or --serve): a behaviour of "
        "cqkd.sim.rogue (docs/PROTOCOL.md, Threat model)",
    )
    local.add_argument("--json", action="store_true", help="print one JSON object")
    _add_settings_flags(local)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cqkd", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for role in ("bootstrap", "worker"):
        sub = commands.add_parser(role, help=f"run a {role} DHT node with /health and /metrics")
        _add_settings_flags(sub)
    _add_local_parser(commands)
    for role, ports in (
        ("alice", "UDP 6000, HTTP 8001, ETSI 8443"),
        ("bob", "UDP 6001, HTTP 8002, ETSI 8444"),
    ):
        sub = commands.add_parser(
            role, help=f"run {role.capitalize()}: DHT node, control API, ETSI 014 ({ports})"
        )
        _add_settings_flags(sub)
    keygen = commands.add_parser(
        "keygen", help="write a new owner private key file (mode 0600); print its public key"
    )
    keygen.add_argument("--out", required=True, type=Path, help="the file to create")
    probe = commands.add_parser("probe", help="exit 0 iff this node's /health answers 200")
    probe.add_argument(
        "--role",
        choices=("alice", "bob"),
        default=None,
        help="probe Alice's or Bob's control API (default port 8001 / 8002)",
    )
    _add_settings_flags(probe)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides = {
        key.removeprefix("setting_"): value
        for key, value in vars(args).items()
        if key.startswith("setting_")
    }
    return load_settings(**overrides)


# --- bootstrap and worker processes ---


async def serve(settings: Settings, role: str) -> None:
    """Run one node until SIGTERM or SIGINT; errors propagate (the process exits non-zero)."""
    from cqkd.dht.config import DhtConfig
    from cqkd.dht.node import DhtNode
    from cqkd.httpd import HttpServer, shared_port
    from cqkd.lifecycle import Lifecycle
    from cqkd.logs import event

    if role == "worker" and not settings.bootstrap_nodes:
        raise SettingsError("BOOTSTRAP_NODES is empty: a worker needs host:port of a bootstrap")
    async with Lifecycle(role) as process:
        # The CQKD protocol never uses DHT storage on workers: they refuse STORE (issue 11).
        config = DhtConfig(**settings.dht_options())
        if settings.http_port is None:  # /health and /metrics at the DHT's port number
            config = dataclasses.replace(config, port=shared_port(config.host, config.port))
        node = DhtNode(config, role, accept_store=role != "worker")
        # Workers play the protocol's roles; bootstraps only answer discovery's hello.
        if role == "worker":
            from cqkd.qkd.worker import Worker

            identity, ticket = _worker_identity(settings)
            worker = Worker(node, identity, settings, ticket)
        else:
            from cqkd.qkd.channel import serve_hello

            serve_hello(node)
        await process.start(node)
        joined = asyncio.Event()
        # Same port number as the bound UDP port (DHT_PORT=0 picks one) unless HTTP_PORT is set.
        http_port = node.address[1] if settings.http_port is None else settings.http_port
        routes = _status_routes(node, role, joined)
        http = await process.start(HttpServer(routes, settings.dht_host, http_port))
        event(log, "http_listening", port=http.port)
        if role == "worker":
            await process.start(worker)
        if await process.until_stopped(
            node.join(settings.bootstrap_nodes, required=role == "worker")
        ):
            joined.set()
            await process.stopped()


def _worker_identity(settings: Settings) -> tuple[Any, bytes]:
    """This run's worker identity and the deployment's admission ticket for it: Alice and
    Bob give roles only to workers whose ticket verifies under ADMISSION_KEYS."""
    from cqkd.qkd.crypto import Identity, admit

    identity = Identity.generate()
    if settings.admission_key_file is None:
        return identity, b""
    try:
        authority = Identity.from_file(settings.admission_key_file)
    except ValueError as exc:
        raise SettingsError(f"ADMISSION_KEY_FILE: {exc}") from None
    return identity, admit(authority, identity.public_key)


def _status_routes(node: Any, role: str, joined: asyncio.Event) -> dict[str, Any]:
    """GET /health (ok once joined with a non-empty table) and GET /metrics of `node`.
    /health also gives the join's duration and end (as the metrics do), so that a deploy's
    check of hundreds of nodes reads one small answer per node, not two."""
    from cqkd.httpd import Response, health_response, metrics_response
    from cqkd.metrics import ROUTING_TABLE_PEERS

    def health() -> Response:
        size = node.routing_table_size
        # A node whose UDP socket closed is deaf whatever its table holds.
        healthy = node.running and joined.is_set() and (size > 0 or role == "bootstrap")
        status = "isolated" if joined.is_set() else "joining"
        return health_response(
            {
                "status": "ok" if healthy else ("deaf" if not node.running else status),
                "node_id": node.node_id.hex(),
                "role": role,
                "routing_table_size": size,
                "uptime_seconds": round(time.monotonic() - node.started_at, 3),
                "join_seconds": node.join_seconds,
                "joined_at": node.joined_at,
            }
        )

    def metrics() -> Response:
        ROUTING_TABLE_PEERS.set(node.routing_table_size)
        return metrics_response()

    return {"/health": health, "/metrics": metrics}


# --- local network ---


def _summary(report: dict[str, Any]) -> str:
    r = report
    success = r["query_success_rate"]
    lines = [
        f"nodes               {r['nodes']} ({r['workers']} workers, "
        f"{r['bootstrap_nodes']} bootstrap)",
        f"discovery           {r['discovery_seconds']:.3f} s (start-up "
        f"{r['startup_seconds']:.3f} s, k={r['k']}, alpha={r['alpha']})",
        f"killed workers      {r['killed_workers']}",
        f"lookups             {r['lookups']}: p50 {r['lookup_p50_seconds'] * 1000:.1f} ms, "
        f"p99 {r['lookup_p99_seconds'] * 1000:.1f} ms",
        "query success rate  " + ("n/a" if success is None else f"{success * 100:.2f} %"),
        f"peak RSS            {r['peak_rss_bytes'] / 2**20:.1f} MiB",
    ]
    return "\n".join(lines)


def _session_summary(r: dict[str, Any]) -> str:
    if "sessions" not in r:
        return ""
    qber = "n/a" if r["qber_mean"] is None else f"{r['qber_mean']:.4f}"
    f_mean = r["reconciliation_efficiency_mean"]
    efficiency = "n/a (no errors)" if f_mean is None else f"{f_mean:.3f}"
    outcomes = ", ".join(f"{name} {count}" for name, count in sorted(r["outcomes"].items()))
    return "\n" + "\n".join(
        [
            f"key sessions        {r['sessions']} of {r['key_bits']} bits, "
            f"{r['concurrency']} at a time: {outcomes}",
            f"confirmed (equal)   {r['sessions_confirmed']}",
            *([f"rogue worker        {r['rogue_worker']}: allocated in {r['rogue_sessions']} "
               f"sessions, misbehaved in {r['rogue_misbehaved_sessions']}"]
              if "rogue_worker" in r else []),
            f"session time        p50 {r['session_p50_seconds'] * 1000:.1f} ms, "
            f"p99 {r['session_p99_seconds'] * 1000:.1f} ms",
            f"QBER mean           {qber}",
            f"Cascade efficiency  f mean {efficiency}, {r['leaked_bits_total']} bits disclosed, "
            f"{r['raw_positions_total']} raw positions",
            f"final key rate      {r['final_key_bits_per_second'] / 1000:.2f} kbit/s",
        ]
    )


def _local_usage_error(args: argparse.Namespace, settings: Settings) -> str | None:
    """What is wrong with `cqkd local`'s options, or None."""
    if args.workers < 1 or args.lookups < 0 or not 0.0 <= args.kill_fraction < 1.0:
        return "--workers >= 1, --lookups >= 0, 0 <= --kill-fraction < 1"
    if args.key_bits is not None:
        from cqkd.qkd.lengths import check_key_bits

        try:
            check_key_bits(args.key_bits, settings.max_key_bits)
        except ValueError as exc:
            return f"--key-bits: {exc}"
        if args.sessions < 1 or args.concurrency < 1:
            return "--sessions >= 1, --concurrency >= 1"
    if args.rogue_worker is not None:
        from cqkd.sim.rogue import BEHAVIOURS

        if args.rogue_worker not in BEHAVIOURS:
            return f"--rogue-worker: one of {', '.join(BEHAVIOURS)}"
    if args.rogue_worker and not (args.key_bits or args.serve):
        return "--rogue-worker needs --key-bits or --serve"
    return None


def local(args: argparse.Namespace, settings: Settings) -> int:
    from cqkd.sim.report import run_local

    usage = _local_usage_error(args, settings)
    if usage is not None:
        print(f"cqkd local: {usage}", file=sys.stderr)
        return EXIT_USAGE
    # Per-node start/join events of hundreds of nodes would drown the summary.
    for name in ("cqkd.dht", "cqkd.qkd"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
    if args.serve:
        from cqkd.sim.serve import serve_local

        asyncio.run(
            serve_local(settings, args.workers, args.api_ports == "any", args.seed, args.json,
                        args.rogue_worker)
        )
        return 0
    report = asyncio.run(
        run_local(
            settings,
            args.workers,
            args.lookups,
            args.kill_fraction,
            args.seed,
            args.key_bits,
            args.sessions,
            args.concurrency,
            args.rogue_worker,
        )
    )
    print(json.dumps(report) if args.json else _summary(report) + _session_summary(report))
    return 0


# --- keygen ---


def keygen(path: Path) -> int:
    from cqkd.qkd.crypto import Identity

    identity = Identity.generate()
    try:
        identity.write_key_file(path)
    except FileExistsError:
        print(f"cqkd keygen: {path} exists; refusing to overwrite it", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as exc:
        print(f"cqkd keygen: cannot create {path}: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILURE
    print(identity.public_key.hex())
    return 0


# --- probe ---


def probe(settings: Settings, control_api: bool = False) -> int:
    """Alice's and Bob's /health is on their control API, which binds CONTROL_HOST."""
    import http.client

    bound = settings.control_host if control_api else settings.dht_host
    host = "127.0.0.1" if bound in ("0.0.0.0", "") else bound
    port = settings.effective_http_port
    try:
        conn = http.client.HTTPConnection(host, port, timeout=PROBE_TIMEOUT_SECONDS)
        conn.request("GET", "/health")
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        print(f"cqkd probe: http://{host}:{port}/health failed: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if status != 200:
        print(f"cqkd probe: http://{host}:{port}/health answered {status}", file=sys.stderr)
        return EXIT_FAILURE
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "keygen":
        return keygen(args.out)
    try:
        settings = settings_from_args(args)
    except SettingsError as exc:
        print(f"cqkd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "probe":
        if args.role is not None:
            from cqkd.ports import role_settings

            settings = role_settings(settings, args.role)
        return probe(settings, control_api=args.role is not None)
    from cqkd.logs import event, setup_logging

    setup_logging(settings.log_level.value)
    try:
        if args.command == "local":
            return local(args, settings)
        if args.command in ("alice", "bob"):
            from cqkd.endpoint import run_endpoint

            asyncio.run(run_endpoint(settings, args.command))
        else:
            asyncio.run(serve(settings, args.command))
    except SettingsError as exc:
        print(f"cqkd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        event(log, "fatal", logging.ERROR, error=f"{type(exc).__name__}: {exc}")
        return EXIT_FAILURE
    return 0
