"""TLC trip records onto the hex grid: synthetic files of every variant round-trip, a hand-written file
lands on hand-computed cells, parquet and gzip read like CSV, and every check names file, column and row."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from decisionlab.core.errors import ScenarioError
from decisionlab.domains.ride_hailing.grid import HexGrid
from decisionlab.domains.ride_hailing.trips import (
    DROP_REASONS,
    TripDataError,
    read_trip_records,
    synthetic_trip_records,
    synthetic_zones_path,
)

KM_PER_DEGREE = 6371.0088 * math.pi / 180
GRID = HexGrid(12, 1.0)


def _read(path: Path, variant: str, grid: HexGrid = GRID, **kwargs: object):
    zones = synthetic_zones_path(path) if variant != "yellow_latlon" else None
    return read_trip_records(path, grid, zones_path=zones, **kwargs)


def _edit(path: Path, edits: dict[tuple[int, str], str]) -> None:
    """Set ``(0-based data row, column) → text`` in a CSV and write it back."""
    frame = pl.read_csv(path, infer_schema=False)
    for (row, column), value in edits.items():
        values = frame[column].to_list()
        values[row] = value
        frame = frame.with_columns(pl.Series(column, values, dtype=pl.String))
    frame.write_csv(path)


# ----- synthetic round trips -----------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["yellow", "yellow_latlon", "hvfhv"])
def test_each_variant_round_trips(tmp_path: Path, variant: str) -> None:
    path = synthetic_trip_records(tmp_path / f"{variant}.csv", 400, seed=1, variant=variant)
    assert (variant != "yellow_latlon") == synthetic_zones_path(path).exists()
    trips = _read(path, variant)
    frame = trips.frame
    assert trips.n_trips == 400 and trips.days == 2 and set(frame["day"].unique()) == {0, 1}
    assert trips.dropped == dict.fromkeys(DROP_REASONS, 0)
    assert frame.columns == ["request_s", "day", "origin_cell", "dest_cell", "distance_km", "fare", "duration_s"]
    assert frame.schema["request_s"] == pl.Float64 and frame.schema["origin_cell"] == pl.Int64
    for column in ("origin_cell", "dest_cell"):
        assert frame[column].min() >= 0 and frame[column].max() < GRID.n_cells
    assert np.all(np.diff(frame["request_s"].to_numpy()) >= 0)
    assert (frame["fare"] > 0).all() and (frame["duration_s"] > 0).all() and (frame["distance_km"] > 0).all()
    assert 0 < trips.scale < 1  # Manhattan (≈ 7.5 × 16.7 km) is larger than the 12 × 10 km grid
    np.testing.assert_array_equal(frame["day"].to_numpy(), frame["request_s"].to_numpy() // 86400)
    assert trips.source == str(path)
    # deterministic by seed
    again = synthetic_trip_records(tmp_path / "again.csv", 400, seed=1, variant=variant)
    assert again.read_bytes() == path.read_bytes()
    other = synthetic_trip_records(tmp_path / "other.csv", 400, seed=2, variant=variant)
    assert other.read_bytes() != path.read_bytes()


def test_latlon_cells_are_the_projection_of_the_points(tmp_path: Path) -> None:
    path = synthetic_trip_records(tmp_path / "trips.csv", 300, seed=3, variant="yellow_latlon")
    trips = read_trip_records(path, GRID)
    raw = pl.read_csv(path)  # sorted by pickup = request; the reader's sort is stable
    lon = np.concatenate([raw["pickup_longitude"].to_numpy(), raw["dropoff_longitude"].to_numpy()])
    lat = np.concatenate([raw["pickup_latitude"].to_numpy(), raw["dropoff_latitude"].to_numpy()])
    lon_lo, lon_hi = np.percentile(lon, 0.5, method="lower"), np.percentile(lon, 99.5, method="higher")
    lat_lo, lat_hi = np.percentile(lat, 0.5, method="lower"), np.percentile(lat, 99.5, method="higher")
    km_x = KM_PER_DEGREE * math.cos(math.radians(float(lat.mean())))
    width_km, height_km = (lon_hi - lon_lo) * km_x, (lat_hi - lat_lo) * KM_PER_DEGREE
    scale = min(1.0, GRID.extent_km[0] / width_km, GRID.extent_km[1] / height_km)
    assert trips.scale == pytest.approx(scale, rel=1e-12)
    xy = np.stack(((lon - lon_lo) * km_x * scale, (lat - lat_lo) * KM_PER_DEGREE * scale), axis=1)
    cells = GRID.cell_of_km(torch.from_numpy(xy)).numpy()
    np.testing.assert_array_equal(trips.frame["origin_cell"].to_numpy(), cells[:300])
    np.testing.assert_array_equal(trips.frame["dest_cell"].to_numpy(), cells[300:])
    miles = raw["trip_distance"].to_numpy()
    np.testing.assert_allclose(trips.frame["distance_km"].to_numpy(), miles * 1.609344 * scale)
    np.testing.assert_allclose(trips.frame["fare"].to_numpy(), raw["fare_amount"].to_numpy())


def test_hvfhv_uses_the_request_time_and_fares_can_be_chosen(tmp_path: Path) -> None:
    path = synthetic_trip_records(tmp_path / "fhv.csv", 200, seed=4, variant="hvfhv")
    trips = _read(path, "hvfhv")
    raw = pl.read_csv(path, try_parse_dates=True)
    request = raw["request_datetime"].sort()
    midnight = request[0].replace(hour=0, minute=0, second=0)
    expected = np.array([(t - midnight).total_seconds() for t in request])
    np.testing.assert_allclose(trips.frame["request_s"].to_numpy(), expected)
    duration = (raw["dropoff_datetime"] - raw["pickup_datetime"]).dt.total_seconds()
    assert sorted(trips.frame["duration_s"].to_list()) == sorted(duration.to_list())
    # a missing request time falls back to the pickup
    _edit(path, {(0, "request_datetime"): ""})
    first = pl.read_csv(path, try_parse_dates=True)["pickup_datetime"][0]
    again = _read(path, "hvfhv")
    assert again.n_trips == 200 and (again.frame["request_s"] == (first - midnight).total_seconds()).any()

    yellow = synthetic_trip_records(tmp_path / "y.csv", 200, seed=4, variant="yellow")
    raw = pl.read_csv(yellow)
    assert sorted(_read(yellow, "yellow").frame["fare"].to_list()) == sorted(raw["fare_amount"].to_list())
    total = _read(yellow, "yellow", fare_column="total_amount")
    assert sorted(total.frame["fare"].to_list()) == sorted(raw["total_amount"].to_list())


# ----- a hand-written file -------------------------------------------------------------------------

HEADER = ("tpep_pickup_datetime,tpep_dropoff_datetime,trip_distance,pickup_longitude,pickup_latitude,"
          "dropoff_longitude,dropoff_latitude,fare_amount,total_amount")


def _point(i: int, j: int) -> str:
    """``lon,lat`` of the point i hundredths of a degree east of −74.00 and j north of 40.70."""
    return f"{-74.0 + i / 100:.2f},{40.70 + j / 100:.2f}"


# Ten points, offsets (i, j) in 0.01°. The box is exactly 74.00–73.96 W × 40.70–40.74 N (a small file's
# 0.5/99.5 percentiles are its extremes); the mean latitude is 40.72, so 0.01° east is
# 0.01 · 111.1951 · cos(40.72°) = 0.8428 km and 0.01° north is 1.1120 km. On a 10 × 10 grid of 1 km
# cells (centres x = col + row%2 / 2, y = 0.8660 · row) the nearest centres are (second nearest ≥ 0.2 km
# further in every case):
#   (0,0) → (0, 0) km → cell 0            (4,4) → (3.371, 4.448) → row 5, col 3 (3.5, 4.330) → 53
#   (1,1) → (0.843, 1.112) → row 1, col 0 (0.5, 0.866) → 10
#   (3,4) → (2.528, 4.448) → row 5, col 2 (2.5, 4.330) → 52
#   (4,0) → (3.371, 0) → row 0, col 3 → 3 (0,4) → (0, 4.448) → row 5, col 0 (0.5, 4.330) → 50
#   (2,3) → (1.686, 3.336) → row 4, col 2 (2, 3.464) → 42
#   (3,2) → (2.528, 2.224) → row 3, col 2 (2.5, 2.598) → 32
#   (4,1) → (3.371, 1.112) → row 1, col 3 (3.5, 0.866) → 13
#   (2,1) → (1.686, 1.112) → row 1, col 1 (1.5, 0.866) → 11
HAND_ROWS = [
    f"2016-01-01 08:00:00,2016-01-01 08:10:00,1.0,{_point(0, 0)},{_point(4, 4)},10.0,12.3",
    f"2016-01-01 08:00:30.5,2016-01-01 08:05:30.5,2.0,{_point(1, 1)},{_point(3, 4)},12.5,15.0",
    f"2016-01-02 18:00:00,2016-01-02 18:20:00,3.0,{_point(4, 0)},{_point(0, 4)},20.0,25.0",
    f"2016-01-01 07:59:00,2016-01-01 08:14:00,0.5,{_point(2, 3)},{_point(3, 2)},7.0,8.8",
    f"2016-01-02 00:00:00,2016-01-02 00:01:00,0,{_point(4, 1)},{_point(2, 1)},2.5,3.3",
]


def _hand(tmp_path: Path, rows: list[str] | None = None, name: str = "hand.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *(HAND_ROWS if rows is None else rows)]) + "\n")
    return path


def test_hand_written_file_lands_on_hand_computed_cells(tmp_path: Path) -> None:
    trips = read_trip_records(_hand(tmp_path), HexGrid(10, 1.0))
    frame = trips.frame
    # sorted by request: rows 4, 1, 2, 5, 3 of the file
    assert frame["request_s"].to_list() == [28740.0, 28800.0, 28830.5, 86400.0, 151200.0]
    assert frame["day"].to_list() == [0, 0, 0, 1, 1] and trips.days == 2
    assert frame["origin_cell"].to_list() == [42, 0, 10, 13, 3]
    assert frame["dest_cell"].to_list() == [32, 53, 52, 11, 50]
    assert frame["duration_s"].to_list() == [900.0, 600.0, 300.0, 60.0, 1200.0]
    assert frame["fare"].to_list() == [7.0, 10.0, 12.5, 2.5, 20.0]
    assert trips.scale == 1.0
    np.testing.assert_allclose(frame["distance_km"].to_numpy(), np.array([0.5, 1, 2, 0, 3]) * 1.609344)
    assert sum(trips.dropped.values()) == 0


def test_a_small_grid_scales_the_data_down(tmp_path: Path) -> None:
    grid = HexGrid(3, 1.0)  # extent 3 × 2.232 km; the data is 3.371 × 4.448 km
    trips = read_trip_records(_hand(tmp_path), grid)
    scale = grid.extent_km[1] / (0.04 * KM_PER_DEGREE)
    assert trips.scale == pytest.approx(scale, rel=1e-9) and trips.scale < 1
    np.testing.assert_allclose(trips.frame["distance_km"].to_numpy(), np.array([0.5, 1, 2, 0, 3]) * 1.609344 * scale)
    assert trips.frame["dest_cell"][1] == grid.n_cells - 1  # the north-east corner lands in the last cell
    assert trips.frame["origin_cell"][1] == 0


def test_without_a_distance_column_the_straight_line_is_used(tmp_path: Path) -> None:
    path = _hand(tmp_path)
    pl.read_csv(path, infer_schema=False).drop("trip_distance").write_csv(path)
    trips = read_trip_records(path, HexGrid(10, 1.0))
    km_x, km_y = 0.01 * KM_PER_DEGREE * math.cos(math.radians(40.72)), 0.01 * KM_PER_DEGREE
    # the first trip after sorting: (2,3) → (3,2)
    assert trips.frame["distance_km"][0] == pytest.approx(math.hypot(km_x, km_y), rel=1e-9)


def test_iso_and_open_data_time_styles(tmp_path: Path) -> None:
    rows = [r.replace("2016-01-01 08:00:00", "2016-01-01T08:00:00") for r in HAND_ROWS]
    rows[3] = rows[3].replace("2016-01-01 07:59:00", "01/01/2016 07:59:00 AM")
    trips = read_trip_records(_hand(tmp_path, rows), HexGrid(10, 1.0))
    assert trips.frame["request_s"].to_list() == [28740.0, 28800.0, 28830.5, 86400.0, 151200.0]


# ----- other file kinds ----------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["yellow_latlon", "hvfhv"])
def test_parquet_and_gzip_read_like_csv(tmp_path: Path, variant: str) -> None:
    path = synthetic_trip_records(tmp_path / "trips.csv", 300, seed=5, variant=variant)
    from_csv = _read(path, variant)
    native = pl.read_csv(path, try_parse_dates=True)  # native datetimes, ints and floats
    assert isinstance(native.schema["pickup_datetime" if variant == "hvfhv" else "tpep_pickup_datetime"], pl.Datetime)
    parquet = tmp_path / "trips.parquet"
    native.write_parquet(parquet)
    zones = synthetic_zones_path(path) if variant == "hvfhv" else None
    from_parquet = read_trip_records(parquet, GRID, zones_path=zones)
    assert from_parquet.frame.equals(from_csv.frame) and from_parquet.scale == from_csv.scale
    gz = synthetic_trip_records(tmp_path / "trips.csv.gz", 300, seed=5, variant=variant)
    assert synthetic_zones_path(gz) == tmp_path / "trips_zones.csv"
    assert read_trip_records(gz, GRID, zones_path=zones).frame.equals(from_csv.frame)


# ----- dropped rows --------------------------------------------------------------------------------


def test_dropped_rows_are_counted_per_reason(tmp_path: Path) -> None:
    path = synthetic_trip_records(tmp_path / "trips.csv", 400, seed=6, variant="yellow_latlon")
    pickup = pl.read_csv(path, infer_schema=False)["tpep_pickup_datetime"]
    _edit(path, {
        (3, "pickup_longitude"): "0", (3, "pickup_latitude"): "0",  # NYC's 0,0 rows
        (10, "dropoff_latitude"): "",
        (20, "dropoff_latitude"): "95.0",
        (30, "tpep_dropoff_datetime"): "2016-01-01 00:00:00",  # before its pickup
        (31, "tpep_dropoff_datetime"): "2016-01-01 00:00:00",
        (40, "tpep_pickup_datetime"): "2016-01-01 12:00:00", (40, "tpep_dropoff_datetime"): "2016-01-01 19:00:00",
        (50, "fare_amount"): "-5.5",
        (60, "trip_distance"): "-1",
        (70, "pickup_latitude"): "41.5",  # far outside the box
        (80, "tpep_pickup_datetime"): "not a time",
    })
    assert pickup[30] > "2016-01-01 00:00:00" and pickup[31] > "2016-01-01 00:00:00"
    trips = read_trip_records(path, GRID)
    assert trips.dropped == {"bad_time": 1, "bad_coordinates": 3, "unknown_zone": 0, "dropoff_before_pickup": 2,
                             "too_long": 1, "bad_fare": 1, "bad_distance": 1, "outside_box": 1}
    assert trips.n_trips == 400 - 10


def test_unknown_zones_are_dropped(tmp_path: Path) -> None:
    path = synthetic_trip_records(tmp_path / "trips.csv", 200, seed=7, variant="yellow")
    _edit(path, {(5, "PULocationID"): "999", (6, "DOLocationID"): "", (7, "DOLocationID"): "12.5"})
    trips = _read(path, "yellow")
    assert trips.dropped["unknown_zone"] == 3 and trips.n_trips == 197


# ----- errors --------------------------------------------------------------------------------------


def test_missing_columns_list_what_each_variant_needs(tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_text("when,where,price\n2016-01-01 00:00:00,1,2.5\n")
    with pytest.raises(TripDataError) as err:
        read_trip_records(path, GRID)
    message = str(err.value)
    assert str(path) in message
    for expected in ("tpep_pickup_datetime", "tpep_dropoff_datetime", "lpep_pickup_datetime", "pickup_datetime",
                     "dropoff_datetime", "request_datetime", "fare_amount", "base_passenger_fare", "trip_miles",
                     "PULocationID", "DOLocationID", "pickup_longitude", "dropoff_latitude", "'when'", "'price'"):
        assert expected in message
    # a known variant without locations or fare
    path.write_text("tpep_pickup_datetime,tpep_dropoff_datetime,fare_amount\n"
                    "2016-01-01 00:00:00,2016-01-01 00:05:00,5\n")
    with pytest.raises(TripDataError, match="missing the locations"):
        read_trip_records(path, GRID)
    with pytest.raises(TripDataError, match="the fare column 'tip'"):
        read_trip_records(_hand(tmp_path), GRID, fare_column="tip")
    assert isinstance(err.value, ScenarioError)


def test_zone_ids_need_a_zones_file(tmp_path: Path) -> None:
    path = synthetic_trip_records(tmp_path / "trips.csv", 50, seed=8, variant="yellow")
    with pytest.raises(TripDataError, match=r"zone ids \(PULocationID, DOLocationID\); pass zones_path.*"
                                            r"trips_zones\.csv is next to it") as err:
        read_trip_records(path, GRID)
    assert str(path) in str(err.value)
    zones = tmp_path / "bad_zones.csv"
    zones.write_text("LocationID,lat,lon\n1,40.7,-74.0\n")
    with pytest.raises(TripDataError, match="missing latitude, longitude"):
        read_trip_records(path, GRID, zones_path=zones)
    zones.write_text("LocationID,latitude,longitude\n1,40.7,-74.0\n1,40.8,-74.0\n")
    with pytest.raises(TripDataError, match="data row 2: zone 1 appears twice"):
        read_trip_records(path, GRID, zones_path=zones)
    with pytest.raises(TripDataError, match="zones file not found"):
        read_trip_records(path, GRID, zones_path=tmp_path / "nope.csv")


def test_a_bad_time_names_column_and_row(tmp_path: Path) -> None:
    rows = list(HAND_ROWS)
    rows[2] = rows[2].replace("2016-01-02 18:00:00", "2016-13-45 99:00")
    path = _hand(tmp_path, rows)
    with pytest.raises(TripDataError) as err:
        read_trip_records(path, HexGrid(10, 1.0))
    message = str(err.value)
    assert message.startswith(f"{path}: 1 of 5 rows (20.0%) cannot be used, more than max_bad_fraction=0.05")
    assert "'bad_time'" in message
    assert "column 'tpep_pickup_datetime', data row 3 (line 4): '2016-13-45 99:00'" in message
    # allowed with a larger tolerance
    assert read_trip_records(path, HexGrid(10, 1.0), max_bad_fraction=0.2).n_trips == 4


def test_too_many_bad_rows_name_the_main_reason(tmp_path: Path) -> None:
    path = synthetic_trip_records(tmp_path / "trips.csv", 200, seed=9, variant="yellow_latlon")
    edits = {(row, "fare_amount"): "-2.5" for row in range(17, 200, 10)}  # 19 rows: 9.5%
    edits[(150, "pickup_longitude")] = "0"
    _edit(path, edits)
    with pytest.raises(TripDataError) as err:
        read_trip_records(path, GRID)
    message = str(err.value)
    assert "20 of 200 rows (10.0%)" in message
    assert ("mostly a missing or negative fare (19 rows, 'bad_fare'), first at column 'fare_amount', "
            "data row 18 (line 19)") in message
    assert "bad_coordinates=1, bad_fare=19" in message
    assert read_trip_records(path, GRID, max_bad_fraction=0.1).n_trips == 180


def test_nothing_left_after_the_drops(tmp_path: Path) -> None:
    rows = [",".join(r.split(",")[:3] + ["0", "0"] + r.split(",")[5:]) for r in HAND_ROWS]
    with pytest.raises(TripDataError, match=r"no usable trip: all 5 rows were dropped; mostly a missing, zero or "
                                            r"out-of-range coordinate .*column 'pickup_longitude', data row 1"):
        read_trip_records(_hand(tmp_path, rows), GRID, max_bad_fraction=1.0)


def test_unreadable_files(tmp_path: Path) -> None:
    path = tmp_path / "trips.txt"
    path.write_text(HEADER + "\n")
    with pytest.raises(TripDataError, match=r"trips\.txt: unknown file type; .*\.csv, \.csv\.gz or \.parquet"):
        read_trip_records(path, GRID)
    with pytest.raises(TripDataError, match="trip-record file not found"):
        read_trip_records(tmp_path / "nope.csv", GRID)
    with pytest.raises(TripDataError, match="has a header but no rows"):
        read_trip_records(_hand(tmp_path, []), GRID)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(TripDataError, match="empty.csv: trip-record file is empty"):
        read_trip_records(tmp_path / "empty.csv", GRID)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not a parquet file at all")
    with pytest.raises(TripDataError, match=r"broken\.parquet: trip-record file cannot be read as PARQUET"):
        read_trip_records(broken, GRID)
    with pytest.raises(ScenarioError, match="max_bad_fraction"):
        read_trip_records(_hand(tmp_path), GRID, max_bad_fraction=1.5)
    with pytest.raises(ScenarioError, match="variant"):
        synthetic_trip_records(tmp_path / "x.csv", 10, seed=0, variant="green")  # type: ignore[arg-type]
