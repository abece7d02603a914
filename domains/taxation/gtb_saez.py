"""The Saez rates of the Gather-Trade-Build economy, estimated from simulated incomes.

No closed form exists here, so each ingredient of τ(z) = (1 − G(z)) / (1 − G(z) + a(z)·e) (``saez.py``)
is estimated from the workers' per-period incomes (the scripted workers of ``gtb_workers`` unless other
workers are given, e.g. learned ones), as the AI Economist's Saez planner estimates them from its agents':

- ``e``, the elasticity of income to the net-of-tax rate: the slope of log Z on log(1 − τ) across flat
  schedules τ ∈ ``flat_rates``, Z the total income of the same economies (maps, skills, draws) under τ
  relative to their total under no tax (a regression through the origin). Totals, not each worker-period
  against itself: a period's income is lumpy (a house or none), so most worker-periods earn nothing under
  one of the two schedules and a per-unit regression of logs sees only the few that earn under both (5% of
  the scripted workers' pairs on 64 economies). It then measured e = 1.38 for the scripted workers and 0.25
  for learned ones, whose Saez rates (up to 85%) stopped nearly all work; the totals give 3.4 and 3.0,
  and they count the workers who stop altogether too;
- ``a(z)``, the local Pareto parameter of the no-tax income distribution at each cut-off: the Hill
  estimate ``n / Σ log(z_i / z)`` over the ``n`` no-tax incomes above ``z`` (``z f(z) / (1 − F(z))`` is
  that tail's shape); a cut-off with fewer than ``min_tail`` incomes above it takes the estimate of the
  highest cut-off that has them;
- ``G(z)``, the average welfare weight of the workers with no-tax income ≥ z relative to everyone's,
  weights ∝ 1 / max(z, 1) (the Foundation's ``inverse_income`` weights).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

from decisionlab.core import MergedPolicy, Policy, make_generator, run
from decisionlab.domains.taxation.gtb import PLANNER, WORKERS, GatherTradeBuildSim
from decisionlab.domains.taxation.gtb_workers import GtbSchedule, SchedulePlanner
from decisionlab.domains.taxation.saez import saez_rate
from decisionlab.domains.taxation.scenario import GatherTradeBuildScenario

FLAT_RATES = (0.0, 0.1, 0.2, 0.3, 0.4)
MIN_TAIL = 10


@dataclass(frozen=True)
class SaezEstimate:
    """The estimated rates ``[K]`` and what they came from: ``elasticity`` e, and per cut-off the local
    Pareto parameter ``pareto_local`` and the welfare share ``welfare_share`` (G); ``incomes``: how many
    no-tax worker-period incomes, ``schedules``: how many taxed flat schedules the elasticity used."""

    rates: tuple[float, ...]
    elasticity: float
    pareto_local: tuple[float, ...]
    welfare_share: tuple[float, ...]
    incomes: int
    schedules: int


def period_incomes(scenario: GatherTradeBuildScenario, rates: list[float], economies: int, seed: int,
                   device: Any = "cpu", workers: Policy | None = None) -> torch.Tensor:
    """``[B, periods, A]`` each worker's pre-tax income in each tax period under ``rates`` (``workers``
    acting for the workers' group; default: the scripted ones)."""
    sim = GatherTradeBuildSim(scenario, device)
    schedule = GtbSchedule(scenario, rates, "flat", device)
    policy: Policy = schedule if workers is None else MergedPolicy({PLANNER: SchedulePlanner(schedule),
                                                                     WORKERS: workers})
    generator = make_generator(seed, device)
    state = sim.reset(economies, generator)
    done = run(sim, policy, state=state, generator=generator, record=["income"],
               until_done=False)
    income = done.records["income"]  # [B, T, A], non-zero at period ends only
    ends = torch.arange(scenario.tax_period_steps - 1, sim.horizon, scenario.tax_period_steps, device=income.device)
    return income[:, ends]


def elasticity(no_tax: torch.Tensor, taxed: dict[float, torch.Tensor]) -> tuple[float, int]:
    """``(e, schedules)``: the through-origin slope of ``log(Z_τ / Z_0)`` on ``log(1 − τ)``, ``Z`` the total
    income under each flat schedule (module docstring), and how many taxed schedules it used (those with
    income; none without income under no tax)."""
    total = float(no_tax.double().sum())
    xs, ys = [], []
    for rate, income in taxed.items():
        z = float(income.double().sum())
        if z > 0.0 and total > 0.0 and rate < 1.0:
            xs.append(math.log(1.0 - rate))
            ys.append(math.log(z / total))
    denominator = sum(x * x for x in xs)
    if denominator == 0.0:
        return 0.0, 0
    return max(sum(x * y for x, y in zip(xs, ys, strict=True)) / denominator, 0.0), len(xs)


def tail_and_weights(incomes: torch.Tensor, cutoffs: tuple[float, ...], min_tail: int = MIN_TAIL
                     ) -> tuple[list[float], list[float]]:
    """Per cut-off ``(a(z), G(z))`` of the no-tax ``incomes`` (flat; module docstring)."""
    z = incomes.double().flatten()
    weights = 1.0 / z.clamp_min(1.0)
    everyone = float(weights.mean())
    tails: list[float | None] = []
    shares: list[float] = []
    for cutoff in cutoffs:
        above = z >= cutoff
        shares.append(float(weights[above].mean()) / everyone if bool(above.any()) else (shares[-1] if shares else 1.0))
        strict = z > cutoff
        if cutoff <= 0.0:
            tails.append(0.0)  # z f(z) = 0 at z = 0
        elif int(strict.sum()) >= min_tail:
            logs = (z[strict] / cutoff).log().sum()
            tails.append(float(strict.sum()) / max(float(logs), 1e-12))
        else:
            tails.append(None)
    known = [a for a, c in zip(tails, cutoffs, strict=True) if a is not None and c > 0.0]
    top = known[-1] if known else 1.0
    filled: list[float] = []
    for a in tails:
        filled.append(a if a is not None else top)
    return filled, shares


def estimate_saez(scenario: GatherTradeBuildScenario, economies: int = 64, seed: int = 0,
                  flat_rates: tuple[float, ...] = FLAT_RATES, device: Any = "cpu",
                  workers: Policy | None = None) -> SaezEstimate:
    """The Saez rates of ``scenario`` from the incomes of ``workers`` (default: the scripted ones; module
    docstring)."""
    k = scenario.n_brackets

    def incomes(rate: float) -> torch.Tensor:
        return period_incomes(scenario, [rate] * k, economies, seed, device, workers)

    runs = {rate: incomes(rate) for rate in flat_rates}
    no_tax = runs.pop(0.0) if 0.0 in runs else incomes(0.0)
    e, schedules = elasticity(no_tax, runs)
    tails, shares = tail_and_weights(no_tax, scenario.bracket_cutoffs)
    rates = tuple(saez_rate(g, a, e) for g, a in zip(shares, tails, strict=True))
    return SaezEstimate(rates, e, tuple(tails), tuple(shares), int(no_tax.numel()), schedules)


@lru_cache(maxsize=16)
def _cached(scenario_json: str) -> SaezEstimate:
    return estimate_saez(GatherTradeBuildScenario.model_validate_json(scenario_json))


def saez_estimate(scenario: GatherTradeBuildScenario) -> SaezEstimate:
    """:func:`estimate_saez` with its defaults, once per scenario (on the CPU: a baseline's rates do not
    depend on where the evaluation runs)."""
    return _cached(scenario.model_dump_json())
