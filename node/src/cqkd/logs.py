"""Structured logs: one JSON object per line on stderr, an event name plus fields.

Callers log `log.info("event_name", extra={"fields": {...}})` or use `event()`. Fields
never carry secrets; the libraries below us log stored values, so they are kept quiet.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_QUIET_LIBRARIES = ("kademlia", "rpcudp", "asyncio")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
        return json.dumps(entry, default=str)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.ERROR)
    logging.Formatter.converter = time.gmtime


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log event `name` with `fields` (no secrets: ids, counts, addresses, durations)."""
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={"fields": fields})


class LimitedEvents:
    """`event()` at most `burst` times per event name in each `interval` seconds.

    A flood of bad datagrams once wrote 38,000 WARNING lines (6.8 MB) from one node. Lines
    past the limit are dropped (the metrics still count every datagram); the first line of
    the next interval carries `suppressed`, how many were dropped in between.
    """

    def __init__(self, logger: logging.Logger, interval: float = 10.0, burst: int = 5) -> None:
        self.logger = logger
        self.interval = interval
        self.burst = burst
        self._windows: dict[str, list[float]] = {}  # name -> [window start, lines, suppressed]

    def __call__(self, name: str, level: int = logging.INFO, **fields: Any) -> None:
        now = time.monotonic()
        window = self._windows.get(name)
        if window is None or now - window[0] >= self.interval:
            suppressed = int(window[2]) if window is not None else 0
            window = self._windows[name] = [now, 0, 0]
            if suppressed:
                fields["suppressed"] = suppressed
        if window[1] >= self.burst:
            window[2] += 1
            return
        window[1] += 1
        event(self.logger, name, level, **fields)
