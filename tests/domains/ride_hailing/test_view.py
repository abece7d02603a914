"""The ride-hailing dashboard: the pure helpers of its tabs against direct simulations, and the
generated page (Streamlit AppTest) with every tab drawn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from decisionlab.core.evaluation import evaluate_policies
from decisionlab.core.seeding import make_generator
from decisionlab.core.spec import get_domain
from decisionlab.core.store.registry import PolicyRegistry
from decisionlab.domains.ride_hailing import CITY
from decisionlab.domains.ride_hailing.day import DAY_KEY, DayRecord, simulate_day
from decisionlab.domains.ride_hailing.income_view import income_figure, income_frame, kpi_figure, kpi_frame
from decisionlab.domains.ride_hailing.metrics import run_episodes
from decisionlab.domains.ride_hailing.policies import VALUE_TIME_BINS, ValuePolicy
from decisionlab.domains.ride_hailing.scenario import CityScenario
from decisionlab.domains.ride_hailing.sim import IDLE, CitySim
from decisionlab.domains.ride_hailing.supply_view import clock_ticks, hour_label, orders_per_hour, supply_frame
from decisionlab.domains.ride_hailing.value_view import (
    load_value,
    registered_values,
    value_by_hour,
    value_frame,
    value_policies,
)
from decisionlab.domains.ride_hailing.view_common import hour_of_day, map_frame
from decisionlab.domains.ride_hailing.window_view import replay_choices, window_figure, window_replay

CPU = torch.device("cpu")
SPEC = get_domain("ride_hailing")
NAMES = ("nearest", "fare_matching", "nearest+reposition")
# 0.2 h from 7:54: crosses into 8:00, so the frames have two hours.
SHORT = SPEC.scenario("city_small", {"start_hour": 7.9, "horizon_hours": 0.2})
# Ten times the demand: dispatch windows with several pending orders.
BUSY = SPEC.scenario("city_small", {"start_hour": 8.0, "horizon_hours": 0.1, "orders_per_day": 30_000})


def _policies(scenario: CityScenario) -> list[tuple[str, object]]:
    return [(name, SPEC.policy(name).build(scenario, CPU)) for name in NAMES]


@pytest.fixture(scope="module")
def short_day() -> DayRecord:
    return simulate_day(SHORT, _policies(SHORT), seed=5)


def _registered_value(scenario: CityScenario, name: str = "value_test") -> tuple[str, ValuePolicy]:
    """A registered ride_value policy whose table varies by cell and hour (V = cell + 100·hour)."""
    policy = ValuePolicy.initial(scenario, CPU)
    cells = scenario.grid_size ** 2
    with torch.no_grad():
        policy.value.table.copy_(torch.arange(cells)[None] + 100.0 * torch.arange(VALUE_TIME_BINS)[:, None])
    card = {"setting": "city", "scenario_name": "city_small", "scenario": scenario.describe(), "algo": "td_online",
            "policy_kind": policy.kind, "policy_config": policy.config(), "metrics": {"total_income": 1.0}}
    return str(PolicyRegistry().save("ride_hailing", name, policy.state_dict(), card).ref), policy


def test_simulate_day_pairs_the_policies_and_counts_the_idle_drivers(short_day: DayRecord) -> None:
    sim = CitySim(SHORT)
    cells, drivers = sim.grid.n_cells, SHORT.n_drivers
    assert short_day.labels == list(NAMES) and short_day.hours == [7, 8]
    assert short_day.idle.height == len(NAMES) * 2 * cells  # one row per policy, hour and cell
    assert short_day.income.height == len(NAMES) * drivers  # one row per policy and driver
    for i, (label, policy) in enumerate(_policies(SHORT)):
        # Row i of the shared day is this policy alone on the same seed.
        idle = np.zeros((24, cells))

        def count(state, info, idle=idle) -> None:  # noqa: ANN001
            free = (state.driver_mode[0] == IDLE).numpy()
            np.add.at(idle[hour_of_day(state.time_s)], state.driver_cell[0].numpy()[free], 1.0)

        alone = run_episodes(sim, policy, 1, make_generator(5), on_step=count)
        mine = short_day.idle.filter(pl.col("policy") == label)
        for hour in (7, 8):
            np.testing.assert_array_equal(mine.filter(pl.col("hour") == hour).sort("cell")["idle_windows"].to_numpy(),
                                          idle[hour])
        # Idle driver-windows at the windows' starts = at the start + the windows' ends − at the end.
        totals, final = short_day.totals, short_day.totals.final_state
        start_idle = int((sim.reset(1, make_generator(5)).driver_mode == IDLE).sum())
        expected = start_idle + float(totals.sums["idle_drivers"][i]) - int((final.driver_mode[i] == IDLE).sum())
        assert float(mine["idle_windows"].sum()) == pytest.approx(expected)
        assert float(totals.sums["income"][i]) == pytest.approx(float(alone.sums["income"][0]))
        incomes = short_day.income.filter(pl.col("policy") == label)
        assert incomes["income"].sum() == pytest.approx(float(alone.sums["income"][0]))
        assert (incomes.filter(~pl.col("worked"))["income"] == 0).all()
    # the same orders for everyone, and the timeline covers the horizon
    assert len(set(short_day.totals.sums["arrived"].tolist())) == 1
    timeline = short_day.timeline.filter(pl.col("policy") == NAMES[0])
    assert timeline.height == 12  # 1-minute bins
    assert timeline["arrived_per_min"].sum() == pytest.approx(float(short_day.totals.sums["arrived"][0]))
    assert (timeline["idle"] <= timeline["online"]).all()


def test_supply_frame_has_one_row_per_cell(short_day: DayRecord) -> None:
    city = CitySim(SHORT).city
    per_hour = orders_per_hour(city)
    assert per_hour.sum() == pytest.approx(SHORT.orders_per_day)
    for hour in short_day.hours:
        frame = supply_frame(city, short_day, NAMES[0], hour)
        assert frame.height == city.grid.n_cells and frame["cell"].to_list() == list(range(city.grid.n_cells))
        assert frame["expected_orders"].sum() == pytest.approx(per_hour[hour])
        idle = short_day.idle.filter((pl.col("policy") == NAMES[0]) & (pl.col("hour") == hour))
        windows = float(idle["windows"][0])
        assert windows > 0 and (frame["mean_idle"] * windows).sum() == pytest.approx(idle["idle_windows"].sum())


def test_income_and_kpi_frames(short_day: DayRecord) -> None:
    incomes = income_frame(short_day)
    assert incomes["policy"].to_list() == list(NAMES)
    worked = short_day.income.filter(pl.col("worked")).group_by("policy", maintain_order=True).len()
    assert incomes["drivers"].to_list() == worked["len"].to_list()
    assert ((incomes["gini"] >= 0) & (incomes["gini"] < 1)).all()
    scenario = SPEC.scenario("city_small", {"start_hour": 7.0, "horizon_hours": 0.05})
    report = evaluate_policies(SPEC, scenario, _policies(scenario), episodes=3, seed=1, device=CPU)
    for metric in CITY.metrics:
        frame = kpi_frame(report, metric)
        assert frame["policy"].to_list() == list(NAMES)
        assert (frame["ci95"] >= 0).all()
    assert len(kpi_figure(report, "answer_rate").data[0].y) == len(NAMES)
    assert len(income_figure(short_day).data) == len(NAMES)


def test_window_replay_assignments_are_valid_pairs() -> None:
    policies = _policies(BUSY)
    day = simulate_day(BUSY, policies, seed=2)
    grid = CitySim(BUSY).grid
    assigned_any = 0
    for window, obs in day.snapshots.items():
        assert obs.order_valid.shape[0] == 1 and window >= 1
        replay = window_replay(obs, policies, grid)
        free = set(np.flatnonzero(obs.driver_free[0].numpy()).tolist())
        pending = set(np.flatnonzero(obs.order_valid[0].numpy()).tolist())
        assert set(replay.drivers["driver"].to_list()) == free and set(replay.orders["slot"].to_list()) == pending
        assert replay.summary["policy"].to_list() == list(NAMES)
        assert (replay.summary["latency_ms"] > 0).all()
        for label in NAMES:
            part = replay.assignments.filter(pl.col("policy") == label)
            drivers, slots = part["driver"].to_list(), part["slot"].to_list()
            assert set(drivers) <= free and set(slots) <= pending
            assert len(set(drivers)) == len(drivers) and len(set(slots)) == len(slots)  # no driver twice
            assert (part["pickup_km"] <= BUSY.max_pickup_km + 1e-6).all()
            row = replay.summary.filter(pl.col("policy") == label).row(0, named=True)
            assert row["assigned"] == part.height and row["total_fare"] == pytest.approx(part["fare"].sum())
            assigned_any += part.height
        assert len(window_figure(replay, grid, list(NAMES)).data) == 3 + len(NAMES)
    assert assigned_any > 0  # the busy city dispatches in the kept windows


def test_kept_windows_record_their_pending_orders(short_day: DayRecord) -> None:
    assert set(short_day.snapshot_orders) == set(short_day.snapshots)
    for window, obs in short_day.snapshots.items():
        assert short_day.snapshot_orders[window] == int(obs.order_valid.sum())


def test_replay_choices_offer_the_busy_windows_and_default_to_the_busiest() -> None:
    assert replay_choices({10: 1, 20: 4, 30: 3, 40: 4, 50: 0}, least=3) == ([20, 30, 40], 20)
    # when no window has that many orders: the busiest ones
    assert replay_choices({10: 1, 20: 2, 30: 2}, least=5) == ([20, 30], 20)
    assert replay_choices({7: 0}) == ([7], 7)
    with pytest.raises(ValueError):
        replay_choices({})


def test_hour_labels_follow_the_simulated_period() -> None:
    assert [hour_label(h, 7.5, 1.0) for h in (7, 8)] == ["07:30–08:00", "08:00–08:30"]
    assert hour_label(9, 7.5, 1.0) == "09:00–10:00"  # outside the period: the plain hour
    assert hour_label(7, 7.25, 0.25) == "07:15–07:30"
    assert hour_label(23, 23.5, 1.0) == "23:30–00:00" and hour_label(0, 23.5, 1.0) == "00:00–00:30"
    assert hour_label(7, 7.5, 48.0) == "07:00–08:00"  # a later day covers the whole hour
    assert hour_label(7, 7.5, 23.75) == "07:30–08:00, 07:00–07:15"  # both ends of one day


def test_clock_ticks_span_the_simulated_period() -> None:
    values, labels = clock_ticks(7.5, 1.0)
    assert values[0] == pytest.approx(7.5) and values[-1] == pytest.approx(8.5)
    assert labels[0] == "07:30" and labels[-1] == "08:30" and len(values) <= 8
    values, labels = clock_ticks(23.0, 2.0)  # across midnight: positions go on, labels wrap
    assert values == sorted(values) and labels[0] == "23:00" and labels[-1] == "01:00"
    values, labels = clock_ticks(7.9, 0.2)
    assert all(7.9 - 1e-9 <= v <= 8.1 + 1e-9 for v in values) and "08:00" in labels


def test_value_frames_of_a_registered_policy(decisionlab_home: Path) -> None:
    scenario = SPEC.scenario("city_small")
    ref, policy = _registered_value(scenario)
    registry = PolicyRegistry()
    assert registered_values(registry, "ride_hailing") == [ref]
    value, grid = load_value(registry, ref, "ride_hailing")  # no scenario: the card's grid
    assert grid.n_cells == scenario.grid_size ** 2 and grid.cell_km == scenario.cell_km
    frame = value_frame(value, grid)
    assert frame.height == 24 * grid.n_cells
    # The frame reads the table at each hour's centre: the bin holding hour h + 0.5.
    at_centres = policy.value.table.detach().numpy()[((np.arange(24) + 0.5) * VALUE_TIME_BINS / 24).astype(int)]
    np.testing.assert_allclose(frame["value"].to_numpy(), at_centres.reshape(-1))
    daily = value_by_hour(frame)
    np.testing.assert_allclose(daily["mean"].to_numpy(), at_centres.mean(1))
    built = policy.for_scenario(scenario)
    assert value_policies([("nearest", SPEC.policy("nearest").build(scenario, CPU)), ("v", built)]) == [
        ("v", built)]


def test_map_frame_has_one_scale_on_both_axes() -> None:
    grid = CitySim(SHORT).grid
    frame = map_frame(grid)
    per_km_x = (frame.width - frame.margin["l"] - frame.margin["r"]) / (frame.x_range[1] - frame.x_range[0])
    per_km_y = (frame.height - frame.margin["t"] - frame.margin["b"]) / (frame.y_range[1] - frame.y_range[0])
    assert per_km_x == pytest.approx(per_km_y, rel=0.02)
    # a pointy-top hexagon of size s is s·√3/2 px wide: one cell's width
    assert frame.hexagon_px * np.sqrt(3) / 2 == pytest.approx(grid.cell_km * per_km_x, rel=0.03)


def test_every_tab_resolves_and_the_page_module_still_serves_it() -> None:
    """Each ViewSpec names its tab's own module; ``view:<tab>`` (the former paths) gives the same function,
    and ``view`` still re-exports every helper it exports."""
    from decisionlab.core.dashboard.compare import view_function
    from decisionlab.core.spec import ViewSpec
    from decisionlab.domains.ride_hailing import view

    for spec in CITY.views:
        tab = view_function(spec)
        assert callable(tab) and spec.render.split(":")[0] != view.__name__
        assert view_function(ViewSpec(spec.title, f"{view.__name__}:{tab.__name__}")) is tab
    assert all(hasattr(view, name) for name in view.__all__)


def test_page_runs_and_every_tab_draws(decisionlab_home: Path, domain_page) -> None:
    ref, _ = _registered_value(SPEC.scenario("city_small"))
    at = domain_page("ride_hailing").run()
    assert not at.exception, at.exception
    # before Run: the views say so (the registered value map draws without a comparison)
    assert any("Run" in info.value for info in at.info)
    for field, value in {**CITY.quick, **CITY.smoke}.items():
        at.number_input(key=f"ride_hailing_{field}").set_value(value)
    at.number_input(key="ride_hailing_episodes").set_value(2)
    at.multiselect(key="ride_hailing_policies").set_value([*NAMES, ref])
    at.button(key="ride_hailing_run").click().run(timeout=120)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert list(at.dataframe[0].value["policy"]) == [*NAMES, ref]
    keys = {chart.key for chart in at.get("plotly_chart")}
    assert keys == {f"ride_hailing_{k}" for k in ("difference_chart", "value_map", "value_day", "demand_map",
                                                  "idle_map", "supply_timeline", "income_distribution", "kpi_chart",
                                                  "window_map")}
    window = next(frame.value for frame in at.dataframe if "latency_ms" in frame.value.columns)
    assert list(window["policy"]) == [*NAMES, ref] and (window["latency_ms"] > 0).all()
    # the widgets of the tabs rerun from the cache
    at.select_slider(key="ride_hailing_value_hour").set_value(18).run()
    at.selectbox(key="ride_hailing_income_metric").set_value("answer_rate").run()
    day = at.session_state["ride_hailing_results"].cache[DAY_KEY]  # computed once, kept with the result
    windows, busiest = replay_choices(day.snapshot_orders)
    assert any("the busiest window of the simulated period" in c.value for c in at.caption)  # the default
    if len(windows) > 1:  # a slider only when several windows are worth replaying
        assert at.select_slider(key="ride_hailing_window_time").value == busiest
        at.select_slider(key="ride_hailing_window_time").set_value(max(windows)).run()
    at.multiselect(key="ride_hailing_window_policies").set_value([NAMES[-1]]).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    # a new comparison (other policies, two hours, other windows): the kept choices it lacks are dropped
    at.number_input(key="ride_hailing_start_hour").set_value(7.9)
    at.number_input(key="ride_hailing_horizon_hours").set_value(0.12)
    at.multiselect(key="ride_hailing_policies").set_value(["fare_matching", "nearest"])
    at.button(key="ride_hailing_run").click().run(timeout=120)
    at.select_slider(key="ride_hailing_supply_hour").set_value(8).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.multiselect(key="ride_hailing_window_policies").value == ["fare_matching", "nearest"]
