"""Running the API: ``decisionlab serve --workers N`` (and ``make run``).

Several workers share one listening socket that this module binds itself, with ``IPPROTO_TCP`` as
its protocol: asyncio turns Nagle's algorithm off (``TCP_NODELAY``) only on sockets whose protocol
says TCP, and a socket bound by uvicorn for ``--workers`` says 0, so every keep-alive response
waited ~40 ms for the client's delayed ACK. Metrics of all workers are collected through
prometheus-client's multiprocess directory; logs are one JSON object per line.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import socket
import tempfile
import time
from typing import Any

from decisionlab.core.errors import DecisionlabError
from decisionlab.core.telemetry import MULTIPROC_ENV

APP = "decisionlab.apps.api:create_app"
WORKERS_ENV = "DECISIONLAB_API_WORKERS"
RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message and the record's ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in RESERVED and not k.startswith("_")})
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def log_config(level: str = "info") -> dict[str, Any]:
    """``logging.config`` dict: JSON lines on stderr for uvicorn's and decisionlab's loggers."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": handler},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},  # ours logs requests
            "decisionlab": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
        },
    }


def tcp_socket(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket (protocol ``IPPROTO_TCP``, see the module docstring)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise DecisionlabError(f"port {port} on {host} is already in use (another server?): stop it or "
                                   "choose another port with --port") from None
        raise DecisionlabError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    sock.set_inheritable(True)
    return sock


def default_workers() -> int:
    raw = os.environ.get(WORKERS_ENV, "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else 1


def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1, log_level: str = "info") -> None:
    """Serve the API until interrupted, in ``workers`` processes sharing one socket."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(APP, factory=True, host=host, port=port, workers=workers, access_log=False,
                            log_config=log_config(log_level), log_level=log_level, timeout_keep_alive=30)
    sock = tcp_socket(host, port)  # bound here: a busy port is a one-line error, not a log record
    if workers == 1:
        try:
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            sock.close()
        return
    metrics_dir = tempfile.mkdtemp(prefix="decisionlab-metrics-")
    os.environ[MULTIPROC_ENV] = metrics_dir  # before the workers start: they import prometheus-client fresh
    logging.getLogger("uvicorn.error").info("serving on http://%s:%d with %d workers", host, port, workers)
    try:
        Multiprocess(config, sockets=[sock]).run()
    finally:
        sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
