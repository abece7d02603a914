"""The vertiport network of a scenario and the random day it operates.

:func:`layout`: vertiports on the map (an urban core around the centre, suburbs on a ring, fixed by
``seed_network``), their distances, and the expected demand per origin–destination pair and time slot:
a base flow between every pair weighted by size (core vertiports are three times as big) plus a
morning peak into the core and an afternoon peak out of it.

:func:`sample_days`: ``B`` independent days drawn from a ``torch.Generator``, everything a clairvoyant
planner would know: Poisson passenger arrivals per slot and pair, weather closures per slot and route
(both directions), take-off delays per slot and aircraft, and at most one downtime window per aircraft.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from decisionlab.domains.fleet.scenario import FleetScenario

CORE_SIZE = 3.0  # a core vertiport's weight in the demand pattern, a suburban one's is 1


@dataclass(frozen=True)
class Layout:
    """``xy_miles [V, 2]``, ``distance_miles [V, V]``, ``core [V]`` (bool) and ``expected_demand
    [S, V, V]`` (mean passenger arrivals per slot and pair; zero on the diagonal)."""

    xy_miles: np.ndarray
    distance_miles: np.ndarray
    core: np.ndarray
    expected_demand: np.ndarray


def demand_profile(s: FleetScenario) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per slot ``[S]``: the base, morning-peak and afternoon-peak arrival rates (passengers per slot,
    all pairs together), summing over the day to ``passengers_per_hour ×`` its hours."""
    mid = s.day_start_h + (np.arange(s.slots) + 0.5) * s.slot_h
    bumps = [np.exp(-0.5 * ((mid - peak) / s.peak_width_h) ** 2) for peak in s.peak_hours]
    total = s.passengers_per_hour * s.slots * s.slot_h
    base = np.full(s.slots, (1.0 - s.peak_share) * total / s.slots)
    peaks = [(0.5 * s.peak_share * total) * b / max(b.sum(), 1e-12) for b in bumps]
    return base, peaks[0], peaks[1]


def layout(s: FleetScenario) -> Layout:
    rng = np.random.default_rng(s.seed_network)
    n_core = min(s.n_vertiports, max(1, round(s.core_share * s.n_vertiports)))
    centre = s.map_miles / 2.0
    angle = rng.uniform(0.0, 2 * math.pi, s.n_vertiports)
    radius = np.where(np.arange(s.n_vertiports) < n_core, rng.uniform(0.02, 0.15, s.n_vertiports),
                      rng.uniform(0.25, 0.48, s.n_vertiports)) * s.map_miles
    xy = np.stack([centre + radius * np.cos(angle), centre + radius * np.sin(angle)], axis=1)
    distance = np.linalg.norm(xy[:, None, :] - xy[None, :, :], axis=-1)
    core = np.arange(s.n_vertiports) < n_core
    size = np.where(core, CORE_SIZE, 1.0)
    off = 1.0 - np.eye(s.n_vertiports)

    def shares(weights: np.ndarray) -> np.ndarray:
        weights = weights * off
        return weights / weights.sum()

    base = shares(size[:, None] * size[None, :])
    morning = shares(size[:, None] * size[None, :] ** 2)  # towards the big (core) vertiports
    evening = shares(size[:, None] ** 2 * size[None, :])  # away from them
    rate_base, rate_morning, rate_evening = demand_profile(s)
    expected = (rate_base[:, None, None] * base + rate_morning[:, None, None] * morning
                + rate_evening[:, None, None] * evening)
    return Layout(xy, distance, core, expected)


@dataclass(frozen=True)
class Days:
    """``B`` sampled days: ``arrivals [B, S, V, V]`` passengers, ``closed [B, S, V, V]`` routes (symmetric),
    ``delay_h [B, S, A]`` take-off delay of each aircraft if it leaves in that slot, ``down_start_h`` /
    ``down_end_h [B, A]`` (``inf`` when the aircraft stays up all day)."""

    arrivals: torch.Tensor
    closed: torch.Tensor
    delay_h: torch.Tensor
    down_start_h: torch.Tensor
    down_end_h: torch.Tensor

    @cached_property
    def arrivals_before(self) -> torch.Tensor:
        """``[B, S + 1, V, V]``: passengers arrived in the slots before ``k`` (a step reads the arrivals of
        several slots as one difference instead of summing every slot; whole numbers, so exact)."""
        zero = torch.zeros_like(self.arrivals[:, :1])
        return torch.cat([zero, self.arrivals.cumsum(1)], dim=1)


def sample_days(s: FleetScenario, expected_demand: torch.Tensor, batch: int, generator: torch.Generator | None,
                device: torch.device) -> Days:
    """``batch`` days of ``s`` (``expected_demand [S, V, V]`` on ``device``)."""
    slots, v, a = s.slots, s.n_vertiports, s.n_aircraft

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, device=device)

    arrivals = torch.poisson(expected_demand.expand(batch, slots, v, v).contiguous(), generator=generator)
    upper = torch.triu(uniform(batch, slots, v, v) < s.closure_prob, diagonal=1)
    closed = upper | upper.transpose(-1, -2)
    delayed = uniform(batch, slots, a) < s.delay_prob
    delay_h = torch.where(delayed, uniform(batch, slots, a) * s.delay_max_h, 0.0)
    goes_down = uniform(batch, a) < s.downtime_prob
    start = s.day_start_h + uniform(batch, a) * (s.day_end_h - s.day_start_h)
    down_start = torch.where(goes_down, start, torch.inf)
    return Days(arrivals, closed, delay_h, down_start, down_start + s.downtime_h)
