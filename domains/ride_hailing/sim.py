"""The batched city simulator: ``B`` independent cities stepped one dispatch window at a time.

Order of events in :meth:`CitySim.step` (window ``(t, t + w]``, ``w = window_seconds``):

1. **Dispatch** (the action's ``dispatch [B, Q]``: a driver index per pending-order slot, −1 none).
   An assignment holds if the order is pending, the driver is idle and online and within
   ``max_pickup_km``; a driver named twice keeps the lowest slot. The passenger then cancels with
   probability ``cancel_max·(1 − exp(−d/scale))`` of the pickup distance ``d`` (200 m buckets;
   the order's own uniform); otherwise the order is *served*: the fare is paid to the driver at
   once, the driver is on the trip until ``t + pickup + trip`` and will then be idle at the
   destination. A cancelled order's driver stays idle.
2. **Repositioning** (the action's ``reposition [B, N]``: a target cell per driver, −1 none): an idle
   driver not dispatched in this window drives to a cell within ``reposition_max_km`` and is busy
   until it gets there.
3. Time advances to ``t + w``. Pending orders that have waited longer than
   ``order_patience_seconds`` **expire**.
4. Trips and repositioning drives that end by ``t + w`` leave their drivers idle where they end.
5. **Shifts**: an idle driver outside their shift goes offline; an offline driver inside it comes
   online, idle, at home.
6. **Drift**: each idle driver moves to a neighbouring cell with probability
   ``1 − (1 − drift_per_minute)^(w/60)``, by the city's per-(hour, cell) transition table.
7. **Arrivals** during the window (a Poisson count by inverse CDF at the window's rate; origins
   and destinations by the hour's weights — or the trip records of a replayed day) join the
   pending orders (a full queue expires the newest).

The reward is the income paid in the window ``[B]``. Each driver has a value-learning *anchor*
``(cell, time)``: where and when they last became free; a served trip records the transition
anchor → (destination, drop-off) with the fare as reward (paid at the match time); an idle driver
records anchor → (cell, now) with reward 0 every ``idle_transition_seconds``; a driver going
offline records anchor → terminal. ``info`` carries these per driver (``tr_*``, ``[B, N]``), the
resolved orders (``ev_*``, ``[B, Q + M]``, for the trip log) and the window's counts (``[B]``).

Exogenous randomness per window ``[B, 1 + 3M + N]``: the arrival count's uniform, ``M`` origin,
destination and cancellation uniforms, and a drift uniform per driver, so two policies given the
same seed face the same orders, cancellations draws and drift draws.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch

from decisionlab.core import Box, Composite, Discrete, Spaces, StepResult
from decisionlab.domains.ride_hailing.city import (
    City,
    cancel_probability,
    city_of,
    fare,
    max_arrivals,
    shift_starts,
)
from decisionlab.domains.ride_hailing.scenario import SECONDS_PER_DAY, CityScenario

if TYPE_CHECKING:
    from decisionlab.domains.ride_hailing.trips import TripRecords

OFFLINE, IDLE, ON_TRIP, REPOSITIONING = 0, 1, 2, 3
NO_EVENT, SERVED, CANCELLED, EXPIRED = 0, 1, 2, 3
NO_TRANSITION, TRIP, IDLE_MOVE, TERMINAL = 0, 1, 2, 3


@dataclass
class CityState:
    """Drivers ``[B, N]``, pending orders ``[B, Q]``; times in seconds since midnight of day 0."""

    step: int
    time_s: float
    driver_mode: torch.Tensor        # [B, N] int8: OFFLINE, IDLE, ON_TRIP, REPOSITIONING
    driver_cell: torch.Tensor        # [B, N] long: where the driver is (on a trip: where it ends)
    driver_free_at: torch.Tensor     # [B, N] float64: end of the current trip or drive
    driver_idle_since: torch.Tensor  # [B, N] float64
    anchor_cell: torch.Tensor        # [B, N] long
    anchor_s: torch.Tensor           # [B, N] float64
    shift_start_s: torch.Tensor      # [B, N] float64, seconds of the day
    home_cell: torch.Tensor          # [B, N] long
    driver_income: torch.Tensor      # [B, N] float64
    driver_online_s: torch.Tensor    # [B, N] float64
    order_valid: torch.Tensor        # [B, Q] bool
    order_id: torch.Tensor           # [B, Q] long (per city, in arrival order)
    order_origin: torch.Tensor       # [B, Q] long
    order_dest: torch.Tensor         # [B, Q] long
    order_arrival_s: torch.Tensor    # [B, Q] float64
    order_trip_km: torch.Tensor      # [B, Q] float32
    order_trip_s: torch.Tensor       # [B, Q] float32
    order_fare: torch.Tensor         # [B, Q] float32
    order_cancel_u: torch.Tensor     # [B, Q] float32
    next_order_id: torch.Tensor      # [B] long
    replay_day: torch.Tensor | None  # [B] long: the data's day each city replays (trip records only)


@dataclass
class CityObservation:
    """What a dispatcher sees at a window's end. Sizes ``N`` (drivers) and ``Q`` (order slots) are
    the request's, so the same policies serve the simulator and the API.

    Attributes: ``time_s [B]`` float64; ``driver_cell [B, N]`` long; ``driver_free [B, N]`` bool
    (online and idle); ``driver_idle_s [B, N]`` seconds idle; ``order_valid [B, Q]`` bool;
    ``order_origin``/``order_dest [B, Q]`` long; ``order_fare``, ``order_trip_s``, ``order_wait_s``
    ``[B, Q]`` float32."""

    time_s: torch.Tensor
    driver_cell: torch.Tensor
    driver_free: torch.Tensor
    driver_idle_s: torch.Tensor
    order_valid: torch.Tensor
    order_origin: torch.Tensor
    order_dest: torch.Tensor
    order_fare: torch.Tensor
    order_trip_s: torch.Tensor
    order_wait_s: torch.Tensor

    @property
    def n_orders(self) -> int:
        return self.order_valid.shape[1]

    @property
    def n_drivers(self) -> int:
        return self.driver_cell.shape[1]


DISPATCH, REPOSITION = "dispatch", "reposition"
CityAction = dict[str, torch.Tensor]
"""``{"dispatch": [B, Q], "reposition": [B, N]}`` int64: the driver (index) given each order slot and the
target cell of each driver, −1 for none."""


def city_action(dispatch: torch.Tensor, reposition: torch.Tensor) -> CityAction:
    return {DISPATCH: dispatch, REPOSITION: reposition}


def city_spaces(n_drivers: int, n_cells: int, queue: int, features: int) -> Spaces:
    """The ride-hailing spaces: what a dispatcher sees at a window's end (:class:`CityObservation`) and
    the integer action (a driver per order slot, a cell per driver; −1: none)."""
    cell, per_driver, per_order = Discrete(n_cells), (n_drivers,), (queue,)
    return Spaces(
        observation=Composite({
            "time_s": Box((), 0.0, dtype="float64", unit="s"),
            "driver_cell": Discrete(n_cells, per_driver), "driver_free": Box(per_driver, dtype="bool"),
            "driver_idle_s": Box(per_driver, 0.0, unit="s"),
            "order_valid": Box(per_order, dtype="bool"), "order_origin": Discrete(cell.n, per_order),
            "order_dest": Discrete(cell.n, per_order), "order_fare": Box(per_order, 0.0, unit="currency"),
            "order_trip_s": Box(per_order, 0.0, unit="s"), "order_wait_s": Box(per_order, 0.0, unit="s"),
        }),
        features=Box((features,), description="CitySim.flat_observation"),
        action=Composite({
            DISPATCH: Discrete(n_drivers + 1, per_order, start=-1, description="driver index per order slot"),
            REPOSITION: Discrete(n_cells + 1, per_driver, start=-1, description="target cell per driver"),
        }),
    )


def in_shift(time_s: float, shift_start_s: torch.Tensor, shift_hours: float) -> torch.Tensor:
    return torch.remainder(time_s - shift_start_s, SECONDS_PER_DAY) < shift_hours * 3600.0


class CitySim:
    """The batched city simulator of a :class:`CityScenario` (order of events: module docstring)."""

    differentiable = False

    def __init__(self, scenario: CityScenario, device: torch.device | str = "cpu", city: City | None = None,
                 records: TripRecords | None = None) -> None:
        """``records``: trip records to replay instead of reading the scenario's ``trips_path``."""
        self.scenario, self.device = scenario, torch.device(device)
        self.city = city if city is not None else city_of(scenario, str(self.device))
        self.grid = self.city.grid
        s = scenario
        self.n_drivers, self.window_s = s.n_drivers, s.window_seconds
        self.replay = None
        if s.trips_path is not None or records is not None:
            from decisionlab.domains.ride_hailing.replay import DemandReplay

            self.replay = DemandReplay.for_scenario(s, self.grid, self.device, records)
            self.max_new = self.replay.max_per_window
        else:
            self.max_new = max_arrivals(self.city, s.window_seconds)
        self.queue = self.max_new * (int(s.order_patience_seconds // s.window_seconds) + 2)
        features = 1 + 3 * self.n_drivers + 6 * self.queue
        self.spaces = city_spaces(self.n_drivers, self.grid.n_cells, self.queue, features)
        self._count_cdf = self._poisson_tables()
        self.move_probability = 1.0 - (1.0 - s.drift_per_minute) ** (s.window_seconds / 60.0)

    # --- set-up ----------------------------------------------------------------------------------

    def _poisson_tables(self) -> torch.Tensor:
        """``[1440, M + 1]``: CDF of the window's arrival count at each minute's rate."""
        lam = (self.city.rate_per_minute * self.window_s).clamp_min(1e-12)[:, None]
        k = torch.arange(self.max_new + 1, dtype=torch.float64, device=self.device)[None]
        log_pmf = k * torch.log(lam) - lam - torch.lgamma(k + 1)
        cdf = torch.cumsum(torch.exp(log_pmf), dim=1)
        cdf[:, -1] = 1.0  # the truncation: at most M arrivals
        return cdf.float()

    def sample_exogenous(self, batch: int, periods: int, generator: torch.Generator | None) -> torch.Tensor:
        """``[B, T, 1 + 3M + N]`` uniforms (see the module docstring)."""
        width = 1 + 3 * self.max_new + self.n_drivers
        return torch.rand(batch, periods, width, generator=generator, device=self.device)

    def reset(self, batch: int, generator: torch.Generator | None = None) -> CityState:
        """Drivers' shifts and homes drawn from ``generator``; those on shift start idle at home."""
        s, dev, n = self.scenario, self.device, self.n_drivers
        t0 = s.start_seconds
        shifts = shift_starts(batch, n, generator, dev).double()
        u = torch.rand(batch, n, generator=generator, device=dev)
        home = torch.searchsorted(self.city.home_cdf, u.contiguous()).clamp_max(self.grid.n_cells - 1)
        on = in_shift(t0, shifts, s.shift_hours)
        q = self.queue
        replay_day = None
        if self.replay is not None:
            replay_day = torch.randint(self.replay.days, (batch,), generator=generator, device=dev)
        zeros = torch.zeros(batch, n, dtype=torch.float64, device=dev)
        return CityState(
            step=0, time_s=t0,
            driver_mode=torch.where(on, IDLE, OFFLINE).to(torch.int8),
            driver_cell=home.clone(), driver_free_at=zeros + t0, driver_idle_since=zeros + t0,
            anchor_cell=home.clone(), anchor_s=zeros + t0, shift_start_s=shifts, home_cell=home,
            driver_income=zeros.clone(), driver_online_s=zeros.clone(),
            order_valid=torch.zeros(batch, q, dtype=torch.bool, device=dev),
            order_id=torch.zeros(batch, q, dtype=torch.long, device=dev),
            order_origin=torch.zeros(batch, q, dtype=torch.long, device=dev),
            order_dest=torch.zeros(batch, q, dtype=torch.long, device=dev),
            order_arrival_s=torch.zeros(batch, q, dtype=torch.float64, device=dev),
            order_trip_km=torch.zeros(batch, q, device=dev), order_trip_s=torch.zeros(batch, q, device=dev),
            order_fare=torch.zeros(batch, q, device=dev), order_cancel_u=torch.ones(batch, q, device=dev),
            next_order_id=torch.zeros(batch, dtype=torch.long, device=dev),
            replay_day=replay_day,
        )

    # --- observation -----------------------------------------------------------------------------

    def observe(self, state: CityState) -> CityObservation:
        batch = state.driver_cell.shape[0]
        t = torch.full((batch,), state.time_s, dtype=torch.float64, device=self.device)
        free = state.driver_mode == IDLE
        return CityObservation(
            time_s=t, driver_cell=state.driver_cell, driver_free=free,
            driver_idle_s=torch.where(free, state.time_s - state.driver_idle_since, 0.0).float(),
            order_valid=state.order_valid, order_origin=state.order_origin, order_dest=state.order_dest,
            order_fare=state.order_fare, order_trip_s=state.order_trip_s,
            order_wait_s=torch.where(state.order_valid, state.time_s - state.order_arrival_s, 0.0).float(),
        )

    def flat_observation(self, obs: CityObservation) -> torch.Tensor:
        """``[B, 1 + 3N + 6Q]``: hour of the day, drivers' cells, free flags, idle minutes, orders'
        valid flags, origins, destinations, fares, trip minutes and waits (s)."""
        hour = (torch.remainder(obs.time_s, SECONDS_PER_DAY) / 3600.0).float()[:, None]
        parts = [hour, obs.driver_cell.float(), obs.driver_free.float(), obs.driver_idle_s / 60.0,
                 obs.order_valid.float(), obs.order_origin.float(), obs.order_dest.float(), obs.order_fare,
                 obs.order_trip_s / 60.0, obs.order_wait_s]
        return torch.cat(parts, dim=1)

    # --- physics ---------------------------------------------------------------------------------

    def seconds_to_drive(self, km: torch.Tensor, time_s: float) -> torch.Tensor:
        return km * (3600.0 / self.city.speed_kmh(time_s))

    # --- step ------------------------------------------------------------------------------------

    def step(self, state: CityState, action: CityAction, exogenous: torch.Tensor) -> StepResult[CityState]:
        """One window (order of events: module docstring). ``action``: :data:`CityAction`, ``exogenous
        [B, 1 + 3M + N]``."""
        s, grid = self.scenario, self.grid
        batch, n, q, m = state.driver_cell.shape[0], self.n_drivers, self.queue, self.max_new
        t, t_next = state.time_s, state.time_s + self.window_s
        assign, target = action[DISPATCH].long(), action[REPOSITION].long()

        # 1. Dispatch.
        mode, cell = state.driver_mode, state.driver_cell
        in_range = (assign >= 0) & (assign < n) & state.order_valid
        driver = torch.where(in_range, assign, 0)
        driver_cell_of_order = torch.gather(cell, 1, driver)
        pickup_raw_km = grid.distance_km(driver_cell_of_order, state.order_origin)
        ok = in_range & (torch.gather(mode, 1, driver) == IDLE) & (pickup_raw_km <= s.max_pickup_km + 1e-6)
        slot = torch.arange(q, device=self.device).expand(batch, q)
        first = torch.full((batch, n + 1), q, dtype=torch.long, device=self.device)
        first.scatter_reduce_(1, torch.where(ok, driver, n), slot, reduce="amin")
        matched = ok & (torch.gather(first, 1, torch.where(ok, driver, n)) == slot)
        pickup_km = pickup_raw_km.clamp_min(grid.intra_km)
        cancelled = matched & (state.order_cancel_u < cancel_probability(pickup_km, s))
        served = matched & ~cancelled
        pickup_s = self.seconds_to_drive(pickup_km, t)
        end_s = t + pickup_s.double() + state.order_trip_s.double()

        # Per-driver view of the served orders (index n is a sink for the others).
        sink = torch.where(served, driver, n)

        def to_drivers(values: torch.Tensor, fill: float | int) -> torch.Tensor:
            out = torch.full((batch, n + 1), fill, dtype=values.dtype, device=self.device)
            out.scatter_(1, sink, values)
            return out[:, :n]

        got_trip = to_drivers(served, False)
        trip_end = to_drivers(end_s, 0.0)
        trip_dest = to_drivers(state.order_dest, 0)
        trip_fare = to_drivers(state.order_fare.double(), 0.0)
        kind = torch.where(got_trip, TRIP, NO_TRANSITION).to(torch.int8)
        tr_from_cell, tr_from_s = state.anchor_cell, state.anchor_s
        tr_to_cell = torch.where(got_trip, trip_dest, 0)
        tr_to_s = torch.where(got_trip, trip_end, 0.0)
        tr_reward = torch.where(got_trip, trip_fare, 0.0)

        mode = torch.where(got_trip, ON_TRIP, mode).to(torch.int8)
        cell = torch.where(got_trip, trip_dest, cell)
        free_at = torch.where(got_trip, trip_end, state.driver_free_at)
        anchor_cell = torch.where(got_trip, trip_dest, state.anchor_cell)
        anchor_s = torch.where(got_trip, trip_end, state.anchor_s)
        income = state.driver_income + trip_fare

        # 2. Repositioning.
        valid_target = (target >= 0) & (target < grid.n_cells) & (mode == IDLE)
        safe_target = torch.where(valid_target, target, cell)
        drive_km = grid.distance_km(cell, safe_target)
        moving = valid_target & (safe_target != cell) & (drive_km <= s.reposition_max_km + 1e-6)
        mode = torch.where(moving, REPOSITIONING, mode).to(torch.int8)
        free_at = torch.where(moving, t + self.seconds_to_drive(drive_km, t).double(), free_at)
        cell = torch.where(moving, safe_target, cell)

        # 3. Expiry.
        pending = state.order_valid & ~matched
        expired = pending & (t_next - state.order_arrival_s > s.order_patience_seconds + 1e-9)
        pending = pending & ~expired

        # 4. Trips and drives that end.
        done = ((mode == ON_TRIP) | (mode == REPOSITIONING)) & (free_at <= t_next)
        idle_since = torch.where(done, free_at, state.driver_idle_since)
        mode = torch.where(done, IDLE, mode).to(torch.int8)

        # 5. Shifts.
        on_shift = in_shift(t_next, state.shift_start_s, s.shift_hours)
        leaving = (mode == IDLE) & ~on_shift
        arriving = (mode == OFFLINE) & on_shift
        kind = torch.where(leaving, TERMINAL, kind).to(torch.int8)
        mode = torch.where(leaving, OFFLINE, torch.where(arriving, IDLE, mode)).to(torch.int8)
        cell = torch.where(arriving, state.home_cell, cell)
        anchor_cell = torch.where(arriving, state.home_cell, anchor_cell)
        anchor_s = torch.where(arriving, t_next, anchor_s)
        idle_since = torch.where(arriving, t_next, idle_since)
        online_s = state.driver_online_s + torch.where(state.driver_mode != OFFLINE, self.window_s, 0.0)

        # 6. Drift of idle drivers (not those that just came online or were told where to go).
        u_drift = exogenous[:, 1 + 3 * m:]
        drifting = (mode == IDLE) & ~arriving & (u_drift < self.move_probability)
        if bool(drifting.any()):
            cdf = self.city.drift_cdf[self.city.hour(t_next)][cell]  # [B, N, 7]
            choice = (u_drift / self.move_probability).unsqueeze(-1).gt(cdf).sum(-1).clamp_max(6)
            cell = torch.where(drifting, grid.neighbours[cell, choice], cell)

        # Idle value transitions: anchor → (cell, now) after idle_transition_seconds.
        idle_record = (mode == IDLE) & ~arriving & (t_next - anchor_s >= s.idle_transition_seconds)
        kind = torch.where(idle_record, IDLE_MOVE, kind).to(torch.int8)
        tr_to_cell = torch.where(idle_record, cell, tr_to_cell)
        tr_to_s = torch.where(idle_record, t_next, tr_to_s)
        anchor_cell = torch.where(idle_record, cell, anchor_cell)
        anchor_s = torch.where(idle_record, t_next, anchor_s)

        # 7. Arrivals, then the queue is compacted (oldest first).
        new = self._arrivals(state, exogenous, t, t_next)
        order_id = new["id"]
        all_valid = torch.cat((pending, new["valid"]), 1)
        key = torch.where(all_valid, torch.cat((state.order_id, order_id), 1), torch.iinfo(torch.long).max)
        order = torch.argsort(key, dim=1, stable=True)
        keep = order[:, :q]
        overflow = torch.zeros_like(all_valid)
        overflow.scatter_(1, order[:, q:], True)
        overflow &= all_valid

        def merged(old: torch.Tensor, fresh: torch.Tensor) -> torch.Tensor:
            return torch.cat((old, fresh), 1)

        fields = {name: merged(getattr(state, f"order_{name}"), new[name])
                  for name in ("id", "origin", "dest", "arrival_s", "trip_km", "trip_s", "fare", "cancel_u")}
        kept = {name: torch.gather(v, 1, keep) for name, v in fields.items()}
        kept_valid = torch.gather(all_valid & ~overflow, 1, keep)

        ev_kind = torch.cat((torch.where(served, SERVED, torch.where(cancelled, CANCELLED,
                                                                        torch.where(expired, EXPIRED, NO_EVENT))),
                             torch.zeros_like(new["valid"], dtype=torch.long)), 1)
        ev_kind = torch.where(overflow, EXPIRED, ev_kind).to(torch.int8)
        pad = torch.zeros(batch, m, device=self.device)
        info = {
            "income": trip_fare.sum(1),
            "arrived": new["valid"].sum(1).double(),
            "matched": matched.sum(1).double(),
            "served": served.sum(1).double(),
            "cancelled": cancelled.sum(1).double(),
            "expired": (expired.sum(1) + overflow.sum(1)).double(),
            "pickup_km": torch.where(matched, pickup_km, 0.0).sum(1).double(),
            "pickup_minutes": torch.where(matched, pickup_s / 60.0, 0.0).sum(1).double(),
            "idle_drivers": (mode == IDLE).sum(1).double(),
            "online_drivers": (mode != OFFLINE).sum(1).double(),
            "tr_kind": kind, "tr_from_cell": tr_from_cell, "tr_from_s": tr_from_s, "tr_to_cell": tr_to_cell,
            "tr_to_s": tr_to_s, "tr_reward": tr_reward, "tr_reward_s": torch.full_like(tr_from_s, t),
            "ev_kind": ev_kind, "ev_time_s": torch.full(ev_kind.shape, t_next, dtype=torch.float64,
                                                        device=self.device),
            "ev_driver": torch.cat((torch.where(matched, driver, -1), torch.full_like(order_id, -1)), 1),
            "ev_pickup_km": torch.cat((torch.where(matched, pickup_km, 0.0), pad), 1),
            **{f"ev_{name}": v for name, v in fields.items() if name != "cancel_u"},
        }
        next_state = replace(
            state, step=state.step + 1, time_s=t_next, driver_mode=mode, driver_cell=cell, driver_free_at=free_at,
            driver_idle_since=idle_since, anchor_cell=anchor_cell, anchor_s=anchor_s, driver_income=income,
            driver_online_s=online_s, order_valid=kept_valid, next_order_id=new["next_id"],
            **{f"order_{name}": v for name, v in kept.items()},
        )
        return StepResult(next_state, trip_fare.sum(1).float(), info)

    def _arrivals(self, state: CityState, exogenous: torch.Tensor, t: float, t_next: float) -> dict[str, torch.Tensor]:
        """This window's new orders ``[B, M]`` (generated, or replayed from trip records)."""
        s, m, batch = self.scenario, self.max_new, exogenous.shape[0]
        slot = torch.arange(m, device=self.device)
        if self.replay is not None:
            new = self.replay.window(state.replay_day, t, t_next)
        else:
            count_cdf = self._count_cdf[self.city.minute(t)]
            count = torch.searchsorted(count_cdf, exogenous[:, :1].contiguous()).squeeze(1).clamp_max(m)
            hour = self.city.hour(t)
            origin = torch.searchsorted(self.city.origin_cdf[hour], exogenous[:, 1:1 + m].contiguous())
            dest = torch.searchsorted(self.city.dest_cdf[hour], exogenous[:, 1 + m:1 + 2 * m].contiguous())
            origin = origin.clamp_max(self.grid.n_cells - 1)
            dest = dest.clamp_max(self.grid.n_cells - 1)
            trip_km = self.grid.road_km(origin, dest)
            trip_s = self.seconds_to_drive(trip_km, t_next)
            new = {"valid": slot[None] < count[:, None], "origin": origin, "dest": dest, "trip_km": trip_km,
                   "trip_s": trip_s, "fare": fare(trip_km, trip_s, s)}
        valid = new["valid"]
        rank = torch.cumsum(valid.long(), 1) - 1
        order_id = state.next_order_id[:, None] + rank
        return {**new, "id": order_id,
                "arrival_s": torch.full((batch, m), t_next, dtype=torch.float64, device=self.device),
                "cancel_u": exogenous[:, 1 + 2 * m:1 + 3 * m],
                "next_id": state.next_order_id + valid.sum(1)}

    def finish(self, state: CityState) -> dict[str, torch.Tensor]:
        """The orders still pending at the end of the horizon, as expired events (``ev_*`` like a step's
        info), so every order ends served, cancelled or expired exactly once."""
        kind = torch.where(state.order_valid, EXPIRED, NO_EVENT).to(torch.int8)
        return {
            "ev_kind": kind, "ev_time_s": torch.full(kind.shape, state.time_s, dtype=torch.float64, device=self.device),
            "ev_driver": torch.full_like(state.order_id, -1), "ev_pickup_km": torch.zeros_like(state.order_fare),
            "ev_id": state.order_id, "ev_origin": state.order_origin, "ev_dest": state.order_dest,
            "ev_arrival_s": state.order_arrival_s, "ev_trip_km": state.order_trip_km,
            "ev_trip_s": state.order_trip_s, "ev_fare": state.order_fare,
            "expired": state.order_valid.sum(1).double(),
        }

