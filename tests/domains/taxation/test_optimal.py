"""The exact schedule search: the published figures at N = 10, and brute force over every schedule of
coarse grids for other sizes, skill tails, elasticities, brackets and both objectives."""

from __future__ import annotations

import random

import numpy as np
import pytest

from decisionlab.domains.taxation.optimal import best_schedule, brute_force, dominance_max
from decisionlab.domains.taxation.scenario import OneStepScenario


def test_the_published_optima_at_ten_workers() -> None:
    product = best_schedule(OneStepScenario())
    assert product.value == pytest.approx(469.370, abs=5e-4)
    shown = ["·" if free else f"{rate:.2f}" for rate, free in zip(product.rates, product.free, strict=True)]
    assert shown == ["·", "0.00", "0.25", "0.55", "0.00", "·", "·"]
    welfare = best_schedule(OneStepScenario(objective="welfare"))
    assert welfare.value == pytest.approx(39.4085, abs=5e-5)
    shown = ["·" if free else f"{rate:.2f}" for rate, free in zip(welfare.rates, welfare.free, strict=True)]
    assert shown == ["·", "0.10", "0.30", "0.55", "0.00", "·", "·"]
    assert product.searched == 21 ** 7


CASES = random.Random(17)


def random_case(rng: random.Random) -> OneStepScenario:
    cutoffs = rng.choice([(0.0, 10.0, 40.0, 85.0, 160.0, 205.0, 510.0), (0.0, 20.0, 60.0, 150.0),
                          (0.0, 5.0, 30.0, 60.0, 120.0)])
    return OneStepScenario(n_agents=rng.choice([1, 2, 6, 15, 40]), skill_pareto_alpha=rng.choice([1.3, 2.5, 4.0]),
                           labour_exponent=rng.choice([1.5, 2.0, 3.0]), skill_min=rng.choice([2.0, 10.0]),
                           objective=rng.choice(["equality_times_productivity", "welfare"]),
                           bracket_cutoffs=cutoffs, rate_grid_step={7: 1 / 3, 5: 0.2, 4: 0.1}[len(cutoffs)])


@pytest.mark.parametrize("case", range(8))
def test_exact_search_equals_brute_force_on_coarse_grids(case: int) -> None:
    scenario = random_case(random.Random(1000 + case))
    found = best_schedule(scenario)
    rates, value = brute_force(scenario)
    assert np.isfinite(value)
    assert found.value == pytest.approx(value, rel=1e-9, abs=1e-9)


def test_exact_search_at_a_hundred_workers_equals_brute_force_on_a_coarse_grid() -> None:
    scenario = OneStepScenario(n_agents=100, rate_grid_step=0.5)
    assert best_schedule(scenario).value == pytest.approx(brute_force(scenario)[1], rel=1e-9)


def test_dominance_max_against_a_scan() -> None:
    rng = np.random.default_rng(0)
    for n, m in [(1, 5), (7, 3), (50, 40), (401, 77)]:
        px, py, pf = rng.integers(0, 9, n).astype(float), rng.integers(0, 9, n).astype(float), rng.normal(size=n)
        qx, qy = rng.integers(-1, 10, m).astype(float), rng.integers(-1, 10, m).astype(float)
        got = dominance_max(px, py, pf, qx, qy)
        want = np.array([np.max(pf[(px <= x) & (py > y)], initial=-np.inf) for x, y in zip(qx, qy, strict=True)])
        assert np.array_equal(got, want)
