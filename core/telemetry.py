"""Prometheus metrics of the serving path (exposed by the API at ``GET /metrics``).

One set of metric objects per process. With several server workers, ``decisionlab serve`` sets
``PROMETHEUS_MULTIPROC_DIR`` before the workers start, each worker writes its samples there and
``/metrics`` adds them up (prometheus-client's multiprocess mode), so one scrape sees the server.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Buckets in seconds from 0.5 ms: serving latencies are milliseconds, builds take seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BUILD_BUCKETS = (0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)

REQUESTS = Counter("decisionlab_requests_total", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram("decisionlab_request_seconds", "time to answer a request", ["method", "route"],
                    buckets=LATENCY_BUCKETS)
SERVED = Counter("decisionlab_policy_requests_total", "requests answered per policy (name@version or baseline)",
                 ["domain", "policy"])
CACHE = Counter("decisionlab_policy_cache_total", "policy cache lookups", ["kind", "result"])
BUILD_SECONDS = Histogram("decisionlab_build_seconds", "time to build a baseline or load a registered policy",
                          ["kind", "policy"], buckets=BUILD_BUCKETS)
BUILDS_PENDING = Gauge("decisionlab_builds_pending", "expensive baseline builds queued or running",
                       multiprocess_mode="livesum")


def exposition() -> bytes:
    """The metrics in Prometheus' text format: this process's, or every worker's in multiprocess mode."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()
