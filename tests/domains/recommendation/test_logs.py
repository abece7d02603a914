"""Interaction logs in the KuaiRand layout: reading, writing, errors that name the place, the time split and the
funnel moments (checked against a row-by-row Python count)."""

from __future__ import annotations

import gzip
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from decisionlab.core import DecisionlabError
from decisionlab.domains.recommendation import logs
from decisionlab.domains.recommendation.logs import LogFormatError

BIG = 2**53  # the first whole number a float64 cannot tell from its neighbour


def _with_big_ids(frame: pl.DataFrame) -> pl.DataFrame:
    """Ids above 2^53 (a float would round them), and one at the top of int64."""
    return frame.with_columns(
        (pl.col("user_id") + BIG + 1).alias("user_id"),
        (pl.col("video_id") * 7 + 2**62 + 1).alias("video_id"),
        (pl.col("request_id") + BIG + 3).alias("request_id"),
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit(2**63 - 1, pl.Int64)).otherwise(pl.col("author_id"))
        .alias("author_id"),
    )


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_round_trip_is_exact(tmp_path: Path, suffix: str) -> None:
    frame = _with_big_ids(logs.synthetic_log(n_users=6, requests_per_user=4, slate_size=3, seed=1))
    frame = frame.with_columns(pl.format("tab{}", pl.col("position")).alias("tab"))  # an extra text column
    path = tmp_path / f"log{suffix}"
    logs.write_log(frame, path)
    back = logs.read_log(path)
    assert_frame_equal(back, frame, check_exact=True)
    assert back["user_id"].to_list() == frame["user_id"].to_list()  # exact Python ints above 2^53
    assert back["author_id"][0] == 2**63 - 1
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left beside it


def test_csv_ids_above_2_53_are_parsed_exactly(tmp_path: Path) -> None:
    path = tmp_path / "ids.csv"
    path.write_text("user_id,video_id,author_id,time_ms,is_click,is_follow\n"
                    f"{BIG + 1},{2**63 - 1},{BIG + 3},1649376000001,1,0\n")
    row = logs.read_log(path).row(0, named=True)
    assert (row["user_id"], row["video_id"], row["author_id"]) == (BIG + 1, 2**63 - 1, BIG + 3)
    assert logs.read_log(path).schema["user_id"] == pl.Int64 and logs.read_log(path).schema["is_click"] == pl.Int8


# ----- errors name the file, the column and the row ----------------------------------------------------------

N_ROWS = 30
HEADER = ["user_id", "video_id", "author_id", "time_ms", "is_click", "is_follow", "request_id", "logging_logp"]


def _rows() -> list[list[str]]:
    """A valid log of N_ROWS rows, three rows a request."""
    return [[str(i % 4), str(100 + i), str(i % 5), str(1_649_376_000_000 + 1000 * (i // 3)), str(i % 2), "0",
             str(i // 3), f"-{1 + (i // 3) * 0.25}"] for i in range(N_ROWS)]


def _put(row: int, column: str, value: str) -> Callable[[list[list[str]]], list[str]]:
    def edit(rows: list[list[str]]) -> list[str]:
        rows[row - 1][HEADER.index(column)] = value
        return HEADER
    return edit


def _drop(column: str) -> Callable[[list[list[str]]], list[str]]:
    def edit(rows: list[list[str]]) -> list[str]:
        at = HEADER.index(column)
        for r in rows:
            del r[at]
        return [h for h in HEADER if h != column]
    return edit


CSV_CASES = {
    # case: (edit, column, row, words in the message)
    "bad flag": (_put(17, "is_click", "2"), "is_click", 17, "expected 0 or 1, got 2"),
    "null id": (_put(5, "user_id", ""), "user_id", 5, "missing value"),
    "negative time": (_put(9, "time_ms", "-5"), "time_ms", 9, "got -5"),
    "non-numeric id": (_put(12, "video_id", "abc"), "video_id", 12, "got 'abc'"),
    "float id": (_put(3, "author_id", "1.0"), "author_id", 3, "whole number"),
    "id beyond int64": (_put(4, "user_id", str(2**63)), "user_id", 4, "whole number"),
    "positive logp": (_put(7, "logging_logp", "0.5"), "logging_logp", 7, "log-probability ≤ 0"),
    "non-finite logp": (_put(22, "logging_logp", "nan"), "logging_logp", 22, "finite"),
    # rows 13-15 are request 4: row 14 differs from row 13
    "inconsistent logp": (_put(14, "logging_logp", "-9"), "logging_logp", 14, "row 13 of the same request_id 4"),
    "missing column": (_drop("is_follow"), "is_follow", None, "missing required column(s) is_follow"),
}


@pytest.mark.parametrize("case", list(CSV_CASES))
def test_csv_errors_name_file_column_and_row(tmp_path: Path, case: str) -> None:
    edit, column, row, words = CSV_CASES[case]
    rows = _rows()
    header = edit(rows)
    path = tmp_path / "interactions.csv"
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    with pytest.raises(LogFormatError) as caught:
        logs.read_log(path)
    err = caught.value
    assert (err.file, err.column, err.row) == (str(path), column, row)
    message = str(err)
    assert message.startswith(f"{path}: column '{column}'")
    assert (f", row {row}: " in message) == (row is not None)
    assert words in message
    if case == "missing column":
        assert "the file has: 'user_id'" in message  # the columns found are listed


def test_the_earliest_bad_row_is_reported(tmp_path: Path) -> None:
    rows = _rows()
    rows[19][HEADER.index("is_click")] = "7"  # row 20, an earlier column
    rows[10][HEADER.index("logging_logp")] = "x"  # row 11, a later column: earlier row wins
    path = tmp_path / "two.csv"
    path.write_text("\n".join(",".join(r) for r in [HEADER, *rows]) + "\n")
    with pytest.raises(LogFormatError) as caught:
        logs.read_log(path)
    assert (caught.value.column, caught.value.row) == ("logging_logp", 11)


def test_a_bad_value_deep_in_a_large_file_is_found_by_row(tmp_path: Path) -> None:
    n = 100_000
    frame = pl.DataFrame({"user_id": np.arange(n) % 97, "video_id": np.arange(n), "author_id": np.arange(n) % 13,
                          "time_ms": np.arange(n) * 10, "is_click": np.arange(n) % 2, "is_follow": np.zeros(n, int)})
    frame = frame.with_columns(pl.col("is_follow").cast(pl.String))
    frame = frame.with_columns(pl.when(pl.int_range(pl.len()) == 89_999).then(pl.lit("yes"))
                               .otherwise(pl.col("is_follow")).alias("is_follow"))
    path = tmp_path / "big.csv"
    frame.write_csv(path)
    with pytest.raises(LogFormatError) as caught:
        logs.read_log(path)
    assert (caught.value.column, caught.value.row) == ("is_follow", 90_000)
    assert "row 90000: expected 0 or 1, got 'yes'" in str(caught.value)


@pytest.mark.parametrize("case", ["unknown extension", "missing file", "folder", "empty file", "garbled gzip",
                                  "garbled parquet", "not text"])
def test_file_errors_name_the_file(tmp_path: Path, case: str) -> None:
    path = {"unknown extension": tmp_path / "log.txt", "missing file": tmp_path / "absent.csv",
            "folder": tmp_path / "dir.csv", "empty file": tmp_path / "empty.csv",
            "garbled gzip": tmp_path / "bad.csv.gz", "garbled parquet": tmp_path / "bad.parquet",
            "not text": tmp_path / "binary.csv"}[case]
    if case == "unknown extension":
        path.write_text("user_id\n1\n")
    elif case == "folder":
        path.mkdir()
    elif case == "empty file":
        path.write_bytes(b"")
    elif case == "garbled gzip":
        path.write_bytes(gzip.compress(b"user_id,video_id\n1,2\n" * 50)[:40])
    elif case == "garbled parquet":
        path.write_bytes(b"PAR1 this is not parquet PAR1")
    elif case == "not text":
        path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(LogFormatError) as caught:
        logs.read_log(path)
    err = caught.value
    assert (err.file, err.column, err.row) == (str(path), None, None)
    assert str(err).startswith(f"{path}: ")
    expected = {"unknown extension": ".csv, .csv.gz or .parquet", "missing file": "not found",
                "folder": "folder", "empty file": "empty"}.get(case, "cannot be read as")
    assert expected in str(err)


@pytest.mark.parametrize("case", ["bad gift", "float id", "boolean id", "date type"])
def test_write_refuses_a_bad_frame_and_keeps_the_old_file(tmp_path: Path, case: str) -> None:
    good = logs.synthetic_log(n_users=3, requests_per_user=2, slate_size=3)
    path = tmp_path / "log.parquet"
    logs.write_log(good, path)
    before = path.read_bytes()
    third = pl.int_range(pl.len()) == 2
    bad, column, row = {
        "bad gift": (good.with_columns(pl.when(third).then(-1.0).otherwise(pl.col("gift_value")).alias("gift_value")),
                     "gift_value", 3),
        "float id": (good.with_columns(pl.col("video_id").cast(pl.Float64) + pl.when(third).then(0.5).otherwise(0.0)),
                     "video_id", 3),
        "boolean id": (good.with_columns(pl.col("user_id") > 0), "user_id", None),
        "date type": (good.with_columns(pl.lit("2022-04-08").str.to_date().alias("date")), "date", None),
    }[case]
    with pytest.raises(LogFormatError) as caught:
        logs.write_log(bad, path)
    assert (caught.value.file, caught.value.column, caught.value.row) == (str(path), column, row)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_parquet_with_other_integer_and_boolean_types_is_normalised(tmp_path: Path) -> None:
    good = logs.synthetic_log(n_users=3, requests_per_user=2, slate_size=3)
    stored = good.with_columns(pl.col("user_id").cast(pl.UInt32), pl.col("is_click").cast(pl.Boolean),
                               pl.col("time_ms").cast(pl.Float64))  # times < 2^53: floats hold them exactly
    path = tmp_path / "typed.parquet"
    stored.write_parquet(path)
    assert_frame_equal(logs.read_log(path), good, check_exact=True)


def test_the_error_pickles_with_its_place() -> None:
    err = pickle.loads(pickle.dumps(LogFormatError("f.csv", "is_click", 17, "expected 0 or 1, got 2")))
    assert (err.file, err.column, err.row, str(err)) == ("f.csv", "is_click", 17,
                                                         "f.csv: column 'is_click', row 17: expected 0 or 1, got 2")
    assert isinstance(err, DecisionlabError)


# ----- KuaiRand's own files ----------------------------------------------------------------------------------

KUAIRAND_CSV = """\
user_id,video_id,date,hourmin,time_ms,is_click,is_like,is_follow,is_comment,is_forward,is_hate,long_view,\
play_time_ms,duration_ms,profile_stay_time,comment_stay_time,is_profile_enter,is_rand,tab,author_id
0,5,20220408,1200,1649390400002,1,0,0,0,0,0,1,13500,12000,0,0,0,0,1,77
0,9,20220408,1000,1649383200001,0,0,0,0,0,0,0,0,9000,0,0,0,1,4,12
1,9,20220409,1000,1649469600000,1,1,1,0,0,0,1,9800,9000,3,0,1,0,1,12
"""


def test_kuairand_extra_columns_survive(tmp_path: Path) -> None:
    path = tmp_path / "log_standard_4_08_to_4_21_pure.csv"
    path.write_text(KUAIRAND_CSV)
    frame = logs.read_log(path)
    assert frame.columns == KUAIRAND_CSV.splitlines()[0].split(",")  # every column, in the file's order
    assert frame["time_ms"].to_list() == [1649383200001, 1649390400002, 1649469600000]  # sorted by time
    assert frame["play_time_ms"].to_list() == ["0", "13500", "9800"]  # untouched: the file's text
    assert frame["tab"].dtype == pl.String and frame["is_like"].to_list() == ["0", "0", "1"]
    assert frame.schema["date"] == pl.Int64 and frame.schema["is_rand"] == pl.Int8
    # a parquet file keeps its extra columns' own types
    typed = frame.with_columns(pl.col("play_time_ms").cast(pl.Int32), pl.col("is_like") == "1")
    logs.write_log(typed, tmp_path / "kuairand.parquet")
    assert_frame_equal(logs.read_log(tmp_path / "kuairand.parquet"), typed, check_exact=True)


def test_rows_are_sorted_stably_by_time_request_and_position(tmp_path: Path) -> None:
    path = tmp_path / "order.csv"
    path.write_text("user_id,video_id,author_id,time_ms,is_click,is_follow,request_id,position\n"
                    "0,1,0,20,0,0,5,1\n0,2,0,20,0,0,5,0\n0,3,0,10,0,0,9,0\n0,4,0,20,0,0,4,0\n0,5,0,20,0,0,4,0\n")
    assert logs.read_log(path)["video_id"].to_list() == [3, 4, 5, 2, 1]


def test_size_limit(tmp_path: Path) -> None:
    frame = logs.synthetic_log(n_users=20, requests_per_user=10, slate_size=5)
    path = tmp_path / "log.csv"
    logs.write_log(frame, path)
    size = path.stat().st_size
    assert logs.read_log(path, max_bytes=size).height == frame.height
    with pytest.raises(LogFormatError, match="over the size limit of 1,000") as caught:
        logs.read_log(path, max_bytes=1000)
    assert (caught.value.file, caught.value.row) == (str(path), None)
    # a small .csv.gz that unpacks to more than the limit is refused too
    packed = tmp_path / "log.csv.gz"
    logs.write_log(frame, packed)
    assert packed.stat().st_size < size // 2
    with pytest.raises(LogFormatError, match="decompresses to more than the size limit"):
        logs.read_log(packed, max_bytes=size // 2)
    assert logs.MAX_LOG_BYTES == 2 * 1024**3


# ----- the time split --------------------------------------------------------------------------------------


def test_split_keeps_requests_whole_and_in_time_order() -> None:
    frame = logs.synthetic_log(n_users=30, requests_per_user=12, slate_size=4, seed=3)
    # spread each request's rows over 2 h so that some requests straddle the cutoff
    frame = frame.with_columns(pl.col("time_ms") + pl.col("position") * 2_400_000)
    train, held = logs.split_by_time(frame, holdout_fraction=0.25)
    assert train.height + held.height == frame.height and held.height > 0 and train.height > 0
    assert set(train["request_id"]).isdisjoint(held["request_id"])
    assert_frame_equal(pl.concat([train, held]).sort("request_id", "position"),
                       frame.sort("request_id", "position"))
    for part in (train, held):
        assert part["time_ms"].is_sorted()
    t0, t1 = frame["time_ms"].min(), frame["time_ms"].max()
    cutoff = t0 + (t1 - t0) * 0.75
    starts = {side: part.group_by("request_id").agg(pl.col("time_ms").min())["time_ms"]
              for side, part in (("train", train), ("held", held))}
    assert starts["train"].max() <= cutoff < starts["held"].min()
    straddling = held.group_by("request_id").agg(pl.col("time_ms").min().alias("lo"), pl.col("time_ms").max())
    assert (straddling["lo"] <= cutoff).sum() == 0 and (straddling["time_ms"] > cutoff).all()
    assert ((train.group_by("request_id").agg(pl.col("time_ms").max())["time_ms"] > cutoff).any())
    with pytest.raises(DecisionlabError, match="between 0 and 1"):
        logs.split_by_time(frame, holdout_fraction=1.0)


def test_split_without_request_ids_goes_by_row_time() -> None:
    frame = pl.DataFrame({"user_id": [0, 0, 1, 1, 2], "time_ms": [0, 100, 50, 80, 81]})
    train, held = logs.split_by_time(frame, holdout_fraction=0.2)
    assert train["time_ms"].to_list() == [0, 50, 80] and held["time_ms"].to_list() == [81, 100]


# ----- history features and funnel moments against a row-by-row count ----------------------------------------


def _random_log(seed: int, with_requests: bool) -> pl.DataFrame:
    """Few users, authors and times, so that pairs repeat and requests share times."""
    rng = np.random.default_rng(seed)
    n_requests, slate = 60, 3
    request_time = rng.integers(0, 25, size=n_requests) * 1000
    rows = {
        "user_id": np.repeat(rng.integers(0, 4, size=n_requests), slate),
        "video_id": rng.integers(0, 50, size=n_requests * slate),
        "author_id": rng.integers(0, 3, size=n_requests * slate),
        # rows of one request a few ms apart: the request's time (its first row) is what counts
        "time_ms": np.repeat(request_time, slate) + np.tile([0, 3, 7], n_requests),
        "is_click": (rng.random(n_requests * slate) < 0.5).astype(np.int8),
        "is_follow": (rng.random(n_requests * slate) < 0.2).astype(np.int8),
    }
    if with_requests:
        rows["request_id"] = np.repeat(np.arange(n_requests), slate)
    return pl.DataFrame(rows).sample(fraction=1.0, shuffle=True, seed=seed)  # any row order


def _oracle(frame: pl.DataFrame) -> tuple[list[int], list[int]]:
    """Earlier clicks and follows of the same user on the same author, one row at a time."""
    rows = frame.to_dicts()
    if "request_id" in frame.columns:
        start: dict[int, int] = {}
        for r in rows:
            start[r["request_id"]] = min(start.get(r["request_id"], r["time_ms"]), r["time_ms"])
        when = [start[r["request_id"]] for r in rows]
    else:
        when = [r["time_ms"] for r in rows]
    clicks, follows = [], []
    for i, row in enumerate(rows):
        earlier = [j for j, other in enumerate(rows) if other["user_id"] == row["user_id"]
                   and other["author_id"] == row["author_id"] and when[j] < when[i]]
        clicks.append(sum(rows[j]["is_click"] for j in earlier))
        follows.append(int(any(rows[j]["is_follow"] for j in earlier)))
    return clicks, follows


def _bucket(count: int) -> str:
    return "0" if count == 0 else "1" if count == 1 else "2-3" if count <= 3 else "4+"


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("with_requests", [True, False])
def test_history_and_funnel_match_a_row_by_row_count(seed: int, with_requests: bool) -> None:
    frame = _random_log(seed, with_requests)
    clicks, follows = _oracle(frame)
    history = logs.add_history_features(frame)
    assert history.drop("prior_author_clicks", "prior_author_follow").equals(frame)  # same rows, same order
    assert history["prior_author_clicks"].to_list() == clicks
    assert history["prior_author_follow"].to_list() == follows
    assert history.schema["prior_author_clicks"] == pl.Int64 and history.schema["prior_author_follow"] == pl.Int8

    rows = frame.to_dicts()
    expected = []
    for bucket in [*logs.BUCKETS, "all"]:
        inside = [r for r, c in zip(rows, clicks, strict=True) if bucket in ("all", _bucket(c))]
        n, k, f = len(inside), sum(r["is_click"] for r in inside), sum(r["is_follow"] for r in inside)
        expected.append((bucket, n, k, k / n if n else None, f, f / k if k else None))
    got = logs.funnel_moments(frame)
    assert got.columns == ["bucket", "impressions", "clicks", "ctr", "follows", "follow_per_click"]
    _assert_close(got.rows(), expected)
    assert sum(c >= 2 for c in clicks) > 0  # the log reaches the upper buckets


def _assert_close(got: list[tuple], expected: list[tuple]) -> None:
    """Counts equal, ratios equal to rounding (None where the denominator is 0)."""
    assert [(g[0], g[1], g[2], g[4]) for g in got] == [(e[0], e[1], e[2], e[4]) for e in expected]
    for g, e in zip(got, expected, strict=True):
        for a, b in ((g[3], e[3]), (g[5], e[5])):
            assert (a is None and b is None) or a == pytest.approx(b)


def test_same_request_and_same_time_clicks_do_not_count() -> None:
    frame = pl.DataFrame({
        "user_id": [0, 0, 0, 0, 0], "author_id": [1, 1, 1, 1, 1], "request_id": [0, 0, 1, 2, 3],
        "time_ms": [10, 11, 10, 20, 30], "is_click": [1, 1, 1, 0, 0], "is_follow": [0, 1, 0, 0, 0],
    })
    history = logs.add_history_features(frame)
    assert history["prior_author_clicks"].to_list() == [0, 0, 0, 3, 3]
    assert history["prior_author_follow"].to_list() == [0, 0, 0, 1, 1]


def test_synthetic_log_is_valid_and_its_ctr_rises_with_prior_clicks(tmp_path: Path) -> None:
    frame = logs.synthetic_log(n_users=200, n_items=60, n_authors=6, requests_per_user=15, slate_size=5, seed=7)
    assert frame.height == 200 * 15 * 5
    assert frame.schema == pl.Schema(logs.DTYPES)
    assert_frame_equal(logs.synthetic_log(n_users=200, n_items=60, n_authors=6, requests_per_user=15,
                                          slate_size=5, seed=7), frame)
    path = tmp_path / "synthetic.parquet"
    logs.write_log(frame, path)  # passes every check
    slates = frame.group_by("request_id").agg(pl.col("video_id").n_unique(), pl.len())
    assert (slates["video_id"] == slates["len"]).all()
    moments = logs.funnel_moments(frame)
    ctr = dict(zip(moments["bucket"], moments["ctr"], strict=True))
    assert ctr["0"] < ctr["1"] < ctr["2-3"] < ctr["4+"]
    assert ctr["0"] == pytest.approx(logs.SYNTHETIC_CLICK_RATE[0], abs=0.015)
    assert ctr["1"] == pytest.approx(logs.SYNTHETIC_CLICK_RATE[1], abs=0.04)
