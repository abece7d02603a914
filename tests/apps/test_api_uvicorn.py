"""The API server as it is deployed: a real uvicorn process answering over TCP."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from servers import running_server


@pytest.fixture
def server_url(tmp_path: Path) -> Iterator[str]:
    """``decisionlab serve`` (one worker) over a fresh data dir, on a free port, with a 1 MB body limit."""
    env = {**os.environ, "DECISIONLAB_HOME": str(tmp_path / "home"), "DECISIONLAB_API_MAX_BODY_BYTES": "1000000"}
    env.pop("DECISIONLAB_API_TOKEN", None)
    with running_server(env) as base:
        yield base


@pytest.mark.timeout(120)
def test_uvicorn_serves_health_and_orders(server_url: str) -> None:
    with httpx.Client(base_url=server_url, timeout=30.0) as client:
        health = client.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"

        body = {
            "policy": "optimal",
            "parameters": {"lead_time": 2, "underage_cost": 9},
            "states": [{"on_hand": 0, "pipeline": [0, 0]}, {"on_hand": 3, "pipeline": [2, 1]}],
        }
        response = client.post("/v1/inventory/orders", json=body)
        assert response.status_code == 200, response.text
        orders = response.json()["orders"]
        assert len(orders) == 2 and orders[0] > 0 and all(q >= 0 for q in orders)

        malformed = client.post(
            "/v1/inventory/orders", content=b'{"states": [', headers={"content-type": "application/json"}
        )
        assert malformed.status_code == 422

        too_big = client.post("/v1/inventory/orders", content=b"x" * 1_000_001,
                              headers={"content-type": "application/json"})
        assert too_big.status_code == 413

        chunks = (b"x" * 100_000 for _ in range(11))  # no Content-Length: sent chunked
        streamed = client.post("/v1/inventory/orders", content=chunks, headers={"content-type": "application/json"})
        assert streamed.status_code == 413
        assert "too large" in streamed.json()["detail"]


def test_the_shared_socket_says_tcp() -> None:
    """asyncio sets TCP_NODELAY only on sockets whose protocol is TCP; the workers' socket must say so
    (a socket created with protocol 0 left Nagle on: ~40 ms per keep-alive response)."""
    import socket

    from decisionlab.apps.server import tcp_socket

    sock = tcp_socket("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


@pytest.mark.timeout(300)
def test_two_workers_share_the_port_the_registry_and_the_metrics(registered: Path) -> None:
    """``serve --workers 2``: every request answered, by both processes; /metrics adds them up; a
    promotion made while it runs is served by every worker."""
    from decisionlab.core.store.registry import PolicyRegistry

    env = {**os.environ, "DECISIONLAB_HOME": str(registered), "DECISIONLAB_WARM": "0"}
    env.pop("DECISIONLAB_API_TOKEN", None)
    body = {"scenario": "lost_sales", "policy": "hdpo_test@prod", "parameters": {"underage_cost": 19},
            "states": [{"on_hand": 1.0, "pipeline": [0.0, 0.0]}]}
    PolicyRegistry(registered).promote("inventory/hdpo_test@1", "prod")
    with running_server(env, workers=2) as base:
        count = 60
        with httpx.Client(base_url=base, timeout=30.0) as client:
            for _ in range(count):  # new connections spread over both workers
                response = httpx.post(f"{base}/v1/inventory/orders", json=body, timeout=30.0)
                assert response.status_code == 200, response.text
                assert response.json()["policy"] == "inventory/hdpo_test@1"
            metrics = client.get("/metrics").text
        served = [line for line in metrics.splitlines()
                  if line.startswith('decisionlab_requests_total{method="POST",route="/v1/inventory/orders"')]
        assert served and float(served[0].rsplit(" ", 1)[1]) == count
        assert "decisionlab_builds_pending" in metrics


@pytest.mark.parametrize("workers", [1, 2])
def test_a_busy_port_is_a_one_line_error(workers: int, tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "decisionlab.apps.cli", "serve", "--port", str(port),
                               "--workers", str(workers)], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "DECISIONLAB_HOME": str(tmp_path), "DECISIONLAB_WARM": "0"})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"port {port} on 127.0.0.1 is already in use" in lines[0], done.stderr
