"""Dispatch-and-repositioning policies: one dispatcher and one repositioner per policy.

Every policy maps a :class:`~decisionlab.domains.ride_hailing.sim.CityObservation` to the action
``[B, Q + N]`` (a driver per order slot, then a target cell per driver; −1 = none). The candidate
drivers of an order are its ``k`` nearest free drivers within ``max_pickup_km``.

Dispatchers:

- ``nearest``: orders oldest first, each takes its nearest free candidate (serial greedy);
- ``max_fare``: orders by fare, highest first, each takes its nearest free candidate;
- ``fare_matching``: the bipartite matching of largest total ``(1 − p_cancel)·fare``;
- ``value``: among the matchings that serve the most orders, the one of largest total
  ``(1 − p_cancel)·(fare + γ^Δt·V(dest, t + Δt) − V(driver's cell, t))``, Δt = pickup + trip time, γ per
  ``gamma_period_s`` (Tang et al. 2021; their KM matching is perfect on its candidate graph).

Repositioners (drivers idle for at least ``idle_threshold_s`` and not dispatched now):

- ``stay``: none (drivers only drift);
- ``random_walk``: to a random neighbouring cell;
- ``demand``: to the cell within ``reposition_max_km`` with the most expected orders per idle
  driver this hour (demand chasing), when it beats the driver's own cell;
- ``value``: to the cell maximising ``γ^τ·V(c, t + τ) − travel_cost_per_km·km`` (τ = drive time),
  when it beats ``V(own cell, t)``;
- ``value_supply``: once every ``reposition_every_s``, the idle drivers are assigned together to
  cell *slots* by a maximum-weight matching: slot ``j`` of cell ``c`` is worth
  ``γ^τ·V(c, t + τ)·P(N_c ≥ S_c + j + 1) − travel_cost_per_km·km``, with ``N_c`` the orders cell ``c``
  expects in the next ``competition_s`` (Poisson, from the policy's demand table) and ``S_c`` the
  free drivers already there; so the second driver sent to a cell is worth less than the first and
  drivers spread by the competition they expect instead of herding to one cell. A driver whose
  best slot is in its own cell stays.

``demand`` (``[24, C]`` orders per hour and cell) is what the demand-reading repositioners know: the
simulator's true rates by default, or a table estimated from logs
(:mod:`decisionlab.domains.ride_hailing.demand`). A policy with ``online`` learning keeps a private
copy of its value per simulated day and updates it from that day's trips
(:mod:`decisionlab.domains.ride_hailing.online`); the rollout loop asks for it with
:meth:`CityPolicy.start_online`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from decisionlab.core import PolicyMismatchError, TabularValue, value_from_config, value_table
from decisionlab.domains.ride_hailing.city import City, cancel_probability, city_of
from decisionlab.domains.ride_hailing.demand import true_demand
from decisionlab.domains.ride_hailing.matching import Candidates, candidates, greedy_matching, max_weight_matching
from decisionlab.domains.ride_hailing.online import EpisodeValues, OnlineLearning
from decisionlab.domains.ride_hailing.scenario import SECONDS_PER_DAY, CityScenario
from decisionlab.domains.ride_hailing.sim import CityAction, CityObservation, city_action

DISPATCHERS = ("nearest", "max_fare", "fare_matching", "value")
REPOSITIONERS = ("stay", "random_walk", "demand", "value", "value_supply")
VALUE_TIME_BINS = 48  # half-hour bins
DEFAULT_GAMMA, DEFAULT_GAMMA_PERIOD_S = 0.9, 600.0
MAX_REPOSITION_STEPS = 8  # a repositioning target is at most this many cells away (217 candidate cells)


def observation_hash(obs: CityObservation) -> torch.Tensor:
    """``[B, N]`` pseudo-random 32-bit integers from (time, driver, cell): the same state gets the same
    draws whatever else is in the batch (a generator would tie them to the batch and the call order)."""
    second = torch.floor(obs.time_s).long()[:, None]
    key = second * 1_000_003 + torch.arange(obs.n_drivers, device=second.device) * 7_919 + obs.driver_cell
    return (key * 2_654_435_761) % (1 << 32)


def first_true(mask: torch.Tensor) -> torch.Tensor:
    """``[B, W]`` indices of the ``True`` entries of ``mask [B, S]`` first (in order), then others, with
    ``W`` the most ``True`` entries of any row."""
    width = int(mask.sum(1).max()) if mask.numel() else 0
    return torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :width]


class CityPolicy:
    """A dispatcher plus a repositioner acting in one scenario (see the module docstring)."""

    def __init__(
        self,
        scenario: CityScenario,
        dispatch: str,
        reposition: str = "stay",
        *,
        value: nn.Module | None = None,
        gamma: float = DEFAULT_GAMMA,
        gamma_period_s: float = DEFAULT_GAMMA_PERIOD_S,
        k: int = 11,
        idle_threshold_s: float = 300.0,
        travel_cost_per_km: float = 0.1,
        serve_first: bool = True,
        reposition_temperature: float = 1.0,
        demand: torch.Tensor | None = None,
        online: OnlineLearning | None = None,
        slots_per_cell: int = 4,
        competition_s: float = 600.0,
        reposition_every_s: float = 60.0,
        city: City | None = None,
        device: torch.device | str = "cpu",
        name: str | None = None,
    ) -> None:
        if dispatch not in DISPATCHERS or reposition not in REPOSITIONERS:
            raise ValueError(f"dispatch must be one of {DISPATCHERS}, reposition one of {REPOSITIONERS}")
        if ("value" in (dispatch, reposition) or reposition == "value_supply") and value is None:
            raise ValueError("value dispatch and repositioning need a value function")
        self.scenario, self.dispatch, self.reposition, self.value = scenario, dispatch, reposition, value
        self.gamma, self.gamma_period_s, self.k = float(gamma), float(gamma_period_s), int(k)
        self.idle_threshold_s, self.travel_cost_per_km = float(idle_threshold_s), float(travel_cost_per_km)
        self.serve_first, self.reposition_temperature = bool(serve_first), float(reposition_temperature)
        self.city = city if city is not None else city_of(scenario, str(torch.device(device)))
        self.grid = self.city.grid
        # [C, D]; at most MAX_REPOSITION_STEPS cells away, so the candidates of a driver stay few
        steps = min(MAX_REPOSITION_STEPS, int(scenario.reposition_max_km / (scenario.cell_km * scenario.road_detour)
                                              + 1e-9))
        self.disk = self.grid.disk(max(0, steps))
        self.name = name or (dispatch if reposition == "stay" else f"{dispatch}+{reposition}")
        self.demand = (true_demand(self.city) if demand is None else demand).to(self.grid.centres_km.device).float()
        if self.demand.shape != (24, self.grid.n_cells):
            raise ValueError(f"demand must be [24, {self.grid.n_cells}] (orders per hour and cell), "
                             f"got {list(self.demand.shape)}")
        self.online, self.episode_values = online, None
        if online is not None and value is None:
            raise ValueError("online learning needs a value function")
        self.slots_per_cell, self.competition_s = int(slots_per_cell), float(competition_s)
        self.reposition_every_s = float(reposition_every_s)

    # --- online learning -------------------------------------------------------------------------

    def start_online(self, batch: int) -> CityPolicy:
        """This policy for ``batch`` new days, each with its own copy of the value learning from that day
        (itself when it does not learn online); the returned policy's :meth:`observe` takes each window."""
        if self.online is None:
            return self
        value = self.value
        assert value is not None
        start = value.table.detach() if isinstance(value, TabularValue) else value_table(value)
        learner = copy.copy(self)
        learner.episode_values = EpisodeValues(start.float(), batch, float(value.period_s), self.online)
        return learner

    def observe(self, state: Any, info: dict[str, torch.Tensor]) -> None:  # noqa: ANN401 - a CityState
        """Learn from one simulated window (a no-op unless started by :meth:`start_online`)."""
        if self.episode_values is not None:
            self.episode_values.observe(float(state.time_s), info)

    # --- helpers ---------------------------------------------------------------------------------

    def speed_kmh(self, time_s: torch.Tensor) -> torch.Tensor:
        """``[B]`` driving speed at each city's time."""
        return self.city.speed_at(time_s)

    def values(self, cells: torch.Tensor, time_s: torch.Tensor) -> torch.Tensor:
        """``V`` at cells and times of any (equal) shape ``[B, ...]``."""
        assert self.value is not None
        if self.episode_values is not None:
            return self.episode_values(cells, time_s).float()
        flat = self.value(cells.reshape(-1), time_s.reshape(-1).float())
        return flat.reshape(cells.shape).float()

    def discount(self, seconds: torch.Tensor) -> torch.Tensor:
        return self.gamma ** (seconds / self.gamma_period_s)

    def candidates(self, obs: CityObservation) -> tuple[Candidates, torch.Tensor]:
        """Candidates of the pending orders only: ``(candidates [B, M', K], slots [B, M'])`` where
        ``slots`` are the order slots the ``M'`` rows stand for (pending ones first; a window has far
        fewer pending orders than slots, and far fewer free drivers than drivers)."""
        centres = self.grid.centres_km
        slots = first_true(obs.order_valid)
        drivers = first_true(obs.driver_free)
        valid = torch.gather(obs.order_valid, 1, slots)
        free = torch.gather(obs.driver_free, 1, drivers)
        origin = torch.gather(obs.order_origin, 1, slots)
        cell = torch.gather(obs.driver_cell, 1, drivers)
        cand = candidates(centres[origin], valid, centres[cell], free, self.k, self.scenario.max_pickup_km,
                          self.scenario.road_detour)
        found = cand.driver >= 0
        driver = torch.gather(drivers, 1, cand.driver.clamp_min(0).flatten(1)).view_as(cand.driver)
        return Candidates(torch.where(found, driver, -1), cand.distance_km), slots

    # --- dispatch --------------------------------------------------------------------------------

    @torch.no_grad()
    def assign(self, obs: CityObservation) -> torch.Tensor:
        """``[B, Q]`` the driver given each order slot (−1 none)."""
        cand, slots = self.candidates(obs)
        assigned = torch.full_like(obs.order_origin, -1)
        if slots.shape[1] == 0:
            return assigned
        if self.dispatch == "nearest":
            # Oldest first; the slot index breaks ties (slots are kept in arrival order).
            chosen = greedy_matching(cand.driver, torch.gather(obs.order_wait_s, 1, slots).double())
        elif self.dispatch == "max_fare":
            chosen = greedy_matching(cand.driver, torch.gather(obs.order_fare, 1, slots).double())
        else:
            # Value matching serves as many orders as the window allows and among those matchings takes
            # the largest total advantage (the paper's KM matching is perfect on its candidate graph).
            chosen = max_weight_matching(cand.driver, self.edge_weights(obs, cand, slots),
                                         maximize_cardinality=self.dispatch == "value" and self.serve_first)
        return assigned.scatter_(1, slots, chosen)

    def edge_weights(self, obs: CityObservation, cand: Candidates, slots: torch.Tensor) -> torch.Tensor:
        """``[B, M', K]`` expected gain of each candidate edge (−inf where none)."""
        pickup_km = cand.distance_km.clamp_min(self.grid.intra_km)
        keep = 1.0 - cancel_probability(torch.where(cand.driver >= 0, pickup_km, 0.0), self.scenario)
        fares = torch.gather(obs.order_fare, 1, slots).unsqueeze(-1).expand_as(pickup_km)
        if self.dispatch == "fare_matching":
            gain = fares
        else:
            now = obs.time_s.unsqueeze(-1).unsqueeze(-1).expand_as(pickup_km)
            pickup_s = pickup_km * (3600.0 / self.speed_kmh(obs.time_s)).float()[:, None, None]
            trip_s = torch.gather(obs.order_trip_s, 1, slots).unsqueeze(-1)
            delta_s = torch.where(cand.driver >= 0, pickup_s + trip_s, 0.0)
            dest = torch.gather(obs.order_dest, 1, slots).unsqueeze(-1).expand_as(pickup_km)
            here = torch.gather(obs.driver_cell, 1, cand.driver.clamp_min(0).flatten(1)).view_as(cand.driver)
            gain = fares + self.discount(delta_s) * self.values(dest, now + delta_s.double()) - self.values(here, now)
        weight = keep * gain
        return torch.where(cand.driver >= 0, weight, -torch.inf)

    # --- repositioning ---------------------------------------------------------------------------

    @torch.no_grad()
    def targets(self, obs: CityObservation, assigned: torch.Tensor) -> torch.Tensor:
        """``[B, N]`` a target cell per driver (−1 none)."""
        batch, n = obs.driver_cell.shape
        none = torch.full((batch, n), -1, dtype=torch.long, device=obs.driver_cell.device)
        if self.reposition == "stay" or n == 0:
            return none
        dispatched = torch.zeros(batch, n + 1, dtype=torch.bool, device=none.device)
        dispatched.scatter_(1, torch.where(assigned >= 0, assigned, n), True)
        eligible = obs.driver_free & ~dispatched[:, :n] & (obs.driver_idle_s >= self.idle_threshold_s)
        if not bool(eligible.any()):
            return none
        cell = obs.driver_cell
        if self.reposition == "value_supply":
            return self.supply_targets(obs, eligible, none)
        if self.reposition == "random_walk":
            pick = 1 + (observation_hash(obs) >> 16) % 6
            target = self.grid.neighbours[cell, pick]
            return torch.where(eligible & (target != cell), target, -1)
        # Score only the eligible drivers (few of the fleet in any window): [B, E, D].
        who = first_true(eligible)
        picked = torch.gather(eligible, 1, who)
        here = torch.gather(cell, 1, who)
        options = self.disk[here]  # own cell first
        km = self.grid.distance_km(here.unsqueeze(-1), options)
        if self.reposition == "demand":
            demand = self.demand[self.hour_of(obs.time_s)]  # [B, C]
            idle = torch.zeros_like(demand).scatter_add_(1, cell, obs.driver_free.float())
            per_driver = demand / (1.0 + idle)
            score = torch.gather(per_driver, 1, options.flatten(1)).view_as(km)
        else:
            now = obs.time_s[:, None, None].expand_as(km)
            stay = options == here.unsqueeze(-1)
            drive_s = torch.where(stay, 0.0, km * (3600.0 / self.speed_kmh(obs.time_s)).float()[:, None, None])
            score = self.discount(drive_s) * self.values(options, now + drive_s.double()) \
                - self.travel_cost_per_km * torch.where(stay, 0.0, km)
        score = torch.where(km <= self.scenario.reposition_max_km + 1e-6, score, -torch.inf)
        if self.reposition == "value" and self.reposition_temperature > 0:
            # Sample the target ∝ exp(score / T) instead of the argmax, so the idle drivers of one cell
            # spread over the good cells around it instead of all driving to the single best one.
            u = (torch.gather(observation_hash(obs), 1, who).double() + 0.5) / float(1 << 32)
            weights = torch.softmax(score / self.reposition_temperature, dim=-1)
            best = (torch.cumsum(weights, -1) < u.unsqueeze(-1).float()).sum(-1).clamp_max(score.shape[-1] - 1)
        else:
            best = score.argmax(-1)
        target = torch.gather(options, 2, best.unsqueeze(-1)).squeeze(-1)
        better = torch.gather(score, 2, best.unsqueeze(-1)).squeeze(-1) > score[..., 0] + 1e-9
        chosen = torch.where(picked & better & (target != here), target, -1)
        return none.scatter_(1, who, chosen) if who.shape[1] else none

    @staticmethod
    def hour_of(time_s: torch.Tensor) -> torch.Tensor:
        return (torch.remainder(time_s, SECONDS_PER_DAY) // 3600).long().clamp(0, 23)

    def supply_targets(self, obs: CityObservation, eligible: torch.Tensor, none: torch.Tensor) -> torch.Tensor:
        """``value_supply`` (module docstring): the eligible drivers matched to cell slots, ``[B, N]``."""
        w = self.scenario.window_seconds
        period = torch.floor(obs.time_s / self.reposition_every_s)
        eligible = eligible & (period != torch.floor((obs.time_s - w) / self.reposition_every_s))[:, None]
        if not bool(eligible.any()):
            return none
        who = first_true(eligible)  # [B, E]
        picked = torch.gather(eligible, 1, who)
        here = torch.gather(obs.driver_cell, 1, who)
        options = self.disk[here]  # [B, E, D], own cell first
        km = self.grid.distance_km(here.unsqueeze(-1), options)
        stay = options == here.unsqueeze(-1)
        now = obs.time_s[:, None, None].expand_as(km)
        drive_s = torch.where(stay, 0.0, km * (3600.0 / self.speed_kmh(obs.time_s)).float()[:, None, None])
        value = self.discount(drive_s) * self.values(options, now + drive_s.double())  # [B, E, D]
        # Competition: free drivers staying put, and the orders each cell expects soon.
        staying = (obs.driver_free & ~eligible).float()
        supply = torch.zeros(obs.driver_cell.shape[0], self.grid.n_cells, device=km.device)
        supply.scatter_add_(1, obs.driver_cell, staying)
        expected = self.demand[self.hour_of(obs.time_s)] * (self.competition_s / 3600.0)  # [B, C]
        rank = supply.unsqueeze(-1) + torch.arange(1, self.slots_per_cell + 1, device=km.device)  # [B, C, J]
        p_order = torch.special.gammainc(rank, expected.unsqueeze(-1).clamp_min(1e-9))  # P(Poisson ≥ rank)
        slot_p = torch.gather(p_order, 1, options.flatten(1).unsqueeze(-1).expand(-1, -1, self.slots_per_cell))
        slot_p = slot_p.view(*options.shape, self.slots_per_cell)  # [B, E, D, J]
        weight = value.unsqueeze(-1) * slot_p - self.travel_cost_per_km * torch.where(stay, 0.0, km).unsqueeze(-1)
        reachable = (km <= self.scenario.reposition_max_km + 1e-6) & picked.unsqueeze(-1)
        weight = torch.where(reachable.unsqueeze(-1), weight, -torch.inf)
        slot_id = options.unsqueeze(-1) * self.slots_per_cell + torch.arange(self.slots_per_cell, device=km.device)
        chosen = max_weight_matching(slot_id.flatten(2), weight.flatten(2))  # [B, E] slot ids, -1 none
        target = torch.where(chosen >= 0, torch.div(chosen, self.slots_per_cell, rounding_mode="floor"), -1)
        target = torch.where(picked & (target != here), target, -1)
        return none.scatter_(1, who, target)

    def act(self, obs: CityObservation) -> CityAction:
        """The driver of each order slot and the target cell of each driver (int64, −1: none)."""
        assigned = self.assign(obs)
        return city_action(assigned, self.targets(obs, assigned))


class ValuePolicy(nn.Module):
    """A learned value function ``V(cell, time of day)`` that dispatches by value matching and
    repositions by value: the registry's ``ride_value`` kind (tabular or neural value, see
    :mod:`decisionlab.core.nets.value`).

    ``online`` (``{"alpha", "ensemble_every_hours", "weight_online"}``, or ``None``: frozen) says whether
    the policy keeps learning from the trips of each simulated day it serves, blended every
    ``ensemble_every_hours`` with ``anchor`` (V1D3's offline value) when it has one; the API always
    serves the registered snapshot. ``demand`` (``[24][C]`` orders per hour and cell, estimated from
    logs) is what ``value_supply`` repositioning expects of the competition."""

    kind: ClassVar[str] = "ride_value"

    def __init__(self, value: Mapping[str, Any] | nn.Module, *, gamma: float = DEFAULT_GAMMA,
                 gamma_period_s: float = DEFAULT_GAMMA_PERIOD_S, reposition: str = "value", k: int = 11,
                 idle_threshold_s: float = 300.0, travel_cost_per_km: float = 0.1,
                 anchor: Mapping[str, Any] | nn.Module | None = None, online: Mapping[str, float] | None = None,
                 demand: list[list[float]] | None = None, slots_per_cell: int = 4, competition_s: float = 600.0,
                 reposition_every_s: float = 60.0) -> None:
        super().__init__()
        self.value = value if isinstance(value, nn.Module) else value_from_config(dict(value))
        self.anchor = anchor if isinstance(anchor, nn.Module) or anchor is None else value_from_config(dict(anchor))
        if reposition not in REPOSITIONERS:
            raise ValueError(f"reposition must be one of {REPOSITIONERS}")
        if online is not None and set(online) != {"alpha", "ensemble_every_hours", "weight_online"}:
            raise ValueError("online must have exactly the keys alpha, ensemble_every_hours, weight_online")
        self.gamma, self.gamma_period_s, self.reposition = float(gamma), float(gamma_period_s), reposition
        self.k, self.idle_threshold_s = int(k), float(idle_threshold_s)
        self.travel_cost_per_km = float(travel_cost_per_km)
        self.online = None if online is None else {key: float(v) for key, v in online.items()}
        self.demand = demand
        self.slots_per_cell, self.competition_s = int(slots_per_cell), float(competition_s)
        self.reposition_every_s = float(reposition_every_s)

    @property
    def learns_online(self) -> bool:
        return self.online is not None

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value.config(), "gamma": self.gamma,
                "gamma_period_s": self.gamma_period_s, "reposition": self.reposition, "k": self.k,
                "idle_threshold_s": self.idle_threshold_s, "travel_cost_per_km": self.travel_cost_per_km,
                "anchor": None if self.anchor is None else self.anchor.config(), "online": self.online,
                "demand": self.demand, "slots_per_cell": self.slots_per_cell, "competition_s": self.competition_s,
                "reposition_every_s": self.reposition_every_s}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ValuePolicy:
        return cls(**{k: v for k, v in config.items() if k != "kind"})

    def with_value(self, value: nn.Module, *, anchor: nn.Module | None = None,
                   online: Mapping[str, float] | None = None) -> ValuePolicy:
        """This policy's dispatch and repositioning settings around another ``value`` (and ``anchor``,
        ``online``: none by default, a frozen policy)."""
        settings = {k: v for k, v in self.config().items() if k not in ("kind", "value", "anchor", "online")}
        return ValuePolicy(value, anchor=anchor, online=online, **settings)

    def frozen(self) -> ValuePolicy:
        """The same policy without online learning (the snapshot alone)."""
        return self.with_value(self.value, anchor=self.anchor)

    def learning(self) -> OnlineLearning | None:
        """The online-learning rule of :meth:`for_scenario`'s policy (``None`` when frozen)."""
        if self.online is None:
            return None
        anchor = None
        if self.anchor is not None:
            # the anchor's table, computed once per anchor version (the policy cache binds a policy per scenario)
            key = (id(self.anchor), *(p._version for p in self.anchor.parameters()))
            cached = getattr(self, "_anchor_table", None)
            if cached is None or cached[0] != key:
                n_bins = self.value.n_time_bins
                table = value_table(self.anchor, self.value.n_locations, n_bins, float(self.value.period_s)).detach()
                cached = self._anchor_table = (key, table)
            anchor = cached[1]
        return OnlineLearning(alpha=self.online["alpha"], gamma=self.gamma, gamma_period_s=self.gamma_period_s,
                              anchor=anchor, ensemble_every_s=self.online["ensemble_every_hours"] * 3600.0,
                              weight_online=self.online["weight_online"])

    @classmethod
    def initial(cls, scenario: CityScenario, device: torch.device) -> ValuePolicy:
        """A zero value table (value matching then starts as fare matching)."""
        cells = scenario.grid_size ** 2
        return cls(TabularValue(cells, VALUE_TIME_BINS, SECONDS_PER_DAY)).to(device)

    def for_scenario(self, scenario: CityScenario) -> CityPolicy:
        cells = scenario.grid_size ** 2
        if self.value.n_locations != cells:
            raise PolicyMismatchError(f"this value function knows {self.value.n_locations} cells; the scenario's "
                                      f"grid has {cells} (grid_size={scenario.grid_size})")
        device = next(self.value.parameters()).device
        demand = None if self.demand is None else torch.tensor(self.demand, dtype=torch.float32, device=device)
        if demand is not None and demand.shape != (24, cells):
            raise PolicyMismatchError(f"this policy's demand table is {list(demand.shape)}; the scenario needs "
                                      f"[24, {cells}]")
        return CityPolicy(scenario, "value", self.reposition, value=self.value, gamma=self.gamma,
                          gamma_period_s=self.gamma_period_s, k=self.k, idle_threshold_s=self.idle_threshold_s,
                          travel_cost_per_km=self.travel_cost_per_km, demand=demand, online=self.learning(),
                          slots_per_cell=self.slots_per_cell, competition_s=self.competition_s,
                          reposition_every_s=self.reposition_every_s, device=device, name="value")

    def act(self, obs: CityObservation) -> torch.Tensor:  # pragma: no cover - always bound by for_scenario
        raise PolicyMismatchError("a ride_value policy acts in a scenario: call for_scenario(scenario) first")
