"""``POST /v1/recommendation/rank``, the core's ``/act`` and ``GET /schema`` through TestClient: slates ranked by
the catalog's popularity computed here, Plackett–Luce propensities computed by hand (and the sampled slates'
frequencies against them), ids above 2^24 returned exactly, ``ctr_greedy`` served after its build (503 with
Retry-After until then), and client mistakes as 422s naming the field."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi import FastAPI
from fastapi.testclient import TestClient

from decisionlab.apps.api import add_error_handlers
from decisionlab.apps.routes import domain_router
from decisionlab.core.policy_cache import PolicyCache
from decisionlab.core.store.registry import PolicyRegistry
from decisionlab.domains.recommendation import SPEC
from decisionlab.domains.recommendation.catalog import Catalog
from decisionlab.domains.recommendation.policies import fitted_click_model
from decisionlab.domains.recommendation.routes import build_router
from decisionlab.domains.recommendation.scenario import PRESETS, RecommendationScenario
from decisionlab.domains.recommendation.serve import RankState, user_state
from decisionlab.domains.recommendation.sim import RecommendationSim

RANK, ACT, SCHEMA = "/v1/recommendation/rank", "/v1/recommendation/act", "/v1/recommendation/schema"
PARAMETERS = {"days": 1, "n_users": 1000, "n_authors": 50, "n_items": 5000, "n_candidates": 12, "slate_size": 3}
CANDIDATES = [1, 500, 999, 1500, 2500, 3001, 3777, 4999]
REQUEST = {"scenario": "small", "parameters": PARAMETERS, "policy": "popularity", "user_id": 7,
           "candidates": CANDIDATES, "requests": 4, "clicks": 1,
           "relationships": [{"author_id": 3, "clicks": 2, "follows": True, "hours_since": 5.0}]}


def app() -> FastAPI:
    application = FastAPI()
    add_error_handlers(application)
    application.include_router(domain_router(SPEC), prefix=SPEC.url_path)
    application.include_router(build_router(), prefix=SPEC.url_path)
    return application


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(app())


def scenario_of(parameters: dict) -> RecommendationScenario:
    return RecommendationScenario.model_validate({**PRESETS["small"].model_dump(), **parameters})


def popularity_of(parameters: dict, ids: list[int]) -> list[float]:
    """The catalog's popularity of ``ids`` (what the popularity policy scores by), from a catalog built here."""
    return Catalog(scenario_of(parameters)).items(torch.tensor(ids, dtype=torch.long)).popularity.double().tolist()


def plackett_luce_shares(scores: list[float], slate: list[int], temperature: float) -> list[float]:
    """Each slate position's share of what is left: ``exp(s_j / T) / Σ_{not yet placed} exp(s_i / T)`` (the sum
    taken afresh over what is left, scaled by its largest term: no cancellation at low temperatures)."""
    left, shares = list(range(len(scores))), []
    for j in slate:
        top = max(scores[i] for i in left)
        shares.append(math.exp((scores[j] - top) / temperature)
                      / sum(math.exp((scores[i] - top) / temperature) for i in left))
        left.remove(j)
    return shares


def test_popularity_ranks_by_the_catalogs_popularity(client: TestClient) -> None:
    response = client.post(RANK, json=REQUEST)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["policy"] == "popularity" and body["policy_version"] is None
    assert body["scenario"]["n_items"] == 5000 and body["decision_ms"] >= 0
    popularity = popularity_of(PARAMETERS, CANDIDATES)
    best = sorted(range(len(CANDIDATES)), key=lambda j: -popularity[j])[:3]
    slate = body["slate"]
    assert [item["item_id"] for item in slate] == [CANDIDATES[j] for j in best]
    assert len({item["item_id"] for item in slate}) == 3
    assert [item["score"] for item in slate] == pytest.approx([popularity[j] for j in best], rel=1e-6)
    assert [item["propensity"] for item in slate] == [1.0, 1.0, 1.0]
    assert body["slate_propensity"] == 1.0
    # a larger slate, all the candidates: every one once, in popularity order
    whole = client.post(RANK, json={**REQUEST, "slate_size": len(CANDIDATES)}).json()["slate"]
    assert [item["item_id"] for item in whole] == [CANDIDATES[j] for j in np.argsort(-np.array(popularity))]


def test_the_generic_act_gives_the_same_slates(client: TestClient) -> None:
    state = state_of(REQUEST)
    other = {**state, "candidates": [7, 8, 9, 10], "slate_size": 2, "temperature": 0.7, "seed": 11}
    acted = client.post(ACT, json={"scenario": "small", "parameters": PARAMETERS, "policy": "popularity",
                                   "states": [state, other]})
    assert acted.status_code == 200, acted.text
    actions = acted.json()["actions"]
    for sent, action in zip((state, other), actions, strict=True):
        ranked = client.post(RANK, json={**REQUEST, **sent}).json()
        assert action["slate"] == ranked["slate"] and action["slate_propensity"] == ranked["slate_propensity"]
    assert len(actions[1]["slate"]) == 2


def test_a_sampled_slate_is_reproducible_and_its_propensities_are_plackett_luce(client: TestClient) -> None:
    temperature = 0.6
    body = {**REQUEST, "temperature": temperature, "seed": 12345, "slate_size": 4}
    first, again = client.post(RANK, json=body), client.post(RANK, json=body)
    assert first.status_code == 200, first.text
    assert first.json()["slate"] == again.json()["slate"]
    answer = first.json()
    popularity = popularity_of(PARAMETERS, CANDIDATES)
    slate = [CANDIDATES.index(item["item_id"]) for item in answer["slate"]]
    assert len(set(slate)) == 4
    shares = plackett_luce_shares(popularity, slate, temperature)
    assert [item["propensity"] for item in answer["slate"]] == pytest.approx(shares, rel=1e-6)
    assert answer["slate_propensity"] == pytest.approx(math.prod(shares), rel=1e-6)
    assert [item["score"] for item in answer["slate"]] == pytest.approx([popularity[j] for j in slate], rel=1e-6)
    # other seeds give other slates
    slates = {tuple(i["item_id"] for i in client.post(RANK, json={**body, "seed": seed}).json()["slate"])
              for seed in range(12)}
    assert len(slates) > 1


def test_sampled_slates_are_drawn_with_the_propensities_they_report(client: TestClient) -> None:
    """Over many seeds, the first item's frequency is its softmax share and each (first, second) pair's frequency
    the product of the reported propensities."""
    temperature, n = 0.8, 2000
    state = state_of(REQUEST)
    states = [{**state, "temperature": temperature, "seed": seed, "slate_size": 2} for seed in range(n)]
    response = client.post(ACT, json={"scenario": "small", "parameters": PARAMETERS, "policy": "popularity",
                                      "states": states})
    assert response.status_code == 200, response.text
    actions = response.json()["actions"]
    popularity = popularity_of(PARAMETERS, CANDIDATES)
    weights = np.exp(np.array(popularity) / temperature)
    first = np.array([CANDIDATES.index(a["slate"][0]["item_id"]) for a in actions])
    p = weights / weights.sum()
    freq = np.bincount(first, minlength=len(CANDIDATES)) / n
    np.testing.assert_array_less(np.abs(freq - p), 4.0 * np.sqrt(p * (1 - p) / n) + 1e-12)
    for action in actions:
        a, b = (CANDIDATES.index(item["item_id"]) for item in action["slate"])
        assert action["slate_propensity"] == pytest.approx(p[a] * weights[b] / (weights.sum() - weights[a]), rel=1e-6)


def test_propensities_hold_at_the_lowest_temperature(client: TestClient) -> None:
    """At the lowest temperature the sampled slate is the deterministic order with propensities ~1 (not 0)."""
    body = {**REQUEST, "temperature": 0.01, "seed": 3, "slate_size": 3}
    answer = client.post(RANK, json=body)
    assert answer.status_code == 200, answer.text
    popularity = popularity_of(PARAMETERS, CANDIDATES)
    slate = [CANDIDATES.index(item["item_id"]) for item in answer.json()["slate"]]
    shares = plackett_luce_shares(popularity, slate, 0.01)
    assert [item["propensity"] for item in answer.json()["slate"]] == pytest.approx(shares, rel=1e-6)
    assert answer.json()["slate_propensity"] == pytest.approx(math.prod(shares), rel=1e-6)
    assert answer.json()["slate_propensity"] > 0.5


def test_ids_above_2_24_come_back_exactly(client: TestClient) -> None:
    parameters = {"n_items": 10**13, "n_users": 10**12, "days": 1}
    candidates = [9 * 10**12 + 2**24 + 1, 9 * 10**12 + 2**24 + 2, 9_007_199_254_739, 2**24 + 1, 2**24 + 3,
                  9_999_999_999_999, 2**40 + 5]
    body = {"scenario": "small", "parameters": parameters, "policy": "popularity", "user_id": 10**12 - 1,
            "candidates": candidates, "slate_size": len(candidates)}
    response = client.post(RANK, json=body)
    assert response.status_code == 200, response.text
    returned = [item["item_id"] for item in response.json()["slate"]]
    assert sorted(returned) == sorted(candidates)  # exactly the ids sent, none rounded
    popularity = popularity_of(parameters, candidates)
    assert returned == [candidates[j] for j in np.argsort(-np.array(popularity), kind="stable")]
    # an id beyond the catalog is refused with its exact value, at its place
    refused = client.post(RANK, json={**body, "candidates": [*candidates, 2**53 - 1]})
    assert refused.status_code == 422, refused.text
    problem = refused.json()["detail"][0]
    assert problem["field"] == f"candidates[{len(candidates)}]" and str(2**53 - 1) in problem["message"]


def state_of(body: dict) -> dict:
    """The request state of a ``/rank`` body (without the envelope)."""
    return {k: v for k, v in body.items() if k not in ("scenario", "parameters", "policy")}


def bad(path: str, value: object) -> dict:
    body = json.loads(json.dumps(REQUEST))
    target = body
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    target[keys[-1]] = value
    return body


@pytest.mark.parametrize(("body", "field", "kind"), [
    (bad("candidates", []), "candidates", "too_short"),
    (bad("candidates", [1, 2, 1, 3]), "candidates[2]", "duplicate"),
    (bad("candidates", [1, 2, 3, 5000]), "candidates[3]", "unknown_item"),
    (bad("candidates", list(range(1001))), "candidates", "too_long"),
    (bad("slate_size", 9), "slate_size", "too_large"),
    (bad("user_id", 1000), "user_id", "unknown_user"),
    (bad("relationships.0.author_id", 50), "relationships[0].author_id", "unknown_author"),
    (bad("hours_on_platform", -1.0), "hours_on_platform", "greater_than_equal"),
    (bad("interest", [0.1, 0.2]), "interest", "length"),
    (bad("candidates", [1, 2, -3, 4, 5, 6, 7]), "candidates[2]", "greater_than_equal"),
    (bad("temperature", 1e-5), "temperature", "value_error"),
    (bad("temperature", 5e-324), "temperature", "value_error"),
])
def test_mistakes_are_422s_naming_the_field(client: TestClient, body: dict, field: str, kind: str) -> None:
    response = client.post(RANK, json=body)
    assert response.status_code == 422, response.text
    assert [(p["field"], p["type"]) for p in response.json()["detail"]] == [(field, kind)]
    acted = client.post(ACT, json={"scenario": "small", "parameters": PARAMETERS, "policy": "popularity",
                                   "states": [state_of(REQUEST), state_of(body)]})
    assert acted.status_code == 422, acted.text
    assert [p["field"] for p in acted.json()["detail"]] == [f"states[1].{field}"]


def test_a_non_finite_number_is_a_422_naming_the_field(client: TestClient) -> None:
    for field, value in (("hours_on_platform", math.nan), ("hours_on_platform", math.inf)):
        text = json.dumps({**REQUEST, field: value})  # NaN / Infinity: what a careless client sends
        response = client.post(RANK, content=text, headers={"content-type": "application/json"})
        assert response.status_code == 422, response.text
        assert [p["field"] for p in response.json()["detail"]] == [field]
    nan_interest = {**REQUEST, "interest": [math.nan] * 8}
    response = client.post(RANK, content=json.dumps(nan_interest), headers={"content-type": "application/json"})
    assert response.status_code == 422 and "interest[0]" in response.text, response.text
    nan_since = bad("relationships.0.hours_since", math.nan)
    response = client.post(RANK, content=json.dumps(nan_since), headers={"content-type": "application/json"})
    assert response.status_code == 422 and "relationships[0].hours_since" in response.text


def test_the_schema_example_is_served(client: TestClient) -> None:
    response = client.get(SCHEMA, params={"scenario": "small", "parameters": json.dumps(PARAMETERS)})
    assert response.status_code == 200, response.text
    schema = response.json()
    assert {"random", "popularity", "ctr_greedy"} <= set(schema["policies"])
    assert schema["details"] == {"users": 1000, "authors": 50, "items": 5000, "slate_size": 3}
    example = schema["example_state"]
    assert "candidates" in schema["state_schema"]["properties"]
    answer = client.post(RANK, json={"scenario": "small", "parameters": PARAMETERS, "policy": "random", **example})
    assert answer.status_code == 200, answer.text
    slate = [item["item_id"] for item in answer.json()["slate"]]
    assert len(slate) == 3 and len(set(slate)) == 3 and set(slate) <= set(example["candidates"])
    # random: a hash of the request, so the same request gets the same slate
    again = client.post(RANK, json={"scenario": "small", "parameters": PARAMETERS, "policy": "random", **example})
    assert [item["item_id"] for item in again.json()["slate"]] == slate


def test_ctr_greedy_answers_503_while_it_is_built_then_its_slate(home: Path) -> None:
    application = app()
    application.state.policies = PolicyCache(PolicyRegistry(home), build_wait_s=0.0)  # no waiting for the build
    client = TestClient(application)
    parameters = {**PARAMETERS, "max_requests_per_day": 20, "catalog_seed": 4242}  # a small log, fitted here only
    body = {**REQUEST, "parameters": parameters, "policy": "ctr_greedy", "slate_size": 4}
    statuses = []
    for _ in range(300):
        response = client.post(RANK, json=body)
        statuses.append(response.status_code)
        if response.status_code != 503:
            break
        assert int(response.headers["Retry-After"]) >= 1
        assert "ctr_greedy" in response.json()["detail"]
        time.sleep(0.1)
    assert statuses[0] == 503 and statuses[-1] == 200, (statuses[:3], response.text)
    answer = response.json()
    assert answer["policy"] == "ctr_greedy"
    slate = [item["item_id"] for item in answer["slate"]]
    assert len(slate) == 4 and len(set(slate)) == 4 and set(slate) <= set(CANDIDATES)
    assert all(item["propensity"] == 1.0 for item in answer["slate"]) and answer["slate_propensity"] == 1.0
    # the top 4 of the fitted click model's utilities of this request's candidates
    scenario = scenario_of(parameters)
    sim = RecommendationSim(scenario)
    state = RankState.model_validate(state_of(body))
    obs = sim.observe(user_state(sim, [state]))
    utility = fitted_click_model(scenario, "cpu").item_utility(obs["user"], obs["items"])[0].detach().double()
    order = torch.argsort(utility, descending=True)[:4].tolist()
    assert slate == [CANDIDATES[j] for j in order]
    assert [item["score"] for item in answer["slate"]] == pytest.approx(utility[order].tolist(), rel=1e-5)
