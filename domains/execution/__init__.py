"""Optimal execution: discrete Almgren–Chriss with constant, profiled or latent stochastic liquidity.

One setting (the files sit at the top level of the package): oracles (closed-form AC trajectory and
moments, exact static optimum by one tridiagonal solve), static baselines (TWAP, VWAP, best static with
E[η_k]), pathwise-trained networks (algorithm ``pathwise``) and Double DQN on a fraction-of-remaining-shares
grid (algorithm ``ddqn``: ``discrete.py`` and the ``q_grid`` policy kind, see ``train.py``).
"""

from __future__ import annotations

from decisionlab.core import AlgoSpec, DomainSpec, PolicySpec, SettingSpec, ViewSpec, register_domain
from decisionlab.domains.execution.metrics import METRICS, episode_shortfalls, finalize_metrics
from decisionlab.domains.execution.policies import (
    ac_optimal_policy,
    static_best_policy,
    static_expected_policy,
    twap_policy,
    vwap_policy,
)
from decisionlab.domains.execution.scenario import SCENARIOS, ExecutionScenario
from decisionlab.domains.execution.serve import SERVING
from decisionlab.domains.execution.sim import ExecutionSim
from decisionlab.domains.execution.train import DDQNOptions, PathwiseOptions, algo_ddqn, algo_pathwise

VIEWS = "decisionlab.domains.execution.view"


def _static(name: str, description: str, build, expensive: bool = False) -> PolicySpec:  # noqa: ANN001
    return PolicySpec(name, description, build, expensive=expensive, extra={"static": True})


SETTING = SettingSpec(
    name="execution",
    title="Optimal execution",
    description="one parent order over N child orders under Almgren–Chriss impact (constant, intraday profile "
    "or latent stochastic liquidity)",
    scenario_model=ExecutionScenario,
    presets=SCENARIOS,
    make_simulator=lambda scenario, device: ExecutionSim(scenario, device),
    episode_metrics=episode_shortfalls,
    finalize_metrics=finalize_metrics,
    metrics=METRICS,
    primary_metric="mean_variance_objective",
    policies={
        "ac_optimal": _static(
            "ac_optimal", "Almgren–Chriss closed form (sinh, discrete κ) with the nominal constant impact",
            lambda s, d: ac_optimal_policy(s, d)),
        "twap": _static("twap", "equal child orders X/N", lambda s, d: twap_policy(s, d)),
        "vwap": _static("vwap", "child orders proportional to the expected volume profile",
                        lambda s, d: vwap_policy(s, d)),
        "static_expected": _static(
            "static_expected", "exact best static schedule with E[η_k] plugged in (tridiagonal solve)",
            lambda s, d: static_expected_policy(s, d)),
        "static_best": _static(
            "static_best", "best static schedule for E + λV including the impact-cost variance (numerical)",
            lambda s, d: static_best_policy(s, d), expensive=True),
    },
    algos={
        "pathwise": AlgoSpec(
            "pathwise", "pathwise gradients of mean(IS) + λ·var(IS) through the simulator (HDPO), MLP policy",
            algo_pathwise, PathwiseOptions,
            smoke_options={"max_steps": 3, "batch_size": 64, "train_paths": 256, "eval_paths": 256},
        ),
        "ddqn": AlgoSpec(
            "ddqn", "Double DQN (dueling, n-step, scalar or HL-Gauss head) on a 21-level grid of fractions of "
            "the remaining shares; rewards E + λV additive (bps, mark-to-market)",
            algo_ddqn, DDQNOptions,
            smoke_options={"total_env_steps": 400, "num_envs": 8, "batch_size": 32, "eval_paths": 64},
        ),
    },
    policy_kinds={
        "execution_mlp": "decisionlab.domains.execution.policies:ExecutionMLP",
        "q_grid": "decisionlab.domains.execution.policies:QGridPolicy",
    },
    serving=SERVING,
    views=(
        ViewSpec("Efficient frontier", f"{VIEWS}:frontier_tab"),
        ViewSpec("Holdings and shortfalls", f"{VIEWS}:holdings_tab"),
        ViewSpec("Liquidity path", f"{VIEWS}:liquidity_tab"),
    ),
    default_policies=("static_expected", "ac_optimal", "twap"),
    default_episodes=10_000,
    eval_chunk=1 << 18,
)


def _routes():
    from decisionlab.domains.execution.routes import build_router

    return build_router()


SPEC = register_domain(
    DomainSpec(
        name="execution",
        title="Optimal execution",
        description="Execute a parent order over N steps under Almgren–Chriss impact with time-varying, "
        "latent liquidity; minimise E + λ·V of the implementation shortfall.",
        settings=(SETTING,),
        default_scenario="latent_liquidity",
        default_algo="pathwise",
        routes=_routes,
    )
)

__all__ = ["SETTING", "SPEC"]
