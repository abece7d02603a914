"""The API server as it is deployed: a real uvicorn process answering over TCP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

STARTUP_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_healthy(base: str, server: subprocess.Popen, log: Path) -> None:
    """Poll ``/health`` until it answers 200; fail with the server log if it dies or never does."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"uvicorn exited with {server.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/health", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"uvicorn did not answer /health within {STARTUP_TIMEOUT_S:.0f} s:\n{log.read_text()}")


@pytest.fixture
def server_url(tmp_path: Path) -> Iterator[str]:
    """Start ``uvicorn --factory decisionlab.apps.api:create_app`` on a free port; stop it afterwards."""
    port = free_port()
    env = {**os.environ, "DECISIONLAB_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"}
    for name in ("DECISIONLAB_API_TOKEN", "DECISIONLAB_API_MAX_BODY_BYTES"):
        env.pop(name, None)
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "decisionlab.apps.api:create_app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]
    log = tmp_path / "uvicorn.log"
    with log.open("wb") as out:
        server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until_healthy(base, server, log)
            yield base
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=15)


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
