"""The one store-period of inventory: orders arrive, demand is served, unmet demand is lost or
backlogged. The single store, the contextual single store and ``real_series`` all step through it.

Order of events in a period (after the policy has ordered ``q``): the order placed L periods ago
arrives (with L = 0 the new order itself) — :func:`receive` for one lead time per simulator,
:func:`receive_per_row` for a lead time per row; then :func:`serve` meets demand ``d`` from the
stock ``y`` = on hand + arrival and charges ``h·(y − d)⁺ + p·(d − y)⁺``. Everything is element-wise
over the batch and differentiable in the orders.
"""

from __future__ import annotations

import torch


def receive(pipeline: torch.Tensor, order: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Arrivals ``[B]`` and the next pipeline ``[B, L]`` for one lead time L = ``pipeline.shape[1]``:
    the oldest order arrives, the new ``order [B]`` joins at the back (with L = 0 it arrives now)."""
    if pipeline.shape[1] == 0:
        return order, pipeline
    return pipeline[:, 0], torch.cat([pipeline[:, 1:], order.unsqueeze(1)], dim=1)


def receive_per_row(
    pipeline: torch.Tensor, order: torch.Tensor, lead_time: torch.Tensor, slots: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`receive` with a lead time per row: ``pipeline [B, L_max]`` (row b uses slots
    ``0..L_b−1``, oldest first, the rest stay 0), ``lead_time [B]`` (long), ``slots``:
    ``arange(L_max + 1)``. The order enters slot ``L_b`` of the pipeline widened by one empty slot;
    slot 0 arrives now (the order itself when ``L_b = 0``) and the others shift down one. Slot
    ``L_b`` was 0 before the order, so ``where`` writes it exactly, with its gradient."""
    widened = torch.cat([pipeline, pipeline.new_zeros(pipeline.shape[0], 1)], dim=1)
    widened = torch.where(slots[None, :] == lead_time[:, None], order[:, None], widened)
    return widened[:, 0], widened[:, 1:]


def serve(
    on_hand: torch.Tensor,
    arriving: torch.Tensor,
    demand: torch.Tensor,
    holding_cost: torch.Tensor | float,
    underage_cost: torch.Tensor | float,
    lost_sales: bool = True,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Serve ``demand [B]`` from ``on_hand + arriving``; returns the next on hand ``[B]`` (negative =
    backlog when ``lost_sales`` is false) and the period's diagnostics ``[B]``: ``cost``,
    ``holding_cost``, ``shortage_cost``, ``demand``, ``sales`` (demand met from stock) and
    ``on_hand`` (stock left, never negative). Costs may be scalars or per-row tensors."""
    available = on_hand + arriving
    left = torch.relu(available - demand)
    short = torch.relu(demand - available)
    holding = holding_cost * left
    shortage = underage_cost * short
    if lost_sales:
        next_on_hand, sales = left, demand - short
    else:
        next_on_hand, sales = available - demand, torch.minimum(demand, torch.relu(available))
    info = {
        "cost": holding + shortage,
        "holding_cost": holding,
        "shortage_cost": shortage,
        "demand": demand,
        "sales": sales,
        "on_hand": left,
    }
    return next_on_hand, info
