"""Reading a user's own sales history (CSV or parquet) into demand tensors.

The file has one row per series and period:

| column | accepted names (any case) | type |
|---|---|---|
| item | ``item_id``, ``item``, ``sku``, ``product`` | text (numbers are read as text) |
| store | ``store_id``, ``store``, ``location`` | text |
| date | ``date``, ``day``, ``week`` | ``YYYY-MM-DD`` (or a date/datetime column in parquet) |
| units | ``units``, ``sales``, ``quantity``, ``qty``, ``units_sold``, ``demand`` | non-negative number |
| promo (optional) | ``promo``, ``promotion``, ``on_promotion`` | 0/1, true/false, yes/no (empty: 0) |

Every mistake raises :class:`~decisionlab.core.errors.DecisionlabError` with a message naming the
file, the column and the first offending row (rows are counted as in a spreadsheet: the header is
row 1, the first data row is row 2): missing file, unsupported extension, unreadable file, missing
columns, empty values, unparseable dates, non-numeric or negative units, an unreadable promo
flag, duplicate (item, store, date) rows, and dates off the file's period grid.

**Gaps.** Point-of-sale extracts usually leave out the days on which nothing sold, so a date
missing inside the calendar is read as **zero units, no promotion** (``fill_gaps=True``, the
default); ``fill_gaps=False`` raises an error naming the first missing (item, store, date)
instead. The same rule pads a series that starts late or ends early up to the file's full date
range, so every series shares one calendar. The period is the smallest spacing between the file's
dates (a day for daily data, 7 days for weekly data); every date must sit on that grid.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import NamedTuple

import numpy as np
import polars as pl
import torch

from decisionlab.core import DecisionlabError

ALIASES: dict[str, tuple[str, ...]] = {
    "item_id": ("item_id", "item", "sku", "product"),
    "store_id": ("store_id", "store", "location"),
    "date": ("date", "day", "week"),
    "units": ("units", "sales", "quantity", "qty", "units_sold", "demand"),
    "promo": ("promo", "promotion", "on_promotion"),
}
REQUIRED = ("item_id", "store_id", "date", "units")
SUFFIXES = (".csv", ".parquet", ".pq")
TRUE_WORDS = {"1", "1.0", "true", "t", "yes", "y"}
FALSE_WORDS = {"0", "0.0", "false", "f", "no", "n", ""}


class SalesFileError(DecisionlabError):
    """A sales file that cannot be used as it is (the message says where and why)."""

    http_status = 422


class DemandTensors(NamedTuple):
    """A sales frame as tensors: ``demand [n_series, T]`` (float32 units), ``promo [n_series, T]``
    (bool), ``dates`` (the T period dates, ascending) and ``keys`` (a frame ``item_id, store_id``
    with one row per series, in tensor order)."""

    demand: torch.Tensor
    promo: torch.Tensor
    dates: list[dt.date]
    keys: pl.DataFrame


def _read_raw(path: Path) -> pl.DataFrame:
    name = str(path)
    if not path.exists():
        raise SalesFileError(f"sales file not found: {name}")
    if path.is_dir():
        raise SalesFileError(f"sales file {name} is a folder, not a file")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise SalesFileError(
            f"sales file {name}: unsupported extension '{path.suffix or '(none)'}'; use .csv or .parquet"
        )
    try:
        if suffix == ".csv":
            return pl.read_csv(path, infer_schema=False)  # every column as text: we coerce and report
        return pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError, ValueError) as err:
        kind = "CSV" if suffix == ".csv" else "parquet"
        raise SalesFileError(f"sales file {name} cannot be read as {kind}: {err}") from None


def _rename(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    """Map accepted column names (any case) onto the canonical ones; error on missing or ambiguous."""
    by_lower: dict[str, list[str]] = {}
    for column in frame.columns:
        by_lower.setdefault(column.strip().lower(), []).append(column)
    mapping: dict[str, str] = {}
    missing = []
    for canonical, aliases in ALIASES.items():
        found = [col for alias in aliases for col in by_lower.get(alias, [])]
        if len(found) > 1:
            raise SalesFileError(
                f"sales file {name}: columns {', '.join(repr(c) for c in found)} all look like the "
                f"'{canonical}' column; keep one"
            )
        if found:
            mapping[found[0]] = canonical
        elif canonical in REQUIRED:
            missing.append(f"'{canonical}' (or {', '.join(repr(a) for a in aliases[1:])})")
    if missing:
        hint = ""
        if len(frame.columns) == 1 and any(sep in frame.columns[0] for sep in ";\t|"):
            hint = " (the file looks separated by something other than commas; save it as comma-separated)"
        raise SalesFileError(
            f"sales file {name}: missing column(s) {'; '.join(missing)}; found columns: "
            + ", ".join(repr(c) for c in frame.columns) + hint
        )
    return frame.select([pl.col(src).alias(dst) for src, dst in mapping.items()])


def _first_bad(mask: pl.Series) -> int | None:
    """Index of the first True in ``mask`` (None if none)."""
    hits = mask.arg_true()
    return int(hits[0]) if hits.len() else None


def _spreadsheet_row(index: int) -> int:
    return index + 2  # header is row 1


def _check_no_nulls(frame: pl.DataFrame, column: str, name: str) -> None:
    series = frame[column]
    empty = series.is_null()
    if series.dtype == pl.String:
        empty = empty | (series.str.strip_chars() == "")
    bad = _first_bad(empty)
    if bad is not None:
        raise SalesFileError(f"sales file {name}: column '{column}', row {_spreadsheet_row(bad)}: empty value")


def _coerce_text(frame: pl.DataFrame, column: str) -> pl.Series:
    series = frame[column]
    return series.cast(pl.String).str.strip_chars() if series.dtype != pl.String else series.str.strip_chars()


def _coerce_date(frame: pl.DataFrame, name: str) -> pl.Series:
    raw = frame["date"]
    if raw.dtype == pl.Date:
        return raw
    if isinstance(raw.dtype, pl.Datetime):
        return raw.dt.date()
    text = raw.cast(pl.String).str.strip_chars()
    parsed = text.str.to_date("%Y-%m-%d", strict=False)
    # Accept a midnight timestamp too (a common export of a date column).
    parsed = parsed.fill_null(text.str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False).dt.date())
    bad = _first_bad(parsed.is_null())
    if bad is not None:
        raise SalesFileError(
            f"sales file {name}: column 'date', row {_spreadsheet_row(bad)}: cannot read {text[bad]!r} as a "
            "date (use YYYY-MM-DD)"
        )
    return parsed


def _coerce_units(frame: pl.DataFrame, name: str) -> pl.Series:
    raw = frame["units"]
    if raw.dtype.is_numeric():
        values = raw.cast(pl.Float64)
    else:
        text = raw.cast(pl.String).str.strip_chars()
        values = text.cast(pl.Float64, strict=False)
        bad = _first_bad(values.is_null() | values.is_nan())
        if bad is not None:
            raise SalesFileError(
                f"sales file {name}: column 'units', row {_spreadsheet_row(bad)}: {text[bad]!r} is not a number"
            )
    bad = _first_bad(~values.is_finite())
    if bad is not None:
        raise SalesFileError(
            f"sales file {name}: column 'units', row {_spreadsheet_row(bad)}: {values[bad]} is not a finite number"
        )
    bad = _first_bad(values < 0)
    if bad is not None:
        raise SalesFileError(
            f"sales file {name}: column 'units', row {_spreadsheet_row(bad)}: negative value {values[bad]:g} "
            "(units sold cannot be negative; net returns out first)"
        )
    return values


def _coerce_promo(frame: pl.DataFrame, name: str) -> pl.Series:
    if "promo" not in frame.columns:
        return pl.Series("promo", [False] * frame.height, dtype=pl.Boolean)
    raw = frame["promo"]
    if raw.dtype == pl.Boolean:
        return raw.fill_null(False)
    text = raw.cast(pl.String).fill_null("").str.strip_chars().str.to_lowercase()
    is_true = text.is_in(sorted(TRUE_WORDS))
    bad = _first_bad(~(is_true | text.is_in(sorted(FALSE_WORDS))))
    if bad is not None:
        raise SalesFileError(
            f"sales file {name}: column 'promo', row {_spreadsheet_row(bad)}: {raw.cast(pl.String)[bad]!r} is not "
            "a promotion flag (use 0/1, true/false or yes/no)"
        )
    return is_true.alias("promo")


def _check_duplicates(frame: pl.DataFrame, name: str) -> None:
    keyed = frame.with_row_index("_row").select("_row", "item_id", "store_id", "date")
    dup = keyed.filter(pl.struct("item_id", "store_id", "date").is_duplicated()).sort("_row")
    if dup.height:
        first = dup.row(0, named=True)
        rows = dup.filter(
            (pl.col("item_id") == first["item_id"]) & (pl.col("store_id") == first["store_id"])
            & (pl.col("date") == first["date"])
        )["_row"].to_list()
        shown = " and ".join(str(_spreadsheet_row(r)) for r in rows[:2])
        raise SalesFileError(
            f"sales file {name}: duplicate rows for item {first['item_id']!r}, store {first['store_id']!r}, "
            f"date {first['date']} (rows {shown}); sum them into one row per item, store and date"
        )


def _period_days(dates: pl.Series, name: str) -> int:
    """The spacing of the period grid in days (smallest gap between distinct dates)."""
    unique = dates.unique().sort()
    if unique.len() < 2:
        raise SalesFileError(f"sales file {name}: needs at least two distinct dates, found {unique.len()}")
    gaps = unique.diff().drop_nulls().dt.total_days()
    step = int(gaps.min())
    off_grid = (gaps % step) != 0
    bad = _first_bad(off_grid)
    if bad is not None:
        raise SalesFileError(
            f"sales file {name}: date {unique[bad + 1]} is not on the {step}-day period grid that starts at "
            f"{unique[0]}; use one row per day (or per week) on a regular calendar"
        )
    return step


def load_sales(path: str | Path, fill_gaps: bool = True) -> pl.DataFrame:
    """Read and validate a sales file; see the module docstring for the format and the gap rule.

    Returns a frame ``item_id`` (str), ``store_id`` (str), ``date`` (date), ``units`` (float64),
    ``promo`` (bool), sorted by item, store and date, with one row per series and period of the
    full calendar (gaps filled with zero units when ``fill_gaps``).
    """
    path = Path(path)
    name = str(path)
    raw = _read_raw(path)
    frame = _rename(raw, name)
    if frame.height == 0:
        raise SalesFileError(f"sales file {name}: has a header but no rows")
    for column in REQUIRED:
        _check_no_nulls(frame, column, name)
    clean = pl.DataFrame(
        {
            "item_id": _coerce_text(frame, "item_id"),
            "store_id": _coerce_text(frame, "store_id"),
            "date": _coerce_date(frame, name),
            "units": _coerce_units(frame, name),
            "promo": _coerce_promo(frame, name),
        }
    )
    _check_duplicates(clean, name)
    step = _period_days(clean["date"], name)
    first, last = clean["date"].min(), clean["date"].max()
    calendar = pl.date_range(first, last, interval=f"{step}d", eager=True).alias("date")
    keys = clean.select("item_id", "store_id").unique().sort("item_id", "store_id")
    full = keys.join(calendar.to_frame(), how="cross")
    if full.height != clean.height:
        joined = full.join(clean, on=["item_id", "store_id", "date"], how="left")
        if not fill_gaps:
            gap = joined.filter(pl.col("units").is_null()).row(0, named=True)
            raise SalesFileError(
                f"sales file {name}: no row for item {gap['item_id']!r}, store {gap['store_id']!r}, date "
                f"{gap['date']} ({full.height - clean.height} missing in all); add the rows or load with "
                "fill_gaps=True to read missing periods as zero sales"
            )
        clean = joined.with_columns(pl.col("units").fill_null(0.0), pl.col("promo").fill_null(False))
    return clean.sort("item_id", "store_id", "date")


def to_demand_tensor(frame: pl.DataFrame) -> DemandTensors:
    """A frame from :func:`load_sales` (or :func:`~.generator.generate_sales`) as tensors.

    The frame must hold one row per series and date of a common calendar (what ``load_sales``
    returns); the series order is item, then store.
    """
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise SalesFileError(f"sales frame: missing column(s) {', '.join(missing)}")
    frame = frame.sort("item_id", "store_id", "date")
    keys = frame.select("item_id", "store_id").unique(maintain_order=True)
    dates = frame["date"].unique().sort()
    n, t = keys.height, dates.len()
    if frame.height != n * t:
        raise SalesFileError(
            f"sales frame: {frame.height} rows for {n} series × {t} dates; every series needs every date "
            "(load it with load_sales, which fills gaps)"
        )
    demand = torch.from_numpy(frame["units"].cast(pl.Float32).to_numpy().reshape(n, t).copy())
    if "promo" in frame.columns:
        promo_np = frame["promo"].cast(pl.Boolean).fill_null(False).to_numpy().reshape(n, t)
    else:
        promo_np = np.zeros((n, t), dtype=bool)
    promo = torch.from_numpy(promo_np.astype(bool).copy())
    return DemandTensors(demand, promo, dates.to_list(), keys)

