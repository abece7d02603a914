"""Serving work off the event loop, bounded, so that no request can stall a server.

Every serving request knows its cost before it runs (its setting's ``ServingSpec.cost`` of its states:
drivers × orders of a dispatch window, states × nodes of a network...; one unit is about one small
state's work). :func:`decisionlab.core.serving.serve_request` runs a request of at most
``inline_cost`` units on the event loop when its policy is in memory (microseconds, no thread hop);
everything else goes to this process's :class:`WorkPool`: ``threads`` worker threads and at most
``queue`` more requests waiting. When those are full the request is refused at once with a 503 and
``Retry-After`` (load is shed, not queued without limit), and ``/ready`` says the server is saturated.
A request whose cost is over ``max_cost`` is refused with a 413 naming the limit. ``/health`` is
answered on the loop, which heavy work never holds.

Settings (environment, read once per process): ``DECISIONLAB_SERVE_THREADS`` (default 1: torch
runs one thread and the GIL serializes the rest, so a second thread only slows the event loop),
``DECISIONLAB_SERVE_QUEUE`` (default 64), ``DECISIONLAB_MAX_REQUEST_COST`` (default 2,000,000 units,
about 20 s of one core: the largest ride-hailing window the models admit, 20,000 drivers × 10,000
orders, is about 1.03M), ``DECISIONLAB_INLINE_COST`` (default 64).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from decisionlab.core.errors import DecisionlabError

T = TypeVar("T")
THREADS_ENV, QUEUE_ENV = "DECISIONLAB_SERVE_THREADS", "DECISIONLAB_SERVE_QUEUE"
MAX_COST_ENV, INLINE_COST_ENV = "DECISIONLAB_MAX_REQUEST_COST", "DECISIONLAB_INLINE_COST"


class OverloadedError(DecisionlabError):
    """Every worker is busy and the wait queue is full: 503 with ``Retry-After`` (try again shortly)."""

    http_status = 503

    def __init__(self, message: str, retry_after: int = 1) -> None:
        self.retry_after = int(retry_after)
        super().__init__(message)


class TooMuchWorkError(DecisionlabError):
    """A request whose work is over the per-request limit: 413, naming the limit."""

    http_status = 413


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise DecisionlabError(f"{name} must be a number, got {raw!r}") from None
    if not value > 0:
        raise DecisionlabError(f"{name} must be positive, got {raw!r}")
    return value


@dataclass
class WorkPool:
    """A bounded pool of serving threads with admission control (module docstring)."""

    threads: int = 1
    queue: int = 64
    max_cost: float = 2_000_000.0
    inline_cost: float = 64.0
    admitted: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _executor: ThreadPoolExecutor | None = field(default=None, repr=False)

    @classmethod
    def from_environment(cls) -> WorkPool:
        return cls(threads=int(_number(THREADS_ENV, 1)), queue=int(_number(QUEUE_ENV, 64)),
                   max_cost=_number(MAX_COST_ENV, 2_000_000.0), inline_cost=_number(INLINE_COST_ENV, 64.0))

    @property
    def capacity(self) -> int:
        return self.threads + self.queue

    def check_cost(self, cost: float, what: str = "the request") -> None:
        if cost > self.max_cost:
            raise TooMuchWorkError(
                f"{what} is {cost:,.0f} units of work, over the limit of {self.max_cost:,.0f} per request "
                f"({MAX_COST_ENV}); split it into smaller requests")

    async def run(self, work: Callable[[], T]) -> T:
        """``work()`` in a worker thread, or an :class:`OverloadedError` when the pool is full."""
        with self._lock:
            if self.admitted >= self.capacity:
                raise OverloadedError(f"the server is busy ({self.admitted} requests in its {self.threads} serving "
                                      f"threads and queue of {self.queue}); try again in a second")
            self.admitted += 1
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="decisionlab-serve")
            executor = self._executor
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, work)
        finally:
            with self._lock:
                self.admitted -= 1

    def status(self) -> dict[str, Any]:
        """What ``/ready`` reports: requests in the pool, its capacity, whether it is saturated."""
        with self._lock:
            admitted = self.admitted
        return {"in_flight": admitted, "capacity": self.capacity, "threads": self.threads,
                "saturated": admitted >= self.capacity}


_POOL: WorkPool | None = None
_POOL_LOCK = threading.Lock()


def work_pool() -> WorkPool:
    """This process's serving pool (built from the environment on first use)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = WorkPool.from_environment()
        return _POOL


def reset_work_pool(pool: WorkPool | None = None) -> WorkPool:
    """Replace this process's pool (tests; a server reading new settings)."""
    global _POOL
    with _POOL_LOCK:
        _POOL = pool if pool is not None else WorkPool.from_environment()
        return _POOL
