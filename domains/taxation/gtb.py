"""The Gather-Trade-Build economy of the AI Economist as a batched torch simulator (``B`` economies, ``A`` workers).

Workers on a square map gather wood and stone by walking onto resource tiles, trade them in a continuous
double auction per resource, and build houses (1 wood + 1 stone) for coin; a planner sets seven marginal
income-tax rates at the first step of each tax period, and at its last step each worker's coin earned in
the period is taxed by bracket and the revenue rebated equally. One step, in the Foundation's component
order: the planner's rates (period starts only), builds, new orders and matching (then expiry),
moves and gathering, the tax (period ends only), resource regrowth.

- **Workers** (``Discrete(6 + 4·(max_bid_ask + 1))``, masked): 0 nothing; 1–4 move left, right, up, down
  (onto a tile on the map with no worker and no house; moving costs ``move_labor``); 5 build on one's
  tile (needs 1 wood + 1 stone and a tile with no source and no house; pays the worker's house payment,
  costs ``build_labor``; the house then blocks its tile); then for wood and for stone, a bid then an ask
  at each price 0..max_bid_ask (``gtb_market.py``; costs ``order_labor``). After moving or not, a worker
  standing on a resource collects it: one unit, two with its bonus probability, ``collect_labor``; the
  tile regrows with ``resource_regen_prob`` per step. A choice the mask forbids does nothing.
- **Planner** (one agent, ``Box((K,), 0, 1)``): the rates; read at a period's first step only.
- **Rewards**: a worker's change in utility ``(c^(1−η) − 1)/(1 − η) − energy_cost · labour`` (``c`` its
  coin, escrow included; labour accumulated); the planner's change, from one period end to the next, in
  coin equality × productivity (1 − Gini with the N/(N − 1) correction, times the total coin), 0 between.
- **Observations**: a worker's window ``[W·W]`` of tile bytes (``gtb_world.LAYERS``: wood, stone, their
  sources, houses, other workers, off the map), its legal choices, and its features (``gtb_observe``:
  inventory, escrow, skills, labour, position, the period's income so far, its open orders, the others'
  best quotes, the rates, the time); the planner's features (every worker's coin, wood, stone and period
  income so far, the rates, the time). ``flat_observation`` (what learners read) unpacks the window to 0/1
  layers and adds where the nearest resource and source of each kind lie in it.
- **Randomness**: the map, skills and start tiles from ``reset``'s generator; per step the workers' move
  order, bonus-unit and regrowth draws from ``sample_exogenous`` (``[B, T, 3·A]`` uniforms).

Defaults (``GatherTradeBuildScenario``) and their sources. From ../shared/domain-notes.md (the published
Gather-Trade-Build configuration): 4 agents, 25 × 25 map, 1,000 steps, tax period 100, the US cut-offs
scaled by 1,000, η 0.23, energy cost 0.21. From the Foundation (github.com/salesforce/ai-economist;
``tutorials/rllib/phase{1,2}/config.yaml`` and the components' defaults): ``Gather`` move and collect
labour 1, gather skill Pareto (``min(2, X)/2``, ``X ~ pareto(3)``); ``Build`` payment 10, maximum skill
multiplier 3, build labour 10, skill Pareto (``min(3, 2·X + 1)``, ``X ~ pareto(4)``);
``ContinuousDoubleAuction`` max bid/ask 10, order labour 0.25, order duration 50, max orders 5;
``layout_from_file`` regrowth probability 0.01; the generated map of ``dynamic_layout.Uniform`` (coverage
0.025 each, clumpiness 0.35 wood / 0.5 stone, gradient steepness 8) and its observation range 5
(11 × 11 windows).

Left out or simplified, relative to the Foundation: no water or walls (the published run uses a
quadrant map with water); skills are drawn per economy, not the fixed four ranked skills and corner
starts of ``fixed_four_skill_and_loc``; a house blocks its builder too (the Foundation's builder may
walk onto it); the rates are continuous in [0, 1] (the Foundation picks them on a 0.05 grid and
anneals their maximum); no energy-cost warm-up; a move succeeds if its target was free at the start of
the step (the Foundation also lets a worker into a tile vacated earlier in the same step, which its
masks forbid anyway); the planner is rewarded at period ends (the Foundation pays the change every
step) and productivity is the total coin (the Foundation's planner reward uses the mean); regrowth is
one unit per tile at radius 0 (its published setting), drawn as the geometric wait it implies; workers
see the others' best quotes, not the Foundation's full order histograms and price history.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from decisionlab.core import AgentGroup, Box, Composite, Discrete, Spaces, StepResult
from decisionlab.domains.taxation.economy import gini, tax
from decisionlab.domains.taxation.gtb_layout import (
    build_multipliers,
    gather_bonus,
    resource_layout,
    source_capacity,
    start_tiles,
)
from decisionlab.domains.taxation.gtb_market import (
    MAX_DURATION,
    MAX_PRICE,
    MAX_SLOTS,
    Book,
    Holdings,
    expire,
    holdings,
    match,
    place,
)
from decisionlab.domains.taxation.gtb_observe import (
    NEAREST_FEATURES,
    PLANNER_CLOCK,
    PLANNER_PER_WORKER,
    WORKER_FEATURES,
    WindowGeometry,
    legal,
    planner_features,
    worker_features,
)
from decisionlab.domains.taxation.gtb_world import (
    AGENT,
    HOUSE,
    LAYERS,
    NEVER,
    RESOURCES,
    SOURCES,
    STONE,
    WOOD,
    enterable,
    initial_code,
    move_offsets,
    padded_index,
    regrowth_delay,
    resolve_moves,
    source_slots,
    unpack,
    window_offsets,
    windows,
)
from decisionlab.domains.taxation.scenario import GatherTradeBuildScenario

PLANNER, WORKERS = "planner", "workers"
NOOP, BUILD, TRADE = 0, 5, 6
"""Worker choices: 0 nothing, 1–4 moves, 5 build, from 6 the orders (resource, side, price)."""


@dataclass(frozen=True)
class GatherTradeBuildState:
    """Per economy: ``step [B]`` (steps taken), the map ``code [B, P·P]`` (``gtb_world``), the source slots
    ``slot_tile``/``slot_bit``/``ready_at [B, K]`` and ``slot_of [B, P·P]``; per worker ``[B, A]``:
    ``position`` (padded index), ``coin`` and ``goods [B, A, 2]`` (wood, stone) outside escrow, ``labour``,
    ``houses`` (built), ``payment`` (coin a house pays it), ``bonus`` (its second-unit probability),
    ``period_start_coin`` (its coin at the last tax), ``utility`` (at the last step); the order ``book``
    and what it ``held`` per worker; ``rates [B, K]``; ``welfare [B]`` (equality × productivity at the
    last tax)."""

    step: torch.Tensor
    code: torch.Tensor
    slot_tile: torch.Tensor
    slot_bit: torch.Tensor
    slot_of: torch.Tensor
    ready_at: torch.Tensor
    position: torch.Tensor
    coin: torch.Tensor
    goods: torch.Tensor
    labour: torch.Tensor
    houses: torch.Tensor
    payment: torch.Tensor
    bonus: torch.Tensor
    book: Book
    held: Holdings
    rates: torch.Tensor
    period_start_coin: torch.Tensor
    utility: torch.Tensor
    welfare: torch.Tensor


class GatherTradeBuildSim:
    """Batched :class:`GatherTradeBuildScenario` economies (module docstring)."""

    differentiable = False

    def __init__(self, scenario: GatherTradeBuildScenario, device: torch.device | str = "cpu") -> None:
        s = self.scenario = scenario
        if s.max_bid_ask > MAX_PRICE or s.order_duration > MAX_DURATION or s.n_agents * s.max_num_orders > MAX_SLOTS:
            raise ValueError(f"the order book's keys hold prices up to {MAX_PRICE}, durations up to {MAX_DURATION:,} "
                             f"steps and n_agents · max_num_orders up to {MAX_SLOTS:,} slots")
        self.device = torch.device(device)
        self.pad, self.size = s.observation_range, s.map_size
        self.horizon = s.episode_steps
        self.prices = s.max_bid_ask + 1
        self.n_actions = TRADE + 4 * self.prices
        self.cutoffs = torch.tensor(s.bracket_cutoffs, dtype=torch.float64, device=self.device)
        # a fixed number of source slots, one spare for the workers that gather nothing (see step)
        self.slots = source_capacity(s, s.wood_coverage) + source_capacity(s, s.stone_coverage) + 1
        self.moves = move_offsets(self.size, self.pad, self.device)
        self.view = window_offsets(self.size, self.pad, self.device)
        k, n, cells = s.n_brackets, s.n_agents, self.view.numel()
        self.geometry = WindowGeometry(self.pad, self.device)
        self.worker_width = len(LAYERS) * cells + WORKER_FEATURES + k + NEAREST_FEATURES
        self.planner_width = PLANNER_PER_WORKER * n + k + PLANNER_CLOCK
        side = 2 * self.pad + 1
        self.spaces = Spaces(agents={
            PLANNER: AgentGroup(1, Composite({"features": Box((self.planner_width,))}),
                                Box((k,), low=0.0, high=1.0, description="marginal rate of each bracket"),
                                Box((self.planner_width,))),
            WORKERS: AgentGroup(n, Composite({
                "window": Box((cells,), low=0, high=(1 << len(LAYERS)) - 1, dtype="int64",
                              description=f"{side}×{side} tile bytes, row-major (bits: {', '.join(LAYERS)})"),
                "features": Box((WORKER_FEATURES + k,)),
                "legal": Box((self.n_actions,), dtype="bool")}),
                Discrete(self.n_actions, masked=True, description="0 nothing, 1-4 move left/right/up/down, "
                         "5 build, then per resource (wood, stone) a bid then an ask at each price"),
                Box((self.worker_width,))),
        })

    def order_choice(self, resource: int, ask: bool, price: int) -> int:
        """The worker choice that places an order: ``resource`` 0 wood / 1 stone, an ask or a bid, at ``price``."""
        return TRADE + (2 * resource + int(ask)) * self.prices + price

    def sample_exogenous(self, batch: int, periods: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``[B, T, 3·A]`` uniforms: the workers' move-order keys, bonus-unit draws, regrowth draws."""
        return torch.rand(batch, periods, 3 * self.scenario.n_agents, generator=generator, device=self.device)

    def reset(self, batch: int, generator: torch.Generator | None = None) -> GatherTradeBuildState:
        s, dev = self.scenario, self.device
        kinds = resource_layout(s, batch, generator, dev)
        tiles = start_tiles(s, batch, generator, dev)
        payment = build_multipliers(s, batch, generator, dev) * s.build_payment
        return self.initial_state(kinds, tiles, payment, gather_bonus(s, batch, generator, dev))

    def initial_state(self, kinds: torch.Tensor, tiles: torch.Tensor, payment: torch.Tensor, bonus: torch.Tensor
                      ) -> GatherTradeBuildState:
        """The start of an episode on a given map: ``kinds [B, S, S]`` (0 none, 1 wood, 2 stone source),
        the workers' ``tiles [B, A]`` (row-major on the map, distinct), their house ``payment`` and bonus-unit
        probability ``bonus`` ``[B, A]``; inventories empty, ``starting_coin`` each, no tax."""
        s, dev = self.scenario, self.device
        batch = kinds.shape[0]
        position = padded_index(tiles.to(dev), self.size, self.pad)
        code = initial_code(kinds.to(dev), position, self.pad)
        slot_tile, slot_bit, slot_of = source_slots(kinds.to(dev), self.pad, self.slots)
        coin = torch.full((batch, s.n_agents), s.starting_coin, dtype=torch.float64, device=dev)
        labour = torch.zeros_like(coin)
        book = Book.empty(batch, s.n_agents, s.max_num_orders, dev)
        equality, productivity = self.social(coin)
        return GatherTradeBuildState(
            torch.zeros(batch, dtype=torch.long, device=dev), code, slot_tile, slot_bit, slot_of,
            torch.zeros(slot_tile.shape, dtype=torch.int32, device=dev), position, coin,
            torch.zeros(batch, s.n_agents, 2, dtype=torch.long, device=dev), labour,
            torch.zeros(batch, s.n_agents, dtype=torch.long, device=dev), payment.to(coin), bonus.to(coin), book,
            holdings(book, s.n_agents, s.max_bid_ask),
            torch.zeros(batch, s.n_brackets, dtype=torch.float64, device=dev), coin.clone(),
            self.utility(coin, labour), equality * productivity)

    def utility(self, coin: torch.Tensor, labour: torch.Tensor) -> torch.Tensor:
        """``[B, A]`` isoelastic utility of coin minus the energy cost of labour."""
        eta = self.scenario.isoelastic_eta
        return (coin.clamp_min(0.0) ** (1.0 - eta) - 1.0) / (1.0 - eta) - self.scenario.energy_cost * labour

    def social(self, coin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(equality, productivity) [B]`` of the coin ``[B, A]``: 1 − Gini (N/(N − 1) corrected) and the total."""
        return 1.0 - gini(coin), coin.sum(-1)

    def observe(self, state: GatherTradeBuildState) -> dict[str, dict[str, torch.Tensor]]:
        s = self.scenario
        return {PLANNER: {"features": planner_features(s, state)},
                WORKERS: {"window": windows(state.code, state.position, self.view).long(),
                          "features": worker_features(s, state, self.size, self.pad),
                          "legal": legal(s, state, self.moves)}}

    def flat_observation(self, obs: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """The learners' view: the planner's features; each worker's window as 0/1 layers, its features and
        the summary of where the nearest resources and sources lie (``WindowGeometry.summary``)."""
        workers = obs[WORKERS]
        dtype = workers["features"].dtype
        layers = unpack(workers["window"], dtype)
        nearest = self.geometry.summary(workers["window"], dtype)
        return {PLANNER: obs[PLANNER]["features"], WORKERS: torch.cat([layers, workers["features"], nearest], -1)}

    def action_mask(self, obs: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return {WORKERS: obs[WORKERS]["legal"]}

    def step(self, state: GatherTradeBuildState, action: dict[str, torch.Tensor], exogenous: torch.Tensor
             ) -> StepResult[GatherTradeBuildState]:
        s, dev = self.scenario, self.device
        batch, agents = state.coin.shape
        t = state.step
        choice = action[WORKERS].reshape(batch, agents).long() if WORKERS in action else \
            torch.zeros(batch, agents, dtype=torch.long, device=dev)
        draws = exogenous.reshape(batch, 3, agents)
        # the planner's rates count at a period's first step only (a policy without a planner: no tax)
        rates = state.rates
        if PLANNER in action:
            chosen = action[PLANNER].reshape(batch, -1).to(rates).clamp(0.0, 1.0)
            rates = torch.where((t % s.tax_period_steps == 0)[:, None], chosen, rates)
        coin, goods, labour, position = state.coin, state.goods, state.labour, state.position
        code = state.code.clone()  # the one copy of the map a step makes; the changes below are sparse

        # builds: 1 wood + 1 stone into a house on the builder's tile (no source, no house), paid its payment
        here = code.gather(1, position)
        built = (choice == BUILD) & (torch.minimum(goods[..., 0], goods[..., 1]) >= 1) \
            & ((here & (SOURCES | HOUSE)) == 0)
        goods = goods - built[..., None].long()
        coin = coin + state.payment * built
        labour = labour + s.build_labor * built
        code.scatter_(1, position, here | (built.to(torch.uint8) * HOUSE))

        # orders: the bid's coin or the ask's unit into escrow, then matching and expiry
        order = (choice - TRADE).clamp_min(0)
        resource, ask, price = order // (2 * self.prices), (order // self.prices) % 2 == 1, order % self.prices
        room = (state.held.bids + state.held.asks).gather(1, resource[:, None, :])[:, 0] < s.max_num_orders
        have = goods.gather(-1, resource[..., None])[..., 0]
        placing = (choice >= TRADE) & room & torch.where(ask, have >= 1, coin >= price)
        coin = coin - price * (placing & ~ask)
        goods = goods - torch.nn.functional.one_hot(resource, 2) * (placing & ask)[..., None]
        labour = labour + s.order_labor * placing
        book = place(state.book, placing, resource, ask, price, s.order_duration, s.max_bid_ask)
        book, fills = match(book, agents, s.max_bid_ask, agents)
        book, coin_back, goods_back = expire(book, agents, s.max_bid_ask)
        coin, goods = coin + fills.coin + coin_back, goods + fills.goods + goods_back
        held = holdings(book, agents, s.max_bid_ask)

        # moves, one at a time in a random order, then gathering what lies on one's tile
        direction = (choice - 1).clamp(0, 3)
        target = position + self.moves[direction]
        wanted = (choice >= 1) & (choice <= 4) & enterable(code, target)
        moved = resolve_moves(position, direction, wanted, self.moves, draws[:, 0], code.shape[1])
        labour = labour + s.move_labor * moved
        code.scatter_(1, position, code.gather(1, position) & (0xFF ^ AGENT))
        position = torch.where(moved, target, position)
        here = code.gather(1, position) | AGENT
        emptied = (here & RESOURCES) != 0  # a tile holds one resource at most
        units = emptied * (1 + (draws[:, 1] < state.bonus).long())
        goods = goods + torch.stack([units * ((here & WOOD) != 0), units * ((here & STONE) != 0)], -1)
        labour = labour + s.collect_labor * emptied
        code.scatter_(1, position, here & (0xFF ^ RESOURCES))
        # an emptied tile's slot learns when it is back; the others write to the spare slot no tile uses
        slot = torch.where(emptied, state.slot_of.gather(1, position).long(), self.slots - 1)
        back = (t[:, None] + regrowth_delay(draws[:, 2], s.resource_regen_prob)).clamp_max(NEVER).int()
        ready_at = state.ready_at.scatter(1, slot, torch.where(emptied, back, state.ready_at.gather(1, slot)))

        # the tax at a period's last step: on the period's coin income (escrow included), paid from the
        # coin outside escrow, the revenue rebated equally (computed only when some economy ends a period)
        end = (t + 1) % s.tax_period_steps == 0
        revenue, welfare, period_start = torch.zeros_like(state.welfare), state.welfare, state.period_start_coin
        income = torch.zeros_like(coin)
        if bool(end.any()):
            income = (coin + held.coin - state.period_start_coin) * end[:, None]
            paid = torch.minimum(coin, tax(income, rates, self.cutoffs)) * end[:, None]
            revenue = paid.sum(1)
            coin = coin - paid + (revenue / agents)[:, None]
            period_start = torch.where(end[:, None], coin + held.coin, period_start)
            equality, productivity = self.social(coin + held.coin)
            welfare = torch.where(end, equality * productivity, welfare)
        total = coin + held.coin

        # regrowth: the tiles due back by the next step
        due = (ready_at == (t[:, None] + 1).int()).to(torch.uint8) * state.slot_bit
        code.scatter_(1, state.slot_tile, code.gather(1, state.slot_tile) | due)

        utility = self.utility(total, labour)
        dtype = torch.get_default_dtype()
        reward = {PLANNER: (welfare - state.welfare).to(dtype)[:, None], WORKERS: (utility - state.utility).to(dtype)}
        nxt = GatherTradeBuildState(t + 1, code, state.slot_tile, state.slot_bit, state.slot_of, ready_at, position,
                                    coin, goods, labour, state.houses + built, state.payment, state.bonus, book, held,
                                    rates, period_start, utility, welfare)
        info = {"coin": total.sum(1), "equality_times_productivity": welfare * end, "tax_collected": revenue,
                "houses_built": built.sum(1).double(), "trades": fills.trades, "trade_volume": fills.volume,
                "resources_gathered": units.sum(1).double(), "labour": (labour - state.labour).sum(1),
                "period_end": end.double(), "income": income}
        return StepResult(nxt, reward, info, terminated=t + 1 >= s.episode_steps)
