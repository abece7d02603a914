"""The trip log: every resolved order and every driver value transition of a simulated run.

:class:`TripLog` is an ``on_step`` hook of :func:`~decisionlab.domains.ride_hailing.metrics.run_episodes`;
:meth:`TripLog.write` writes two parquet files into a folder (atomically, each file whole or not at
all):

- ``orders.parquet``: one row per order — ``city`` (the batch row), ``order_id``, ``status``
  (served / cancelled / expired), ``arrival_s``, ``resolved_s``, ``origin_cell``, ``dest_cell``,
  ``trip_km``, ``trip_s``, ``fare``, ``driver`` (−1 when none), ``pickup_km``;
- ``transitions.parquet``: one row per value transition — ``city``, ``driver``, ``kind`` (trip /
  idle / terminal), ``from_cell``, ``from_s``, ``to_cell``, ``to_s``, ``reward`` (the fare),
  ``reward_s`` (when it was paid).

``read_transitions`` turns a log (of earlier days) into TD transitions for offline training;
``record_transitions`` does the same for the user's trip records (each trip: pick-up cell at the
request time → drop-off cell at the drop-off time, the fare as reward).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import torch

from decisionlab.core import Transitions, atomic_write_with, discount_for
from decisionlab.domains.ride_hailing.sim import CANCELLED, EXPIRED, IDLE_MOVE, NO_EVENT, SERVED, TERMINAL, TRIP
from decisionlab.domains.ride_hailing.trips import TripDataError

STATUS = {SERVED: "served", CANCELLED: "cancelled", EXPIRED: "expired"}
KIND = {TRIP: "trip", IDLE_MOVE: "idle", TERMINAL: "terminal"}
ORDER_FIELDS = {"order_id": "ev_id", "arrival_s": "ev_arrival_s", "resolved_s": "ev_time_s",
                "origin_cell": "ev_origin", "dest_cell": "ev_dest", "trip_km": "ev_trip_km", "trip_s": "ev_trip_s",
                "fare": "ev_fare", "driver": "ev_driver", "pickup_km": "ev_pickup_km"}
TRANSITION_FIELDS = {"from_cell": "tr_from_cell", "from_s": "tr_from_s", "to_cell": "tr_to_cell", "to_s": "tr_to_s",
                     "reward": "tr_reward", "reward_s": "tr_reward_s"}


def _rows(info: dict[str, torch.Tensor], kind_key: str, fields: dict[str, str],
          index_name: str) -> dict[str, np.ndarray]:
    kind = info[kind_key]
    city, index = (kind != NO_EVENT).nonzero(as_tuple=True)
    out = {"city": city.cpu().numpy(), index_name: index.cpu().numpy(), "code": kind[city, index].cpu().numpy()}
    for column, key in fields.items():
        out[column] = info[key][city, index].cpu().numpy()
    return out


class TripLog:
    """Collects the resolved orders and the value transitions of every window (see the module docstring)."""

    def __init__(self) -> None:
        self._orders: list[dict[str, np.ndarray]] = []
        self._transitions: list[dict[str, np.ndarray]] = []

    def __call__(self, state: object, info: dict[str, torch.Tensor]) -> None:
        self._orders.append(_rows(info, "ev_kind", ORDER_FIELDS, "slot"))
        self._transitions.append(_rows(info, "tr_kind", TRANSITION_FIELDS, "driver"))

    def finish(self, finish: dict[str, torch.Tensor]) -> None:
        """Add the orders still pending at the end (``CitySim.finish``) as expired."""
        self._orders.append(_rows(finish, "ev_kind", ORDER_FIELDS, "slot"))

    def orders(self) -> pl.DataFrame:
        frame = _frame(self._orders).drop("slot")
        codes = frame["code"].to_numpy()
        status = np.array([STATUS[int(c)] for c in codes]) if len(codes) else np.array([], dtype=str)
        return frame.drop("code").with_columns(status=pl.Series(status, dtype=pl.Utf8)).sort("city", "order_id")

    def transitions(self) -> pl.DataFrame:
        frame = _frame(self._transitions)
        codes = frame["code"].to_numpy()
        kind = np.array([KIND[int(c)] for c in codes]) if len(codes) else np.array([], dtype=str)
        return frame.drop("code").with_columns(kind=pl.Series(kind, dtype=pl.Utf8))

    def write(self, folder: Path) -> tuple[Path, Path]:
        """``orders.parquet`` and ``transitions.parquet`` in ``folder`` (created)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = folder / "orders.parquet", folder / "transitions.parquet"
        for path, frame in zip(paths, (self.orders(), self.transitions()), strict=True):
            atomic_write_with(path, lambda tmp, frame=frame: frame.write_parquet(tmp))
        return paths


def _frame(parts: list[dict[str, np.ndarray]]) -> pl.DataFrame:
    if not parts:
        return pl.DataFrame()
    return pl.DataFrame({name: np.concatenate([p[name] for p in parts]) for name in parts[0]})


def transitions_of(frame: pl.DataFrame, gamma: float, gamma_period_s: float) -> Transitions:
    """TD transitions of a ``transitions.parquet`` frame (fare discounted from the anchor to its payment)."""
    def col(name: str, dtype: torch.dtype) -> torch.Tensor:
        return torch.tensor(frame[name].to_numpy(), dtype=dtype)

    terminal = torch.as_tensor((frame["kind"] == "terminal").to_numpy())
    from_s, to_s = col("from_s", torch.float64), col("to_s", torch.float64)
    paid_after = col("reward_s", torch.float64) - from_s
    reward = col("reward", torch.float64) * discount_for(paid_after, gamma, gamma_period_s)
    discount = torch.where(terminal, 0.0, discount_for(to_s - from_s, gamma, gamma_period_s))
    from_cell = col("from_cell", torch.long)
    next_cell = torch.where(terminal, from_cell, col("to_cell", torch.long))
    return Transitions(from_cell, from_s.float(), reward.float(), next_cell, to_s.float(), discount.float())


REQUIRED = ("kind", "from_cell", "from_s", "to_cell", "to_s", "reward", "reward_s")


def read_transitions(folder: Path, gamma: float, gamma_period_s: float) -> Transitions:
    """The TD transitions of a trip log folder written by :meth:`TripLog.write`."""
    path = Path(folder) / "transitions.parquet"
    if not path.is_file():
        raise TripDataError(f"history_log: {path.name} not found in the folder {Path(folder).name!r} (write one with "
                        "python -m decisionlab.domains.ride_hailing.triplog --out FOLDER)")
    try:
        frame = pl.read_parquet(path)
    except Exception as err:  # noqa: BLE001 - a corrupt file is the user's data problem
        raise TripDataError(f"history_log: {path.name} is not a readable parquet file ({type(err).__name__})") from None
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise TripDataError(f"history_log: {path.name} lacks the columns {missing}")
    if frame.height == 0:
        raise TripDataError(f"history_log: {path.name} has no transitions")
    return transitions_of(frame, gamma, gamma_period_s)


def record_transitions(frame: pl.DataFrame, gamma: float, gamma_period_s: float) -> Transitions:
    """TD transitions of trip records (:class:`~decisionlab.domains.ride_hailing.trips.TripRecords`'s frame):
    pick-up cell at the request → drop-off cell at request + duration, the fare as reward."""
    start = torch.tensor(frame["request_s"].to_numpy(), dtype=torch.float64)
    end = start + torch.tensor(frame["duration_s"].to_numpy(), dtype=torch.float64)
    return Transitions(torch.tensor(frame["origin_cell"].to_numpy(), dtype=torch.long), start.float(),
                       torch.tensor(frame["fare"].to_numpy(), dtype=torch.float32),
                       torch.tensor(frame["dest_cell"].to_numpy(), dtype=torch.long), end.float(),
                       discount_for(end - start, gamma, gamma_period_s).float())


def simulate_log(scenario_name: str, overrides: dict, policy_name: str, days: int, cities: int, seed: int,
                 folder: Path, progress: bool = True) -> tuple[Path, Path]:
    """Simulate ``days`` horizons (``cities`` at a time) under a baseline or registered policy and write their log."""
    from decisionlab.core import build_policy, get_domain, make_generator
    from decisionlab.domains.ride_hailing.metrics import run_days
    from decisionlab.domains.ride_hailing.sim import CitySim

    domain = get_domain("ride_hailing")
    scenario = domain.scenario(scenario_name, overrides)
    device = torch.device("cpu")
    _, policy = build_policy(domain, scenario, policy_name, device)
    sim, log, generator = CitySim(scenario, device), TripLog(), make_generator(seed)
    run_days(sim, policy, days, cities, generator, on_step=log, on_batch=lambda totals: log.finish(totals.finish),
             label=f"simulating {policy_name}:" if progress else None)
    return log.write(folder)


def main(argv: list[str] | None = None) -> None:
    """``python -m decisionlab.domains.ride_hailing.triplog --out logs/ [--policy nearest+reposition] ...``"""
    import argparse

    from decisionlab.core import parse_overrides

    parser = argparse.ArgumentParser(description="Simulate days of a city and write their trip log (parquet).")
    parser.add_argument("--out", type=Path, required=True, help="folder for orders.parquet and transitions.parquet")
    parser.add_argument("--scenario", default="city_small")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="scenario key=value")
    parser.add_argument("--policy", default="nearest+reposition", help="baseline or registered policy")
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--cities", type=int, default=4, help="days simulated side by side")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    paths = simulate_log(args.scenario, parse_overrides(args.overrides), args.policy, args.days, args.cities,
                         args.seed, args.out)
    print(" ".join(str(p) for p in paths))


if __name__ == "__main__":
    main()
