"""HDPO on the single store: a short run learns a near-optimal policy that survives a registry round trip."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from decisionlab.core.errors import DecisionlabError
from decisionlab.core.policy import Policy
from decisionlab.core.resolve import build_policy
from decisionlab.core.spec import TrainOutcome, get_domain
from decisionlab.core.store.registry import PolicyRegistry
from decisionlab.domains.inventory.single_store.dp import solve_lost_sales
from decisionlab.domains.inventory.single_store.metrics import episode_metrics
from decisionlab.domains.inventory.single_store.policies import OrderMLP
from decisionlab.domains.inventory.single_store.scenario import LostSalesScenario
from decisionlab.domains.inventory.single_store.train import HDPOSettings, train_hdpo

CPU = torch.device("cpu")
SCENARIO = LostSalesScenario(lead_time=1, underage_cost=4.0, horizon_periods=600, warmup_periods=100)
OPTIMUM = 4.0407  # Zipkin (2008), L=1, p=4


def _short_settings(**overrides: Any) -> HDPOSettings:
    """A run of a few seconds; only fields the settings model has are passed (it is being tuned)."""
    wanted = {"max_steps": 150, "batch_size": 256, "eval_every": 50, "learning_rate": 1e-2, "patience": 10,
              "train_paths": 2048, "eval_paths": 256, "eval_periods": 300, "eval_warmup": 50, **overrides}
    return HDPOSettings(**{k: v for k, v in wanted.items() if k in HDPOSettings.model_fields})


@pytest.fixture(scope="module")
def outcome() -> TrainOutcome:
    return train_hdpo(SCENARIO, 0, CPU, False, _short_settings())


def _cost(policy: Policy) -> float:
    return float(episode_metrics(SCENARIO, policy, 128, 7, CPU)["cost_per_period"].mean())


def test_short_run_is_near_optimal_and_beats_the_untrained_policy(outcome: TrainOutcome) -> None:
    """Independently simulated, the trained policy is within 10% of the DP optimum and better than
    an untrained network."""
    assert solve_lost_sales(1, 1.0, 4.0, 5.0).average_cost == pytest.approx(OPTIMUM, abs=1e-3)
    torch.manual_seed(0)
    untrained = OrderMLP(SCENARIO.lead_time, SCENARIO.demand_mean)
    trained_cost = _cost(outcome.policy)
    assert trained_cost < _cost(untrained)
    assert trained_cost < 1.10 * OPTIMUM
    assert trained_cost > 0.99 * OPTIMUM  # nothing beats the optimum (up to sampling noise)


def test_outcome_record(outcome: TrainOutcome) -> None:
    """Metrics, learning curve and settings are reported; the curve starts with the untrained score."""
    assert outcome.metrics["cost_per_period"] < outcome.curve["eval_score"][0]
    assert outcome.metrics["cost_per_period"] < 1.10 * OPTIMUM
    assert outcome.metrics["train_steps"] <= 150
    assert outcome.curve["step"][0] == 0
    assert outcome.curve["eval_score"].min() < outcome.curve["eval_score"][0]
    assert {"step", "train_loss", "eval_score", "seconds"} <= set(outcome.curve.columns)
    assert outcome.algo_config["max_steps"] == 150
    assert outcome.policy_config["lead_time"] == 1


def test_policy_config_rebuilds_identical_actions(outcome: TrainOutcome) -> None:
    """``load_policy(policy_config, state_dict)`` gives a policy that acts exactly like the trained one."""
    spec = get_domain("inventory")
    weights = {k: v.clone() for k, v in outcome.policy.state_dict().items()}
    rebuilt = spec.load_policy(outcome.policy_config, weights, SCENARIO, CPU)
    obs = torch.rand(256, 2, generator=torch.Generator().manual_seed(0)) * 15
    obs[:8] = torch.tensor([[0.0, 0.0], [5.0, 5.0], [12.0, 0.0], [0.0, 12.0], [3.0, 4.0], [1, 2], [7, 1], [30, 30]])
    with torch.no_grad():
        assert torch.equal(rebuilt.act(obs), outcome.policy.act(obs))
    orders = rebuilt.act(obs)
    assert (orders >= 0).all()
    assert orders[0] > orders[-1]  # an empty store orders more than an over-stocked one


def test_registry_round_trip_through_build_policy(outcome: TrainOutcome) -> None:
    """Saved with its config, the policy comes back by name via build_policy and acts the same."""
    spec = get_domain("inventory")
    registry = PolicyRegistry()
    registry.save("inventory", "hdpo_test", outcome.policy.state_dict(), {"policy_config": outcome.policy_config})
    label, policy = build_policy(spec, SCENARIO, "hdpo_test", CPU, registry)
    assert label == "inventory/hdpo_test@1"
    obs = torch.tensor([[0.0, 0.0], [4.0, 6.0], [20.0, 1.0]])
    with torch.no_grad():
        assert torch.equal(policy.act(obs), outcome.policy.act(obs))
    np.testing.assert_array_equal(
        episode_metrics(SCENARIO, policy, 4, 1, CPU)["cost_per_period"],
        episode_metrics(SCENARIO, outcome.policy, 4, 1, CPU)["cost_per_period"],
    )


def test_load_policy_refuses_another_lead_time(outcome: TrainOutcome) -> None:
    spec = get_domain("inventory")
    other = LostSalesScenario(lead_time=2)
    with pytest.raises(DecisionlabError, match="lead_time"):
        spec.load_policy(outcome.policy_config, outcome.policy.state_dict(), other, CPU)
    with pytest.raises(DecisionlabError, match="kind"):
        spec.load_policy({**outcome.policy_config, "kind": "transformer"}, outcome.policy.state_dict(), SCENARIO, CPU)


def test_same_seed_same_policy() -> None:
    """Training is reproducible from the seed (a very short run)."""
    settings = _short_settings(max_steps=20, eval_every=10, train_paths=512, eval_paths=64, eval_periods=100)
    a = train_hdpo(SCENARIO, 3, CPU, False, settings)
    b = train_hdpo(SCENARIO, 3, CPU, False, settings)
    for key, value in a.policy.state_dict().items():
        assert torch.equal(value, b.policy.state_dict()[key])
    assert a.metrics["cost_per_period"] == b.metrics["cost_per_period"]
