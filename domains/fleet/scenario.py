"""eVTOL fleet scenarios: vertiports on a map, aircraft with batteries, a day of demand and disruptions.

Units: miles, hours (of the day, 6.0 = 06:00), kWh, kW, dollars. Defaults follow the public
urban-air-mobility prototype (../shared/domain-notes.md): 4 seats, 110 kWh, 74.5 mph, 0.1 h take-off
and 0.1 h landing, 6 parking and 6 charging pads per vertiport, 150 kW chargers, $0.20/kWh, fares
proportional to distance, demand peaking at 09:00 and 16:30 over a 06:00–18:00 day.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from decisionlab.core import Scenario


class FleetScenario(Scenario):
    """One operating day of an eVTOL fleet across vertiports (module docstring for units)."""

    n_vertiports: int = Field(8, ge=2, le=64, description="vertiports on the map")
    n_aircraft: int = Field(40, ge=1, le=1024, description="aircraft in the fleet")
    seed_network: int = Field(0, ge=0, le=2**31 - 1, description="seed of the vertiport layout and demand pattern")
    map_miles: float = Field(50.0, gt=1, le=500, description="side of the square map (miles)")
    core_share: float = Field(0.4, ge=0, le=1, description="share of vertiports in the urban core (the rest suburbs)")
    seats: int = Field(4, ge=1, le=20, description="passenger seats per aircraft")
    battery_kwh: float = Field(110.0, gt=0, le=2000, description="usable battery capacity per aircraft (kWh)")
    kwh_per_mile: float = Field(2.0, gt=0, le=50, description="energy used per mile flown (kWh)")
    reserve_kwh: float = Field(10.0, ge=0, description="energy every landing must leave in the battery (kWh)")
    cruise_mph: float = Field(74.5, gt=1, le=500, description="cruise speed (miles per hour)")
    takeoff_h: float = Field(0.1, ge=0, le=2, description="take-off time (hours)")
    landing_h: float = Field(0.1, ge=0, le=2, description="landing time (hours)")
    parking_pads: int = Field(6, ge=1, le=100,
                              description="parking pads per vertiport (aircraft on the ground or inbound)")
    charging_pads: int = Field(6, ge=0, le=100, description="charging pads per vertiport")
    charge_kw: float = Field(150.0, gt=0, le=5000, description="charging power per pad (kW)")
    energy_price: float = Field(0.20, ge=0, le=10, description="electricity price ($ per kWh charged)")
    fare_per_mile: float = Field(1.5, ge=0, le=100, description="fare per passenger per mile flown ($)")
    operating_cost_per_hour: float = Field(30.0, ge=0, le=10_000, description="operating cost per flight hour ($)")
    wait_h: float = Field(0.25, gt=0, le=4, description="how long a 'stay' (wait / charge) decision lasts (hours)")
    day_start_h: float = Field(6.0, ge=0, lt=24, description="start of the operating day (hour of day)")
    day_end_h: float = Field(18.0, gt=0, le=24, description="end of the operating day (hour of day)")
    slot_h: float = Field(0.25, gt=0, le=2, description="time resolution of demand, closures and delays (hours)")
    passengers_per_hour: float = Field(200.0, ge=0, le=100_000, description="mean passenger arrivals per hour, "
                                       "all origin-destination pairs together, averaged over the day")
    peak_hours: tuple[Annotated[float, Field(ge=0, le=24)], Annotated[float, Field(ge=0, le=24)]] = Field(
        (9.0, 16.5), description="the morning and afternoon demand peaks (hours of day)")
    peak_width_h: float = Field(1.25, gt=0, le=12, description="width (std, hours) of each demand peak")
    peak_share: float = Field(0.7, ge=0, le=1, description="share of the day's demand in the two peaks")
    patience_h: float = Field(0.5, gt=0, le=12, description="mean time a passenger waits before leaving (hours)")
    delay_prob: float = Field(0.1, ge=0, le=1, description="probability that a take-off is delayed")
    delay_max_h: float = Field(0.25, ge=0, le=4, description="longest take-off delay (uniform up to it, hours)")
    closure_prob: float = Field(0.02, ge=0, le=1, description="probability that a route is closed by weather "
                                "in a time slot (both directions)")
    downtime_prob: float = Field(0.05, ge=0, le=1, description="probability that an aircraft goes down once in the day")
    downtime_h: float = Field(2.0, gt=0, le=24, description="how long an aircraft is down (hours)")

    @model_validator(mode="after")
    def _consistent(self) -> FleetScenario:
        if self.day_end_h <= self.day_start_h:
            raise ValueError(f"day_end_h ({self.day_end_h}) must be after day_start_h ({self.day_start_h})")
        if self.n_aircraft > self.n_vertiports * self.parking_pads:
            raise ValueError(f"n_aircraft ({self.n_aircraft}) must fit on the parking pads: at most n_vertiports × "
                             f"parking_pads = {self.n_vertiports * self.parking_pads}")
        if self.reserve_kwh >= self.battery_kwh:
            raise ValueError(f"reserve_kwh ({self.reserve_kwh}) must be below battery_kwh ({self.battery_kwh})")
        return self

    @property
    def slots(self) -> int:
        """Time slots of the day."""
        return max(1, round((self.day_end_h - self.day_start_h) / self.slot_h))

    @property
    def range_miles(self) -> float:
        """Miles a full battery flies while keeping the reserve."""
        return (self.battery_kwh - self.reserve_kwh) / self.kwh_per_mile

    @property
    def max_decisions(self) -> int:
        """An upper bound on decisions in a day: every aircraft deciding every shortest activity."""
        shortest = min(self.wait_h, self.takeoff_h + self.landing_h + 1.0 / self.cruise_mph)
        return int(self.n_aircraft * ((self.day_end_h - self.day_start_h) / max(shortest, 1e-3) + 1))


PRESETS: dict[str, FleetScenario] = {  # the small one first: what the conformance suite runs every baseline on
    "uam_small": FleetScenario(n_vertiports=3, n_aircraft=4, map_miles=30.0, passengers_per_hour=40.0,
                               day_end_h=9.0, parking_pads=3, charging_pads=2),
    "uam_8x40": FleetScenario(),
}
