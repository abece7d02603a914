"""Serving execution policies: the live state of an order in flight -> the next child order.

One request state (:class:`LiveState`) describes an order being worked: child orders sent so far,
shares left, the mid now and one step ago, and the fill of the last child order (which reveals the
current temporary impact, ``η ≈ (slippage − ε)/shares``). :func:`observe` turns states into the
simulator's ``[B, 7]`` observation (:meth:`~decisionlab.domains.execution.sim.ExecutionSim.observation`);
:func:`respond` turns the policy's trades into ``{"trade", "remaining_after"}``, clamped to
``[0, remaining]`` and forced to everything left at the last step, as the simulator does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from decisionlab.core import Policy, ServingSpec, StateError, WholeNumber, problem
from decisionlab.domains.execution.scenario import ExecutionScenario
from decisionlab.domains.execution.sim import ExecutionSim

Price = Annotated[float, Field(ge=1e-6, le=1e9, allow_inf_nan=False, strict=True)]
Shares = Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False, strict=True)]
MAX_PROBLEMS = 10


class LastFill(BaseModel):
    """The previous child order's fill: reveals the current temporary impact (η ≈ (slippage − ε)/shares)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    shares: float = Field(gt=0, le=1e12, allow_inf_nan=False, strict=True, description="shares filled")
    price: Price = Field(description="average fill price")
    mid_before: Price = Field(description="mid price just before the child order")


class LiveState(BaseModel):
    """An order in flight at the moment of deciding its next child order."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"steps_done": 2, "remaining_shares": 6.5e5, "price": 49.8,
                                         "previous_price": 49.9,
                                         "last_fill": {"shares": 1.8e5, "price": 49.2, "mid_before": 49.9}}]},
    )

    steps_done: WholeNumber = Field(ge=0, le=1000, description="child orders already sent (0 at arrival)")
    remaining_shares: Shares = Field(description="shares still to trade")
    price: Price | None = Field(None, description="current mid price (default: the arrival price)")
    previous_price: Price | None = Field(None, description="mid price one step ago (default: price)")
    last_fill: LastFill | None = Field(None, description="fill of the previous child order, if any")


class NextTrade(BaseModel):
    """The next child order of one live state."""

    trade: float = Field(description="shares to trade now, in the order's direction")
    remaining_after: float = Field(description="shares left after this child order")


def check_states(scenario: ExecutionScenario, states: Sequence[LiveState]) -> None:
    """A ``StateError`` naming ``[i].<field>`` for states that cannot occur in ``scenario``."""
    problems = []
    for i, state in enumerate(states):
        if state.steps_done >= scenario.horizon_steps:
            problems.append(problem((i, "steps_done"), "out_of_horizon",
                                    f"must be below horizon_steps={scenario.horizon_steps} (the order is complete)",
                                    state.steps_done))
        if state.remaining_shares > scenario.shares * (1 + 1e-9):
            problems.append(problem((i, "remaining_shares"), "too_many_shares",
                                    f"cannot exceed the order size shares={scenario.shares:g}", state.remaining_shares))
    if problems:
        raise StateError(problems[:MAX_PROBLEMS])


def observe(sim: ExecutionSim, states: Sequence[LiveState], policy: Policy) -> torch.Tensor:
    """``[B, 7]`` observations in the simulator's layout from live states."""
    s = sim.scenario
    check_states(s, states)
    arrival = s.initial_price
    price = np.array([st.price if st.price is not None else arrival for st in states])
    previous = np.array([st.previous_price if st.previous_price is not None else now
                         for st, now in zip(states, price, strict=True)])
    observed = np.ones(len(states))
    for i, st in enumerate(states):
        if st.last_fill is not None:
            slippage = s.sign * (st.last_fill.mid_before - st.last_fill.price)  # per share, + = cost
            observed[i] = max(slippage - s.epsilon, 0.0) / st.last_fill.shares / s.eta

    def column(values: Any, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.as_tensor(np.asarray(values), dtype=dtype, device=sim.device)

    return sim.observation(
        column([st.steps_done for st in states], torch.long),
        column([st.remaining_shares for st in states]),
        column(price - arrival),
        column(price - previous),
        column(observed),
    )


def respond(sim: ExecutionSim, actions: torch.Tensor, states: Sequence[LiveState]) -> list[dict[str, float]]:
    """The policy's choice clamped to ``[0, remaining]``, all of it at the last step."""
    trades = actions.reshape(-1).double().cpu()
    remaining = torch.tensor([st.remaining_shares for st in states], dtype=torch.float64)
    last = torch.tensor([st.steps_done == sim.horizon - 1 for st in states])
    trades = torch.where(last, remaining, torch.minimum(trades.clamp_min(0.0), remaining))
    left = remaining - trades
    pairs = zip(trades.tolist(), left.tolist(), strict=True)
    return [{"trade": float(t), "remaining_after": float(r)} for t, r in pairs]


def example(sim: ExecutionSim) -> dict[str, Any]:
    """An order two steps in (or at arrival for a one-step horizon), with a fill at nominal impact."""
    s = sim.scenario
    if s.horizon_steps < 2:
        return {"steps_done": 0, "remaining_shares": s.shares}
    filled = s.shares / s.horizon_steps
    mid = s.initial_price
    fill_price = mid - s.sign * (s.epsilon + s.eta * filled)
    return {"steps_done": 1, "remaining_shares": s.shares - filled, "price": mid, "previous_price": mid,
            "last_fill": {"shares": filled, "price": max(fill_price, 1e-6), "mid_before": mid}}


def describe(sim: ExecutionSim) -> dict[str, Any]:
    s = sim.scenario
    return {"side": s.side, "shares": s.shares, "horizon_steps": s.horizon_steps,
            "initial_price": s.initial_price}


SERVING = ServingSpec(
    state_model=LiveState,
    action_model=NextTrade,
    prepare=lambda scenario, device: ExecutionSim(scenario, device),
    check=lambda sim, states: check_states(sim.scenario, states),
    observe=observe,
    respond=respond,
    example=example,
    describe=describe,
)
