"""Order-book data for the replay setting: LOBSTER and tardis-style files on one regular clock.

Two input formats become one representation, :class:`ReplayData`:

**LOBSTER** (no header; rows of the two files are aligned: orderbook row j is the book *after*
message j):

- message file, 6 columns: ``time`` (seconds after midnight, decimals to the nanosecond), ``type``
  (1 submission, 2 partial cancellation, 3 deletion, 4 execution of a visible order, 5 execution of
  a hidden order, 6 cross trade, 7 trading halt), ``order_id``, ``size`` (shares), ``price``
  (dollars × 10⁴), ``direction`` (+1 buy limit order, −1 sell limit order: for executions the side
  of the *resting* order, so a sell aggressor executes a +1 order);
- orderbook file, 4·L columns ``AskP1, AskS1, BidP1, BidS1, AskP2, …`` (prices × 10⁴); an empty
  level is LOBSTER's dummy (price −9999999999 on the bid side, 9999999999 on the ask side, size 0).

Trades are the executions (types 4 and 5); the aggressor is the opposite side of ``direction``.

**tardis** (CSV with a header, optionally gzip-compressed, one symbol per file; timestamps in µs
since the Unix epoch):

- ``incremental_book_L2``: ``exchange, symbol, timestamp, local_timestamp, is_snapshot, side``
  (``bid``/``ask``), ``price, amount``; each row sets the level (side, price) to ``amount``, 0
  removes it; when ``is_snapshot`` turns from false to true the book is cleared first (a new
  snapshot after a reconnection);
- ``trades``: ``exchange, symbol, timestamp, local_timestamp, id, side`` (the aggressor: ``buy``,
  ``sell``, or ``unknown``: then classified by its price against the mid at the start of its step,
  at or above the mid = buy), ``price, amount``.

The clock is the exchange ``timestamp``.

**The representation.** A regular clock of ``step_seconds``: snapshot times ``t_k = t_0 + k·Δ``,
``t_0`` the first multiple of Δ (since midnight for LOBSTER, since the epoch for tardis) at which
the book has both sides, up to the last book event. Snapshot k is the book after every event
stamped at or before ``t_k`` (its L best levels per side); the trades of step k are those stamped in
``(t_k, t_{k+1}]``, summed per aggressor side and price. N snapshots make N − 1 complete steps (the
last snapshot has no trades).

**Errors.** Every problem raises :class:`ReplayDataError` (a :class:`~decisionlab.core.errors.ScenarioError`,
HTTP 422, printed by the CLI without a traceback) naming the file, the column and the first offending
row. Rows are counted as in a spreadsheet: in a file with a header the header is row 1 and the first
data row is row 2; in a LOBSTER file (no header) the first line is row 1. Checked: missing files or
columns, empty files, non-numeric values, unknown sides/types/directions, negative sizes, negative or
zero prices, decreasing timestamps, several symbols in one file, crossed books (best bid ≥ best ask)
and, at a step, a book with an empty side.

**Caching.** :func:`load_replay` keeps the last few results in memory, keyed on the files' resolved
paths, modification times and sizes and on the reading parameters: a file saved again is read again.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from decisionlab.core import ScenarioError

DataFormat = Literal["tardis", "lobster"]
LOBSTER_PRICE_SCALE = 10_000  # LOBSTER prices are dollars × 10⁴
LOBSTER_DUMMY_PRICE = 9_999_999_999  # |price| of an empty level in a LOBSTER orderbook file
LOBSTER_MESSAGE_COLUMNS = ("time", "type", "order_id", "size", "price", "direction")
LOBSTER_EXECUTIONS = (4, 5)  # visible and hidden executions; 6 (auction cross) is not continuous trading
TARDIS_BOOK_COLUMNS = ("exchange", "symbol", "timestamp", "local_timestamp", "is_snapshot", "side", "price", "amount")
TARDIS_TRADE_COLUMNS = ("exchange", "symbol", "timestamp", "local_timestamp", "id", "side", "price", "amount")
DEFAULT_LEVELS = 15
NS_PER_SECOND = 1_000_000_000
NS_PER_MICROSECOND = 1_000
TICK_DIGITS = 8  # prices are compared on a grid of 10⁻⁸ price units when the tick is inferred
CSV_SUFFIXES = (".csv", ".csv.gz")


class ReplayDataError(ScenarioError):
    """An order-book file that cannot be used as it is (the message names the file, column and row)."""


@dataclass(frozen=True, eq=False)
class ReplayData:
    """Order-book data on a regular clock (see the module docstring); arrays are read-only.

    Attributes:
        source: the files read (for messages).
        step_seconds: Δ, seconds between snapshots.
        start_ns: ``t_0`` in nanoseconds (since midnight for LOBSTER, since the Unix epoch for tardis).
        bid_price, ask_price: ``[N, L]`` float64 price units of the L best levels (best first), NaN
            where a side has fewer levels.
        bid_size, ask_size: ``[N, L]`` float64 units displayed at those levels (0 where empty).
        trade_step: ``[M]`` int64, the step k whose interval ``(t_k, t_{k+1}]`` the volume traded in.
        trade_side: ``[M]`` int8 aggressor side: +1 buyer-initiated (lifts asks), −1 seller-initiated
            (hits bids).
        trade_price: ``[M]`` float64 price units; trade_volume: ``[M]`` float64 units, summed per
            (step, side, price). Sorted by step, side, price.
    """

    source: str
    step_seconds: float
    start_ns: int
    bid_price: np.ndarray
    bid_size: np.ndarray
    ask_price: np.ndarray
    ask_size: np.ndarray
    trade_step: np.ndarray
    trade_side: np.ndarray
    trade_price: np.ndarray
    trade_volume: np.ndarray

    def __post_init__(self) -> None:
        for name in ("bid_price", "bid_size", "ask_price", "ask_size", "trade_step", "trade_side", "trade_price",
                     "trade_volume"):
            getattr(self, name).flags.writeable = False  # shared through the cache: nobody may edit it

    @property
    def snapshots(self) -> int:
        """N, the number of snapshots (N − 1 complete steps)."""
        return int(self.bid_price.shape[0])

    @property
    def levels(self) -> int:
        """L, the levels kept per side."""
        return int(self.bid_price.shape[1])

    @property
    def times(self) -> np.ndarray:
        """``[N]`` float64 seconds of each snapshot (same origin as ``start_ns``)."""
        return (self.start_ns + np.arange(self.snapshots, dtype=np.int64) * round(self.step_seconds * NS_PER_SECOND)
                ) / NS_PER_SECOND

    @property
    def mid(self) -> np.ndarray:
        """``[N]`` mid price (best bid + best ask)/2, price units."""
        return (self.bid_price[:, 0] + self.ask_price[:, 0]) / 2

    @property
    def spread(self) -> np.ndarray:
        """``[N]`` best ask − best bid, price units."""
        return self.ask_price[:, 0] - self.bid_price[:, 0]

    @property
    def imbalance(self) -> np.ndarray:
        """``[N]`` (bid size − ask size)/(bid size + ask size) at the best level, in [−1, 1] (0 if both empty)."""
        bid, ask = self.bid_size[:, 0], self.ask_size[:, 0]
        total = bid + ask
        return np.where(total > 0, (bid - ask) / np.where(total > 0, total, 1.0), 0.0)

    def trades_frame(self) -> pl.DataFrame:
        """The trades as a frame ``step, side, price, volume``."""
        return pl.DataFrame({"step": self.trade_step, "side": self.trade_side, "price": self.trade_price,
                             "volume": self.trade_volume})

    def volume(self, step: int, side: int, price: float) -> float:
        """Volume traded in step ``step`` by aggressors of ``side`` (+1/−1) at ``price`` (0 if none)."""
        hit = (self.trade_step == step) & (self.trade_side == side) & np.isclose(self.trade_price, price)
        return float(self.trade_volume[hit].sum())


# ----- small helpers -------------------------------------------------------------------------------


def _fail(name: str, message: str) -> ReplayDataError:
    return ReplayDataError(f"{name}: {message}")


def _first(mask: np.ndarray) -> int | None:
    """Index of the first True in a boolean array (None if none)."""
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def _read_text_csv(path: Path, what: str, has_header: bool) -> pl.DataFrame:
    """Every column as text (we coerce and report ourselves); gzip is read transparently."""
    name = str(path)
    if not path.exists():
        raise _fail(name, f"{what} not found")
    if path.is_dir():
        raise _fail(name, f"{what} is a folder, not a file")
    if path.stat().st_size == 0:
        raise _fail(name, f"{what} is empty")
    try:
        frame = pl.read_csv(path, has_header=has_header, infer_schema=False)
    except pl.exceptions.NoDataError:
        raise _fail(name, f"{what} is empty") from None
    except (pl.exceptions.PolarsError, OSError, ValueError) as err:
        raise _fail(name, f"{what} cannot be read as CSV: {str(err).splitlines()[0]}") from None
    if frame.height == 0:
        raise _fail(name, f"{what} has a header but no rows" if has_header else f"{what} is empty")
    return frame


def _numbers(frame: pl.DataFrame, column: str, shown: str, name: str, first_row: int) -> np.ndarray:
    """Column ``column`` as float64; a non-numeric or missing value names column ``shown`` and its row."""
    text = frame[column].str.strip_chars()
    values = text.cast(pl.Float64, strict=False)
    bad = _first((values.is_null() | values.is_nan()).to_numpy())
    if bad is not None:
        raise _fail(name, f"column '{shown}', row {bad + first_row}: {text[bad]!r} is not a number")
    out = values.to_numpy()
    bad = _first(~np.isfinite(out))
    if bad is not None:
        raise _fail(name, f"column '{shown}', row {bad + first_row}: {text[bad]!r} is not a finite number")
    return out


def _integers(frame: pl.DataFrame, column: str, shown: str, name: str, first_row: int) -> np.ndarray:
    """Column ``column`` as int64 (whole numbers only)."""
    text = frame[column].str.strip_chars()
    values = text.cast(pl.Int64, strict=False)
    bad = _first(values.is_null().to_numpy())
    if bad is not None:
        raise _fail(name, f"column '{shown}', row {bad + first_row}: {text[bad]!r} is not a whole number")
    return values.to_numpy()


def _check_not_decreasing(times: np.ndarray, shown: str, name: str, first_row: int, hint: str = "") -> None:
    bad = _first(np.diff(times) < 0)
    if bad is not None:
        raise _fail(name, f"column '{shown}', row {bad + 1 + first_row}: the time goes backwards "
                    f"({times[bad + 1]} after {times[bad]}); rows must be in time order{hint}")


def _check_positive_prices(prices: np.ndarray, name: str, first_row: int) -> None:
    bad = _first(prices <= 0)
    if bad is not None:
        raise _fail(name, f"column 'price', row {bad + first_row}: price {prices[bad]:g} is not positive")


def _check_non_negative(values: np.ndarray, shown: str, name: str, first_row: int, what: str = "size") -> None:
    bad = _first(values < 0)
    if bad is not None:
        raise _fail(name, f"column '{shown}', row {bad + first_row}: negative {what} {values[bad]:g}")


def _grid_start(first_ns: int, step_ns: int) -> int:
    """The first multiple of the step at or after ``first_ns``."""
    return -(-first_ns // step_ns) * step_ns


def _step_ns(step_seconds: float) -> int:
    step_ns = round(step_seconds * NS_PER_SECOND)
    if step_ns <= 0:
        raise ScenarioError(f"step_seconds: must be positive (got {step_seconds})")
    return step_ns


def _aggregate_trades(step: np.ndarray, side: np.ndarray, price: np.ndarray, volume: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sum volumes per (step, side, price), sorted by step, side, price."""
    frame = (pl.DataFrame({"step": step.astype(np.int64), "side": side.astype(np.int8),
                           "price": price.astype(np.float64), "volume": volume.astype(np.float64)})
             .group_by("step", "side", "price").agg(pl.col("volume").sum())
             .filter(pl.col("volume") > 0)
             .sort("step", "side", "price"))
    return (frame["step"].to_numpy().astype(np.int64), frame["side"].to_numpy().astype(np.int8),
            frame["price"].to_numpy().astype(np.float64), frame["volume"].to_numpy().astype(np.float64))


def _trade_steps(times_ns: np.ndarray, start_ns: int, step_ns: int, snapshots: int) -> tuple[np.ndarray, np.ndarray]:
    """``(step, keep)`` of trades stamped ``times_ns``: step k for a time in (t_k, t_{k+1}], kept if
    0 ≤ k ≤ N − 2 (complete steps only)."""
    step = -(-(times_ns - start_ns) // step_ns) - 1  # ceil((t − t_0)/Δ) − 1, exact in integers
    keep = (step >= 0) & (step <= snapshots - 2)
    return step, keep


# ----- LOBSTER -------------------------------------------------------------------------------------


def read_lobster(message_path: str | Path, orderbook_path: str | Path, step_seconds: float = 1.0,
                 levels: int | None = None) -> ReplayData:
    """Read a LOBSTER message/orderbook pair (module docstring) into :class:`ReplayData`.

    ``levels`` keeps the first L levels of the orderbook file (None: all of them; more than the file
    has: all of them)."""
    message_path, orderbook_path = Path(message_path), Path(orderbook_path)
    mname, oname = str(message_path), str(orderbook_path)
    step_ns = _step_ns(step_seconds)
    messages = _read_text_csv(message_path, "LOBSTER message file", has_header=False)
    if messages.width != len(LOBSTER_MESSAGE_COLUMNS):
        raise _fail(mname, f"a LOBSTER message file has {len(LOBSTER_MESSAGE_COLUMNS)} columns "
                    f"({', '.join(LOBSTER_MESSAGE_COLUMNS)}), this one has {messages.width}")
    messages.columns = list(LOBSTER_MESSAGE_COLUMNS)
    book = _read_text_csv(orderbook_path, "LOBSTER orderbook file", has_header=False)
    if book.width % 4 or book.width == 0:
        raise _fail(oname, f"a LOBSTER orderbook file has 4 columns per level (AskP1, AskS1, BidP1, BidS1, …), "
                    f"this one has {book.width}")
    file_levels = book.width // 4
    names = [f"{kind}{level}" for level in range(1, file_levels + 1) for kind in ("AskP", "AskS", "BidP", "BidS")]
    book.columns = names
    if messages.height != book.height:
        raise _fail(oname, f"has {book.height} rows but the message file {mname} has {messages.height}; "
                    "the two files of a LOBSTER pair are row-aligned")

    time_s = _numbers(messages, "time", "time", mname, 1)
    bad = _first(time_s < 0)
    if bad is not None:
        raise _fail(mname, f"column 'time', row {bad + 1}: negative time {time_s[bad]:g}")
    times_ns = np.round(time_s * NS_PER_SECOND).astype(np.int64)
    _check_not_decreasing(time_s, "time", mname, 1)
    kind = _integers(messages, "type", "type", mname, 1)
    bad = _first((kind < 1) | (kind > 7))
    if bad is not None:
        raise _fail(mname, f"column 'type', row {bad + 1}: event type {kind[bad]} is not one of 1–7")
    size = _numbers(messages, "size", "size", mname, 1)
    _check_non_negative(size, "size", mname, 1)
    price = _numbers(messages, "price", "price", mname, 1)
    direction = _integers(messages, "direction", "direction", mname, 1)
    bad = _first((direction != 1) & (direction != -1))
    if bad is not None:
        raise _fail(mname, f"column 'direction', row {bad + 1}: {direction[bad]} is not 1 (buy) or -1 (sell)")

    keep = file_levels if levels is None else min(levels, file_levels)
    sides: dict[str, np.ndarray] = {}
    for prefix in ("AskP", "AskS", "BidP", "BidS"):
        columns = [_numbers(book, f"{prefix}{level}", f"{prefix}{level}", oname, 1) for level in range(1, keep + 1)]
        sides[prefix] = np.stack(columns, axis=1)
    for prefix in ("AskS", "BidS"):
        row, col = np.unravel_index(np.argmax(sides[prefix] < 0), sides[prefix].shape)
        if sides[prefix][row, col] < 0:
            raise _fail(oname, f"column '{prefix}{col + 1}', row {row + 1}: negative size {sides[prefix][row, col]:g}")
    ask_empty = (np.abs(sides["AskP"]) >= LOBSTER_DUMMY_PRICE) | (sides["AskS"] <= 0)
    bid_empty = (np.abs(sides["BidP"]) >= LOBSTER_DUMMY_PRICE) | (sides["BidS"] <= 0)
    for prefix, empty in (("AskP", ask_empty), ("BidP", bid_empty)):
        bad_price = ~empty & (sides[prefix] <= 0)
        if bad_price.any():
            row, col = np.unravel_index(np.argmax(bad_price), bad_price.shape)
            raise _fail(oname, f"column '{prefix}{col + 1}', row {row + 1}: price {sides[prefix][row, col]:g} "
                        "is not positive")
    ask_price = np.where(ask_empty, np.nan, sides["AskP"] / LOBSTER_PRICE_SCALE)
    bid_price = np.where(bid_empty, np.nan, sides["BidP"] / LOBSTER_PRICE_SCALE)
    ask_size = np.where(ask_empty, 0.0, sides["AskS"])
    bid_size = np.where(bid_empty, 0.0, sides["BidS"])
    _check_levels_ordered(bid_price, ask_price, oname, first_row=1, columns=("BidP", "AskP"))
    two_sided = ~bid_empty[:, 0] & ~ask_empty[:, 0]
    crossed = two_sided & (bid_price[:, 0] >= ask_price[:, 0])
    bad = _first(crossed)
    if bad is not None:
        raise _fail(oname, f"columns 'BidP1'/'AskP1', row {bad + 1}: crossed book (best bid "
                    f"{bid_price[bad, 0]:g} ≥ best ask {ask_price[bad, 0]:g})")

    first_two_sided = _first(two_sided)
    if first_two_sided is None:
        raise _fail(oname, "no row has both a bid and an ask; the replay needs a two-sided book")
    start_ns = _grid_start(int(times_ns[first_two_sided]), step_ns)
    snapshots = (int(times_ns[-1]) - start_ns) // step_ns + 1 if times_ns[-1] >= start_ns else 0
    if snapshots < 2:
        raise _fail(oname, f"the book covers less than two steps of {step_seconds:g} s "
                    f"(two-sided from {times_ns[first_two_sided] / NS_PER_SECOND:.6f} s to {time_s[-1]:.6f} s)")
    grid = start_ns + np.arange(snapshots, dtype=np.int64) * step_ns
    rows = np.searchsorted(times_ns, grid, side="right") - 1  # the book after every message at or before t_k
    one_sided = ~two_sided[rows]
    bad = _first(one_sided)
    if bad is not None:
        row = int(rows[bad])
        side = "bid" if bid_empty[row, 0] else "ask"
        raise _fail(oname, f"row {row + 1} (time {time_s[row]:.6f} s): the {side} side is empty at step {bad}; the "
                    "replay needs a two-sided book at every step (cut the files to the part where both sides quote)")

    executed = np.isin(kind, LOBSTER_EXECUTIONS)
    trade_step, in_range = _trade_steps(times_ns, start_ns, step_ns, snapshots)
    pick = executed & in_range
    trades = _aggregate_trades(trade_step[pick], -direction[pick], price[pick] / LOBSTER_PRICE_SCALE, size[pick])
    return ReplayData(f"{mname} + {oname}", float(step_seconds), int(start_ns), bid_price[rows], bid_size[rows],
                      ask_price[rows], ask_size[rows], *trades)


def _check_levels_ordered(bid_price: np.ndarray, ask_price: np.ndarray, name: str, first_row: int,
                          columns: tuple[str, str]) -> None:
    """Bid levels strictly decreasing and ask levels strictly increasing where present."""
    for prices, column, sign in ((bid_price, columns[0], -1.0), (ask_price, columns[1], 1.0)):
        if prices.shape[1] < 2:
            continue
        step = sign * np.diff(prices, axis=1)  # > 0 where ordered; NaN where a level is empty
        bad = ~(step > 0) & ~np.isnan(step)
        if bad.any():
            row, col = np.unravel_index(np.argmax(bad), bad.shape)
            raise _fail(name, f"column '{column}{col + 2}', row {row + first_row}: level {col + 2} price "
                        f"{prices[row, col + 1]:g} is not {'below' if sign < 0 else 'above'} level {col + 1}'s "
                        f"{prices[row, col]:g}")


# ----- tardis --------------------------------------------------------------------------------------


def _tardis_columns(frame: pl.DataFrame, expected: tuple[str, ...], name: str) -> pl.DataFrame:
    by_lower = {column.strip().lower(): column for column in frame.columns}
    missing = [column for column in expected if column not in by_lower]
    if missing:
        hint = ""
        if len(frame.columns) == 1 and any(sep in frame.columns[0] for sep in ";\t|"):
            hint = " (the file looks separated by something other than commas)"
        raise _fail(name, f"missing column(s) {', '.join(repr(c) for c in missing)}; found columns: "
                    + ", ".join(repr(c) for c in frame.columns) + hint)
    return frame.select([pl.col(by_lower[column]).alias(column) for column in expected])


def _one_symbol(frame: pl.DataFrame, name: str) -> None:
    symbols = frame["symbol"].unique(maintain_order=True)
    if symbols.len() > 1:
        second = _first((frame["symbol"] != symbols[0]).to_numpy())
        raise _fail(name, f"column 'symbol', row {second + 2}: a second symbol {symbols[1]!r} after {symbols[0]!r}; "
                    "keep one symbol per file")


def _words(frame: pl.DataFrame, column: str, allowed: dict[str, int], name: str) -> np.ndarray:
    text = frame[column].str.strip_chars().str.to_lowercase()
    codes = text.replace_strict(allowed, default=None, return_dtype=pl.Int8)
    bad = _first(codes.is_null().to_numpy())
    if bad is not None:
        raise _fail(name, f"column '{column}', row {bad + 2}: {frame[column][bad]!r} is not one of "
                    + ", ".join(allowed))
    return codes.to_numpy()


def _tardis_times(frame: pl.DataFrame, name: str) -> np.ndarray:
    micros = _integers(frame, "timestamp", "timestamp", name, 2)
    # tardis orders rows by local_timestamp; a feed whose exchange clock steps back needs sorting first
    _check_not_decreasing(micros, "timestamp", name, 2, " (sort the file by the exchange timestamp)")
    return micros * NS_PER_MICROSECOND


def _reconstruct(times_ns: np.ndarray, snapshot: np.ndarray, is_bid: np.ndarray, price: np.ndarray,
                 amount: np.ndarray, step_ns: int, levels: int, name: str
                 ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Replay L2 updates and record the L best levels at every clock time (see the module docstring).

    A Python loop over updates (a dict of levels and a sorted price list per side): about a
    microsecond an update; the result is cached by :func:`load_replay`."""
    n = times_ns.shape[0]
    capacity = int((times_ns[-1] - times_ns[0]) // step_ns) + 2
    out_bp = np.full((capacity, levels), np.nan)
    out_bs = np.zeros((capacity, levels))
    out_ap = np.full((capacity, levels), np.nan)
    out_as = np.zeros((capacity, levels))
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    bid_keys: list[float] = []  # ascending
    ask_keys: list[float] = []
    k = 0
    start_ns: int | None = None
    next_ns = 0
    in_snapshot = False
    times, snaps, sides, prices, amounts = (times_ns.tolist(), snapshot.tolist(), is_bid.tolist(), price.tolist(),
                                            amount.tolist())

    broken_since = -1  # the update that left the book one-sided or crossed (what an error names)

    def record(k: int) -> None:
        row, stamp = broken_since + 2, times[broken_since] // NS_PER_MICROSECOND
        if not bid_keys or not ask_keys:
            side = "bid" if not bid_keys else "ask"
            raise _fail(name, f"row {row} (timestamp {stamp}): the {side} side is empty at step {k}; the replay "
                        "needs a two-sided book at every step")
        if bid_keys[-1] >= ask_keys[0]:
            raise _fail(name, f"row {row} (timestamp {stamp}): crossed book (best bid {bid_keys[-1]:g} ≥ best ask "
                        f"{ask_keys[0]:g}) at step {k}")
        top_b = bid_keys[-1:-levels - 1:-1]
        top_a = ask_keys[:levels]
        out_bp[k, : len(top_b)] = top_b
        out_bs[k, : len(top_b)] = [bids[p] for p in top_b]
        out_ap[k, : len(top_a)] = top_a
        out_as[k, : len(top_a)] = [asks[p] for p in top_a]

    for i in range(n):
        t = times[i]
        if start_ns is not None:
            while next_ns < t:  # every clock time before this update sees the book as it is now
                record(k)
                k += 1
                next_ns += step_ns
        if snaps[i] and not in_snapshot:  # a new snapshot: start from an empty book
            bids.clear(), asks.clear(), bid_keys.clear(), ask_keys.clear()
        in_snapshot = snaps[i]
        book, keys = (bids, bid_keys) if sides[i] else (asks, ask_keys)
        p, a = prices[i], amounts[i]
        if a == 0:
            if p in book:
                del book[p]
                del keys[bisect.bisect_left(keys, p)]
        else:
            if p not in book:
                bisect.insort(keys, p)
            book[p] = a
        healthy = bool(bid_keys) and bool(ask_keys) and bid_keys[-1] < ask_keys[0]
        if healthy:
            broken_since = -1
        elif broken_since < 0:
            broken_since = i
        if start_ns is None and healthy and (i + 1 == n or times[i + 1] > t):
            # the clock starts at the first multiple of the step once the book is two-sided
            start_ns = next_ns = _grid_start(t, step_ns)
    if start_ns is None:
        raise _fail(name, "the book never has both a bid and an ask; the replay needs a two-sided book")
    while next_ns <= times[-1]:
        record(k)
        k += 1
        next_ns += step_ns
    return start_ns, out_bp[:k], out_bs[:k], out_ap[:k], out_as[:k]


def read_tardis(book_path: str | Path, trades_path: str | Path, step_seconds: float = 1.0,
                levels: int = DEFAULT_LEVELS) -> ReplayData:
    """Read a tardis ``incremental_book_L2`` and ``trades`` pair (module docstring) into :class:`ReplayData`."""
    book_path, trades_path = Path(book_path), Path(trades_path)
    bname, tname = str(book_path), str(trades_path)
    step_ns = _step_ns(step_seconds)
    if levels < 1:
        raise ScenarioError(f"book_levels: must be at least 1 (got {levels})")
    book = _tardis_columns(_read_text_csv(book_path, "tardis incremental_book_L2 file", True), TARDIS_BOOK_COLUMNS,
                           bname)
    _one_symbol(book, bname)
    times_ns = _tardis_times(book, bname)
    snapshot = _words(book, "is_snapshot", {"true": 1, "false": 0}, bname).astype(bool)
    is_bid = _words(book, "side", {"bid": 1, "ask": 0}, bname).astype(bool)
    price = _numbers(book, "price", "price", bname, 2)
    _check_positive_prices(price, bname, 2)
    amount = _numbers(book, "amount", "amount", bname, 2)
    _check_non_negative(amount, "amount", bname, 2, "amount")
    start_ns, bp, bs, ap, asz = _reconstruct(times_ns, snapshot, is_bid, price, amount, step_ns, levels, bname)
    snapshots = bp.shape[0]
    if snapshots < 2:
        raise _fail(bname, f"the book covers less than two steps of {step_seconds:g} s")

    trades = _tardis_columns(_read_text_csv(trades_path, "tardis trades file", True), TARDIS_TRADE_COLUMNS, tname)
    _one_symbol(trades, tname)
    symbol_book, symbol_trades = book["symbol"][0], trades["symbol"][0]
    if symbol_book != symbol_trades:
        raise _fail(tname, f"column 'symbol', row 2: trades of {symbol_trades!r} but the book file {bname} is "
                    f"{symbol_book!r}")
    trade_ns = _tardis_times(trades, tname)
    side = _words(trades, "side", {"buy": 1, "sell": -1, "unknown": 0}, tname)
    trade_price = _numbers(trades, "price", "price", tname, 2)
    _check_positive_prices(trade_price, tname, 2)
    trade_amount = _numbers(trades, "amount", "amount", tname, 2)
    _check_non_negative(trade_amount, "amount", tname, 2, "amount")
    step, keep = _trade_steps(trade_ns, start_ns, step_ns, snapshots)
    step, side, trade_price, trade_amount = step[keep], side[keep], trade_price[keep], trade_amount[keep]
    unknown = side == 0
    if unknown.any():  # classify by the price against the mid at the start of the trade's step
        mid = (bp[step[unknown], 0] + ap[step[unknown], 0]) / 2
        side = side.copy()
        side[unknown] = np.where(trade_price[unknown] >= mid, 1, -1)
    return ReplayData(f"{bname} + {tname}", float(step_seconds), int(start_ns), bp, bs, ap, asz,
                      *_aggregate_trades(step, side, trade_price, trade_amount))


# ----- arrays --------------------------------------------------------------------------------------


def replay_from_levels(bid_price: np.ndarray, bid_size: np.ndarray, ask_price: np.ndarray, ask_size: np.ndarray,
                       trades: list[tuple[int, int, float, float]] | tuple = (), step_seconds: float = 1.0,
                       start_ns: int = 0, source: str = "arrays") -> ReplayData:
    """:class:`ReplayData` from snapshots already on the clock (hand-built books, other sources).

    ``bid_price``/``bid_size``/``ask_price``/``ask_size``: ``[N, L]`` (price units, units; best first,
    NaN price and 0 size where a side has fewer levels); ``trades``: ``(step, side, price, volume)``
    with side +1 for buyer-initiated, −1 for seller-initiated, step in ``0..N−2``. Checked like a file:
    two-sided, uncrossed, ordered levels, sizes ≥ 0."""
    bp, bs, ap, asz = (np.array(a, dtype=np.float64, ndmin=2) for a in (bid_price, bid_size, ask_price, ask_size))
    if not bp.shape == bs.shape == ap.shape == asz.shape or bp.shape[0] < 2:
        raise ReplayDataError(f"{source}: bid/ask prices and sizes must share one shape [N ≥ 2, L], got "
                              f"{bp.shape}, {bs.shape}, {ap.shape}, {asz.shape}")
    for array, shown in ((bs, "bid_size"), (asz, "ask_size")):
        row, col = np.unravel_index(np.argmax(array < 0), array.shape)
        if array[row, col] < 0:
            raise _fail(source, f"column '{shown}', row {row}: negative size {array[row, col]:g}")
    _check_levels_ordered(bp, ap, source, first_row=0, columns=("bid_price", "ask_price"))
    bad = _first(~np.isfinite(bp[:, 0]) | ~np.isfinite(ap[:, 0]))
    if bad is not None:
        raise _fail(source, f"row {bad}: a side is empty; the replay needs a two-sided book at every step")
    bad = _first(bp[:, 0] >= ap[:, 0])
    if bad is not None:
        raise _fail(source, f"row {bad}: crossed book (best bid {bp[bad, 0]:g} ≥ best ask {ap[bad, 0]:g})")
    rows = np.array(list(trades), dtype=np.float64).reshape(-1, 4)
    step, side = rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int8)
    bad = _first((step < 0) | (step > bp.shape[0] - 2) | ((side != 1) & (side != -1)) | (rows[:, 3] < 0))
    if bad is not None:
        raise _fail(source, f"trade {bad}: {tuple(rows[bad])} needs a step in 0..{bp.shape[0] - 2}, side ±1 and a "
                    "volume ≥ 0")
    return ReplayData(source, float(step_seconds), int(start_ns), bp, np.where(np.isnan(bp), 0.0, bs), ap,
                      np.where(np.isnan(ap), 0.0, asz), *_aggregate_trades(step, side, rows[:, 2], rows[:, 3]))


# ----- files, folders and the cache ----------------------------------------------------------------


def _is_csv(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(CSV_SUFFIXES)


def _companion(path: Path, mine: str, theirs: str, what: str) -> Path:
    other = path.with_name(path.name.replace(mine, theirs))
    if not other.exists():
        raise ReplayDataError(f"{path}: the matching {what} {other.name} is not next to it")
    return other


def _find_one(folder: Path, marker: str, what: str) -> Path:
    found = sorted(p for p in folder.iterdir() if _is_csv(p) and marker in p.name)
    if len(found) != 1:
        listed = ", ".join(p.name for p in found) if found else "none"
        raise ReplayDataError(f"{folder}: expected exactly one {what} (a CSV whose name contains '{marker}'), "
                              f"found {listed}")
    return found[0]


def resolve_files(path: str | Path, data_format: DataFormat) -> tuple[Path, Path]:
    """The two files of a data set: ``(message, orderbook)`` for LOBSTER, ``(book, trades)`` for tardis.

    ``path`` is a folder holding exactly one pair, or either file of the pair (the other is found
    by its name: ``message`` ↔ ``orderbook``, ``incremental_book_L2`` ↔ ``trades``)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ReplayDataError(f"{path}: no such file or folder")
    if data_format == "lobster":
        markers = (("message", "LOBSTER message file"), ("orderbook", "LOBSTER orderbook file"))
    elif data_format == "tardis":
        markers = (("incremental_book_L2", "tardis incremental_book_L2 file"), ("trades", "tardis trades file"))
    else:
        raise ScenarioError(f"data_format: must be 'tardis' or 'lobster' (got {data_format!r})")
    (first, first_what), (second, second_what) = markers
    if path.is_dir():
        return _find_one(path, first, first_what).resolve(), _find_one(path, second, second_what).resolve()
    if first in path.name:
        return path.resolve(), _companion(path, first, second, second_what).resolve()
    if second in path.name:
        return _companion(path, second, first, first_what).resolve(), path.resolve()
    raise ReplayDataError(f"{path}: a {data_format} file's name contains '{first}' or '{second}'; pass the folder "
                          "or one of the pair")


@dataclass(frozen=True)
class _Key:
    """What a cached load depends on: the files as they are on disk and the reading parameters."""

    data_format: str
    files: tuple[tuple[str, int, int], ...]  # (resolved path, mtime ns, size)
    step_seconds: float
    levels: int | None


@lru_cache(maxsize=8)
def _load(key: _Key) -> ReplayData:
    first, second = (Path(entry[0]) for entry in key.files)
    if key.data_format == "lobster":
        return read_lobster(first, second, key.step_seconds, key.levels)
    return read_tardis(first, second, key.step_seconds, key.levels or DEFAULT_LEVELS)


def load_replay(path: str | Path, data_format: DataFormat = "tardis", step_seconds: float = 1.0,
                levels: int | None = DEFAULT_LEVELS) -> ReplayData:
    """Read (cached) the data set at ``path`` (a folder or one file of the pair, see :func:`resolve_files`)."""
    files = resolve_files(path, data_format)
    stamps = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    return _load(_Key(data_format, stamps, float(step_seconds), levels))


def clear_cache() -> None:
    """Forget every cached load (tests; a long-running process never needs it: keys include mtimes)."""
    _load.cache_clear()


# ----- the price grid ------------------------------------------------------------------------------


def infer_tick(data: ReplayData) -> float:
    """The tick of the data: the greatest common divisor of the differences between its prices (book
    and trades), on a grid of 10⁻⁸ price units."""
    prices = np.concatenate([data.bid_price.ravel(), data.ask_price.ravel(), data.trade_price])
    prices = prices[np.isfinite(prices)]
    scaled = np.unique(np.round(prices * 10**TICK_DIGITS).astype(np.int64))
    if scaled.size < 2:
        raise ReplayDataError(f"{data.source}: a single price in the whole data; set tick_size")
    tick = int(np.gcd.reduce(np.diff(scaled)))
    return tick / 10**TICK_DIGITS


def to_ticks(prices: np.ndarray, tick: float, what: str) -> np.ndarray:
    """``prices / tick`` as whole numbers (float64; NaN stays NaN); prices off the tick grid are an error."""
    ratio = prices / tick
    whole = np.round(ratio)
    off = np.abs(ratio - whole) > 1e-6 * np.maximum(1.0, np.abs(ratio)) + 1e-3
    bad = _first(off & np.isfinite(ratio))
    if bad is not None:
        value = prices.ravel()[bad]
        raise ScenarioError(f"tick_size: {value!r} ({what}) is not a multiple of the tick {tick:g}; leave tick_size "
                            "unset to read the tick from the data")
    return whole


def summary(data: ReplayData) -> dict[str, float]:
    """A few descriptive numbers of a data set (for messages, READMEs and the dashboard)."""
    spread = data.spread
    return {
        "snapshots": float(data.snapshots),
        "levels": float(data.levels),
        "hours": (data.snapshots - 1) * data.step_seconds / 3600,
        "first_mid": float(data.mid[0]),
        "last_mid": float(data.mid[-1]),
        "median_spread": float(np.median(spread)),
        "trades_per_step": float(data.trade_step.size / max(data.snapshots - 1, 1)),
        "volume_per_step": float(data.trade_volume.sum() / max(data.snapshots - 1, 1)),
        "tick": infer_tick(data),
        "mid_return_std": float(np.std(np.diff(data.mid))) if data.snapshots > 1 else math.nan,
    }
