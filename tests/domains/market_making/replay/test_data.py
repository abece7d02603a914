"""Readers of the replay setting on tiny hand-written files: snapshots, trade volumes, and every check's
message naming the file, the column and the row."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from decisionlab.core.errors import ScenarioError
from decisionlab.domains.market_making.replay.data import (
    ReplayDataError,
    clear_cache,
    infer_tick,
    load_replay,
    read_lobster,
    read_tardis,
    replay_from_levels,
    resolve_files,
)

BOOK_HEADER = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"
TRADES_HEADER = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"
# t = 1 s: snapshot; 1.5 s: bid 99.99 -> 2; 2 s (on the clock): ask 100.01 removed; 2.5 s: a new best bid
# 100.00; 3 s: a new ask level 100.03 (the last event: the clock runs 1, 2, 3 s)
BOOK_ROWS = [
    "x,S,1000000,1000001,true,bid,99.99,5",
    "x,S,1000000,1000001,true,bid,99.98,7",
    "x,S,1000000,1000001,true,ask,100.01,4",
    "x,S,1000000,1000001,true,ask,100.02,6",
    "x,S,1500000,1500001,false,bid,99.99,2",
    "x,S,2000000,2000001,false,ask,100.01,0",
    "x,S,2500000,2500001,false,bid,100.00,3",
    "x,S,3000000,3000001,false,ask,100.03,1",
]
TRADE_ROWS = [
    "x,S,500000,500001,0,buy,100.01,50",  # before the clock starts: dropped
    "x,S,1200000,1200001,1,sell,99.99,2",
    "x,S,1300000,1300001,2,sell,99.99,1",
    "x,S,2000000,2000001,3,buy,100.01,4",  # at t_1 exactly: still step 0, (t_0, t_1]
    "x,S,2100000,2100001,4,buy,100.02,1",
    "x,S,2200000,2200001,5,unknown,99.99,1",  # below the mid 100.005 of snapshot 1: a sell
    "x,S,3000000,3000001,6,buy,100.02,9",
    "x,S,3500000,3500001,7,buy,100.02,9",  # after the last snapshot: dropped
]


def write(path: Path, lines: list[str], compress: bool = False) -> Path:
    text = "\n".join(lines) + "\n"
    if compress:
        path.write_bytes(gzip.compress(text.encode(), mtime=0))
    else:
        path.write_text(text)
    return path


def tardis_pair(folder: Path, book: list[str] | None = None, trades: list[str] | None = None,
                book_header: str = BOOK_HEADER, compress: bool = False) -> tuple[Path, Path]:
    suffix = ".csv.gz" if compress else ".csv"
    book_path = write(folder / f"x_incremental_book_L2{suffix}", [book_header, *(BOOK_ROWS if book is None else book)],
                      compress)
    trades_path = write(folder / f"x_trades{suffix}", [TRADES_HEADER, *(TRADE_ROWS if trades is None else trades)],
                        compress)
    return book_path, trades_path


# LOBSTER, 2 levels: the book after each message; the clock starts at 34201 s (first multiple of 1 s after
# the first two-sided row at 34200.5 s) and runs to 34203 s.
MESSAGES = [
    "34200.500000000,1,1,5,999900,1",
    "34201.000000000,1,2,4,1000100,-1",
    "34201.200000000,4,1,2,999900,1",  # a resting buy executed: a sell aggressor at 99.99, step 0
    "34201.700000000,5,9,3,1000100,-1",  # a hidden sell executed: a buy aggressor at 100.01, step 0
    "34202.000000000,3,2,1,1000100,-1",
    "34203.000000000,4,3,6,1000200,-1",  # step 1: (34202, 34203]
]
ORDERBOOK = [
    "1000100,0,999900,5,1000200,8,999800,7",
    "1000100,4,999900,5,1000200,8,999800,7",
    "1000100,4,999900,3,1000200,8,999800,7",
    "1000100,4,999900,3,1000200,8,999800,7",
    "1000100,3,999900,3,1000200,8,999800,7",
    "1000200,2,999900,3,9999999999,0,999800,7",
]


def lobster_pair(folder: Path, messages: list[str] | None = None, orderbook: list[str] | None = None
                 ) -> tuple[Path, Path]:
    message_path = write(folder / "X_2024-01-02_34200000_57600000_message_2.csv", MESSAGES if messages is None
                         else messages)
    book_path = write(folder / "X_2024-01-02_34200000_57600000_orderbook_2.csv", ORDERBOOK if orderbook is None
                      else orderbook)
    return message_path, book_path


def test_tardis_snapshots_and_trade_volumes(tmp_path: Path) -> None:
    data = read_tardis(*tardis_pair(tmp_path), step_seconds=1.0, levels=2)
    assert data.snapshots == 3 and data.levels == 2
    assert data.start_ns == 1_000_000_000
    np.testing.assert_allclose(data.bid_price, [[99.99, 99.98], [99.99, 99.98], [100.00, 99.99]])
    np.testing.assert_allclose(data.bid_size, [[5, 7], [2, 7], [3, 2]])
    np.testing.assert_allclose(data.ask_price[:, 0], [100.01, 100.02, 100.02])
    assert np.isnan(data.ask_price[1, 1])  # one ask level left after the removal
    np.testing.assert_allclose(data.ask_size, [[4, 6], [6, 0], [6, 1]])
    assert data.volume(0, -1, 99.99) == 3  # two sells summed
    assert data.volume(0, +1, 100.01) == 4  # the trade at t_1 exactly belongs to step 0
    assert data.volume(1, +1, 100.02) == 10
    assert data.volume(1, -1, 99.99) == 1  # "unknown" classified against the mid
    assert data.trade_volume.sum() == 18  # before the clock and after the last snapshot: dropped
    assert infer_tick(data) == pytest.approx(0.01)
    np.testing.assert_allclose(data.mid, [100.0, 100.005, 100.01])


def test_tardis_reads_gzip_and_folders(tmp_path: Path) -> None:
    tardis_pair(tmp_path, compress=True)
    assert resolve_files(tmp_path, "tardis")[0].name == "x_incremental_book_L2.csv.gz"
    data = load_replay(tmp_path, "tardis", levels=2)
    np.testing.assert_allclose(data.bid_size[:, 0], [5, 2, 3])
    # either file of the pair finds the other
    book, trades = resolve_files(tmp_path / "x_trades.csv.gz", "tardis")
    assert book.name == "x_incremental_book_L2.csv.gz" and trades.name == "x_trades.csv.gz"


def test_a_new_snapshot_clears_the_book(tmp_path: Path) -> None:
    rows = BOOK_ROWS[:5] + ["x,S,1700000,1700001,true,bid,99.90,1", "x,S,1700000,1700001,true,ask,99.95,2",
                            "x,S,2000000,2000001,false,ask,99.96,3"]
    data = read_tardis(*tardis_pair(tmp_path, book=rows, trades=TRADE_ROWS[:3]), levels=2)
    np.testing.assert_allclose(data.bid_price[1], [99.90, np.nan])
    np.testing.assert_allclose(data.ask_price[1], [99.95, 99.96])


def test_lobster_snapshots_and_trade_volumes(tmp_path: Path) -> None:
    data = read_lobster(*lobster_pair(tmp_path))
    assert data.snapshots == 3 and data.levels == 2
    assert data.start_ns == 34_201 * 1_000_000_000
    np.testing.assert_allclose(data.ask_price, [[100.01, 100.02], [100.01, 100.02], [100.02, np.nan]])
    np.testing.assert_allclose(data.ask_size, [[4, 8], [3, 8], [2, 0]])
    np.testing.assert_allclose(data.bid_size, [[5, 7], [3, 7], [3, 7]])
    assert data.volume(0, -1, 99.99) == 2  # execution of a resting buy: seller-initiated
    assert data.volume(0, +1, 100.01) == 3  # hidden executions count
    assert data.volume(1, +1, 100.02) == 6
    assert data.trade_volume.sum() == 11
    assert read_lobster(*lobster_pair(tmp_path), levels=1).levels == 1


def test_load_is_cached_until_the_file_changes(tmp_path: Path) -> None:
    clear_cache()
    book, _ = tardis_pair(tmp_path)
    first = load_replay(tmp_path, "tardis", levels=2)
    assert load_replay(tmp_path, "tardis", levels=2) is first
    assert load_replay(tmp_path, "tardis", levels=1) is not first  # other parameters, other entry
    write(book, [BOOK_HEADER, *BOOK_ROWS[:6]])
    stat = book.stat()
    os.utime(book, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert load_replay(tmp_path, "tardis", levels=2) is not first


def test_arrays_are_read_only(tmp_path: Path) -> None:
    data = read_tardis(*tardis_pair(tmp_path), levels=2)
    with pytest.raises(ValueError):
        data.bid_size[0, 0] = 1.0


# ----- every check names the file, the column and the row -----------------------------------------


def replace_row(rows: list[str], index: int, row: str) -> list[str]:
    out = list(rows)
    out[index] = row
    return out


TARDIS_BOOK_ERRORS = {
    "non-numeric price": (replace_row(BOOK_ROWS, 2, "x,S,1000000,1000001,true,ask,abc,4"),
                          ("column 'price', row 4", "'abc' is not a number")),
    "negative amount": (replace_row(BOOK_ROWS, 4, "x,S,1500000,1500001,false,bid,99.99,-2"),
                        ("column 'amount', row 6", "negative amount")),
    "time going backwards": (replace_row(BOOK_ROWS, 5, "x,S,1400000,1400001,false,ask,100.01,0"),
                             ("column 'timestamp', row 7", "backwards")),
    "non-numeric timestamp": (replace_row(BOOK_ROWS, 1, "x,S,soon,1000001,true,bid,99.98,7"),
                              ("column 'timestamp', row 3", "whole number")),
    "unknown side": (replace_row(BOOK_ROWS, 0, "x,S,1000000,1000001,true,buy,99.99,5"),
                     ("column 'side', row 2", "'buy' is not one of bid, ask")),
    "bad snapshot flag": (replace_row(BOOK_ROWS, 0, "x,S,1000000,1000001,yes,bid,99.99,5"),
                          ("column 'is_snapshot', row 2",)),
    "crossed book": (replace_row(BOOK_ROWS, 6, "x,S,2500000,2500001,false,bid,100.05,3"),
                     ("row 8", "crossed book", "100.05")),
    "two symbols": (replace_row(BOOK_ROWS, 3, "x,T,1000000,1000001,true,ask,100.02,6"),
                    ("column 'symbol', row 5", "'T'")),
    "an empty side": (BOOK_ROWS[:6] + ["x,S,2000000,2000001,false,ask,100.02,0"] + BOOK_ROWS[6:],
                      ("row 8 (timestamp 2000000)", "the ask side is empty at step 1")),
}


@pytest.mark.parametrize("case", sorted(TARDIS_BOOK_ERRORS))
def test_tardis_book_errors_name_file_column_and_row(tmp_path: Path, case: str) -> None:
    rows, fragments = TARDIS_BOOK_ERRORS[case]
    book, trades = tardis_pair(tmp_path, book=rows)
    with pytest.raises(ReplayDataError) as err:
        read_tardis(book, trades, levels=2)
    message = str(err.value)
    assert str(book) in message
    for fragment in fragments:
        assert fragment in message, message
    assert isinstance(err.value, ScenarioError)  # the CLI prints it without a traceback; the API answers 422


TARDIS_TRADE_ERRORS = {
    "negative amount": (replace_row(TRADE_ROWS, 2, "x,S,1300000,1300001,2,sell,99.99,-1"),
                        ("column 'amount', row 4", "negative amount")),
    "unknown side": (replace_row(TRADE_ROWS, 1, "x,S,1200000,1200001,1,bid,99.99,2"),
                     ("column 'side', row 3", "buy, sell, unknown")),
    "zero price": (replace_row(TRADE_ROWS, 1, "x,S,1200000,1200001,1,sell,0,2"),
                   ("column 'price', row 3", "not positive")),
    "time going backwards": (replace_row(TRADE_ROWS, 3, "x,S,1250000,1250001,3,buy,100.01,4"),
                             ("column 'timestamp', row 5",)),
}


@pytest.mark.parametrize("case", sorted(TARDIS_TRADE_ERRORS))
def test_tardis_trade_errors_name_file_column_and_row(tmp_path: Path, case: str) -> None:
    rows, fragments = TARDIS_TRADE_ERRORS[case]
    book, trades = tardis_pair(tmp_path, trades=rows)
    with pytest.raises(ReplayDataError) as err:
        read_tardis(book, trades, levels=2)
    message = str(err.value)
    assert str(trades) in message
    for fragment in fragments:
        assert fragment in message, message


def test_tardis_missing_columns_empty_and_header_only_files(tmp_path: Path) -> None:
    book, trades = tardis_pair(tmp_path, book_header=BOOK_HEADER.replace(",amount", ",size"))
    with pytest.raises(ReplayDataError, match=r"missing column\(s\) 'amount'; found columns") as err:
        read_tardis(book, trades)
    assert str(book) in str(err.value)
    book.write_text("")
    with pytest.raises(ReplayDataError, match="is empty"):
        read_tardis(book, trades)
    book.write_text(BOOK_HEADER + "\n")
    with pytest.raises(ReplayDataError, match="has a header but no rows"):
        read_tardis(book, trades)
    with pytest.raises(ReplayDataError, match="not found"):
        read_tardis(tmp_path / "nope_incremental_book_L2.csv", trades)


LOBSTER_MESSAGE_ERRORS = {
    "non-numeric size": (replace_row(MESSAGES, 1, "34201.0,1,2,four,1000100,-1"), ("column 'size', row 2",)),
    "time going backwards": (replace_row(MESSAGES, 2, "34200.9,4,1,2,999900,1"), ("column 'time', row 3",)),
    "negative size": (replace_row(MESSAGES, 3, "34201.7,5,9,-3,1000100,-1"), ("column 'size', row 4", "negative")),
    "unknown type": (replace_row(MESSAGES, 4, "34202.0,9,2,1,1000100,-1"), ("column 'type', row 5", "1–7")),
    "bad direction": (replace_row(MESSAGES, 5, "34203.0,4,3,6,1000200,0"), ("column 'direction', row 6",)),
    "missing column": ([row.rsplit(",", 1)[0] for row in MESSAGES], ("6 columns", "this one has 5")),
}


@pytest.mark.parametrize("case", sorted(LOBSTER_MESSAGE_ERRORS))
def test_lobster_message_errors_name_file_column_and_row(tmp_path: Path, case: str) -> None:
    rows, fragments = LOBSTER_MESSAGE_ERRORS[case]
    messages, orderbook = lobster_pair(tmp_path, messages=rows)
    with pytest.raises(ReplayDataError) as err:
        read_lobster(messages, orderbook)
    message = str(err.value)
    assert str(messages) in message
    for fragment in fragments:
        assert fragment in message, message


LOBSTER_BOOK_ERRORS = {
    "negative size": (replace_row(ORDERBOOK, 1, "1000100,4,999900,5,1000200,8,999800,-7"),
                      ("column 'BidS2', row 2", "negative size")),
    "crossed": (replace_row(ORDERBOOK, 2, "1000100,4,1000100,3,1000200,8,999800,7"),
                ("columns 'BidP1'/'AskP1', row 3", "crossed book")),
    "non-numeric price": (replace_row(ORDERBOOK, 3, "1000100,4,999900,3,x,8,999800,7"),
                          ("column 'AskP2', row 4",)),
    "levels out of order": (replace_row(ORDERBOOK, 4, "1000100,3,999900,3,1000000,8,999800,7"),
                            ("column 'AskP2', row 5",)),
    "rows not aligned": (ORDERBOOK[:-1], ("has 5 rows", "row-aligned")),
    "one-sided at a step": (replace_row(ORDERBOOK, 4, "9999999999,0,999900,3,9999999999,0,999800,7"),
                            ("row 5", "ask side is empty at step 1")),
}


@pytest.mark.parametrize("case", sorted(LOBSTER_BOOK_ERRORS))
def test_lobster_orderbook_errors_name_file_column_and_row(tmp_path: Path, case: str) -> None:
    rows, fragments = LOBSTER_BOOK_ERRORS[case]
    messages, orderbook = lobster_pair(tmp_path, orderbook=rows)
    with pytest.raises(ReplayDataError) as err:
        read_lobster(messages, orderbook)
    message = str(err.value)
    assert str(orderbook) in message
    for fragment in fragments:
        assert fragment in message, message


def test_lobster_empty_file_and_folder_lookup(tmp_path: Path) -> None:
    messages, orderbook = lobster_pair(tmp_path)
    assert resolve_files(tmp_path, "lobster") == (messages.resolve(), orderbook.resolve())
    assert resolve_files(orderbook, "lobster")[0] == messages.resolve()
    messages.write_text("")
    with pytest.raises(ReplayDataError, match="LOBSTER message file is empty") as err:
        read_lobster(messages, orderbook)
    assert str(messages) in str(err.value)
    (tmp_path / "other_message_2.csv").write_text("1")
    with pytest.raises(ReplayDataError, match="expected exactly one LOBSTER message file"):
        resolve_files(tmp_path, "lobster")


def test_hand_built_books_are_checked() -> None:
    with pytest.raises(ReplayDataError, match="row 1: crossed book"):
        replay_from_levels([[99.99], [100.02]], [[1], [1]], [[100.01], [100.01]], [[1], [1]])
    with pytest.raises(ReplayDataError, match="trade 0"):
        replay_from_levels([[99.99], [99.99]], [[1], [1]], [[100.01], [100.01]], [[1], [1]], [(1, 1, 100.01, 1)])
