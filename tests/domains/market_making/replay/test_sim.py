"""The replay simulator on hand-built books: queue position and fills, latency, post-only rounding, the
inventory bound, penalties and liquidation, binding of episodes to their rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from decisionlab.core.errors import ScenarioError
from decisionlab.domains.market_making.replay.data import ReplayData, replay_from_levels
from decisionlab.domains.market_making.replay.scenario import PRESETS, ReplayScenario, replay_data
from decisionlab.domains.market_making.replay.sim import ReplaySim

INF = math.inf


def flat_book(snapshots: int, bid_sizes: list[float] | None = None, trades: tuple = ()) -> ReplayData:
    """Best bid 99.99 / best ask 100.01 (mid 100.00, spread two ticks), a second level behind each; the
    best bid's size per snapshot is ``bid_sizes`` (default 5), every other level 10."""
    sizes = bid_sizes or [5.0] * snapshots
    return replay_from_levels(
        [[99.99, 99.98]] * snapshots, [[s, 10.0] for s in sizes],
        [[100.01, 100.02]] * snapshots, [[5.0, 10.0]] * snapshots, list(trades))


def sim_on(data: ReplayData, steps: int, **overrides: object) -> ReplaySim:
    """A simulator over the whole of ``data`` (nothing is held out for training: train_fraction → row 0)."""
    params = {"horizon": float(steps), "dt": 1.0, "train_fraction": 0.01, "max_inventory": None, **overrides}
    return ReplaySim(ReplayScenario(**params), "cpu", "test", data=data)


def run(sim: ReplaySim, depths: list[tuple[float, float]] | torch.Tensor, start: int = 0) -> list[dict]:
    """Step one episode (batch 1) from row ``start`` with the given depths per step; the info of each step."""
    state = sim.start_state(torch.tensor([start]))
    out = []
    for bid, ask in depths:
        result = sim.step(state, torch.tensor([[bid, ask]], dtype=torch.float32), torch.zeros(1, 1))
        state = result.state
        out.append({name: value.item() for name, value in result.info.items()}
                   | {"reward": result.reward.item(), "done": result.terminated.item()})
    return out


# ----- queue position and fills --------------------------------------------------------------------


def test_a_joining_bid_queues_behind_the_displayed_size() -> None:
    # behind 5 units at 99.99: a sell of 3 leaves 2 ahead, a sell of 4 fills the quote in the second step
    data = flat_book(4, trades=[(0, -1, 99.99, 3.0), (1, -1, 99.99, 4.0)])
    steps = run(sim_on(data, 3), [(0.01, INF)] * 3)
    assert [s["bid_fill"] for s in steps] == [0.0, 1.0, 0.0]
    assert steps[1]["inventory"] == 1.0
    assert steps[0]["bid_price"] == pytest.approx(99.99)
    # with 3 units quoted the second trade's 4 units fill 4 − 2 = 2 of them
    steps = run(sim_on(data, 3, quote_size=3.0), [(0.01, INF)] * 3)
    assert [s["bid_fill"] for s in steps] == [0.0, 2.0, 0.0]


def test_moving_away_loses_the_place_in_the_queue() -> None:
    data = flat_book(4, trades=[(0, -1, 99.99, 3.0), (2, -1, 99.99, 4.0)])
    # 99.99 (5 ahead, 3 trade: 2 left), 99.98, back to 99.99: behind the displayed 5 again, 4 do not fill
    steps = run(sim_on(data, 3), [(0.01, INF), (0.02, INF), (0.01, INF)])
    assert [s["bid_fill"] for s in steps] == [0.0, 0.0, 0.0]
    steps = run(sim_on(data, 3), [(0.01, INF)] * 3)  # staying keeps the place: the 4 units fill it
    assert [s["bid_fill"] for s in steps] == [0.0, 0.0, 1.0]


def test_an_improving_bid_has_no_queue_and_fills_on_the_first_trade() -> None:
    data = flat_book(4, trades=[(0, -1, 99.99, 3.0), (1, -1, 99.99, 4.0)])
    steps = run(sim_on(data, 3), [(0.0, INF)] * 3)  # 100.00: inside the spread, ahead of everyone
    assert steps[0]["bid_price"] == pytest.approx(100.00)
    assert steps[0]["bid_fill"] == 1.0
    # the captured depth is 0 (bought at the mid) and the mid does not move: no P&L, only inventory
    assert steps[0]["reward"] == pytest.approx(0.0, abs=1e-6)


def test_a_trade_through_the_quote_fills_it_entirely() -> None:
    # behind 10 units at 99.98: sells at 99.99 never reach it, a sell at 99.97 went through it
    data = flat_book(4, trades=[(0, -1, 99.99, 3.0), (1, -1, 99.99, 40.0), (2, -1, 99.97, 1.0)])
    steps = run(sim_on(data, 3, quote_size=2.0), [(0.02, INF)] * 3)
    assert [s["bid_fill"] for s in steps] == [0.0, 0.0, 2.0]
    # one unit bought at 99.98, one tick below... two units at 0.02 below the mid: captured 0.04
    assert steps[2]["reward"] == pytest.approx(0.04, abs=1e-5)


def test_the_ask_side_mirrors_the_bid() -> None:
    data = replay_from_levels([[99.99, 99.98]] * 4, [[5.0, 10.0]] * 4, [[100.01, 100.02]] * 4,
                              [[5.0, 10.0]] * 4, [(0, 1, 100.01, 3.0), (1, 1, 100.01, 4.0), (2, 1, 100.03, 1.0)])
    steps = run(sim_on(data, 3), [(INF, 0.01)] * 3)
    assert [s["ask_fill"] for s in steps] == [0.0, 1.0, 1.0]  # the buy at 100.03 goes through 100.01 too
    assert steps[1]["inventory"] == -1.0
    steps = run(sim_on(data, 3), [(INF, 0.02)] * 3)  # behind 10 at 100.02: only the buy at 100.03 reaches it
    assert [s["ask_fill"] for s in steps] == [0.0, 0.0, 1.0]
    steps = run(sim_on(data, 3), [(INF, 0.0)] * 3)  # improving: filled by the first buy
    assert steps[0]["ask_fill"] == 1.0


def test_proportional_queue_counts_cancellations_ahead() -> None:
    # join behind 4; the level grows to 10 (6 behind us), then 5 of the 10 cancel: half of them ahead of
    # us in the proportional model (2 left ahead), none in the pessimistic one (4); then a sell of 3
    data = flat_book(4, bid_sizes=[4.0, 10.0, 5.0, 5.0], trades=[(2, -1, 99.99, 3.0)])
    pessimistic = run(sim_on(data, 3), [(0.01, INF)] * 3)
    proportional = run(sim_on(data, 3, queue_model="proportional"), [(0.01, INF)] * 3)
    assert [s["bid_fill"] for s in pessimistic] == [0.0, 0.0, 0.0]
    assert [s["bid_fill"] for s in proportional] == [0.0, 0.0, 1.0]


def test_the_queue_ahead_never_exceeds_what_is_displayed() -> None:
    # behind 5, the level drops to 1 without trades: at most 1 is ahead, so a sell of 2 fills us
    data = flat_book(4, bid_sizes=[5.0, 1.0, 1.0, 1.0], trades=[(1, -1, 99.99, 2.0)])
    steps = run(sim_on(data, 3), [(0.01, INF)] * 3)
    assert [s["bid_fill"] for s in steps] == [0.0, 1.0, 0.0]


# ----- prices: rounding, post-only, latency --------------------------------------------------------


def test_post_only_rounding() -> None:
    sim = sim_on(flat_book(3), 2)
    depths = torch.tensor([[0.004, 0.004], [0.0149, 0.0149], [0.01, 0.01], [-0.05, -0.05], [-0.01, INF],
                           [math.nan, 0.02]])
    result = sim.step(sim.start_state(torch.zeros(6, dtype=torch.long)), depths, torch.zeros(6, 1))
    bid, ask = result.info["bid_price"].numpy(), result.info["ask_price"].numpy()
    np.testing.assert_allclose(bid[:5], [99.99, 99.98, 99.99, 100.00, 100.00], atol=1e-4)  # bid rounded down
    np.testing.assert_allclose(ask[[0, 1, 2, 3, 5]], [100.01, 100.02, 100.01, 100.01, 100.02], atol=1e-4)  # up
    # a bid above the best ask became best ask − tick; the ask, then at our bid, moved one tick above it
    assert math.isnan(ask[4]) and math.isnan(bid[5])  # a non-finite depth does not quote
    assert result.info["bid_quoted"].tolist() == [True] * 5 + [False]
    np.testing.assert_allclose(result.info["spread"].numpy()[:4], [0.02, 0.04, 0.02, 0.01], atol=1e-4)


def test_latency_delays_quotes_by_exactly_latency_steps() -> None:
    data = flat_book(7)
    depths = [(0.01 * (t + 1), 0.01 * (t + 1)) for t in range(6)]  # bids 99.99, 99.98, ... decided at t
    for latency in (0, 1, 3):
        steps = run(sim_on(data, 6, latency_steps=latency), depths)
        bids = [s["bid_price"] for s in steps]
        assert all(math.isnan(b) for b in bids[:latency])
        np.testing.assert_allclose(bids[latency:], [100.0 - 0.01 * (t + 1) for t in range(6 - latency)], atol=1e-4)
        assert [s["bid_quoted"] for s in steps] == [False] * latency + [True] * (6 - latency)


def test_latency_must_be_shorter_than_the_episode() -> None:
    with pytest.raises(ValueError, match="latency_steps"):
        ReplayScenario(horizon=5.0, dt=1.0, latency_steps=5)


# ----- inventory, rewards, penalties, liquidation --------------------------------------------------


def test_the_inventory_bound_caps_fills_and_closes_the_side() -> None:
    data = flat_book(4, trades=[(0, -1, 99.97, 5.0), (1, -1, 99.97, 5.0)])
    steps = run(sim_on(data, 3, max_inventory=2, quote_size=3.0), [(0.01, INF)] * 3)
    assert steps[0]["bid_fill"] == 2.0  # through the quote, capped at the bound
    assert steps[1]["bid_quoted"] is False and steps[1]["bid_fill"] == 0.0
    assert max(abs(s["inventory"]) for s in steps) == 2.0


def test_rewards_sum_to_the_pnl_less_penalties_and_fees() -> None:
    mids = [100.00, 100.01, 100.03, 100.02, 100.05]
    bids = [[m - 0.01, m - 0.02] for m in mids]
    asks = [[m + 0.01, m + 0.02] for m in mids]
    trades = [(0, -1, 99.98, 2.0), (1, 1, 100.03, 1.0), (2, -1, 100.01, 3.0)]
    data = replay_from_levels(bids, [[1.0, 1.0]] * 5, asks, [[1.0, 1.0]] * 5, trades)
    depths = [(0.0, INF), (INF, 0.0), (0.0, 0.03), (0.01, 0.01)]
    plain = run(sim_on(data, 4, maker_fee=0.001), depths)
    assert sum(s["reward"] for s in plain) == pytest.approx(plain[-1]["pnl"], abs=1e-5)
    # step 0: bought at 100.00 (mid); the mid rises 0.01 with q = 1 -> +0.01 − fee
    assert plain[0]["bid_fill"] == 1.0 and plain[0]["reward"] == pytest.approx(0.01 - 0.001, abs=1e-6)
    assert plain[-1]["mid"] == pytest.approx(100.05)
    assert plain[0]["mid_change"] == pytest.approx(0.01, abs=1e-6)
    q_final = plain[-1]["inventory"]
    penalised = run(sim_on(data, 4, maker_fee=0.001, running_penalty=0.5, terminal_penalty=2.0), depths)
    penalties = sum(0.5 * s["inventory"] ** 2 for s in penalised) + 2.0 * q_final**2
    assert sum(s["reward"] for s in penalised) == pytest.approx(plain[-1]["pnl"] - penalties, abs=1e-5)
    assert [s["done"] for s in plain] == [False, False, False, True]


def test_flatten_at_end_walks_the_book_and_pays_the_taker_fee() -> None:
    data = replay_from_levels([[99.99, 99.98]] * 3, [[1.0, 2.0]] * 3, [[100.01, 100.02]] * 3, [[1.0, 2.0]] * 3,
                              [(0, -1, 99.97, 9.0)])
    steps = run(sim_on(data, 2, quote_size=4.0, flatten_at_end=True, taker_fee_rate=0.002), [(0.01, INF), (INF, INF)])
    assert steps[0]["bid_fill"] == 4.0 and steps[1]["inventory"] == 0.0
    # sell 4: 1 at 99.99, 2 at 99.98, 1 more at the last displayed price 99.98 -> 399.93 vs 4 × 100.00
    assert steps[1]["flatten_cost"] == pytest.approx(400.0 - 399.93, abs=1e-4)
    assert steps[1]["fees"] == pytest.approx(0.002 * 399.93, abs=1e-4)
    total = sum(s["reward"] for s in steps)
    assert total == pytest.approx(4 * 0.01 - (400.0 - 399.93) - 0.002 * 399.93, abs=1e-4)


def test_steps_past_the_horizon_are_inert() -> None:
    data = flat_book(4, trades=[(1, -1, 99.97, 9.0)])
    steps = run(sim_on(data, 1), [(0.01, INF)] * 3)
    assert [s["bid_quoted"] for s in steps] == [True, False, False]
    assert [s["reward"] for s in steps[1:]] == [0.0, 0.0] and all(s["done"] for s in steps)


# ----- episodes, binding, determinism, the split ---------------------------------------------------


def constant(depth: float):  # noqa: ANN201
    class Constant:
        def act(self, obs: torch.Tensor) -> torch.Tensor:
            return torch.full((obs.shape[0], 2), depth)

    return Constant()


def rollout(sim: ReplaySim, batch: int, seed: int, bind: bool, chunks: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards ``[B, T]`` and the rows played ``[B, T]`` of a constant quote; exogenous drawn in ``chunks``."""
    gen = torch.Generator().manual_seed(seed)
    state = sim.reset(batch, gen if bind else None)
    rewards, rows = [], []
    policy = constant(0.015)
    length = sim.horizon // chunks
    for _ in range(chunks):
        exogenous = sim.sample_exogenous(batch, length, gen)
        for t in range(length):
            rows.append(torch.where(state.row >= 0, state.row, exogenous[:, t, 0].long()))
            result = sim.step(state, policy.act(sim.observe(state)), exogenous[:, t])
            state = result.state
            rewards.append(result.reward)
    return torch.stack(rewards, 1), torch.stack(rows, 1)


@pytest.fixture(scope="module")
def sample_sims() -> tuple[ReplaySim, ReplaySim]:
    scenario = PRESETS["lob_replay"].model_copy(update={"horizon": 120.0})
    return ReplaySim(scenario, "cpu", "train"), ReplaySim(scenario, "cpu", "test")


def test_same_seed_same_windows_and_results(sample_sims: tuple[ReplaySim, ReplaySim]) -> None:
    _, test = sample_sims
    first_rewards, first_rows = rollout(test, 16, seed=3, bind=True)
    again_rewards, again_rows = rollout(test, 16, seed=3, bind=True)
    assert torch.equal(first_rows, again_rows) and torch.equal(first_rewards, again_rewards)
    other_rewards, other_rows = rollout(test, 16, seed=4, bind=True)
    assert not torch.equal(first_rows, other_rows)
    # windows are contiguous
    assert torch.equal(first_rows - first_rows[:, :1], torch.arange(test.horizon).expand(16, -1))
    # an unbound reset plays the same rows (bound at its first step) and, past the first observation, the same
    # fills; drawing the exogenous rows in chunks does not break an episode's window
    free_rewards, free_rows = rollout(test, 16, seed=3, bind=False)
    chunked_rewards, chunked_rows = rollout(test, 16, seed=3, bind=False, chunks=4)
    assert torch.equal(free_rows, first_rows) and torch.equal(chunked_rows, first_rows)
    assert torch.equal(chunked_rewards, free_rewards)
    assert torch.equal(free_rewards, first_rewards)  # a constant quote does not read the first observation


def test_reset_with_a_generator_binds_to_the_rows_sample_exogenous_draws(
        sample_sims: tuple[ReplaySim, ReplaySim]) -> None:
    train, _ = sample_sims
    gen = torch.Generator().manual_seed(11)
    state = train.reset(32, gen)
    exogenous = train.sample_exogenous(32, 5, gen)
    assert torch.equal(state.row, exogenous[:, 0, 0].long())
    obs = train.observe(state)
    assert obs[:, 0].eq(120.0).all() and obs[:, 2].eq(0).all()  # time left T, mid offset 0
    spread = train.table.top[4].index_select(0, state.row) * train.tick
    torch.testing.assert_close(obs[:, 5], spread)
    assert exogenous.shape == (32, 5, 1) and exogenous.dtype == torch.float32
    unbound = train.observe(train.reset(4))
    assert unbound[:, 5].eq(train.median_spread).all() and unbound[:, 4].eq(0).all()


def test_train_and_test_never_share_a_row(sample_sims: tuple[ReplaySim, ReplaySim]) -> None:
    train, test = sample_sims
    data = replay_data(train.scenario)
    split = train.split_row
    assert split == math.floor(0.7 * data.snapshots) and test.first_row == split
    assert not hasattr(train, "data") and not hasattr(test, "data")  # no handle on the other part's rows
    assert train.rows == split and test.rows == data.snapshots - split
    # each simulator holds only its own rows: the mids on its device are exactly its part of the data
    mids = (train.table.top[0].double() + train.table.ref_ticks) * train.tick
    np.testing.assert_allclose(mids.numpy(), data.mid[:split], atol=1e-6)
    mids = (test.table.top[0].double() + test.table.ref_ticks) * test.tick
    np.testing.assert_allclose(mids.numpy(), data.mid[split:], atol=1e-6)
    for sim in (train, test):
        _, rows = rollout(sim, 256, seed=0, bind=True)
        assert int(rows.min()) >= 0 and int(rows.max()) + 1 < sim.rows  # the step's next snapshot is in the part
    # a quick episode through the training split never reaches the held-out rows
    assert int(train.sample_exogenous(4096, train.horizon + 5)[..., 0].max()) + train.first_row < split


def test_an_episode_longer_than_a_part_is_refused() -> None:
    scenario = PRESETS["lob_replay"].model_copy(update={"horizon": 5000.0})
    with pytest.raises(ScenarioError, match="held-out part has 4320"):
        ReplaySim(scenario, "cpu", "test")


@pytest.mark.filterwarnings("ignore:.*Box observation space:UserWarning")  # the core adapter's unbounded box
def test_the_gymnasium_adapter_accepts_the_simulator(sample_sims: tuple[ReplaySim, ReplaySim]) -> None:
    from gymnasium.utils.env_checker import check_env

    from decisionlab.core.gym import SimulatorEnv

    check_env(SimulatorEnv(sample_sims[1], 6), skip_render_check=True)
