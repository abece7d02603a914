"""Scripted Gather-Trade-Build workers that answer the taxes: gather, build, and stop when a house is not worth it.

The baselines' workers (the schedules are compared with workers that respond to them, as the paper's
fixed-schedule baselines are). Each step, each worker:

1. **Decides whether the next house is worth its labour.** The house pays ``payment``; of it the worker
   keeps ``g = payment − (T(y + payment) − T(y))`` under the rates in force, with ``y`` its income so far
   this period (the rebate it takes as given, as the exact best response of the one-step economy does).
   It goes on if ``u(c + g) − u(c)`` (isoelastic, ``c`` its coin) exceeds the energy cost of the labour
   still needed: the build, a collect per missing resource and the moves to the nearest tile it sees
   holding that resource or, with none, to the nearest source of it (``map_size`` moves when it sees
   neither). Higher rates, or more coin, make it stop sooner: taxes change how much it works. (With
   ``2·observation_range`` moves for what it cannot see, the workers wandered in search and ended the
   episode with a negative utility: they worked at a loss.)
2. **Works:** builds when it can; otherwise walks towards the nearest tile it sees with a resource it
   lacks (the one with the fewer units, the nearer on a tie), the longer axis first; with none in view,
   to the nearest source of it, where it waits, at no labour, for the resource to regrow under it; with
   no source in view either, it heads for the side of the map where that resource gathers (wood low,
   stone high) and sweeps along it, turning every ``map_size`` steps. Blocked on the way to a tile it
   sees, it waits (stepping aside, it stepped straight back, at a move's labour each step); blocked with
   nothing in view, it takes the first legal move in an order that turns with the step. Tiles where
   another worker stands are not targets.
3. **Rests** (choice 0) otherwise. These workers never trade.

Deterministic and batched: ``act`` reads only the observation (window, features, legal choices).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from decisionlab.domains.taxation.economy import tax
from decisionlab.domains.taxation.gtb import BUILD, NOOP, PLANNER, WORKERS
from decisionlab.domains.taxation.gtb_observe import COIN_SCALE, GOODS_SCALE, WindowGeometry, period_of
from decisionlab.domains.taxation.gtb_world import STONE, STONE_SOURCE, WOOD, WOOD_SOURCE
from decisionlab.domains.taxation.scenario import GatherTradeBuildScenario

LEFT, RIGHT, UP, DOWN = 1, 2, 3, 4
WOOD_HELD, STONE_HELD, COIN, ESCROW_COIN, PAYMENT, ROW, PERIOD_INCOME, RATES = 0, 1, 2, 5, 6, 9, 11, 20
"""Feature columns (``gtb_observe.worker_features``): the rates start at ``RATES``, the step within the
period follows them."""


class GatherBuildWorkers:
    """The scripted workers of ``scenario`` (module docstring); ``act`` answers the ``workers`` group only."""

    def __init__(self, scenario: GatherTradeBuildScenario, device: Any = "cpu") -> None:
        s = self.scenario = scenario
        self.device = torch.device(device)
        self.cutoffs = torch.tensor(s.bracket_cutoffs, dtype=torch.float64, device=self.device)
        self.geometry = WindowGeometry(s.observation_range, self.device)
        self.rows, self.cols = self.geometry.rows, self.geometry.cols
        self.unseen = float(s.map_size)  # moves to a resource it does not see: about across the map

    def utility(self, coin: torch.Tensor) -> torch.Tensor:
        eta = self.scenario.isoelastic_eta
        return (coin.clamp_min(0.0) ** (1.0 - eta) - 1.0) / (1.0 - eta)

    def target(self, window: torch.Tensor, resource: int, source: int
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(distance, cell, is_source) [B, A]``: the nearest window cell holding ``resource``, or, with none in
        view, the nearest ``source`` tile (emptied: it regrows; waiting on it costs no labour). Distance
        ``inf`` where neither is in view."""
        here, there = self.geometry.nearest(window, resource), self.geometry.nearest(window, source)
        use_source = ~torch.isfinite(here[0])
        return (torch.where(use_source, there[0], here[0]), torch.where(use_source, there[1], here[1]),
                use_source & torch.isfinite(there[0]))

    def act(self, obs: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        s = self.scenario
        workers = obs[WORKERS]
        window, features, legal = workers["window"], workers["features"].double(), workers["legal"]
        rates = features[:, 0, RATES:RATES + s.n_brackets]  # [B, K]: every worker sees the same
        wood = (features[..., WOOD_HELD] / GOODS_SCALE).round()
        stone = (features[..., STONE_HELD] / GOODS_SCALE).round()
        coin = (features[..., COIN] + features[..., ESCROW_COIN]) / COIN_SCALE
        payment = features[..., PAYMENT] * s.build_payment
        income = features[..., PERIOD_INCOME] / COIN_SCALE

        # where each resource is (a tile holding it) or will be (a source tile, emptied, that regrows)
        wood_far, wood_cell, wood_source = self.target(window, WOOD, WOOD_SOURCE)
        stone_far, stone_cell, stone_source = self.target(window, STONE, STONE_SOURCE)
        need_wood, need_stone = wood < 1, stone < 1
        # 1. is the next house worth the labour still needed for it?
        kept = payment - (tax(income + payment, rates, self.cutoffs) - tax(income, rates, self.cutoffs))
        gain = self.utility(coin + kept) - self.utility(coin)
        moves = (need_wood * wood_far.clamp_max(self.unseen) + need_stone * stone_far.clamp_max(self.unseen))
        labour = s.build_labor + s.collect_labor * (need_wood.double() + need_stone.double()) + s.move_labor * moves
        working = gain > s.energy_cost * labour

        # 2. towards the resource it lacks: the scarcer one, the nearer on a tie
        want_wood = (wood < stone) | ((wood == stone) & (wood_far <= stone_far))
        far = torch.where(want_wood, wood_far, stone_far)
        cell = torch.where(want_wood, wood_cell, stone_cell)
        waiting = (far == 0) & torch.where(want_wood, wood_source, stone_source)  # on an empty source: it regrows
        d_row, d_col = self.rows[cell], self.cols[cell]
        seen = torch.isfinite(far)
        # unseen: head for where it gathers (wood towards the bottom rows, stone towards the top); there,
        # sweep along the rows, turning every map_size steps
        row = (features[..., ROW] * s.map_size).round()
        there = torch.where(want_wood, row >= s.map_size - 1 - s.observation_range, row <= s.observation_range)
        step = (features[..., RATES + s.n_brackets] * s.tax_period_steps).round().long()
        sweep = torch.where((step // s.map_size) % 2 == 0, 1, -1)
        d_row = torch.where(seen, d_row, torch.where(there, 0, torch.where(want_wood, 1, -1)))
        d_col = torch.where(seen, d_col, torch.where(there, sweep, 0))
        vertical = torch.where(d_row > 0, DOWN, UP)
        horizontal = torch.where(d_col > 0, RIGHT, LEFT)
        first = torch.where(d_row.abs() >= d_col.abs(), vertical, horizontal)
        second = torch.where(d_row.abs() >= d_col.abs(), horizontal, vertical)
        second = torch.where((d_row == 0) | (d_col == 0), first, second)
        fallback = self.first_legal_move(legal, step)
        can = legal.gather(-1, torch.stack([first, second], -1))
        # blocked on the way to a target it sees: wait (stepping aside only to step back oscillates, at a
        # move's labour each step); blocked with nothing in view: step aside
        blocked = torch.where(seen, NOOP, fallback)
        move = torch.where(can[..., 0], first, torch.where(can[..., 1], second, blocked))
        choice = torch.where(legal[..., BUILD], BUILD, torch.where(waiting, NOOP, move))
        choice = torch.where(working, choice, NOOP)
        return {WORKERS: choice.long()}

    @staticmethod
    def first_legal_move(legal: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        """``[B, A]`` the first legal move in the order left, right, up, down turned by ``step`` (0: none)."""
        order = (torch.arange(4, device=legal.device) + step[..., None]) % 4 + 1  # [B, A, 4]
        ok = legal.gather(-1, order)
        pick = order.gather(-1, ok.long().argmax(-1, keepdim=True))[..., 0]
        return torch.where(ok.any(-1), pick, NOOP)


class GtbSchedule:
    """A fixed schedule for the planner, :class:`GatherBuildWorkers` for the workers: ``rates`` ``[K]`` in
    every tax period, or ``[P, K]``, one row per period."""

    def __init__(self, scenario: GatherTradeBuildScenario, rates: Sequence[float] | Sequence[Sequence[float]],
                 name: str, device: Any = "cpu") -> None:
        self.name, self.scenario = name, scenario
        self.workers = GatherBuildWorkers(scenario, device)
        table = torch.tensor(rates, dtype=torch.get_default_dtype(), device=self.workers.device)
        self.table = table[None] if table.dim() == 1 else table  # [P, K]
        if self.table.dim() != 2 or self.table.shape[1] != scenario.n_brackets:
            raise ValueError(f"{name}: rates of shape {list(table.shape)} for {scenario.n_brackets} brackets")

    @property
    def rates(self) -> torch.Tensor:
        """``[K]`` the first period's rates (every period's, for a schedule without periods)."""
        return self.table[0]

    def planner(self, obs: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        features = obs[PLANNER]["features"]
        if self.table.shape[0] == 1:
            return {PLANNER: self.table[0].expand(features.shape[0], 1, -1)}
        return {PLANNER: self.table[period_of(self.scenario, features, self.table.shape[0])][:, None, :]}

    def act(self, obs: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return {**self.planner(obs), **self.workers.act(obs)}


class SchedulePlanner:
    """The planner part of a :class:`GtbSchedule` alone (beside other workers than the scripted ones)."""

    def __init__(self, schedule: GtbSchedule) -> None:
        self.schedule = schedule

    def act(self, obs: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return self.schedule.planner(obs)
