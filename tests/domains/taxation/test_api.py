"""``POST /v1/taxation/schedule`` and ``/evaluate`` through TestClient: the figures of the oracle, the
workers' responses, and client mistakes as 422s naming the field."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from decisionlab.apps.api import add_error_handlers
from decisionlab.apps.routes import domain_router
from decisionlab.domains.taxation import SPEC
from decisionlab.domains.taxation.routes import build_router
from decisionlab.domains.taxation.scenario import US_FEDERAL_RATES

SCHEDULE, EVALUATE = "/v1/taxation/schedule", "/v1/taxation/evaluate"


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    add_error_handlers(app)
    app.include_router(domain_router(SPEC), prefix=SPEC.url_path)
    app.include_router(build_router(), prefix=SPEC.url_path)
    return TestClient(app)


def test_schedule_gives_the_exact_optimum_for_each_objective(client: TestClient) -> None:
    product = client.post(SCHEDULE, json={"policy": "optimal", "parameters": {"n_agents": 10}})
    assert product.status_code == 200, product.text
    body = product.json()
    assert body["policy"] == "optimal"
    assert body["metrics"]["equality_times_productivity"] == pytest.approx(469.370, abs=5e-4)
    assert body["rates"][1:5] == pytest.approx([0.0, 0.25, 0.55, 0.0])
    assert body["free"] == [True, False, False, False, False, True, True]
    welfare = client.post(SCHEDULE, json={"policy": "optimal", "objective": "welfare"}).json()
    assert welfare["metrics"]["welfare"] == pytest.approx(39.4085, abs=5e-5)
    assert welfare["scenario"]["objective"] == "welfare"


def test_schedule_of_the_closed_forms(client: TestClient) -> None:
    saez = client.post(SCHEDULE, json={"parameters": {"n_agents": 25}}).json()  # the default policy
    assert [round(r, 3) for r in saez["rates"]] == [0.0, 0.0, 0.148, 0.367, 0.442, 0.461, 0.503]
    assert saez["free"] is None and saez["policy"] == "saez"
    us = client.post(SCHEDULE, json={"policy": "us_federal"}).json()
    assert us["rates"] == pytest.approx(list(US_FEDERAL_RATES))
    assert us["metrics"]["equality_times_productivity"] == pytest.approx(434.479, abs=5e-4)


def test_evaluate_reports_workers_and_deciles(client: TestClient) -> None:
    response = client.post(EVALUATE, json={"rates": list(US_FEDERAL_RATES)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["metrics"]["equality_times_productivity"] == pytest.approx(434.479, abs=5e-4)
    workers = body["workers"]
    assert len(workers) == 10 and [w["skill"] for w in workers] == sorted(w["skill"] for w in workers)
    assert sum(w["tax"] for w in workers) == pytest.approx(body["metrics"]["revenue"])
    assert body["rebate"] == pytest.approx(body["metrics"]["revenue"] / 10)
    rates = [d["effective_rate"] for d in body["deciles"]]
    assert rates == sorted(rates) and 0.0 < rates[0] < rates[-1] < 0.37  # progressive, under the top rate


@pytest.mark.parametrize(("body", "field"), [
    ({"rates": [-0.1, 0.12, 0.22, 0.24, 0.32, 0.35, 0.37]}, "rates.0"),
    ({"rates": [0.1, 0.12, 1.5, 0.24, 0.32, 0.35, 0.37]}, "rates.2"),
    ({"rates": [0.1, 0.12, 0.22]}, "rates"),
    ({"rates": list(US_FEDERAL_RATES), "parameters": {"bracket_cutoffs": [0, 40, 10, 85, 160, 205, 510]}},
     "bracket_cutoffs"),
    ({"rates": list(US_FEDERAL_RATES), "parameters": {"bracket_cutoffs": [10, 40, 85, 160, 205, 510, 600]}},
     "bracket_cutoffs"),
    ({"rates": list(US_FEDERAL_RATES), "parameters": {"n_agents": 0}}, "n_agents"),
    # δ near 1: the most skilled worker's untaxed income is ~1e15206 (it used to answer 200 with nulls)
    ({"rates": list(US_FEDERAL_RATES), "parameters": {"labour_exponent": 1.0001}}, "labour_exponent"),
    ({}, "rates"),
])
def test_evaluate_refuses_bad_schedules_naming_the_field(client: TestClient, body: dict, field: str) -> None:
    response = client.post(EVALUATE, json=body)
    assert response.status_code == 422, response.text
    assert field in response.text.replace("[", ".").replace("]", ""), response.text


def test_schedule_refuses_bad_requests(client: TestClient) -> None:
    assert client.post(SCHEDULE, json={"objective": "happiness"}).status_code == 422
    response = client.post(SCHEDULE, json={"parameters": {"n_agents": 0}})
    assert response.status_code == 422 and "n_agents" in response.text
    for policy in ("saez", "free_market", "optimal"):  # these used to be 500s
        response = client.post(SCHEDULE, json={"policy": policy, "parameters": {"labour_exponent": 1.0001}})
        assert response.status_code == 422 and "labour_exponent" in response.text, response.text
    response = client.post(SCHEDULE, json={"scenario": "gather_trade_build"})
    assert response.status_code == 422, response.text
    assert [p["field"] for p in response.json()["detail"]] == ["scenario"], response.text
    response = client.post(SCHEDULE, json={"policy": "nobody"})
    assert response.status_code == 404, response.text


def test_act_answers_workers_for_given_rates_and_the_planner_otherwise(client: TestClient) -> None:
    response = client.post("/v1/taxation/act", json={"scenario": "one_step", "policy": "saez",
                                                      "states": [{"rates": [0.0] * 7}, {}]})
    assert response.status_code == 200, response.text
    given, planned = response.json()["actions"]
    assert given["rates"] == [0.0] * 7
    skills = client.get("/v1/taxation/schema").json()["details"]["skills"]
    assert given["incomes"] == pytest.approx([w * w ** 0.5 for w in skills], rel=1e-6)  # no tax: w·(w/c)^(1/(δ−1))
    assert planned["rates"][2] == pytest.approx(0.148, abs=1e-3)
    assert all(a <= b for a, b in zip(planned["incomes"], given["incomes"], strict=True))  # taxes never raise incomes
    bad = client.post("/v1/taxation/act", json={"scenario": "one_step", "policy": "saez", "states": [{"rates": [0.1]}]})
    assert bad.status_code == 422 and "states[0].rates" in bad.text, bad.text
