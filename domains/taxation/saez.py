"""The Saez optimal marginal rate, τ(z) = (1 − G(z)) / (1 − G(z) + a(z)·e), at each bracket's lower cut-off.

``a(z) = z f(z) / (1 − F(z))`` is the local Pareto parameter of the no-tax income distribution, ``G(z)`` the
average welfare weight (ω ∝ 1/skill, as in the welfare objective) of workers with income ≥ z relative to
everyone's, ``e`` the elasticity of income to the net-of-tax rate. In the one-step economy all three come
in closed form: Pareto(α) skills give Pareto incomes with shape ``α(δ − 1)/δ`` above the lowest worker's
no-tax income, ``G(z) = skill_min / w(z)`` (``w(z)`` the skill whose no-tax income is z) and
``e = 1/(δ − 1)``; so the rates do not depend on N.
"""

from __future__ import annotations

from decisionlab.domains.taxation.scenario import OneStepScenario


def saez_rate(welfare_share: float, pareto_local: float, elasticity: float) -> float:
    """τ = (1 − G)/(1 − G + a·e); 0 where nobody earns less (G = 1: no one to redistribute to)."""
    keep = 1.0 - welfare_share
    if keep <= 0.0:
        return 0.0
    return keep / (keep + pareto_local * elasticity)


def one_step_saez_rates(scenario: OneStepScenario) -> list[float]:
    """The closed-form Saez rate at each cut-off of ``scenario``'s brackets."""
    c, delta, alpha = scenario.labour_cost, scenario.labour_exponent, scenario.skill_pareto_alpha
    elasticity = 1.0 / (delta - 1.0)
    lowest_income = scenario.skill_min * (scenario.skill_min / c) ** elasticity
    income_shape = alpha * (delta - 1.0) / delta
    rates = []
    for cutoff in scenario.bracket_cutoffs:
        if cutoff <= lowest_income:  # every worker earns at least this: G = 1, F = 0
            rates.append(0.0)
            continue
        skill = (cutoff * c ** elasticity) ** ((delta - 1.0) / delta)  # no-tax income w·(w/c)^e = cutoff
        rates.append(saez_rate(scenario.skill_min / skill, income_shape, elasticity))
    return rates
