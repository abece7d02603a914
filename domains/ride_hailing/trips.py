"""Trip records in the public NYC-taxi (TLC) schema, read onto the city's hex grid.

Users replay their own demand from TLC trip-record files (``.csv``, ``.csv.gz`` or ``.parquet``, one
row per trip). Column names are matched case-insensitively and ignoring surrounding spaces (TLC files
spell them inconsistently across years: ``PUlocationID``, ``dropOff_datetime``, `` pickup_longitude``).

**Variants** (told apart by their time columns; the first that matches wins):

=================  ==========================================  ==========================  ===============
variant            pickup / drop-off time                      fare                        distance (mi)
=================  ==========================================  ==========================  ===============
yellow             ``tpep_pickup_datetime``,                   ``fare_amount``             ``trip_distance``
                   ``tpep_dropoff_datetime``
green              ``lpep_pickup_datetime``,                   ``fare_amount``             ``trip_distance``
                   ``lpep_dropoff_datetime``
high-volume FHV    ``pickup_datetime``, ``dropoff_datetime``   ``base_passenger_fare``     ``trip_miles``
                   (``request_datetime`` if present is the
                   request time)
=================  ==========================================  ==========================  ===============

Locations are either zone ids ``PULocationID``/``DOLocationID`` (then ``zones_path`` names a CSV
``LocationID,latitude,longitude`` of zone centroids) or the older (2009–2016) coordinates
``pickup_longitude, pickup_latitude, dropoff_longitude, dropoff_latitude`` (degrees). ``fare_column``
picks another fare (``total_amount`` is ignored unless named). Without a distance column the distance
is the straight line between the projected points. Times are strings (``2016-01-01 00:00:15``,
optional fractional seconds, ``T`` accepted for the space, or the NYC Open Data export style
``01/01/2016 12:00:15 AM``) or native date-time columns (parquet); they are wall-clock times
(time-zone-aware columns are read as their local wall clock).

**Projection.** Longitude/latitude become km by an equirectangular projection around the mean
latitude of the kept points, relative to the south-west corner of the data's box: for coordinates,
the 0.5 and 99.5 percentiles of the trips' points (pickups and drop-offs together) per axis, so a few
outliers do not stretch it; for zone ids, the exact box of the centroids the trips use (a zones
file is curated, so a rarely used far zone such as an airport is data, not noise). If the box is
larger than the grid's :attr:`HexGrid.extent_km`, every km is scaled down by one factor so it fits
(:attr:`TripRecords.scale` < 1), else the scale is 1; then :meth:`HexGrid.cell_of_km` (points
outside the box, kept within the margin below, land on the nearest edge cells). Distances are the
record's miles × 1.609344 × scale.

**Row checks.** A row that cannot be used is dropped and counted under the first of these reasons
that applies (:data:`DROP_REASONS`): ``bad_time`` (a missing or unparseable pickup/drop-off time, or
an unparseable request time; a missing request time falls back to the pickup), ``bad_coordinates``
(missing, zero or out-of-range longitude/latitude: NYC data has 0,0 rows), ``unknown_zone`` (a zone
id that is missing, not a whole number, or not in the zones file with a centroid),
``dropoff_before_pickup``, ``too_long`` (over 6 h), ``bad_fare`` (missing or negative),
``bad_distance`` (missing or negative), and, for coordinates, ``outside_box`` (a point more than
:data:`BOX_MARGIN` of the box's span outside the percentile box; points between the box and that
margin are kept and land on the grid's edge cells). If more than ``max_bad_fraction`` of the rows are
dropped, or none is left, :class:`TripDataError` names the main reason, its column and its first row.

Rows are numbered as data rows from 1 (the first row after the header is data row 1; in a CSV file
it is line 2, which the messages also give).
"""

from __future__ import annotations

import gzip
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
import torch

from decisionlab.core import ScenarioError
from decisionlab.domains.ride_hailing.grid import HexGrid

KM_PER_MILE = 1.609344
EARTH_RADIUS_KM = 6371.0088  # mean Earth radius
KM_PER_DEGREE = EARTH_RADIUS_KM * math.pi / 180.0
MAX_DURATION_S = 6 * 3600.0
BOX_PERCENTILES = (0.5, 99.5)
BOX_MARGIN = 0.1  # points beyond the percentile box by more than this share of its span are outliers
SECONDS_PER_DAY = 86_400
US_PER_SECOND = 1_000_000
CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet",)
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S%.f", "%m/%d/%Y %I:%M:%S %p", "%Y-%m-%d %H:%M")
ZONE_COLUMNS = ("PULocationID", "DOLocationID")
LATLON_COLUMNS = ("pickup_longitude", "pickup_latitude", "dropoff_longitude", "dropoff_latitude")
ZONES_FILE_COLUMNS = ("LocationID", "latitude", "longitude")
FARE_COLUMNS = ("fare_amount", "base_passenger_fare")
DISTANCE_COLUMNS = ("trip_distance", "trip_miles")

DROP_REASONS: dict[str, str] = {
    "bad_time": "a missing or unparseable time",
    "bad_coordinates": "a missing, zero or out-of-range coordinate",
    "unknown_zone": "a zone id that is not in the zones file",
    "dropoff_before_pickup": "a drop-off before the pickup",
    "too_long": "a trip longer than 6 h",
    "bad_fare": "a missing or negative fare",
    "bad_distance": "a missing or negative distance",
    "outside_box": "a point far outside the area that holds 99% of the trips",
}

Variant = Literal["yellow", "yellow_latlon", "hvfhv"]


class TripDataError(ScenarioError):
    """A trip-record or zones file that cannot be used as it is (the message names the file, and where it
    applies the column and the row)."""


@dataclass(frozen=True)
class _Schema:
    label: str
    pickup: str
    dropoff: str
    fare: str
    distance: str
    request: str | None = None


SCHEMAS = (
    _Schema("yellow", "tpep_pickup_datetime", "tpep_dropoff_datetime", "fare_amount", "trip_distance"),
    _Schema("green", "lpep_pickup_datetime", "lpep_dropoff_datetime", "fare_amount", "trip_distance"),
    _Schema("high-volume FHV", "pickup_datetime", "dropoff_datetime", "base_passenger_fare", "trip_miles",
            "request_datetime"),
)


@dataclass
class TripRecords:
    """Trips on the grid.

    Attributes:
        frame: one row per trip, sorted by request time (ties keep the file's order), columns
            ``request_s`` (Float64, seconds since midnight of the first day in the data), ``day``
            (Int64, 0-based day index, ``request_s // 86400``), ``origin_cell`` and ``dest_cell``
            (Int64, cells of the grid), ``distance_km`` (Float64, km of the grid: the record's
            distance × ``scale``), ``fare`` (Float64, the file's currency) and ``duration_s``
            (Float64, drop-off − pickup).
        days: days spanned, ``last day + 1``.
        dropped: rows dropped per reason, every key of :data:`DROP_REASONS` (0 where none).
        source: the file read.
        scale: km of the grid per km of the data (1, or < 1 where the data's box was larger than the grid).
    """

    frame: pl.DataFrame
    days: int
    dropped: dict[str, int] = field(default_factory=dict)
    source: str = ""
    scale: float = 1.0

    @property
    def n_trips(self) -> int:
        """Rows of :attr:`frame`."""
        return int(self.frame.height)


# ----- reading -------------------------------------------------------------------------------------


def _fail(name: str, message: str) -> TripDataError:
    return TripDataError(f"{name}: {message}")


def _check_file(path: Path, what: str) -> None:
    name = str(path)
    if not path.exists():
        raise _fail(name, f"{what} not found")
    if path.is_dir():
        raise _fail(name, f"{what} is a folder, not a file")
    if path.stat().st_size == 0:
        raise _fail(name, f"{what} is empty")


def _kind(path: Path) -> str:
    lower = path.name.lower()
    if lower.endswith(CSV_SUFFIXES):
        return "csv"
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    raise _fail(str(path), "unknown file type; trip records are read from .csv, .csv.gz or .parquet files")


def _file_columns(path: Path, kind: str, what: str) -> list[str]:
    name = str(path)
    try:
        if kind == "csv":
            return pl.read_csv(path, n_rows=0, infer_schema=False, truncate_ragged_lines=True).columns
        return list(pl.read_parquet_schema(path))
    except pl.exceptions.NoDataError:
        raise _fail(name, f"{what} is empty") from None
    except (pl.exceptions.PolarsError, OSError, ValueError) as err:
        raise _fail(name, f"{what} cannot be read as {kind.upper()}: {str(err).splitlines()[0]}") from None


def _read_columns(path: Path, kind: str, columns: list[str], what: str) -> pl.DataFrame:
    """The named columns (CSV: every value as text, we coerce and report ourselves)."""
    name = str(path)
    try:
        if kind == "csv":
            frame = pl.read_csv(path, columns=columns, infer_schema=False, truncate_ragged_lines=True)
        else:
            frame = pl.read_parquet(path, columns=columns)
    except (pl.exceptions.PolarsError, OSError, ValueError) as err:
        raise _fail(name, f"{what} cannot be read as {kind.upper()}: {str(err).splitlines()[0]}") from None
    if frame.height == 0:
        raise _fail(name, f"{what} has a header but no rows")
    return frame.select(columns)


def _lookup(columns: list[str]) -> dict[str, str]:
    """Lower-case stripped name → the file's own spelling (the first one wins)."""
    out: dict[str, str] = {}
    for column in columns:
        out.setdefault(column.strip().lower(), column)
    return out


def _expected_message(name: str, missing: list[str], columns: list[str]) -> str:
    lines = [f"{name}: not a TLC trip-record file this reader can use: missing {', '.join(missing)}.",
             "Expected, per variant:"]
    for schema in SCHEMAS:
        optional = ", ".join(c for c in (schema.request, schema.distance) if c)
        lines.append(f"  {schema.label}: {schema.pickup}, {schema.dropoff}, {schema.fare} (optional: {optional})")
    lines.append(f"  and the locations: {', '.join(ZONE_COLUMNS)} (zone ids, with zones_path) or "
                 f"{', '.join(LATLON_COLUMNS)}; fare_column= names another fare column.")
    shown = ", ".join(repr(c) for c in columns)
    hint = ""
    if len(columns) == 1 and any(sep in columns[0] for sep in ";\t|"):
        hint = " (the file looks separated by something other than commas)"
    lines.append(f"The file has: {shown}{hint}")
    return "\n".join(lines)


@dataclass(frozen=True)
class _Columns:
    """The file's own names of the columns used (None: absent)."""

    schema: _Schema
    pickup: str
    dropoff: str
    request: str | None
    fare: str
    distance: str | None
    zones: tuple[str, str] | None
    latlon: tuple[str, str, str, str] | None

    def used(self) -> list[str]:
        names = [self.pickup, self.dropoff, self.request, self.fare, self.distance, *(self.zones or ()),
                 *(self.latlon or ())]
        return list(dict.fromkeys(n for n in names if n is not None))


def _resolve_columns(columns: list[str], fare_column: str | None, name: str) -> _Columns:
    by_lower = _lookup(columns)

    def find(column: str) -> str | None:
        return by_lower.get(column.lower())

    schema = next((s for s in SCHEMAS if find(s.pickup) and find(s.dropoff)), None)
    missing: list[str] = []
    if schema is None:
        missing.append("a pickup and a drop-off time column")
    zones = (find(ZONE_COLUMNS[0]), find(ZONE_COLUMNS[1]))
    latlon = tuple(find(c) for c in LATLON_COLUMNS)
    has_zones, has_latlon = all(zones), all(latlon)
    if not has_zones and not has_latlon:
        missing.append("the locations (zone ids or coordinates)")
    if fare_column is not None:
        fare = find(fare_column)
        if fare is None:
            missing.append(f"the fare column '{fare_column}' (fare_column)")
    else:
        fare = find(schema.fare) if schema else None
        fare = fare or next((find(c) for c in FARE_COLUMNS if find(c)), None)
        if fare is None:
            missing.append("a fare column")
    if missing:
        raise TripDataError(_expected_message(name, missing, columns))
    assert schema is not None and fare is not None
    distance = find(schema.distance) or next((find(c) for c in DISTANCE_COLUMNS if find(c)), None)
    return _Columns(schema, find(schema.pickup) or "", find(schema.dropoff) or "",
                    find(schema.request) if schema.request else None, fare, distance,
                    None if has_latlon else zones,  # type: ignore[arg-type]
                    latlon if has_latlon else None)  # type: ignore[arg-type]


def _times(series: pl.Series, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(µs since the epoch of the wall clock, missing, unparseable)`` of a time column ``[n]``."""
    dtype = series.dtype
    if dtype == pl.String:
        text = series.str.strip_chars()
        missing = text.is_null() | (text == "")
        text = text.str.replace("T", " ", literal=True)
        parsed = pl.select(pl.coalesce([text.str.strptime(pl.Datetime("us"), fmt, strict=False)
                                        for fmt in TIME_FORMATS])).to_series()
    elif isinstance(dtype, pl.Datetime):
        parsed = series.dt.replace_time_zone(None) if dtype.time_zone else series
        parsed = parsed.cast(pl.Datetime("us"))
        missing = parsed.is_null()
    elif dtype == pl.Date:
        parsed = series.cast(pl.Datetime("us"))
        missing = parsed.is_null()
    else:
        raise _fail(name, f"column '{series.name}': values of type {dtype} are not date-times")
    missing_np = missing.fill_null(True).to_numpy().astype(bool)
    bad = parsed.is_null().to_numpy() & ~missing_np
    return parsed.cast(pl.Int64).fill_null(0).to_numpy().astype(np.int64), missing_np, bad


def _floats(series: pl.Series) -> np.ndarray:
    """A column as float64 ``[n]``; NaN where missing or not a number."""
    if series.dtype == pl.String:
        series = series.str.strip_chars()
    values = series.cast(pl.Float64, strict=False).fill_null(math.nan).to_numpy().astype(np.float64)
    values[~np.isfinite(values)] = math.nan
    return values


def _read_zones(zones_path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ids sorted, latitude, longitude)`` of the zones file; zones with an empty centroid get NaN."""
    name = str(zones_path)
    what = "zones file"
    _check_file(zones_path, what)
    kind = _kind(zones_path)
    columns = _file_columns(zones_path, kind, what)
    by_lower = _lookup(columns)
    missing = [c for c in ZONES_FILE_COLUMNS if c.lower() not in by_lower]
    if missing:
        raise _fail(name, f"a zones file has the columns {', '.join(ZONES_FILE_COLUMNS)} (zone id and its centroid "
                    f"in degrees); missing {', '.join(missing)}; found columns: {', '.join(repr(c) for c in columns)}")
    own = [by_lower[c.lower()] for c in ZONES_FILE_COLUMNS]
    frame = _read_columns(zones_path, kind, own, what)
    ids = _floats(frame[own[0]])
    bad = np.flatnonzero(np.isnan(ids) | (ids != np.round(ids)))
    if bad.size:
        row = int(bad[0])
        raise _fail(name, f"column '{own[0]}', data row {row + 1}: {frame[own[0]][row]!r} is not a whole number")
    ids = ids.astype(np.int64)
    order = np.argsort(ids, kind="stable")
    repeated = np.flatnonzero(np.diff(ids[order]) == 0)
    if repeated.size:
        row = int(max(order[repeated[0]], order[repeated[0] + 1]))
        raise _fail(name, f"column '{own[0]}', data row {row + 1}: zone {ids[row]} appears twice")
    lat, lon = _floats(frame[own[1]]), _floats(frame[own[2]])
    for values, column, limit in ((lat, own[1], 90.0), (lon, own[2], 180.0)):
        raw = frame[column]
        text = raw.cast(pl.String).str.strip_chars().fill_null("")
        bad_text = np.flatnonzero(np.isnan(values) & (text != "").to_numpy())
        if bad_text.size:
            row = int(bad_text[0])
            raise _fail(name, f"column '{column}', data row {row + 1}: {raw[row]!r} is not a number")
        bad_range = np.flatnonzero(~np.isnan(values) & ((np.abs(values) > limit) | (values == 0)))
        if bad_range.size:
            row = int(bad_range[0])
            raise _fail(name, f"column '{column}', data row {row + 1}: {values[row]:g} is not a valid coordinate")
    return ids[order], lat[order], lon[order]


def _zone_points(ids: np.ndarray, zones: tuple[np.ndarray, np.ndarray, np.ndarray]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(longitude, latitude, unknown)`` of zone ids (float, NaN where missing) ``[n]``."""
    zone_ids, zone_lat, zone_lon = zones
    whole = ~np.isnan(ids) & (ids == np.round(ids))
    key = np.where(whole, ids, -1).astype(np.int64)
    at = np.clip(np.searchsorted(zone_ids, key), 0, zone_ids.size - 1)
    found = whole & (zone_ids[at] == key)
    lon = np.where(found, zone_lon[at], np.nan)
    lat = np.where(found, zone_lat[at], np.nan)
    return lon, lat, ~found | np.isnan(lon) | np.isnan(lat)


def _percentile_box(values: np.ndarray) -> tuple[float, float]:
    """``(low, high)``: the 0.5 and 99.5 percentiles (the nearest data points outward, so a small file's
    box is its exact bounding box)."""
    low = float(np.percentile(values, BOX_PERCENTILES[0], method="lower"))
    high = float(np.percentile(values, BOX_PERCENTILES[1], method="higher"))
    return low, high


def read_trip_records(path: str | Path, grid: HexGrid, *, zones_path: str | Path | None = None,
                      fare_column: str | None = None, max_bad_fraction: float = 0.05) -> TripRecords:
    """Read a TLC trip-record file (module docstring) onto ``grid``.

    Args:
        path: ``.csv``, ``.csv.gz`` or ``.parquet`` file, one row per trip.
        grid: the city's grid; points are projected onto it (scaled down uniformly if the data is larger).
        zones_path: CSV ``LocationID,latitude,longitude`` of zone centroids (degrees); needed when the
            file has zone ids ``PULocationID``/``DOLocationID`` instead of coordinates.
        fare_column: the fare to use instead of ``fare_amount``/``base_passenger_fare`` (e.g. ``total_amount``).
        max_bad_fraction: the largest share of rows that may be dropped (in [0, 1]).

    Returns:
        :class:`TripRecords`, sorted by request time.

    Raises:
        TripDataError: a missing, unreadable or unknown kind of file, missing columns, zone ids without
            a zones file, more than ``max_bad_fraction`` of the rows unusable, or no usable row.
    """
    path = Path(path).expanduser()
    name = str(path)
    if not 0.0 <= max_bad_fraction <= 1.0:
        raise ScenarioError(f"max_bad_fraction: must be in [0, 1] (got {max_bad_fraction})")
    kind = _kind(path)
    what = "trip-record file"
    _check_file(path, what)
    columns = _resolve_columns(_file_columns(path, kind, what), fare_column, name)
    zones = None
    if columns.zones is not None:
        if zones_path is None:
            stem = path.name[: -len(".csv.gz")] if path.name.lower().endswith(".csv.gz") else path.stem
            near = path.with_name(f"{stem}_zones.csv")
            hint = f" ({near.name} is next to it)" if near.exists() else ""
            raise _fail(name, f"the locations are zone ids ({', '.join(columns.zones)}); pass zones_path, a CSV "
                        f"with the columns {', '.join(ZONES_FILE_COLUMNS)} giving each zone's centroid{hint}")
        zones = _read_zones(Path(zones_path).expanduser())
    frame = _read_columns(path, kind, columns.used(), what)
    n = frame.height

    # ---- parse ------------------------------------------------------------------------------------
    checks: dict[str, list[tuple[str, np.ndarray]]] = {reason: [] for reason in DROP_REASONS}
    pickup_us, pickup_missing, pickup_bad = _times(frame[columns.pickup], name)
    dropoff_us, dropoff_missing, dropoff_bad = _times(frame[columns.dropoff], name)
    checks["bad_time"] += [(columns.pickup, pickup_missing | pickup_bad),
                           (columns.dropoff, dropoff_missing | dropoff_bad)]
    request_us = pickup_us
    if columns.request is not None:
        raw_request, request_missing, request_bad = _times(frame[columns.request], name)
        request_us = np.where(request_missing, pickup_us, raw_request)
        checks["bad_time"].append((columns.request, request_bad))

    if columns.latlon is not None:
        o_lon, o_lat, d_lon, d_lat = (_floats(frame[c]) for c in columns.latlon)
        for values, column, limit in zip((o_lon, o_lat, d_lon, d_lat), columns.latlon, (180.0, 90.0, 180.0, 90.0),
                                         strict=True):
            checks["bad_coordinates"].append((column, np.isnan(values) | (values == 0) | (np.abs(values) > limit)))
    else:
        assert columns.zones is not None and zones is not None
        o_lon, o_lat, o_unknown = _zone_points(_floats(frame[columns.zones[0]]), zones)
        d_lon, d_lat, d_unknown = _zone_points(_floats(frame[columns.zones[1]]), zones)
        checks["unknown_zone"] += [(columns.zones[0], o_unknown), (columns.zones[1], d_unknown)]

    times_ok = ~(pickup_missing | pickup_bad | dropoff_missing | dropoff_bad)
    duration_s = (dropoff_us - pickup_us) / US_PER_SECOND
    checks["dropoff_before_pickup"].append((columns.dropoff, times_ok & (duration_s < 0)))
    checks["too_long"].append((columns.dropoff, times_ok & (duration_s > MAX_DURATION_S)))
    fare = _floats(frame[columns.fare])
    checks["bad_fare"].append((columns.fare, np.isnan(fare) | (fare < 0)))
    miles = None
    if columns.distance is not None:
        miles = _floats(frame[columns.distance])
        checks["bad_distance"].append((columns.distance, np.isnan(miles) | (miles < 0)))

    reasons = list(DROP_REASONS)
    reason_of = np.full(n, -1, dtype=np.int64)

    def assign(reason: str) -> None:
        hit = np.zeros(n, dtype=bool)
        for _, mask in checks[reason]:
            hit |= mask
        reason_of[hit & (reason_of < 0)] = reasons.index(reason)

    for reason in reasons[:-1]:
        assign(reason)

    # ---- the box (over the rows that passed every other check) --------------------------------------
    ok = reason_of < 0
    box = None
    if ok.any():
        lon_all = np.concatenate([o_lon[ok], d_lon[ok]])
        lat_all = np.concatenate([o_lat[ok], d_lat[ok]])
        if columns.zones is not None:  # centroids from a zones file are no noise: their exact box
            box = (float(lon_all.min()), float(lon_all.max()), float(lat_all.min()), float(lat_all.max()))
        else:
            box = (*_percentile_box(lon_all), *_percentile_box(lat_all))  # lon_lo, lon_hi, lat_lo, lat_hi
            lon_pad = max(BOX_MARGIN * (box[1] - box[0]), 1e-4)
            lat_pad = max(BOX_MARGIN * (box[3] - box[2]), 1e-4)
            for values, column, (low, high, pad) in zip(
                    (o_lon, o_lat, d_lon, d_lat), columns.latlon,
                    ((box[0], box[1], lon_pad), (box[2], box[3], lat_pad)) * 2, strict=True):
                checks["outside_box"].append((column, ok & ((values < low - pad) | (values > high + pad))))
            assign("outside_box")

    counts = np.bincount(reason_of[reason_of >= 0], minlength=len(reasons))
    dropped = {reason: int(counts[k]) for k, reason in enumerate(reasons)}
    n_dropped = int(counts.sum())
    keep = reason_of < 0
    if n_dropped > max_bad_fraction * n or not keep.any():
        main = int(np.argmax(counts))
        reason = reasons[main]
        first = int(np.flatnonzero(reason_of == main)[0])
        column = next(c for c, mask in checks[reason] if mask[first])
        line = f" (line {first + 2})" if kind == "csv" else ""
        value = frame[column][first]
        per_reason = ", ".join(f"{r}={c}" for r, c in dropped.items() if c)
        head = (f"no usable trip: all {n} rows were dropped" if not keep.any() else
                f"{n_dropped} of {n} rows ({n_dropped / n:.1%}) cannot be used, more than "
                f"max_bad_fraction={max_bad_fraction:g}")
        raise _fail(name, f"{head}; mostly {DROP_REASONS[reason]} ({dropped[reason]} rows, '{reason}'), first at "
                    f"column '{column}', data row {first + 1}{line}: {value!r}. Dropped per reason: {per_reason}")
    assert box is not None

    # ---- project ----------------------------------------------------------------------------------
    o_lon, o_lat, d_lon, d_lat = o_lon[keep], o_lat[keep], d_lon[keep], d_lat[keep]
    mean_lat = float(np.concatenate([o_lat, d_lat]).mean())
    km_x = KM_PER_DEGREE * math.cos(math.radians(mean_lat))
    width_km, height_km = (box[1] - box[0]) * km_x, (box[3] - box[2]) * KM_PER_DEGREE
    grid_w, grid_h = grid.extent_km
    scale = 1.0
    if width_km > grid_w:
        scale = min(scale, grid_w / width_km)
    if height_km > grid_h:
        scale = min(scale, grid_h / height_km)
    origin_xy = np.stack(((o_lon - box[0]) * km_x * scale, (o_lat - box[2]) * KM_PER_DEGREE * scale), axis=1)
    dest_xy = np.stack(((d_lon - box[0]) * km_x * scale, (d_lat - box[2]) * KM_PER_DEGREE * scale), axis=1)
    cells = grid.cell_of_km(torch.from_numpy(np.concatenate([origin_xy, dest_xy]))).cpu().numpy().astype(np.int64)
    m = origin_xy.shape[0]
    if miles is not None:
        distance_km = miles[keep] * KM_PER_MILE * scale
    else:
        distance_km = np.linalg.norm(dest_xy - origin_xy, axis=1)

    request = request_us[keep]
    day0 = (int(request.min()) // (SECONDS_PER_DAY * US_PER_SECOND)) * SECONDS_PER_DAY * US_PER_SECOND
    request_s = (request - day0) / US_PER_SECOND
    out = pl.DataFrame({
        "request_s": pl.Series(request_s, dtype=pl.Float64),
        "day": pl.Series(np.floor(request_s / SECONDS_PER_DAY).astype(np.int64), dtype=pl.Int64),
        "origin_cell": pl.Series(cells[:m], dtype=pl.Int64),
        "dest_cell": pl.Series(cells[m:], dtype=pl.Int64),
        "distance_km": pl.Series(distance_km, dtype=pl.Float64),
        "fare": pl.Series(fare[keep], dtype=pl.Float64),
        "duration_s": pl.Series(duration_s[keep], dtype=pl.Float64),
    }).sort("request_s", maintain_order=True)
    return TripRecords(out, int(out["day"].max()) + 1, dropped, name, float(scale))


# ----- synthetic files -----------------------------------------------------------------------------

SYNTHETIC_BOX = (-74.02, -73.93, 40.70, 40.85)  # lon_lo, lon_hi, lat_lo, lat_hi: about Manhattan
SYNTHETIC_START = np.datetime64("2016-01-01T00:00:00", "s")
SYNTHETIC_ZONES = 30
_CENTRE = (-73.985, 40.755)  # midtown


def synthetic_zones_path(path: str | Path) -> Path:
    """Where :func:`synthetic_trip_records` writes the zones of ``path``: ``<stem>_zones.csv`` next to it."""
    path = Path(path)
    stem = path.name[: -len(".csv.gz")] if path.name.lower().endswith(".csv.gz") else path.stem
    return path.with_name(f"{stem}_zones.csv")


def _times_text(seconds: np.ndarray) -> list[str]:
    stamps = SYNTHETIC_START + np.round(seconds).astype(np.int64).astype("timedelta64[s]")
    return [s.replace("T", " ") for s in np.datetime_as_string(stamps, unit="s")]


def _points(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(lon, lat)`` ``[n]``: 40% around midtown, the rest uniform in the box."""
    lon_lo, lon_hi, lat_lo, lat_hi = SYNTHETIC_BOX
    lon, lat = rng.uniform(lon_lo, lon_hi, n), rng.uniform(lat_lo, lat_hi, n)
    central = rng.random(n) < 0.4
    lon = np.where(central, np.clip(rng.normal(_CENTRE[0], 0.012, n), lon_lo, lon_hi), lon)
    lat = np.where(central, np.clip(rng.normal(_CENTRE[1], 0.015, n), lat_lo, lat_hi), lat)
    return lon, lat


def synthetic_trip_records(path: str | Path, n_trips: int, seed: int, variant: Variant = "yellow", *,
                           days: int = 2) -> Path:
    """Write ``n_trips`` random trips in the TLC schema of ``variant`` to ``path`` (``.csv``, or gzip for
    ``.csv.gz``) and return it.

    Variants: ``"yellow"`` (2017+ yellow schema, zone ids), ``"yellow_latlon"`` (2015–2016 yellow
    schema with coordinates), ``"hvfhv"`` (high-volume FHV with ``request_datetime``, zone ids). For the
    zone variants a zones file of :data:`SYNTHETIC_ZONES` zone ids with centroids is written too,
    :func:`synthetic_zones_path` (``<stem>_zones.csv``).

    Trips start on ``days`` days from 2016-01-01 with a morning (≈ 08:30) and an evening (≈ 18:00)
    peak, in a Manhattan-sized box (40.70–40.85 N, 74.02–73.93 W), about 3 km (straight line) long on
    average (zone variants: popular zones, nearer ones likelier); the road distance is the straight
    line × 1.2–1.45 (at least 0.3–2 km), speeds about 16 km/h (slower at the peaks), fares 2.50 +
    2.50/mile + 0.50/minute (high-volume FHV: × 1.25). Deterministic by ``seed``.
    """
    if variant not in ("yellow", "yellow_latlon", "hvfhv"):
        raise ScenarioError(f"variant: must be 'yellow', 'yellow_latlon' or 'hvfhv' (got {variant!r})")
    if n_trips < 1 or days < 1:
        raise ScenarioError(f"n_trips and days must be at least 1 (got {n_trips}, {days})")
    path = Path(path)
    rng = np.random.default_rng(seed)
    n = int(n_trips)
    # time of day: 30% spread over the day, 35% a morning peak, 35% an evening peak
    component = rng.choice(3, size=n, p=(0.3, 0.35, 0.35))
    hours = np.select([component == 0, component == 1],
                      [rng.uniform(0, 24, n), rng.normal(8.5, 1.0, n)], rng.normal(18.0, 1.5, n)) % 24
    request = rng.integers(0, days, n) * SECONDS_PER_DAY + hours * 3600.0

    zoned = variant != "yellow_latlon"
    lon_lo, lon_hi, lat_lo, lat_hi = SYNTHETIC_BOX
    km_x = KM_PER_DEGREE * math.cos(math.radians((lat_lo + lat_hi) / 2))
    if zoned:  # destinations: popular zones, the nearer the likelier (a 3 km decay)
        zone_ids = np.sort(rng.choice(np.arange(1, 264), SYNTHETIC_ZONES, replace=False))
        zone_lon, zone_lat = _points(rng, SYNTHETIC_ZONES)
        weights = rng.dirichlet(np.full(SYNTHETIC_ZONES, 2.0))
        apart = np.hypot((zone_lon[:, None] - zone_lon[None]) * km_x,
                         (zone_lat[:, None] - zone_lat[None]) * KM_PER_DEGREE)
        towards = weights[None] * np.exp(-apart / 3.0)
        towards /= towards.sum(axis=1, keepdims=True)
        o_zone = rng.choice(SYNTHETIC_ZONES, n, p=weights)
        d_zone = (rng.random(n)[:, None] > np.cumsum(towards[o_zone], axis=1)).sum(axis=1).clip(0, SYNTHETIC_ZONES - 1)
        o_lon, o_lat, d_lon, d_lat = zone_lon[o_zone], zone_lat[o_zone], zone_lon[d_zone], zone_lat[d_zone]
    else:  # destinations: a random direction, a gamma-distributed straight line of 3 km on average
        o_lon, o_lat = _points(rng, n)
        angle, length = rng.uniform(0, 2 * math.pi, n), rng.gamma(2.0, 1.5, n)
        d_lon = np.clip(o_lon + length * np.cos(angle) / km_x, lon_lo, lon_hi)
        d_lat = np.clip(o_lat + length * np.sin(angle) / KM_PER_DEGREE, lat_lo, lat_hi)
    straight_km = np.hypot((d_lon - o_lon) * km_x, (d_lat - o_lat) * KM_PER_DEGREE)
    road_km = np.maximum(straight_km * rng.uniform(1.2, 1.45, n), rng.uniform(0.3, 2.0, n))
    miles = np.round(road_km / KM_PER_MILE, 2)
    peak = (component > 0).astype(np.float64)
    speed_kmh = 16.0 * np.exp(rng.normal(0.0, 0.2, n)) * (1.0 - 0.2 * peak)
    duration = np.round(road_km / speed_kmh * 3600.0 + rng.uniform(30, 120, n))
    minutes = duration / 60.0
    fare = np.round(2.5 + 2.5 * miles + 0.5 * minutes, 2)
    wait = np.round(rng.uniform(60, 480, n)) if variant == "hvfhv" else np.zeros(n)
    pickup = request + wait
    order = np.argsort(pickup, kind="stable")

    def col(values: np.ndarray) -> np.ndarray:
        return values[order]

    pickup_text, dropoff_text = _times_text(col(pickup)), _times_text(col(pickup + duration))
    tip = np.round(np.where(rng.random(n) < 0.6, 0.18 * fare, 0.0), 2)
    if variant == "hvfhv":
        base_fare = np.round(1.25 * fare, 2)
        data: dict[str, object] = {
            "hvfhs_license_num": col(np.where(rng.random(n) < 0.7, "HV0003", "HV0005")),
            "dispatching_base_num": col(np.where(rng.random(n) < 0.7, "B03404", "B03406")),
            "request_datetime": _times_text(col(request)),
            "on_scene_datetime": _times_text(col(pickup - np.round(rng.uniform(0, 60, n)))),
            "pickup_datetime": pickup_text,
            "dropoff_datetime": dropoff_text,
            "PULocationID": col(zone_ids[o_zone]),
            "DOLocationID": col(zone_ids[d_zone]),
            "trip_miles": col(miles),
            "trip_time": col(duration.astype(np.int64)),
            "base_passenger_fare": col(base_fare),
            "tolls": np.zeros(n),
            "bcf": col(np.round(0.0275 * base_fare, 2)),
            "sales_tax": col(np.round(0.08875 * base_fare, 2)),
            "congestion_surcharge": np.full(n, 2.75),
            "airport_fee": np.zeros(n),
            "tips": col(tip),
            "driver_pay": col(np.round(0.75 * base_fare, 2)),
            "shared_request_flag": ["N"] * n,
            "shared_match_flag": ["N"] * n,
        }
    else:
        total = np.round(fare + 0.5 + 0.5 + 0.3 + tip, 2)
        data = {
            "VendorID": col(rng.integers(1, 3, n)),
            "tpep_pickup_datetime": pickup_text,
            "tpep_dropoff_datetime": dropoff_text,
            "passenger_count": col(rng.choice([1, 1, 1, 2, 3, 5], n)),
            "trip_distance": col(miles),
        }
        if zoned:
            data |= {"RatecodeID": np.ones(n, dtype=np.int64), "store_and_fwd_flag": ["N"] * n,
                     "PULocationID": col(zone_ids[o_zone]), "DOLocationID": col(zone_ids[d_zone])}
        else:
            data |= {"pickup_longitude": col(np.round(o_lon, 6)), "pickup_latitude": col(np.round(o_lat, 6)),
                     "RatecodeID": np.ones(n, dtype=np.int64), "store_and_fwd_flag": ["N"] * n,
                     "dropoff_longitude": col(np.round(d_lon, 6)), "dropoff_latitude": col(np.round(d_lat, 6))}
        data |= {"payment_type": col(np.where(tip > 0, 1, 2)), "fare_amount": col(fare), "extra": np.full(n, 0.5),
                 "mta_tax": np.full(n, 0.5), "tip_amount": col(tip), "tolls_amount": np.zeros(n),
                 "improvement_surcharge": np.full(n, 0.3), "total_amount": col(total)}
    text = pl.DataFrame(data).write_csv()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.lower().endswith(".gz"):
        buffer = io.BytesIO()
        with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as handle:
            handle.write(text.encode())
        path.write_bytes(buffer.getvalue())
    else:
        path.write_text(text)
    if zoned:
        pl.DataFrame({"LocationID": zone_ids, "latitude": np.round(zone_lat, 6),
                      "longitude": np.round(zone_lon, 6)}).write_csv(synthetic_zones_path(path))
    return path
