"""Serving dispatch: one dispatch window (free drivers, open orders, the time) -> assignments and
repositioning targets.

A request state (:class:`DispatchWindow`) is what a platform knows at the end of a window: its
free drivers (cell, how long idle) and its open orders (origin and destination cells, fare, how
long waiting). Drivers and orders carry the client's own ids, which come back in the response.
:func:`observe` pads the windows of a request into one
:class:`~decisionlab.domains.ride_hailing.sim.CityObservation` (missing fares are priced by the
scenario's tariff), so the simulator's policies answer unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from decisionlab.core import EntityId, Policy, PolicyOutputError, ServingSpec, StateError, WholeNumber, entries, problem
from decisionlab.domains.ride_hailing.city import City, city_of, fare
from decisionlab.domains.ride_hailing.scenario import SECONDS_PER_DAY, CityScenario
from decisionlab.domains.ride_hailing.sim import DISPATCH, REPOSITION, CityAction, CityObservation

MAX_DRIVERS, MAX_ORDERS = 20_000, 10_000  # per window
MAX_REQUEST_DRIVERS, MAX_REQUEST_ORDERS = 40_000, 20_000  # per request, over its windows
MAX_WINDOWS = 64
MAX_PROBLEMS = 10
Seconds = Annotated[float, Field(ge=0, le=1e7, allow_inf_nan=False, strict=True)]


class FreeDriver(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: EntityId = Field(description="the client's driver id (unique in the window)")
    cell: WholeNumber = Field(ge=0, le=1_000_000, description="cell the driver is in (row · grid_size + col)")
    idle_seconds: Seconds = Field(0.0, description="seconds since the driver's last trip ended")


class OpenOrder(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: EntityId = Field(description="the client's order id (unique in the window)")
    origin_cell: WholeNumber = Field(ge=0, le=1_000_000, description="pick-up cell")
    dest_cell: WholeNumber = Field(ge=0, le=1_000_000, description="drop-off cell")
    fare: float | None = Field(None, ge=0, le=1e6, allow_inf_nan=False, strict=True,
                               description="fare (currency; null: the scenario's tariff for the trip)")
    wait_seconds: Seconds = Field(0.0, description="seconds the order has waited")


class DispatchWindow(BaseModel):
    """One dispatch window: the free drivers and open orders at its end."""

    model_config = ConfigDict(
        extra="forbid", strict=True,
        json_schema_extra={"examples": [{
            "time_of_day_s": 30600.0,
            "drivers": [{"id": 7, "cell": 27, "idle_seconds": 40.0}, {"id": 9, "cell": 35, "idle_seconds": 400.0}],
            "orders": [{"id": 1001, "origin_cell": 28, "dest_cell": 3, "wait_seconds": 2.0}],
        }]},
    )

    time_of_day_s: float = Field(ge=0, lt=SECONDS_PER_DAY, allow_inf_nan=False, strict=True,
                                 description="seconds since midnight")
    drivers: list[FreeDriver] = Field(default_factory=list, max_length=MAX_DRIVERS,
                                      description=f"free drivers (at most {MAX_DRIVERS:,})")
    orders: list[OpenOrder] = Field(default_factory=list, max_length=MAX_ORDERS,
                                    description=f"open orders (at most {MAX_ORDERS:,}; none for repositioning only)")


class Assignment(BaseModel):
    order_id: int = Field(description="the order")
    driver_id: int = Field(description="the driver sent to it")


class Reposition(BaseModel):
    driver_id: int = Field(description="an idle driver")
    cell: int = Field(description="the cell it should drive to")


class DispatchDecision(BaseModel):
    """What to do in one window: orders matched to drivers, idle drivers sent elsewhere."""

    assignments: list[Assignment] = Field(description="order → driver (unlisted orders wait)")
    repositions: list[Reposition] = Field(description="driver → target cell (unlisted drivers stay)")


@dataclass(frozen=True)
class DispatchContext:
    scenario: CityScenario
    city: City
    device: torch.device


def prepare(scenario: CityScenario, device: torch.device) -> DispatchContext:
    return DispatchContext(scenario, city_of(scenario, str(device)), device)


def check_windows(context: DispatchContext, states: Sequence[DispatchWindow]) -> None:
    """Cells on the grid, unique ids, bounded work per request."""
    cells = context.city.grid.n_cells
    problems = []
    for i, window in enumerate(states):
        for kind, items, fields in (("drivers", window.drivers, ("cell",)),
                                    ("orders", window.orders, ("origin_cell", "dest_cell"))):
            seen: set[int] = set()
            for j, item in enumerate(items):
                for name in fields:
                    value = getattr(item, name)
                    if value >= cells:
                        problems.append(problem((i, kind, j, name), "off_grid",
                                                f"the grid has cells 0..{cells - 1}", value))
                if item.id in seen:
                    problems.append(problem((i, kind, j, "id"), "duplicate", "ids must be unique in a window", item.id))
                seen.add(item.id)
    drivers, orders = sum(len(w.drivers) for w in states), sum(len(w.orders) for w in states)
    if drivers > MAX_REQUEST_DRIVERS or orders > MAX_REQUEST_ORDERS:
        problems.append(problem((), "too_large", f"at most {MAX_REQUEST_DRIVERS:,} drivers and "
                                f"{MAX_REQUEST_ORDERS:,} orders per request (got {drivers:,} and {orders:,})"))
    if problems:
        raise StateError(problems[:MAX_PROBLEMS])


def padded(rows: list[list[float]], width: int, fill: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    out = torch.full((len(rows), width), fill, dtype=dtype)
    for i, row in enumerate(rows):
        if row:
            out[i, :len(row)] = torch.tensor(row, dtype=dtype)
    return out.to(device)


def observe(context: DispatchContext, states: Sequence[DispatchWindow], policy: Policy) -> CityObservation:
    """The windows, padded to the most drivers ``N`` and orders ``Q`` of any of them."""
    s, city, dev = context.scenario, context.city, context.device
    n = max(1, max(len(w.drivers) for w in states))
    q = max(1, max(len(w.orders) for w in states))
    time_s = torch.tensor([w.time_of_day_s for w in states], dtype=torch.float64, device=dev)
    origin = padded([[o.origin_cell for o in w.orders] for w in states], q, 0, torch.long, dev)
    dest = padded([[o.dest_cell for o in w.orders] for w in states], q, 0, torch.long, dev)
    valid = padded([[1] * len(w.orders) for w in states], q, 0, torch.bool, dev)
    trip_km = city.grid.road_km(origin, dest)
    trip_s = (trip_km * 3600.0 / city.speed_at(time_s)[:, None]).float()
    tariff = fare(trip_km, trip_s, s)
    given = padded([[o.fare if o.fare is not None else -1.0 for o in w.orders] for w in states], q, -1.0,
                   torch.float32, dev)
    return CityObservation(
        time_s=time_s,
        driver_cell=padded([[d.cell for d in w.drivers] for w in states], n, 0, torch.long, dev),
        driver_free=padded([[1] * len(w.drivers) for w in states], n, 0, torch.bool, dev),
        driver_idle_s=padded([[d.idle_seconds for d in w.drivers] for w in states], n, 0.0, torch.float32, dev),
        order_valid=valid, order_origin=origin, order_dest=dest,
        order_fare=torch.where(given >= 0, given, tariff).float(), order_trip_s=trip_s,
        order_wait_s=padded([[o.wait_seconds for o in w.orders] for w in states], q, 0.0, torch.float32, dev),
    )


def respond(context: DispatchContext, actions: CityAction, states: Sequence[DispatchWindow]) -> list[dict[str, Any]]:
    """The clients' own ids of the drivers the policy chose (indices into each window's lists); an answer
    that breaks the dispatch invariants (a driver given two orders, a target cell off the grid) is a
    server fault, never sent."""
    assign, target = actions[DISPATCH].cpu().tolist(), actions[REPOSITION].cpu().tolist()
    cells = context.scenario.grid_size ** 2
    out = []
    for i, window in enumerate(states):
        chosen = [d for d in assign[i][: len(window.orders)] if 0 <= d < len(window.drivers)]
        if len(chosen) != len(set(chosen)):
            raise PolicyOutputError(f"the dispatch policy gave one driver several orders in states[{i}]")
        if any(c >= cells for c in target[i][: len(window.drivers)]):
            raise PolicyOutputError(f"the repositioning policy chose a cell off the {cells}-cell grid in states[{i}]")
        pairs = [{"order_id": order.id, "driver_id": window.drivers[d].id}
                 for order, d in zip(window.orders, assign[i], strict=False) if 0 <= d < len(window.drivers)]
        moves = [{"driver_id": driver.id, "cell": c}
                 for driver, c in zip(window.drivers, target[i], strict=False) if c >= 0 and c != driver.cell]
        out.append({"assignments": pairs, "repositions": moves})
    return out


def example(context: DispatchContext) -> dict[str, Any]:
    """Three free drivers and two orders near the centre of the grid, at 8:30."""
    size = context.scenario.grid_size
    centre = (size // 2) * size + size // 2
    return {
        "time_of_day_s": 30600.0,
        "drivers": [{"id": 1, "cell": centre, "idle_seconds": 30.0},
                    {"id": 2, "cell": centre - 1, "idle_seconds": 360.0},
                    {"id": 3, "cell": max(0, centre - size), "idle_seconds": 600.0}],
        "orders": [{"id": 11, "origin_cell": centre, "dest_cell": 0, "wait_seconds": 2.0},
                   {"id": 12, "origin_cell": centre - 1, "dest_cell": size * size - 1, "fare": 9.5}],
    }


def describe(context: DispatchContext) -> dict[str, Any]:
    s = context.scenario
    return {"grid_size": s.grid_size, "cells": s.grid_size ** 2, "cell_km": s.cell_km,
            "max_pickup_km": s.max_pickup_km, "reposition_max_km": s.reposition_max_km,
            "cell_index": "row · grid_size + col, odd rows shifted half a cell east (pointy-top hexagons)"}


def cost(states: Sequence[Any]) -> float:
    """Units of work (about 10 µs each) of a request's windows: measured on one core, a window costs about
    1.5 ms, plus its drivers and orders, plus about 50 µs per thousand driver-order pairs (the candidate
    search and the matching): 1,000 × 500 ≈ 15-30 ms, 20,000 × 10,000 ≈ 7-11 s."""
    total = 0.0
    for window in states:
        drivers, orders = entries(window, "drivers"), entries(window, "orders")
        total += 150.0 + drivers + orders + 5.0 * drivers * orders / 1000.0
    return total


SERVING = ServingSpec(
    state_model=DispatchWindow, action_model=DispatchDecision, prepare=prepare, check=check_windows,
    observe=observe, respond=respond, example=example, describe=describe, max_batch=MAX_WINDOWS, cost=cost,
)
