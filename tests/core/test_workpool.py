"""The bounded serving pool: requests costed from their content, heavy ones off the event loop, a full
pool sheds load (503, Retry-After), a request over the cost limit is a 413 naming it, /ready says so."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from decisionlab.apps.api import create_app
from decisionlab.core.serving import request_cost, serve_request
from decisionlab.core.spec import get_domain
from decisionlab.core.workpool import OverloadedError, TooMuchWorkError, WorkPool, reset_work_pool
from decisionlab.domains.ride_hailing.serve import cost as dispatch_cost


@pytest.fixture
def pool() -> Iterator[WorkPool]:
    chosen = reset_work_pool(WorkPool(threads=1, queue=1, max_cost=10_000.0, inline_cost=64.0))
    yield chosen
    reset_work_pool()


def window(drivers: int, orders: int) -> dict:
    return {"time_of_day_s": 30600.0, "drivers": [{"id": i, "cell": i % 400} for i in range(drivers)],
            "orders": [{"id": i, "origin_cell": i % 400, "dest_cell": 3} for i in range(orders)]}


def test_a_request_is_costed_from_its_content() -> None:
    rides = get_domain("ride_hailing")
    small, large = window(10, 5), window(2000, 1000)
    assert dispatch_cost([small]) < dispatch_cost([large]) == pytest.approx(150 + 3000 + 5 * 2000 * 1000 / 1000)
    assert request_cost(rides, "city_grid", {}, [large]) == dispatch_cost([large])
    assert request_cost(rides, "no_such_scenario", {}, [large, small]) == 2.0  # fails fast elsewhere
    inventory = get_domain("inventory")
    assert request_cost(inventory, "lost_sales", {}, [{"on_hand": 1}] * 7) == 7.0  # one unit a state


def test_cheap_work_runs_on_the_loop_and_heavy_work_in_the_pool(pool: WorkPool) -> None:
    loop_thread: list[str] = []

    async def go(cost: float) -> str:
        loop_thread.append(threading.current_thread().name)
        return await serve_request(lambda: threading.current_thread().name, cost)

    assert asyncio.run(go(10.0)) == loop_thread[-1]  # inline: no thread hop
    assert asyncio.run(go(500.0)).startswith("decisionlab-serve")
    with pytest.raises(TooMuchWorkError, match="over the limit of 10,000"):
        asyncio.run(go(20_000.0))


def test_a_full_pool_sheds_load_at_once(pool: WorkPool) -> None:
    release = threading.Event()

    async def scenario() -> list[object]:
        blockers = [asyncio.ensure_future(serve_request(release.wait, 500.0)) for _ in range(2)]  # 1 thread + 1
        await asyncio.sleep(0.05)
        assert pool.status() == {"in_flight": 2, "capacity": 2, "threads": 1, "saturated": True}
        with pytest.raises(OverloadedError, match="busy"):
            await serve_request(lambda: None, 500.0)
        release.set()
        return await asyncio.gather(*blockers)

    assert asyncio.run(scenario()) == [True, True]
    assert pool.status()["in_flight"] == 0


def test_the_api_answers_413_and_503_with_retry_after_and_ready_reports_saturation(
        pool: WorkPool, home: Path) -> None:
    client = TestClient(create_app())
    body = {"scenario": "city_grid", "policy": "nearest", "states": [window(3000, 1000)]}
    too_big = client.post("/v1/ride-hailing/act", json=body)
    assert too_big.status_code == 413 and "DECISIONLAB_MAX_REQUEST_COST" in too_big.json()["detail"]
    assert client.get("/ready").json()["serving"]["saturated"] is False
    with pool._lock:
        pool.admitted = pool.capacity  # as if every thread and queue place were taken
    try:
        busy = client.post("/v1/ride-hailing/act", json={**body, "states": [window(100, 50)]})
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "saturated"
        assert client.get("/health").status_code == 200  # liveness is never refused
    finally:
        with pool._lock:
            pool.admitted = 0
