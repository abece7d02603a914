"""An exact perfect-information upper bound on a fleet day's profit (a MILP solved by HiGHS), and the policy that
flies the MILP's schedule.

Why: a policy's profit alone does not say how much more the day held. For one sampled day known in full (every
arrival, closure, take-off delay and downtime: ``state.day``), :func:`exact_bound` solves a mixed-integer program
whose optimum is at least the profit of EVERY schedule :class:`~decisionlab.domains.fleet.sim.FleetSim` can run that
day, clairvoyant planners (the GA, :class:`ExactPolicy`) included: the gap between a policy and the bound caps what
any better policy could gain. It is for small instances such as ``uam_small``; bigger ones raise ``ValueError``.

The model, per day. An aircraft decides when it is free, so its decision times are the day's start plus the
durations of what it chose (a flight: ``flight_h`` plus that slot's take-off delay; a stay: ``wait_h``, or until
repaired when down). :func:`_timeline` enumerates every decision (vertiport, clock) each aircraft can reach, merging
equal clocks, with the moves out of each, repeating the simulator's float32 clock arithmetic: each aircraft gets a
time-expanded network whose nodes are the simulator's own decision times, not a rounded grid. On it:

- ``y[move]`` (binary): the aircraft makes that move; one path per aircraft from its start (flow conservation).
  Flights exist only on routes open in their slot and where the aircraft may be up, as the masks allow;
- battery, per aircraft at each check instant (``checks_per_slot`` per slot): the energy of the flights surely
  flown by then ``≤`` start ``-`` reserve ``+`` the charge of the stays possibly begun before it (the last flight
  kept the reserve), and charge ``-`` flown ``≤`` capacity ``-`` start (no stay overfills); ``c[stay] ≤ charge_kw ×
  its hours``;
- pads, at each check instant: moves surely under way at ``v`` (ground, or inbound: flying there) ``≤
  parking_pads``; stays surely under way there, each weighed by its charge over a full stay's charge, ``≤
  charging_pads``;
- passengers, per pair: ``n[group]`` (integer) boarded by a group of flights (pair, slot, check interval)
  ``≤ per-flight cap × flights``, the cap being the seats or the whole passengers who can be waiting then if fewer;
  boarded up to slot ``s ≤`` arrived up to slot ``s``; and at each check instant the waiting fluid is not negative:
  ``Σ boarded · e^{-(T - boarding)/patience} ≤ Σ arrivals · e^{-(T - release)/patience}``, each side bounded the safe
  way (boardings at the start of their check interval; releases by :func:`_still_waiting`: a slot's arrivals join at
  the first decision of any aircraft in it, known per aircraft from its path, at the latest within the longest move);
- maximise fares ``fare_per_mile × miles × n`` minus flight costs ``(kwh × energy_price + flight_h ×
  operating_cost_per_hour) × y``, as the simulator counts them (a take-off delay lengthens a flight, not its cost).

Why the optimum bounds every simulator schedule: each aircraft's decisions in the simulator are a path of its
network (its clock is reproduced move by move; a node keeps the interval of float32 clocks that reach it, and where
an interval straddles a slot boundary every reading gets its own flight). Setting ``y`` by the paths, ``c`` by the
simulator's charges and ``n`` by its boardings satisfies every row: the battery rows hold at every departure and
stay, so at the checks; the pad counts hold at every instant in the simulator; the passenger rows follow from the
simulator's fluid (its waiting count is the arrivals decayed since release minus the boardings decayed since,
never negative, and it boards only whole waiting passengers). So the simulator's day is a feasible MILP solution
with the same profit. What the MILP relaxes (each only loosens it):

1. Passengers: decay only at the check instants and bounded by interval ends; aircraft share waiting passengers
   freely between boardings; flights whose clock interval straddles a check are left out of the decay rows.
2. Battery and pads are checked at the check instants only, not at every departure; charging stays count by the
   share of a full charge they take.
3. Float32: the battery rows get ``1e-3`` kWh and the fluid rows ``1e-3`` passengers of slack, clocks within
   ``1e-5`` h of a slot boundary may be read on either side in the passenger rows.

HiGHS reports the dual bound (``-mip_dual_bound``), valid whether it proved optimality within ``mip_rel_gap``
(status ``"optimal"``) or stopped at ``time_limit_s`` (``"time_limit"``; ``mip_gap`` is then the relative distance to
the best schedule found, whose model value is ``incumbent``). scipy reports no dual bound when HiGHS found no schedule
in time; then the LP relaxation's optimum (still a valid bound, looser) is reported with status ``"lp_relaxation"``.
The relaxation is tight on tiny instances (the brute-force oracle in the tests: exact on 10 of 18 days, at most two
fares above). On ``uam_small`` (about 10,000-15,000 variables a day) HiGHS stays near its root bound: measured on 8
days at 60 s each on 2 shared cores, a mean bound of 1,132 dollars against greedy's 591 (the GA reaches about 860
on such days), so there the bound is valid but loose, and it is the LP relaxation more than the model that is loose.

:class:`ExactPolicy` (``"exact"``) plans by solving the MILP per day and flies its schedule through
:class:`~decisionlab.domains.fleet.schedule.ScheduleFollower`: each aircraft's path gives its choice at each
decision, put in that decision's slot (a plan holds one choice per aircraft and slot: where stays are shorter than
a slot and a path decides twice in one, the first choice stands); where greedy's recorded plan pays more on the known
day (HiGHS stopped with a poor schedule, or none), that plan is kept instead and ``from_milp`` says so. Its realised
profit is a simulated day and differs from the bound: the passengers the model counted may have left or been taken
by another aircraft, a pad free at the check instants may be busy in between (a flight becomes a stay), and at the
time limit the schedule is only HiGHS's best so far. The bound is not a profit any policy earned.
"""

from __future__ import annotations

import heapq
import math
import time
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import scipy.sparse
import torch
from pydantic import BaseModel, ConfigDict, Field
from scipy.optimize import Bounds, LinearConstraint, milp

from decisionlab.core import Sum, run
from decisionlab.domains.fleet.network import Days
from decisionlab.domains.fleet.policies import GreedyPolicy
from decisionlab.domains.fleet.schedule import ScheduleFollower, record_schedule
from decisionlab.domains.fleet.sim import FleetSim, FleetState

SLOT_EDGE = 1e-5  # hours: passenger rows read a clock this close to a boundary on either side of it
BATTERY_SLACK_KWH = 1e-3  # float32 rounding of the simulator's battery (its own reserve check allows 1e-4)
FLUID_SLACK = 1e-3  # passengers: float32 rounding of the simulator's decaying waiting counts
SHORT_STAY_H = 0.01  # stays this short are left out of the charging-pad rows (leaving a move out only loosens)
KEY_PER_H = 1e7  # decision clocks equal to 1e-7 h are one node

AircraftPath = list[tuple[float, int, int]]  # one aircraft's decisions: (clock, slot, choice)


class ExactSettings(BaseModel):
    """Solver settings of the exact bound (one MILP per day)."""

    model_config = ConfigDict(extra="forbid")

    time_limit_s: float = Field(60.0, gt=0, le=86_400, description="HiGHS time limit per day (seconds); at the "
                                "limit its dual bound is reported, still a valid bound")
    mip_rel_gap: float = Field(1e-4, ge=0, le=1, description="HiGHS stops when its relative gap is at most this")
    checks_per_slot: int = Field(4, ge=1, le=64, description="instants per slot at which the battery, the pads and "
                                 "the waiting passengers are checked (more: tighter, bigger)")
    max_size: int = Field(400, ge=1, description="guard: vertiports × aircraft × slots at most this (uam_small: 144)")
    max_variables: int = Field(60_000, ge=1, description="guard: MILP variables at most this")


@dataclass
class ExactBound:
    """Per day ``[B]``: ``upper_bound`` (dollars: no policy earns more that day), ``incumbent`` (the model value of the
    best schedule HiGHS found, a relaxed profit, not a simulated one; nan without one), ``mip_gap`` (relative, nan
    without a schedule), ``status`` (``"optimal"``, ``"time_limit"`` or ``"lp_relaxation"``: module docstring),
    ``seconds`` (building and solving) and ``variables`` of each day's MILP."""

    upper_bound: np.ndarray
    incumbent: np.ndarray
    mip_gap: np.ndarray
    status: list[str]
    seconds: np.ndarray
    variables: np.ndarray


# -- each aircraft's decisions --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Timeline:
    """Every decision one aircraft can reach in a day. Nodes ``[N]`` (node 0: the start): ``vertiport``, ``[lo, hi]``
    the float32 clocks the simulator can have there, ``exact`` the clock without rounding. Moves ``[E]`` from ``tail``
    to ``head`` (-1: after the day): ``dest`` (where the aircraft is, or flies to), ``flight``, ``slot`` (a flight's:
    closures, delay, passengers; -1 for stays), ``end_lo`` (its earliest end; inf after the day), ``stay_h`` (a
    stay's longest hours)."""

    vertiport: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    exact: np.ndarray
    tail: np.ndarray
    head: np.ndarray
    dest: np.ndarray
    flight: np.ndarray
    slot: np.ndarray
    end_lo: np.ndarray
    stay_h: np.ndarray


class _TooBig(Exception):
    """A timeline past its node limit."""


def _add32(clock: float, hours: float) -> float:
    """``clock + hours`` as the simulator adds them: in float32 (round to nearest, so monotone in ``clock``)."""
    return float(np.float32(clock) + np.float32(hours))


def _slot32(sim: FleetSim, clock: float) -> int:
    """:meth:`FleetSim.slot_of` of a float32 ``clock``, with its float32 arithmetic (monotone in ``clock``)."""
    s = sim.scenario
    slot = math.floor((np.float32(clock) - np.float32(s.day_start_h)) / np.float32(s.slot_h))
    return min(max(slot, 0), s.slots - 1)


def _timeline(sim: FleetSim, state: FleetState, row: int, aircraft: int, node_limit: int) -> _Timeline:
    """The decision network of ``aircraft`` on day ``row``; :class:`_TooBig` past ``node_limit`` nodes. Each move
    repeats the simulator's float32 addition on both ends of its node's clock interval; merged nodes keep the union."""
    s = sim.scenario
    start, end, wait = (float(np.float32(h)) for h in (s.day_start_h, s.day_end_h, s.wait_h))
    flight_h = sim.flight_h.detach().cpu().numpy()  # float32, as the simulator adds them
    delay = state.day.delay_h[row, :, aircraft].detach().cpu().numpy()
    closed = state.day.closed[row].cpu().numpy()
    down_start = float(state.day.down_start_h[row, aircraft])
    down_end = float(state.day.down_end_h[row, aircraft])
    up = np.float32(np.inf)
    repaired_hi = float(np.nextafter(np.nextafter(np.float32(down_end), up), up))

    vertiport, lo_h, hi_h, exact_h = [int(state.location[row, aircraft])], [start], [start], [start]
    index = {(vertiport[0], round(start * KEY_PER_H)): 0}
    heap = [(start, 0)]
    moves: list[tuple[int, int, int, bool, int, float, float]] = []

    def reach(w: int, exact: float, lo: float, hi: float) -> int:
        if lo >= end:
            return -1  # the simulator's day is over before this decision
        key = (w, round(exact * KEY_PER_H))
        n = index.get(key)
        if n is None:
            n = index[key] = len(vertiport)
            vertiport.append(w)
            lo_h.append(lo)
            hi_h.append(hi)
            exact_h.append(exact)
            heapq.heappush(heap, (exact, n))
            if len(vertiport) > node_limit:
                raise _TooBig
        else:
            lo_h[n], hi_h[n] = min(lo_h[n], lo), max(hi_h[n], hi)
        return n

    while heap:  # in clock order, so that a node's interval is complete when its moves are made
        exact, n = heapq.heappop(heap)
        v, lo, hi = vertiport[n], lo_h[n], hi_h[n]
        if hi >= down_start and lo < down_end:  # may be down: a stay until repaired
            # t + (down_end - t) lands within a float32 ulp of down_end; below it the aircraft is down again and its
            # next stay ends exactly there (Sterbenz): one move. Its exact clock stays after this node's (heap order)
            repaired = max(down_end, exact + 2.0 / KEY_PER_H)
            to = reach(v, repaired, down_end, repaired_hi)
            moves.append((n, to, v, False, -1, down_end, down_end - lo + 1e-6))
        if lo < down_start or hi >= down_end:  # may be up: wait, or fly where the route is open
            to = reach(v, exact + wait, _add32(lo, wait), _add32(hi, wait))
            moves.append((n, to, v, False, -1, _add32(lo, wait), wait))
            for slot in range(_slot32(sim, lo), _slot32(sim, hi) + 1):
                for w in range(s.n_vertiports):
                    if w == v or closed[slot, v, w]:
                        continue
                    hours = float(flight_h[v, w] + delay[slot])  # float32 + float32, as in the simulator
                    to = reach(w, exact + hours, _add32(lo, hours), _add32(hi, hours))
                    moves.append((n, to, w, True, slot, _add32(lo, hours), 0.0))
    tail, head, dest, flight, slot_of, end_lo, stay_h = (np.array(column) for column in zip(*moves, strict=True))
    return _Timeline(np.array(vertiport), np.array(lo_h), np.array(hi_h), np.array(exact_h), tail, head, dest,
                     flight.astype(bool), slot_of, np.where(head >= 0, end_lo, np.inf), stay_h)


def _too_big(sim: FleetSim, settings: ExactSettings, what: str) -> ValueError:
    s = sim.scenario
    return ValueError(
        f"the exact bound is for small instances such as uam_small (3 vertiports × 4 aircraft × 12 slots = 144): this "
        f"one has {s.n_vertiports} vertiports × {s.n_aircraft} aircraft × {s.slots} slots = "
        f"{s.n_vertiports * s.n_aircraft * s.slots:,} and {what}; raise ExactSettings.max_size / max_variables "
        "only for instances a MILP can take")


def _check(sim: FleetSim, state: FleetState, settings: ExactSettings) -> None:
    s = sim.scenario
    size = s.n_vertiports * s.n_aircraft * s.slots
    if size > settings.max_size:
        raise _too_big(sim, settings, f"that is over max_size = {settings.max_size:,}")
    at_start = bool(((state.time_h == s.day_start_h).all() & (state.free_at_h == s.day_start_h).all()).item())
    if not at_start or bool(state.charging.any()):
        raise ValueError("the exact bound plans whole days: give the days' start state (sim.reset), every aircraft "
                         "free at day_start_h and none charging")


# -- the program ----------------------------------------------------------------------------------------------------
class _Program:
    """A sparse MILP under construction: variable blocks and constraint rows, solved by :func:`milp`."""

    def __init__(self) -> None:
        self.size = 0
        self.lower: list[np.ndarray] = []
        self.upper: list[np.ndarray] = []
        self.integer: list[np.ndarray] = []
        self.rows: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []
        self.row_lower: list[float] = []
        self.row_upper: list[float] = []

    def block(self, count: int, lower: Any, upper: Any, integer: bool = False) -> np.ndarray:
        """Indices ``[count]`` of new variables within ``[lower, upper]``."""
        index = np.arange(self.size, self.size + count)
        self.size += count
        self.lower.append(np.broadcast_to(np.asarray(lower, dtype=float), (count,)))
        self.upper.append(np.broadcast_to(np.asarray(upper, dtype=float), (count,)))
        self.integer.append(np.full(count, int(integer)))
        return index

    def row(self, cols: Any, vals: Any, lower: float, upper: float) -> None:
        """``lower ≤ Σ vals · x[cols] ≤ upper``."""
        cols = np.asarray(cols, dtype=np.int64).ravel()
        self.rows.append(np.full(cols.size, len(self.row_lower)))
        self.cols.append(cols)
        self.vals.append(np.broadcast_to(np.asarray(vals, dtype=float), cols.shape).ravel())
        self.row_lower.append(lower)
        self.row_upper.append(upper)

    def running(self, cols: np.ndarray, vals: np.ndarray, due: np.ndarray, steps: int,
                keep: np.ndarray | float = 1.0) -> np.ndarray:
        """``[steps]`` new variables: ``total[k] = keep[k] · (total[k-1] + Σ_{due == k} vals · x[cols])``, a
        running (``keep < 1``: fading) sum that keeps the rows sparse. Items due at ``steps`` or later never count."""
        keep = np.broadcast_to(np.asarray(keep, dtype=float), (steps,))
        total = self.block(steps, -np.inf, np.inf)
        order = np.argsort(due, kind="stable")
        bounds = np.searchsorted(due[order], np.arange(steps + 1))
        for k in range(steps):
            now = order[bounds[k]: bounds[k + 1]]
            self.row([total[k], *([total[k - 1]] if k else []), *cols[now]],
                     [1.0, *([-keep[k]] if k else []), *(-keep[k] * vals[now])], 0.0, 0.0)
        return total

    def solve(self, objective: np.ndarray, settings: ExactSettings, relax: bool = False) -> Any:
        """Minimise ``objective @ x`` (``relax``: the LP relaxation)."""
        matrix = scipy.sparse.csr_array(
            (np.concatenate(self.vals), (np.concatenate(self.rows), np.concatenate(self.cols))),
            shape=(len(self.row_lower), self.size))
        integrality = np.concatenate(self.integer)
        return milp(objective, integrality=np.zeros_like(integrality) if relax else integrality,
                    bounds=Bounds(np.concatenate(self.lower), np.concatenate(self.upper)),
                    constraints=LinearConstraint(matrix, np.array(self.row_lower), np.array(self.row_upper)),
                    options={"time_limit": settings.time_limit_s, "mip_rel_gap": settings.mip_rel_gap,
                             "disp": False})


def _battery_rows(sim: FleetSim, prog: _Program, line: _Timeline, y: np.ndarray, charge: np.ndarray,
                  checks: np.ndarray, energy: np.ndarray, start_kwh: float) -> None:
    """One aircraft's battery at each check ``T``: flown ``≤`` start ``- reserve +`` charged (the last flight by ``T``
    kept the reserve: the flights surely flown by ``T``, the stays possibly begun before it) and charged ``- flown ≤
    capacity -`` start (the last stay begun before ``T`` did not overfill: the stays surely begun, the flights possibly
    flown). ``charge [E]``: the charge column of each stay (-1 for flights)."""
    s = sim.scenario
    lo, hi = line.lo[line.tail], line.hi[line.tail]
    flights, stays = np.flatnonzero(line.flight), np.flatnonzero(~line.flight)
    steps = len(checks)

    def total(cols: np.ndarray, vals: np.ndarray, clocks: np.ndarray, side: str) -> np.ndarray:
        return prog.running(cols, vals, np.searchsorted(checks, clocks, side=side), steps)

    flown_surely = total(y[flights], energy[flights], hi[flights], "left")
    flown_maybe = total(y[flights], energy[flights], lo[flights], "right")
    charged_surely = total(charge[stays], np.ones(len(stays)), hi[stays], "right")
    charged_maybe = total(charge[stays], np.ones(len(stays)), lo[stays], "right")
    for q in range(steps):
        prog.row([flown_surely[q], charged_maybe[q]], [1.0, -1.0], -np.inf,
                 start_kwh - s.reserve_kwh + BATTERY_SLACK_KWH)
        prog.row([charged_surely[q], flown_maybe[q]], [1.0, -1.0], -np.inf,
                 s.battery_kwh - start_kwh + BATTERY_SLACK_KWH)


def _pad_rows(prog: _Program, items: list[tuple[np.ndarray, ...]], checks: np.ndarray, vertiports: int,
              pads: float) -> None:
    """At each check and vertiport ``Σ weight · x ≤ pads`` over the ``items`` (columns, weights, vertiport, latest
    start, earliest end) surely under way there, as running sums: each item enters and leaves once."""
    if not items:
        return
    cols, weights, where, begin, end = (np.concatenate([item[k] for item in items]) for k in range(5))
    enters = np.searchsorted(checks, begin, side="left")  # the first check it surely covers
    leaves = np.searchsorted(checks, end, side="left")  # the first check it may no longer cover
    counted = enters < leaves
    for w in range(vertiports):
        here = counted & (where == w)
        both = np.concatenate([cols[here], cols[here]])
        change = np.concatenate([weights[here], -weights[here]])
        total = prog.running(both, change, np.concatenate([enters[here], leaves[here]]), len(checks))
        for q in range(len(checks)):
            prog.row([total[q]], [1.0], -np.inf, pads)


def _latest_release_h(sim: FleetSim, state: FleetState, row: int) -> np.ndarray:
    """``[S]``: the latest clock at which each slot's arrivals join the waiting passengers (the first decision of any
    aircraft once the slot began): an aircraft that is up decides again within its longest move (a stay, or its
    longest flight with its longest take-off delay), one that is down when it is repaired."""
    s = sim.scenario
    delay = state.day.delay_h[row].double().cpu().numpy()  # [S, A]
    longest = np.maximum(s.wait_h, float(sim.flight_h.max()) + delay.max(0)) + 4 * SLOT_EDGE  # [A]
    down_start = state.day.down_start_h[row].double().cpu().numpy()
    down_end = state.day.down_end_h[row].double().cpu().numpy()
    opens = s.day_start_h + np.arange(s.slots) * s.slot_h - SLOT_EDGE
    by = opens[:, None] + longest[None, :]
    by = np.where(opens[:, None] <= down_start[None, :], by, np.maximum(by, down_end[None, :] + SLOT_EDGE))
    release = by.min(1)
    release[0] = s.day_start_h  # the start state's waiting passengers
    return release


def _still_waiting(sim: FleetSim, prog: _Program, lines: list[_Timeline], ys: list[np.ndarray], checks: np.ndarray,
                   release: np.ndarray) -> dict[tuple[int, int], tuple[int, float]]:
    """``{(slot s ≥ 1, check q): (column, factor)}``: the share of slot ``s``'s arrivals (boardings aside) still
    waiting at check ``q`` is at most ``factor × x[column]``, a new variable in ``[0, 1]``.

    The arrivals join at the first decision of any aircraft in slot ``s`` or later, so the share left at ``T`` is the
    least over aircraft of ``e^{-(T - its first such decision)/patience}``. An aircraft's path enters those decisions
    by exactly one move, so its share is at most ``1 - Σ_moves y · (1 - e^{-(T - latest clock of the move's
    end)/patience})`` (running sums over the checks), and the variable is at most each aircraft's. Past the slot's
    latest release ``U`` the share is ``e^{-(T - U)/patience} ×`` the share at ``U``: one variable serves them all."""
    s = sim.scenario
    end = float(np.float32(s.day_end_h))
    at = checks - SLOT_EDGE
    at_slot = np.array([_slot32(sim, when) for when in at])
    node_slots = [np.array([_slot32(sim, lo) for lo in line.lo]) for line in lines]
    out: dict[tuple[int, int], tuple[int, float]] = {}
    for slot in range(1, s.slots):
        later = np.flatnonzero(at_slot >= slot)
        window, past = later[at[later] < release[slot]], later[at[later] >= release[slot]]
        times = np.array([*at[window], *([release[slot]] if len(past) else [])])
        if not len(times):
            continue
        shares = prog.block(len(times), 0.0, 1.0)
        keep = np.exp(-np.diff(times, prepend=times[0]) / s.patience_h)
        for line, y, node_slot in zip(lines, ys, node_slots, strict=True):
            # the moves from a decision possibly before the slot to one surely in it or later (and in the day)
            head = np.maximum(line.head, 0)
            enter = np.flatnonzero((node_slot[line.tail] < slot) & (line.head >= 0) & (node_slot[head] >= slot)
                                   & (line.hi[head] < end))
            latest = line.hi[head[enter]]
            due = np.searchsorted(times, latest, side="right")  # the first time after the move surely ended
            entered = prog.running(y[enter], np.ones(len(enter)), due, len(times))
            first = np.minimum(due, len(times) - 1)
            fade = np.exp(-(times[first] - latest) / s.patience_h) / keep[first]  # the running sum applies keep
            faded = prog.running(y[enter], fade, due, len(times), keep)
            for k in range(len(times)):
                prog.row([shares[k], entered[k], faded[k]], [1.0, 1.0, -1.0], -np.inf, 1.0)
        for k, q in enumerate(window):
            out[slot, int(q)] = (int(shares[k]), 1.0)
        for q in past:
            out[slot, int(q)] = (int(shares[-1]), math.exp(-(at[q] - release[slot]) / s.patience_h))
    return out


def _out_moves(line: _Timeline) -> list[np.ndarray]:
    """Per node: its moves (indices)."""
    order = np.argsort(line.tail, kind="stable")
    return np.split(order, np.searchsorted(line.tail[order], np.arange(1, len(line.vertiport))))


def _solve_day(sim: FleetSim, state: FleetState, row: int,
               settings: ExactSettings) -> tuple[float, float, float, str, int, list[AircraftPath]]:
    """One day's MILP (module docstring): ``(upper bound, incumbent, mip_gap, status, variables, paths)``."""
    s = sim.scenario
    v = s.n_vertiports
    numpy = lambda t: t.detach().double().cpu().numpy()  # noqa: E731
    miles, flight_h, kwh = numpy(sim.distance_miles), numpy(sim.flight_h), numpy(sim.energy_kwh)
    try:
        lines = [_timeline(sim, state, row, a, settings.max_variables) for a in range(s.n_aircraft)]
    except _TooBig:
        raise _too_big(sim, settings, f"one aircraft's network alone is over max_variables = "
                                      f"{settings.max_variables:,}") from None
    moves = sum(len(line.tail) for line in lines)
    if 2 * moves > settings.max_variables:
        raise _too_big(sim, settings, f"its MILP would have more than {2 * moves:,} variables, over max_variables = "
                                      f"{settings.max_variables:,}")
    dt = s.slot_h / settings.checks_per_slot
    # check instants mid-step (away from the slot boundaries stays land on); the last one past the day's end
    checks = s.day_start_h + (np.arange(math.ceil((s.day_end_h - s.day_start_h) / dt) + 1) + 0.5) * dt  # [Q]
    in_day = checks[checks < s.day_end_h]
    interval_start = np.concatenate([[s.day_start_h], checks])  # check interval k: [interval_start[k], checks[k])

    prog = _Program()
    costs: list[tuple[np.ndarray, np.ndarray]] = []  # (columns, dollars per unit)
    groups: dict[tuple[int, int, int], list[int]] = {}  # (pair, slot, check interval or -1) -> y of its flights
    earliest: dict[tuple[int, int, int], float] = {}  # the earliest clock of a group's flights
    on_pads: list[tuple[np.ndarray, ...]] = []
    on_chargers: list[tuple[np.ndarray, ...]] = []
    ys: list[np.ndarray] = []
    for a, line in enumerate(lines):
        count, nodes = len(line.tail), len(line.vertiport)
        origin = line.vertiport[line.tail]
        energy = np.where(line.flight, kwh[origin, line.dest], 0.0)
        y = prog.block(count, 0.0, 1.0, integer=True)
        ys.append(y)
        stays = np.flatnonzero(~line.flight)
        charge = np.full(count, -1)
        charge[stays] = prog.block(len(stays), 0.0, s.charge_kw * line.stay_h[stays] if s.charging_pads else 0.0)
        # one path from the start
        out_of = _out_moves(line)
        order = np.argsort(line.head, kind="stable")
        into = np.split(order, np.searchsorted(line.head[order], np.arange(1, nodes)))  # [0]: after the day
        prog.row(y[out_of[0]], 1.0, 1.0, 1.0)
        for node in range(1, nodes):
            prog.row([*y[out_of[node]], *y[into[node]]], [1.0] * len(out_of[node]) + [-1.0] * len(into[node]),
                     0.0, 0.0)
        for e in stays:  # a stay charges only if made, at most while it lasts
            prog.row([charge[e], y[e]], [1.0, -s.charge_kw * line.stay_h[e]], -np.inf, 0.0)
        _battery_rows(sim, prog, line, y, charge, in_day, energy, float(state.battery_kwh[row, a]))
        costs.append((y, energy * s.energy_price + np.where(line.flight, flight_h[origin, line.dest], 0.0)
                      * s.operating_cost_per_hour))
        # pads: every move counts where it is (on the ground or inbound); a charging stay by its share of a charge
        start_lo, start_hi = line.lo[line.tail], line.hi[line.tail]
        on_pads.append((y, np.ones(count), line.dest, start_hi, line.end_lo))
        if s.charging_pads:
            long = stays[line.stay_h[stays] >= SHORT_STAY_H]
            on_chargers.append((charge[long], 1.0 / (s.charge_kw * line.stay_h[long]), line.dest[long],
                                start_hi[long], line.end_lo[long]))
        # passengers: flights grouped by pair, slot and the check interval their clock surely lies in
        interval = np.searchsorted(checks, start_lo, side="right")
        clean = np.searchsorted(checks, start_hi + 2 * SLOT_EDGE, side="right") == interval
        for e in np.flatnonzero(line.flight):
            key = (int(origin[e] * v + line.dest[e]), int(line.slot[e]), int(interval[e]) if clean[e] else -1)
            groups.setdefault(key, []).append(int(y[e]))
            earliest[key] = min(earliest.get(key, math.inf), float(start_lo[e]))
    _pad_rows(prog, on_pads, in_day, v, float(s.parking_pads))
    _pad_rows(prog, on_chargers, in_day, v, float(s.charging_pads))

    # passengers of each pair
    arrived = numpy(state.day.arrivals[row]).copy()
    arrived[0] = numpy(state.waiting[row])
    cumulative = arrived.cumsum(0)  # [S, V, V]
    release = _latest_release_h(sim, state, row)
    share = _still_waiting(sim, prog, lines, ys, checks, release)
    keys = list(groups)
    n = prog.block(len(keys), 0.0, np.inf, integer=True)
    costs.append((n, np.array([-s.fare_per_mile * miles[pair // v, pair % v] for pair, _, _ in keys])))
    for g, (pair, slot, _) in enumerate(keys):
        # a flight boards at most the seats, and at most the whole passengers who can be waiting then (none boarded
        # before, each slot's arrivals decayed from their latest release): tighter where few can be waiting
        waiting = arrived[: slot + 1, pair // v, pair % v] @ np.exp(
            -np.clip(earliest[pair, slot, keys[g][2]] - release[: slot + 1], 0.0, None) / s.patience_h)
        per_flight = min(float(s.seats), math.floor(waiting + FLUID_SLACK))
        flights = groups[keys[g]]
        prog.row([n[g], *flights], [1.0] + [-per_flight] * len(flights), -np.inf, 0.0)
    for pair in range(v * v):
        i, j = divmod(pair, v)
        mine = np.array([g for g, key in enumerate(keys) if key[0] == pair], dtype=np.int64)
        if not len(mine):
            continue
        for slot in range(s.slots):  # boarded up to a slot ≤ arrived up to it
            upto = n[[g for g in mine if keys[g][1] <= slot]]
            if len(upto):
                prog.row(upto, 1.0, -np.inf, float(cumulative[slot, i, j]))
        # the waiting fluid at each check is not negative: boarded, faded since the start of its check interval
        # (a running sum) ≤ arrived, faded since their release (_still_waiting); clean intervals only
        interval = np.array([keys[g][2] for g in mine])
        clean = interval >= 0
        keep = np.exp(-(checks - interval_start[:-1]) / s.patience_h)
        boarded = prog.running(n[mine[clean]], np.ones(int(clean.sum())), interval[clean], len(checks), keep)
        for q in range(int(interval[clean].min(initial=len(checks))), len(checks)):
            at = checks[q] - SLOT_EDGE
            cols, vals = [boarded[q]], [1.0]
            for slot in range(1, _slot32(sim, at) + 1):
                if arrived[slot, i, j]:
                    col, factor = share[slot, q]
                    cols.append(col)
                    vals.append(-arrived[slot, i, j] * factor)
            prog.row(cols, vals, -np.inf, FLUID_SLACK + arrived[0, i, j] * math.exp(-(at - s.day_start_h)
                                                                                      / s.patience_h))

    objective = np.zeros(prog.size)
    for cols, dollars in costs:
        objective[cols] += dollars
    result = prog.solve(objective, settings)
    if result.status in (0, 1) and result.mip_dual_bound is not None and np.isfinite(result.mip_dual_bound):
        upper, status = -float(result.mip_dual_bound), {0: "optimal", 1: "time_limit"}[result.status]
    else:  # no schedule in time, so scipy gives no dual bound: the LP relaxation's optimum is one
        relaxed = prog.solve(objective, settings, relax=True)
        if relaxed.status != 0:
            raise RuntimeError(f"HiGHS found no bound for day {row} within time_limit_s = {settings.time_limit_s}, "
                               f"raise it (MILP: {result.message}; LP relaxation: {relaxed.message})")
        upper, status = -float(relaxed.fun), "lp_relaxation"
    if result.x is None:
        return upper, math.nan, math.nan, status, prog.size, [[] for _ in lines]
    return upper, -float(result.fun), float(result.mip_gap), status, prog.size, _paths(sim, lines, ys, result.x)


def _paths(sim: FleetSim, lines: list[_Timeline], ys: list[np.ndarray], x: np.ndarray) -> list[AircraftPath]:
    """Each aircraft's decisions on the MILP's schedule ``x``: ``(clock, slot, choice)``."""
    paths = []
    for line, y in zip(lines, ys, strict=True):
        taken = x[y] > 0.5
        path, node = [], 0
        while node >= 0:
            e = int(np.flatnonzero(taken & (line.tail == node))[0])
            clock = float(line.exact[node])
            slot = int(line.slot[e]) if line.flight[e] else _slot32(sim, line.lo[node])
            path.append((clock, slot, int(line.dest[e]) if line.flight[e] else sim.scenario.n_vertiports))
            node = int(line.head[e])
        paths.append(path)
    return paths


def _solve(sim: FleetSim, state: FleetState, settings: ExactSettings) -> tuple[ExactBound, list[list[AircraftPath]]]:
    _check(sim, state, settings)
    days = state.time_h.shape[0]
    upper, incumbent, gap, seconds = (np.zeros(days) for _ in range(4))
    variables = np.zeros(days, dtype=np.int64)
    status: list[str] = []
    paths = []
    for b in range(days):
        started = time.perf_counter()
        upper[b], incumbent[b], gap[b], day_status, variables[b], day_paths = _solve_day(sim, state, b, settings)
        seconds[b] = time.perf_counter() - started
        status.append(day_status)
        paths.append(day_paths)
    return ExactBound(upper, incumbent, gap, status, seconds, variables), paths


def exact_bound(sim: FleetSim, state: FleetState, settings: ExactSettings | None = None) -> ExactBound:
    """The perfect-information upper bound on the profit of each day (row) of ``state``, the days' start state
    (module docstring). Raises ValueError for instances over ``settings.max_size`` or ``max_variables``."""
    return _solve(sim, state, settings or ExactSettings())[0]


# -- the policy -----------------------------------------------------------------------------------------------------
def take_rows(state: FleetState, index: torch.Tensor) -> FleetState:
    """The rows ``index [K]`` of ``state`` (its sampled day's included), e.g. one day repeated ``K`` times."""

    def take(item: Any) -> dict[str, torch.Tensor]:
        return {f.name: getattr(item, f.name)[index] for f in fields(item) if f.name != "day"}

    return replace(state, **take(state), day=Days(**take(state.day)))


def path_plans(sim: FleetSim, paths: list[list[AircraftPath]]) -> torch.Tensor:
    """``[B, A, S]``: each aircraft's choice at its first decision of each slot on its path (stay elsewhere; an
    aircraft without a path stays all day)."""
    s = sim.scenario
    plans = torch.full((len(paths), s.n_aircraft, s.slots), s.n_vertiports, dtype=torch.long)
    for b, day in enumerate(paths):
        for a, path in enumerate(day):
            for _, slot, choice in reversed(path):  # the first decision of a slot is written last
                plans[b, a, slot] = choice
    return plans.to(sim.device)


class ExactPolicy:
    """Flies the exact bound's MILP schedule (module docstring). :meth:`plan` solves every day of the start state
    and keeps, per day, the MILP's plan or greedy's recorded plan, whichever the known day pays more for (HiGHS may
    stop at its time limit with a poor schedule or none): ``from_milp [B]`` says which. ``bound`` keeps the
    :class:`ExactBound`, ``plans [B, A, S]`` the plans kept, ``milp_profit [B]`` the MILP plan's simulated profit and
    ``planned_profit [B]`` the kept plan's (what acting earns: at most ``bound.upper_bound``, usually less)."""

    name = "exact"

    def __init__(self, sim: FleetSim, settings: ExactSettings | None = None) -> None:
        self.sim, self.settings = sim, settings or ExactSettings()
        self.follower: ScheduleFollower | None = None
        self.bound: ExactBound | None = None
        self.plans: torch.Tensor | None = None
        self.from_milp: torch.Tensor | None = None
        self.milp_profit: torch.Tensor | None = None
        self.planned_profit: torch.Tensor | None = None
        self.planning_seconds = 0.0

    def plan(self, sim: FleetSim, state: FleetState) -> None:
        started = time.perf_counter()
        self.sim = sim
        self.bound, paths = _solve(sim, state, self.settings)
        days = state.time_h.shape[0]
        candidates = torch.stack([path_plans(sim, paths), record_schedule(sim, GreedyPolicy(sim), state)])
        both = take_rows(state, torch.arange(days, device=sim.device).repeat(2))
        earned = run(sim, ScheduleFollower(sim, candidates.flatten(0, 1)), state=both,
                     reducers={"profit": Sum("profit")}).totals["profit"].reshape(2, days)
        self.from_milp = earned[0] >= earned[1]
        self.plans = torch.where(self.from_milp[:, None, None], candidates[0], candidates[1])
        self.milp_profit, self.planned_profit = earned[0], torch.where(self.from_milp, earned[0], earned[1])
        self.follower = ScheduleFollower(sim, self.plans)
        self.planning_seconds += time.perf_counter() - started

    def act(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.follower is None:
            raise RuntimeError("ExactPolicy.act before plan: the exact policy is clairvoyant, call plan(sim, "
                               "start_state) with the days' start state first")
        return self.follower.act(obs)
