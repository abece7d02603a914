"""The fleet's dashboard tabs: the network with the day's flows, utilisation and spill, charging pads,
disruptions. Each simulates one day of the compared policies (``day.py``), kept in the comparison's
cache."""

from __future__ import annotations

from typing import Any, cast

import polars as pl

from decisionlab.core import legend_below, palette, short_label
from decisionlab.domains.fleet.day import Day, charging, disruptions, flows, hourly, simulate_day
from decisionlab.domains.fleet.network import layout
from decisionlab.domains.fleet.scenario import FleetScenario

RUN_FIRST = "Press **Run** to simulate a day of the compared policies."


def _day(ctx: Any) -> Day | None:
    if ctx.result is None:
        return None
    key = "fleet:day"
    if key not in ctx.result.cache:
        ctx.result.cache[key] = simulate_day(cast(FleetScenario, ctx.result.scenario), ctx.result.policies,
                                             seed=int(ctx.result.request.get("seed", 0)), device=ctx.device)
    return ctx.result.cache[key]


def _policy(ctx: Any, day: Day, name: str) -> str:
    import streamlit as st

    return st.selectbox("Policy", day.labels, key=ctx.key(name), format_func=lambda x: short_label(x, "fleet"))


def network_tab(ctx: Any) -> None:
    """Vertiports on the map (core / suburb) and the flights of one policy between two hours."""
    import plotly.graph_objects as go
    import streamlit as st

    scenario = cast(FleetScenario, ctx.result.scenario if ctx.result is not None else ctx.scenario)
    net = layout(scenario)
    fig = go.Figure()
    day = _day(ctx)
    if day is not None:
        label = _policy(ctx, day, "network_policy")
        start, end = st.slider("Hours", scenario.day_start_h, scenario.day_end_h,
                               (scenario.day_start_h, scenario.day_end_h), step=0.25, key=ctx.key("network_hours"))
        routes = flows(day, label, (start, end))
        most = max(1, int(routes["flights"].max() or 1)) if routes.height else 1
        for row in routes.iter_rows(named=True):
            (x0, y0), (x1, y1) = net.xy_miles[row["origin"]], net.xy_miles[row["destination"]]
            fig.add_trace(go.Scatter(x=[x0, x1], y=[y0, y1], mode="lines", showlegend=False, hoverinfo="text",
                                     text=f"{row['origin']} → {row['destination']}: {row['flights']} flights, "
                                     f"{row['boarded']:.0f} passengers",
                                     line={"width": 1 + 7 * row["flights"] / most, "color": "rgba(99,110,250,0.5)"}))
        st.caption(f"{label}: {int(routes['flights'].sum()) if routes.height else 0} flights between {start:g} h and "
                   f"{end:g} h; line width grows with the flights on the route (both directions drawn).")
    else:
        st.info(RUN_FIRST)
    for core, name in ((True, "urban core"), (False, "suburb")):
        at = net.core == core
        fig.add_trace(go.Scatter(x=net.xy_miles[at, 0], y=net.xy_miles[at, 1], mode="markers+text", name=name,
                                 text=[str(i) for i in range(scenario.n_vertiports) if net.core[i] == core],
                                 textposition="top center", marker={"size": 16 if core else 11}))
    fig.update_layout(title="Vertiports and flights", xaxis_title="miles", yaxis_title="miles",
                      yaxis={"scaleanchor": "x"})
    st.plotly_chart(legend_below(fig, 480), key=ctx.key("network_map"))


def utilisation_tab(ctx: Any) -> None:
    """Flights, passengers flown and passengers who gave up per hour, every compared policy."""
    import plotly.express as px
    import streamlit as st

    day = _day(ctx)
    if day is None:
        st.info(RUN_FIRST)
        return
    frame = hourly(day).with_columns(pl.col("policy").map_elements(lambda x: short_label(x, "fleet"),
                                                                   return_dtype=pl.String)).to_pandas()
    for column, title in (("flights", "Flights per hour"), ("boarded", "Passengers flown per hour"),
                          ("spilled", "Passengers who gave up per hour (spill)")):
        fig = px.line(frame, x="hour", y=column, color="policy", markers=True, title=title,
                      color_discrete_sequence=palette())
        st.plotly_chart(legend_below(fig), key=ctx.key(f"hourly_{column}"))


def charging_tab(ctx: Any) -> None:
    """Charging pads in use per vertiport over the day (one policy)."""
    import plotly.express as px
    import streamlit as st

    day = _day(ctx)
    if day is None:
        st.info(RUN_FIRST)
        return
    label = _policy(ctx, day, "charging_policy")
    scenario = cast(FleetScenario, ctx.result.scenario)
    table = charging(day, label).to_pandas()
    grid = table.pivot(index="vertiport", columns="slot_h", values="pads_in_use")
    fig = px.imshow(grid, aspect="auto", color_continuous_scale="Blues", zmin=0, zmax=max(scenario.charging_pads, 1),
                    labels={"x": "hour of day", "y": "vertiport", "color": "pads in use"},
                    title=f"Charging pads in use ({scenario.charging_pads} per vertiport)")
    st.plotly_chart(fig, key=ctx.key("charging_map"))


def disruption_tab(ctx: Any) -> None:
    """The simulated day's route closures, aircraft downtime and take-off delays."""
    import plotly.express as px
    import streamlit as st

    day = _day(ctx)
    if day is None:
        st.info(RUN_FIRST)
        return
    scenario = cast(FleetScenario, ctx.result.scenario)
    table = disruptions(day, scenario)
    timeline = table.filter(table["kind"] != "take-off delays")
    delays = table.filter(table["kind"] == "take-off delays")
    if delays.height:
        st.caption(f"Take-off delays: {delays['what'][0]}.")
    if not timeline.height:
        st.info("No route closure and no aircraft downtime on this day.")
        return
    frame = timeline.with_columns(length_h=timeline["end_h"] - timeline["start_h"]).to_pandas()
    fig = px.bar(frame, base="start_h", x="length_h", y="what", color="kind", orientation="h",
                 title="Disruptions over the day", labels={"length_h": "hours", "what": ""},
                 color_discrete_sequence=palette())
    fig.update_xaxes(range=[scenario.day_start_h, scenario.day_end_h], title="hour of day")
    st.plotly_chart(legend_below(fig, max(240, 18 * len(frame))), key=ctx.key("disruptions"))
