"""The inventory page on ``real_series``: demand, forecast and orders of one series over the
held-out periods (checked against a direct SeriesSim rollout) and the page itself (AppTest)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from decisionlab.core.dashboard.compare import results_key
from decisionlab.core.spec import get_domain
from decisionlab.domains.inventory import SPEC
from decisionlab.domains.inventory.network import efficiency
from decisionlab.domains.inventory.series import view as series_view
from decisionlab.domains.inventory.series.forecast import estimate_promo_uplift
from decisionlab.domains.inventory.series.policies import SeriesBaseStock, build_just_in_time, build_myopic
from decisionlab.domains.inventory.series.scenario import series_data
from decisionlab.domains.inventory.series.sim import SeriesSim

STATE_KEY = results_key(SPEC)
SMALL = {"synthetic_items": 2, "synthetic_stores": 2, "synthetic_days": 400}  # 4 series, L = 3, W = 56
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def no_efficiency_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(efficiency, "DATA_EFFICIENCY_CSV", tmp_path / "no_data_efficiency.csv")


def _scenario(**overrides: object):
    return get_domain("inventory").scenario("real_series", {**SMALL, **overrides})


def test_forecast_vs_orders_matches_a_direct_rollout() -> None:
    scenario = _scenario()
    data = series_data(scenario)
    policies = [("bs", SeriesBaseStock(torch.full((data.n_series,), 30.0))),
                ("myopic", build_myopic(scenario, CPU))]
    frame = series_view.forecast_vs_orders(scenario, policies, 2)
    held = data.periods - data.split
    assert frame.height == held == scenario.test_periods  # one row per held-out period
    assert frame["period"].to_list() == list(range(data.split, data.periods))
    assert frame["date"][0] == data.dates[data.split] and frame["date"][-1] == data.dates[-1]
    np.testing.assert_allclose(frame["demand"].to_numpy(), data.demand[2, data.split:].numpy())
    assert (frame["forecast_p10"] <= frame["forecast_p50"]).all()
    assert (frame["forecast_p50"] <= frame["forecast_p90"]).all()

    # The same policy replayed by hand from warmup_periods before the split, empty store.
    sim = SeriesSim(scenario, split="all")
    start = data.split - scenario.warmup_periods
    state = sim.start_state(torch.tensor([2]), torch.tensor([start]))
    orders, stock = [], []
    policy = policies[1][1]
    with torch.no_grad():
        for t in range(start, data.periods):
            result = sim.step(state, policy.act(sim.observe(state)), data.demand[2, t : t + 1])
            state = result.state
            if t >= data.split:
                orders.append(float(result.info["order"][0]))
                stock.append(float(result.info["on_hand"][0]))
    np.testing.assert_allclose(frame["order:myopic"].to_numpy(), orders, atol=1e-5)
    np.testing.assert_allclose(frame["on_hand:myopic"].to_numpy(), stock, atol=1e-5)
    position = frame["on_hand:bs"].to_numpy()
    assert np.all(position >= 0) and np.all(frame["order:bs"].to_numpy() >= 0)

    figure = series_view.series_figure(frame)
    names = {trace.name for trace in figure.data}
    assert {"demand", "forecast median", "bs", "myopic"} <= names


def test_forecast_median_is_the_same_weekday_median_of_the_window() -> None:
    scenario = _scenario()
    data = series_data(scenario)
    frame = series_view.forecast_vs_orders(scenario, [], 0)
    assert [c for c in frame.columns if ":" in c] == []  # no policy: demand and forecast only
    uplift = estimate_promo_uplift(data, scenario.season_length)
    seasons = scenario.window_periods // scenario.season_length
    demand, promo = data.demand[0].double().numpy(), data.promo[0].numpy()
    for row in (0, 17, frame.height - 1):
        t = int(frame["period"][row])
        past = np.array([t - scenario.season_length * m for m in range(1, seasons + 1)])
        values = demand[past] / (1 + (uplift - 1) * promo[past]) * (1 + (uplift - 1) * promo[t])
        ordered = np.sort(values)
        middle = (len(ordered) - 1) * 0.5
        expected = ordered[math.floor(middle)] + (middle - math.floor(middle)) * (
            ordered[math.ceil(middle)] - ordered[math.floor(middle)])
        assert frame["forecast_p50"][row] == pytest.approx(expected, rel=1e-5, abs=1e-5)


def test_just_in_time_orders_the_arrival_period_demand() -> None:
    scenario = _scenario()
    data = series_data(scenario)
    frame = series_view.forecast_vs_orders(scenario, [("jit", build_just_in_time(scenario, CPU))], 1)
    lead = scenario.lead_time
    # After the warm-up the oracle holds nothing and orders exactly the demand L periods ahead.
    np.testing.assert_allclose(frame["on_hand:jit"].to_numpy(), 0.0, atol=1e-5)
    ahead = data.demand[1, data.split + lead :].numpy()
    np.testing.assert_allclose(frame["order:jit"].to_numpy()[: ahead.size], ahead, atol=1e-5)
    assert series_view.series_labels(scenario)[1] == " / ".join(str(v) for v in data.keys.row(1))
    with pytest.raises(IndexError):
        series_view.forecast_vs_orders(scenario, [], data.n_series)


def test_series_page_shows_forecast_and_orders(domain_page) -> None:
    at = domain_page("inventory").run()
    at.selectbox(key="inventory_preset").set_value("real_series").run(timeout=60)
    assert not at.exception, at.exception
    assert at.multiselect(key="inventory_policies").value == ["newsvendor_quantile", "myopic", "just_in_time"]
    assert "echelon_stock" not in at.multiselect(key="inventory_policies").options
    assert at.selectbox(key="inventory_shortage").value == "lost_sales"
    assert at.text_input(key="inventory_data_path").value == ""
    for name, value in SMALL.items():
        at.number_input(key=f"inventory_{name}").set_value(value)
    at.run(timeout=60)
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) == 1  # demand and forecast of the first series before any run
    assert len(at.selectbox(key="inventory_series").options) == 4

    at.button(key="inventory_run").click().run(timeout=120)
    assert not at.exception, at.exception
    assert not at.error
    table = at.dataframe[0].value
    assert list(table["policy"]) == ["newsvendor_quantile", "myopic", "just_in_time"]
    assert table["cost_per_period"][2] < table["cost_per_period"][0]  # the oracle is a lower bound
    assert len(at.get("plotly_chart")) == 3  # paired difference, forecast vs orders, decomposition
    assert any("reads the future" in c.value for c in at.caption)

    result = at.session_state[STATE_KEY]
    at.selectbox(key="inventory_series").set_value(3).run(timeout=60)
    assert not at.exception, at.exception
    assert at.session_state[STATE_KEY] is result
    assert set(result.cache["series_frames"]) == {0, 3}
    frame = result.cache["series_frames"][3]
    assert isinstance(frame, pl.DataFrame) and "order:myopic" in frame.columns

    # A date the model cannot read names the field.
    at.text_input(key="inventory_test_start").set_value("not-a-date").run(timeout=60)
    assert not at.exception
    assert "test_start" in at.error[0].value
