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
  when it beats ``V(own cell, t)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from decisionlab.core import PolicyMismatchError, TabularValue, value_from_config
from decisionlab.domains.ride_hailing.city import City, cancel_probability, city_of
from decisionlab.domains.ride_hailing.matching import Candidates, candidates, greedy_matching, max_weight_matching
from decisionlab.domains.ride_hailing.scenario import SECONDS_PER_DAY, CityScenario
from decisionlab.domains.ride_hailing.sim import CityAction, CityObservation, city_action

DISPATCHERS = ("nearest", "max_fare", "fare_matching", "value")
REPOSITIONERS = ("stay", "random_walk", "demand", "value")
VALUE_TIME_BINS = 24  # hourly bins: a table a city's trips fill in a few days
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
        city: City | None = None,
        device: torch.device | str = "cpu",
        name: str | None = None,
    ) -> None:
        if dispatch not in DISPATCHERS or reposition not in REPOSITIONERS:
            raise ValueError(f"dispatch must be one of {DISPATCHERS}, reposition one of {REPOSITIONERS}")
        if "value" in (dispatch, reposition) and value is None:
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

    # --- helpers ---------------------------------------------------------------------------------

    def speed_kmh(self, time_s: torch.Tensor) -> torch.Tensor:
        """``[B]`` driving speed at each city's time."""
        return self.city.speed_at(time_s)

    def values(self, cells: torch.Tensor, time_s: torch.Tensor) -> torch.Tensor:
        """``V`` at cells and times of any (equal) shape."""
        assert self.value is not None
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
            hour = (torch.remainder(obs.time_s, SECONDS_PER_DAY) // 3600).long().clamp(0, 23)
            demand = self.city.origin_weight[hour]  # [B, C]
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

    def act(self, obs: CityObservation) -> CityAction:
        """The driver of each order slot and the target cell of each driver (int64, −1: none)."""
        assigned = self.assign(obs)
        return city_action(assigned, self.targets(obs, assigned))


class ValuePolicy(nn.Module):
    """A learned value function ``V(cell, time of day)`` that dispatches by value matching and
    repositions by value: the registry's ``ride_value`` kind (tabular or neural value, see
    :mod:`decisionlab.core.nets.value`)."""

    kind: ClassVar[str] = "ride_value"

    def __init__(self, value: Mapping[str, Any] | nn.Module, *, gamma: float = DEFAULT_GAMMA,
                 gamma_period_s: float = DEFAULT_GAMMA_PERIOD_S, reposition: str = "value", k: int = 11,
                 idle_threshold_s: float = 300.0, travel_cost_per_km: float = 0.1) -> None:
        super().__init__()
        self.value = value if isinstance(value, nn.Module) else value_from_config(dict(value))
        if reposition not in REPOSITIONERS:
            raise ValueError(f"reposition must be one of {REPOSITIONERS}")
        self.gamma, self.gamma_period_s, self.reposition = float(gamma), float(gamma_period_s), reposition
        self.k, self.idle_threshold_s = int(k), float(idle_threshold_s)
        self.travel_cost_per_km = float(travel_cost_per_km)

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value.config(), "gamma": self.gamma,
                "gamma_period_s": self.gamma_period_s, "reposition": self.reposition, "k": self.k,
                "idle_threshold_s": self.idle_threshold_s, "travel_cost_per_km": self.travel_cost_per_km}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ValuePolicy:
        return cls(**{k: v for k, v in config.items() if k != "kind"})

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
        return CityPolicy(scenario, "value", self.reposition, value=self.value, gamma=self.gamma,
                          gamma_period_s=self.gamma_period_s, k=self.k, idle_threshold_s=self.idle_threshold_s,
                          travel_cost_per_km=self.travel_cost_per_km, device=device, name="value")

    def act(self, obs: CityObservation) -> torch.Tensor:  # pragma: no cover - always bound by for_scenario
        raise PolicyMismatchError("a ride_value policy acts in a scenario: call for_scenario(scenario) first")
