"""Pathwise training against the analytic optimum, and learned policies through the registry."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from decisionlab.core.errors import DecisionlabError
from decisionlab.core.evaluation import evaluate_policies, mean_ci95
from decisionlab.core.resolve import build_policy
from decisionlab.core.seeding import make_generator
from decisionlab.core.spec import get_domain
from decisionlab.core.store.registry import PolicyRegistry
from decisionlab.domains.execution.policies import ExecutionMLP, QGridPolicy
from decisionlab.domains.execution.scenario import ExecutionScenario
from decisionlab.domains.execution.sim import ExecutionSim
from decisionlab.domains.execution.train import (
    DEFAULT_SETTINGS,
    PathwiseSettings,
    held_out_ratio,
    train_pathwise_policy,
)

CPU = torch.device("cpu")
QUICK = PathwiseSettings(max_steps=150, batch_size=512, train_paths=8192, eval_paths=8192, eval_every=50,
                         patience=3, learning_rate=3e-3)


def _scenario(name: str, **overrides: object) -> ExecutionScenario:
    scenario = get_domain("execution").scenario(name, overrides)
    assert isinstance(scenario, ExecutionScenario)
    return scenario


def _fresh_paths(scenario: ExecutionScenario, n: int = 50_000, seed: int = 12345) -> torch.Tensor:
    return ExecutionSim(scenario).sample_exogenous(n, scenario.horizon_steps, make_generator(seed))


def test_price_blind_pathwise_reaches_the_ac_optimum_within_half_a_percent() -> None:
    """Constant impact, no price features: every such policy is a static schedule, the AC trajectory is the
    optimum, and a short pathwise run gets within 0.5% of it on fresh held-out paths."""
    scenario = _scenario("almgren_chriss")
    outcome = train_pathwise_policy(scenario, 0, CPU, progress=False,
                                    settings=QUICK.model_copy(update={"price_features": False}))
    ratio = held_out_ratio(scenario, outcome.policy, _fresh_paths(scenario))
    assert abs(ratio - 1) < 0.005
    assert outcome.metrics["objective_vs_static_expected"] < 1.005


def test_adaptive_pathwise_beats_every_static_schedule_at_constant_impact() -> None:
    """With price features the policy trades adaptively (Almgren & Lorenz 2007) and beats the AC optimum."""
    scenario = _scenario("almgren_chriss")
    outcome = train_pathwise_policy(scenario, 0, CPU, progress=False, settings=QUICK)
    assert held_out_ratio(scenario, outcome.policy, _fresh_paths(scenario)) < 0.99


def test_learned_policy_round_trips_through_the_registry(decisionlab_home: Path) -> None:
    spec = get_domain("execution")
    scenario = _scenario("latent_liquidity")
    torch.manual_seed(0)
    net = ExecutionMLP(scenario.horizon_steps, scenario.shares, (16, 16), price_features=False)
    card = {"scenario_name": "latent_liquidity", "scenario": scenario.describe(), "algo": "pathwise",
            "policy_config": net.config(), "metrics": {}}
    PolicyRegistry().save("execution", "pw", net.state_dict(), card)
    label, loaded = build_policy(spec, scenario, "pw", CPU)
    assert label == "execution/pw@1"
    obs = ExecutionSim(scenario).observe(ExecutionSim(scenario).reset(4))
    torch.testing.assert_close(loaded.act(obs), net.act(obs))
    # any order size: the network acts on fractions
    bigger = _scenario("latent_liquidity", shares=3e6)
    _, scaled = build_policy(spec, bigger, "execution/pw@1", CPU)
    torch.testing.assert_close(scaled.act(obs), 3 * net.act(obs))
    with pytest.raises(DecisionlabError, match="horizon_steps=10"):
        build_policy(spec, _scenario("almgren_chriss"), "pw", CPU)
    q = QGridPolicy(10, scenario.shares, {"kind": "fraction", "levels": 5}, (8,))
    PolicyRegistry().save("execution", "dq", q.state_dict(), {**card, "policy_config": q.config()})
    _, loaded_q = build_policy(spec, scenario, "dq", CPU)
    torch.testing.assert_close(loaded_q.act(obs), q.act(obs))


@pytest.mark.slow
def test_default_training_meets_the_acceptance() -> None:
    """Default settings (about 2 minutes): price-blind within 0.5% of AC at constant impact; under latent
    liquidity both variants beat TWAP and the best static schedules by more than the paired 95% CI."""
    spec = get_domain("execution")
    constant = _scenario("almgren_chriss")
    blind = train_pathwise_policy(constant, 0, CPU, progress=False,
                                  settings=DEFAULT_SETTINGS.model_copy(update={"price_features": False}))
    assert abs(held_out_ratio(constant, blind.policy, _fresh_paths(constant, 100_000)) - 1) < 0.005
    latent = _scenario("latent_liquidity")
    learned = [
        (f"pathwise_prices_{flag}", train_pathwise_policy(
            latent, 0, CPU, progress=False, settings=DEFAULT_SETTINGS.model_copy(update={"price_features": flag})
        ).policy)
        for flag in (False, True)
    ]
    baselines = [(name, spec.policy(name).build(latent, CPU)) for name in ("twap", "static_expected", "static_best")]
    report = evaluate_policies(spec, latent, [*learned, *baselines], episodes=100_000, seed=777, device=CPU)
    for label, _ in learned:
        mine = report.per_episode[label]["mean_variance_objective"]
        for name, _ in baselines:
            mean, half = mean_ci95(mine - report.per_episode[name]["mean_variance_objective"])
            assert mean + half < 0, (label, name, mean, half)
