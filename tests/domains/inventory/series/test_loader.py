"""Loading a user's sales file: the happy paths and every error message."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
import torch

from decisionlab.core.errors import DecisionlabError
from decisionlab.domains.inventory.series.loader import SalesFileError, load_sales, to_demand_tensor
from decisionlab.domains.inventory.series.scenario import RealSeriesScenario, series_data


def _write(tmp_path: Path, text: str, name: str = "sales.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = """Item,store,Date,sales,promo
A,1,2024-01-01,3,0
A,1,2024-01-02,4,yes
A,1,2024-01-04,2,
B,1,2024-01-01,0,false
B,1,2024-01-02,1.5,1
B,1,2024-01-03,6,TRUE
B,1,2024-01-04,0,0
"""


def test_csv_with_aliases_and_gaps(tmp_path: Path) -> None:
    frame = load_sales(_write(tmp_path, GOOD))
    assert frame.columns == ["item_id", "store_id", "date", "units", "promo"]
    assert frame.schema["date"] == pl.Date and frame.schema["units"] == pl.Float64
    assert frame.height == 8  # 2 series × 4 days: A's missing 2024-01-03 filled
    gap = frame.filter((pl.col("item_id") == "A") & (pl.col("date") == dt.date(2024, 1, 3)))
    assert gap["units"].item() == 0.0 and gap["promo"].item() is False
    assert frame.filter(pl.col("item_id") == "B")["promo"].to_list() == [False, True, True, False]
    assert frame["store_id"].unique().to_list() == ["1"]  # numbers are read as text ids


def test_to_demand_tensor(tmp_path: Path) -> None:
    demand, promo, dates, keys = to_demand_tensor(load_sales(_write(tmp_path, GOOD)))
    assert demand.shape == (2, 4) and demand.dtype == torch.float32
    assert torch.equal(demand[0], torch.tensor([3.0, 4.0, 0.0, 2.0]))
    assert torch.equal(demand[1], torch.tensor([0.0, 1.5, 6.0, 0.0]))
    assert promo.dtype == torch.bool and promo[1].tolist() == [False, True, True, False]
    assert dates == [dt.date(2024, 1, d) for d in range(1, 5)]
    assert keys.rows() == [("A", "1"), ("B", "1")]


def test_parquet_with_native_types_and_no_promo(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "item_id": [7, 7, 7],
            "store_id": ["x", "x", "x"],
            "date": [dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 8), dt.datetime(2024, 1, 22)],
            "units": [1, 2, 3],
        }
    )
    path = tmp_path / "weekly.parquet"
    frame.write_parquet(path)
    loaded = load_sales(path)
    assert loaded["date"].to_list() == [dt.date(2024, 1, d) for d in (1, 8, 15, 22)]  # weekly grid, gap filled
    assert loaded["units"].to_list() == [1.0, 2.0, 0.0, 3.0]
    assert loaded["promo"].to_list() == [False] * 4
    assert loaded["item_id"].to_list() == ["7"] * 4


ERRORS = [
    ("sales.xlsx", "item_id,store_id,date,units\n", "unsupported extension '.xlsx'"),
    ("sales.csv", "item_id,store,date\nA,1,2024-01-01\n", "missing column(s) 'units'"),
    ("sales.csv", "item_id,store_id,date,units\n", "no rows"),
    ("sales.csv", "item_id,store_id,date,units\nA,1,2024-01-01,1\nA,1,2024-13-02,2\n",
     "column 'date', row 3: cannot read '2024-13-02' as a date"),
    ("sales.csv", "item_id,store_id,date,units\nA,1,2024-01-01,1\nA,1,2024-01-02,many\n",
     "column 'units', row 3: 'many' is not a number"),
    ("sales.csv", "item_id,store_id,date,units\nA,1,2024-01-01,1\nA,1,2024-01-02,-3\n",
     "column 'units', row 3: negative value -3"),
    ("sales.csv", "item_id,store_id,date,units\nA,1,2024-01-01,1\n,1,2024-01-02,3\n",
     "column 'item_id', row 3: empty value"),
    ("sales.csv", "item_id,store_id,date,units\nA,1,2024-01-01,1\nA,1,2024-01-02,2\nA,1,2024-01-01,5\n",
     "duplicate rows for item 'A', store '1', date 2024-01-01 (rows 2 and 4)"),
    ("sales.csv", "item_id,store_id,date,units,promo\nA,1,2024-01-01,1,0\nA,1,2024-01-02,2,maybe\n",
     "column 'promo', row 3: 'maybe' is not a promotion flag"),
    ("sales.csv", "item_id,store_id,date,units\nA,1,2024-01-01,1\nA,1,2024-01-08,2\nA,1,2024-01-18,2\n",
     "date 2024-01-18 is not on the 7-day period grid"),
    ("sales.csv", "item,sku,store_id,date,units\nA,A,1,2024-01-01,1\n", "all look like the 'item_id' column"),
    ("sales.csv", "item_id;store_id;date;units\nA;1;2024-01-01;1\n", "separated by something other than commas"),
]


@pytest.mark.parametrize(("name", "text", "message"), ERRORS)
def test_clear_errors(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(SalesFileError) as err:
        load_sales(_write(tmp_path, text, name))
    assert message in str(err.value)
    assert isinstance(err.value, DecisionlabError)


def test_missing_file_and_gaps_without_filling(tmp_path: Path) -> None:
    with pytest.raises(SalesFileError, match="sales file not found"):
        load_sales(tmp_path / "nope.csv")
    path = _write(tmp_path, GOOD)
    with pytest.raises(SalesFileError, match=r"no row for item 'A', store '1', date 2024-01-03 \(1 missing"):
        load_sales(path, fill_gaps=False)


def test_scenario_reads_a_user_file(tmp_path: Path) -> None:
    days = 200
    frame = pl.DataFrame(
        {
            "item_id": ["A"] * days + ["B"] * days,
            "store_id": ["s"] * (2 * days),
            "date": [dt.date(2024, 1, 1) + dt.timedelta(days=k) for k in range(days)] * 2,
            "units": [float(k % 7) for k in range(days)] * 2,
        }
    )
    path = tmp_path / "mine.parquet"
    frame.write_parquet(path)
    scenario = RealSeriesScenario(data_path=str(path), window_periods=28, test_periods=28, dev_periods=28)
    data = series_data(scenario)
    assert data.n_series == 2 and data.periods == days and data.split == days - 28
    assert data.phase0 == 0  # 2024-01-01 is a Monday
    short = RealSeriesScenario(data_path=str(path), window_periods=56, test_periods=100, dev_periods=91)
    with pytest.raises(DecisionlabError, match="training span has 100 periods but needs at least"):
        series_data(short)
