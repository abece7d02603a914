"""The city's demand and supply patterns, drawn once per scenario from ``seed_city``.

- **Hot spots**: ``n_hotspots`` centres on the grid, each a *home* area (trips start there in the
  morning and end there in the evening), an *office* area (the reverse) or *nightlife* (busy in the
  evening and at night). A cell's weight at hour ``h`` is ``(1 − share)/C + share · Σ_k a_k(h) ·
  g_k(cell)`` with ``g_k`` a Gaussian bump of spread ``hotspot_km`` normalised over the grid, and
  ``a_k(h)`` the hour profile of its kind; origins and destinations have their own profiles, so
  demand is spatially unbalanced and the imbalance changes over the day.
- **Daily profile**: orders per second ``λ(t) = orders_per_day · p(t) / ∫p``, with
  ``p = 1 + peak_strength·(N(t; morning, 1.5 h) + N(t; evening, 2 h)) / N(0; 0, 1.5 h)``, 24-hour
  periodic. Congestion (the speed factor) follows the same peaks.
- **Idle drift**: per-(hour, cell) probabilities over the cell and its six neighbours ``[24, C, 7]``,
  proportional to the neighbours' origin weight (idle drivers drift toward demand).
- **Shifts**: a driver starts work at a time drawn from a mix of early, day, evening and night
  shifts and works ``shift_hours``; they start at home (a cell drawn by the *home* weights).

All tables are tensors on the simulator's device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from decisionlab.domains.ride_hailing.grid import HexGrid
from decisionlab.domains.ride_hailing.scenario import SECONDS_PER_DAY, CityScenario

KINDS = ("home", "office", "nightlife")
# Shift starts: (hour, spread in hours, share of drivers).
SHIFT_MIX = ((6.5, 1.0, 0.35), (11.0, 1.5, 0.2), (15.5, 1.0, 0.3), (20.0, 1.5, 0.15))
PROFILE_POINTS = 1440  # one per minute: the daily profile's normalisation and its table


def _gauss(hours: np.ndarray, centre: float, spread: float) -> np.ndarray:
    """A 24-hour periodic Gaussian bump (peak 1) at ``centre``."""
    delta = (hours - centre + 12.0) % 24.0 - 12.0
    return np.exp(-0.5 * (delta / spread) ** 2)


def kind_profiles(hours: np.ndarray, s: CityScenario) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{kind: (origin activity [H], destination activity [H])}`` of a hot-spot kind by hour."""
    morning, evening = _gauss(hours, s.morning_peak_hour, 1.5), _gauss(hours, s.evening_peak_hour, 2.0)
    night = _gauss(hours, 23.0, 2.5)
    flat = np.full_like(hours, 0.3)
    return {
        "home": (flat + 2.0 * morning, flat + 2.0 * evening + night),
        "office": (flat + 2.0 * evening, flat + 2.0 * morning),
        "nightlife": (flat + 0.5 * evening + 2.5 * night, flat + 1.5 * evening + 0.5 * night),
    }


@dataclass
class City:
    """The scenario's demand and supply tables (see the module docstring)."""

    grid: HexGrid
    hotspot_cells: torch.Tensor      # [K] long
    hotspot_kinds: tuple[str, ...]
    origin_cdf: torch.Tensor         # [24, C] cumulative origin weights per hour (last = 1)
    dest_cdf: torch.Tensor           # [24, C]
    origin_weight: torch.Tensor      # [24, C] (rows sum to 1): what demand-chasing heuristics read
    drift_cdf: torch.Tensor          # [24, C, 7] cumulative over (stay, six neighbours)
    home_cdf: torch.Tensor           # [C]
    rate_per_minute: torch.Tensor    # [1440] orders per second at each minute of the day
    speed_per_minute: torch.Tensor   # [1440] km/h at each minute of the day

    def minute(self, time_s: float) -> int:
        return int((time_s % SECONDS_PER_DAY) // 60.0) % PROFILE_POINTS

    def hour(self, time_s: float) -> int:
        return int((time_s % SECONDS_PER_DAY) // 3600.0) % 24

    def rate(self, time_s: float) -> float:
        """Orders per second at ``time_s``."""
        return float(self.rate_per_minute[self.minute(time_s)])

    def speed_kmh(self, time_s: float) -> float:
        return float(self.speed_per_minute[self.minute(time_s)])

    def speed_at(self, time_s: torch.Tensor) -> torch.Tensor:
        """Driving speed (km/h) at each of the times ``time_s [...]`` (seconds)."""
        minute = (torch.remainder(time_s, SECONDS_PER_DAY) // 60).long().clamp(0, PROFILE_POINTS - 1)
        return self.speed_per_minute.to(time_s.device)[minute]


def daily_profile(s: CityScenario) -> tuple[np.ndarray, np.ndarray]:
    """``(orders per second [1440], congestion in [0, 1] [1440])`` at each minute of the day."""
    hours = (np.arange(PROFILE_POINTS) + 0.5) / 60.0
    peaks = _gauss(hours, s.morning_peak_hour, 1.5) + _gauss(hours, s.evening_peak_hour, 2.0)
    shape = 1.0 + s.peak_strength * peaks
    rate = s.orders_per_day * shape / (shape.sum() * 60.0)
    congestion = peaks / max(float(peaks.max()), 1e-12)
    return rate, congestion


def _hotspots(s: CityScenario, grid: HexGrid, rng: np.random.Generator) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Hot-spot cells, kinds and weights (the shift's new hot spot last, if any)."""
    margin = 1 if s.grid_size > 4 else 0
    rows = rng.integers(margin, s.grid_size - margin, size=s.n_hotspots + 1)
    cols = rng.integers(margin, s.grid_size - margin, size=s.n_hotspots + 1)
    cells = rows * s.grid_size + cols
    kinds = [KINDS[i % len(KINDS)] for i in range(s.n_hotspots)]
    weights = rng.uniform(0.6, 1.4, size=s.n_hotspots + 1)
    if s.new_hotspot_weight > 0:  # the shift's extra spot: nightlife-like, far from nothing in particular
        kinds.append("nightlife")
        weights[-1] = s.new_hotspot_weight
        return cells, kinds, weights
    return cells[:-1], kinds, weights[:-1]


def build_city(s: CityScenario, device: torch.device | str = "cpu") -> City:
    """The tables of scenario ``s`` on ``device``."""
    grid = HexGrid(s.grid_size, s.cell_km, s.road_detour, device)
    rng = np.random.default_rng(s.seed_city)
    cells, kinds, weights = _hotspots(s, grid, rng)
    centres = grid.centres_km.cpu().double().numpy()
    d2 = ((centres[:, None, :] - centres[cells][None, :, :]) ** 2).sum(-1)  # [C, K]
    bumps = np.exp(-0.5 * d2 / s.hotspot_km**2)
    bumps /= bumps.sum(axis=0, keepdims=True)
    hours = np.arange(24) + 0.5
    profiles = kind_profiles(hours, s)
    origin_act = np.stack([weights[k] * profiles[kind][0] for k, kind in enumerate(kinds)], axis=1)  # [24, K]
    dest_act = np.stack([weights[k] * profiles[kind][1] for k, kind in enumerate(kinds)], axis=1)
    uniform = np.full((24, grid.n_cells), 1.0 / grid.n_cells)

    def weights_of(activity: np.ndarray) -> np.ndarray:
        spots = activity @ bumps.T  # [24, C]
        spots /= spots.sum(axis=1, keepdims=True)
        return (1 - s.hotspot_share) * uniform + s.hotspot_share * spots

    origin, dest = weights_of(origin_act), weights_of(dest_act)
    home_kind = np.array([weights[k] if kind == "home" else 0.0 for k, kind in enumerate(kinds)])
    home = bumps @ home_kind if home_kind.sum() > 0 else np.full(grid.n_cells, 1.0)
    home = 0.5 / grid.n_cells + 0.5 * home / home.sum()
    neighbours = grid.neighbours.cpu().numpy()
    attract = origin[:, neighbours]  # [24, C, 7]
    attract[:, :, 0] *= 2.0  # staying is as likely as the two most likely moves together, roughly
    # A neighbour slot that repeats the cell itself (edge of the grid) must not add weight twice.
    attract = np.where((neighbours == np.arange(grid.n_cells)[:, None])[None] & (np.arange(7) > 0), 0.0, attract)
    drift = attract / attract.sum(axis=2, keepdims=True)
    rate, congestion = daily_profile(s)
    speed = s.speed_kmh * (1.0 - (1.0 - s.peak_speed_factor) * congestion)

    def cdf(p: np.ndarray) -> torch.Tensor:
        c = np.cumsum(p, axis=-1)
        c /= c[..., -1:]
        return torch.as_tensor(c, dtype=torch.float32, device=grid.device)

    return City(
        grid=grid, hotspot_cells=torch.as_tensor(cells, device=grid.device), hotspot_kinds=tuple(kinds),
        origin_cdf=cdf(origin), dest_cdf=cdf(dest),
        origin_weight=torch.as_tensor(origin, dtype=torch.float32, device=grid.device),
        drift_cdf=cdf(drift), home_cdf=cdf(home),
        rate_per_minute=torch.as_tensor(rate, dtype=torch.float64, device=grid.device),
        speed_per_minute=torch.as_tensor(speed, dtype=torch.float64, device=grid.device),
    )


@lru_cache(maxsize=16)
def city_of(scenario: CityScenario, device: str = "cpu") -> City:
    """:func:`build_city`, cached per scenario and device (its tables are never written to)."""
    return build_city(scenario, device)


def shift_starts(batch: int, n_drivers: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Shift start times ``[B, N]`` (seconds of the day) from :data:`SHIFT_MIX`."""
    shares = torch.tensor([m[2] for m in SHIFT_MIX], device=device)
    which = torch.multinomial(shares.expand(batch * n_drivers, -1), 1, replacement=True,
                              generator=generator).view(batch, n_drivers)
    centres = torch.tensor([m[0] for m in SHIFT_MIX], device=device)[which]
    spreads = torch.tensor([m[1] for m in SHIFT_MIX], device=device)[which]
    noise = torch.randn(batch, n_drivers, generator=generator, device=device)
    return ((centres + spreads * noise) * 3600.0) % SECONDS_PER_DAY


def cancel_probability(pickup_km: torch.Tensor, s: CityScenario) -> torch.Tensor:
    """Probability a matched passenger cancels, rising with the pickup distance in 200 m buckets."""
    bucket = torch.floor(pickup_km / 0.2) * 0.2
    return s.cancel_max * (1.0 - torch.exp(-bucket / s.cancel_scale_km))


def fare(trip_km: torch.Tensor, trip_s: torch.Tensor, s: CityScenario) -> torch.Tensor:
    """Fare of a trip (currency)."""
    return s.fare_base + s.fare_per_km * trip_km + s.fare_per_minute * trip_s / 60.0


def max_arrivals(city: City, window_seconds: float) -> int:
    """Arrival slots per window: the Poisson count at the peak rate is below this with probability
    > 1 − 1e-9 (the simulator draws the count by inverse CDF and truncates there)."""
    peak = float(city.rate_per_minute.max()) * window_seconds
    return int(math.ceil(peak + 7.0 * math.sqrt(peak) + 8.0))
