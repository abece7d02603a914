"""Serving single-store policies: a store's stock and pipeline -> its order.

One request state (:class:`InventoryState`) is what the store knows when it orders: stock on hand
and the orders in transit, oldest first (exactly ``lead_time`` values). :func:`observe` lays them out
as the simulator's observation ``[B, 1 + L]`` (:meth:`~.sim.SingleStoreSim.observe`: on hand, then
the pipeline oldest first); orders ``[B]`` go back as ``{"order": units}`` (:mod:`..orders`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from decisionlab.core import Policy, ServingSpec, StateError, problem
from decisionlab.domains.inventory.orders import StoreOrder, one_order_per_state
from decisionlab.domains.inventory.single_store.scenario import LostSalesScenario
from decisionlab.domains.inventory.single_store.sim import SingleStoreSim, StoreState

MAX_PIPELINE = 64  # longer than any valid lead time; the exact length is checked against the scenario
MAX_QUANTITY = 1e9
MAX_PROBLEMS = 10

Quantity = Annotated[float, Field(ge=0, le=MAX_QUANTITY, allow_inf_nan=False, strict=True)]


class InventoryState(BaseModel):
    """One store at the moment of ordering."""

    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [{"on_hand": 4, "pipeline": [5, 5]}]}
    )

    on_hand: Quantity = Field(description="stock on hand (units), >= 0")
    pipeline: list[Quantity] = Field(
        default_factory=list,
        max_length=MAX_PIPELINE,
        description="orders in transit, oldest (arriving next) first; exactly lead_time values",
    )


@dataclass(frozen=True)
class StoreContext:
    scenario: LostSalesScenario
    sim: SingleStoreSim


def prepare(scenario: LostSalesScenario, device: torch.device) -> StoreContext:
    return StoreContext(scenario, SingleStoreSim(scenario, device))


def check(context: StoreContext, states: Sequence[InventoryState]) -> None:
    """A ``StateError`` naming ``[i].pipeline`` for every state whose pipeline does not hold exactly
    ``lead_time`` values."""
    lead = context.scenario.lead_time
    problems = [
        problem((i, "pipeline"), "pipeline_length",
                f"expected {lead} value(s) (one per period of lead_time={lead}, oldest first), "
                f"got {len(state.pipeline)}",
                state.pipeline)
        for i, state in enumerate(states) if len(state.pipeline) != lead
    ]
    if problems:
        raise StateError(problems[:MAX_PROBLEMS])


def observe(context: StoreContext, states: Sequence[InventoryState], policy: Policy) -> torch.Tensor:
    """``[B, 1 + L]`` float32 via the simulator's own :meth:`~.sim.SingleStoreSim.observe`."""
    check(context, states)
    lead = context.scenario.lead_time
    device = context.sim.device
    on_hand = torch.tensor([state.on_hand for state in states], dtype=torch.float32, device=device)
    pipeline = torch.tensor([state.pipeline for state in states], dtype=torch.float32, device=device)
    return context.sim.observe(StoreState(on_hand, pipeline.reshape(len(states), lead)))


def example(context: StoreContext) -> dict[str, Any]:
    """A store with one period of mean demand on hand and in every pipeline slot."""
    mean = round(float(context.scenario.demand_mean), 6)
    return {"on_hand": mean, "pipeline": [mean] * context.scenario.lead_time}


SERVING = ServingSpec(
    state_model=InventoryState,
    action_model=StoreOrder,
    prepare=prepare,
    check=check,
    observe=observe,
    respond=one_order_per_state,
    example=example,
    describe=lambda context: {"lead_time": context.scenario.lead_time,
                              "observation": "on_hand, then the pipeline oldest first"},
)
