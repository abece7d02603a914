"""Ride-hailing scenarios: a city on a hex grid, its drivers, its demand over the day.

Units: distances in km, times in seconds (``*_seconds``) or hours (``*_hours``, ``*_hour``: hour of
the day), money in currency units (fares). A scenario's ``seed_city`` fixes the city (hot spots,
drivers' homes and shifts are drawn from the episode seed); two policies evaluated on the same seeds
face the same orders (demand does not depend on what the policy does).

Presets: ``city_grid`` (20 × 20 cells of 1 km, 1,000 drivers, 20,000 orders a day; with ``n_drivers``
and ``orders_per_day`` raised to 10,000 and 1,000,000, a capacity-bound load test: most orders expire) and
``city_small`` (8 × 8 cells, 150 drivers, 3,000 orders a day; small enough for tests). The city-scale
``city_metro`` (30 × 30 cells of 1 km, about 30 × 26 km, 9 hot spots, trips of 12.8 km by road on average;
10,000 drivers, 105,000 orders a day) is calibrated on 24-hour days under ``nearest``: 72% of orders served,
drivers busy (pickup or trip) 46% of their online time over the day (Cramer & Krueger 2016: UberX ~46–54%),
64% in the evening peak hour and 76–80% in the morning peak, when only the early shift is on.
"""

from __future__ import annotations

import math

from pydantic import Field, model_validator

from decisionlab.core import Scenario, server_path

SECONDS_PER_DAY = 86_400.0
MAX_WINDOWS = 5_000_000  # one scenario simulates at most this many dispatch windows


class CityScenario(Scenario):
    """A city, its fleet and its demand (see the module docstring for units)."""

    grid_size: int = Field(20, ge=2, le=64, description="cells per side of the hexagonal grid (grid_size² cells)")
    cell_km: float = Field(1.0, ge=0.1, le=10, description="distance between neighbouring cell centres (km)")
    road_detour: float = Field(1.3, ge=1, le=3, description="road distance / straight-line distance")
    n_drivers: int = Field(1000, ge=1, le=20_000, description="drivers in the fleet (each works one shift a day)")
    orders_per_day: int = Field(20_000, ge=1, le=2_000_000, description="expected orders over 24 hours")
    seed_city: int = Field(0, ge=0, le=2**31 - 1, description="seed of the city layout (hot spots)")
    n_hotspots: int = Field(5, ge=1, le=20, description="hot spots (homes, offices, nightlife) in the city")
    hotspot_km: float = Field(1.5, gt=0, le=50, description="spatial spread (km) of a hot spot's demand")
    hotspot_share: float = Field(0.8, ge=0, le=1, description="share of demand drawn to hot spots (rest uniform)")
    morning_peak_hour: float = Field(8.5, ge=0, lt=24, description="hour of the morning demand peak")
    evening_peak_hour: float = Field(18.0, ge=0, lt=24, description="hour of the evening demand peak")
    peak_strength: float = Field(2.0, ge=0, le=20, description="height of each demand peak relative to the base rate")
    new_hotspot_weight: float = Field(0.0, ge=0, le=10, description="demand of an extra hot spot the city did not "
                                      "have before, relative to an ordinary one (0 = none): a demand shift")
    start_hour: float = Field(0.0, ge=0, lt=24, description="hour of the day the simulation starts")
    horizon_hours: float = Field(24.0, gt=0, le=168, description="simulated time (hours)")
    window_seconds: float = Field(2.0, ge=0.5, le=60, description="length of a dispatch window (seconds); one "
                                  "decision step")
    speed_kmh: float = Field(30.0, ge=3, le=150, description="driving speed off-peak (km/h)")
    peak_speed_factor: float = Field(0.6, gt=0, le=1, description="speed at the height of a peak / off-peak speed")
    fare_base: float = Field(2.5, ge=0, le=1e4, description="fare at flag-fall (currency)")
    fare_per_km: float = Field(1.5, ge=0, le=1e4, description="fare per km of the trip (currency)")
    fare_per_minute: float = Field(0.3, ge=0, le=1e4, description="fare per minute of the trip (currency)")
    order_patience_seconds: float = Field(20.0, ge=0, le=3600, description="time an unmatched order waits before it "
                                          "expires (seconds; 0 = expires after its own window)")
    max_pickup_km: float = Field(3.0, gt=0, le=100, description="farthest road distance a driver is sent to pick up")
    cancel_max: float = Field(0.6, ge=0, le=1, description="cancellation probability for a very distant pickup")
    cancel_scale_km: float = Field(2.5, gt=0, le=100, description="pickup distance (km) over which cancellations "
                                   "rise: p = cancel_max·(1 − exp(−d/scale)), d in 200 m buckets")
    shift_hours: float = Field(9.0, gt=0, le=24, description="length of a driver's shift (hours)")
    drift_per_minute: float = Field(0.2, ge=0, le=1, description="probability an idle driver moves to a neighbouring "
                                    "cell in a minute (toward demand, by per-(cell, hour) transition probabilities)")
    idle_transition_seconds: float = Field(600.0, ge=10, le=86_400, description="an idle driver's value transition "
                                           "is recorded after this long without a trip (seconds)")
    reposition_max_km: float = Field(3.0, gt=0, le=100, description="farthest a repositioning instruction may send a "
                                     "driver (km, road)")
    trips_path: str | None = server_path("trip records (CSV/parquet, NYC-taxi schema) whose demand is replayed "
                                         "instead of the generated one (null = generated)", max_length=500)
    zones_path: str | None = server_path("zone table (LocationID, latitude, longitude) for trip records with zone ids",
                                         max_length=500)

    @model_validator(mode="after")
    def _bounded_work(self) -> CityScenario:
        if self.windows > MAX_WINDOWS:
            raise ValueError(f"horizon_hours / window_seconds gives {self.windows:,} windows; at most "
                             f"{MAX_WINDOWS:,} (raise window_seconds or shorten horizon_hours)")
        if self.zones_path is not None and self.trips_path is None:
            raise ValueError("zones_path: only used with trips_path")
        return self

    @property
    def windows(self) -> int:
        """Dispatch windows (decision steps) in the horizon."""
        return max(1, math.ceil(self.horizon_hours * 3600.0 / self.window_seconds - 1e-9))

    @property
    def start_seconds(self) -> float:
        return self.start_hour * 3600.0


PRESETS: dict[str, CityScenario] = {
    "city_grid": CityScenario(),
    "city_small": CityScenario(grid_size=8, n_drivers=150, orders_per_day=3_000, n_hotspots=3, hotspot_km=1.0,
                               max_pickup_km=2.5, reposition_max_km=2.5),
    "city_peaks": CityScenario(grid_size=12, n_drivers=200, orders_per_day=3_000, n_hotspots=3, hotspot_km=1.0,
                               hotspot_share=0.9, drift_per_minute=0.05, max_pickup_km=2.0, reposition_max_km=3.0),
    "city_metro": CityScenario(grid_size=30, n_drivers=10_000, orders_per_day=105_000, seed_city=6, n_hotspots=9,
                               hotspot_km=2.0, hotspot_share=0.85),
}
