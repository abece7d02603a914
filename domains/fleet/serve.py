"""Serving the fleet: the vertiports, the aircraft and the demand now -> a destination for every free aircraft.

One state is the operator's snapshot: the hour, every aircraft (where it is or is flying to, its
battery, how long until it is free, charging, down), the passengers waiting per origin–destination
pair, the routes closed now and, optionally, the demand forecast for the next slots (the scenario's
expected pattern otherwise). Several aircraft may be free at once: they decide one after another in
the order given (``ServingSpec.decide``), each seeing the pads, seats and passengers the previous
choices took, exactly as in the simulator. A choice that is not legal becomes a stay, as in the
simulator; the answer says which.

Aircraft carry the client's own ids (int64 end to end). Client mistakes are 422s naming the field: an
unknown vertiport, a battery below zero or above capacity, more aircraft on a vertiport's pads than it
has, more charging than its chargers, a fleet of another size than the scenario's, no free aircraft.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from decisionlab.core import EntityId, Policy, ServingSpec, StateError, WholeNumber, decide, problem
from decisionlab.domains.fleet.network import Days
from decisionlab.domains.fleet.sim import FORECAST_SLOTS, FleetSim, FleetState

MAX_AIRCRAFT = 1024
MAX_PAIRS = 64 * 63
FREE_TOLERANCE_H = 1e-6


class Aircraft(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: EntityId = Field(description="the client's aircraft id")
    vertiport: WholeNumber = Field(ge=0, le=63, description="where it is parked, or where it is flying to")
    battery_kwh: float = Field(ge=0, le=2000, allow_inf_nan=False, description="energy in the battery (kWh)")
    free_in_h: float = Field(0.0, ge=0, le=24, allow_inf_nan=False,
                             description="hours until it is free (0: free now, it gets a destination)")
    charging: bool = Field(False, description="on a charging pad until it is free")
    down_for_h: float = Field(0.0, ge=0, le=24, allow_inf_nan=False,
                              description="hours until it is repaired (0: it is up)")


class Waiting(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    origin: WholeNumber = Field(ge=0, le=63, description="vertiport the passengers wait at")
    destination: WholeNumber = Field(ge=0, le=63, description="vertiport they want to fly to")
    passengers: float = Field(ge=0, le=10_000, allow_inf_nan=False, description="how many wait")


class FleetSnapshot(BaseModel):
    """The fleet and the demand at one moment of the day."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{
        "time_h": 8.5,
        "aircraft": [{"id": 101, "vertiport": 0, "battery_kwh": 110.0}, {"id": 102, "vertiport": 1,
                                                                         "battery_kwh": 80.0, "free_in_h": 0.3}],
        "waiting": [{"origin": 0, "destination": 1, "passengers": 3.0}], "closed_routes": []}]})

    time_h: float = Field(ge=0, lt=24, allow_inf_nan=False, description="hour of the day (8.5 = 08:30)")
    aircraft: list[Aircraft] = Field(min_length=1, max_length=MAX_AIRCRAFT, description="every aircraft of the fleet")
    waiting: list[Waiting] = Field(default_factory=list, max_length=MAX_PAIRS,
                                   description="passengers waiting per origin-destination pair (others: none)")
    closed_routes: list[Annotated[list[WholeNumber], Field(min_length=2, max_length=2)]] = Field(
        default_factory=list, max_length=MAX_PAIRS, description="routes closed now [from, to] (both directions)")
    forecast: list[list[list[float]]] | None = Field(
        None, description=f"expected passenger arrivals per pair for the next {FORECAST_SLOTS} slots "
        "[slot][origin][destination] (default: the scenario's demand pattern)")


class Assignment(BaseModel):
    aircraft_id: int = Field(description="a free aircraft")
    destination: int | None = Field(description="the vertiport it flies to (null: it stays, charging if a pad is free)")
    legal: bool = Field(description="false when the policy chose a flight the rules forbid (read as a stay)")


class Assignments(BaseModel):
    assignments: list[Assignment] = Field(description="one per free aircraft, in the order they decided")


def check(sim: FleetSim, states: Sequence[FleetSnapshot]) -> None:
    s = sim.scenario
    v = s.n_vertiports
    problems = []
    for i, state in enumerate(states):
        if not s.day_start_h <= state.time_h < s.day_end_h:
            problems.append(problem((i, "time_h"), "outside_day", f"the operating day is {s.day_start_h:g}–"
                                    f"{s.day_end_h:g} h", state.time_h))
        if len(state.aircraft) != s.n_aircraft:
            problems.append(problem((i, "aircraft"), "length", f"the fleet has n_aircraft={s.n_aircraft}"))
        ids: set[int] = set()
        parked, charging = [0] * v, [0] * v
        for j, plane in enumerate(state.aircraft):
            if plane.vertiport >= v:
                problems.append(problem((i, "aircraft", j, "vertiport"), "unknown_vertiport",
                                        f"vertiports are 0..{v - 1}", plane.vertiport))
                continue
            if plane.battery_kwh > s.battery_kwh:
                problems.append(problem((i, "aircraft", j, "battery_kwh"), "over_capacity",
                                        f"the battery holds battery_kwh={s.battery_kwh:g}", plane.battery_kwh))
            if plane.id in ids:
                problems.append(problem((i, "aircraft", j, "id"), "duplicate", "ids are unique", plane.id))
            ids.add(plane.id)
            parked[plane.vertiport] += 1
            charging[plane.vertiport] += plane.charging and plane.free_in_h > 0
        for port in range(v):
            if parked[port] > s.parking_pads:
                problems.append(problem((i, "aircraft"), "over_capacity", f"{parked[port]} aircraft at vertiport "
                                        f"{port}: it has parking_pads={s.parking_pads}"))
            if charging[port] > s.charging_pads:
                problems.append(problem((i, "aircraft"), "over_capacity", f"{charging[port]} aircraft charging at "
                                        f"vertiport {port}: it has charging_pads={s.charging_pads}"))
        if not any(plane.free_in_h <= FREE_TOLERANCE_H for plane in state.aircraft):
            problems.append(problem((i, "aircraft"), "none_free", "no aircraft is free (free_in_h = 0): nothing to "
                                    "decide"))
        for j, pair in enumerate(state.waiting):
            for end in ("origin", "destination"):
                if getattr(pair, end) >= v:
                    problems.append(problem((i, "waiting", j, end), "unknown_vertiport", f"vertiports are 0..{v - 1}",
                                            getattr(pair, end)))
            if pair.origin == pair.destination:
                problems.append(problem((i, "waiting", j), "same_vertiport", "origin and destination differ"))
        for j, (a, b) in enumerate(state.closed_routes):
            if not (0 <= a < v and 0 <= b < v) or a == b:
                problems.append(problem((i, "closed_routes", j), "unknown_route",
                                        f"a route is two different vertiports of 0..{v - 1}", [a, b]))
        if state.forecast is not None:
            shape_ok = len(state.forecast) == FORECAST_SLOTS and all(
                len(rows) == v and all(len(row) == v for row in rows) for rows in state.forecast)
            if not shape_ok:
                problems.append(problem((i, "forecast"), "shape", f"[{FORECAST_SLOTS}][{v}][{v}] expected arrivals"))
            elif not all(math.isfinite(x) and 0 <= x <= 1e4 for rows in state.forecast for row in rows for x in row):
                problems.append(problem((i, "forecast"), "range", "finite, 0 to 10,000 passengers"))
    if problems:
        raise StateError(problems)


def to_state(sim: FleetSim, states: Sequence[FleetSnapshot]) -> tuple[FleetState, torch.Tensor | None]:
    """The simulator's state of each snapshot (a day that brings no new passengers: every decision is
    taken at the snapshot's time) and the client's forecasts ``[B, 4, V, V]`` (None: the pattern)."""
    s, dev = sim.scenario, sim.device
    b, v, a = len(states), s.n_vertiports, s.n_aircraft
    time = torch.tensor([state.time_h for state in states], dtype=torch.float32, device=dev)

    def per_plane(field: str, dtype: torch.dtype) -> torch.Tensor:
        return torch.tensor([[getattr(p, field) for p in state.aircraft] for state in states], dtype=dtype, device=dev)

    free_in = per_plane("free_in_h", torch.float32)
    free_in = torch.where(free_in <= FREE_TOLERANCE_H, 0.0, free_in)
    down_for = per_plane("down_for_h", torch.float32)
    waiting = torch.zeros(b, v, v, device=dev)
    closed = torch.zeros(b, s.slots, v, v, dtype=torch.bool, device=dev)
    for i, state in enumerate(states):
        for pair in state.waiting:
            waiting[i, pair.origin, pair.destination] += pair.passengers
        for x, y in state.closed_routes:
            closed[i, :, x, y] = closed[i, :, y, x] = True
    down_start = torch.where(down_for > 0, time[:, None], torch.inf)
    day = Days(torch.zeros(b, s.slots, v, v, device=dev), closed, torch.zeros(b, s.slots, a, device=dev),
               down_start, down_start + down_for)
    free_at = time[:, None] + free_in
    actor = free_at.argmin(1)  # ties: the first listed
    state = FleetState(time, actor, per_plane("vertiport", torch.long), free_at,
                       per_plane("battery_kwh", torch.float32), per_plane("charging", torch.bool), waiting, day)
    forecasts = None
    if any(state.forecast is not None for state in states):
        pattern = sim.expected_demand[(sim.slot_of(time)[:, None] + torch.arange(FORECAST_SLOTS, device=dev))
                                      .clamp_max(s.slots - 1)]
        given = [torch.tensor(st.forecast, device=dev) if st.forecast is not None else pattern[i]
                 for i, st in enumerate(states)]
        forecasts = torch.stack(given)
    return state, forecasts


def observe_with(sim: FleetSim, state: FleetState, forecasts: torch.Tensor | None) -> dict[str, torch.Tensor]:
    obs = sim.observe(state)
    if forecasts is not None:
        obs["forecast"] = forecasts / sim.scenario.seats
    return obs


def observe(sim: FleetSim, states: Sequence[FleetSnapshot], policy: Policy) -> dict[str, torch.Tensor]:
    """The first free aircraft's observation (what a single decision reads)."""
    state, forecasts = to_state(sim, states)
    return observe_with(sim, state, forecasts)


def decide_in_turn(sim: FleetSim, states: Sequence[FleetSnapshot], policy: Policy) -> torch.Tensor:
    """``[B, A]`` choices (``-1``: not free now; ``V``: stay; ``V + 1 + w``: chose ``w`` illegally, stays):
    the free aircraft decide one after another, each after the previous one's choice is applied."""
    s = sim.scenario
    state, forecasts = to_state(sim, states)
    b = len(states)
    rows = torch.arange(b, device=sim.device)
    request_time = state.time_h.clone()
    choices = torch.full((b, s.n_aircraft), -1, dtype=torch.long, device=sim.device)
    no_exogenous = torch.zeros(b, 0, device=sim.device)
    for _ in range(s.n_aircraft):
        actor = state.actor
        deciding = (state.free_at_h[rows, actor] <= request_time + FREE_TOLERANCE_H) & (choices[rows, actor] < 0)
        if not bool(deciding.any()):
            break
        obs = observe_with(sim, state, forecasts)
        action = decide(policy, obs, b).reshape(b).long().clamp(0, s.n_vertiports)
        legal = obs["legal"].gather(1, action[:, None])[:, 0]
        coded = torch.where(legal, action, s.n_vertiports + 1 + action)
        choices[rows, actor] = torch.where(deciding, coded, choices[rows, actor])
        state = sim.step(state, torch.where(deciding, action, s.n_vertiports), no_exogenous).state
    return choices


def respond(sim: FleetSim, actions: torch.Tensor, states: Sequence[FleetSnapshot]) -> list[dict[str, Any]]:
    v = sim.scenario.n_vertiports
    out = []
    for state, row in zip(states, actions.cpu().tolist(), strict=True):
        assignments = [{"aircraft_id": plane.id, "destination": code if code < v else None, "legal": code <= v}
                       for plane, code in zip(state.aircraft, row, strict=True) if code >= 0]
        out.append({"assignments": assignments})
    return out


def example(sim: FleetSim) -> dict[str, Any]:
    s = sim.scenario
    v = s.n_vertiports
    aircraft = [{"id": 100 + k, "vertiport": k % v, "battery_kwh": s.battery_kwh,
                 "free_in_h": 0.0 if k < max(1, s.n_aircraft // 4) else 0.25} for k in range(s.n_aircraft)]
    waiting = [{"origin": k % v, "destination": (k + 1) % v, "passengers": float(1 + k % s.seats)} for k in range(v)]
    return {"time_h": s.day_start_h + 2.0 if s.day_start_h + 2.0 < s.day_end_h else s.day_start_h,
            "aircraft": aircraft, "waiting": waiting, "closed_routes": []}


def cost(states: Sequence[Any]) -> float:
    """Work units: each free aircraft is one decision of the policy over the whole fleet."""
    total = 0.0
    for state in states:
        planes = state["aircraft"] if isinstance(state, dict) else [p.model_dump() for p in state.aircraft]
        free = sum(1 for p in planes if not p.get("free_in_h"))
        total += max(1, free) * (4.0 + len(planes) / 8.0)
    return total


SERVING = ServingSpec(state_model=FleetSnapshot, action_model=Assignments, prepare=lambda sc, d: FleetSim(sc, d),
                      check=check, observe=observe, decide=decide_in_turn, respond=respond, example=example,
                      describe=lambda sim: {"vertiports": sim.scenario.n_vertiports,
                                            "aircraft": sim.scenario.n_aircraft,
                                            "xy_miles": sim.layout.xy_miles.round(3).tolist(),
                                            "distance_miles": sim.layout.distance_miles.round(3).tolist()},
                      cost=cost)
