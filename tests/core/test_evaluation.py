"""Policy comparison on common random numbers: means, Student-t intervals and paired differences."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import stats

from decisionlab.core.errors import DecisionlabError
from decisionlab.core.evaluation import EvaluationReport, evaluate_policies, mean_ci95
from decisionlab.core.spec import get_domain
from decisionlab.domains.inventory.single_store.policies import BaseStockPolicy
from decisionlab.domains.inventory.single_store.scenario import LostSalesScenario

CPU = torch.device("cpu")
SCENARIO = LostSalesScenario(lead_time=2, underage_cost=9.0, horizon_periods=300, warmup_periods=50)


def test_mean_ci95_matches_a_hand_computation() -> None:
    values = np.array([4.0, 5.5, 3.2, 6.1, 4.9, 5.0, 4.4])
    n = values.size
    mean = values.sum() / n
    sample_var = ((values - mean) ** 2).sum() / (n - 1)
    half = stats.t.ppf(0.975, df=n - 1) * np.sqrt(sample_var / n)
    got_mean, got_half = mean_ci95(values)
    assert got_mean == pytest.approx(mean, rel=1e-12)
    assert got_half == pytest.approx(half, rel=1e-12)
    assert got_half == pytest.approx(2.446911851 * np.sqrt(sample_var / n), rel=1e-8)  # t_{0.975, 6}


def test_mean_ci95_single_value_and_constant() -> None:
    assert mean_ci95(np.array([3.0])) == (3.0, 0.0)
    assert mean_ci95(np.full(10, 2.5)) == (2.5, 0.0)


@pytest.fixture(scope="module")
def report() -> EvaluationReport:
    """Base-stock 18 (reference) vs 19 at L=2, p=9 on 24 shared episodes."""
    domain = get_domain("inventory")
    return evaluate_policies(
        domain, SCENARIO, [("low", BaseStockPolicy(18.0)), ("high", BaseStockPolicy(19.0))],
        episodes=24, seed=11, device=CPU,
    )


def test_paired_difference_is_the_difference_of_means(report: EvaluationReport) -> None:
    """diff_vs_first equals mean(high) - mean(low), per metric; the reference's own diff is 0."""
    table = report.table()
    for metric in report.per_episode[report.labels[0]]:
        rows = {row["policy"]: row for row in table.filter(table["metric"] == metric).iter_rows(named=True)}
        assert rows["high"]["diff_vs_first"] == pytest.approx(rows["high"]["mean"] - rows["low"]["mean"], abs=1e-9)
        assert rows["low"]["diff_vs_first"] == 0.0
        assert rows["low"]["diff_ci95"] == 0.0
        assert rows["high"]["n"] == 24
        direct = report.per_episode["high"][metric] - report.per_episode["low"][metric]
        assert rows["high"]["diff_ci95"] == pytest.approx(mean_ci95(direct)[1], rel=1e-12)


def test_common_random_numbers_shrink_the_difference_interval(report: EvaluationReport) -> None:
    """Both policies saw the same demand, so the paired interval is narrower than either own interval
    and much narrower than the sqrt(a^2 + b^2) that independent runs would give."""
    table = report.table().filter(report.table()["metric"] == "cost_per_period")
    rows = {row["policy"]: row for row in table.iter_rows(named=True)}
    assert rows["high"]["diff_ci95"] > 0
    assert rows["high"]["diff_ci95"] < rows["high"]["ci95"]
    assert rows["high"]["diff_ci95"] < rows["low"]["ci95"]
    assert rows["high"]["diff_ci95"] < 0.5 * np.hypot(rows["high"]["ci95"], rows["low"]["ci95"])


def test_policies_face_the_same_demand() -> None:
    """The same policy under two labels gets identical episodes: every label draws from one seed."""
    report = evaluate_policies(
        get_domain("inventory"), SCENARIO, [("a", BaseStockPolicy(17.0)), ("b", BaseStockPolicy(17.0))],
        episodes=6, seed=5, device=CPU,
    )
    for metric, values in report.per_episode["a"].items():
        np.testing.assert_array_equal(values, report.per_episode["b"][metric])
    assert np.ptp(report.per_episode["a"]["cost_per_period"]) > 0  # episodes themselves differ
    row = report.table().filter((report.table()["policy"] == "b") & (report.table()["metric"] == "cost_per_period"))
    assert row["diff_vs_first"][0] == 0.0


def test_to_json_shape(report: EvaluationReport) -> None:
    payload = json.loads(json.dumps(report.to_json()))
    assert payload["domain"] == "inventory"
    assert payload["episodes"] == 24
    assert payload["seed"] == 11
    assert payload["scenario"]["lead_time"] == 2
    assert [r["policy"] for r in payload["results"]] == ["low", "high"]
    high = payload["results"][1]
    assert set(high["metrics"]) == set(report.per_episode["high"]) <= set(get_domain("inventory").metrics)
    assert high["metrics"]["cost_per_period"] == pytest.approx(report.per_episode["high"]["cost_per_period"].mean())


def test_duplicate_labels_are_refused() -> None:
    with pytest.raises(DecisionlabError, match="more than once: a"):
        evaluate_policies(get_domain("inventory"), SCENARIO, [("a", BaseStockPolicy(1.0)), ("a", BaseStockPolicy(2.0))],
                          episodes=2, seed=0, device=CPU)


@pytest.mark.parametrize("episodes", [0, -3])
def test_episodes_below_one_are_refused(episodes: int) -> None:
    with pytest.raises(DecisionlabError, match="episodes"):
        evaluate_policies(get_domain("inventory"), SCENARIO, [("a", BaseStockPolicy(1.0))],
                          episodes=episodes, seed=0, device=CPU)


def test_no_policies_is_refused() -> None:
    with pytest.raises(DecisionlabError):
        evaluate_policies(get_domain("inventory"), SCENARIO, [], episodes=2, seed=0, device=CPU)


def test_effective_episodes_are_the_episodes_scored(report: EvaluationReport) -> None:
    assert report.effective_episodes == report.episodes == 24
    assert report.to_json()["effective_episodes"] == 24


def _capped(limit: int):  # noqa: ANN202
    """The inventory domain with its single-store setting limited to ``limit`` episodes (``max_episodes``)."""
    import dataclasses

    from decisionlab.core.spec import DomainSpec

    inventory = get_domain("inventory")
    single = dataclasses.replace(inventory.setting("single_store"), max_episodes=lambda scenario: limit,
                                 default_episodes=64)
    return DomainSpec("capped", "capped", "", [single], "lost_sales"), single


def test_max_episodes_refuses_more_and_caps_the_default() -> None:
    from decisionlab.core.errors import ScenarioError
    from decisionlab.core.evaluation import check_episodes, default_episodes

    domain, single = _capped(5)
    with pytest.raises(ScenarioError, match="episodes: at most 5 for this scenario, got 6"):
        evaluate_policies(domain, SCENARIO, [("a", BaseStockPolicy(18.0))], episodes=6, seed=0, device=CPU)
    check_episodes(single, SCENARIO, 5)
    assert default_episodes(single, SCENARIO) == 5
    assert default_episodes(get_domain("inventory").setting("single_store"), SCENARIO) == 64  # no limit
    done = evaluate_policies(domain, SCENARIO, [("a", BaseStockPolicy(18.0))], episodes=5, seed=0, device=CPU)
    assert done.effective_episodes == 5
