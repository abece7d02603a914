"""Batched, event-driven eVTOL fleet simulator (gymnax-style pure ``step``), ``B`` days at once.

A decision epoch is the moment an aircraft is free: of each day's fleet, the aircraft with the earliest
free time acts (ties: the lowest index), so every day in the batch moves on its own clock and
``elapsed`` (hours) is the time since its previous decision. The action is one choice out of ``V + 1``:
fly to vertiport ``w < V``, or ``V``: stay (wait ``wait_h``, charging on a free charging pad; an aircraft
that is down stays until it is repaired). Masks (``action_mask``) allow a flight only to another
vertiport whose parking pads are not all taken (aircraft on the ground there or inbound), within the
battery's range keeping the reserve, on a route open in the current slot, by an aircraft that is up;
staying is always legal. An illegal choice is read as a stay (and counted in ``info["illegal"]``).

A flight leaves after the take-off delay drawn for that slot and aircraft, takes ``takeoff_h + miles /
cruise_mph + landing_h``, boards up to ``seats`` of the passengers waiting for that pair and pays
``fare_per_mile`` × miles each; it costs the energy it uses (``kwh_per_mile`` × miles at
``energy_price``) and ``operating_cost_per_hour`` of flight. Passengers arrive per slot (the sampled
day) and leave at rate ``1 / patience_h`` while they wait (a fluid approximation: waiting counts are
real numbers; an aircraft boards whole passengers). The reward of a decision is its profit in
dollars; the day ends (``terminated``) when the next decision would be at or after ``day_end_h``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from decisionlab.core import Box, Composite, Discrete, Spaces, StepResult
from decisionlab.domains.fleet.network import Days, layout, sample_days
from decisionlab.domains.fleet.scenario import FleetScenario

FORECAST_SLOTS = 4  # slots of expected demand the observation shows ahead
VERTIPORT_FEATURES, AIRCRAFT_FEATURES, EDGE_FEATURES, GLOBAL_FEATURES = 8, 7, 3, 4
PROFIT_SCALE = 100.0  # dollars: immediate profits in the features are in hundreds


def row_at(x: torch.Tensor, *index: torch.Tensor) -> torch.Tensor:
    """``x[rows, i, j, ...]`` for ``x [B, D1, .., Dk, *rest]`` and ``k`` indices ``[B]``: ``[B, *rest]``.
    One flat ``gather`` (advanced indexing with several index tensors is several times slower on CPU)."""
    b, k = x.shape[0], len(index)
    flat = index[0]
    for size, i in zip(x.shape[2:1 + k], index[1:], strict=True):
        flat = flat * size + i
    rest = x.shape[1 + k:]
    if not rest:
        return x.reshape(b, -1).gather(1, flat[:, None])[:, 0]
    # whole rows of ``rest``: an index_select of contiguous rows (a gather over them is ~6× slower)
    per_row = math.prod(x.shape[1:1 + k])
    rows = torch.arange(b, device=x.device) * per_row + flat
    return x.reshape(b * per_row, *rest).index_select(0, rows)


def table_at(table: torch.Tensor, *index: torch.Tensor) -> torch.Tensor:
    """``table[i, j, ...]`` for a table ``[D1, .., Dk, *rest]`` without a batch axis and ``k`` equal-shaped
    indices: one ``index_select`` on the flattened table."""
    k = len(index)
    flat = index[0]
    for size, i in zip(table.shape[1:k], index[1:], strict=True):
        flat = flat * size + i
    rest = table.shape[k:]
    picked = table.reshape(-1, *rest).index_select(0, flat.reshape(-1))
    return picked.reshape(*flat.shape, *rest)


def row_put(x: torch.Tensor, index: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """A copy of ``x [B, D]`` with ``x[rows, index] = value`` (``index``, ``value [B]``)."""
    return x.scatter(1, index[:, None], value[:, None].to(x.dtype))


@dataclass(frozen=True)
class FeatureLayout:
    """Where each part of :meth:`FleetSim.flat_observation` sits for ``V`` vertiports and ``A`` aircraft:
    vertiports ``[V, 8]``, aircraft ``[A, 7]``, aircraft locations ``[A]`` (indices as floats), forecast
    ``[4, V, V]`` (seats of demand per slot ahead), edges ``[V, V, 3]`` (waiting seats, distance / map side,
    closed now), legal ``[V + 1]``, the actor's immediate profit per destination ``[V]`` (hundreds of
    dollars), and ``[clock, actor battery share, actor location, actor index]``."""

    n_vertiports: int
    n_aircraft: int

    def sizes(self) -> dict[str, tuple[int, ...]]:
        v, a = self.n_vertiports, self.n_aircraft
        return {"vertiports": (v, VERTIPORT_FEATURES), "aircraft": (a, AIRCRAFT_FEATURES), "aircraft_location": (a,),
                "forecast": (FORECAST_SLOTS, v, v), "edges": (v, v, EDGE_FEATURES), "legal": (v + 1,),
                "profit_here": (v,), "global": (GLOBAL_FEATURES,)}

    @property
    def width(self) -> int:
        return sum(math.prod(shape) for shape in self.sizes().values())

    def split(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """``features [B, F]`` -> ``{part: [B, *shape]}``."""
        parts, at = {}, 0
        for name, shape in self.sizes().items():
            size = math.prod(shape)
            parts[name] = features[:, at:at + size].reshape(-1, *shape)
            at += size
        return parts


@dataclass(frozen=True)
class FleetState:
    """``time_h [B]`` (hour of day), ``actor [B]`` (the aircraft deciding now); aircraft ``[B, A]``:
    ``location`` (vertiport, the destination while airborne), ``free_at_h``, ``battery_kwh``,
    ``charging`` (on a charging pad until ``free_at_h``); ``waiting [B, V, V]`` passengers per pair;
    ``day``: the sampled day (:class:`Days`)."""

    time_h: torch.Tensor
    actor: torch.Tensor
    location: torch.Tensor
    free_at_h: torch.Tensor
    battery_kwh: torch.Tensor
    charging: torch.Tensor
    waiting: torch.Tensor
    day: Days


class FleetSim:
    differentiable = False

    def __init__(self, scenario: FleetScenario, device: torch.device | str = "cpu") -> None:
        self.scenario, self.device = scenario, torch.device(device)
        net = layout(scenario)
        self.layout = net
        as_tensor = lambda x: torch.as_tensor(x, dtype=torch.float32, device=self.device)  # noqa: E731
        self.distance_miles = as_tensor(net.distance_miles)
        self.xy = as_tensor(net.xy_miles) / scenario.map_miles
        self.expected_demand = as_tensor(net.expected_demand)
        self.flight_h = scenario.takeoff_h + self.distance_miles / scenario.cruise_mph + scenario.landing_h
        self.energy_kwh = scenario.kwh_per_mile * self.distance_miles
        self.horizon = scenario.max_decisions
        self.fare_per_seat = scenario.fare_per_mile * self.distance_miles  # [V, V] dollars per passenger
        self.flight_cost = self.energy_kwh * scenario.energy_price + self.flight_h * scenario.operating_cost_per_hour
        self.feature_layout = FeatureLayout(scenario.n_vertiports, scenario.n_aircraft)
        v = scenario.n_vertiports
        self.spaces = Spaces(
            observation=Composite({
                "vertiports": Box((v, 8)),
                "aircraft": Box((scenario.n_aircraft, 7)),
                "forecast": Box((FORECAST_SLOTS, v, v), low=0.0),
                "legal": Box((v + 1,), dtype="bool"),
            }),
            action=Discrete(v + 1, masked=True, description=f"0..{v - 1}: fly to that vertiport; {v}: stay "
                            "(wait / charge)"),
            features=Box((self.feature_layout.width,)),
            time_unit="hours",
        )

    # -- day and state ---------------------------------------------------------------------------------
    def sample_exogenous(self, batch: int, periods: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Nothing per step: the whole day (demand, closures, delays, downtime) is drawn at ``reset``."""
        return torch.zeros(batch, periods, 0, device=self.device)

    def reset(self, batch: int, generator: torch.Generator | None = None) -> FleetState:
        s, dev = self.scenario, self.device
        day = sample_days(s, self.expected_demand, batch, generator, dev)
        a = torch.arange(s.n_aircraft, device=dev)
        location = (a % s.n_vertiports).expand(batch, -1).clone()  # at most ceil(A / V) <= parking_pads each
        time = torch.full((batch,), s.day_start_h, device=dev)
        waiting = day.arrivals[:, 0].clone()
        return FleetState(time, torch.zeros(batch, dtype=torch.long, device=dev), location,
                          time[:, None].expand(-1, s.n_aircraft).clone(),
                          torch.full((batch, s.n_aircraft), s.battery_kwh, device=dev),
                          torch.zeros(batch, s.n_aircraft, dtype=torch.bool, device=dev), waiting, day)

    def slot_of(self, time_h: torch.Tensor) -> torch.Tensor:
        s = self.scenario
        return ((time_h - s.day_start_h) / s.slot_h).floor().long().clamp(0, s.slots - 1)

    # -- what the actor sees and may do --------------------------------------------------------------------
    def legal(self, st: FleetState) -> torch.Tensor:
        """``[B, V + 1]`` bool: the actor's legal choices (module docstring)."""
        s = self.scenario
        here = row_at(st.location, st.actor)
        parked = self.count_at(st.location)  # [B, V] incl. inbound
        battery = row_at(st.battery_kwh, st.actor)
        reach = battery[:, None] - table_at(self.energy_kwh, here) >= s.reserve_kwh - 1e-4
        open_route = ~row_at(st.day.closed, self.slot_of(st.time_h), here)
        up = ~self.is_down(st, st.actor)
        other = torch.arange(s.n_vertiports, device=self.device)[None, :] != here[:, None]
        fly = other & (parked < s.parking_pads) & reach & open_route & up[:, None]
        return torch.cat([fly, torch.ones_like(fly[:, :1])], dim=1)

    def count_at(self, location: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, V]``: aircraft (or their ``weight``) per vertiport, from ``location [B, A]``."""
        weight = torch.ones_like(location) if weight is None else weight
        return torch.zeros(location.shape[0], self.scenario.n_vertiports, dtype=weight.dtype,
                           device=self.device).scatter_add_(1, location, weight)

    def is_down(self, st: FleetState, aircraft: torch.Tensor) -> torch.Tensor:
        start, end = row_at(st.day.down_start_h, aircraft), row_at(st.day.down_end_h, aircraft)
        return (start <= st.time_h) & (st.time_h < end)

    def observe(self, st: FleetState) -> dict[str, torch.Tensor]:
        s = self.scenario
        b = st.time_h.shape[0]
        here = row_at(st.location, st.actor)
        busy_charging = (st.charging & (st.free_at_h > st.time_h[:, None])).float()
        slot = self.slot_of(st.time_h)
        # stacked along dim 1 and transposed: stacking along the last dim is several times slower on CPU
        vertiports = torch.stack([
            self.count_at(st.location).float() / s.parking_pads,
            self.count_at(st.location, busy_charging) / max(s.charging_pads, 1),
            st.waiting.sum(2) / s.seats,
            st.waiting.sum(1) / s.seats,
            torch.nn.functional.one_hot(here, s.n_vertiports).float(),
            row_at(st.day.closed, slot, here).float(),
            *self.xy.T[:, None, :].expand(2, b, -1),
        ], dim=1).transpose(1, 2)
        aircraft = torch.stack([
            *table_at(self.xy, st.location).permute(2, 0, 1),
            st.battery_kwh / s.battery_kwh,
            (st.free_at_h - st.time_h[:, None]).clamp_min(0.0),
            busy_charging,
            torch.nn.functional.one_hot(st.actor, s.n_aircraft).float(),
            ((st.day.down_start_h <= st.time_h[:, None]) & (st.time_h[:, None] < st.day.down_end_h)).float(),
        ], dim=1).transpose(1, 2)
        ahead = (slot[:, None] + torch.arange(FORECAST_SLOTS, device=self.device)).clamp_max(s.slots - 1)
        forecast = table_at(self.expected_demand, ahead) / s.seats  # the pattern the operator knows, not the draw
        return {"vertiports": vertiports, "aircraft": aircraft, "aircraft_location": st.location,
                "forecast": forecast, "waiting": st.waiting, "closed": row_at(st.day.closed, slot),
                "legal": self.legal(st), "time_h": st.time_h, "actor": st.actor, "actor_location": here,
                "actor_battery_kwh": row_at(st.battery_kwh, st.actor), "waiting_from_here": row_at(st.waiting, here)}

    def flat_observation(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[B, F]``: the whole observation in one row (:class:`FeatureLayout` says where each part is), so
        the core trainers, which read a flat ``features`` space, can drive a graph network that unflattens it."""
        s = self.scenario
        b = obs["time_h"].shape[0]
        here = obs["actor_location"]
        clock = (obs["time_h"] - s.day_start_h) / (s.day_end_h - s.day_start_h)
        pair_waiting = obs["waiting"] / s.seats  # [B, V, V]
        seats_here = obs["waiting_from_here"].floor().clamp(max=float(s.seats))
        fares = seats_here * table_at(self.fare_per_seat, here)
        profit_here = (fares - table_at(self.flight_cost, here)) / PROFIT_SCALE
        edges = torch.stack([pair_waiting, (self.distance_miles / s.map_miles).expand(b, -1, -1),
                             obs["closed"].float()], dim=-1)
        return torch.cat([
            obs["vertiports"].flatten(1), obs["aircraft"].flatten(1), obs["aircraft_location"].float(),
            obs["forecast"].flatten(1), edges.flatten(1), obs["legal"].float(), profit_here,
            torch.stack([clock, obs["actor_battery_kwh"] / s.battery_kwh, here.float(),
                         obs["actor"].float()], dim=1),
        ], dim=1)

    def action_mask(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return obs["legal"]

    # -- dynamics ----------------------------------------------------------------------------------------
    def step(self, st: FleetState, action: torch.Tensor, exogenous: torch.Tensor) -> StepResult[FleetState]:
        s, dev = self.scenario, self.device
        b = st.time_h.shape[0]
        actor, t = st.actor, st.time_h
        here = row_at(st.location, actor)
        choice = action.reshape(b).long().clamp(0, s.n_vertiports)
        legal = self.legal(st).gather(1, choice[:, None])[:, 0]
        running = t < s.day_end_h  # an ended day stays as it is, whatever is asked of it
        go = legal & (choice < s.n_vertiports) & running
        dest = torch.where(go, choice, here)
        slot = self.slot_of(t)
        miles = torch.where(go, table_at(self.distance_miles, here, dest), 0.0)
        route_h = table_at(self.flight_h, here, dest)
        flight_h = torch.where(go, route_h + row_at(st.day.delay_h, slot, actor), 0.0)
        pair_waiting = row_at(st.waiting, here, dest)
        boarded = torch.where(go, torch.minimum(pair_waiting.floor(), torch.tensor(float(s.seats), device=dev)), 0.0)
        energy = torch.where(go, table_at(self.energy_kwh, here, dest), 0.0)
        fares = boarded * s.fare_per_mile * miles
        costs = energy * s.energy_price + torch.where(go, route_h, 0.0) * s.operating_cost_per_hour
        # a stay: until repaired when down, else wait_h, on a charging pad when one is free
        down = self.is_down(st, actor)
        stay_h = torch.where(down, row_at(st.day.down_end_h, actor) - t, torch.full_like(t, s.wait_h))
        at_here = st.location == here[:, None]
        others_charging = (st.charging & (st.free_at_h > t[:, None]) & at_here).sum(1)
        actor_charging = row_at(st.charging, actor)
        others_charging = others_charging - (actor_charging & (row_at(st.free_at_h, actor) > t)).long()
        charge = ~go & running & (others_charging < s.charging_pads) & (s.charging_pads > 0)
        battery = row_at(st.battery_kwh, actor)
        charged = torch.where(charge, torch.clamp(s.charge_kw * stay_h, max=s.battery_kwh - battery), 0.0)
        new_battery = battery - energy + charged
        free_at = torch.where(running, t + torch.where(go, flight_h, stay_h), row_at(st.free_at_h, actor))
        location = row_put(st.location, actor, dest)
        free_at_h = row_put(st.free_at_h, actor, free_at)
        battery_kwh = row_put(st.battery_kwh, actor, new_battery)
        charging = row_put(st.charging, actor, torch.where(running, charge, actor_charging))
        v = s.n_vertiports
        waiting = row_put(st.waiting.reshape(b, v * v), here * v + dest, pair_waiting - boarded).reshape(b, v, v)
        # the next decision: the earliest free aircraft; passengers arrive and leave until then
        next_time, next_actor = free_at_h.min(1)
        next_time = torch.maximum(next_time, t).clamp_max(s.day_end_h)
        dt = next_time - t
        stay_share = torch.exp(-dt / s.patience_h)
        left = waiting * (1.0 - stay_share)[:, None, None]
        waiting = waiting * stay_share[:, None, None]
        next_slot = self.slot_of(next_time)
        before = st.day.arrivals_before  # the slots after this one, up to the next decision's, arrive
        arrived = torch.where((next_time < s.day_end_h)[:, None, None],
                              row_at(before, next_slot + 1) - row_at(before, slot + 1), 0.0)
        waiting = waiting + arrived
        state = FleetState(next_time, next_actor, location, free_at_h, battery_kwh, charging, waiting, st.day)
        info = {"profit": fares - costs, "fares": fares, "energy_cost": energy * s.energy_price,
                "boarded": boarded, "arrived": arrived.sum((1, 2)), "spilled": left.sum((1, 2)),
                "flight_hours": flight_h, "flights": go.float(), "charged_kwh": charged,
                # a flight that takes off late lands after the day's end: only its hours within the day count
                # toward utilisation
                "flight_hours_in_day": torch.minimum(flight_h, (s.day_end_h - t).clamp_min(0.0)),
                "illegal": (~legal).float()}
        return StepResult(state, fares - costs, info, terminated=next_time >= s.day_end_h, elapsed=dt)

    def with_day(self, st: FleetState, day: Days) -> FleetState:
        """``st`` on another sampled day (the same fleet): what a planner replays."""
        return replace(st, day=day)
