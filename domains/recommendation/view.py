"""The recommendation tabs: the funnel day by day, a simulated A/B test of two compared policies, off-policy
estimates of one from the log of another, and the authors' exposure (the figures are built in ``figures.py``).

Each tab simulates the kept comparison's policies on its scenario (a few hundred users, the comparison's seed)
and keeps what it computed in the comparison's cache, so a rerun of the page redraws at once; the off-policy
estimates run on request (a button), the first one fitting the reward model of the scenario (seconds).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import polars as pl
import streamlit as st

from decisionlab.core import Policy, short_label
from decisionlab.domains.recommendation.figures import (
    ab_figure,
    ab_frame,
    exposure_counts,
    funnel_figure,
    funnel_frame,
    lorenz_figure,
    lorenz_frame,
    off_policy_estimates,
    ope_figure,
    ope_frame,
)
from decisionlab.domains.recommendation.metrics import exposure_bins
from decisionlab.domains.recommendation.scenario import RecommendationScenario

if TYPE_CHECKING:
    from decisionlab.core import ViewContext

FUNNEL_USERS = 256
"""Users simulated per policy for the funnel and the exposure (the same users for every policy)."""
AB_USERS = (16, 20_000, 512)
"""Bounds and default of the A/B test's users (split in two halves)."""
OPE_USERS = (50, 2_000, 300)
"""Bounds and default of the users of the off-policy log."""
OPE_TEMPERATURE = (0.05, 10.0, 1.0)
"""Bounds and default of the logging policy's sampling temperature."""
RUN_FIRST = "Press **Run** to compare policies: this tab simulates the compared ones."
T = TypeVar("T")


def _compared(ctx: ViewContext) -> tuple[RecommendationScenario, list[tuple[str, Policy]], int] | None:
    """The kept comparison's scenario, its policies (short labels) and seed; ``None`` (and a hint) before Run."""
    if ctx.result is None:
        st.info(RUN_FIRST)
        return None
    policies = [(short_label(label, ctx.domain.name), policy) for label, policy in ctx.result.policies]
    return cast(RecommendationScenario, ctx.result.scenario), policies, int(ctx.result.request.get("seed", 0))


def _cached(ctx: ViewContext, key: str, compute: Callable[[], T], message: str) -> T:
    cache = cast(Any, ctx.result).cache
    if key not in cache:
        with st.spinner(message):
            cache[key] = compute()
    return cache[key]


def _pick(ctx: ViewContext, title: str, labels: list[str], name: str, index: int) -> str:
    return st.selectbox(title, labels, index=min(index, len(labels) - 1), key=ctx.key(name))


def funnel_tab(ctx: ViewContext) -> None:
    """Clicks, follows and gifts per user per day over the horizon, every compared policy."""
    compared = _compared(ctx)
    if compared is None:
        return
    scenario, policies, seed = compared
    frame = _cached(ctx, "recommendation:funnel", lambda: funnel_frame(scenario, policies, FUNNEL_USERS, seed,
                                                                       ctx.device),
                    f"Simulating {FUNNEL_USERS} users per policy…")
    st.caption(f"{FUNNEL_USERS} users per policy over {scenario.days} days from their first visit (the same users "
               "and random numbers for every policy); rates are per user who started (one who left counts with none).")
    st.plotly_chart(funnel_figure(frame), key=ctx.key("funnel_chart"))


def ab_tab(ctx: ViewContext) -> None:
    """A simulated A/B test of two compared policies on split users."""
    compared = _compared(ctx)
    if compared is None:
        return
    scenario, policies, seed = compared
    built = dict(policies)
    labels = list(built)
    left, right, size = st.columns(3)
    with left:
        label_a = _pick(ctx, "Policy A", labels, "ab_a", 0)
    with right:
        label_b = _pick(ctx, "Policy B", labels, "ab_b", 1)
    low, high, default = AB_USERS
    with size:
        users = int(st.number_input("Users (split between A and B)", low, high, default, step=64,
                                    key=ctx.key("ab_users")))
    frame = _cached(ctx, f"recommendation:ab:{label_a}:{label_b}:{users}",
                    lambda: ab_frame(scenario, built[label_a], built[label_b], users, seed, ctx.device),
                    f"Simulating {users:,} users…")
    st.caption(f"{users // 2:,} users see A and {users // 2:,} others see B for {scenario.days} days; the difference "
               "of the means B − A with its Welch 95% CI (users of the two groups differ: these intervals are "
               "wider than the comparison's paired ones).")
    st.plotly_chart(ab_figure(frame, label_a, label_b), key=ctx.key("ab_chart"))
    st.dataframe(frame.with_columns(pl.col(pl.Float64).round(4)), hide_index=True, key=ctx.key("ab_table"))


def off_policy_tab(ctx: ViewContext) -> None:
    """Estimates of a target policy's value from the log of a logging policy, against the simulator's truth."""
    compared = _compared(ctx)
    if compared is None:
        return
    scenario, policies, seed = compared
    built = {label: policy for label, policy in policies if hasattr(policy, "scores")}  # rankers of scores
    labels = list(built)
    if not labels:
        st.info("None of the compared policies scores its candidates: nothing to log or evaluate.")
        return
    columns = st.columns(4)
    with columns[0]:
        logging = _pick(ctx, "Logging policy", labels, "ope_logging", 0)
    with columns[1]:
        target = _pick(ctx, "Target policy", labels, "ope_target", 1)
    low, high, default = OPE_TEMPERATURE
    with columns[2]:
        temperature = float(st.number_input("Temperature", low, high, default, step=0.05,
                                            key=ctx.key("ope_temperature")))
    low, high, default = OPE_USERS
    with columns[3]:
        users = int(st.number_input("Users logged", low, high, default, step=50, key=ctx.key("ope_users")))
    asked = {"logging": logging, "target": target, "temperature": temperature, "users": users}
    cache = cast(Any, ctx.result).cache
    if st.button("Estimate", key=ctx.key("ope_run")):
        with st.spinner(f"Logging {users:,} users, then estimating…"):
            report = off_policy_estimates(scenario, built[logging], built[target], users, temperature, seed,
                                          ctx.device)
        cache["recommendation:ope"] = (asked, report)
    kept = cache.get("recommendation:ope")
    if kept is None:
        st.info("The logging policy serves Plackett–Luce slates of its scores at the temperature (its propensities "
                "are exact); press **Estimate** to estimate the target's click rate and revenue per request from "
                "that log. The first estimate fits the reward model of this scenario (seconds).")
        return
    shown, report = kept
    if shown != asked:
        st.caption("Computed for other choices than those above: press **Estimate** to update.")
    frame = ope_frame(report)
    title = (f"{shown['target']} from the log of {shown['logging']} (temperature {shown['temperature']:g}, "
             f"{report['rows']:,} requests of {shown['users']:,} users)")
    st.plotly_chart(ope_figure(frame, title), key=ctx.key("ope_chart"))
    st.caption("Per request on the logged contexts; the truth is the simulator's exact expectation under the target. "
               "CIs are cluster-robust over users; read the effective sample size (Kish) next to them: an interval "
               "resting on a few rows under-covers (grey: fewer than 10; 0 rows: the estimate is meaningless).")
    st.dataframe(frame.with_columns(pl.col(pl.Float64).round(4)), hide_index=True, key=ctx.key("ope_table"))


def exposure_tab(ctx: ViewContext) -> None:
    """The Lorenz curve of impressions over authors per compared policy, its Gini in the legend."""
    compared = _compared(ctx)
    if compared is None:
        return
    scenario, policies, seed = compared
    counts = _cached(ctx, "recommendation:exposure", lambda: exposure_counts(scenario, policies, FUNNEL_USERS, seed,
                                                                             ctx.device),
                     f"Simulating {FUNNEL_USERS} users per policy…")
    bins = exposure_bins(scenario)
    st.caption(f"Impressions of {FUNNEL_USERS} users' slates over {scenario.days} days, per author"
               + (f" (in {bins:,} bins of author ids)" if bins < scenario.n_authors else "")
               + ". The further a curve sags below the diagonal, the more the slates concentrate on few authors; "
               "the Gini is the comparison's exposure_gini on these users.")
    st.plotly_chart(lorenz_figure(lorenz_frame(counts), bins if bins < scenario.n_authors else None),
                    key=ctx.key("exposure_chart"))
