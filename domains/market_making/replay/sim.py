"""Batched simulator of the replay setting: one market maker's quotes filled against order-book data.

``B`` episodes are ``B`` windows of ``steps + 1`` consecutive snapshots of the data (:mod:`.data`),
stepped together with torch, no Python loop over episodes. The market does not react to the
quotes: the data is replayed as recorded, and the quotes only decide which of its trades would
have filled them.

**Order of events in step t** (data row i of the window; prices in ticks of ``tick_size``):

1. the policy decides depths (δ^b, δ^a) (price units) from the observation of the state at the
   start of the step (:mod:`~decisionlab.domains.market_making.quotes`: time left, inventory, mid
   offset, last mid move, best-level imbalance, market spread of snapshot i); they become prices
   around the mid of snapshot i, rounded to the tick away from the mid (bid down, ask up; a depth
   within 10⁻⁶ tick of the grid counts as on it); a non-finite depth means "do not quote that side";
2. the quotes *active* in the step are the ones decided ``latency_steps`` steps earlier (none in an
   episode's first ``latency_steps`` steps); they are post-only against snapshot i: a bid at or
   above the best ask becomes best ask − 1 tick, an ask at or below the best bid becomes best bid
   + 1 tick (and an ask at or below our own bid becomes that bid + 1 tick); a side at the inventory
   bound does not quote (the bid when q ≥ Q, the ask when q ≤ −Q);
3. queue position: a quote at the price of last step's resting quote on that side (not completely
   filled) keeps its place (a partly filled quote is topped up to ``quote_size`` in that place, a
   simplification); otherwise it queues behind the size displayed at its price in snapshot i (none
   when it improves the best price, sits where nothing is displayed, or lies deeper than the
   table's ladder, see :class:`BookTable`);
4. fills: the step's traded volume at the quote's price by aggressors of the other side (sells
   for the bid, buys for the ask) first consumes the queue ahead, then fills the quote, up to
   ``quote_size``; any volume traded through the quote's price (a sell below our bid, a buy above
   our ask) fills it entirely. Fills never take the inventory past ±Q. Each filled unit pays
   ``maker_fee``;
5. the queue ahead of a resting quote shrinks by the volume traded at its price; with
   ``queue_model="proportional"`` also by its share of the level's cancellations (the drop of the
   displayed size from snapshot i to i + 1 not explained by trades, spread evenly over the rest of
   the queue); in both models it never exceeds the size displayed at i + 1;
6. the book moves to snapshot i + 1. At the last step (t = steps − 1) the inventory left is, with
   ``flatten_at_end``, sold into the bids (bought from the asks) of snapshot i + 1 level by level
   (beyond the displayed depth at its last price), paying ``taker_fee_rate`` of the notional.

**Reward** (currency): the change of mark-to-market wealth ``W = cash + q·mid`` minus the step's
penalties, as in the model setting: ``running_penalty·q'²·dt`` on the inventory q' after the fills,
and ``terminal_penalty·q'²`` at the last step. So an episode's rewards sum to its P&L (inventory
marked at the final mid, or liquidated with ``flatten_at_end``) less its penalties. Steps past the
horizon are inert (no quotes, no fills, no reward, the book stays).

**Episodes and the exogenous tensor.** ``sample_exogenous(B, T, generator)`` draws one start row
per episode, uniformly among the rows of the simulator's split where a whole episode fits (training:
overlapping windows are fine there), or, in a simulator built with ``first_window=w`` (evaluation),
tiles the split: episode b plays the disjoint window w + b, rows ``(w + b)·steps .. (w + b + 1)·steps``
(consecutive windows share only their boundary snapshot, no step), whatever the generator, so every
policy and every chunk of an evaluation sees the same windows and no two episodes overlap
(:attr:`ReplaySim.windows` of them fit; asking for more is a ``ScenarioError`` naming ``episodes``).
It returns ``[B, T, 1]`` float32: the data row each step plays (``start + min(t, steps)``; rows count
from the first row of the split). The step reads that row's book and trades from tables the
simulator holds on its device (the same data, gathered per step instead of copied into
``[B, T, C]``). A state from ``reset(B, generator)`` is *bound* to the rows that
``sample_exogenous(B, T, generator)`` with the same generator then draws (``reset`` does not
advance the generator); a state from ``reset(B)`` without a generator is *unbound* and binds at its
first step to the row in the exogenous tensor, its first observation showing the split's median
spread, no imbalance and no move. From then on a state plays its own next row whatever the
exogenous tensor says, so an episode stays one contiguous window even when a rollout draws its
exogenous paths in chunks.

Shapes: every state field is ``[B]`` except ``pending [B, latency_steps, 2]``; actions ``[B, 2]``;
exogenous per step ``[B, 1]``; rewards and info entries ``[B]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import polars as pl
import torch

from decisionlab.core import ScenarioError, StepResult
from decisionlab.domains.market_making.quotes import (
    ACT_ASK,
    ACT_BID,
    observation,
    quoting_spaces,
    time_left,
)
from decisionlab.domains.market_making.replay.data import ReplayData, to_ticks
from decisionlab.domains.market_making.replay.scenario import (
    ReplayScenario,
    disjoint_windows,
    replay_data,
    split_row,
    tick_of,
)

Split = Literal["train", "test"]
TRADE_SLOTS = 4  # distinct trade prices kept per step and side (exact for the fill rule, see build_table)
MAX_ROWS = 2**24  # row indices travel as float32 in the exogenous tensor: exact below 2²⁴
ROUNDING_TOLERANCE = 1e-6  # ticks: a depth this close to the grid counts as on it
DEPTH_HIGH_TICKS = 20.0  # the adapters' widest depth: 20 ticks from the mid


@dataclass(frozen=True)
class BookTable:
    """Per-row tables of a data set on one device (float32), prices in ticks from ``ref_ticks`` (the
    first mid's tick, so float32 holds them exactly).

    - ``top [5, N]``: mid (ticks, half-integers), best bid, best ask, best-level imbalance ([−1, 1]),
      spread (ticks) of each snapshot (stored column by column: a gathered column is contiguous);
    - ``trades [4K + 2, N]``: the step's trades, ``sell_px``/``sell_vol`` ``[K]`` (the K − 1 highest
      prices traded by sellers and the lowest; empty slots NaN/0), ``sell_min`` (lowest seller price,
      +inf if none), and the mirror ``buy_px``/``buy_vol`` ``[K]`` (K − 1 lowest and the highest),
      ``buy_max`` (−inf if none), rows in that order;
    - ``bid_ladder``/``ask_ladder`` ``[N, D]``: the size displayed j ticks behind the best price
      (``best_bid − j``, ``best_ask + j``), 0 where no level is displayed; D covers the deepest of the
      L levels, at most :data:`MAX_LADDER_TICKS` (sizes further back are not seen);
    - ``bid_px``/``bid_sz``/``ask_px``/``ask_sz`` ``[N, L]``: the L levels (NaN price, 0 size where a side
      has fewer), for walking the book when liquidating.
    """

    top: torch.Tensor
    trades: torch.Tensor
    bid_ladder: torch.Tensor
    ask_ladder: torch.Tensor
    bid_px: torch.Tensor
    bid_sz: torch.Tensor
    ask_px: torch.Tensor
    ask_sz: torch.Tensor
    tick: float
    ref_ticks: int

    @property
    def rows(self) -> int:
        return int(self.top.shape[1])

    @property
    def ladder(self) -> int:
        """D, ticks of displayed depth per side."""
        return int(self.bid_ladder.shape[1])

    @property
    def slots(self) -> int:
        """K, trade prices kept per step and side."""
        return (int(self.trades.shape[0]) - 2) // 4

    def part(self, first: int, stop: int) -> BookTable:
        """Rows ``[first, stop)`` as copies: a simulator references only its own split's rows."""
        top, trades = (getattr(self, name)[:, first:stop].clone() for name in ("top", "trades"))
        rest = (getattr(self, name)[first:stop].clone() for name in TENSOR_FIELDS[2:])
        return BookTable(top, trades, *rest, self.tick, self.ref_ticks)


TENSOR_FIELDS = ("top", "trades", "bid_ladder", "ask_ladder", "bid_px", "bid_sz", "ask_px", "ask_sz")
TOP_MID, TOP_BID, TOP_ASK, TOP_IMBALANCE, TOP_SPREAD = range(5)
MAX_LADDER_TICKS = 256  # bounds the ladders' memory (N × D × 8 bytes) on sparse books


def _trade_slots(steps: int, step: np.ndarray, ticks: np.ndarray, volume: np.ndarray, slots: int,
                 descending: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(px [N, K], vol [N, K], extreme [N])`` of one aggressor side: per step the K − 1 prices nearest
    the book (highest for sellers, lowest for buyers) and, in the last slot, the farthest one.

    That is all the fill rule needs: a quote at a dropped price lies strictly between kept ones, so
    some volume traded through it and it fills entirely whatever the volume at its own price."""
    px = np.full((steps, slots), np.nan, dtype=np.float64)
    vol = np.zeros((steps, slots), dtype=np.float64)
    extreme = np.full(steps, np.inf if descending else -np.inf)
    if step.size == 0:
        return px, vol, extreme
    frame = (pl.DataFrame({"step": step, "ticks": ticks, "volume": volume})
             .sort(["step", "ticks"], descending=[False, descending])
             .with_columns(rank=pl.int_range(pl.len()).over("step"), count=pl.len().over("step")))
    kept = frame.filter((pl.col("rank") < slots - 1) | (pl.col("rank") == pl.col("count") - 1))
    slot = np.minimum(kept["rank"].to_numpy(), slots - 1)
    rows = kept["step"].to_numpy()
    px[rows, slot] = kept["ticks"].to_numpy()
    vol[rows, slot] = kept["volume"].to_numpy()
    last = frame.filter(pl.col("rank") == pl.col("count") - 1)
    extreme[last["step"].to_numpy()] = last["ticks"].to_numpy()
    return px, vol, extreme


def _ladder(prices: np.ndarray, sizes: np.ndarray, behind: np.ndarray, width: int) -> np.ndarray:
    """``[N, width]`` sizes by ticks behind the best (``behind [N, L]``: best − price for bids, price − best
    for asks; NaN where empty)."""
    out = np.zeros((prices.shape[0], width), dtype=np.float32)
    ok = np.isfinite(behind) & (behind < width)
    rows, _ = np.nonzero(ok)
    out[rows, behind[ok].astype(np.int64)] = sizes[ok]
    return out


def build_table(data: ReplayData, tick: float, device: torch.device | str = "cpu",
                slots: int = TRADE_SLOTS) -> BookTable:
    """The :class:`BookTable` of ``data`` on ``device`` (``ScenarioError`` if prices are off the tick grid)."""
    bid = to_ticks(data.bid_price, tick, "a bid price")
    ask = to_ticks(data.ask_price, tick, "an ask price")
    trade = to_ticks(data.trade_price, tick, "a trade price")
    ref = int(round(float(bid[0, 0] + ask[0, 0]) / 2))
    bid, ask, trade = bid - ref, ask - ref, trade - ref
    n = data.snapshots
    sells, buys = data.trade_side < 0, data.trade_side > 0
    sell_px, sell_vol, sell_min = _trade_slots(n, data.trade_step[sells], trade[sells], data.trade_volume[sells],
                                               slots, descending=True)
    buy_px, buy_vol, buy_max = _trade_slots(n, data.trade_step[buys], trade[buys], data.trade_volume[buys], slots,
                                            descending=False)
    bid_behind = bid[:, :1] - bid
    ask_behind = ask - ask[:, :1]
    deepest = max(np.nanmax(bid_behind), np.nanmax(ask_behind))
    width = int(min(deepest + 1, MAX_LADDER_TICKS))
    top = np.stack([(bid[:, 0] + ask[:, 0]) / 2, bid[:, 0], ask[:, 0], data.imbalance, ask[:, 0] - bid[:, 0]], axis=1)
    trades = np.concatenate([sell_px, sell_vol, sell_min[:, None], buy_px, buy_vol, buy_max[:, None]], axis=1)

    def put(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(device)

    return BookTable(put(top.T), put(trades.T), put(_ladder(bid, data.bid_size, bid_behind, width)),
                     put(_ladder(ask, data.ask_size, ask_behind, width)), put(bid), put(data.bid_size), put(ask),
                     put(data.ask_size), float(tick), ref)


@lru_cache(maxsize=8)
def _cached_table(data: ReplayData, tick: float, device: str) -> BookTable:
    return build_table(data, tick, device)


@dataclass(frozen=True)
class ReplayState:
    """Batched state (module docstring), every field ``[B]`` unless noted.

    ``steps_done`` (long): steps taken; ``row`` (long): data row of the coming step (−1: unbound);
    ``inventory``: q (units); ``pnl``: W − W_0 so far, before penalties (currency); ``mid``,
    ``start_mid``, ``last_return``: the current mid, the episode's first mid and the last mid move
    (ticks from the table's reference); ``imbalance`` and ``market_spread`` (price units) of the
    current snapshot; ``bid_price``/``ask_price``: the resting quotes (ticks, NaN: none) and
    ``bid_ahead``/``ask_ahead`` the units queued ahead of them; ``pending [B, latency_steps, 2]``:
    quote prices (ticks, NaN: no quote) decided but not yet active, oldest first.
    """

    steps_done: torch.Tensor
    row: torch.Tensor
    inventory: torch.Tensor
    pnl: torch.Tensor
    mid: torch.Tensor
    start_mid: torch.Tensor
    last_return: torch.Tensor
    imbalance: torch.Tensor
    market_spread: torch.Tensor
    bid_price: torch.Tensor
    bid_ahead: torch.Tensor
    ask_price: torch.Tensor
    ask_ahead: torch.Tensor
    pending: torch.Tensor

    def detach(self) -> ReplayState:
        return ReplayState(*(getattr(self, f).detach() for f in self.__dataclass_fields__))


def _volume_at(prices: torch.Tensor, volumes: torch.Tensor, price: torch.Tensor) -> torch.Tensor:
    """``[B]``: the volume at ``price [B]`` among the trade slots ``prices``/``volumes [K, B]`` (NaN never matches)."""
    return ((prices == price) * volumes).sum(dim=0)


def _walk(prices: torch.Tensor, sizes: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
    """``[B]``: Σ price × units taking ``units [B]`` from levels ``[B, L]`` best first; what the displayed
    depth cannot take trades at the last displayed price."""
    filled_before = torch.cumsum(sizes, dim=1) - sizes
    take = torch.minimum(sizes, (units.unsqueeze(1) - filled_before).clamp_min(0.0))
    finite = torch.isfinite(prices)
    value = torch.where(finite, prices, 0.0).mul(take).sum(dim=1)
    last_index = (finite.long().sum(dim=1) - 1).clamp_min(0)  # levels are best first, empty ones at the end
    last_price = torch.where(finite, prices, 0.0).gather(1, last_index.unsqueeze(1)).squeeze(1)
    return value + (units - take.sum(dim=1)).clamp_min(0.0) * last_price


class ReplaySim:
    """``B`` quoting episodes on windows of order-book data (module docstring).

    Args:
        scenario: the parameters; its data is loaded (cached) unless ``data`` is given.
        device: where the tables and every state tensor live.
        split: ``"train"`` holds only the training rows, ``"test"`` only the held-out rows.
        data: use this data instead of the scenario's files (tests, calibration).
        first_window: ``None`` draws start rows at random (training, the views); an int ``w`` tiles the
            split into disjoint windows and episode b of a batch plays window ``w + b`` (evaluation:
            the chunk of episodes ``w ..`` of :func:`decisionlab.core.evaluation.episode_values`).

    ``action_low``/``action_high`` bound the depths for adapters and squashed policies (price units):
    from minus the split's median spread (a quote improving the book by up to a spread) to 20 ticks;
    the simulator itself takes any depth.
    """

    differentiable = False

    def __init__(self, scenario: ReplayScenario, device: torch.device | str = "cpu", split: Split = "train", *,
                 data: ReplayData | None = None, first_window: int | None = None) -> None:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', not {split!r}")
        if first_window is not None and first_window < 0:
            raise ValueError(f"first_window must be >= 0, not {first_window}")
        self.first_window = first_window
        self.scenario = scenario
        self.device = torch.device(device)
        self.split = split
        self.dtype = torch.float32
        data = data if data is not None else replay_data(scenario)
        self.source = data.source
        self.snapshots = data.snapshots  # of the whole data; the simulator keeps only its split's rows
        tick = tick_of(scenario, data)
        self.split_row = split_row(scenario.train_fraction, data.snapshots)
        first, stop = (0, self.split_row) if split == "train" else (self.split_row, data.snapshots)
        self.first_row = first  # data row of the split's row 0
        self.rows = stop - first
        self.horizon = scenario.steps
        part = "training" if split == "train" else "held-out"
        if self.rows < self.horizon + 1:
            raise ScenarioError(
                f"horizon/dt/train_fraction: an episode of {self.horizon} steps needs {self.horizon + 1} snapshots "
                f"but the {part} part has {self.rows} (the data has {data.snapshots} snapshots of "
                f"{data.step_seconds:g} s; train_fraction={scenario.train_fraction:g})")
        if self.rows >= MAX_ROWS:
            raise ScenarioError(f"step_seconds: the {part} part has {self.rows:,} snapshots, more than the "
                                f"{MAX_ROWS:,} a replay can index; use a longer step or less data")
        # only this split's rows reach the device: nothing built on it can read the other part
        self.table = _cached_table(data, tick, str(self.device)).part(first, stop)
        self.tick = tick
        self._ladder = self.table.ladder
        self._bid_ladder = self.table.bid_ladder.reshape(-1)  # flat: one gather per lookup
        self._ask_ladder = self.table.ask_ladder.reshape(-1)
        k = self.table.slots
        self._sell = slice(0, k), slice(k, 2 * k), 2 * k  # price slots, volume slots, lowest price
        self._buy = slice(2 * k + 1, 3 * k + 1), slice(3 * k + 1, 4 * k + 1), 4 * k + 1
        self.median_spread = float(self.table.top[TOP_SPREAD].median()) * tick  # an unbound state's first view
        self.action_low = -self.median_spread
        self.action_high = DEPTH_HIGH_TICKS * tick
        self.spaces = quoting_spaces(self.action_low, self.action_high)
        s = scenario
        self.latency = s.latency_steps
        self._size = float(s.quote_size)
        self._fee = float(s.maker_fee)
        self._bound = None if s.max_inventory is None else float(s.max_inventory)
        self._running = float(s.running_penalty * s.dt)
        self._terminal = float(s.terminal_penalty)
        self._proportional = s.queue_model == "proportional"
        self._flatten = bool(s.flatten_at_end)
        self._taker = float(s.taker_fee_rate)
        self._ref_price = self.table.ref_ticks * tick

    # --- episodes -------------------------------------------------------------------------

    @property
    def start_rows(self) -> int:
        """Number of possible start rows: an episode at row r plays rows r .. r + steps."""
        return self.rows - self.horizon

    @property
    def windows(self) -> int:
        """Disjoint windows of the split: window w plays rows ``w·steps .. (w + 1)·steps``."""
        return disjoint_windows(self.rows, self.horizon)

    def _draw(self, batch: int, generator: torch.Generator | None) -> torch.Tensor:
        if self.first_window is not None:
            return self._tiles(batch)
        gen = generator if generator is not None else torch.default_generator
        starts = torch.randint(0, self.start_rows, (batch,), generator=gen, device=gen.device)
        return starts.to(self.device)

    def _tiles(self, batch: int) -> torch.Tensor:
        """``[batch]`` start rows of the disjoint windows ``first_window ..`` (module docstring)."""
        first = int(self.first_window or 0)
        if first + batch > self.windows:
            part = "training" if self.split == "train" else "held-out"
            raise ScenarioError(
                f"episodes: at most {self.windows:,} for this scenario, got {first + batch:,}: the {part} part has "
                f"{self.rows:,} snapshots, {self.windows:,} disjoint windows of {self.horizon} steps (an episode "
                f"never overlaps another); ask for {self.windows:,} or fewer, a shorter horizon or more data")
        return (torch.arange(first, first + batch, device=self.device) * self.horizon).long()

    def sample_exogenous(self, batch: int, periods: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``[B, periods, 1]`` float32: the data row (from the split's first row) each step plays, for
        windows starting at rows drawn from ``generator`` (the rows :meth:`reset` binds to)."""
        starts = self._draw(batch, generator)
        offsets = torch.arange(periods, device=self.device).clamp_max(self.horizon)
        return (starts.unsqueeze(1) + offsets).to(self.dtype).unsqueeze(2)

    def reset(self, batch: int, generator: torch.Generator | None = None) -> ReplayState:
        """Episodes at their start: bound to the rows the next :meth:`sample_exogenous` with the same
        ``generator`` draws (the generator is not advanced), or unbound without a generator."""
        if generator is None:
            return self._state(batch, None)
        saved = generator.get_state()
        starts = self._draw(batch, generator)
        generator.set_state(saved)
        return self._state(batch, starts)

    def start_state(self, starts: torch.Tensor) -> ReplayState:
        """Episodes bound to start rows ``starts [B]`` (long, from the split's first row)."""
        starts = starts.to(self.device).long()
        if starts.numel() and (int(starts.min()) < 0 or int(starts.max()) >= self.start_rows):
            raise ValueError(f"start rows must lie in [0, {self.start_rows}) for episodes of {self.horizon} steps")
        return self._state(int(starts.shape[0]), starts)

    def _state(self, batch: int, starts: torch.Tensor | None) -> ReplayState:
        dev, dt = self.device, self.dtype
        zeros = torch.zeros(batch, dtype=dt, device=dev)
        nan = torch.full((batch,), torch.nan, dtype=dt, device=dev)
        if starts is None:
            row = torch.full((batch,), -1, dtype=torch.long, device=dev)
            mid, imbalance = zeros, zeros
            spread = torch.full((batch,), self.median_spread, dtype=dt, device=dev)
        else:
            row = starts
            top = self.table.top.index_select(1, starts)
            mid, imbalance, spread = top[TOP_MID], top[TOP_IMBALANCE], top[TOP_SPREAD] * self.tick
        return ReplayState(
            steps_done=torch.zeros(batch, dtype=torch.long, device=dev), row=row,
            inventory=torch.full((batch,), float(self.scenario.initial_inventory), dtype=dt, device=dev),
            pnl=zeros, mid=mid, start_mid=mid, last_return=zeros, imbalance=imbalance, market_spread=spread,
            bid_price=nan, bid_ahead=zeros, ask_price=nan, ask_ahead=zeros,
            pending=torch.full((batch, self.latency, 2), torch.nan, dtype=dt, device=dev),
        )

    # --- observation ----------------------------------------------------------------------

    def observe(self, state: ReplayState) -> torch.Tensor:
        """``[B, 6]``, the layout of :mod:`~decisionlab.domains.market_making.quotes` (price units)."""
        return observation(time_left(state.steps_done, self.scenario, self.dtype), state.inventory,
                           (state.mid - state.start_mid) * self.tick, state.last_return * self.tick,
                           state.imbalance, state.market_spread)

    def flat_observation(self, obs: torch.Tensor) -> torch.Tensor:
        return obs

    # --- dynamics -------------------------------------------------------------------------

    def _prices(self, mid: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``[B, 2]`` quote prices (ticks) of depths ``action [B, 2]`` around ``mid [B]`` (ticks): bid rounded
        down, ask up, in float64 so the rounding is exact at any offset; NaN for a non-finite depth."""
        depth = action.to(torch.float64) / self.tick
        mid64 = mid.to(torch.float64)
        bid = torch.floor(mid64 - depth[:, ACT_BID] + ROUNDING_TOLERANCE)
        ask = torch.ceil(mid64 + depth[:, ACT_ASK] - ROUNDING_TOLERANCE)
        prices = torch.stack([bid, ask], dim=1)
        return torch.where(torch.isfinite(prices), prices, torch.nan).to(self.dtype)

    def _shown(self, ladder: torch.Tensor, row: torch.Tensor, behind: torch.Tensor) -> torch.Tensor:
        """``[B]``: the size displayed ``behind [B]`` ticks behind the best in snapshot ``row [B]`` (0 off the
        ladder: in front of the best, deeper than D, or NaN)."""
        seen = (behind >= 0) & (behind < self._ladder)
        index = row * self._ladder + torch.where(seen, behind, 0.0).long()
        return torch.where(seen, ladder[index], 0.0)

    def step(self, state: ReplayState, action: torch.Tensor, exogenous: torch.Tensor) -> StepResult[ReplayState]:
        """One step (module docstring). ``action``: depths ``[B, 2]`` (price units); ``exogenous``: this
        step's ``[B, 1]`` row. Returns the new state, the reward ``[B]`` (currency) and ``info`` ``{name: [B]}``:
        ``bid_fill``/``ask_fill`` (units), ``bid_quoted``/``ask_quoted`` (bool: an active quote on that
        side), ``inventory`` (after the step), ``pnl`` (W − W_0 after the step, before penalties),
        ``spread`` (ask − bid quoted, price units; NaN unless both sides quote), ``mid`` (price units,
        after the step), ``mid_change``, ``bid_price``/``ask_price`` (active
        quotes, price units, NaN: none), ``fees`` (maker fees and, at the end, the taker fee) and
        ``flatten_cost`` (what liquidating the inventory cost against the mid, 0 unless ``flatten_at_end``)."""
        tick, table = self.tick, self.table
        bound = state.row >= 0
        exo_row = exogenous.reshape(exogenous.shape[0], -1)[:, 0].round().long().clamp(0, self.rows - 2)
        row = torch.where(bound, state.row, exo_row)
        next_row = (row + 1).clamp_max(self.rows - 1)
        active = state.steps_done < self.horizon
        here = table.top.index_select(1, row)  # [5, B]: each column contiguous
        there = table.top.index_select(1, next_row)
        trades = table.trades.index_select(1, row)  # [4K + 2, B]
        mid, best_bid, best_ask = here[TOP_MID], here[TOP_BID], here[TOP_ASK]
        start_mid = torch.where(bound, state.start_mid, mid)
        q = state.inventory

        # 1-2. quotes decided now, quotes active now (latency), post-only, self-cross, inventory bound
        decided = self._prices(mid, action)
        if self.latency:
            live = state.pending[:, 0]
            pending = torch.cat([state.pending[:, 1:], decided.unsqueeze(1)], dim=1)
        else:
            live, pending = decided, state.pending
        bid_px = torch.minimum(live[:, 0], best_ask - 1.0)  # NaN stays NaN: no quote
        ask_px = torch.maximum(live[:, 1], best_bid + 1.0)
        ask_px = torch.where(ask_px <= bid_px, bid_px + 1.0, ask_px)
        bid_on = torch.isfinite(bid_px) & active
        ask_on = torch.isfinite(ask_px) & active
        if self._bound is not None:
            bid_on = bid_on & (q < self._bound)
            ask_on = ask_on & (q > -self._bound)

        # 3. queue ahead: the resting quote's price keeps its place, a new price queues behind what is shown
        shown_bid = self._shown(self._bid_ladder, row, best_bid - bid_px)
        shown_ask = self._shown(self._ask_ladder, row, ask_px - best_ask)
        bid_ahead = torch.where(bid_px == state.bid_price, state.bid_ahead, shown_bid)
        ask_ahead = torch.where(ask_px == state.ask_price, state.ask_ahead, shown_ask)

        # 4. fills from the step's trades: at our price after the queue ahead, through our price entirely
        (sell_px, sell_vol, sell_min), (buy_px, buy_vol, buy_max) = self._sell, self._buy
        sold_at = _volume_at(trades[sell_px], trades[sell_vol], bid_px)
        bought_at = _volume_at(trades[buy_px], trades[buy_vol], ask_px)
        size = self._size
        bid_fill = torch.where(trades[sell_min] < bid_px, size, (sold_at - bid_ahead).clamp(0.0, size))
        ask_fill = torch.where(trades[buy_max] > ask_px, size, (bought_at - ask_ahead).clamp(0.0, size))
        bid_fill = torch.where(bid_on, bid_fill, 0.0)
        ask_fill = torch.where(ask_on, ask_fill, 0.0)
        if self._bound is not None:  # a fill never takes the inventory past ±Q
            bid_fill = torch.minimum(bid_fill, (self._bound - q).clamp_min(0.0))
            ask_fill = torch.minimum(ask_fill, (self._bound + q).clamp_min(0.0))
        inventory = q + bid_fill - ask_fill

        # 5. the queue ahead of what keeps resting
        next_bid_ahead = (bid_ahead - sold_at).clamp_min(0.0)
        next_ask_ahead = (ask_ahead - bought_at).clamp_min(0.0)
        shown_bid_next = self._shown(self._bid_ladder, next_row, there[TOP_BID] - bid_px)
        shown_ask_next = self._shown(self._ask_ladder, next_row, ask_px - there[TOP_ASK])
        if self._proportional:
            next_bid_ahead = next_bid_ahead * self._kept_share(shown_bid, shown_bid_next, sold_at)
            next_ask_ahead = next_ask_ahead * self._kept_share(shown_ask, shown_ask_next, bought_at)
        next_bid_ahead = torch.minimum(next_bid_ahead, shown_bid_next)
        next_ask_ahead = torch.minimum(next_ask_ahead, shown_ask_next)
        resting_bid = torch.where(bid_on & (bid_fill < size), bid_px, torch.nan)
        resting_ask = torch.where(ask_on & (ask_fill < size), ask_px, torch.nan)

        # 6. the book moves; wealth change = captured depths + inventory × mid move (ticks → price units)
        next_mid = torch.where(active, there[TOP_MID], mid)
        move = next_mid - mid
        captured = (torch.where(bid_on, mid - bid_px, 0.0) * bid_fill
                    + torch.where(ask_on, ask_px - mid, 0.0) * ask_fill)
        fees = (bid_fill + ask_fill) * self._fee
        wealth_change = (captured + inventory * move) * tick - fees
        last = active & (state.steps_done == self.horizon - 1)
        flatten_cost = torch.zeros_like(wealth_change)
        if self._flatten and bool(last.any()):  # walking the book costs [B, L] gathers: only at the end
            flatten_cost, taker_fee = self._liquidation(next_row, inventory, next_mid)
            flatten_cost = torch.where(last, flatten_cost, 0.0)
            taker_fee = torch.where(last, taker_fee, 0.0)
            wealth_change = wealth_change - flatten_cost - taker_fee
            fees = fees + taker_fee
            inventory = torch.where(last, 0.0, inventory)

        penalty = inventory * inventory * self._running if self._running else None
        if self._terminal:
            terminal = torch.where(last, inventory * inventory * self._terminal, 0.0)
            penalty = terminal if penalty is None else penalty + terminal
        if penalty is not None:
            penalty = torch.where(active, penalty, 0.0)
        reward = wealth_change if penalty is None else wealth_change - penalty

        steps_done = state.steps_done + active.long()
        pnl = state.pnl + wealth_change
        view = torch.where(active, there, here)  # [5, B]: the snapshot the next observation shows
        new_state = ReplayState(
            steps_done=steps_done, row=torch.where(active, row + 1, row), inventory=inventory, pnl=pnl,
            mid=next_mid, start_mid=start_mid, last_return=torch.where(active, move, state.last_return),
            imbalance=view[TOP_IMBALANCE], market_spread=view[TOP_SPREAD] * tick,
            bid_price=resting_bid, bid_ahead=torch.where(torch.isfinite(resting_bid), next_bid_ahead, 0.0),
            ask_price=resting_ask, ask_ahead=torch.where(torch.isfinite(resting_ask), next_ask_ahead, 0.0),
            pending=pending,
        )
        info = {
            "bid_fill": bid_fill,
            "ask_fill": ask_fill,
            "bid_quoted": bid_on,
            "ask_quoted": ask_on,
            "inventory": inventory,
            "pnl": pnl,
            "spread": torch.where(bid_on & ask_on, (ask_px - bid_px) * tick, torch.nan),
            "mid": next_mid * tick + self._ref_price,
            "mid_change": move * tick,
            "bid_price": torch.where(bid_on, bid_px * tick + self._ref_price, torch.nan),
            "ask_price": torch.where(ask_on, ask_px * tick + self._ref_price, torch.nan),
            "fees": fees,
            "flatten_cost": flatten_cost,
        }
        return StepResult(new_state, reward, info, terminated=steps_done >= self.horizon)

    @staticmethod
    def _kept_share(shown: torch.Tensor, shown_next: torch.Tensor, traded: torch.Tensor) -> torch.Tensor:
        """Share of the queue ahead left after the level's cancellations (proportional model): the
        displayed size not traded and gone by the next snapshot, spread evenly over the rest of the queue."""
        rest = (shown - traded).clamp_min(0.0)
        cancelled = (rest - shown_next).clamp_min(0.0)
        return torch.where(rest > 0, 1.0 - cancelled / rest.clamp_min(1e-12), 1.0)

    def _liquidation(self, row: torch.Tensor, inventory: torch.Tensor, mid: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cost against the mid, taker fee)`` ``[B]`` (currency) of trading the inventory to 0 against
        snapshot ``row [B]`` (sell into the bids when long, buy from the asks when short)."""
        t = self.table
        units = inventory.abs()
        sold = _walk(t.bid_px.index_select(0, row), t.bid_sz.index_select(0, row), units)  # Σ price·units, ticks
        bought = _walk(t.ask_px.index_select(0, row), t.ask_sz.index_select(0, row), units)
        long = inventory > 0
        value = torch.where(long, sold, bought)
        cost = torch.where(long, mid * units - value, value - mid * units) * self.tick
        notional = value * self.tick + units * self._ref_price
        return cost, notional.abs() * self._taker
