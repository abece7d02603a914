"""Execution KPIs: implementation shortfall and its population statistics.

The evaluation core averages per-episode arrays and puts a Student-t interval on them. The mean shortfall is
a plain average, but the standard deviation, CVaR and the mean-variance objective ``mean(IS) + λ·var(IS)``
are statistics of the whole sample. :func:`population_values` turns each into per-episode *influence
values* whose average is exactly the sample statistic and whose t-interval is the delta-method interval
(paired differences included, because the difference of two such statistics is linear in the paired
influence values to first order):

- mean-variance: ``φ_i = IS_i + λ (IS_i − m)²`` (average = m + λ·var with ddof 0);
- std: ``φ_i = s + ((IS_i − m)² − v)/(2s)`` (average = s);
- CVaR₉₅ (Rockafellar–Uryasev): ``φ_i = q + (IS_i − q)⁺/0.05`` with q the 95% quantile (average = CVaR).

So the CLI's ``mean`` column for these metrics is the statistic itself and its ``ci95`` is honest.
:func:`summarize` gives the same statistics directly from a shortfall sample.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from decisionlab.core import MetricSpec, Policy, Trajectory, make_generator, rollout
from decisionlab.domains.execution.scenario import ExecutionScenario
from decisionlab.domains.execution.sim import ExecutionSim

CVAR_LEVEL = 0.95

METRICS = {
    "mean_variance_objective": MetricSpec(
        "mean_variance_objective", "mean(IS) + λ·var(IS) over the episodes (the objective E + λV)", "lower",
        "currency",
    ),
    "mean_shortfall": MetricSpec("mean_shortfall", "implementation shortfall vs the arrival price", "lower",
                                 "currency"),
    "std_shortfall": MetricSpec("std_shortfall", "standard deviation of the shortfall over the episodes", "lower",
                                "currency"),
    "cvar95_shortfall": MetricSpec("cvar95_shortfall", "mean of the worst 5% of shortfalls (CVaR 95%)", "lower",
                                   "currency"),
    "shortfall_bps": MetricSpec("shortfall_bps", "shortfall in basis points of the arrival value X·S0", "lower",
                                "bps"),
}


@torch.no_grad()
def simulate(
    scenario: ExecutionScenario,
    policy: Policy,
    episodes: int,
    seed: int,
    device: torch.device | str = "cpu",
    record: tuple[str, ...] = (),
) -> tuple[np.ndarray, Trajectory]:
    """Run ``episodes`` complete executions on paths drawn from ``seed`` (common random numbers).

    Returns the shortfall per episode ``[episodes]`` (float64, currency) and the trajectory (``record``
    names per-step ``info`` entries to keep, each ``[episodes, N]``).
    """
    sim = ExecutionSim(scenario, device)
    generator = make_generator(seed, sim.device)
    paths = sim.sample_exogenous(episodes, scenario.horizon_steps, generator)
    traj = rollout(sim, policy, paths, sim.reset(episodes), record=tuple(dict.fromkeys(("shortfall", *record))))
    shortfall = traj.info["shortfall"].double().sum(dim=1)
    return shortfall.cpu().numpy(), traj


def cvar(values: np.ndarray, level: float = CVAR_LEVEL) -> float:
    """Rockafellar–Uryasev CVaR of the upper tail: ``q + E[(X − q)⁺]/(1 − level)``, q the level-quantile."""
    values = np.asarray(values, dtype=np.float64)
    q = float(np.quantile(values, level))
    return q + float(np.mean(np.maximum(values - q, 0.0))) / (1.0 - level)


def population_values(shortfall: np.ndarray, risk_aversion: float, notional: float) -> dict[str, np.ndarray]:
    """Per-episode values ``{metric: [episodes]}`` whose averages are the sample statistics (module docstring)."""
    shortfall = np.asarray(shortfall, dtype=np.float64)
    mean = shortfall.mean()
    centred_sq = (shortfall - mean) ** 2
    var = centred_sq.mean()
    std = float(np.sqrt(var))
    std_values = std + (centred_sq - var) / (2.0 * std) if std > 0 else np.zeros_like(shortfall)
    q = float(np.quantile(shortfall, CVAR_LEVEL))
    return {
        "mean_variance_objective": shortfall + risk_aversion * centred_sq,
        "mean_shortfall": shortfall,
        "std_shortfall": std_values,
        "cvar95_shortfall": q + np.maximum(shortfall - q, 0.0) / (1.0 - CVAR_LEVEL),
        "shortfall_bps": shortfall / notional * 1e4,
    }


def episode_shortfalls(
    scenario: ExecutionScenario, policy: Policy, episodes: int, seed: int, device: torch.device, start: int = 0
) -> dict[str, np.ndarray]:
    """The setting's per-episode values: the shortfall of each episode (``{"shortfall": [episodes]}``);
    :func:`finalize_metrics` turns the shortfalls of all chunks into the KPIs."""
    shortfall, _ = simulate(scenario, policy, episodes, seed, device)
    return {"shortfall": shortfall}


def episode_metrics(
    scenario: ExecutionScenario, policy: Policy, episodes: int, seed: int, device: torch.device
) -> dict[str, np.ndarray]:
    """Influence values of every KPI over ``episodes`` episodes of ``seed``, ``{metric: [episodes]}``."""
    return finalize_metrics(scenario, episode_shortfalls(scenario, policy, episodes, seed, device))


def finalize_metrics(scenario: ExecutionScenario, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Influence values of every KPI over the whole sample, ``{metric: [episodes]}`` (module docstring)."""
    return population_values(values["shortfall"], scenario.risk_aversion, scenario.notional)


def summarize(shortfall: np.ndarray, risk_aversion: float, notional: float | None = None) -> dict[str, float]:
    """The population statistics of a shortfall sample (variance with ddof 0, as in the objective)."""
    shortfall = np.asarray(shortfall, dtype=np.float64)
    out = {
        "mean_shortfall": float(shortfall.mean()),
        "std_shortfall": float(shortfall.std()),
        "cvar95_shortfall": cvar(shortfall),
        "mean_variance_objective": float(shortfall.mean() + risk_aversion * shortfall.var()),
        "n": float(shortfall.size),
    }
    if notional:
        out["shortfall_bps"] = out["mean_shortfall"] / notional * 1e4
    return out


def outperformance(shortfall: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """How a policy beats a reference on paired episodes (positive = cheaper than the reference).

    ``mean`` and ``median`` of the saving, ``probability`` that it saves, ``gain_loss_ratio`` =
    E[saving⁺] / E[saving⁻] (Bernardo–Ledoit).
    """
    saving = np.asarray(reference, dtype=np.float64) - np.asarray(shortfall, dtype=np.float64)
    gains, losses = saving[saving > 0], -saving[saving < 0]
    return {
        "mean": float(saving.mean()),
        "median": float(np.median(saving)),
        "probability": float((saving > 0).mean()),
        "gain_loss_ratio": float(gains.sum() / losses.sum()) if losses.size and losses.sum() > 0 else float("inf"),
    }


def describe(values: dict[str, Any]) -> str:
    """``"mean_shortfall=9.1e+05, ..."`` for logs."""
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
