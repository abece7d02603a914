"""Population metrics as per-episode influence values: exact averages and honest (delta-method) intervals."""

from __future__ import annotations

import numpy as np
import pytest

from decisionlab.core.evaluation import mean_ci95
from decisionlab.core.spec import get_domain
from decisionlab.domains.execution.metrics import (
    METRICS,
    cvar,
    episode_metrics,
    outperformance,
    population_values,
    summarize,
)
from decisionlab.domains.execution.policies import ac_optimal_policy


def test_influence_values_average_to_the_population_statistics() -> None:
    rng = np.random.default_rng(0)
    shortfall = rng.lognormal(12, 0.5, 5000)
    values = population_values(shortfall, 1e-6, 5e7)
    stats = summarize(shortfall, 1e-6, 5e7)
    for name in ("mean_variance_objective", "mean_shortfall", "std_shortfall", "cvar95_shortfall", "shortfall_bps"):
        assert values[name].mean() == pytest.approx(stats[name], rel=1e-12), name
    assert stats["cvar95_shortfall"] == pytest.approx(np.sort(shortfall)[-250:].mean(), rel=2e-3)
    assert cvar(np.arange(100.0)) == pytest.approx(np.arange(95.0, 100.0).mean(), rel=1e-2)


def test_delta_method_interval_matches_the_bootstrap() -> None:
    """The t-interval over influence values has the width of a bootstrap interval of the statistic."""
    rng = np.random.default_rng(1)
    shortfall = rng.normal(9e5, 6e5, 4000)
    lam = 1e-6
    for name, stat in (("mean_variance_objective", lambda s: s.mean() + lam * s.var()), ("std_shortfall", np.std)):
        _, half = mean_ci95(population_values(shortfall, lam, 1.0)[name])
        samples = [stat(rng.choice(shortfall, shortfall.size)) for _ in range(400)]
        assert half == pytest.approx(1.96 * np.std(samples), rel=0.15), name


def test_episode_metrics_returns_every_metric_per_episode() -> None:
    scenario = get_domain("execution").scenario("almgren_chriss")
    out = episode_metrics(scenario, ac_optimal_policy(scenario), 256, 0, "cpu")
    assert set(out) == set(METRICS)
    assert all(v.shape == (256,) and np.isfinite(v).all() for v in out.values())


def test_outperformance_statistics() -> None:
    reference = np.array([10.0, 10.0, 10.0, 10.0])
    policy = np.array([8.0, 9.0, 11.0, 10.0])
    out = outperformance(policy, reference)
    assert out == {"mean": 0.5, "median": 0.5, "probability": 0.5, "gain_loss_ratio": 3.0}
