"""HDPO on inventory networks: short runs learn, the policy round-trips through the registry, and
(slow) the acceptance targets: backlog / serial within 1% of the base-stock / echelon optimum,
one warehouse beats the best heuristic."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import torch

from decisionlab.core.errors import DecisionlabError
from decisionlab.core.evaluation import mean_ci95
from decisionlab.core.seeding import make_generator
from decisionlab.core.spec import TrainOutcome
from decisionlab.core.store.registry import PolicyRegistry
from decisionlab.domains.inventory import SPEC
from decisionlab.domains.inventory.network.metrics import network_episode_metrics
from decisionlab.domains.inventory.network.scenario import (
    BacklogScenario,
    OneWarehouseScenario,
    SerialScenario,
    TransshipmentScenario,
)
from decisionlab.domains.inventory.network.search import best_capped_echelon_stock, best_echelon_stock
from decisionlab.domains.inventory.network.sim import NetworkSim
from decisionlab.domains.inventory.network.train import (
    NetworkHDPOSettings,
    NetworkMLP,
    train_network_hdpo,
    window_costs,
)

CPU = torch.device("cpu")
BACKLOG = BacklogScenario(allow_negative_demand=True, horizon_periods=1500, warmup_periods=200)


def _quick(**overrides: Any) -> NetworkHDPOSettings:
    """A run of a few seconds."""
    base = {"max_steps": 120, "batch_size": 128, "periods": 24, "learning_rate": 1e-2, "eval_every": 30,
            "eval_from": 0.0, "eval_paths": 128, "eval_periods": 200, "eval_warmup": 50, "hidden": (32, 32)}
    return NetworkHDPOSettings(**{**base, **overrides})


def _cost(scenario, policy, episodes: int = 64, seed: int = 7) -> np.ndarray:
    return network_episode_metrics(scenario, policy, episodes, seed, CPU)["cost_per_period"]


@pytest.fixture(scope="module")
def backlog_outcome() -> TrainOutcome:
    return train_network_hdpo(BACKLOG, 0, CPU, False, _quick())


def test_short_backlog_run_is_near_the_closed_form_optimum(backlog_outcome: TrainOutcome) -> None:
    """Independently simulated from an empty store, a few-second run is within 5% of (p+h)σ√(L+1)φ(z)
    and far better than the untrained network."""
    optimum = BACKLOG.critical_fractile_cost()
    trained = _cost(BACKLOG, backlog_outcome.policy).mean()
    torch.manual_seed(0)
    untrained = _cost(BACKLOG, NetworkMLP.for_simulator(NetworkSim(BACKLOG), (32, 32))).mean()
    assert optimum * 0.99 < trained < optimum * 1.05 < untrained
    curve = backlog_outcome.curve
    assert curve["step"][0] == 0 and curve["eval_score"].min() < curve["eval_score"][0]
    assert backlog_outcome.metrics["train_steps"] <= 120


def test_config_is_json_and_the_registry_round_trip_gives_identical_actions(backlog_outcome: TrainOutcome) -> None:
    config = json.loads(json.dumps(backlog_outcome.policy_config))
    registry = PolicyRegistry()
    record = registry.save("inventory", "hdpo_backlog_test", backlog_outcome.policy.state_dict(),
                           {"policy_config": config})
    rebuilt = SPEC.load_policy(config, registry.load_weights(record), BACKLOG, CPU)
    sim = NetworkSim(BACKLOG)
    obs = sim.observe(sim.random_state(64, make_generator(0)))
    with torch.no_grad():
        assert torch.equal(rebuilt.act(obs), backlog_outcome.policy.act(obs))
    assert (rebuilt.act(obs) >= 0).all()


def test_loading_refuses_another_network_or_kind(backlog_outcome: TrainOutcome) -> None:
    weights = backlog_outcome.policy.state_dict()
    with pytest.raises(DecisionlabError, match="different network"):
        SPEC.load_policy(backlog_outcome.policy_config, weights, BacklogScenario(lead_time=2), CPU)
    with pytest.raises(DecisionlabError, match="kind"):
        SPEC.load_policy({**backlog_outcome.policy_config, "kind": "order_mlp"}, weights, BACKLOG, CPU)


def test_one_warehouse_short_run_learns_and_orders_on_every_link() -> None:
    scenario = OneWarehouseScenario(n_stores=3, horizon_periods=800, warmup_periods=200)
    outcome = train_network_hdpo(scenario, 1, CPU, False, _quick(max_steps=80))
    torch.manual_seed(0)
    untrained = NetworkMLP.for_simulator(NetworkSim(scenario), (32, 32))
    assert _cost(scenario, outcome.policy, 32).mean() < 0.8 * _cost(scenario, untrained, 32).mean()
    sim = NetworkSim(scenario)
    orders = outcome.policy.act(sim.observe(sim.reset(4)))
    assert orders.shape == (4, sim.n_edges) and (orders > 0).all()  # an empty network orders everywhere


def test_presampled_paths_and_transshipment_train() -> None:
    """The fixed-training-set protocol (``persistent=False``) runs and improves on the start."""
    scenario = TransshipmentScenario(n_stores=2)
    outcome = train_network_hdpo(scenario, 0, CPU, False,
                                 _quick(max_steps=40, persistent=False, train_paths=512, warmup=8))
    assert outcome.curve["eval_score"].min() < outcome.curve["eval_score"][0]


def test_orders_of_the_frozen_tail_get_no_gradient() -> None:
    sim = NetworkSim(BACKLOG)
    orders = torch.ones(10, 4, 1, requires_grad=True)

    class Replay(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.t = 0

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            self.t += 1
            return orders[self.t - 1] * 5

    demand = sim.sample_exogenous(4, 10, make_generator(0))
    costs, end = window_costs(sim, Replay(), demand, sim.reset(4), frozen_tail=3)
    costs.sum().backward()
    assert costs.shape == (4, 10) and not end.on_hand.requires_grad
    assert (orders.grad[7:] == 0).all() and (orders.grad[:6].abs().sum() > 0)


def test_same_seed_same_policy() -> None:
    settings = _quick(max_steps=10, eval_every=5)
    a = train_network_hdpo(BACKLOG, 3, CPU, False, settings)
    b = train_network_hdpo(BACKLOG, 3, CPU, False, settings)
    for key, value in a.policy.state_dict().items():
        assert torch.equal(value, b.policy.state_dict()[key])


# ---- acceptance targets (minutes each: run with -m slow; figures in docs/benchmarks.md) ------------

def _paired_gap(scenario, learned, reference, episodes: int = 64) -> tuple[float, float]:
    """Relative gap of ``learned`` over ``reference`` on common random numbers, and its 95% half-width."""
    a, b = _cost(scenario, learned, episodes, 123), _cost(scenario, reference, episodes, 123)
    mean, half = mean_ci95(a - b)
    return mean / b.mean(), half / b.mean()


@pytest.mark.slow
def test_backlog_hdpo_within_one_percent_of_the_optimum() -> None:
    scenario = BacklogScenario(horizon_periods=3000, warmup_periods=500)
    outcome = train_network_hdpo(scenario, 0, CPU, False)
    gap, _ = _paired_gap(scenario, outcome.policy, best_echelon_stock(scenario))
    assert gap < 0.01


@pytest.mark.slow
def test_serial_hdpo_within_one_percent_of_the_echelon_stock_optimum() -> None:
    scenario = SerialScenario(horizon_periods=3000, warmup_periods=500)
    outcome = train_network_hdpo(scenario, 0, CPU, False)
    gap, _ = _paired_gap(scenario, outcome.policy, best_echelon_stock(scenario))
    assert gap < 0.01


@pytest.mark.slow
@pytest.mark.parametrize("n_stores", [3, 5, 10, 20])
def test_one_warehouse_hdpo_beats_the_best_heuristic(n_stores: int) -> None:
    scenario = OneWarehouseScenario(n_stores=n_stores, horizon_periods=3000, warmup_periods=500)
    outcome = train_network_hdpo(scenario, 0, CPU, False)
    best = min((best_echelon_stock(scenario), best_capped_echelon_stock(scenario)),
               key=lambda p: _cost(scenario, p, 32, 5).mean())
    gap, half = _paired_gap(scenario, outcome.policy, best)
    assert gap + half < 0
