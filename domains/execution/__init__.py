"""Optimal execution: discrete Almgren–Chriss with constant, profiled or latent stochastic liquidity.

Oracles (closed-form AC trajectory and moments, exact static optimum by one tridiagonal solve), static
baselines (TWAP, VWAP, best static with E[η_k]), pathwise-trained networks (algorithm ``pathwise``) and Double
DQN on a fraction-of-remaining-shares grid (algorithm ``ddqn``: ``discrete.py`` and the ``q_grid`` policy
kind, see ``train.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from decisionlab.core.errors import DecisionlabError
from decisionlab.core.policy import Policy
from decisionlab.core.scenario import Scenario
from decisionlab.core.spec import AlgoSpec, DomainSpec, PolicySpec, TrainOutcome, register_domain
from decisionlab.domains.execution.metrics import METRICS, episode_metrics
from decisionlab.domains.execution.policies import (
    ExecutionMLP,
    QGridPolicy,
    ac_optimal_policy,
    static_best_policy,
    static_expected_policy,
    twap_policy,
    vwap_policy,
)
from decisionlab.domains.execution.scenario import SCENARIOS, ExecutionScenario
from decisionlab.domains.execution.sim import ExecutionSim
from decisionlab.domains.execution.train import DDQNOptions, PathwiseOptions

NETWORK_KINDS = ("execution_mlp", "q_grid")


def _execution(scenario: Scenario) -> ExecutionScenario:
    if not isinstance(scenario, ExecutionScenario):
        raise DecisionlabError(f"this policy needs an execution scenario, not {type(scenario).__name__}")
    return scenario


def _train_pathwise(
    scenario: Scenario, seed: int, device: torch.device, progress: bool, options: Mapping[str, Any]
) -> TrainOutcome:
    from decisionlab.core.scenario import resolve_options
    from decisionlab.domains.execution.train import settings_from_options, train_pathwise_policy

    settings = settings_from_options(resolve_options(PathwiseOptions, options, "pathwise option"))
    return train_pathwise_policy(_execution(scenario), seed, device, progress, settings)


def _train_ddqn(
    scenario: Scenario, seed: int, device: torch.device, progress: bool, options: Mapping[str, Any]
) -> TrainOutcome:
    from decisionlab.core.scenario import resolve_options
    from decisionlab.domains.execution.train import ddqn_settings_from_options, train_ddqn_policy

    settings = ddqn_settings_from_options(resolve_options(DDQNOptions, options, "ddqn option"))
    return train_ddqn_policy(_execution(scenario), seed, device, progress, settings)


def load_policy(
    config: dict[str, Any], weights: dict[str, torch.Tensor], scenario: Scenario, device: torch.device
) -> Policy:
    """Rebuild a registered network for ``scenario`` (same number of steps; any order size)."""
    kind = config.get("kind")
    if kind not in NETWORK_KINDS:
        raise DecisionlabError(f"unknown execution network kind {kind!r}; known: {', '.join(NETWORK_KINDS)}")
    scenario = _execution(scenario)
    if int(config["horizon_steps"]) != scenario.horizon_steps:
        raise DecisionlabError(
            f"this policy was trained for horizon_steps={config['horizon_steps']}, the scenario has "
            f"horizon_steps={scenario.horizon_steps}: train one for this horizon"
        )
    hidden = tuple(config["hidden"])
    # Observations are scale-free: the network serves any order size; shares only converts fractions.
    if kind == "execution_mlp":
        net: torch.nn.Module = ExecutionMLP(scenario.horizon_steps, scenario.shares, hidden,
                                           bool(config.get("price_features", True)))
    else:
        net = QGridPolicy(scenario.horizon_steps, scenario.shares, config.get("grid"), hidden, config.get("q_net"))
    net.load_state_dict(weights)
    return net.to(device).eval()  # type: ignore[return-value]


def _router():
    from decisionlab.domains.execution.api import build_router

    return build_router()


SPEC = register_domain(
    DomainSpec(
        name="execution",
        title="Optimal execution",
        description="Execute a parent order over N steps under Almgren–Chriss impact with time-varying, "
        "latent liquidity; minimise E + λ·V of the implementation shortfall.",
        scenarios=SCENARIOS,
        policies={
            "ac_optimal": PolicySpec(
                "ac_optimal", "Almgren–Chriss closed form (sinh, discrete κ) with the nominal constant impact",
                lambda s, d: ac_optimal_policy(_execution(s), d),
            ),
            "twap": PolicySpec("twap", "equal child orders X/N", lambda s, d: twap_policy(_execution(s), d)),
            "vwap": PolicySpec(
                "vwap", "child orders proportional to the expected volume profile",
                lambda s, d: vwap_policy(_execution(s), d),
            ),
            "static_expected": PolicySpec(
                "static_expected", "exact best static schedule with E[η_k] plugged in (tridiagonal solve)",
                lambda s, d: static_expected_policy(_execution(s), d),
            ),
            "static_best": PolicySpec(
                "static_best", "best static schedule for E + λV including the impact-cost variance (numerical)",
                lambda s, d: static_best_policy(_execution(s), d),
            ),
        },
        algos={
            "pathwise": AlgoSpec(
                "pathwise", "pathwise gradients of mean(IS) + λ·var(IS) through the simulator (HDPO), MLP policy",
                _train_pathwise,
                options_model=PathwiseOptions,
            ),
            "ddqn": AlgoSpec(
                "ddqn", "Double DQN (dueling, n-step, scalar or HL-Gauss head) on a 21-level grid of fractions of "
                "the remaining shares; rewards E + λV additive (bps, mark-to-market)",
                _train_ddqn,
                options_model=DDQNOptions,
            ),
        },
        metrics=METRICS,
        primary_metric="mean_variance_objective",
        episode_metrics=episode_metrics,
        make_simulator=ExecutionSim,
        load_policy=load_policy,
        default_episodes=10_000,
        default_scenario="latent_liquidity",
        default_algo="pathwise",
        router=_router,
        dashboard="decisionlab.domains.execution.dashboard",
    )
)
