"""``POST /v1/fleet/assign`` through TestClient: every free aircraft gets one answer, later aircraft see the
earlier choices (seats, pads), the rules hold, and client mistakes are 422s naming the field."""

from __future__ import annotations

import copy

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from decisionlab.apps.api import add_error_handlers
from decisionlab.apps.routes import domain_router
from decisionlab.domains.fleet import SPEC
from decisionlab.domains.fleet.routes import build_router
from decisionlab.domains.fleet.scenario import PRESETS
from decisionlab.domains.fleet.sim import FleetSim

ASSIGN = "/v1/fleet/assign"
SMALL = PRESETS["uam_small"]  # 3 vertiports, 4 aircraft, 3 parking pads, 2 chargers each


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    add_error_handlers(app)
    app.include_router(domain_router(SPEC), prefix=SPEC.url_path)
    app.include_router(build_router(), prefix=SPEC.url_path)
    return TestClient(app)


def snapshot(planes: list[tuple[int, int, float, float]], waiting: list[tuple[int, int, float]], **extra) -> dict:
    """``planes``: (id, vertiport, battery_kwh, free_in_h); ``waiting``: (origin, destination, passengers)."""
    return {"scenario": "uam_small", "policy": "greedy", "time_h": 7.0,
            "aircraft": [{"id": i, "vertiport": v, "battery_kwh": b, "free_in_h": f} for i, v, b, f in planes],
            "waiting": [{"origin": o, "destination": d, "passengers": p} for o, d, p in waiting], **extra}


def best_destination(origin: int, passengers: float) -> int:
    """Greedy's choice by hand: the most profitable flight with ``passengers`` waiting for every other vertiport."""
    sim = FleetSim(SMALL)
    seats = min(passengers, SMALL.seats)
    profits = {d: seats * float(sim.fare_per_seat[origin, d]) - float(sim.flight_cost[origin, d])
               for d in range(SMALL.n_vertiports) if d != origin}
    return max(profits, key=profits.__getitem__)


def test_the_second_free_aircraft_sees_the_seats_the_first_took(client: TestClient) -> None:
    dest = best_destination(0, 4.0)
    body = snapshot([(11, 0, 110.0, 0.0), (12, 0, 110.0, 0.0), (13, 1, 110.0, 0.5), (14, 2, 110.0, 0.5)],
                    [(0, dest, 4.0)])
    response = client.post(ASSIGN, json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert [a["aircraft_id"] for a in answer["assignments"]] == [11, 12]  # only the free ones, in order
    first, second = answer["assignments"]
    assert first == {"aircraft_id": 11, "destination": dest, "legal": True}
    assert second["destination"] is None  # nobody left to fly: greedy stays
    assert answer["decision_ms"] > 0 and answer["policy"] == "greedy"


def test_a_vertiport_whose_pads_fill_up_is_not_chosen_again(client: TestClient) -> None:
    target = best_destination(0, 8.0)
    others = [v for v in range(SMALL.n_vertiports) if v not in (0, target)]
    planes = [(1, target, 110.0, 0.4), (2, target, 110.0, 0.4), (3, 0, 110.0, 0.0), (4, 0, 110.0, 0.0)]
    body = snapshot(planes, [(0, target, 8.0), (0, others[0], 1.0)])
    answer = client.post(ASSIGN, json=body).json()
    first, second = answer["assignments"]
    assert first["destination"] == target  # its third pad
    assert second["destination"] != target and second["legal"]


def test_a_closed_route_and_an_aircraft_down_do_not_fly(client: TestClient) -> None:
    dest = best_destination(0, 4.0)
    body = snapshot([(1, 0, 110.0, 0.0), (2, 1, 110.0, 0.5), (3, 2, 110.0, 0.5), (4, 1, 110.0, 0.5)],
                    [(0, dest, 4.0)], closed_routes=[[dest, 0]])
    assert client.post(ASSIGN, json=body).json()["assignments"][0]["destination"] != dest
    down = snapshot([(1, 0, 110.0, 0.0), (2, 1, 110.0, 0.5), (3, 2, 110.0, 0.5), (4, 1, 110.0, 0.5)],
                    [(0, dest, 4.0)])
    down["aircraft"][0]["down_for_h"] = 1.0
    assert client.post(ASSIGN, json=down).json()["assignments"][0]["destination"] is None


def test_the_generic_act_answers_the_same_snapshot(client: TestClient) -> None:
    body = snapshot([(11, 0, 110.0, 0.0), (12, 1, 110.0, 0.0), (13, 1, 110.0, 0.5), (14, 2, 110.0, 0.5)],
                    [(0, 1, 3.0), (1, 2, 4.0)])
    state = {k: v for k, v in body.items() if k not in ("scenario", "policy")}
    acted = client.post("/v1/fleet/act", json={"scenario": "uam_small", "policy": "greedy", "states": [state]})
    assert acted.status_code == 200, acted.text
    assigned = client.post(ASSIGN, json=body).json()["assignments"]
    assert acted.json()["actions"][0]["assignments"] == assigned


GOOD = snapshot([(1, 0, 110.0, 0.0), (2, 1, 110.0, 0.5), (3, 2, 110.0, 0.5), (4, 1, 90.0, 0.5)], [(0, 1, 2.0)])


@pytest.mark.parametrize(("path", "value", "field"), [
    (("aircraft", 0, "vertiport"), 9, "vertiport"),
    (("aircraft", 1, "battery_kwh"), -5.0, "battery_kwh"),
    (("aircraft", 1, "battery_kwh"), 500.0, "battery_kwh"),
    (("waiting", 0, "destination"), 7, "destination"),
    (("time_h",), 23.0, "time_h"),
    (("closed_routes",), [[0, 0]], "closed_routes"),
    (("closed_routes",), [[0, -1]], "closed_routes"),  # not vertiport v − 1 by wrapping around
    (("forecast",), [[[1.0]]], "forecast"),
])
def test_mistakes_are_422_naming_the_field(client: TestClient, path: tuple, value: object, field: str) -> None:
    body = copy.deepcopy(GOOD)
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    response = client.post(ASSIGN, json=body)
    assert response.status_code == 422, response.text
    assert field in response.text


def test_states_the_rules_forbid_are_422s(client: TestClient) -> None:
    crowded = copy.deepcopy(GOOD)
    for plane in crowded["aircraft"]:
        plane["vertiport"] = 0  # 4 aircraft on 3 pads
    response = client.post(ASSIGN, json=crowded)
    assert response.status_code == 422 and "parking_pads" in response.text, response.text
    nobody = copy.deepcopy(GOOD)
    nobody["aircraft"][0]["free_in_h"] = 0.1
    response = client.post(ASSIGN, json=nobody)
    assert response.status_code == 422 and "free" in response.text, response.text
    short = copy.deepcopy(GOOD)
    short["aircraft"] = short["aircraft"][:3]
    assert client.post(ASSIGN, json=short).status_code == 422


@pytest.mark.parametrize("policy", ["ga", "exact"])
def test_clairvoyant_references_are_never_served(client: TestClient, policy: str) -> None:
    response = client.post(ASSIGN, json={**GOOD, "policy": policy})
    assert response.status_code == 422 and "policy" in response.text, response.text
