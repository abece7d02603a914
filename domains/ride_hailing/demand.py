"""Demand tables: expected orders per hour of the day and cell, ``[24, C]`` (orders per hour).

Two sources, so a policy that reads demand can be told what it may know:

- :func:`true_demand`: the simulator's own rates (what a policy that *knows* the city reads);
- :func:`logged_demand`: counts from ``days`` logged days of orders, divided by ``days``. Orders do
  not depend on the policy that served them, so the logs of any policy give the same counts; they
  are drawn from the city's arrival process (a Poisson count per hour, origins by that hour's
  weights), or read from the scenario's trip records when it replays them;
- :func:`log_demand`: the same counts read from a trip log the simulator wrote.

Both are tensors on the city's device; a policy stores its table in its config (plain lists).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import torch

from decisionlab.domains.ride_hailing.city import City, city_of
from decisionlab.domains.ride_hailing.scenario import CityScenario

HOURS = 24


def hourly_rate(city: City) -> torch.Tensor:
    """``[24]`` expected orders in each hour of the day."""
    return city.rate_per_minute.view(HOURS, -1).sum(1) * 60.0


def true_demand(city: City) -> torch.Tensor:
    """``[24, C]`` expected orders per hour in each cell (the simulator's rates)."""
    return (hourly_rate(city)[:, None] * city.origin_weight.double()).float()


def logged_demand(scenario: CityScenario, days: int, seed: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``[24, C]`` orders per hour and cell counted over ``days`` logged days (see the module docstring)."""
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    city = city_of(scenario, str(torch.device(device)))
    if scenario.trips_path is not None:
        return record_demand(scenario, city).to(device)
    rng = np.random.default_rng(seed)
    rate = hourly_rate(city).cpu().numpy()
    weight = city.origin_weight.double().cpu().numpy()
    weight = weight / weight.sum(1, keepdims=True)
    counts = np.stack([rng.multinomial(n, weight[h]) for h, n in enumerate(rng.poisson(rate * days))])
    return torch.as_tensor(counts / days, dtype=torch.float32, device=device)


def record_demand(scenario: CityScenario, city: City) -> torch.Tensor:
    """``[24, C]`` orders per hour and cell in the scenario's trip records (per recorded day)."""
    from decisionlab.domains.ride_hailing.trips import read_trip_records

    records = read_trip_records(scenario.trips_path, city.grid, zones_path=scenario.zones_path)
    frame = records.frame
    return per_hour_and_cell(frame["request_s"].to_numpy(), frame["origin_cell"].to_numpy(), city.grid.n_cells,
                             records.days)


def log_demand(folder: str | Path, n_cells: int) -> torch.Tensor:
    """``[24, C]`` orders per hour and cell in a trip log's ``orders.parquet`` (see
    :mod:`decisionlab.domains.ride_hailing.triplog`), per logged day (a day's orders are numbered
    from 0, so the days are the orders numbered 0)."""
    frame = pl.read_parquet(Path(folder) / "orders.parquet", columns=["order_id", "arrival_s", "origin_cell"])
    cell = frame["origin_cell"].to_numpy()
    if len(cell) and (cell.min() < 0 or cell.max() >= n_cells):
        raise ValueError(f"{folder}: orders.parquet has origin cells outside the grid's {n_cells}")
    days = int((frame["order_id"].to_numpy() == 0).sum())
    return per_hour_and_cell(frame["arrival_s"].to_numpy(), cell, n_cells, days)


def per_hour_and_cell(seconds: np.ndarray, cells: np.ndarray, n_cells: int, days: int) -> torch.Tensor:
    """``[24, C]`` orders per hour of the day and cell, per day, from orders at ``seconds [N]`` (since the
    first midnight) in ``cells [N]`` over ``days`` days (at least one)."""
    hour = (seconds % 86_400.0 // 3600.0).astype(np.int64).clip(0, HOURS - 1)
    counts = np.zeros((HOURS, n_cells))
    np.add.at(counts, (hour, cells.astype(np.int64)), 1.0)
    return torch.as_tensor(counts / max(1, days), dtype=torch.float32)
