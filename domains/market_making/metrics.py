"""Market-making KPIs, shared by every setting: per-episode sums in constant memory, then whole-sample
statistics as per-episode influence values.

:func:`episode_values` rolls a policy through any setting's simulator (the protocol of
:mod:`decisionlab.core.sim`, with the step ``info`` of :class:`~.model.sim.ModelSim`: ``bid_fill``,
``ask_fill``, ``bid_quoted``, ``ask_quoted``, ``spread``, ``inventory``, ``mid_change``) and keeps only
running per-episode sums (no ``[B, N]`` tensor). :func:`finalize_metrics` turns the concatenated
per-episode values of all chunks into the metrics. The score of an episode is X = Σ rewards = P&L −
penalties (currency; the P&L itself when no penalty is set). Statistics of the whole sample are
returned as influence values φ_i whose average is exactly the statistic, so the evaluation's
t-interval is the delta-method interval and paired differences stay valid (as in
``domains/execution/metrics.py``); with m = mean X, c_i = X_i − m, v = mean c², s = √v:

- std: ``φ_i = s + (c_i² − v)/(2s)``;
- certainty equivalent CE = −(1/γ)·ln mean e^{−γX}: ``φ_i = CE − (e_i − ē)/(γ·ē)`` with e_i = e^{−γX_i};
- Sharpe m/s: ``φ_i = m/s + c_i/s − m·(c_i² − v)/(2s³)``;
- Sortino m/d with d² = mean min(c, 0)² (semi-deviation below the mean; the P&L of a market maker
  is rarely below 0, so a target of 0 would leave d = 0): ``φ_i = m/d + c_i/d − m·(min(c_i, 0)² − d²
  + 2b·c_i)/(2d³)``, b = mean max(−c, 0) (the last term is the sensitivity of d² to m);
- ratios R = Σa/Σb (fill rate, mean spread, P&L per trade, markout): ``φ_i = R + (a_i − R·b_i)/b̄``.

Degenerate samples (no spread: s = 0, no quotes, no fills) give influence values 0 for the
statistic concerned, never NaN.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from decisionlab.core import MetricSpec, Policy, Step, make_generator, run
from decisionlab.domains.market_making.params import QuotingScenario
from decisionlab.domains.market_making.quotes import OBS_INVENTORY

MARKOUT_STEPS = 10
"""Markout horizon (steps): a fill is marked against the mid this many steps later (or at the end)."""

METRICS = {
    "mean_pnl": MetricSpec("mean_pnl", "P&L at T (cash + inventory at the mid, net of fees) minus the inventory "
                           "penalties, mean over episodes", "higher", "currency"),
    "std_pnl": MetricSpec("std_pnl", "standard deviation of the episode P&L over the episodes", "lower", "currency"),
    "certainty_equivalent": MetricSpec(
        "certainty_equivalent", "CARA certainty equivalent −(1/γ)·ln mean exp(−γ·P&L) at the scenario's "
        "risk_aversion γ", "higher", "currency"),
    "sharpe": MetricSpec("sharpe", "mean / standard deviation of the episode P&L (per episode, not annualised)",
                         "higher"),
    "sortino": MetricSpec("sortino", "mean / semi-deviation below the mean of the episode P&L (per episode)",
                          "higher"),
    "mean_abs_terminal_inventory": MetricSpec("mean_abs_terminal_inventory", "mean |q_T| of the inventory left at T",
                                              "lower", "units"),
    "std_terminal_inventory": MetricSpec("std_terminal_inventory", "standard deviation of the inventory q_T left at "
                                         "T", "lower", "units"),
    "fill_rate": MetricSpec("fill_rate", "share of posted quotes (one per quoting side per step) that filled",
                            "higher"),
    "mean_spread": MetricSpec("mean_spread", "average quoted spread δ^b + δ^a over the steps where both sides quote",
                              "lower", "price units"),
    "pnl_per_trade": MetricSpec("pnl_per_trade", "episode P&L summed over the episodes / fills summed over them",
                                "higher", "currency per fill"),
    "mean_abs_inventory": MetricSpec("mean_abs_inventory", "time average of |q| after each step", "lower", "units"),
    "max_abs_inventory": MetricSpec("max_abs_inventory", "largest |q| of an episode (start included), mean over "
                                    "episodes", "lower", "units"),
    "max_drawdown": MetricSpec("max_drawdown", "largest fall of the running P&L (marked to market each step) from its "
                               "running peak, mean over episodes", "lower", "currency"),
    "markout": MetricSpec("markout", f"mid move over the {MARKOUT_STEPS} steps after a fill (or to the end), "
                          "signed for the maker (+ for a buy the mid then rises), average per fill; < 0 is adverse "
                          "selection", "higher", "price units per unit"),
}

EPISODE_VALUES = ("score", "terminal_inventory", "fills", "quotes", "spread_sum", "spread_steps", "abs_inventory",
                  "max_abs_inventory", "max_drawdown", "markout_sum")
"""What :func:`episode_values` returns per episode: the score X (currency), q_T, fills, quoted sides,
the sum of spreads over the steps where both sides quote and their number, the time average of |q|,
max |q|, the maximum drawdown and the sum over fills of their signed markouts."""


class QuotingTally:
    """A hook of the rollout engine that keeps the running per-episode sums of :data:`EPISODE_VALUES`
    (module docstring); ``values(periods)`` reads them out. Memory: O(episodes · markout_steps)."""

    def __init__(self, episodes: int, device: torch.device, markout_steps: int = MARKOUT_STEPS) -> None:
        def zeros() -> torch.Tensor:
            return torch.zeros(episodes, dtype=torch.float64, device=device)

        self.score, self.fills, self.quotes = zeros(), zeros(), zeros()
        self.spread_sum, self.spread_steps, self.abs_sum = zeros(), zeros(), zeros()
        self.peak, self.drawdown, self.markout, self.inventory = zeros(), zeros(), zeros(), zeros()
        self.markout_steps = markout_steps
        # net fills (bid − ask) by step mod h
        self.recent = torch.zeros(markout_steps, episodes, dtype=torch.float64, device=device)
        self.recent_sum = zeros()  # net fills of the last h steps, this one included
        self.max_abs: torch.Tensor | None = None

    def __call__(self, step: Step) -> None:
        f64, info = torch.float64, step.info
        if self.max_abs is None:
            self.max_abs = step.obs[:, OBS_INVENTORY].abs().to(f64)
        self.score += step.reward
        bid, ask = info["bid_fill"].to(f64), info["ask_fill"].to(f64)
        self.fills += bid + ask
        self.quotes += info["bid_quoted"].to(f64) + info["ask_quoted"]
        both = info["bid_quoted"] & info["ask_quoted"]
        self.spread_sum += torch.where(both, info["spread"].to(f64), 0.0)
        self.spread_steps += both
        self.inventory = info["inventory"].to(f64)
        absolute = self.inventory.abs()
        self.abs_sum += absolute
        self.max_abs = torch.maximum(self.max_abs, absolute)
        torch.maximum(self.peak, self.score, out=self.peak)
        torch.maximum(self.drawdown, self.peak - self.score, out=self.drawdown)
        # the markout of a fill at step j is Σ of the mid moves of steps j..j+h−1, so the move of this
        # step counts for the fills of the last h steps
        slot = step.t % self.markout_steps
        net = bid - ask
        self.recent_sum += net - self.recent[slot]
        self.recent[slot] = net
        self.markout += self.recent_sum * info["mid_change"]

    def values(self, periods: int) -> dict[str, np.ndarray]:
        out = {
            "score": self.score, "terminal_inventory": self.inventory, "fills": self.fills, "quotes": self.quotes,
            "spread_sum": self.spread_sum, "spread_steps": self.spread_steps,
            "abs_inventory": self.abs_sum / max(periods, 1),
            "max_abs_inventory": self.max_abs if self.max_abs is not None else torch.zeros_like(self.score),
            "max_drawdown": self.drawdown, "markout_sum": self.markout,
        }
        return {name: value.cpu().numpy() for name, value in out.items()}


def episode_values(
    sim: Any,
    policy: Policy,
    episodes: int,
    generator: torch.Generator | None,
    *,
    periods: int | None = None,
    markout_steps: int = MARKOUT_STEPS,
    chunk_periods: int = 1000,
) -> dict[str, np.ndarray]:
    """Per-episode values :data:`EPISODE_VALUES` ``{name: [episodes]}`` (float64) of ``policy`` over
    ``periods`` steps (default ``sim.horizon``) from ``sim.reset``, exogenous paths drawn from
    ``generator`` chunk by chunk (as :func:`decisionlab.core.engine.period_sums` draws them, so the
    same seed gives the same paths). Memory: O(episodes · (channels · chunk_periods + markout_steps))."""
    periods = int(sim.horizon if periods is None else periods)
    tally = QuotingTally(episodes, sim.device, markout_steps)
    run(sim, policy, batch=episodes, generator=generator, steps=periods, chunk=chunk_periods, hooks=[tally])
    return tally.values(periods)


def episode_metrics(
    scenario: QuotingScenario,
    policy: Policy,
    episodes: int,
    seed: int,
    device: torch.device | str = "cpu",
    start: int = 0,
    *,
    make_sim: Callable[[QuotingScenario, torch.device], Any] | None = None,
) -> dict[str, np.ndarray]:
    """The setting's per-episode values (:func:`episode_values`) of ``episodes`` episodes whose randomness
    all comes from ``seed``; :func:`finalize_metrics` turns those of all chunks into the metrics.
    ``make_sim(scenario, device)`` builds the simulator (default: the model setting's
    :class:`~.model.sim.ModelSim`); ``start`` is unused by simulated settings."""
    if make_sim is None:
        from decisionlab.domains.market_making.model.sim import ModelSim

        make_sim = ModelSim
    sim = make_sim(scenario, torch.device(device))
    return episode_values(sim, policy, episodes, make_generator(seed, sim.device))


def _std_influence(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean()
    squares = centred**2
    var = squares.mean()
    if var <= 0:
        return np.zeros_like(x)
    std = np.sqrt(var)
    return std + (squares - var) / (2.0 * std)


def _ratio_influence(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    total = denominator.sum()
    if total <= 0:
        return np.zeros_like(numerator)
    ratio = numerator.sum() / total
    return ratio + (numerator - ratio * denominator) / denominator.mean()


def certainty_equivalent_influence(score: np.ndarray, gamma: float) -> np.ndarray:
    """``φ_i`` whose average is the CARA certainty equivalent −(1/γ)·ln mean e^{−γX} of ``score [n]``.

    Exponents are taken relative to the smallest score, so every e_i lies in (0, 1] and their mean is
    at least 1/n: nothing overflows, and underflowing e_i are harmless."""
    low = score.min()
    e = np.exp(-gamma * (score - low))
    mean_e = e.mean()
    ce = low - np.log(mean_e) / gamma
    return ce - (e - mean_e) / (gamma * mean_e)


def finalize_metrics(scenario: QuotingScenario, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Influence values ``{metric: [episodes]}`` of every metric of :data:`METRICS` from the concatenated
    per-episode values (module docstring); their averages are the statistics."""
    v = {name: np.asarray(values[name], dtype=np.float64) for name in EPISODE_VALUES}
    score = v["score"]
    mean = score.mean()
    centred = score - mean
    squares = centred**2
    var = squares.mean()
    std = float(np.sqrt(var))
    sharpe = np.zeros_like(score)
    if std > 0:
        sharpe = mean / std + centred / std - mean * (squares - var) / (2.0 * std**3)
    below = np.minimum(centred, 0.0)
    semi_var = (below**2).mean()
    sortino = np.zeros_like(score)
    if semi_var > 0:
        semi = np.sqrt(semi_var)
        slope = 2.0 * np.maximum(-centred, 0.0).mean()  # d(semi_var)/d(mean)
        sortino = mean / semi + centred / semi - mean * (below**2 - semi_var + slope * centred) / (2.0 * semi**3)
    terminal = v["terminal_inventory"]
    return {
        "mean_pnl": score,
        "std_pnl": _std_influence(score),
        "certainty_equivalent": certainty_equivalent_influence(score, scenario.risk_aversion),
        "sharpe": sharpe,
        "sortino": sortino,
        "mean_abs_terminal_inventory": np.abs(terminal),
        "std_terminal_inventory": _std_influence(terminal),
        "fill_rate": _ratio_influence(v["fills"], v["quotes"]),
        "mean_spread": _ratio_influence(v["spread_sum"], v["spread_steps"]),
        "pnl_per_trade": _ratio_influence(score, v["fills"]),
        "mean_abs_inventory": v["abs_inventory"],
        "max_abs_inventory": v["max_abs_inventory"],
        "max_drawdown": v["max_drawdown"],
        "markout": _ratio_influence(v["markout_sum"], v["fills"]),
    }


def summarize(scenario: QuotingScenario, values: dict[str, np.ndarray]) -> dict[str, float]:
    """Each metric's statistic over the sample (the average of its influence values)."""
    return {name: float(phi.mean()) for name, phi in finalize_metrics(scenario, values).items()}
