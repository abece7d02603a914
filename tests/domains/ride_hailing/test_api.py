"""``POST /v1/ride-hailing/dispatch`` and ``/reposition`` through TestClient: valid assignments, the
fare-matching optimum on a case solved by hand, a registered value policy, and errors that name
the field."""

from __future__ import annotations

import itertools

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from decisionlab.apps.api import add_error_handlers
from decisionlab.apps.routes import domain_router
from decisionlab.core.store.registry import PolicyRegistry
from decisionlab.domains.ride_hailing import SPEC
from decisionlab.domains.ride_hailing.city import cancel_probability, city_of
from decisionlab.domains.ride_hailing.policies import ValuePolicy
from decisionlab.domains.ride_hailing.routes import build_router
from decisionlab.domains.ride_hailing.scenario import PRESETS

DISPATCH, REPOSITION = "/v1/ride-hailing/dispatch", "/v1/ride-hailing/reposition"
SMALL = PRESETS["city_small"]


@pytest.fixture()
def client() -> TestClient:
    app = FastAPI()
    add_error_handlers(app)
    app.include_router(domain_router(SPEC), prefix=SPEC.url_path)
    app.include_router(build_router(), prefix=SPEC.url_path)
    return TestClient(app)


def window(drivers: list[tuple[int, int, float]], orders: list[tuple[int, int, int, float | None]]) -> dict:
    return {"time_of_day_s": 30600.0,
            "drivers": [{"id": i, "cell": c, "idle_seconds": s} for i, c, s in drivers],
            "orders": [{"id": i, "origin_cell": o, "dest_cell": d, **({"fare": f} if f is not None else {})}
                       for i, o, d, f in orders]}


def test_fare_matching_finds_the_best_assignment(client: TestClient) -> None:
    """Three drivers, three orders: the answer maximises Σ (1 − p_cancel(pickup))·fare (brute force)."""
    drivers = [(101, 27, 0.0), (102, 29, 0.0), (103, 44, 0.0)]
    orders = [(1, 28, 3, 20.0), (2, 27, 60, 5.0), (3, 36, 10, 12.0)]
    response = client.post(DISPATCH, json={"policy": "fare_matching", **window(drivers, orders)})
    assert response.status_code == 200, response.text
    chosen = {a["order_id"]: a["driver_id"] for a in response.json()["assignments"]}
    grid = city_of(SMALL).grid
    import torch

    def gain(order: tuple, driver: tuple) -> float:
        km = float(grid.distance_km(torch.tensor(driver[1]), torch.tensor(order[1])))
        if km > SMALL.max_pickup_km:
            return float("-inf")
        km = max(km, 0.35 * SMALL.cell_km * SMALL.road_detour)
        return (1 - float(cancel_probability(torch.tensor(km), SMALL))) * order[3]

    best = max(
        (sum(gain(o, d) for o, d in zip(orders, perm, strict=True) if d is not None), perm)
        for perm in itertools.permutations([*drivers, None, None, None], 3)
        if all(d is None or gain(o, d) > float("-inf") for o, d in zip(orders, perm, strict=True))
    )
    total = sum(gain(o, d) for o in orders for d in drivers if chosen.get(o[0]) == d[0])
    assert total == pytest.approx(best[0], rel=1e-6)
    assert len(set(chosen.values())) == len(chosen)


def test_every_assignment_is_a_listed_driver_and_order(client: TestClient) -> None:
    drivers = [(i, (7 * i) % 64, 10.0 * i) for i in range(40)]
    orders = [(1000 + j, (11 * j) % 64, (5 * j) % 64, None) for j in range(30)]
    for policy in ("nearest", "max_fare", "fare_matching", "nearest+reposition"):
        body = client.post(DISPATCH, json={"policy": policy, **window(drivers, orders)}).json()
        pairs = [(a["order_id"], a["driver_id"]) for a in body["assignments"]]
        assert pairs and {o for o, _ in pairs} <= {o[0] for o in orders}
        assert {d for _, d in pairs} <= {d[0] for d in drivers}
        assert len({d for _, d in pairs}) == len(pairs) == len({o for o, _ in pairs})
        moved = {r["driver_id"] for r in body["repositions"]}
        assert not moved & {d for _, d in pairs}  # a dispatched driver is not also sent elsewhere


def test_reposition_moves_only_long_idle_drivers_to_nearby_cells(client: TestClient) -> None:
    drivers = [(1, 0, 30.0), (2, 0, 900.0), (3, 63, 1200.0)]
    request = {"policy": "nearest+reposition", **window(drivers, [])}
    del request["orders"]
    body = client.post(REPOSITION, json=request)
    assert body.status_code == 200, body.text
    moves = body.json()["repositions"]
    assert 1 not in {m["driver_id"] for m in moves}  # idle for 30 s: below the 5-minute threshold
    grid = city_of(SMALL).grid
    import torch

    for move in moves:
        start = dict((d[0], d[1]) for d in drivers)[move["driver_id"]]
        assert float(grid.distance_km(torch.tensor(start), torch.tensor(move["cell"]))) <= SMALL.reposition_max_km


def test_a_registered_value_policy_answers(client: TestClient) -> None:
    import torch

    net = ValuePolicy.initial(SMALL, torch.device("cpu"))
    with torch.no_grad():
        net.value.table.copy_(torch.linspace(0, 5, net.value.table.numel()).view_as(net.value.table))
    record = PolicyRegistry().save("ride_hailing", "value_small", net.state_dict(), {
        "setting": "city", "scenario_name": "city_small", "scenario": SMALL.describe(), "policy_kind": "ride_value",
        "policy_config": net.config(), "metrics": {}})
    drivers = [(i, (3 * i) % 64, 400.0) for i in range(10)]
    orders = [(50 + j, (9 * j) % 64, (4 * j) % 64, None) for j in range(6)]
    response = client.post(DISPATCH, json={"policy": str(record.ref), **window(drivers, orders)})
    assert response.status_code == 200, response.text
    assert response.json()["policy_version"] == record.ref.version


@pytest.mark.parametrize(("patch", "field"), [
    ({"drivers": [{"id": 1, "cell": 64}]}, "drivers[0].cell"),
    ({"orders": [{"id": 1, "origin_cell": 3, "dest_cell": 999}]}, "orders[0].dest_cell"),
    ({"drivers": [{"id": 1, "cell": 2}, {"id": 1, "cell": 3}]}, "drivers[1].id"),
    ({"drivers": [{"id": 1, "cell": 2, "idle_seconds": "NaN"}]}, "drivers.0.idle_seconds"),
    ({"time_of_day_s": 86400.0}, "time_of_day_s"),
    ({"drivers": []}, "drivers"),
])
def test_mistakes_are_422_naming_the_field(client: TestClient, patch: dict, field: str) -> None:
    body = {"policy": "nearest", **window([(1, 2, 0.0)], [(9, 3, 4, None)]), **patch}
    response = client.post(DISPATCH, json=body)
    assert response.status_code == 422, response.text
    assert field.split(".")[0].split("[")[0] in response.text and field.split(".")[-1].split("]")[-1] in response.text


def test_unknown_policy_is_404(client: TestClient) -> None:
    response = client.post(DISPATCH, json={"policy": "teleport", **window([(1, 2, 0.0)], [])})
    assert response.status_code == 404 and "nearest" in response.text


def test_driver_and_order_ids_beyond_float32_come_back_exactly(client: TestClient) -> None:
    """Ids 2^24 + 1 and above (float32 would round 16,777,217 to 16,777,216) through /dispatch and /act."""
    big = 2**24 + 1
    body = window([(big, 27, 400.0), (big + 1, 35, 40.0), (2**53, 28, 10.0)],
                  [(big + 2, 28, 3, None), (big + 3, 27, 40, 12.0)])
    response = client.post(DISPATCH, json={"scenario": "city_small", "policy": "nearest", **body})
    assert response.status_code == 200, response.text
    pairs = {(a["order_id"], a["driver_id"]) for a in response.json()["assignments"]}
    assert pairs and {o for o, _ in pairs} <= {big + 2, big + 3} and {d for _, d in pairs} <= {big, big + 1, 2**53}
    assert (big + 2, 2**53) in pairs  # the nearest driver of the order at cell 28 is the one in cell 28
    generic = client.post(f"{SPEC.url_path}/act", json={"scenario": "city_small", "policy": "nearest",
                                                        "states": [body]})
    assert generic.status_code == 200, generic.text
    assert {(a["order_id"], a["driver_id"]) for a in generic.json()["actions"][0]["assignments"]} == pairs


def test_an_answer_that_breaks_the_dispatch_invariants_is_never_sent() -> None:
    """A policy giving one driver two orders, or a cell off the grid, is a server fault (500), not an answer."""
    from types import SimpleNamespace

    import torch

    from decisionlab.core import PolicyOutputError
    from decisionlab.domains.ride_hailing.serve import DISPATCH, REPOSITION, DispatchWindow, respond

    context = SimpleNamespace(scenario=SimpleNamespace(grid_size=4))
    window = DispatchWindow.model_validate({
        "time_of_day_s": 30600.0,
        "drivers": [{"id": 7, "cell": 1, "idle_seconds": 1.0}, {"id": 8, "cell": 2, "idle_seconds": 1.0}],
        "orders": [{"id": 70, "origin_cell": 1, "dest_cell": 3}, {"id": 71, "origin_cell": 2, "dest_cell": 0}]})
    fine = respond(context, {DISPATCH: torch.tensor([[1, 0]]), REPOSITION: torch.tensor([[-1, 5]])}, [window])
    assert fine == [{"assignments": [{"order_id": 70, "driver_id": 8}, {"order_id": 71, "driver_id": 7}],
                     "repositions": [{"driver_id": 8, "cell": 5}]}]
    with pytest.raises(PolicyOutputError, match="one driver several orders"):
        respond(context, {DISPATCH: torch.tensor([[0, 0]]), REPOSITION: torch.tensor([[-1, -1]])}, [window])
    with pytest.raises(PolicyOutputError, match="off the 16-cell grid"):
        respond(context, {DISPATCH: torch.tensor([[-1, -1]]), REPOSITION: torch.tensor([[16, -1]])}, [window])
