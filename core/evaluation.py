"""Comparing policies on common random numbers.

Every policy is run on the same seed, hence on the same exogenous paths, so per-episode
differences are paired. For each episode metric we report the mean, the 95% confidence
half-width (Student t over episodes) and the paired difference to the first policy with its own
half-width. Statistics that are not episode averages (a standard deviation, a CVaR,
mean + λ·variance) enter as per-episode influence values whose mean is the statistic, so the same
t-interval and pairing apply to them (see domains/execution/metrics.py).

Episodes are simulated in chunks of at most the setting's ``eval_chunk`` (chunk ``k`` draws from
``derive_seed(seed, "chunk", k)``; the first chunk from ``seed`` itself), so the simulation's memory
is bounded whatever the episode count. The per-episode values are kept (paired differences and
influence values need them): an evaluation whose values would need more than
:data:`MAX_VALUES_BYTES` (``$DECISIONLAB_MAX_EVAL_BYTES``) is refused up front, naming the memory.

The intervals assume independent episodes. A setting that scores disjoint parts of a finite data set
declares ``SettingSpec.max_episodes``: asking for more is refused up front (:func:`check_episodes`)
rather than answered with overlapping, correlated episodes and intervals too narrow. The report's
``effective_episodes`` is the number of independent episodes behind its intervals: the episodes
actually scored (a data setting may score fewer than asked when its data ends).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import torch
from scipy import stats

from decisionlab.core.errors import DecisionlabError, ScenarioError
from decisionlab.core.policy import Policy
from decisionlab.core.progress import Progress
from decisionlab.core.scenario import Scenario
from decisionlab.core.seeding import derive_seed
from decisionlab.core.spec import DomainSpec, SettingSpec

MAX_VALUES_ENV = "DECISIONLAB_MAX_EVAL_BYTES"
MAX_VALUES_BYTES = 2 * 1024**3


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
    setting: str = ""
    effective_episodes: int | None = None  # independent episodes behind the intervals; None: ``episodes``

    def __post_init__(self) -> None:
        if self.effective_episodes is None:
            self.effective_episodes = self.episodes

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

    def wide(self, primary: str) -> pl.DataFrame:
        """One row per policy (in evaluation order): ``primary``'s mean and 95% half-width, its
        paired difference to the first policy with its half-width, then every other metric's mean."""
        table = self.table()
        head = table.filter(pl.col("metric") == primary).select(
            "policy", pl.col("mean").alias(primary), "ci95", "diff_vs_first", "diff_ci95")
        frame = pl.DataFrame({"policy": self.labels}).join(head, on="policy", how="left", maintain_order="left")
        for metric in dict.fromkeys(table["metric"]):
            if metric != primary:
                part = table.filter(pl.col("metric") == metric).select("policy", pl.col("mean").alias(metric))
                frame = frame.join(part, on="policy", how="left", maintain_order="left")
        return frame

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
            "setting": self.setting,
            "scenario": self.scenario.describe(),
            "episodes": self.episodes,
            "effective_episodes": self.effective_episodes,
            "seed": self.seed,
            "results": results,
        }


def chunk_seed(seed: int, index: int) -> int:
    """The seed of evaluation chunk ``index`` (the first chunk uses ``seed`` itself)."""
    return int(seed) if index == 0 else derive_seed(seed, "chunk", index)


def max_values_bytes() -> int:
    raw = os.environ.get(MAX_VALUES_ENV, "").strip()
    try:
        return int(raw) if raw else MAX_VALUES_BYTES
    except ValueError:
        raise DecisionlabError(f"{MAX_VALUES_ENV} must be a number of bytes, got {raw!r}") from None


def check_memory(setting: SettingSpec, policies: int, episodes: int) -> None:
    """Refuse an evaluation whose per-episode values would exceed the memory budget."""
    needed = 8 * len(setting.metrics) * policies * episodes
    limit = max_values_bytes()
    if needed > limit:
        raise DecisionlabError(
            f"episodes: {episodes:,} episodes of {policies} policies x {len(setting.metrics)} metrics keep "
            f"{needed / 1024**3:.1f} GiB of per-episode values, over the limit of {limit / 1024**3:.1f} GiB "
            f"({MAX_VALUES_ENV}); use fewer episodes (a 95% CI shrinks with the square root of their number)"
        )


def episode_limit(setting: SettingSpec, scenario: Scenario) -> int | None:
    """The most episodes an evaluation of ``scenario`` may ask for (``SettingSpec.max_episodes``), or None."""
    return None if setting.max_episodes is None else setting.max_episodes(scenario)


def check_episodes(setting: SettingSpec, scenario: Scenario, episodes: int) -> None:
    """Refuse more episodes than the scenario has disjoint ones (:class:`ScenarioError` naming ``episodes``
    and the maximum)."""
    limit = episode_limit(setting, scenario)
    if limit is not None and episodes > limit:
        raise ScenarioError(
            f"episodes: at most {limit:,} for this scenario, got {episodes:,}: the {setting.title} setting scores "
            f"disjoint parts of its data (overlapping episodes would be correlated and their confidence intervals "
            f"too narrow) and only {limit:,} fit; ask for {limit:,} or fewer, or for more data"
        )


def default_episodes(setting: SettingSpec, scenario: Scenario) -> int:
    """Episodes an evaluation runs when none are asked for: the setting's ``default_episodes``, capped at
    the scenario's maximum (:func:`episode_limit`)."""
    limit = episode_limit(setting, scenario)
    return setting.default_episodes if limit is None else max(1, min(setting.default_episodes, limit))


def chunk_plan(setting: SettingSpec, episodes: int) -> list[tuple[int, int, int]]:
    """``(index, start, count)`` of each chunk an evaluation of ``episodes`` episodes simulates."""
    chunk = max(1, int(setting.eval_chunk))
    return [(index, start, min(chunk, episodes - start)) for index, start in enumerate(range(0, episodes, chunk))]


def run_chunk(setting: SettingSpec, scenario: Scenario, policy: Policy, index: int, start: int, count: int,
              seed: int, device: torch.device) -> dict[str, np.ndarray]:
    """``{metric: [<= count]}`` of chunk ``index`` (its seed :func:`chunk_seed`; fewer episodes where a
    data-replay setting's data ends)."""
    return setting.episode_metrics(scenario, policy, count, chunk_seed(seed, index), device, start=start)


def merge_chunks(setting: SettingSpec, scenario: Scenario, parts: Sequence[dict[str, np.ndarray]],
                 counts: Sequence[int]) -> dict[str, np.ndarray]:
    """The chunks' values in order, up to the first that came back short (the data ended there), finalized
    as the setting says: every backend merges through here, so they give the same numbers."""
    kept = []
    for part, count in zip(parts, counts, strict=True):
        kept.append(part)
        if len(next(iter(part.values()))) < count:
            break
    values = {name: np.concatenate([part[name] for part in kept]) for name in kept[0]}
    return setting.finalize_metrics(scenario, values) if setting.finalize_metrics is not None else values


def episode_values(
    setting: SettingSpec, scenario: Scenario, policy: Policy, episodes: int, seed: int, device: torch.device,
    progress: bool = False, label: str = "",
) -> dict[str, np.ndarray]:
    """``{metric: [n]}`` of ``policy`` over ``episodes`` episodes, simulated chunk by chunk."""
    parts: list[dict[str, np.ndarray]] = []
    counts: list[int] = []
    with Progress(episodes, f"evaluating {label}".strip(), unit="episode", enabled=progress) as bar:
        for index, start, count in chunk_plan(setting, episodes):
            values = run_chunk(setting, scenario, policy, index, start, count, seed, device)
            parts.append(values)
            counts.append(count)
            got = len(next(iter(values.values())))
            bar.update(got)
            if got < count:  # a data-replay setting with no more episodes
                break
    return merge_chunks(setting, scenario, parts, counts)


def check_labels(labels: Sequence[str], episodes: int) -> None:
    """At least one policy, none twice, at least one episode."""
    if not labels:
        raise DecisionlabError("give at least one policy to evaluate")
    repeated = sorted({label for label in labels if list(labels).count(label) > 1})
    if repeated:
        raise DecisionlabError(f"policy given more than once: {', '.join(repeated)}")
    if episodes < 1:
        raise DecisionlabError(f"episodes must be >= 1 (got {episodes})")


def report_of(domain: DomainSpec, scenario: Scenario, per_episode: dict[str, dict[str, np.ndarray]], episodes: int,
              seed: int) -> EvaluationReport:
    """The report of per-episode values ``{label: {metric: [n]}}`` (labels in evaluation order)."""
    scored = min(len(next(iter(values.values()))) for values in per_episode.values())
    return EvaluationReport(
        domain=domain.name,
        scenario=scenario,
        labels=list(per_episode),
        per_episode=per_episode,
        episodes=episodes,
        seed=seed,
        setting=domain.setting_of(scenario).name,
        effective_episodes=scored,
    )


def evaluate_policies(
    domain: DomainSpec,
    scenario: Scenario,
    policies: Sequence[tuple[str, Policy]],
    *,
    episodes: int,
    seed: int,
    device: torch.device,
    progress: bool = False,
) -> EvaluationReport:
    """Evaluate each ``(label, policy)`` on the same ``seed``; the first is the reference."""
    labels = [label for label, _ in policies]
    check_labels(labels, episodes)
    setting = domain.setting_of(scenario)
    check_memory(setting, len(labels), episodes)
    check_episodes(setting, scenario, episodes)
    per_episode = {
        label: episode_values(setting, scenario, policy, episodes, seed, device, progress, label)
        for label, policy in policies
    }
    return report_of(domain, scenario, per_episode, episodes, seed)
