"""The inventory page of the Streamlit dashboard: every inventory setting (single store, networks,
``real_series``), policies compared on common random numbers.

Layout and session state only; the numbers come from pure modules that are tested without
Streamlit: :mod:`.dashboard_compare` (which policies serve a setting, the evaluation through
``core.evaluation``, the results table and cost figures), and one module per view with its frames
and figures: :mod:`.dashboard_single` (lost_sales: paths, order curve), :mod:`.dashboard_network`
(the network as a graph, stock per node), :mod:`.dashboard_series` (real_series: demand, forecast
and orders), :mod:`.dashboard_efficiency` (HDPO data efficiency, read from a results file).

:func:`render` draws the page: the preset and its parameters in the sidebar (inputs generated from
the scenario's pydantic fields by :mod:`decisionlab.core.ui`), a policy picker and a Run button,
then tabs: the comparison, the view of the setting, data efficiency. Results are kept in
``st.session_state`` so widget reruns do not recompute them.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from decisionlab.core import ui
from decisionlab.core.errors import DecisionlabError
from decisionlab.core.scenario import Scenario
from decisionlab.core.spec import DomainSpec
from decisionlab.domains.inventory import dashboard_network as network_view
from decisionlab.domains.inventory import dashboard_single as single_view
from decisionlab.domains.inventory.dashboard_compare import (
    DEFAULT_EPISODES,
    DEFAULT_POLICIES,
    DOMAIN,
    ComparisonResult,
    cost_figure,
    decomposition_figure,
    default_policies,
    domain_spec,
    policy_choices,
    run_comparison,
    slow_policies,
)
from decisionlab.domains.inventory.network.scenario import NetworkScenario
from decisionlab.domains.inventory.scenario import LostSalesScenario
from decisionlab.domains.inventory.series.scenario import RealSeriesScenario

__all__ = ["DEFAULT_POLICIES", "STATE_KEY", "render"]

DEFAULT_HORIZON = 1000  # short episodes keep the page responsive (the presets' 5000 are for reports)
DEFAULT_WARMUP = 200
SERIES_EPISODES = 256  # real_series: series scored (the first N in data order)
STATE_KEY = "inventory_results"
EVALUATION_FIELDS = ("horizon_periods", "warmup_periods")  # edited under "Evaluation" with the page's defaults
LIMITS: dict[type[Scenario], dict[str, tuple[float, float]]] = {
    LostSalesScenario: {"lead_time": (0, 8)},  # the exact DP and the myopic policy stay quick up to here
}


# --------------------------------------------------------------------------------------------
# Streamlit page
# --------------------------------------------------------------------------------------------


def _key(name: str) -> str:
    return ui.widget_key(DOMAIN, name)


def _evaluation_fields(scenario: Scenario) -> list[str]:
    """The episode-length fields edited under "Evaluation" (classes with an evaluation horizon)."""
    return list(EVALUATION_FIELDS) if "horizon_periods" in type(scenario).model_fields else []


def _limits(scenario: Scenario) -> dict[str, tuple[float, float]]:
    return next((v for cls, v in LIMITS.items() if isinstance(scenario, cls)), {})


def _preset_state(spec: DomainSpec, preset: str) -> dict[str, Any]:
    """Widget values of a preset: its scenario fields, the page's evaluation defaults and policies."""
    scenario = spec.scenarios[preset]
    evaluation = _evaluation_fields(scenario)
    fields = [f for f in type(scenario).model_fields if f not in evaluation]
    values = ui.preset_values(scenario, fields, _limits(scenario))
    if evaluation:
        values.update(horizon_periods=DEFAULT_HORIZON, warmup_periods=DEFAULT_WARMUP)
    values["episodes"] = SERIES_EPISODES if isinstance(scenario, RealSeriesScenario) else DEFAULT_EPISODES
    values["policies"] = default_policies(scenario)
    return values


def _load_preset() -> None:
    """``on_change`` of the preset box: copy the preset's parameters (and default policies) into the inputs."""
    import streamlit as st

    ui.set_values(DOMAIN, _preset_state(domain_spec(), st.session_state[_key("preset")]))


def _init_state(spec: DomainSpec) -> None:
    preset = spec.default_scenario or next(iter(spec.scenarios))
    ui.init_state(DOMAIN, {"preset": preset, **_preset_state(spec, preset), "seed": 0})


def _sidebar(spec: DomainSpec) -> tuple[str, dict[str, Any], int, int]:
    """Draw the settings; returns ``(preset, overrides, episodes, seed)``."""
    import streamlit as st

    bar = st.sidebar
    bar.header("Scenario")
    bar.selectbox("Preset", list(spec.scenarios), key=_key("preset"), on_change=_load_preset,
                  help="named scenario; changing it reloads the parameters below and the default policies")
    preset = st.session_state[_key("preset")]
    base = spec.scenarios[preset]
    evaluation = _evaluation_fields(base)
    inputs = ui.field_inputs(type(base), exclude=evaluation)
    limits = _limits(base)
    overrides = ui.draw_inputs(bar, DOMAIN, [i for i in inputs if i.kind != "text"], limits)
    text = [i for i in inputs if i.kind == "text"]
    if text:
        overrides.update(ui.draw_inputs(bar.expander("More parameters (text)"), DOMAIN, text, limits))
    bar.header("Evaluation")
    series = isinstance(base, RealSeriesScenario)
    bar.number_input("Series scored" if series else "Episodes", min_value=1, max_value=4096, step=8,
                     key=_key("episodes"),
                     help="the first N series of the history" if series
                     else "episodes per policy, all policies on the same demand paths")
    overrides.update(ui.draw_inputs(bar, DOMAIN, [i for i in ui.field_inputs(type(base)) if i.name in evaluation]))
    bar.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key=_key("seed"),
                     help="random numbers of the demand paths (real_series replays its history: no effect there)")
    state = st.session_state
    return preset, overrides, int(state[_key("episodes")]), int(state[_key("seed")])


def _format_table(table: pl.DataFrame) -> pl.DataFrame:
    """Rounded copy for display."""
    return table.with_columns(pl.col(pl.Float64, pl.Float32).round(4))


def _describe(result: ComparisonResult) -> str:
    """One line on the scenario and the evaluation behind a result."""
    s, request = result.scenario, result.request
    if isinstance(s, LostSalesScenario):
        what = (f"L={s.lead_time}, h={s.holding_cost:g}, p={s.underage_cost:g}, "
                f"demand {s.demand_distribution}({s.demand_mean:g})")
    elif isinstance(s, NetworkScenario):
        topo = s.topology()
        what = (f"{request['preset']}: {topo.n_nodes} nodes, {topo.n_edges} links, {len(topo.stores)} store(s), "
                f"{'lost sales' if topo.lost_sales else 'backlog'}")
    elif isinstance(s, RealSeriesScenario):
        what = (f"real_series: L={s.lead_time}, h={s.holding_cost:g}, p≈{s.underage_cost:g}, {s.shortage}; "
                f"the first {request['episodes']} series scored on the held-out periods (the history is "
                "replayed: every policy faces the same demand)")
    else:
        what = request["preset"]
    if "horizon_periods" in type(s).model_fields:
        what += (f"; {request['episodes']} episodes × {s.horizon_periods} periods "
                 f"(first {s.warmup_periods} excluded), seed {request['seed']}")
    return what


def _show_comparison(result: ComparisonResult, current_request: dict[str, Any]) -> None:
    import streamlit as st

    if result.request != current_request:
        st.info("The settings changed since these results were computed: press **Run** to update them.")
    spec = domain_spec()
    oracles = [label for label, _ in result.policies if label in spec.policies and not spec.policies[label].admissible]
    st.caption(
        f"{_describe(result)}; computed in {result.seconds:.1f} s. `diff_vs_first` is the paired difference to "
        f"**{result.table['policy'][0]}** on the same demand."
        + (f" {', '.join(oracles)} reads the future: a lower bound, not a policy." if oracles else "")
    )
    st.dataframe(_format_table(result.table), hide_index=True, key=_key("results_table"))
    shortage = "backlog" if getattr(result.scenario, "shortage", "lost_sales") == "backlog" else "lost sales"
    left, right = st.columns(2)
    with left:
        st.plotly_chart(cost_figure(result.table), key=_key("cost_chart"))
    with right:
        st.plotly_chart(decomposition_figure(result.table, shortage), key=_key("decomposition_chart"))


def _show_single(result: ComparisonResult) -> None:
    import streamlit as st

    scenario = result.scenario
    assert isinstance(scenario, LostSalesScenario) and result.trajectories is not None and result.orders is not None
    st.subheader("Inventory over time")
    st.caption(f"All policies on one shared demand path, {single_view.TRAJECTORY_PERIODS} periods after a "
               f"{single_view.TRAJECTORY_WARMUP}-period warm-up from an empty store.")
    st.plotly_chart(single_view.trajectory_figure(result.trajectories), key=_key("trajectory_chart"))
    st.subheader("Order-up-to behaviour")
    st.caption(
        "Order placed as a function of the inventory position, with on hand varied from 0 to 3× mean "
        "demand and every pipeline slot holding the mean demand. A base-stock policy is the line "
        "max(S − x, 0); the optimal lost-sales policy orders less steeply (Zipkin 2008)."
    )
    st.plotly_chart(single_view.order_curve_figure(result.orders, scenario.lead_time, scenario.demand_mean),
                    key=_key("order_chart"))


def _choice(name: str, options: list[Any]) -> None:
    """Drop a kept selection that is no longer among ``options`` (before its widget is drawn)."""
    import streamlit as st

    if _key(name) in st.session_state and st.session_state[_key(name)] not in options:
        del st.session_state[_key(name)]


def _show_network(scenario: NetworkScenario, result: ComparisonResult | None) -> None:
    import streamlit as st

    if result is None or result.inventories is None:
        topo = scenario.topology()
        layout = network_view.node_layout(topo)
        st.caption("Press **Run** to colour the nodes by the stock each policy keeps there.")
        st.plotly_chart(network_view.network_figure(layout, network_view.edge_frame(topo, layout)),
                        key=_key("network_chart"))
        return
    assert isinstance(result.scenario, NetworkScenario)
    topo = result.scenario.topology()
    layout = network_view.node_layout(topo)
    labels = result.table["policy"].to_list()
    _choice("graph_policy", labels)
    left, right = st.columns([2, 3])
    policy = left.selectbox("Policy drawn", labels, key=_key("graph_policy"))
    period = right.slider("Period (0 = average over the path)", 0, network_view.INVENTORY_PERIODS, 0,
                          key=_key("graph_period"))
    summary = network_view.node_summary(result.inventories, policy, period or None)
    when = f"period {period}" if period else f"average over {network_view.INVENTORY_PERIODS} periods"
    st.caption(f"One demand path shared by every policy, after a {network_view.INVENTORY_WARMUP}-period warm-up "
               "from an empty network; node size and colour = stock on hand.")
    st.plotly_chart(network_view.network_figure(layout, network_view.edge_frame(topo, layout), summary,
                                                title=f"{policy}: stock on hand ({when})"),
                    key=_key("network_chart"))
    st.plotly_chart(network_view.inventory_figure(result.inventories, policy), key=_key("inventory_chart"))


def _show_series(scenario: RealSeriesScenario, result: ComparisonResult | None) -> None:
    import streamlit as st

    from decisionlab.domains.inventory import dashboard_series as series_view

    usable = result if result is not None and result.scenario == scenario else None
    source = usable.scenario if usable is not None else scenario
    assert isinstance(source, RealSeriesScenario)
    labels = series_view.series_labels(source)
    _choice("series", list(range(len(labels))))
    index = st.selectbox("Series (item / store)", range(len(labels)), format_func=lambda i: labels[i],
                         key=_key("series"))
    if usable is None:
        st.caption("Press **Run** (with these settings) to add each policy's orders and stock.")
        frame = series_view.forecast_vs_orders(source, [], index)
    else:
        if index not in usable.series_frames:
            usable.series_frames[index] = series_view.forecast_vs_orders(source, usable.policies, index)
        frame = usable.series_frames[index]
    st.caption(
        f"Held-out periods of {labels[index]}: demand, the seasonal empirical forecast of each period's demand "
        f"(same weekday over the last {source.forecast_seasons} seasons of the window, promotion-adjusted) and, "
        "per policy, the order placed and the stock left, replayed as the held-out evaluation does."
    )
    st.plotly_chart(series_view.series_figure(frame), key=_key("series_chart"))


def _show_efficiency() -> None:
    import streamlit as st

    from decisionlab.domains.inventory import dashboard_efficiency as efficiency

    st.caption(
        "HDPO on `one_warehouse`: held-out cost per period after training each architecture (vanilla MLP, "
        "symmetry-aware net, GNN) on a fixed number of training scenarios; error bars ± one standard error over "
        "seeds. `gap_mean`: cost / the architecture's best cost over all sizes − 1."
    )
    try:
        frame = efficiency.load_efficiency()
    except DecisionlabError as err:
        st.error(str(err))
        return
    if frame is None:
        st.info(f"No data-efficiency results yet. Produce them with `{efficiency.PRODUCE_COMMAND}` (writes "
                f"`{efficiency.DATA_EFFICIENCY_CSV.name}` next to the inventory package's data).")
        return
    summary = efficiency.efficiency_summary(frame)
    st.plotly_chart(efficiency.efficiency_figure(summary), key=_key("efficiency_chart"))
    st.dataframe(_format_table(summary), hide_index=True, key=_key("efficiency_table"))


VIEW_TITLES = {LostSalesScenario: "Paths and order curve", NetworkScenario: "Network",
               RealSeriesScenario: "Forecast vs orders"}


def render() -> None:
    """Draw the inventory page (called by ``dashboards/pages/1_Inventory.py``)."""
    import streamlit as st

    from decisionlab.core.device import configure_threads

    st.set_page_config(page_title="Inventory · decisionlab", layout="wide")
    configure_threads()  # Streamlit runs pages in its own process: set torch threads there too
    try:
        spec = domain_spec()
        from decisionlab.core.store.registry import PolicyRegistry

        registry = PolicyRegistry()
    except DecisionlabError as err:
        st.error(str(err))
        return
    st.title(spec.title)
    st.markdown(
        f"{spec.description} Choose a setting and its parameters in the sidebar (single store, networks, "
        "demand replayed from sales history), pick policies and press **Run**: every policy is simulated on the "
        "same demand, so their differences are paired."
    )
    _init_state(spec)
    preset, overrides, episodes, seed = _sidebar(spec)
    scenario: Scenario | None = None
    try:
        scenario = spec.scenario(preset, overrides)
    except DecisionlabError as err:  # shown until fixed; Run does nothing meanwhile
        st.error(str(err))
    try:
        choices = policy_choices(spec, registry, scenario if scenario is not None else spec.scenarios[preset])
    except DecisionlabError as err:
        st.error(str(err))
        return
    st.session_state[_key("policies")] = [n for n in st.session_state.get(_key("policies"), []) if n in choices]
    names = st.multiselect("Policies (the first is the reference)", choices, key=_key("policies"),
                           help="baselines that serve this setting, then registered policies of this domain")
    slow = slow_policies(spec.scenarios[preset], names)
    if slow:
        st.caption(f"⏱ {', '.join(slow)}: parameters searched on first use (tens of seconds; cached afterwards).")
    request = {"preset": preset, "overrides": dict(overrides), "policies": list(names), "episodes": episodes,
               "seed": seed}
    if st.button("Run", type="primary", key=_key("run")) and scenario is not None:
        message = "Searching policy parameters, then simulating…" if slow else "Simulating…"
        try:
            with st.spinner(message):
                st.session_state[STATE_KEY] = run_comparison(
                    overrides, names, preset=preset, episodes=episodes, seed=seed, registry=registry, spec=spec
                )
        except DecisionlabError as err:
            st.error(str(err))
    result: ComparisonResult | None = st.session_state.get(STATE_KEY)
    if result is not None:
        for name, message in result.skipped.items():
            st.warning(f"Skipped **{name}**: {message}")
    current = scenario if scenario is not None else spec.scenarios[preset]
    view = next((title for cls, title in VIEW_TITLES.items() if isinstance(current, cls)), "Details")
    matching = result if result is not None and type(result.scenario) is type(current) else None
    compare, detail, efficiency = st.tabs(["Policy comparison", view, "Data efficiency"])
    with compare:
        if result is None:
            st.info("Press **Run** to evaluate the chosen policies.")
        else:
            _show_comparison(result, request)
    with detail:
        _show_detail(current, matching)
    with efficiency:
        _show_efficiency()


def _show_detail(current: Scenario, matching: ComparisonResult | None) -> None:
    """The view tab of the chosen setting (``matching``: the kept result when it is of the same class)."""
    import streamlit as st

    try:
        if isinstance(current, NetworkScenario):
            _show_network(current, matching)
        elif isinstance(current, RealSeriesScenario):
            _show_series(current, matching)
        elif not isinstance(current, LostSalesScenario):
            st.info("This setting has no view beyond the comparison yet.")
        elif matching is not None:
            _show_single(matching)
        else:
            st.info("Press **Run** to see stock and orders over time.")
    except DecisionlabError as err:  # e.g. a real_series data file that cannot be read
        st.error(str(err))
