"""Interaction logs in the KuaiRand layout: one row per impression (an item shown to a user in one request).

The layout is the public KuaiRand data set's (``log_standard_*.csv``, ``log_random_*.csv``) plus a few
columns our simulator writes. Files are ``.csv``, ``.csv.gz`` or ``.parquet``.

**Required columns**

==============  ======  =============================================================
column          dtype   meaning
==============  ======  =============================================================
``user_id``     Int64   the user, ≥ 0
``video_id``    Int64   the item shown, ≥ 0
``author_id``   Int64   the item's author, ≥ 0
``time_ms``     Int64   when it was shown, epoch milliseconds, ≥ 0
``is_click``    Int8    0/1
``is_follow``   Int8    0/1: the user followed the author from this impression
==============  ======  =============================================================

**Optional columns** (kept when present; they may hold nulls, e.g. a log merged from two sources)

================  =======  ===========================================================================
column            dtype    meaning
================  =======  ===========================================================================
``request_id``    Int64    the served slate, ≥ 0 (absent: every row is its own request)
``position``      Int64    rank in the slate, ≥ 0
``logging_logp``  Float64  log propensity of the whole served slate under the logging policy: finite,
                           ≤ 0, the same on every row of one ``request_id``
``is_gift``       Int8     0/1
``gift_value``    Float64  finite, ≥ 0
``is_rand``       Int8     0/1: KuaiRand's random-exposure flag
``date``          Int64    yyyymmdd (KuaiRand has it; not checked beyond being a whole number)
================  =======  ===========================================================================

Flags are **Int8** 0/1 (not Boolean): sums and means work on them directly and a CSV keeps KuaiRand's
``0``/``1`` spelling. Ids stay exact Int64 end to end: CSV text is parsed straight to Int64 (never through a
float, so ids above 2^53 survive); a float column in a parquet file is accepted for an integer column only
where every value is whole and at most 2^53 in size (where a float still holds the id exactly).

Any other column (KuaiRand has ``is_like``, ``play_time_ms``, ``tab``, …) is kept untouched and in place:
from a CSV as text (String; cast it yourself), from a parquet file with its stored dtype.

**Errors.** Anything wrong with a file raises :class:`LogFormatError`, whose ``file``, ``column`` and
``row`` attributes (and message) name the place: ``interactions.csv: column 'is_click', row 17: expected 0
or 1, got '2'``. Rows are data rows counted from 1 in the file's own order (the first row after a CSV's
header is row 1, on line 2); ``row`` is None for a problem with the whole file or column. Where a file has
several bad values, the one on the earliest row is reported (ties: the column that comes first in the
file). Every value is checked: CSV columns are read as text and parsed here, so a bad value in row 90,000 is
reported with its row number.
"""

from __future__ import annotations

import gzip
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from decisionlab.core import DecisionlabError, atomic_write_with

MAX_LOG_BYTES = 2 * 1024**3  # default size limit of a file read (for .csv.gz: also of its decompressed text)
CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet",)
EXACT_FLOAT_INT = 2**53  # a float holds every whole number up to this size exactly
_GZIP_CHUNK = 1 << 20

Kind = Literal["id", "flag", "int", "logp", "amount"]


@dataclass(frozen=True)
class _Column:
    name: str
    kind: Kind
    required: bool


COLUMNS: tuple[_Column, ...] = (
    _Column("user_id", "id", True),
    _Column("video_id", "id", True),
    _Column("author_id", "id", True),
    _Column("time_ms", "id", True),
    _Column("is_click", "flag", True),
    _Column("is_follow", "flag", True),
    _Column("request_id", "id", False),
    _Column("position", "id", False),
    _Column("logging_logp", "logp", False),
    _Column("is_gift", "flag", False),
    _Column("gift_value", "amount", False),
    _Column("is_rand", "flag", False),
    _Column("date", "int", False),
)
_SPEC = {column.name: column for column in COLUMNS}
REQUIRED_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.required)
OPTIONAL_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if not c.required)
DTYPES: dict[str, pl.DataType] = {
    c.name: pl.Int8() if c.kind == "flag" else pl.Float64() if c.kind in ("logp", "amount") else pl.Int64()
    for c in COLUMNS
}
_EXPECTED: dict[Kind, str] = {
    "id": "a whole number ≥ 0",
    "flag": "0 or 1",
    "int": "a whole number",
    "logp": "a finite log-probability ≤ 0",
    "amount": "a finite number ≥ 0",
}

BUCKETS: tuple[str, ...] = ("0", "1", "2-3", "4+")
SYNTHETIC_CLICK_RATE: tuple[float, ...] = (0.05, 0.15, 0.25, 0.35, 0.45)  # by min(prior author clicks, 4)
SYNTHETIC_FOLLOW_RATE = 0.2  # per click, while the user does not follow the author yet
SYNTHETIC_GIFT_RATE = 0.1  # per click
SYNTHETIC_START_MS = 1_649_376_000_000  # 2022-04-08 00:00 UTC, the first day of KuaiRand


class LogFormatError(DecisionlabError):
    """An interaction log that cannot be used as it is.

    Attributes:
        file: the file read or written (as given).
        column: the column at fault (for missing columns, the first missing one); None for the whole file.
        row: the 1-based data row at fault; None when the problem is not about one row.
        problem: what is wrong, without the place.
    """

    def __init__(self, file: str, column: str | None, row: int | None, problem: str) -> None:
        self.file, self.column, self.row, self.problem = file, column, row, problem
        where = [file]
        if column is not None:
            where.append(f"column {column!r}")
        if row is not None:
            where.append(f"row {row}")
        super().__init__(f"{where[0]}: {', '.join(where[1:]) + ': ' if len(where) > 1 else ''}{problem}")

    def __reduce__(self) -> tuple[type, tuple[str, str | None, int | None, str]]:
        # the default pickles only the message, which this __init__ cannot take back
        return type(self), (self.file, self.column, self.row, self.problem)


# ----- reading -------------------------------------------------------------------------------------


def _format_of(path: Path) -> Literal["csv", "csv.gz", "parquet"]:
    lower = path.name.lower()
    if lower.endswith(".csv.gz"):
        return "csv.gz"
    if lower.endswith(".csv"):
        return "csv"
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    raise LogFormatError(str(path), None, None, "unknown file type; logs are .csv, .csv.gz or .parquet files")


def _gunzip(path: Path, max_bytes: int) -> bytes:
    """The decompressed text, refusing more than ``max_bytes`` of it (a small .gz can hold a huge file)."""
    out = bytearray()
    with gzip.open(path, "rb") as handle:
        while chunk := handle.read(_GZIP_CHUNK):
            out += chunk
            if len(out) > max_bytes:
                raise LogFormatError(str(path), None, None,
                                     f"decompresses to more than the size limit of {max_bytes:,} bytes")
    return bytes(out)


def _read_raw(path: Path, max_bytes: int) -> pl.DataFrame:
    """The file as stored: CSV columns all as text, parquet columns with their stored dtypes."""
    name = str(path)
    fmt = _format_of(path)
    if not path.exists():
        raise LogFormatError(name, None, None, "file not found")
    if path.is_dir():
        raise LogFormatError(name, None, None, "is a folder, not a file")
    size = path.stat().st_size
    if size > max_bytes:
        raise LogFormatError(name, None, None, f"the file has {size:,} bytes, over the size limit of "
                                               f"{max_bytes:,} (pass max_bytes= to read a larger one)")
    if size == 0:
        raise LogFormatError(name, None, None, "the file is empty")
    try:
        if fmt == "parquet":
            return pl.read_parquet(path)
        source: Path | io.BytesIO = io.BytesIO(_gunzip(path, max_bytes)) if fmt == "csv.gz" else path
        # every column as text: we parse and report each bad value with its row ourselves
        return pl.read_csv(source, infer_schema=False)
    except LogFormatError:
        raise
    except pl.exceptions.NoDataError:
        raise LogFormatError(name, None, None, "the file is empty") from None
    except (pl.exceptions.PolarsError, OSError, EOFError, ValueError, UnicodeDecodeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        kind = "parquet" if fmt == "parquet" else "CSV"
        raise LogFormatError(name, None, None, f"cannot be read as {kind}: {first}") from None


def _parsed(name: str, kind: Kind, dtype: pl.DataType, file: str) -> pl.Expr:
    """``name`` as its target dtype; null where a value does not parse (the raw value is checked separately)."""
    raw = pl.col(name)
    floating = kind in ("logp", "amount")
    if dtype == pl.String:
        text = raw.str.strip_chars()
        return text.cast(pl.Float64, strict=False) if floating else text.str.to_integer(strict=False)
    if dtype == pl.Null:
        return raw.cast(pl.Float64 if floating else pl.Int64)
    if dtype.is_integer() or (dtype == pl.Boolean and kind == "flag"):
        return raw.cast(pl.Float64 if floating else pl.Int64, strict=False)  # strict=False: UInt64 overflow → null
    if dtype.is_float():
        if floating:
            return raw.cast(pl.Float64)
        exact = raw.is_finite() & (raw == raw.floor()) & (raw.abs() <= EXACT_FLOAT_INT)
        return pl.when(exact).then(raw.cast(pl.Int64, strict=False)).otherwise(None)
    raise LogFormatError(file, name, None, f"stored as {dtype}, expected {_EXPECTED[kind]} in every row")


def _out_of_range(kind: Kind, value: pl.Expr) -> pl.Expr:
    """True where a parsed (non-null) value breaks its column's rule."""
    if kind == "id":
        return value < 0
    if kind == "flag":
        return ~value.is_in([0, 1])
    if kind == "logp":
        return ~value.is_finite() | (value > 0)
    if kind == "amount":
        return ~value.is_finite() | (value < 0)
    return pl.lit(False)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _validated(frame: pl.DataFrame, file: str) -> pl.DataFrame:
    """``frame`` with the known columns checked and cast to :data:`DTYPES` (same rows, same column order).

    Raises :class:`LogFormatError` naming the first bad row (data rows from 1 in ``frame``'s order).
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        found = ", ".join(repr(c) for c in frame.columns) or "none"
        hint = ""
        if len(frame.columns) == 1 and any(sep in frame.columns[0] for sep in ";\t|"):
            hint = " (the file looks separated by something other than commas)"
        raise LogFormatError(file, missing[0], None,
                             f"missing required column(s) {', '.join(missing)}; the file has: {found}{hint}")
    known = [c for c in frame.columns if c in _SPEC]
    parsed = {c: _parsed(c, _SPEC[c].kind, frame.schema[c], file) for c in known}
    # per column, the first bad row's problem: 1 missing value, 2 does not parse, 3 out of range
    codes = {}
    for c in known:
        spec, value = _SPEC[c], parsed[c]
        codes[c] = (
            pl.when(pl.col(c).is_null()).then(pl.lit(1 if spec.required else 0))
            .when(value.is_null()).then(pl.lit(2))
            .when(_out_of_range(spec.kind, value)).then(pl.lit(3))
            .otherwise(pl.lit(0))
        )
    first_bad = frame.select([(codes[c] > 0).arg_true().first().alias(c) for c in known]).row(0, named=True)
    bad = [(index, position, c) for position, (c, index) in enumerate(first_bad.items()) if index is not None]
    if bad:
        index, _, column = min(bad)
        spec = _SPEC[column]
        code, raw, value = frame.slice(index, 1).select(
            codes[column].alias("code"), pl.col(column).alias("raw"), parsed[column].alias("value")).row(0)
        if code == 1:
            problem = f"missing value (a required column), expected {_EXPECTED[spec.kind]}"
        elif code == 2:
            problem = f"expected {_EXPECTED[spec.kind]}, got {_show(raw)}"
            if spec.kind in ("id", "int") and isinstance(raw, float):
                problem += " (a float column must hold whole numbers up to 2^53 to be read exactly)"
        else:
            problem = f"expected {_EXPECTED[spec.kind]}, got {value}"
        raise LogFormatError(file, column, index + 1, problem)
    typed = frame.with_columns(parsed[c].cast(DTYPES[c]).alias(c) for c in known)
    if "request_id" in typed.columns and "logging_logp" in typed.columns:
        _check_request_logp(typed, file)
    return typed


def _check_request_logp(typed: pl.DataFrame, file: str) -> None:
    """Every row of one request carries the same ``logging_logp`` (it is the whole slate's)."""
    request = pl.col("request_id")
    checked = typed.select("request_id", "logging_logp").with_row_index("index").with_columns(
        pl.col("logging_logp").first().over("request_id").alias("first_logp"),
        pl.col("index").first().over("request_id").alias("first_index"),
    ).select("index", "request_id", "logging_logp", "first_logp", "first_index")
    differs = request.is_not_null() & pl.col("logging_logp").ne_missing(pl.col("first_logp"))
    hit = checked.filter(differs).head(1)
    if hit.height:
        index, request_id, logp, first_logp, first_index = hit.row(0)
        raise LogFormatError(file, "logging_logp", index + 1,
                             f"got {logp!r} but row {first_index + 1} of the same request_id {request_id} has "
                             f"{first_logp!r} (the slate's log propensity is the same on all its rows)")


def _sort_keys(frame: pl.DataFrame) -> list[str]:
    return ["time_ms", *(c for c in ("request_id", "position") if c in frame.columns)]


def read_log(path: str | Path, *, max_bytes: int = MAX_LOG_BYTES) -> pl.DataFrame:
    """Read and check one interaction log.

    Args:
        path: a ``.csv``, ``.csv.gz`` or ``.parquet`` file in the layout of the module docstring.
        max_bytes: refuse a file larger than this (for ``.csv.gz``, also one whose text is larger).

    Returns:
        One row per impression, the file's columns in the file's order, the known ones cast to
        :data:`DTYPES` (ids and times Int64, flags Int8, ``logging_logp``/``gift_value`` Float64), sorted
        stably by ``time_ms``, then ``request_id`` and ``position`` where present (nulls last).

    Raises:
        LogFormatError: the file is missing, too large, of an unknown type or unreadable, lacks a required
            column, or holds a bad value (the message names the file, the column and the first bad row).
    """
    path = Path(path)
    typed = _validated(_read_raw(path, max_bytes), str(path))
    return typed.sort(_sort_keys(typed), maintain_order=True, nulls_last=True)


def write_log(frame: pl.DataFrame, path: str | Path) -> None:
    """Check ``frame`` as :func:`read_log` checks a file and write it atomically, in its row order.

    The format follows the extension (``.csv``, ``.csv.gz``, ``.parquet``); known columns are written with
    :data:`DTYPES`. A bad value raises :class:`LogFormatError` naming ``path``, the column and the frame's
    1-based row, and leaves ``path`` as it was.
    """
    path = Path(path)
    fmt = _format_of(path)
    typed = _validated(frame, str(path))

    def write(tmp: Path) -> None:
        if fmt == "parquet":
            typed.write_parquet(tmp)
        else:  # the temporary file's name ends in .tmp, hence check_extension=False
            compression = "gzip" if fmt == "csv.gz" else "uncompressed"
            typed.write_csv(tmp, compression=compression, check_extension=False)

    atomic_write_with(path, write)


# ----- splitting and moments -----------------------------------------------------------------------


def _require(frame: pl.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DecisionlabError(f"{what} needs the column(s) {', '.join(missing)}; the frame has: "
                               f"{', '.join(frame.columns)}")


def _request_time() -> pl.Expr:
    """A request's time, the earliest of its rows (rows without a request_id are their own request)."""
    return pl.when(pl.col("request_id").is_null()).then(pl.col("time_ms")).otherwise(
        pl.col("time_ms").min().over("request_id"))


def _event_time(frame: pl.DataFrame) -> pl.Expr:
    return _request_time() if "request_id" in frame.columns else pl.col("time_ms")


def split_by_time(frame: pl.DataFrame, holdout_fraction: float = 0.2) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Hold out the last ``holdout_fraction`` of the log's time span.

    With ``t0``/``t1`` the first and last ``time_ms``, a request goes to ``held_out`` when its time (the
    earliest of its rows; a row without ``request_id`` is its own request) is after
    ``t0 + (1 - holdout_fraction) · (t1 - t0)``, else to ``train``: a request is never split.

    Returns:
        ``(train, held_out)``, the same columns as ``frame``, each sorted like :func:`read_log`'s result.
    """
    if not 0.0 < holdout_fraction < 1.0:
        raise DecisionlabError(f"holdout_fraction must be between 0 and 1 (exclusive), got {holdout_fraction}")
    _require(frame, ("time_ms",), "split_by_time")
    ordered = frame.sort(_sort_keys(frame), maintain_order=True, nulls_last=True)
    if frame.height == 0:
        return ordered, ordered.clear()
    t0, t1 = int(frame["time_ms"].min()), int(frame["time_ms"].max())  # type: ignore[arg-type]
    cutoff = t0 + math.floor((t1 - t0) * (1.0 - holdout_fraction))  # Python ints: exact at any epoch
    late = _event_time(frame) > cutoff
    return ordered.filter(~late), ordered.filter(late)


def _starts(keys: list[str]) -> pl.Expr:
    """True on a row whose ``keys`` differ from the previous row's (and on the first row)."""
    changed = [pl.col(key).ne_missing(pl.col(key).shift(1)) for key in keys]
    return pl.any_horizontal(changed).fill_null(True) | (pl.int_range(pl.len()) == 0)


def add_history_features(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` (same rows, same order) with the user's history with the row's author added.

    "Earlier" means at a strictly earlier event time: the request's time (its earliest row) where
    ``request_id`` is present, else the row's ``time_ms``; clicks in the same request, or at the same
    time, do not count.

    Adds (replacing columns of the same names):
        ``prior_author_clicks`` (Int64): the user's earlier clicks on any item of this author;
        ``prior_author_follow`` (Int8, 0/1): 1 when the user followed this author earlier.
    """
    _require(frame, ("user_id", "author_id", "time_ms", "is_click", "is_follow"), "add_history_features")
    pair = ["user_id", "author_id"]
    run = [*pair, "_event"]  # one user, one author, one event time
    work = frame.select(
        pl.int_range(pl.len()).alias("_index"), *pair,
        _event_time(frame).alias("_event"),
        pl.col("is_click").cast(pl.Int64).alias("_click"),
        pl.col("is_follow").cast(pl.Int64).alias("_follow"),
    ).sort(run)
    # On rows sorted by (pair, time), a running total taken just before a run's first row, less the one taken
    # just before its pair's first row, counts the pair's rows strictly earlier in time. Forward fills over
    # the sorted rows: linear, with no hashing of groups (a window per pair is ~3x slower at 1M rows).
    new_pair, new_run = _starts(pair), _starts(run)

    def earlier(flag: str) -> pl.Expr:
        before = pl.col(flag).cum_sum() - pl.col(flag)
        return pl.when(new_run).then(before).forward_fill() - pl.when(new_pair).then(before).forward_fill()

    history = work.select(
        "_index",
        earlier("_click").alias("prior_author_clicks"),
        (earlier("_follow") > 0).cast(pl.Int8).alias("prior_author_follow"),
    ).sort("_index")
    return frame.with_columns(history["prior_author_clicks"], history["prior_author_follow"])


def bucket_of(prior_clicks: pl.Expr) -> pl.Expr:
    """The funnel bucket ("0", "1", "2-3", "4+") of a count of earlier clicks."""
    return (pl.when(prior_clicks <= 0).then(pl.lit(BUCKETS[0])).when(prior_clicks == 1).then(pl.lit(BUCKETS[1]))
            .when(prior_clicks <= 3).then(pl.lit(BUCKETS[2])).otherwise(pl.lit(BUCKETS[3])))


def funnel_moments(frame: pl.DataFrame) -> pl.DataFrame:
    """The statistics a calibration matches, by the user's earlier clicks on the row's author.

    Returns:
        Five rows, ``bucket`` (String) "0", "1", "2-3", "4+" of ``prior_author_clicks`` (see
        :func:`add_history_features`) and "all", in that order (a bucket without rows has zeros and null
        ratios), with ``impressions``, ``clicks``, ``follows`` (Int64) and ``ctr`` = clicks / impressions,
        ``follow_per_click`` = follows / clicks (Float64; null where the denominator is 0).
    """
    history = add_history_features(frame).select(
        bucket_of(pl.col("prior_author_clicks")).alias("bucket"),
        pl.col("is_click").cast(pl.Int64), pl.col("is_follow").cast(pl.Int64))
    sums = [pl.len().cast(pl.Int64).alias("impressions"), pl.col("is_click").sum().alias("clicks"),
            pl.col("is_follow").sum().alias("follows")]
    by_bucket = history.group_by("bucket").agg(sums)
    every = pl.DataFrame({"bucket": [*BUCKETS, "all"]})
    table = pl.concat([by_bucket, history.select(pl.lit("all").alias("bucket"), *sums)], how="vertical_relaxed")
    table = every.join(table, on="bucket", how="left", maintain_order="left").with_columns(
        pl.col("impressions", "clicks", "follows").fill_null(0).cast(pl.Int64))
    ratio = {"ctr": ("clicks", "impressions"), "follow_per_click": ("follows", "clicks")}
    return table.with_columns(
        pl.when(pl.col(den) > 0).then(pl.col(num) / pl.col(den)).otherwise(None).cast(pl.Float64).alias(name)
        for name, (num, den) in ratio.items()
    ).select("bucket", "impressions", "clicks", "ctr", "follows", "follow_per_click")


# ----- a synthetic log -----------------------------------------------------------------------------


def synthetic_log(n_users: int = 50, n_items: int = 200, n_authors: int = 20, requests_per_user: int = 20,
                  slate_size: int = 5, seed: int = 0) -> pl.DataFrame:
    """A small valid log drawn with numpy (for tests and docs; not the simulator).

    Each user makes ``requests_per_user`` requests, 1 s to 1 h apart; each is shown ``slate_size`` distinct
    items drawn uniformly (so ``is_rand`` is 1 and ``logging_logp`` is the uniform ordered slate's
    ``-log(n_items · (n_items - 1) ⋯)``). Items have random authors. An impression is clicked with
    probability ``SYNTHETIC_CLICK_RATE[min(k, 4)]``, ``k`` the user's clicks on that author in earlier
    requests (so the rate rises with ``prior_author_clicks``); a click becomes a follow with probability
    :data:`SYNTHETIC_FOLLOW_RATE` while the user does not follow the author yet, and a gift with
    :data:`SYNTHETIC_GIFT_RATE` (value exponential, mean 5).

    Returns:
        ``n_users · requests_per_user · slate_size`` rows with every required and optional column, sorted
        like :func:`read_log`'s result.
    """
    if min(n_users, n_items, n_authors, requests_per_user, slate_size) < 1:
        raise DecisionlabError("synthetic_log needs at least one user, item, author, request and slot")
    if slate_size > n_items:
        raise DecisionlabError(f"a slate of {slate_size} distinct items needs at least as many items, got {n_items}")
    rng = np.random.default_rng(seed)
    author_of = rng.integers(n_authors, size=n_items)
    clicks_so_far = np.zeros((n_users, n_authors), dtype=np.int64)
    follows = np.zeros((n_users, n_authors), dtype=bool)
    times = SYNTHETIC_START_MS + rng.integers(0, 3_600_000, size=n_users)
    rates = np.asarray(SYNTHETIC_CLICK_RATE)
    logp = -float(np.sum(np.log(n_items - np.arange(slate_size))))
    users = np.arange(n_users)[:, None].repeat(slate_size, axis=1)
    parts: list[dict[str, np.ndarray]] = []
    for r in range(requests_per_user):  # one loop step per round of requests; users and slots are vectorised
        # a uniform ordered slate: the items with the slate_size smallest random keys, in key order
        keys = rng.random((n_users, n_items))
        top = np.argpartition(keys, slate_size - 1, axis=1)[:, :slate_size]
        items = np.take_along_axis(top, np.argsort(np.take_along_axis(keys, top, axis=1), axis=1), axis=1)
        authors = author_of[items]
        prior = clicks_so_far[users, authors]
        click = rng.random(items.shape) < rates[np.minimum(prior, len(rates) - 1)]
        follow = click & ~follows[users, authors] & (rng.random(items.shape) < SYNTHETIC_FOLLOW_RATE)
        gift = click & (rng.random(items.shape) < SYNTHETIC_GIFT_RATE)
        # later requests see this one's clicks and follows (np.add.at: a slate may repeat an author)
        np.add.at(clicks_so_far, (users[click], authors[click]), 1)
        follows[users[follow], authors[follow]] = True
        parts.append({
            "user_id": users.ravel(), "video_id": items.ravel(), "author_id": authors.ravel(),
            "time_ms": np.repeat(times, slate_size),
            "is_click": click.ravel(), "is_follow": follow.ravel(),
            "request_id": np.repeat(np.arange(n_users) * requests_per_user + r, slate_size),
            "position": np.tile(np.arange(slate_size), n_users),
            "is_gift": gift.ravel(), "gift_value": np.where(gift, rng.exponential(5.0, items.shape), 0.0).ravel(),
        })
        times = times + rng.integers(1_000, 3_600_000, size=n_users)
    columns = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    frame = pl.DataFrame(columns).with_columns(
        pl.col("user_id", "video_id", "author_id", "time_ms", "request_id", "position").cast(pl.Int64),
        pl.col("is_click", "is_follow", "is_gift").cast(pl.Int8),
        pl.lit(logp, pl.Float64).alias("logging_logp"),
        pl.lit(1, pl.Int8).alias("is_rand"),
    ).with_columns(
        pl.from_epoch("time_ms", time_unit="ms").dt.strftime("%Y%m%d").cast(pl.Int64).alias("date"),
    ).select("user_id", "video_id", "author_id", "time_ms", "is_click", "is_follow", "request_id", "position",
             "logging_logp", "is_gift", "gift_value", "is_rand", "date")
    return frame.sort(_sort_keys(frame), maintain_order=True)
