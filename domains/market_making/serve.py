"""Serving quoting policies: the market maker's state now -> bid and ask prices and sizes.

One request state (:class:`QuoteState`) is what a quoting engine knows when it refreshes its
quotes: the mid, its inventory, the time left to the end of the session and, optionally, the
previous mid and the order-book features a replay-trained policy reads (order-flow imbalance and
the market's own spread). :func:`observe` turns states into the shared ``[B, 6]`` observation of
:mod:`decisionlab.domains.market_making.quotes` (the same for the model and the replay setting, so
a policy trained on one can be served for the other); :func:`respond` turns depths ``[B, 2]`` into
prices, and a side at the inventory bound (or quoted beyond the policy's widest depth, which means
"do not quote") gets size 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from decisionlab.core import Policy, ServingSpec, StateError, WholeNumber, problem
from decisionlab.domains.market_making.params import QuotingScenario
from decisionlab.domains.market_making.quotes import OBSERVATION_FIELDS, depth_bounds, observation

Price = Annotated[float, Field(gt=0, le=1e9, allow_inf_nan=False, strict=True)]
MAX_PROBLEMS = 10
MAX_INVENTORY_MAGNITUDE = 1_000_000


class QuoteState(BaseModel):
    """A market maker's state at the moment it refreshes its quotes."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"mid": 100.3, "inventory": 2, "time_left": 0.6, "previous_mid": 100.25}]},
    )

    mid: Price = Field(description="current mid price")
    inventory: WholeNumber = Field(ge=-MAX_INVENTORY_MAGNITUDE, le=MAX_INVENTORY_MAGNITUDE,
                                   description="units held (negative: short)")
    time_left: float = Field(ge=0, le=1e6, allow_inf_nan=False, strict=True,
                             description="time to the end of the session, in the scenario's time units "
                             "(horizon at the start, 0 at the end)")
    previous_mid: Price | None = Field(None, description="mid price one step (dt) ago (default: mid)")
    start_mid: Price | None = Field(None, description="mid price at the start of the session (default: the "
                                    "scenario's initial_price)")
    flow_imbalance: float = Field(0.0, ge=-1, le=1, allow_inf_nan=False, strict=True,
                                  description="order-book imbalance (bid size − ask size)/(bid size + ask size) "
                                  "at the best levels, in [−1, 1]")
    market_spread: float = Field(0.0, ge=0, le=1e6, allow_inf_nan=False, strict=True,
                                 description="best ask − best bid of the market (price units; 0 if unknown)")


class Quote(BaseModel):
    """Quotes for one state: prices and sizes per side (size 0: that side does not quote)."""

    bid_price: float = Field(description="bid price (mid − bid depth)")
    ask_price: float = Field(description="ask price (mid + ask depth)")
    bid_size: int = Field(description="units bid for (0: no bid, e.g. at the inventory bound)")
    ask_size: int = Field(description="units offered (0: no ask)")
    bid_depth: float = Field(description="mid − bid price")
    ask_depth: float = Field(description="ask price − mid")


@dataclass(frozen=True)
class QuotingContext:
    """What the converters need about a scenario: the scenario itself and the device."""

    scenario: QuotingScenario
    device: torch.device


def prepare(scenario: QuotingScenario, device: torch.device) -> QuotingContext:
    """The context of a scenario (a replay's ``data_path`` other than the sample never gets here: the core
    refuses API parameters that name the server's files)."""
    return QuotingContext(scenario, device)


def check_states(context: QuotingContext, states: Sequence[QuoteState]) -> None:
    """A ``StateError`` naming ``[i].<field>`` for states the scenario cannot produce."""
    s = context.scenario
    problems = []
    for i, state in enumerate(states):
        if state.time_left > s.horizon * (1 + 1e-9):
            problems.append(problem((i, "time_left"), "out_of_horizon",
                                    f"cannot exceed the scenario's horizon={s.horizon:g}", state.time_left))
        if s.max_inventory is not None and abs(state.inventory) > s.max_inventory:
            problems.append(problem((i, "inventory"), "beyond_bound",
                                    f"|inventory| cannot exceed max_inventory={s.max_inventory}", state.inventory))
    if problems:
        raise StateError(problems[:MAX_PROBLEMS])


def observe(context: QuotingContext, states: Sequence[QuoteState], policy: Policy) -> torch.Tensor:
    """``[B, 6]`` observations in the layout of :data:`~decisionlab.domains.market_making.quotes.OBSERVATION_FIELDS`."""
    s = context.scenario

    def column(values: list[float]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32, device=context.device)

    return observation(
        column([st.time_left for st in states]),
        column([float(st.inventory) for st in states]),
        column([st.mid - (st.start_mid if st.start_mid is not None else s.initial_price) for st in states]),
        column([st.mid - (st.previous_mid if st.previous_mid is not None else st.mid) for st in states]),
        column([st.flow_imbalance for st in states]),
        column([st.market_spread for st in states]),
    )


def respond(context: QuotingContext, actions: torch.Tensor, states: Sequence[QuoteState]) -> list[dict[str, Any]]:
    """Depths ``[B, 2]`` → prices and sizes; no bid at ``+max_inventory``, no ask at ``−max_inventory``.
    Quotes that make no sense (a price at or below zero, a bid at or above the ask) are refused with a
    ``StateError`` naming what drove them: the inventory (or, flat, the mid)."""
    s = context.scenario
    depths = actions.reshape(len(states), 2).double().cpu().tolist()
    widest = depth_bounds(s)[1] * (1 - 1e-6)  # the widest depth a policy posts means 'no quote'
    absurd = [problem((i, "inventory" if state.inventory else "mid"), "absurd_quotes",
                      f"the quotes for this state would be bid {state.mid - bid:.6g} / ask {state.mid + ask:.6g} "
                      f"(mid {state.mid:g}, inventory {state.inventory}): prices must be positive with the bid below "
                      "the ask; this state is outside what the policy quotes for", state.inventory or state.mid)
              for i, (state, (bid, ask)) in enumerate(zip(states, depths, strict=True))
              if state.mid - bid <= 0 or state.mid + ask <= 0 or bid + ask <= 0]
    if absurd:
        raise StateError(absurd[:MAX_PROBLEMS])
    out = []
    for state, (bid_depth, ask_depth) in zip(states, depths, strict=True):
        at_top = s.max_inventory is not None and state.inventory >= s.max_inventory
        at_bottom = s.max_inventory is not None and state.inventory <= -s.max_inventory
        out.append({
            "bid_price": state.mid - bid_depth, "ask_price": state.mid + ask_depth,
            "bid_size": 0 if at_top or bid_depth >= widest else 1,
            "ask_size": 0 if at_bottom or ask_depth >= widest else 1,
            "bid_depth": bid_depth, "ask_depth": ask_depth,
        })
    return out


def example(context: QuotingContext) -> dict[str, Any]:
    """Midway through the session, long one unit, the mid a little above its start."""
    s = context.scenario
    return {"mid": s.initial_price * 1.001, "inventory": 1 if s.max_inventory is None or s.max_inventory >= 1 else 0,
            "time_left": s.horizon / 2, "previous_mid": s.initial_price}


def describe(context: QuotingContext) -> dict[str, Any]:
    s = context.scenario
    return {"horizon": s.horizon, "dt": s.dt, "steps": s.steps, "max_inventory": s.max_inventory,
            "initial_price": s.initial_price, "observation": list(OBSERVATION_FIELDS)}


SERVING = ServingSpec(
    state_model=QuoteState,
    action_model=Quote,
    prepare=prepare,
    check=check_states,
    observe=observe,
    respond=respond,
    example=example,
    describe=describe,
)
