"""The Gather-Trade-Build simulator on hand-made maps: gathering, regrowth, building, masks, the double
auction, order expiry, the period tax and rebate, the planner's timing, seeding, invariants along random
legal rollouts, the generated layout and PettingZoo's parallel API."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from decisionlab.core import RandomPolicy, SimulatorParallelEnv, make_generator
from decisionlab.domains.taxation import gtb_market, gtb_world
from decisionlab.domains.taxation.gtb import BUILD, NOOP, PLANNER, WORKERS, GatherTradeBuildSim
from decisionlab.domains.taxation.gtb_layout import source_capacity
from decisionlab.domains.taxation.gtb_market import WIDE, best_of_others
from decisionlab.domains.taxation.gtb_world import AGENT, HOUSE, STONE, WOOD, WOOD_SOURCE, resolve_moves
from decisionlab.domains.taxation.scenario import GatherTradeBuildScenario

LEFT, RIGHT, UP, DOWN = 1, 2, 3, 4
US_RATES = [0.10, 0.12, 0.22, 0.24, 0.32, 0.35, 0.37]


@pytest.fixture(params=["narrow keys, pairwise", "wide keys, linear"])
def paths(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test twice: as small economies run (int32 keys, [A, A] comparisons) and as economies of many
    workers run (int64 keys, best and second best, the first mover per tile)."""
    if request.param.startswith("wide"):
        monkeypatch.setattr(gtb_market, "layout_for", lambda slots: WIDE)
        monkeypatch.setattr(gtb_market, "SMALL_BOOK", 0)
        monkeypatch.setattr(gtb_world, "PAIRWISE_MOVES", 0)
    return request.param


def small(**changes: object) -> GatherTradeBuildSim:
    """A 7 × 7 map, 2 workers, 5-step tax periods, no regrowth unless asked."""
    base = {"n_agents": 2, "map_size": 7, "observation_range": 2, "episode_steps": 20, "tax_period_steps": 5,
            "resource_regen_prob": 0.0, "wood_coverage": 0.2, "stone_coverage": 0.2}
    return GatherTradeBuildSim(GatherTradeBuildScenario(**{**base, **changes}))


def start(sim: GatherTradeBuildSim, agents: list[tuple[int, int]], wood: tuple[tuple[int, int], ...] = (),
          stone: tuple[tuple[int, int], ...] = (), payment: float | list[float] = 10.0, bonus: float = 0.0,
          batch: int = 1, coin: float | list[float] | None = None, goods: list[list[int]] | None = None):
    size = sim.size
    kinds = torch.zeros(batch, size, size, dtype=torch.long)
    for r, c in wood:
        kinds[:, r, c] = 1
    for r, c in stone:
        kinds[:, r, c] = 2
    tiles = torch.tensor([[r * size + c for r, c in agents]]).expand(batch, -1)
    pay = torch.tensor(payment if isinstance(payment, list) else [payment] * len(agents), dtype=torch.float64)
    state = sim.initial_state(kinds, tiles, pay.expand(batch, -1), torch.full((batch, len(agents)), bonus))
    if coin is not None:
        values = coin if isinstance(coin, list) else [coin] * len(agents)
        state = replace(state, coin=torch.tensor(values, dtype=torch.float64).expand(batch, -1).clone())
    if goods is not None:
        state = replace(state, goods=torch.tensor(goods).expand(batch, -1, -1).clone())
    return state


def draws(sim: GatherTradeBuildSim, batch: int = 1, order: list[float] | None = None, bonus: float = 0.5,
          regrow: float = 0.5) -> torch.Tensor:
    """One step's exogenous ``[B, 3·A]``: move-order keys, bonus-unit draws, regrowth draws."""
    n = sim.scenario.n_agents
    keys = torch.tensor(order if order is not None else [i / n for i in range(n)])
    return torch.cat([keys, torch.full((n,), bonus), torch.full((n,), regrow)]).float().expand(batch, -1)


def step(sim: GatherTradeBuildSim, state, choices: list[int], rates: list[float] | None = None, **exo: object):
    batch = state.coin.shape[0]
    action = {WORKERS: torch.tensor([choices]).expand(batch, -1)}
    if rates is not None:
        action[PLANNER] = torch.tensor([[rates]], dtype=torch.float32).expand(batch, 1, -1)
    return sim.step(state, action, draws(sim, batch, **exo))


def tile(sim: GatherTradeBuildSim, state, r: int, c: int) -> int:
    side = sim.size + 2 * sim.pad
    return int(state.code[0, (r + sim.pad) * side + c + sim.pad])


def legal(sim: GatherTradeBuildSim, state) -> torch.Tensor:
    return sim.observe(state)[WORKERS]["legal"][0]


def test_moving_onto_a_resource_gathers_it_and_onto_an_empty_tile_does_not() -> None:
    sim = small()
    state = start(sim, [(3, 3), (1, 1)], wood=((3, 4),), stone=((5, 5),))
    result = step(sim, state, [RIGHT, RIGHT])
    after = result.state
    assert after.goods[0].tolist() == [[1, 0], [0, 0]]
    assert tile(sim, after, 3, 4) == WOOD_SOURCE | AGENT  # emptied, its source stays, the worker on it
    assert after.labour[0].tolist() == [2.0, 1.0]  # move + collect; a move alone
    assert result.info["resources_gathered"].tolist() == [1.0]
    # a sure bonus: two units at once; standing still on an empty source gathers nothing
    rich = step(sim, start(sim, [(3, 3), (1, 1)], wood=((3, 4),), bonus=1.0), [RIGHT, NOOP]).state
    assert rich.goods[0, 0].tolist() == [2, 0]
    again = step(sim, after, [NOOP, NOOP]).state
    assert again.goods[0].tolist() == [[1, 0], [0, 0]] and again.labour[0].tolist() == [2.0, 1.0]


def test_an_emptied_tile_regrows_only_with_its_probability() -> None:
    never = small()
    state = step(never, start(never, [(3, 3), (0, 0)], stone=((3, 4),)), [RIGHT, NOOP], regrow=0.0).state
    for _ in range(20):
        state = step(never, state, [NOOP, NOOP], regrow=0.0).state
        assert not tile(never, state, 3, 4) & STONE
    # p = 0.3: back after k steps, k = ⌊ln(1 − u)/ln(0.7)⌋ + 1 from the regrowth draw u of the emptying step
    sim = small(resource_regen_prob=0.3)
    for u, k in ((0.1, 1), (0.29, 1), (0.5, 2), (0.8, 5)):
        assert math.floor(math.log(1 - u) / math.log(0.7)) + 1 == k
        state = step(sim, start(sim, [(3, 3), (0, 0)], stone=((3, 4),)), [RIGHT, NOOP], regrow=u).state
        for done in range(1, 8):  # steps taken since the tile was emptied, that one included
            assert bool(tile(sim, state, 3, 4) & STONE) == (done >= k), (u, done)
            state = step(sim, state, [LEFT if done == 1 else NOOP, NOOP]).state  # off the tile, then wait
    # over many economies with sampled draws, the share back after one step is the probability
    batch = 4000
    state = start(sim, [(3, 3), (0, 0)], stone=((3, 4),), batch=batch)
    exo = sim.sample_exogenous(batch, 1, make_generator(5))[:, 0]
    after = sim.step(state, {WORKERS: torch.tensor([[RIGHT, NOOP]]).expand(batch, -1)}, exo).state
    share = ((after.code[:, (3 + sim.pad) * (sim.size + 2 * sim.pad) + 4 + sim.pad] & STONE) != 0).double().mean()
    assert abs(float(share) - 0.3) < 0.03


def test_building_uses_one_wood_and_one_stone_pays_the_skill_payment_and_blocks_the_tile() -> None:
    sim = small()
    state = start(sim, [(3, 3), (3, 4)], payment=[17.5, 10.0], goods=[[1, 1], [0, 0]])
    assert bool(legal(sim, state)[0, BUILD]) and not bool(legal(sim, state)[1, BUILD])  # no resources
    result = step(sim, state, [BUILD, NOOP])
    built = result.state
    assert built.goods[0, 0].tolist() == [0, 0] and float(built.coin[0, 0]) == 17.5
    assert float(built.labour[0, 0]) == 10.0 and int(built.houses[0, 0]) == 1
    assert tile(sim, built, 3, 3) == HOUSE | AGENT and result.info["houses_built"].tolist() == [1.0]
    built = replace(built, goods=torch.tensor([[[1, 1], [0, 0]]]))
    assert not bool(legal(sim, built)[0, BUILD])  # the tile has a house
    left = step(sim, built, [UP, NOOP]).state
    assert tile(sim, left, 3, 3) == HOUSE and tile(sim, left, 2, 3) == AGENT
    assert not bool(legal(sim, left)[0, DOWN])  # no way back into the house, not even for its builder


def test_masks_forbid_leaving_the_map_entering_workers_or_houses_and_building_on_sources() -> None:
    sim = small()
    state = start(sim, [(0, 0), (0, 1)], wood=((1, 0),), goods=[[1, 1], [1, 1]])
    mask = legal(sim, state)
    assert mask[0, [LEFT, RIGHT, UP, DOWN]].tolist() == [False, False, False, True]  # edge, worker, edge, wood
    assert mask[1, [LEFT, RIGHT, UP, DOWN]].tolist() == [False, True, False, True]
    assert bool(mask[0, BUILD]) and bool(mask[:, NOOP].all())
    on_source = step(sim, state, [DOWN, NOOP]).state
    assert not bool(legal(sim, on_source)[0, BUILD])  # a source tile, even emptied
    house = step(sim, step(sim, state, [NOOP, BUILD]).state, [NOOP, RIGHT]).state  # worker 1 builds, leaves
    assert tile(sim, house, 0, 1) == HOUSE and not bool(legal(sim, house)[0, RIGHT])
    # an illegal choice is a no-op: no move into the house, no build without resources
    forced = step(sim, house, [RIGHT, BUILD]).state
    assert forced.position.tolist() == house.position.tolist() and forced.houses.tolist() == house.houses.tolist()


def test_order_masks_need_the_coin_the_unit_and_room_in_the_book() -> None:
    sim = small(max_num_orders=2)
    state = start(sim, [(0, 0), (6, 6)], coin=[3.5, 0.0], goods=[[1, 0], [0, 0]])
    mask = legal(sim, state)
    wood_bids = [sim.order_choice(0, False, p) for p in range(11)]
    assert mask[0, wood_bids].tolist() == [True] * 4 + [False] * 7  # prices up to the coin
    assert mask[1, wood_bids].tolist() == [True] + [False] * 10  # a bid at 0 needs nothing
    assert bool(mask[0, sim.order_choice(0, True, 10)]) and not bool(mask[0, sim.order_choice(1, True, 0)])
    # two open orders on wood (the limit): no more on wood, stone still open
    for price in (0, 1):
        state = step(sim, state, [sim.order_choice(0, False, price), NOOP]).state
    mask = legal(sim, state)
    assert not bool(mask[0, sim.order_choice(0, False, 0)]) and not bool(mask[0, sim.order_choice(0, True, 5)])
    assert bool(mask[0, sim.order_choice(1, False, 0)])
    assert float(state.coin[0, 0]) == 2.5 and float(state.held.coin[0, 0]) == 1.0


def test_a_bid_and_an_ask_that_cross_trade_at_the_earlier_orders_price() -> None:
    sim = small()
    ask, bid = sim.order_choice(0, True, 3), sim.order_choice(0, False, 7)
    state = start(sim, [(0, 0), (6, 6)], coin=[0.0, 10.0], goods=[[1, 0], [0, 0]])
    asked = step(sim, state, [ask, NOOP]).state
    assert asked.goods[0, 0].tolist() == [0, 0] and asked.held.goods[0, 0].tolist() == [1, 0]  # escrow
    traded = step(sim, asked, [NOOP, bid])
    after = traded.state
    assert after.coin[0].tolist() == [3.0, 7.0]  # the ask came first: its price; the buyer's 4 back
    assert after.goods[0].tolist() == [[0, 0], [1, 0]] and after.held.coin[0].tolist() == [0.0, 0.0]
    assert traded.info["trades"].tolist() == [1.0] and traded.info["trade_volume"].tolist() == [3.0]
    assert after.labour[0].tolist() == [0.25, 0.25]
    # the bid first: its price; both in the same step: the ask's
    bid_first = step(sim, step(sim, state, [NOOP, bid]).state, [ask, NOOP]).state
    assert bid_first.coin[0].tolist() == [7.0, 3.0]
    together = step(sim, state, [ask, bid]).state
    assert together.coin[0].tolist() == [3.0, 7.0]
    # no cross: a bid below the ask waits, its coin in escrow
    low = step(sim, asked, [NOOP, sim.order_choice(0, False, 2)]).state
    assert low.coin[0].tolist() == [0.0, 8.0] and low.held.coin[0].tolist() == [0.0, 2.0]
    assert low.goods[0].tolist() == [[0, 0], [0, 0]]


def test_matching_ranks_bids_by_price_then_age_and_skips_ones_own_ask(paths: str) -> None:
    sim = small(n_agents=3)
    state = start(sim, [(0, 0), (3, 3), (6, 6)], coin=[10.0, 10.0, 10.0], goods=[[1, 0], [0, 0], [0, 0]])
    own = step(sim, step(sim, state, [sim.order_choice(0, True, 2), NOOP, NOOP]).state,
               [sim.order_choice(0, False, 5), NOOP, NOOP])
    assert own.info["trades"].tolist() == [0.0]  # one's own ask never fills one's bid
    bids = step(sim, own.state, [NOOP, sim.order_choice(0, False, 5), sim.order_choice(0, False, 6)])
    # worker 2 bids highest and gets the unit at the ask's price; worker 0's older bid at 5 has no seller
    assert bids.state.goods[0, :, 0].tolist() == [0, 0, 1] and bids.state.coin[0].tolist() == [7.0, 5.0, 8.0]
    assert bids.info["trades"].tolist() == [1.0]  # worker 0: 10 − 5 in escrow + 2 for its unit


class FoundationBook:
    """The Foundation's ``ContinuousDoubleAuction`` for one economy, order by order (lists, sorting and the
    restart loop of its ``match_orders``), to check the batched book against."""

    def __init__(self, coin: list[float], goods: list[list[int]], duration: int, most: int) -> None:
        self.coin, self.goods, self.duration, self.most = list(coin), [list(g) for g in goods], duration, most
        self.bids: list[list[dict]] = [[], []]
        self.asks: list[list[dict]] = [[], []]

    def open(self, r: int, a: int) -> int:
        return sum(o["who"] == a for o in self.bids[r] + self.asks[r])

    def step(self, orders: list[tuple[int, bool, int] | None]) -> None:
        for r in (0, 1):
            for a, order in enumerate(orders):
                if order is None or order[0] != r or self.open(r, a) >= self.most:
                    continue
                _, ask, price = order
                if ask and self.goods[a][r] > 0:
                    self.goods[a][r] -= 1
                    self.asks[r].append({"who": a, "price": price, "life": 0})
                elif not ask and self.coin[a] >= price:
                    self.coin[a] -= price
                    self.bids[r].append({"who": a, "price": price, "life": 0})
        for r in (0, 1):
            bids = sorted(self.bids[r], key=lambda o: (o["price"], o["life"]), reverse=True)
            asks = sorted(self.asks[r], key=lambda o: (o["price"], -o["life"]))
            hopeless: set[int] = set()
            while True:
                trade = None
                for bid in bids:
                    if bid["who"] in hopeless:
                        continue
                    ask = next((o for o in asks if o["who"] != bid["who"]), None)
                    if ask is None or bid["price"] < ask["price"]:
                        hopeless.add(bid["who"])
                        continue
                    trade = bid, ask
                    break
                if trade is None:
                    break
                bid, ask = trade
                bids.remove(bid)
                asks.remove(ask)
                price = ask["price"] if bid["life"] <= ask["life"] else bid["price"]
                self.goods[bid["who"]][r] += 1
                self.coin[bid["who"]] += bid["price"] - price
                self.coin[ask["who"]] += price
            self.bids[r], self.asks[r] = bids, asks
        for r in (0, 1):
            for o in self.bids[r] + self.asks[r]:
                o["life"] += 1
            for o in [o for o in self.bids[r] if o["life"] > self.duration]:
                self.coin[o["who"]] += o["price"]
            for o in [o for o in self.asks[r] if o["life"] > self.duration]:
                self.goods[o["who"]][r] += 1
            self.bids[r] = [o for o in self.bids[r] if o["life"] <= self.duration]
            self.asks[r] = [o for o in self.asks[r] if o["life"] <= self.duration]


def test_the_batched_auction_matches_the_foundations_order_by_order(paths: str) -> None:
    sim = small(n_agents=4, order_duration=6, max_num_orders=3, max_bid_ask=6)
    batch, steps = 12, 40
    coin, goods = [20.0, 5.0, 12.0, 0.0], [[4, 1], [0, 3], [2, 2], [5, 0]]
    state = start(sim, [(0, 0), (0, 6), (6, 0), (6, 6)], batch=batch, coin=coin, goods=goods)
    books = [FoundationBook(coin, goods, 6, 3) for _ in range(batch)]
    generator = make_generator(7)
    first_order = sim.order_choice(0, False, 0)
    trades = 0.0
    for _ in range(steps):
        mask = sim.observe(state)[WORKERS]["legal"].clone()
        mask[..., 1:first_order] = False  # trade or wait only: the book alone decides the holdings
        noise = torch.rand(mask.shape, generator=generator)
        choice = torch.where(mask, noise, -1.0).argmax(-1)
        result = sim.step(state, {WORKERS: choice}, draws(sim, batch))
        state, trades = result.state, trades + float(result.info["trades"].sum())
        for b, book in enumerate(books):
            orders = []
            for c in choice[b].tolist():
                k = c - first_order
                orders.append(None if k < 0 else (k // (2 * sim.prices), (k // sim.prices) % 2 == 1, k % sim.prices))
            book.step(orders)
            assert state.coin[b].tolist() == pytest.approx(book.coin)
            assert state.goods[b].tolist() == book.goods
            escrow = [sum(o["price"] for r in (0, 1) for o in book.bids[r] if o["who"] == a) for a in range(4)]
            assert state.held.coin[b].tolist() == pytest.approx(escrow)
    assert trades > 100  # the books cross often: matching, not only placing, is compared


def test_an_order_expires_after_order_duration_and_its_escrow_returns() -> None:
    sim = small(order_duration=3)
    state = step(sim, start(sim, [(0, 0), (6, 6)], coin=[10.0, 0.0]), [sim.order_choice(1, False, 4), NOOP]).state
    assert state.coin[0, 0].tolist() == 6.0
    for _ in range(2):  # still open during the order_duration steps after the one it was placed in
        state = step(sim, state, [NOOP, NOOP]).state
        assert state.held.coin[0, 0].tolist() == 4.0 and int(state.held.bids[0, 1, 0]) == 1
    state = step(sim, state, [NOOP, NOOP]).state
    assert state.held.coin[0, 0].tolist() == 0.0 and state.coin[0, 0].tolist() == 10.0
    assert int(state.held.bids[0].sum()) == 0


def bracket_tax(income: float, rates: list[float], cutoffs: tuple[float, ...]) -> float:
    tops = [*cutoffs[1:], math.inf]
    return sum(rate * max(0.0, min(income, top) - low) for rate, low, top in zip(rates, cutoffs, tops, strict=True))


def test_the_period_tax_is_the_brackets_tax_on_the_periods_income_and_the_rebate_is_equal() -> None:
    sim = small(tax_period_steps=4)
    cutoffs = sim.scenario.bracket_cutoffs
    state = start(sim, [(0, 0), (6, 6)], payment=[50.0, 200.0], goods=[[1, 1], [1, 1]])
    state = step(sim, state, [BUILD, BUILD], rates=US_RATES).state  # step 0: the planner's rates count
    for _ in range(2):
        result = step(sim, state, [NOOP, NOOP])
        assert result.info["tax_collected"].tolist() == [0.0] and result.reward[PLANNER].tolist() == [[0.0]]
        state = result.state
    result = step(sim, state, [NOOP, NOOP])  # step 3: the period's end
    owed = [bracket_tax(50.0, US_RATES, cutoffs), bracket_tax(200.0, US_RATES, cutoffs)]
    assert owed == pytest.approx([6.8585, 45.3165])
    rebate = sum(owed) / 2
    assert result.info["tax_collected"].tolist() == pytest.approx([sum(owed)])
    assert result.state.coin[0].tolist() == pytest.approx([50.0 - owed[0] + rebate, 200.0 - owed[1] + rebate])
    # the planner's reward: the change in equality × productivity (Gini with the N/(N − 1) correction)
    a, b = result.state.coin[0].tolist()
    gini = abs(a - b) * 2 / (2 * 2 * (a + b)) * 2
    assert result.reward[PLANNER].tolist() == [[pytest.approx((1 - gini) * (a + b), rel=1e-6)]]
    assert result.info["period_end"].tolist() == [1.0]
    # the next period taxes only what is earned in it: nothing here
    state = result.state
    for _ in range(4):
        result = step(sim, state, [NOOP, NOOP], rates=[0.9] * 7)
        state = result.state
    assert result.info["tax_collected"].tolist() == [0.0] and result.info["period_end"].tolist() == [1.0]


def test_the_planner_acts_only_at_a_periods_first_step() -> None:
    sim = small(tax_period_steps=3)
    state = step(sim, start(sim, [(0, 0), (6, 6)]), [NOOP, NOOP], rates=[0.2] * 7).state
    for rates in ([0.9] * 7, [0.5] * 7):
        state = step(sim, state, [NOOP, NOOP], rates=rates).state
        assert state.rates[0].tolist() == pytest.approx([0.2] * 7)
    state = step(sim, state, [NOOP, NOOP], rates=[0.6] * 7).state  # step 3 starts the next period
    assert state.rates[0].tolist() == pytest.approx([0.6] * 7)
    no_planner = step(sim, start(sim, [(0, 0), (6, 6)]), [NOOP, NOOP]).state
    assert no_planner.rates[0].tolist() == [0.0] * 7


def rollout(sim: GatherTradeBuildSim, seed: int, batch: int = 4, steps: int = 40):
    generator = make_generator(seed)
    state = sim.reset(batch, generator)
    exogenous = sim.sample_exogenous(batch, steps, generator)
    policy = RandomPolicy(sim, generator)
    rewards = []
    for t in range(steps):
        result = sim.step(state, policy.act(sim.observe(state)), exogenous[:, t])
        rewards.append(result.reward[WORKERS])
        state = result.state
    return state, torch.stack(rewards)


def test_the_same_seed_gives_the_same_rollout() -> None:
    sim = small(resource_regen_prob=0.1)
    first, again, other = rollout(sim, 3), rollout(sim, 3), rollout(sim, 4)
    assert torch.equal(first[1], again[1]) and torch.equal(first[0].code, again[0].code)
    assert torch.equal(first[0].coin, again[0].coin) and torch.equal(first[0].book.bids, again[0].book.bids)
    assert not torch.equal(first[0].code, other[0].code)


def test_random_legal_rollouts_keep_the_books(paths: str) -> None:
    """Every legal build and order goes through; goods and coin are conserved (coin grows only by house
    payments: the tax is rebated); workers stay on distinct tiles."""
    sim = small(n_agents=4, resource_regen_prob=0.2, tax_period_steps=6)
    generator = make_generator(11)
    state = sim.reset(16, generator)
    exogenous = sim.sample_exogenous(16, 60, generator)
    policy = RandomPolicy(sim, generator)
    gathered = built = torch.zeros(16, dtype=torch.float64)
    orders = 0
    for t in range(60):
        before = state
        action = policy.act(sim.observe(state))
        result = sim.step(state, action, exogenous[:, t])
        state, choice = result.state, action[WORKERS]
        assert torch.equal(state.houses - before.houses, (choice == BUILD).long())
        placing = choice >= sim.order_choice(0, False, 0)
        collected = state.labour - before.labour - 0.25 * placing - 10.0 * (choice == BUILD) \
            - (state.position != before.position).double()  # what is left: 1 for a collection, else 0
        assert bool(((collected.abs() < 1e-9) | ((collected - 1).abs() < 1e-9)).all())
        orders += int(placing.sum())
        gathered, built = gathered + result.info["resources_gathered"], built + result.info["houses_built"]
        assert torch.equal((state.goods + state.held.goods).sum((1, 2)).double(), gathered - 2 * built)
        paid = ((state.houses - before.houses) * before.payment).sum(1)
        coin = (state.coin + state.held.coin).sum(1) - (before.coin + before.held.coin).sum(1)
        assert torch.allclose(coin, paid, atol=1e-9)
        assert bool((state.coin >= -1e-9).all()) and bool((state.goods >= 0).all())
        assert bool(((state.code & AGENT) != 0).sum(1).eq(4).all())
        assert bool(((state.code.gather(1, state.position) & AGENT) != 0).all())
    assert orders > 100 and float(gathered.sum()) > 0


def test_the_linear_paths_agree_with_the_pairwise_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """The best other worker's key and the move conflicts, for many workers, as the [A, A] comparisons
    find them: on random books with empty sides and on crowded moves."""
    generator = make_generator(5)
    for layout in (gtb_market.NARROW, WIDE):
        for agents, slots in ((3, 4), (40, 5), (200, 3)):
            keys = torch.randint(0, 1 << 20, (6, 2, agents * slots), generator=generator)
            keys = (keys // (agents * slots)) * (1 << layout.slot_bits) + torch.arange(agents * slots)  # unique
            keys = torch.where(torch.rand(keys.shape, generator=generator) < 0.7, keys, layout.empty)
            keys[0] = layout.empty  # an empty book
            keys[1, :, slots:] = layout.empty  # one worker's orders only
            best = keys.to(layout.dtype).view(6, 2, agents, slots).amin(-1)
            monkeypatch.setattr(gtb_market, "SMALL_BOOK", 10_000)
            pairwise = best_of_others(best, slots)
            monkeypatch.setattr(gtb_market, "SMALL_BOOK", 0)
            assert torch.equal(best_of_others(best, slots), pairwise)
    offsets = torch.tensor([-1, 1, -10, 10])
    for agents in (5, 150):
        positions = torch.randint(11, 89, (8, agents), generator=generator)  # crowded: many aim at one tile
        direction = torch.randint(0, 4, (8, agents), generator=generator)
        wanted = torch.rand(8, agents, generator=generator) < 0.8
        priority = torch.rand(8, agents, generator=generator)
        monkeypatch.setattr(gtb_world, "PAIRWISE_MOVES", 10_000)
        pairwise = resolve_moves(positions, direction, wanted, offsets, priority, 100)
        monkeypatch.setattr(gtb_world, "PAIRWISE_MOVES", 0)
        linear = resolve_moves(positions, direction, wanted, offsets, priority, 100)
        assert torch.equal(linear, pairwise) and bool((pairwise != wanted).any())


def test_a_thousand_workers_trade_move_and_keep_the_books() -> None:
    """1,000 workers on a 64 × 64 map (the book needs int64 keys: 5,000 slots): random legal steps keep the
    workers on distinct tiles and conserve goods and coin."""
    sim = GatherTradeBuildSim(GatherTradeBuildScenario(n_agents=1000, map_size=64, episode_steps=20,
                                                       tax_period_steps=5))
    generator = make_generator(3)
    state = sim.reset(2, generator)
    assert state.book.bids.dtype == torch.int64
    exogenous = sim.sample_exogenous(2, 8, generator)
    policy = RandomPolicy(sim, generator)
    trades = 0.0
    for t in range(8):
        before = state
        result = sim.step(state, policy.act(sim.observe(state)), exogenous[:, t])
        state, trades = result.state, trades + float(result.info["trades"].sum())
        assert bool(((state.code & AGENT) != 0).sum(1).eq(1000).all())
        assert bool((state.position.sort(1).values.diff(dim=1) > 0).all())
        paid = ((state.houses - before.houses) * before.payment).sum(1)
        coin = (state.coin + state.held.coin).sum(1) - (before.coin + before.held.coin).sum(1)
        assert torch.allclose(coin, paid, atol=1e-6)
        assert bool((state.coin >= -1e-9).all()) and bool((state.goods >= 0).all())
    assert trades > 0


def test_the_generated_layout_clusters_wood_low_and_stone_high() -> None:
    sim = GatherTradeBuildSim(GatherTradeBuildScenario())
    state = sim.reset(64, make_generator(2))
    side, pad, size = sim.size + 2 * sim.pad, sim.pad, sim.size
    body = state.code.view(64, side, side)[:, pad:pad + size, pad:pad + size]
    wood, stone = (body & WOOD) != 0, (body & STONE) != 0
    for tiles, coverage in ((wood, 0.025), (stone, 0.025)):
        count = tiles.sum((1, 2))
        assert bool((count <= source_capacity(sim.scenario, coverage)).all()) and float(count.double().mean()) > 10
    rows = torch.arange(size)[:, None].double()
    assert float((wood * rows).sum() / wood.sum()) > 17 and float((stone * rows).sum() / stone.sum()) < 7
    assert bool((state.position[:, :, None] != state.position[:, None, :]).sum((1, 2)).eq(12).all())


def test_the_pettingzoo_parallel_api() -> None:
    from pettingzoo.test import parallel_api_test

    sim = small(episode_steps=8, tax_period_steps=4)
    parallel_api_test(SimulatorParallelEnv(sim, max_episode_steps=8), num_cycles=20)
