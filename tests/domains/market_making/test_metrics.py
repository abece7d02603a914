"""Market-making metrics: influence values average to the whole-sample statistics, the per-episode tracker
(drawdown, markout, inventory), determinism and paired comparisons."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from decisionlab.core.evaluation import mean_ci95
from decisionlab.core.sim import StepResult
from decisionlab.domains.market_making.baselines import AvellanedaStoikov, Symmetric
from decisionlab.domains.market_making.metrics import (
    EPISODE_VALUES,
    METRICS,
    episode_metrics,
    episode_values,
    finalize_metrics,
    summarize,
)
from decisionlab.domains.market_making.model.scenario import PRESETS

STANDARD = PRESETS["avellaneda_stoikov"]
FIXED_NAMES = ("mean_pnl", "std_pnl", "certainty_equivalent", "sharpe", "mean_abs_terminal_inventory",
               "std_terminal_inventory", "fill_rate", "mean_spread", "sortino", "max_drawdown", "pnl_per_trade",
               "mean_abs_inventory", "max_abs_inventory", "markout")


def _sample(n: int = 5000, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    quotes = rng.integers(300, 400, n).astype(float)
    steps = rng.integers(100, 200, n).astype(float)
    return {
        "score": rng.normal(60, 9, n) + rng.standard_t(4, n) * 3,
        "terminal_inventory": rng.integers(-8, 9, n).astype(float),
        "fills": rng.binomial(quotes.astype(int), 0.25).astype(float),
        "quotes": quotes,
        "spread_sum": steps * rng.normal(1.4, 0.05, n),
        "spread_steps": steps,
        "abs_inventory": rng.gamma(2, 1, n),
        "max_abs_inventory": rng.integers(0, 12, n).astype(float),
        "max_drawdown": rng.gamma(2, 2, n),
        "markout_sum": rng.normal(0, 2, n),
    }


def test_metric_names_are_the_issues() -> None:
    assert set(METRICS) == set(FIXED_NAMES)
    assert set(finalize_metrics(STANDARD, _sample(10))) == set(METRICS)
    for name, spec in METRICS.items():
        assert spec.name == name and spec.better in ("lower", "higher") and spec.description


def test_influence_values_average_to_the_statistics() -> None:
    values = _sample()
    metrics = finalize_metrics(STANDARD, values)
    x, q = values["score"], values["terminal_inventory"]
    gamma = STANDARD.risk_aversion
    semi = np.sqrt(np.mean(np.minimum(x - x.mean(), 0.0) ** 2))
    expected = {
        "mean_pnl": x.mean(),
        "std_pnl": x.std(),
        "certainty_equivalent": -np.log(np.mean(np.exp(-gamma * x))) / gamma,
        "sharpe": x.mean() / x.std(),
        "sortino": x.mean() / semi,
        "mean_abs_terminal_inventory": np.abs(q).mean(),
        "std_terminal_inventory": q.std(),
        "fill_rate": values["fills"].sum() / values["quotes"].sum(),
        "mean_spread": values["spread_sum"].sum() / values["spread_steps"].sum(),
        "pnl_per_trade": x.sum() / values["fills"].sum(),
        "mean_abs_inventory": values["abs_inventory"].mean(),
        "max_abs_inventory": values["max_abs_inventory"].mean(),
        "max_drawdown": values["max_drawdown"].mean(),
        "markout": values["markout_sum"].sum() / values["fills"].sum(),
    }
    for name, statistic in expected.items():
        assert metrics[name].shape == x.shape
        assert metrics[name].mean() == pytest.approx(statistic, rel=1e-12), name
    assert summarize(STANDARD, values)["certainty_equivalent"] == pytest.approx(expected["certainty_equivalent"])


def test_certainty_equivalent_does_not_overflow() -> None:
    values = _sample(1000)
    values["score"] = values["score"] * 1e3  # exp(−γ·X) alone would overflow at X ≈ −7e3
    ce = finalize_metrics(STANDARD, values)["certainty_equivalent"]
    assert np.isfinite(ce).all()


@pytest.mark.parametrize("name", ["certainty_equivalent", "sortino", "sharpe", "fill_rate", "std_pnl"])
def test_delta_method_interval_matches_the_bootstrap(name: str) -> None:
    values = _sample(3000, seed=4)
    _, half = mean_ci95(finalize_metrics(STANDARD, values)[name])
    rng = np.random.default_rng(9)
    stats = []
    for _ in range(300):
        rows = rng.integers(0, 3000, 3000)
        stats.append(finalize_metrics(STANDARD, {k: v[rows] for k, v in values.items()})[name].mean())
    assert half == pytest.approx(1.96 * np.std(stats), rel=0.2)


def test_degenerate_samples_give_zeros_not_nan() -> None:
    values = {name: np.zeros(4) for name in EPISODE_VALUES}
    values["score"] = np.full(4, 5.0)
    metrics = finalize_metrics(STANDARD, values)
    assert all(np.isfinite(v).all() for v in metrics.values())
    assert metrics["std_pnl"].tolist() == [0.0] * 4 and metrics["sharpe"].tolist() == [0.0] * 4
    assert metrics["certainty_equivalent"].mean() == pytest.approx(5.0)


@dataclass(frozen=True)
class _Step:
    step: torch.Tensor


class _ScriptedSim:
    """One episode whose fills, moves and rewards are given: to check the tracker by hand."""

    horizon = 4
    device = torch.device("cpu")
    bid = [1.0, 0.0, 0.0, 0.0]
    ask = [0.0, 0.0, 1.0, 0.0]
    move = [0.5, -1.0, 0.2, 0.3]
    inventory = [1.0, 1.0, 0.0, 0.0]
    reward = [2.0, -3.0, 1.0, 0.5]

    def reset(self, batch: int, generator: torch.Generator | None = None) -> _Step:
        return _Step(torch.zeros(batch, dtype=torch.long))

    def sample_exogenous(self, batch: int, periods: int, generator: torch.Generator | None) -> torch.Tensor:
        return torch.zeros(batch, periods, 1)

    def observe(self, state: _Step) -> torch.Tensor:
        return torch.zeros(state.step.shape[0], 6)

    def flat_observation(self, obs: torch.Tensor) -> torch.Tensor:
        return obs

    def step(self, state: _Step, action: torch.Tensor, exogenous: torch.Tensor) -> StepResult[_Step]:
        k = int(state.step[0])
        b = state.step.shape[0]

        def full(value: float) -> torch.Tensor:
            return torch.full((b,), value)

        quoted = torch.ones(b, dtype=torch.bool)
        info = {"bid_fill": full(self.bid[k]), "ask_fill": full(self.ask[k]), "bid_quoted": quoted,
                "ask_quoted": quoted, "spread": full(1.0 + k), "inventory": full(self.inventory[k]),
                "mid_change": full(self.move[k])}
        return StepResult(_Step(state.step + 1), full(self.reward[k]), info)


def test_tracker_by_hand() -> None:
    values = episode_values(_ScriptedSim(), Symmetric(STANDARD), 2, None, markout_steps=2, chunk_periods=3)
    one = {name: float(v[0]) for name, v in values.items()}
    assert one["score"] == 0.5 and one["terminal_inventory"] == 0.0
    assert one["fills"] == 2 and one["quotes"] == 8
    assert one["spread_sum"] == 1 + 2 + 3 + 4 and one["spread_steps"] == 4
    assert one["abs_inventory"] == 0.5 and one["max_abs_inventory"] == 1.0
    assert one["max_drawdown"] == 3.0  # the running score 2, −1, 0, 0.5 falls 3 below its peak
    # the buy at step 0 sees the moves of steps 0-1 (0.5 − 1.0), the sell at step 2 those of steps 2-3 (0.5)
    assert one["markout_sum"] == pytest.approx(-0.5 - 0.5)


def test_same_seed_same_values_and_a_policy_against_itself_differs_by_zero() -> None:
    policy = AvellanedaStoikov(STANDARD)
    first = episode_metrics(STANDARD, policy, 500, seed=3, device="cpu")
    second = episode_metrics(STANDARD, AvellanedaStoikov(STANDARD), 500, seed=3, device="cpu")
    for name in EPISODE_VALUES:
        assert np.array_equal(first[name], second[name]), name
    a, b = finalize_metrics(STANDARD, first), finalize_metrics(STANDARD, second)
    for name in METRICS:
        assert np.array_equal(a[name] - b[name], np.zeros(500)), name
    other = episode_metrics(STANDARD, policy, 500, seed=4, device="cpu")
    assert not np.array_equal(first["score"], other["score"])


def test_markout_is_zero_without_adverse_selection() -> None:
    """Fills do not depend on the mid's future in the model: the average markout is 0 within its error."""
    s = PRESETS["glft_bounded"]
    metrics = finalize_metrics(s, episode_metrics(s, AvellanedaStoikov(s), 4000, seed=0, device="cpu"))
    mean, half = mean_ci95(metrics["markout"])
    assert abs(mean) < 2 * half + 1e-4
    assert metrics["max_abs_inventory"].mean() >= metrics["mean_abs_terminal_inventory"].mean()
