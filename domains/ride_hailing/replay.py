"""Replaying the demand of trip records: the orders of a recorded day, window by window.

Each simulated city replays one day of the records (drawn at reset); an order arrives in the
window that holds its request time, with the record's cells, distance, duration and fare. Days
after the last recorded one wrap to the first.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from decisionlab.domains.ride_hailing.grid import HexGrid
from decisionlab.domains.ride_hailing.scenario import SECONDS_PER_DAY, CityScenario
from decisionlab.domains.ride_hailing.trips import TripRecords, read_trip_records


@dataclass
class DemandReplay:
    """Trip records as tensors sorted by request time ``[R]`` (seconds since midnight of day 0)."""

    request_s: torch.Tensor
    origin: torch.Tensor
    dest: torch.Tensor
    trip_km: torch.Tensor
    trip_s: torch.Tensor
    fare: torch.Tensor
    days: int
    max_per_window: int

    @classmethod
    def for_scenario(cls, scenario: CityScenario, grid: HexGrid, device: torch.device,
                     records: TripRecords | None = None) -> DemandReplay:
        if records is None:
            assert scenario.trips_path is not None
            records = read_trip_records(scenario.trips_path, grid, zones_path=scenario.zones_path)
        frame = records.frame

        def col(name: str, dtype: torch.dtype) -> torch.Tensor:
            return torch.tensor(frame[name].to_numpy(), dtype=dtype, device=device)

        request = col("request_s", torch.float64)
        windows = torch.floor(request / scenario.window_seconds).long()
        most = int(torch.bincount(windows - windows.min()).max()) if len(windows) else 1
        duration = col("duration_s", torch.float32)
        km = col("distance_km", torch.float32)
        # A record without a usable duration is driven at the scenario's off-peak speed.
        duration = torch.where(duration > 0, duration, km * 3600.0 / scenario.speed_kmh)
        return cls(request, col("origin_cell", torch.long), col("dest_cell", torch.long), km, duration,
                   col("fare", torch.float32), max(1, records.days), max(1, most))

    def window(self, day: torch.Tensor, t: float, t_next: float) -> dict[str, torch.Tensor]:
        """The orders requested in ``[t, t_next)`` of each city's replayed day ``day [B]``: ``[B, M]``."""
        period = self.days * SECONDS_PER_DAY
        start = torch.remainder(day.double() * SECONDS_PER_DAY + t, period)
        end = start + (t_next - t)
        lo = torch.searchsorted(self.request_s, start)
        hi = torch.searchsorted(self.request_s, end)
        slot = torch.arange(self.max_per_window, device=lo.device)
        index = (lo[:, None] + slot[None]).clamp_max(max(0, len(self.request_s) - 1))
        valid = slot[None] < (hi - lo).clamp_max(self.max_per_window)[:, None]
        return {"valid": valid, "origin": self.origin[index], "dest": self.dest[index], "trip_km": self.trip_km[index],
                "trip_s": self.trip_s[index], "fare": self.fare[index]}
