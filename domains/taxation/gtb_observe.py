"""What the Gather-Trade-Build agents see: the workers' legal choices and features, the planner's features.

A worker's features (:data:`WORKER_FEATURES` + the K rates): its wood, stone and coin outside and inside
escrow, its house payment (as a multiple of ``build_payment``), its bonus-unit probability, its labour,
its row and column, the period's income so far, its open bids and asks per resource, the other workers'
best bid and ask per resource (price ÷ max_bid_ask, −1 for none), the rates, the step within the tax
period and the episode's progress. The planner's: every worker's coin, wood, stone (escrow included) and
period income, the rates, the step within the period, the progress and whether this is a period's
first step. Amounts are scaled (:data:`GOODS_SCALE`, :data:`COIN_SCALE`, :data:`LABOUR_SCALE`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from decisionlab.domains.taxation.gtb_market import quotes
from decisionlab.domains.taxation.gtb_world import (
    AGENT,
    HOUSE,
    SOURCES,
    STONE,
    STONE_SOURCE,
    WOOD,
    WOOD_SOURCE,
    enterable,
)
from decisionlab.domains.taxation.scenario import GatherTradeBuildScenario

if TYPE_CHECKING:
    from decisionlab.domains.taxation.gtb import GatherTradeBuildState

GOODS_SCALE, COIN_SCALE, LABOUR_SCALE = 0.1, 0.01, 0.001
NEAREST_BITS = (WOOD, STONE, WOOD_SOURCE, STONE_SOURCE)
NEAREST_FEATURES = 3 * len(NEAREST_BITS)
"""The learners' summary of the window: per bit of :data:`NEAREST_BITS`, whether one is in view and the row
and column offsets (÷ range) of the nearest."""
WORKER_FEATURES = 22
"""Worker features besides the rates (module docstring)."""
PLANNER_PER_WORKER, PLANNER_CLOCK = 4, 3


def clock(s: GatherTradeBuildScenario, step: torch.Tensor) -> torch.Tensor:
    """``[B, 3]`` the step within the tax period (a share), the episode's progress, a period's first step."""
    within = step % s.tax_period_steps
    return torch.stack([within / s.tax_period_steps, step / s.episode_steps, (within == 0).double()], -1)


def legal(s: GatherTradeBuildScenario, state: GatherTradeBuildState, moves: torch.Tensor) -> torch.Tensor:
    """``[B, A, n_actions]`` the choices each worker can make now (the Foundation's masks): nothing; the
    moves onto tiles on the map with no worker and no house; building with 1 wood + 1 stone on a tile
    with no source and no house; a bid at a price it can pay and an ask of a resource it holds, while it
    has fewer than ``max_num_orders`` open for that resource."""
    batch, agents = state.coin.shape
    goods, top = state.goods, s.max_bid_ask
    walk = enterable(state.code, state.position[:, :, None] + moves)
    here = state.code.gather(1, state.position)
    build = ((here & (SOURCES | HOUSE)) == 0) & (torch.minimum(goods[..., 0], goods[..., 1]) >= 1)
    room = (state.held.bids + state.held.asks) < s.max_num_orders  # [B, 2, A]
    # the highest price each kind of order may have (−1: none): a bid what the coin pays, an ask any; int8
    # (prices are at most 127) halves the cost of the comparison
    pays = state.coin.floor().clamp(max=top).to(torch.int8)
    caps = torch.stack([torch.where(room[:, 0], pays, -1), torch.where(room[:, 0] & (goods[..., 0] >= 1), top, -1),
                        torch.where(room[:, 1], pays, -1), torch.where(room[:, 1] & (goods[..., 1] >= 1), top, -1)],
                       -1).to(torch.int8)  # [B, A, 4]: wood bid, wood ask, stone bid, stone ask
    prices = torch.arange(top + 1, dtype=torch.int8, device=goods.device).repeat(4)
    orders = caps.repeat_interleave(top + 1, -1) >= prices
    nothing = torch.ones(batch, agents, 1, dtype=torch.bool, device=goods.device)
    return torch.cat([nothing, walk, build[..., None], orders], -1)


def worker_features(s: GatherTradeBuildScenario, state: GatherTradeBuildState, size: int, pad: int
                    ) -> torch.Tensor:
    """``[B, A, WORKER_FEATURES + K]`` (module docstring)."""
    batch, agents = state.coin.shape
    held, goods = state.held, state.goods.double()
    side = size + 2 * pad
    own = torch.stack([
        goods[..., 0] * GOODS_SCALE, goods[..., 1] * GOODS_SCALE, state.coin * COIN_SCALE,
        held.goods[..., 0] * GOODS_SCALE, held.goods[..., 1] * GOODS_SCALE, held.coin * COIN_SCALE,
        state.payment / max(s.build_payment, 1e-9), state.bonus, state.labour * LABOUR_SCALE,
        (state.position // side - pad) / size, (state.position % side - pad) / size,
        (state.coin + held.coin - state.period_start_coin) * COIN_SCALE,
        held.bids[:, 0] / s.max_num_orders, held.asks[:, 0] / s.max_num_orders,
        held.bids[:, 1] / s.max_num_orders, held.asks[:, 1] / s.max_num_orders], -1)
    shared = torch.cat([state.rates, clock(s, state.step)[:, :2]], -1)[:, None, :].expand(batch, agents, -1)
    dtype = torch.get_default_dtype()
    return torch.cat([own.to(dtype), quotes(state.book, agents, s.max_bid_ask).to(dtype), shared.to(dtype)], -1)


def period_of(s: GatherTradeBuildScenario, planner: torch.Tensor, periods: int) -> torch.Tensor:
    """``[B]`` the tax period (from 0, at most ``periods − 1``) read from the planner's features
    ``[B, 1, F]`` (its clock: the episode's progress)."""
    progress = planner[:, 0, -2].double()
    return ((progress * s.episode_steps).round().long() // s.tax_period_steps).clamp(0, periods - 1)


def planner_features(s: GatherTradeBuildScenario, state: GatherTradeBuildState) -> torch.Tensor:
    """``[B, 1, 4·A + K + 3]`` (module docstring)."""
    total = state.coin + state.held.coin
    return planner_view(s, total, state.goods + state.held.goods, total - state.period_start_coin, state.rates,
                        state.step)


def planner_view(s: GatherTradeBuildScenario, coin: torch.Tensor, goods: torch.Tensor, income: torch.Tensor,
                 rates: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """``[B, 1, 4·A + K + 3]`` the planner's features from each worker's ``coin``, ``goods [B, A, 2]`` (wood,
    stone) and ``income`` this period ``[B, A]`` (escrow included), the ``rates [B, K]`` and the ``step [B]``."""
    return torch.cat([coin * COIN_SCALE, goods.flatten(1) * GOODS_SCALE, income * COIN_SCALE, rates,
                      clock(s, step)], -1).to(torch.get_default_dtype())[:, None, :]


class WindowGeometry:
    """Each cell's row and column offset from the worker in a ``(2·range + 1)²`` window, and its distance."""

    def __init__(self, observation_range: int, device: torch.device) -> None:
        side = 2 * observation_range + 1
        span = torch.arange(side, device=device) - observation_range
        self.range = observation_range
        self.rows = span.repeat_interleave(side)  # [W·W]
        self.cols = span.repeat(side)
        self.distance = (self.rows.abs() + self.cols.abs()).double()

    def nearest(self, window: torch.Tensor, bit: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(distance, cell) [B, A]``: the nearest cell of ``window [B, A, W·W]`` holding ``bit`` and no other
        worker (distance ``inf`` where none does; ties to the first cell in row-major order)."""
        distance = torch.where((window & (bit | AGENT)) == bit, self.distance, torch.inf)
        return distance.min(-1)

    def summary(self, window: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``[B, A, NEAREST_FEATURES]`` per bit of :data:`NEAREST_BITS`: in view (0/1), then the nearest one's
        row and column offsets ÷ range (0 when none is in view)."""
        parts = []
        for bit in NEAREST_BITS:
            distance, cell = self.nearest(window, bit)
            seen = torch.isfinite(distance)
            parts += [seen, self.rows[cell] * seen / self.range, self.cols[cell] * seen / self.range]
        return torch.stack(parts, -1).to(dtype)
