"""Learning the value during the day being served (V1D3's online part, in evaluation as in training).

:func:`step_transitions` turns a window's recorded driver transitions into TD data.
:class:`EpisodeValues` holds one copy of a value table per simulated day, ``[T, B·C]``: day ``b``'s
cell ``c`` is location ``b·C + c`` of one :class:`~decisionlab.core.TabularValue`, so the core's
``td0_update`` updates every day at once and days never see each other's trips. Each copy starts
from the policy's trained snapshot, learns by TD(0) from the completed trips of its own day and,
with an anchor (V1D3's offline value), is blended back towards it every ``ensemble_every_s``:
``V ← w·V + (1 − w)·V_offline``.

Learning is per day, so a day's result does not depend on which other days are simulated beside
it (chunking of an evaluation changes nothing), and the registered policy is never changed: the
API serves the frozen snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from decisionlab.core import TabularValue, Transitions, blend_, discount_for, td0_update
from decisionlab.domains.ride_hailing.sim import IDLE_MOVE, NO_TRANSITION, TERMINAL, TRIP


def step_transitions(info: dict[str, torch.Tensor], gamma: float, gamma_period_s: float,
                     cells_per_day: int = 0) -> Transitions:
    """The value transitions a window recorded (``info["tr_*"] [B, N]``), flattened: a trip's fare is
    discounted from the anchor to the match; its next state is the drop-off; going offline is terminal.
    With ``cells_per_day = C > 0`` the cells of day ``b`` are numbered ``b·C + cell`` (see
    :class:`EpisodeValues`)."""
    kind = info["tr_kind"].flatten()
    keep = kind != NO_TRANSITION
    idx = keep.nonzero().squeeze(1)

    def pick(name: str) -> torch.Tensor:
        return info[name].flatten()[idx]

    kind = kind[idx]
    from_s, to_s = pick("tr_from_s"), pick("tr_to_s")
    reward = pick("tr_reward") * discount_for(pick("tr_reward_s") - from_s, gamma, gamma_period_s)
    discount = torch.where(kind == TERMINAL, 0.0, discount_for(to_s - from_s, gamma, gamma_period_s))
    from_cell = pick("tr_from_cell")
    next_cell = torch.where(kind == TERMINAL, from_cell, pick("tr_to_cell"))
    assert bool(((kind == TRIP) | (kind == IDLE_MOVE) | (kind == TERMINAL)).all())
    if cells_per_day:
        offset = torch.div(idx, info["tr_kind"].shape[1], rounding_mode="floor") * cells_per_day
        from_cell, next_cell = from_cell + offset, next_cell + offset
    return Transitions(from_cell, from_s.float(), reward.float(), next_cell, to_s.float(), discount.float())


@dataclass(frozen=True)
class OnlineLearning:
    """How a policy keeps learning while it acts: TD(0) step ``alpha``, the discount, and (V1D3) the
    anchor table ``[T, C]`` blended in every ``ensemble_every_s`` with weight ``1 − weight_online``."""

    alpha: float
    gamma: float
    gamma_period_s: float
    anchor: torch.Tensor | None = None
    ensemble_every_s: float = 3600.0
    weight_online: float = 0.5


class EpisodeValues:
    """``B`` private copies of a value table (see the module docstring); call it like a value:
    ``values(cells [B, ...], time_s [B, ...]) -> V [B, ...]``."""

    def __init__(self, start: torch.Tensor, batch: int, period_s: float, learning: OnlineLearning) -> None:
        """``start [T, C]``: the snapshot every day starts from."""
        n_bins, self.cells = start.shape
        self.batch, self.learning = int(batch), learning
        self.table = TabularValue(self.batch * self.cells, n_bins, period_s).to(start.device)
        with torch.no_grad():
            self.table.table.copy_(start.repeat(1, self.batch))
        self.anchor = None if learning.anchor is None else learning.anchor.to(start).repeat(1, self.batch)
        self.offset = torch.arange(self.batch, device=start.device) * self.cells
        self.next_blend_s: float | None = None
        self.transitions = 0

    def __call__(self, cells: torch.Tensor, time_s: torch.Tensor) -> torch.Tensor:
        shape = cells.shape
        offset = self.offset.view(-1, *([1] * (len(shape) - 1)))
        return self.table((cells + offset).reshape(-1), time_s.reshape(-1).float()).reshape(shape)

    @torch.no_grad()
    def observe(self, time_s: float, info: dict[str, torch.Tensor]) -> None:
        """TD(0) on the window's transitions; the periodic blend when its time has come."""
        rule = self.learning
        batch = step_transitions(info, rule.gamma, rule.gamma_period_s, cells_per_day=self.cells)
        if len(batch):
            td0_update(self.table, batch, rule.alpha)
            self.transitions += len(batch)
        if self.anchor is None:
            return
        if self.next_blend_s is None:
            self.next_blend_s = time_s + rule.ensemble_every_s
        elif time_s >= self.next_blend_s - 1e-9:
            blend_(self.table, self.anchor, rule.weight_online)
            self.next_blend_s += rule.ensemble_every_s
