"""The recommendation dashboard: the figure builders on a tiny scenario against ``episode_metrics`` (the funnel's
days add up to the episode totals, the A/B test is that of ``ope.off_policy_log``, the Lorenz curve's Gini is the
comparison's ``exposure_gini``), and the generated page (Streamlit AppTest) with every tab drawn before and after
Run, the off-policy estimates on request."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from decisionlab.core import Sum, derive_seed, make_generator, run
from decisionlab.domains.recommendation.figures import (
    ESTIMATORS,
    FUNNEL,
    ab_figure,
    ab_frame,
    exposure_counts,
    funnel_figure,
    funnel_frame,
    lorenz_curve,
    lorenz_figure,
    lorenz_frame,
    ope_figure,
    ope_frame,
)
from decisionlab.domains.recommendation.metrics import episode_metrics, finalize_metrics, gini_influence
from decisionlab.domains.recommendation.ope import AB_METRICS
from decisionlab.domains.recommendation.policies import popularity, random_policy
from decisionlab.domains.recommendation.scenario import PRESETS
from decisionlab.domains.recommendation.sim import RecommendationSim

TINY_UPDATE = {"days": 2, "n_candidates": 12, "slate_size": 3}
TINY = PRESETS["small"].model_copy(update=TINY_UPDATE)
CPU = torch.device("cpu")
USERS = 48


@pytest.fixture(scope="module")
def baselines() -> list[tuple[str, object]]:
    return [("random", random_policy(TINY, CPU)), ("popularity", popularity(TINY, CPU))]


def test_funnel_days_add_up_to_the_episode_totals(baselines) -> None:
    frame = funnel_frame(TINY, baselines, USERS, 5, CPU)
    assert frame.columns == ["policy", "day", *FUNNEL]
    assert frame["day"].to_list() == [1, 2, 1, 2] and frame["policy"].to_list() == ["random"] * 2 + ["popularity"] * 2
    totals = frame.group_by("policy", maintain_order=True).agg(pl.col(*FUNNEL).sum())
    for (label, policy), row in zip(baselines, totals.iter_rows(named=True), strict=True):
        # the same users and random numbers as episode_metrics with this seed
        values = episode_metrics(TINY, policy, USERS, 5, CPU)
        assert row["follows"] == pytest.approx(values["follows_per_user_day"].mean() * TINY.days)
        assert row["gifts"] == pytest.approx(values["gifts_per_user_day"].mean() * TINY.days)
        clicks = run(RecommendationSim(TINY, CPU), policy, batch=USERS, generator=make_generator(5, CPU),
                     reducers={"clicks": Sum("clicks")}).totals["clicks"]
        assert row["clicks"] == pytest.approx(float(clicks.sum()) / USERS)
        assert row["clicks"] > 0, label
    figure = funnel_figure(frame)
    assert len(figure.data) == len(FUNNEL) * len(baselines)
    assert [t.name for t in figure.data if t.showlegend] == ["random", "popularity"]


def test_ab_test_is_that_of_the_off_policy_report(baselines) -> None:
    (_, a), (_, b) = baselines
    frame = ab_frame(TINY, a, b, USERS, 3, CPU)
    assert frame["metric"].to_list() == list(AB_METRICS)
    assert frame["n_a"].to_list() == [USERS // 2] * 3 and frame["n_b"].to_list() == [USERS // 2] * 3
    values_a = episode_metrics(TINY, a, USERS // 2, derive_seed(3, "ab-a"), CPU)
    ctr = frame.row(0, named=True)
    assert ctr["mean_a"] == pytest.approx(values_a["ctr"].mean())
    assert ctr["difference"] == pytest.approx(ctr["mean_b"] - ctr["mean_a"])
    assert ctr["ci95"] > 0
    figure = ab_figure(frame, "random", "popularity")
    assert [t.type for t in figure.data] == ["bar"] * 3 and "popularity − random" in figure.layout.title.text


def test_lorenz_curve_of_exposure_and_its_gini(baselines) -> None:
    authors, share = lorenz_curve(np.full(4, 2.0))
    np.testing.assert_allclose(share, authors)  # equal exposure: the diagonal
    np.testing.assert_allclose(lorenz_curve(np.array([0.0, 3.0, 0.0, 1.0]))[1], [0, 0, 0, 0.25, 1])
    counts = exposure_counts(TINY, baselines, USERS, 2, CPU)
    frame = lorenz_frame(counts)
    for label, per_user in counts.items():
        assert per_user.shape == (USERS, TINY.n_authors)
        rows = frame.filter(pl.col("policy") == label)
        x, y = rows["authors"].to_numpy(), rows["impressions"].to_numpy()
        assert (x[0], y[0]) == (0.0, 0.0) and (x[-1], y[-1]) == pytest.approx((1.0, 1.0))
        assert np.all(np.diff(y) >= 0) and np.all(y <= x + 1e-12)  # below the diagonal
        gini = rows["gini"][0]
        assert gini == pytest.approx(gini_influence(per_user).mean())
        assert gini == pytest.approx(1.0 - np.sum(np.diff(x) * (y[1:] + y[:-1])))  # 1 − 2 × the area below
        assert gini == pytest.approx(finalize_metrics(TINY, {"exposure": per_user})["exposure_gini"].mean())
    figure = lorenz_figure(frame)
    assert [t.name.split(" (Gini")[0] for t in figure.data[1:]] == ["random", "popularity"]


def test_off_policy_frame_reads_every_estimator_and_keeps_missing_intervals() -> None:
    report = {"truth": {"ctr": 0.2, "revenue": 0.01}, "rows": 10,
              "estimates": {"ips": {"ctr": {"estimate": 0.25, "ci95": 0.1}, "revenue": {"estimate": 0.0, "ci95": 0.0}},
                            "snips": {"ctr": {"estimate": None, "ci95": None},
                                      "revenue": {"estimate": 0.02, "ci95": 0.05}}},
              "effective_n": {"ips": {"ctr": 30.0, "revenue": 30.0}, "snips": {"ctr": None, "revenue": 3.0}}}
    frame = ope_frame(report)
    assert frame["estimator"].to_list() == [ESTIMATORS["ips"]] * 2 + [ESTIMATORS["snips"]] * 2
    assert frame["covers"].to_list() == [True, False, False, True]
    assert math.isnan(frame["estimate"][2]) and math.isnan(frame["effective_n"][2])
    figure = ope_figure(frame)
    assert [t.name for t in figure.data if t.showlegend] == ["estimate", "truth (the simulator's)"]
    assert len(figure.data) == 4  # estimates and truth, per metric
    ctr = figure.data[0].marker.color
    assert ctr[0] != "#aaa" and ctr[1] == "#aaa"  # few effective rows (none: NaN): grey


def test_page_draws_every_tab_before_and_after_run(decisionlab_home: Path, domain_page) -> None:
    at = domain_page("recommendation").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert not at.get("plotly_chart")  # every tab asks for a Run first
    at.selectbox(key="recommendation_preset").set_value("small").run()
    # one day: the off-policy estimate fits ctr_greedy's click model to a day of random exposure (seconds)
    for name, value in {**TINY_UPDATE, "days": 1, "episodes": 8}.items():
        at.number_input(key=f"recommendation_{name}").set_value(value)
    at.multiselect(key="recommendation_policies").set_value(["random", "popularity"])
    at.button(key="recommendation_run").click().run(timeout=120)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    charts = {chart.key for chart in at.get("plotly_chart")}
    assert charts == {f"recommendation_{k}" for k in ("difference_chart", "funnel_chart", "ab_chart",
                                                      "exposure_chart")}
    at.number_input(key="recommendation_ope_users").set_value(50)
    at.button(key="recommendation_ope_run").click().run(timeout=120)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert "recommendation_ope_chart" in {chart.key for chart in at.get("plotly_chart")}
    table = next(frame.value for frame in at.dataframe if "effective_n" in frame.value.columns)
    assert set(table["estimator"]) == set(ESTIMATORS.values()) and set(table["metric"]) == {"ctr", "revenue"}
    assert table["truth"].notna().all() and (table["effective_n"].fillna(0) >= 0).all()
    # a deterministic target's slate is rarely logged whole (IPS may rest on no row); its slots often are
    assert (table.loc[table["estimator"] == ESTIMATORS["pi"], "effective_n"] > 0).all()
