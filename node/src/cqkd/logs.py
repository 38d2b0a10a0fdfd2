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
