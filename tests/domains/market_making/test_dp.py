"""The exact optimum of the model market (``model/dp.py``) against independent oracles: brute force over
every policy on a depth grid, the exact recursion of its own policy, a dense grid at each step, GLFT's
continuous-time limit, and every closed form."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from decisionlab.core import NotTractableError
from decisionlab.domains.market_making import SPEC
from decisionlab.domains.market_making.baselines import (
    AvellanedaStoikov,
    AvellanedaStoikovInformed,
    GLFTApprox,
    GLFTApproxDrift,
    GLFTDrift,
    GLFTExact,
    depth_table,
    inventory_grid,
)
from decisionlab.domains.market_making.model.dp import DPOptimal, dp_problem, solve
from decisionlab.domains.market_making.model.recursion import exact_statistics, recursion_from_table
from decisionlab.domains.market_making.model.scenario import ModelScenario
from decisionlab.domains.market_making.quotes import depth_bounds

# two steps, |q| ≤ 1, drift, jumps, a fee and both penalties; A·dt = 1.5 clips the deepest fills
TINY = ModelScenario(horizon=0.01, dt=0.005, max_inventory=1, fill_intensity_a=300.0, drift=3.0,
                     jump_intensity=20.0, jump_size=1.0, maker_fee=0.02, running_penalty=1.0, terminal_penalty=0.3,
                     risk_aversion=0.5)


def test_dp_on_a_grid_equals_brute_force_over_every_grid_policy() -> None:
    """Every deterministic policy with depths on a 4-point grid (16·4·16·4 of them; a closed side's depth
    does not matter) scored by the exact recursion: the best of them is the DP restricted to the grid, and
    the continuous DP is at least as good."""
    grid = np.array([-0.2, 0.4, 0.9, 1.6])
    q = inventory_grid(TINY).numpy()
    pairs = list(itertools.product(grid, grid))
    best = -np.inf
    for first, short, flat, long in itertools.product(pairs, grid, pairs, grid):
        table = np.zeros((2, 3, 2))
        table[0, 1] = first  # step 0 starts at q = 0
        table[1, 0] = (short, 0.0)  # q = −1: only the bid quotes
        table[1, 1] = flat
        table[1, 2] = (0.0, long)  # q = +1: only the ask quotes
        best = max(best, recursion_from_table(TINY, table, q).certainty_equivalent)
    on_grid = solve(TINY, depth_grid=grid).certainty_equivalent
    assert on_grid == pytest.approx(best, abs=1e-11)
    assert solve(TINY).certainty_equivalent >= best - 1e-12


@pytest.mark.parametrize("name", ["glft_bounded", "trending", "jumpy"])
def test_dp_value_is_the_recursions_score_of_its_policy(name: str) -> None:
    scenario = SPEC.scenario(name)
    solution = solve(scenario)
    table = recursion_from_table(scenario, solution.depths, solution.inventories)
    assert table.certainty_equivalent == pytest.approx(solution.certainty_equivalent, rel=1e-11)
    # the policy the registry serves reads the same table from observations
    served = exact_statistics(scenario, DPOptimal(scenario))
    assert served.certainty_equivalent == pytest.approx(solution.certainty_equivalent, abs=1e-4)  # float32 obs


def test_the_alternating_best_responses_find_the_joint_minimum() -> None:
    """A dense grid of 160 depths per side at every step never beats the closed-form best responses, and
    comes within its resolution. Fees, penalties and drift included, on a short horizon."""
    scenario = ModelScenario(horizon=0.1, maker_fee=0.05, running_penalty=0.5, terminal_penalty=0.2, drift=1.0,
                             max_inventory=6)
    low, high = depth_bounds(scenario)
    dense = solve(scenario, depth_grid=np.linspace(low, high, 160)).certainty_equivalent
    exact = solve(scenario).certainty_equivalent
    assert exact >= dense - 1e-10
    assert exact - dense < 1e-3


def test_dp_tends_to_glft_as_the_step_shrinks() -> None:
    """GLFT is the continuous-time optimum: the DP's first-step depths approach GLFT exact's as dt → 0."""
    gaps = []
    for dt in (0.005, 0.001):
        scenario = SPEC.scenario("glft_bounded").model_copy(update={"dt": dt})
        depths = solve(scenario).depths[0]
        bid, ask = GLFTExact(scenario).depths_at(torch.tensor([scenario.horizon], dtype=torch.float64))
        gaps.append(max(np.abs(depths[:-1, 0] - bid[0, :-1].numpy()).max(),
                        np.abs(depths[1:, 1] - ask[0, 1:].numpy()).max()))
    assert gaps[1] < 0.3 * gaps[0] and gaps[1] < 0.025, gaps


@pytest.mark.parametrize("name", ["glft_bounded", "trending", "jumpy"])
def test_dp_beats_every_closed_form(name: str) -> None:
    scenario = SPEC.scenario(name)
    optimum = solve(scenario).certainty_equivalent
    for build in (AvellanedaStoikov, AvellanedaStoikovInformed, GLFTExact, GLFTDrift, GLFTApprox, GLFTApproxDrift):
        assert exact_statistics(scenario, build(scenario)).certainty_equivalent <= optimum + 1e-9, build.name
    # the figure: the discrete simulator's optimum is a little above GLFT's continuous one
    if name == "glft_bounded":
        assert optimum == pytest.approx(65.248, abs=5e-4)


def test_dp_refuses_what_it_cannot_solve() -> None:
    assert "mean_reversion" in dp_problem(SPEC.scenario("mean_reverting"))
    assert "model market" in dp_problem(SPEC.scenario("lob_replay"))
    with pytest.raises(NotTractableError, match="mean_reversion"):
        DPOptimal(SPEC.scenario("mean_reverting"))
    huge = ModelScenario(horizon=100.0, dt=0.001)  # 100k steps, unbounded: 2·10¹⁰ cells
    assert "exceed" in dp_problem(huge)


def test_dp_table_reads_back_through_observations() -> None:
    scenario = SPEC.scenario("trending")
    policy = DPOptimal(scenario)
    table = depth_table(policy, scenario, dtype=torch.float64).numpy()
    np.testing.assert_allclose(table, solve(scenario).depths, atol=1e-12)
