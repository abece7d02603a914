"""Comparing policies on common random numbers.

Every policy is run on the same seed, hence on the same exogenous paths, so per-episode
differences are paired. For each episode metric we report the mean, the 95% confidence
half-width (Student t over episodes) and the paired difference to the first policy with its own
half-width. Statistics that are not episode averages (a standard deviation, a CVaR,
mean + λ·variance) enter as per-episode influence values whose mean is the statistic, so the same
t-interval and pairing apply to them (see domains/execution/metrics.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import torch
from scipy import stats

from decisionlab.core.errors import DecisionlabError
from decisionlab.core.policy import Policy
from decisionlab.core.scenario import Scenario
from decisionlab.core.spec import DomainSpec


def mean_ci95(values: np.ndarray) -> tuple[float, float]:
    """Mean and 95% half-width of ``values [n]`` (half-width 0 when n < 2)."""
    values = np.asarray(values, dtype=np.float64)
    n = values.size
    mean = float(values.mean())
    if n < 2:
        return mean, 0.0
    half = float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n))
    return mean, half


@dataclass
class EvaluationReport:
    """Per-episode metrics of N policies on shared seeds, with summaries."""

    domain: str
    scenario: Scenario
    labels: list[str]
    per_episode: dict[str, dict[str, np.ndarray]]  # label -> metric -> [episodes]
    episodes: int
    seed: int

    def table(self) -> pl.DataFrame:
        """Long table: policy, metric, mean, ci95, diff_vs_first, diff_ci95, n."""
        first = self.labels[0]
        rows = []
        for label in self.labels:
            for metric, values in self.per_episode[label].items():
                mean, half = mean_ci95(values)
                diff, diff_half = mean_ci95(values - self.per_episode[first][metric])
                rows.append(
                    {
                        "policy": label,
                        "metric": metric,
                        "mean": mean,
                        "ci95": half,
                        "diff_vs_first": diff,
                        "diff_ci95": diff_half,
                        "n": int(values.size),
                    }
                )
        return pl.DataFrame(rows)

    def to_json(self) -> dict[str, Any]:
        """The CLI's ``--json`` shape: domain, resolved scenario, one entry per policy."""
        table = self.table()
        results = []
        for label in self.labels:
            part = table.filter(pl.col("policy") == label)
            results.append(
                {
                    "policy": label,
                    "metrics": dict(zip(part["metric"], part["mean"], strict=True)),
                    "ci95": dict(zip(part["metric"], part["ci95"], strict=True)),
                    "diff_vs_first": dict(zip(part["metric"], part["diff_vs_first"], strict=True)),
                    "diff_ci95": dict(zip(part["metric"], part["diff_ci95"], strict=True)),
                }
            )
        return {
            "domain": self.domain,
            "scenario": self.scenario.describe(),
            "episodes": self.episodes,
            "seed": self.seed,
            "results": results,
        }


def evaluate_policies(
    domain: DomainSpec,
    scenario: Scenario,
    policies: Sequence[tuple[str, Policy]],
    *,
    episodes: int,
    seed: int,
    device: torch.device,
) -> EvaluationReport:
    """Evaluate each ``(label, policy)`` on the same ``seed``; the first is the reference."""
    labels = [label for label, _ in policies]
    if not labels:
        raise DecisionlabError("give at least one policy to evaluate")
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise DecisionlabError(f"policy given more than once: {', '.join(repeated)}")
    if episodes < 1:
        raise DecisionlabError(f"episodes must be >= 1 (got {episodes})")
    per_episode = {
        label: domain.episode_metrics(scenario, policy, episodes, seed, device)
        for label, policy in policies
    }
    return EvaluationReport(
        domain=domain.name,
        scenario=scenario,
        labels=[label for label, _ in policies],
        per_episode=per_episode,
        episodes=episodes,
        seed=seed,
    )
