"""What every ``--backend ray`` path shares: importing Ray (an optional extra), connecting to a cluster,
and carrying decisionlab's settings to the processes that do the work.

Nothing else in the project imports Ray; without it installed, asking for ``--backend ray`` is a
:class:`DecisionlabError` that says how to install it. A remote task does not inherit the driver's
environment on a cluster (and on one machine Ray's workers keep the environment they started with),
so the settings that say where data lives and how to compute (:data:`FORWARDED_ENV`) travel with
each task and are applied around its work (:func:`applied_env`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

from decisionlab.core.errors import DecisionlabError

BACKENDS = ("local", "ray")
INSTALL_HINT = "pip install 'decisionlab[ray]' (or pip install 'ray[tune,serve]')"
# Where the registry, runs and builds live, which database indexes them, and how to compute.
FORWARDED_ENV = (
    "DECISIONLAB_HOME", "DECISIONLAB_CACHE", "DECISIONLAB_DB_URL", "DECISIONLAB_DEVICE", "DECISIONLAB_NUM_THREADS",
    "DECISIONLAB_MAX_EVAL_BYTES",
)


def check_backend(backend: str) -> str:
    """``backend`` if it is one of :data:`BACKENDS`, else a :class:`DecisionlabError` naming ``--backend``."""
    if backend not in BACKENDS:
        raise DecisionlabError(f"--backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    return backend


def import_ray() -> Any:
    """The ``ray`` module, or a :class:`DecisionlabError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise DecisionlabError(f"--backend ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def connect(address: str | None = None) -> Any:
    """Ray, connected: the running session if this process has one, else ``address`` (a cluster's
    ``host:port`` or ``ray://host:10001``; ``auto`` finds one started on this machine with ``ray
    start``), else a new local one on this machine. Returns the ``ray`` module."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    try:
        ray.init(address=address or None, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    except ConnectionError as err:
        raise DecisionlabError(f"--address: no Ray cluster answers at {address!r} ({err})") from None
    return ray


def forwarded_env() -> dict[str, str]:
    """The driver's decisionlab settings (:data:`FORWARDED_ENV`) that are set."""
    return {name: os.environ[name] for name in FORWARDED_ENV if os.environ.get(name)}


@contextlib.contextmanager
def applied_env(env: Mapping[str, str]) -> Iterator[None]:
    """Run a block with ``env`` in ``os.environ`` (and every other forwarded name unset), then restore it:
    a Ray worker process runs many tasks, of drivers with different settings."""
    saved = {name: os.environ.get(name) for name in FORWARDED_ENV}
    try:
        for name in FORWARDED_ENV:
            os.environ.pop(name, None)
        os.environ.update(env)
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def cluster_cpus(ray: Any) -> int:
    """CPUs the connected cluster has in all (at least 1)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))
