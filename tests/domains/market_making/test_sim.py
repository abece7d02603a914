"""The model setting's simulator: order of events, purity, common random numbers, the inventory bound and
straight-through gradients."""

from __future__ import annotations

import math

import pytest
import torch

from decisionlab.core.engine import rollout
from decisionlab.core.seeding import make_generator
from decisionlab.core.sim import BatchedSimulator
from decisionlab.domains.market_making.baselines import AvellanedaStoikov
from decisionlab.domains.market_making.model.scenario import PRESETS, ModelScenario
from decisionlab.domains.market_making.model.sim import ModelSim, ModelState
from decisionlab.domains.market_making.quotes import OBSERVATION_FIELDS, quote_prices


def _state(sim: ModelSim, inventory: float, mid_offset: float = 0.0, step: int = 0) -> ModelState:
    one = torch.ones(1, dtype=sim.dtype)
    return ModelState(step=torch.tensor([step]), inventory=one * inventory, pnl=one * 0.0,
                      mid_offset=one * mid_offset, last_return=one * 0.0)


def test_protocol_and_shapes() -> None:
    sim = ModelSim(PRESETS["avellaneda_stoikov"])
    assert isinstance(sim, BatchedSimulator)
    spaces = sim.spaces
    assert (spaces.observation.shape, spaces.action.shape, sim.horizon) == ((len(OBSERVATION_FIELDS),), (2,), 200)
    assert sim.action_low < 0 < sim.action_high
    assert sim.spaces.action.learner_bounds()[0].tolist() == [sim.action_low] * 2
    exo = sim.sample_exogenous(7, 5, make_generator(0))
    assert exo.shape == (7, 5, 3)
    assert ModelSim(PRESETS["jumpy"]).sample_exogenous(7, 5, make_generator(0)).shape == (7, 5, 5)
    u = exo[..., :2]
    assert bool(((u >= 0) & (u < 1)).all())
    state = sim.reset(7)
    obs = sim.observe(state)
    assert obs.shape == (7, 6) and torch.equal(obs[:, 0], torch.full((7,), 1.0))
    result = sim.step(state, torch.full((7, 2), 0.7), exo[:, 0])
    assert result.reward.shape == (7,)
    for name in ("bid_fill", "ask_fill", "bid_quoted", "ask_quoted", "inventory", "pnl", "spread", "mid",
                 "mid_change"):
        assert result.info[name].shape == (7,), name
    assert result.terminated.shape == (7,) and result.terminated.dtype == torch.bool


def test_hand_computed_step_follows_the_order_of_events() -> None:
    """Quotes from the start state, fills on the uniforms, fee per fill, then the mid moves (with drift and
    reversion), the penalties on the inventory after the fills."""
    s = ModelScenario(max_inventory=3, maker_fee=0.01, drift=0.4, mean_reversion=2.0, running_penalty=0.3,
                      terminal_penalty=0.2, horizon=0.01, dt=0.005)
    sim = ModelSim(s, dtype=torch.float64)
    state = _state(sim, inventory=1.0, mid_offset=0.3, step=1)  # the last step: terminal penalty applies
    depths = torch.tensor([[0.5, 0.8]], dtype=torch.float64)
    p_bid, p_ask = 0.7 * math.exp(-0.75), 0.7 * math.exp(-1.2)  # A·dt·exp(−k·δ): 0.3307, 0.2108
    exo = torch.tensor([[p_bid - 1e-6, p_ask + 1e-6, 0.5]], dtype=torch.float64)  # bid fills, ask does not
    result = sim.step(state, depths, exo)
    move = 0.4 * 0.005 - 2.0 * 0.3 * 0.005 + 2.0 * math.sqrt(0.005) * 0.5
    inventory = 2.0
    expected = (0.5 - 0.01) + inventory * move - inventory**2 * (0.3 * 0.005 + 0.2)
    assert result.info["bid_fill"].item() == 1.0 and result.info["ask_fill"].item() == 0.0
    assert result.state.inventory.item() == inventory
    assert result.reward.item() == pytest.approx(expected, abs=1e-12)
    assert result.state.pnl.item() == pytest.approx(0.49 + inventory * move, abs=1e-12)  # before penalties
    assert result.state.mid_offset.item() == pytest.approx(0.3 + move, abs=1e-12)
    assert result.info["mid"].item() == pytest.approx(100.3 + move, abs=1e-12)
    assert result.info["spread"].item() == pytest.approx(1.3) and bool(result.terminated.item())
    # a step before the last carries the running penalty only
    early = sim.step(_state(sim, 1.0, 0.3, step=0), depths, exo)
    assert early.reward.item() == pytest.approx(0.49 + inventory * move - 4 * 0.3 * 0.005, abs=1e-12)
    assert not bool(early.terminated.item())


def test_both_sides_fill_and_cash_accounts_for_prices_and_fees() -> None:
    s = ModelScenario(initial_inventory=1, maker_fee=0.01)
    sim = ModelSim(s, dtype=torch.float64)
    state = sim.reset(1)
    depths = torch.tensor([[0.5, 0.8]], dtype=torch.float64)
    result = sim.step(state, depths, torch.tensor([[0.0, 0.0, -1.0]], dtype=torch.float64))
    bid, ask = quote_prices(torch.tensor([100.0], dtype=torch.float64), depths)
    assert result.state.inventory.item() == 1.0
    assert result.state.cash(s).item() == pytest.approx(-(bid.item() + 0.01) + (ask.item() - 0.01), abs=1e-9)
    assert result.state.pnl.item() == pytest.approx(1.28 - 2.0 * math.sqrt(0.005), abs=1e-12)


def test_step_is_pure_and_seeds_repeat() -> None:
    sim = ModelSim(PRESETS["jumpy"])
    state = sim.reset(64)
    exo = sim.sample_exogenous(64, 3, make_generator(5))
    assert torch.equal(exo, sim.sample_exogenous(64, 3, make_generator(5)))
    assert not torch.equal(exo, sim.sample_exogenous(64, 3, make_generator(6)))
    policy = AvellanedaStoikov(sim.scenario)
    for t in range(3):
        before = {name: getattr(state, name).clone() for name in state.__dataclass_fields__}
        action = policy.act(sim.observe(state))
        first = sim.step(state, action, exo[:, t])
        second = sim.step(state, action, exo[:, t])
        for name, value in before.items():
            assert torch.equal(getattr(state, name), value), name
        assert torch.equal(first.reward, second.reward)
        state = first.state
    runs = [rollout(sim, policy, sim.sample_exogenous(64, 200, make_generator(1)), record=("inventory",))
            for _ in range(2)]
    assert torch.equal(runs[0].rewards, runs[1].rewards)
    assert torch.equal(runs[0].info["inventory"], runs[1].info["inventory"])


def test_rewards_sum_to_pnl_less_penalties() -> None:
    s = ModelScenario(max_inventory=5, running_penalty=0.5, terminal_penalty=0.1, maker_fee=-0.005)
    sim = ModelSim(s, dtype=torch.float64)
    traj = rollout(sim, AvellanedaStoikov(s), sim.sample_exogenous(256, s.steps, make_generator(2)),
                   record=("inventory", "pnl"))
    q = traj.info["inventory"]
    penalties = 0.5 * s.dt * (q**2).sum(dim=1) + 0.1 * q[:, -1] ** 2
    assert torch.allclose(traj.rewards.sum(dim=1), traj.info["pnl"][:, -1] - penalties, atol=1e-9)
    assert torch.allclose(traj.final_state.pnl, traj.info["pnl"][:, -1])


def test_inventory_bound_is_enforced() -> None:
    """Quotes that would always buy stop at +Q: the bid does not quote there, whatever the depth."""
    s = ModelScenario(max_inventory=4)
    sim = ModelSim(s)
    state = sim.reset(32)
    exo = sim.sample_exogenous(32, 20, make_generator(0))
    always_buy = torch.tensor([[-5.0, 50.0]]).expand(32, 2)
    for t in range(20):
        result = sim.step(state, always_buy, exo[:, t])
        state = result.state
        assert bool((state.inventory <= 4).all())
    assert bool((state.inventory == 4).all())
    assert not bool(result.info["bid_quoted"].any()) and bool(result.info["spread"].isnan().all())
    # and from the other side
    state = sim.reset(32)
    for t in range(20):
        state = sim.step(state, torch.tensor([[50.0, -5.0]]).expand(32, 2), exo[:, t]).state
    assert bool((state.inventory == -4).all())


def test_steps_past_the_horizon_keep_time_left_at_zero() -> None:
    s = ModelScenario(horizon=0.01, dt=0.005, terminal_penalty=1.0)
    sim = ModelSim(s)
    state = sim.reset(4)
    exo = sim.sample_exogenous(4, 3, make_generator(0))
    for t in range(3):
        result = sim.step(state, torch.full((4, 2), -5.0), exo[:, t])  # both sides always fill: q stays 0
        state = result.state
    assert bool((sim.observe(state)[:, 0] == 0).all()) and bool(result.terminated.all())


def test_straight_through_fills_carry_the_fill_probability_gradient() -> None:
    s = PRESETS["avellaneda_stoikov"]
    sim = ModelSim(s, dtype=torch.float64, surrogate_gradients=True)
    depths = torch.tensor([[0.4, 0.9]], dtype=torch.float64, requires_grad=True)
    exo = torch.tensor([[0.1, 0.9, 0.3]], dtype=torch.float64)  # the bid fills, the ask does not
    result = sim.step(sim.reset(1), depths, exo)
    result.reward.sum().backward()
    move = 2.0 * math.sqrt(0.005) * 0.3
    p_bid, p_ask = 0.7 * math.exp(-1.5 * 0.4), 0.7 * math.exp(-1.5 * 0.9)
    # r = f_b·δ_b + f_a·δ_a + (f_b − f_a)·Δs with df/dδ = −k·p and the realised fills f_b = 1, f_a = 0
    expected_bid = 1.0 + (0.4 + move) * (-1.5 * p_bid)
    expected_ask = 0.0 + (0.9 - move) * (-1.5 * p_ask)
    assert result.info["bid_fill"].item() == 1.0 and result.info["ask_fill"].item() == 0.0
    assert depths.grad is not None
    assert depths.grad[0, 0].item() == pytest.approx(expected_bid, rel=1e-10)
    assert depths.grad[0, 1].item() == pytest.approx(expected_ask, rel=1e-10)

    # through a whole rollout with a policy that has parameters, in float32: finite, non-zero
    sim32 = ModelSim(s, surrogate_gradients=True)
    offset = torch.zeros(2, requires_grad=True)

    class Shifted(AvellanedaStoikov):
        def act(self, obs: torch.Tensor) -> torch.Tensor:
            return super().act(obs) + offset

    traj = rollout(sim32, Shifted(s), sim32.sample_exogenous(512, s.steps, make_generator(0)), grad=True)
    traj.rewards.sum(dim=1).mean().backward()
    assert offset.grad is not None and bool(torch.isfinite(offset.grad).all()) and bool((offset.grad != 0).all())


def test_without_surrogates_fills_are_constants() -> None:
    sim = ModelSim(PRESETS["avellaneda_stoikov"], dtype=torch.float64)
    depths = torch.tensor([[0.4, 0.9]], dtype=torch.float64, requires_grad=True)
    result = sim.step(sim.reset(1), depths, torch.tensor([[0.1, 0.9, 0.3]], dtype=torch.float64))
    result.reward.sum().backward()
    assert depths.grad is not None and depths.grad.tolist() == [[1.0, 0.0]]
