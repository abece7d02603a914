"""The Gather-Trade-Build tab: what each schedule does period by period, and where Saez's rates come from.

The sidebar's scenario is simulated for a few economies (the same maps and draws for every policy) under
the quick baselines, the estimated and searched ones once asked for (or kept from a comparison of this
scenario), and each learned pair of the kept comparison of this scenario; the traces are cached per
scenario and policy. Figures: equality × productivity at each period's end, the tax collected
and the houses built per period, and the rates the planner set; a table of the Saez estimate's
ingredients (e, a(z), G(z)) beside its rates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go
import polars as pl
import streamlit as st
import torch

from decisionlab.core import Policy, make_generator
from decisionlab.domains.taxation.gtb import GatherTradeBuildSim
from decisionlab.domains.taxation.gtb_saez import saez_estimate
from decisionlab.domains.taxation.scenario import GatherTradeBuildScenario

if TYPE_CHECKING:
    from decisionlab.core import ViewContext

ECONOMIES = 8
CPU = torch.device("cpu")


def period_trace(scenario: GatherTradeBuildScenario, policy: Policy, economies: int = ECONOMIES, seed: int = 0
                 ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(periods, rates)``: one row per tax period with the mean over ``economies`` of equality ×
    productivity at its end, the tax collected, the houses built and the labour in it; one row per (period,
    bracket) with the mean rate in force."""
    sim = GatherTradeBuildSim(scenario, CPU)
    generator = make_generator(seed, CPU)
    state = sim.reset(economies, generator)
    paths = sim.sample_exogenous(economies, sim.horizon, generator)
    names = ("tax_collected", "houses_built", "labour")
    periods: list[dict[str, float]] = []
    rates: list[dict[str, Any]] = []
    sums = dict.fromkeys(names, 0.0)
    with torch.no_grad():
        for t in range(sim.horizon):
            result = sim.step(state, policy.act(sim.observe(state)), paths[:, t])
            state = result.state
            period = t // scenario.tax_period_steps + 1
            if t % scenario.tax_period_steps == 0:
                rates += [{"period": period, "bracket": f"from {cut:g}", "rate": rate}
                          for cut, rate in zip(scenario.bracket_cutoffs, state.rates.mean(0).tolist(), strict=True)]
            for name in names:
                sums[name] += float(result.info[name].mean())
            if (t + 1) % scenario.tax_period_steps == 0:
                periods.append({"period": period, "equality_times_productivity": float(state.welfare.mean()), **sums})
                sums = dict.fromkeys(names, 0.0)
    return pl.DataFrame(periods), pl.DataFrame(rates)


@st.cache_data(max_entries=32, show_spinner="Simulating the tax periods…")
def _traces(scenario_json: str, name: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    from decisionlab.domains.taxation import SPEC

    scenario = GatherTradeBuildScenario.model_validate_json(scenario_json)
    return period_trace(scenario, SPEC.policy(name).build(scenario, CPU))


def _learned(ctx: ViewContext) -> dict[str, Any]:
    result = ctx.result
    if result is None or result.scenario.model_dump_json() != ctx.scenario.model_dump_json():
        return {}
    return {label: policy for label, policy in result.policies if label not in ctx.setting.policies}


def _lines(frames: dict[str, pl.DataFrame], column: str, title: str) -> go.Figure:
    figure = go.Figure()
    for label, frame in frames.items():
        figure.add_trace(go.Scatter(x=frame["period"].to_list(), y=frame[column].to_list(), mode="lines+markers",
                                    name=label))
    figure.update_layout(title=title, xaxis_title="tax period", height=320, margin={"t": 40, "b": 40})
    return figure


def periods_tab(ctx: ViewContext) -> None:
    """Each schedule's economy period by period, and the Saez estimate."""
    scenario: GatherTradeBuildScenario = ctx.scenario  # type: ignore[assignment]
    key = scenario.model_dump_json()
    traces, rates = {}, {}
    available = ctx.setting.available_policies(scenario)
    # the estimated and searched baselines take seconds to minutes to build: drawn once asked for (or once
    # the kept comparison of this scenario has them)
    asked = ctx.key("gtb_expensive_scenario")
    kept = {label for label, _ in ctx.result.policies} if ctx.result is not None and \
        ctx.result.scenario.model_dump_json() == key else set()
    expensive = [name for name in available if ctx.setting.policies[name].expensive]
    wanted = [name for name in available if name not in expensive or name in kept
              or st.session_state.get(asked) == key]
    if any(name not in wanted for name in expensive):
        st.button(f"Also simulate {', '.join(name for name in expensive if name not in wanted)} (their estimate or "
                  "search takes up to minutes)", key=ctx.key("gtb_expensive"), on_click=st.session_state.__setitem__,
                  args=(asked, key))
    for name in wanted:
        traces[name], rates[name] = _traces(key, name)
    for label, policy in _learned(ctx).items():
        traces[label], rates[label] = period_trace(scenario, policy)
    st.caption(f"{ECONOMIES} economies, the same maps, skills and draws for every policy. Equality × productivity "
               "of the workers' coin after each period's tax and rebate.")
    left, right = st.columns(2)
    with left:
        st.plotly_chart(_lines(traces, "equality_times_productivity", "Equality × productivity"),
                        key=ctx.key("gtb_objective"))
        st.plotly_chart(_lines(traces, "houses_built", "Houses built per period"), key=ctx.key("gtb_houses"))
    with right:
        st.plotly_chart(_lines(traces, "tax_collected", "Tax collected per period"), key=ctx.key("gtb_tax"))
        st.plotly_chart(_lines(traces, "labour", "Labour per period"), key=ctx.key("gtb_labour"))
    chosen = st.selectbox("Rates of", list(rates), key=ctx.key("gtb_rates_of"))
    frame = rates[chosen]
    figure = go.Figure()
    for bracket in frame["bracket"].unique(maintain_order=True).to_list():
        part = frame.filter(pl.col("bracket") == bracket)
        figure.add_trace(go.Scatter(x=part["period"].to_list(), y=part["rate"].to_list(), mode="lines+markers",
                                    name=bracket))
    figure.update_layout(title=f"Marginal rates set each period: {chosen}", xaxis_title="tax period",
                         yaxis_range=[0, 1], height=320, margin={"t": 40, "b": 40})
    st.plotly_chart(figure, key=ctx.key("gtb_rates"))
    if "saez" in traces:
        estimate = saez_estimate(scenario)
        st.caption(f"Saez's rates, estimated from the scripted workers' incomes: elasticity e = "
                   f"{estimate.elasticity:.3f} (the slope of the log of total income on log(1 − τ) over "
                   f"{estimate.schedules} flat schedules against no tax, on the same economies), the tail a(z) and "
                   f"the welfare share G(z) from {estimate.incomes:,} no-tax incomes per worker and period.")
        st.dataframe(pl.DataFrame({"cut-off": list(scenario.bracket_cutoffs), "a(z)": list(estimate.pareto_local),
                                   "G(z)": list(estimate.welfare_share), "rate": list(estimate.rates)})
                     .with_columns(pl.col(pl.Float64).round(3)), hide_index=True, key=ctx.key("gtb_saez"))
