"""The taxation dashboard: the pure helpers of its figures (Lorenz curve, tax schedules, bunching, the
families of the trade-off) against hand-computed values and the economy, and the generated page
(Streamlit AppTest) with every tab drawn, before and after Run, and past the automatic exact search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from decisionlab.domains.taxation import ONE_STEP, view
from decisionlab.domains.taxation.economy import Economy
from decisionlab.domains.taxation.figures import (
    bunching,
    effective_rates,
    income_grid,
    lorenz_curve,
    marginal_rates,
    responses,
    schedule_families,
)
from decisionlab.domains.taxation.optimal import best_schedule
from decisionlab.domains.taxation.scenario import US_CUTOFFS, US_FEDERAL_RATES, OneStepScenario

CUTOFFS = np.array(US_CUTOFFS)
CHARTS = ("lorenz", "marginal_rates", "effective_rates", "frontier", "labour_income", "labour_hours", "bunching")


def test_lorenz_curve_of_an_equal_distribution_is_the_diagonal() -> None:
    population, share = lorenz_curve(np.full(7, 3.0))
    np.testing.assert_allclose(population, np.arange(8) / 7)
    np.testing.assert_allclose(share, population)
    # everything held by the richest: flat at 0, then the jump; the order of the input does not matter
    _, share = lorenz_curve(np.array([4.0, 0.0, 0.0, 0.0]))
    np.testing.assert_allclose(share, [0.0, 0.0, 0.0, 0.0, 1.0])
    _, share = lorenz_curve(np.zeros(3))  # nobody has anything: equal
    np.testing.assert_allclose(share, np.arange(4) / 3)


def test_effective_rate_of_a_flat_tax_is_the_flat_rate_everywhere_above_zero() -> None:
    z = income_grid(CUTOFFS, np.array([800.0]))
    assert z[0] == 0.0 and z[-1] >= 800.0 and set(CUTOFFS) <= set(z.tolist())
    np.testing.assert_allclose(effective_rates(z[1:], np.full(7, 0.2), CUTOFFS), 0.2, rtol=1e-12)
    # US rates at 50: 10·10% + 30·12% + 10·22% = 6.8, so 13.6%; at 0 the limit, the first rate
    np.testing.assert_allclose(effective_rates(np.array([0.0, 50.0]), np.array(US_FEDERAL_RATES), CUTOFFS),
                               [0.10, 0.136])
    # a cut-off opens its bracket
    np.testing.assert_allclose(marginal_rates(np.array([0.0, 9.99, 10.0, 509.0, 510.0, 1e4]),
                                              np.array(US_FEDERAL_RATES), CUTOFFS),
                               [0.10, 0.10, 0.12, 0.35, 0.37, 0.37])


def test_bunching_counts_workers_exactly_at_a_cutoff() -> None:
    income = np.array([[10.0, 10.0 * (1 + 1e-7), 10.1, 40.0, 0.0],
                       [9.0, 11.0, 39.9, 41.0, 0.0]])
    np.testing.assert_array_equal(bunching(income, np.array([0.0, 10.0, 40.0])), [[2, 1], [0, 0]])
    # in the economy: no kink, no bunching without tax; the optimum puts workers on its kinks
    scenario = OneStepScenario()
    found = responses(scenario, {"free_market": [0.0] * 7, "optimal": best_schedule(scenario).rates})
    counts = bunching(found.income, found.cutoffs)
    assert counts[0].sum() == 0 and counts[1].sum() > 0


def test_responses_and_families_match_the_economy() -> None:
    scenario = OneStepScenario()
    rates = {"flat": [0.2] * 7, "us_federal": list(US_FEDERAL_RATES)}
    found = responses(scenario, rates)
    economy = Economy(scenario)
    expected = economy.outcome(torch.tensor(list(rates.values()), dtype=torch.float64))
    np.testing.assert_allclose(found.income, expected.income.numpy())
    np.testing.assert_allclose(found.net_income.sum(1), found.income.sum(1))  # everything is rebated
    flat, saez = schedule_families(scenario)
    # the flat family passes through the 20% point; at 0 it is the free market, at 100% nobody works
    assert flat.parameter[4] == pytest.approx(0.2)
    assert flat.equality[4] == pytest.approx(found.metrics["equality"][0])
    assert flat.productivity[0] == pytest.approx(float(economy.untaxed.sum())) and flat.productivity[-1] == 0.0
    assert saez.productivity[0] == pytest.approx(flat.productivity[0])
    assert np.all(np.diff(flat.productivity) < 0)  # a higher flat tax, less income


def test_rate_table_marks_the_free_brackets_of_optimal() -> None:
    scenario = OneStepScenario()
    schedule = best_schedule(scenario)
    chosen = view.Schedules(scenario, {"free_market": [0.0] * 7, "optimal": list(schedule.rates)},
                            {scenario.objective: (schedule.rates, schedule.free)})
    table = view.rate_table(chosen)
    assert table.columns == ["policy", *(f"from {b:g}" for b in US_CUTOFFS)]
    row = table.row(1, named=True)
    assert [cell.endswith("·") for cell in list(row.values())[1:]] == list(schedule.free)
    assert not any("·" in cell for cell in table.row(0)[1:])


def test_page_draws_every_tab_before_and_after_run(decisionlab_home: Path, domain_page) -> None:
    at = domain_page("taxation").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    # the tabs draw the sidebar's scenario without a Run: exact responses, the optimum searched at once
    assert {chart.key for chart in at.get("plotly_chart")} == {f"taxation_{k}" for k in CHARTS}
    rates = next(frame.value for frame in at.dataframe if "from 0" in frame.value.columns)
    assert list(rates["policy"]) == list(ONE_STEP.default_policies)
    assert rates["from 0"].iloc[-1] == "10.0%·"  # optimal's first bracket: a lump sum every worker pays
    at.number_input(key="taxation_episodes").set_value(2)
    at.button(key="taxation_run").click().run(timeout=120)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert list(at.dataframe[0].value["policy"]) == list(ONE_STEP.default_policies)
    assert len(at.get("plotly_chart")) == len(CHARTS) + 1  # and the comparison's difference chart
    # past the automatic search: the tabs draw without `optimal` until a button asks for it
    at.number_input(key="taxation_n_agents").set_value(view.AUTO_OPTIMUM_MAX_AGENTS + 1).run()
    assert not at.exception, at.exception
    rates = next(frame.value for frame in at.dataframe if "from 0" in frame.value.columns)
    assert "optimal" not in list(rates["policy"])
    at.button(key="taxation_frontier_search_optimum").click().run(timeout=120)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    rates = next(frame.value for frame in at.dataframe if "from 0" in frame.value.columns)
    assert list(rates["policy"]) == list(ONE_STEP.default_policies)
    assert not [b for b in at.button if b.key and b.key.endswith("_search_optimum")]  # asked once for all tabs


def test_learned_planners_of_the_kept_comparison_are_drawn_with_their_rates() -> None:
    """A registered pair in the kept comparison (served as the merged policy of its members) and a planner
    member alone are drawn with the rates they set; a workers-only member sets none; a comparison of
    another scenario is not read."""
    from types import SimpleNamespace

    from decisionlab.core.policy import rebuild_policy
    from decisionlab.domains.taxation.train import TaxationPair, planner_rates

    scenario, cpu = OneStepScenario(), torch.device("cpu")
    pair = TaxationPair.initial(scenario, cpu)
    served = {member: rebuild_policy(pair.config(), pair.state_dict(), scenario, cpu, member)
              for member in (None, "planner", "workers")}
    result = SimpleNamespace(scenario=scenario, policies=[("pair", served[None]), ("planner", served["planner"]),
                                                          ("workers", served["workers"]), ("saez", object())])
    ctx = SimpleNamespace(result=result, setting=ONE_STEP)
    found = view.learned_planners(ctx, scenario)
    expected = planner_rates(pair, scenario)
    assert set(found) == {"pair", "planner"}
    np.testing.assert_allclose(found["pair"], expected, atol=1e-6)
    np.testing.assert_allclose(found["planner"], expected, atol=1e-6)
    assert view.learned_planners(ctx, scenario.model_copy(update={"n_agents": 12})) == {}
