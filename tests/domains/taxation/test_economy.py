"""The one-step economy against the published oracle figures (N = 10, exact best responses) and against
a brute-force search over incomes."""

from __future__ import annotations

import pytest
import torch

from decisionlab.domains.taxation.economy import Economy, gini, tax
from decisionlab.domains.taxation.saez import one_step_saez_rates, saez_rate
from decisionlab.domains.taxation.scenario import US_FEDERAL_RATES, OneStepScenario

TEN = OneStepScenario()


def metric(rates: list[float], name: str, scenario: OneStepScenario = TEN) -> float:
    return float(Economy(scenario).metrics(torch.tensor([rates], dtype=torch.float64))[name][0])


@pytest.mark.parametrize(("rates", "expected"), [
    ([0.0] * 7, 429.743),
    (list(US_FEDERAL_RATES), 434.479),
    ([0.0, 0.0, 0.25, 0.55, 0.0, 0.0, 0.0], 469.370),
])
def test_equality_times_productivity_matches_the_oracle_figures(rates: list[float], expected: float) -> None:
    assert metric(rates, "equality_times_productivity") == pytest.approx(expected, abs=5e-4)


def test_saez_rates_and_their_figure() -> None:
    rates = one_step_saez_rates(TEN)
    assert [round(100 * r, 1) for r in rates] == [0.0, 0.0, 14.8, 36.7, 44.2, 46.1, 50.3]
    assert metric(rates, "equality_times_productivity") == pytest.approx(451.936, abs=5e-4)


def test_best_welfare_schedule_figure() -> None:
    assert metric([0.0, 0.10, 0.30, 0.55, 0.0, 0.0, 0.0], "welfare") == pytest.approx(39.4085, abs=5e-5)


def test_saez_formula_unit_case_and_independence_of_n() -> None:
    assert saez_rate(0.0, 2.0, 0.5) == pytest.approx(0.5)
    assert saez_rate(1.0, 2.0, 0.5) == 0.0  # nobody below: nothing to redistribute
    assert one_step_saez_rates(OneStepScenario(n_agents=1000)) == one_step_saez_rates(TEN)
    steeper = one_step_saez_rates(OneStepScenario(skill_pareto_alpha=4.0))
    assert all(s <= r for s, r in zip(steeper, one_step_saez_rates(TEN), strict=True))  # thinner tail, lower top rates


def test_best_response_beats_every_income_on_a_fine_grid() -> None:
    """Each worker's exact response is at least as good as any income on a 0.01 grid (and the grid's best
    is within its resolution)."""
    scenario = OneStepScenario(n_agents=12, skill_pareto_alpha=1.8)
    economy = Economy(scenario)
    generator = torch.Generator().manual_seed(0)
    rates = torch.rand(6, 7, generator=generator, dtype=torch.float64)
    rates[0] = torch.tensor([0.0, 0.9, 0.0, 1.0, 0.0, 0.5, 0.0])  # non-convex: rates that fall
    best = economy.respond(rates)  # [6, 12]
    grid = torch.arange(0.0, float(economy.untaxed.max()) + 0.01, 0.01, dtype=torch.float64)

    def utility(z: torch.Tensor) -> torch.Tensor:  # z [6, 12, G]
        owed = tax(z.reshape(6, -1), rates, economy.cutoffs).reshape(z.shape)
        return z - owed - economy.c / economy.delta * (z / economy.skills[:, None]) ** economy.delta

    on_grid = utility(grid.expand(6, 12, -1)).max(-1).values
    exact = utility(best[..., None])[..., 0]
    assert bool((exact >= on_grid - 1e-9).all())
    assert bool((exact - on_grid < 0.05).all())
    assert bool((best <= economy.untaxed + 1e-9).all())  # no non-negative tax raises an income


def test_ties_go_to_the_lower_bracket() -> None:
    """A 100% rate above a cut-off pins workers at the cut-off: the same income from both sides, counted low."""
    scenario = OneStepScenario(n_agents=3, bracket_cutoffs=(0.0, 20.0))
    z = Economy(scenario).respond(torch.tensor([[0.0, 1.0]], dtype=torch.float64))
    assert torch.allclose(z, torch.full_like(z, 20.0))


def test_gini_against_its_definition() -> None:
    x = torch.tensor([[1.0, 2.0, 3.0, 10.0], [5.0, 5.0, 5.0, 5.0]], dtype=torch.float64)
    n = 4
    pairs = (x[:, :, None] - x[:, None, :]).abs().sum((1, 2))
    expected = pairs / (2 * n * n * x.mean(1)) * n / (n - 1)
    assert torch.allclose(gini(x), expected)
    assert float(gini(x)[1]) == 0.0
    assert float(gini(torch.zeros(1, 3, dtype=torch.float64))[0]) == 0.0  # everyone has nothing: equal
