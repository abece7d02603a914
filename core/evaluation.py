"""Comparing policies on common random numbers.

Every policy is run on the same seed, hence on the same exogenous paths, so per-episode
differences are paired. For each episode metric we report the mean, the 95% confidence
half-width (Student t over episodes) and the paired difference to the first policy with its own
half-width. Population metrics (a standard deviation, a CVaR, mean + λ·variance) are computed on
all episodes at once; their half-widths come from a percentile bootstrap that resamples the same
episode indices for every policy, so their differences stay paired too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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


BOOTSTRAP_RESAMPLES = 1000

PopulationMetric = Callable[[Mapping[str, np.ndarray]], float]


def _bootstrap_half_width(samples: np.ndarray) -> float:
    low, high = np.percentile(samples, [2.5, 97.5])
    return float(high - low) / 2.0


@dataclass
class EvaluationReport:
    """Per-episode metrics of N policies on shared seeds, with summaries."""

    domain: str
    scenario: Scenario
    labels: list[str]
    per_episode: dict[str, dict[str, np.ndarray]]  # label -> metric -> [episodes]
    episodes: int
    seed: int
    population_metrics: Mapping[str, PopulationMetric] = field(default_factory=dict)

    def _population_rows(self) -> list[dict[str, Any]]:
        if not self.population_metrics:
            return []
        first = self.labels[0]
        rng = np.random.default_rng(self.seed)
        index = rng.integers(0, self.episodes, size=(BOOTSTRAP_RESAMPLES, self.episodes))
        rows = []
        for metric, compute in self.population_metrics.items():
            draws = {
                label: np.array([compute({k: v[idx] for k, v in self.per_episode[label].items()}) for idx in index])
                for label in self.labels
            }
            reference = compute(self.per_episode[first])
            for label in self.labels:
                value = compute(self.per_episode[label])
                rows.append(
                    {
                        "policy": label,
                        "metric": metric,
                        "mean": float(value),
                        "ci95": _bootstrap_half_width(draws[label]) if self.episodes > 1 else 0.0,
                        "diff_vs_first": float(value - reference),
                        "diff_ci95": _bootstrap_half_width(draws[label] - draws[first]) if self.episodes > 1 else 0.0,
                        "n": self.episodes,
                    }
                )
        return rows

    def table(self) -> pl.DataFrame:
        """Long table: policy, metric, mean, ci95, diff_vs_first, diff_ci95, n.

        For population metrics ``mean`` holds the metric's value on all episodes."""
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
        rows += self._population_rows()
        order = {label: i for i, label in enumerate(self.labels)}
        return pl.DataFrame(rows).with_columns(pl.col("policy").replace_strict(order).alias("_order")).sort(
            "_order", maintain_order=True
        ).drop("_order")

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
        population_metrics=domain.population_metrics,
    )
