"""The action of the single-store settings' serving (single store, real series): one order per state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from pydantic import BaseModel, Field

from decisionlab.core import PolicyOutputError


class StoreOrder(BaseModel):
    """The order of one store (or store-item)."""

    order: float = Field(description="units to order now (>= 0)")


def one_order_per_state(context: Any, actions: torch.Tensor, states: Sequence[Any]) -> list[dict[str, float]]:
    """``{"order": units}`` per state from orders ``[B]`` or ``[B, 1]`` (negative read as 0, as the
    simulators do)."""
    orders = actions.reshape(len(states), -1)
    if orders.shape[1] != 1:
        raise PolicyOutputError(f"a store policy returned orders {tuple(actions.shape)}, expected [B]")
    return [{"order": value} for value in orders[:, 0].clamp_min(0.0).double().cpu().tolist()]
