"""The inventory page of the Streamlit dashboard.

Two layers, kept apart so the numbers can be tested without Streamlit:

* pure helpers (:func:`build_selected_policies`, :func:`results_frame`, :func:`simulate_paths`,
  :func:`order_vs_position`, :func:`run_comparison`) return polars frames, and the figure builders
  (``*_figure``) turn those frames into plotly figures;
* :func:`render` draws the page: scenario and evaluation settings in the sidebar, a policy picker and
  a Run button; results are kept in ``st.session_state`` so widget reruns do not recompute them.

Every policy is evaluated on the same seed (common random numbers), so the paired difference to the
first policy is much tighter than the two confidence intervals suggest.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl
import torch

from decisionlab.core.errors import DecisionlabError
from decisionlab.core.policy import Policy
from decisionlab.core.spec import DomainSpec
from decisionlab.domains.inventory.scenario import LostSalesScenario

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from decisionlab.core.evaluation import EvaluationReport
    from decisionlab.core.store.registry import PolicyRegistry

DOMAIN = "inventory"
DEFAULT_POLICIES = ("optimal", "base_stock", "myopic")
DEFAULT_HORIZON = 1000  # short episodes keep the page responsive (the preset's 5000 is for reports)
DEFAULT_WARMUP = 200
DEFAULT_EPISODES = 32
MAX_LEAD_TIME = 8
TRAJECTORY_PERIODS = 60
TRAJECTORY_WARMUP = 50
STATE_KEY = "inventory_results"

# Scenario fields the sidebar edits, in display order.
SCENARIO_FIELDS = (
    "lead_time",
    "holding_cost",
    "underage_cost",
    "demand_mean",
    "demand_distribution",
    "demand_cv",
)


# --------------------------------------------------------------------------------------------
# Pure helpers (no Streamlit)
# --------------------------------------------------------------------------------------------


def _spec() -> DomainSpec:
    from decisionlab.core.spec import get_domain

    return get_domain(DOMAIN)


def policy_choices(spec: DomainSpec, registry: PolicyRegistry | None = None) -> list[str]:
    """Baseline names, then the references of the registered policies of this domain."""
    from decisionlab.core.store.registry import PolicyRegistry

    registry = registry or PolicyRegistry()
    return [*spec.policies, *(str(record.ref) for record in registry.list(spec.name))]


def build_selected_policies(
    spec: DomainSpec,
    scenario: LostSalesScenario,
    names: Sequence[str],
    device: torch.device,
    registry: PolicyRegistry | None = None,
) -> tuple[list[tuple[str, Policy]], dict[str, str]]:
    """Build each named policy; those that cannot serve ``scenario`` are skipped with the reason.

    Returns ``([(label, policy), ...], {name: error message})``. A policy is skipped when building
    it raises a :class:`DecisionlabError` (the exact DP beyond its tractable range, a registered
    network trained for another lead time, a reference that no longer exists).
    """
    from decisionlab.core.resolve import build_policy

    built: list[tuple[str, Policy]] = []
    skipped: dict[str, str] = {}
    for name in names:
        try:
            built.append(build_policy(spec, scenario, name, device, registry))
        except DecisionlabError as err:
            skipped[name] = str(err)
    return built, skipped


def results_frame(report: EvaluationReport, primary: str = "cost_per_period") -> pl.DataFrame:
    """One row per policy (in evaluation order): the primary metric's mean and 95% half-width,
    its paired difference to the first policy, and the cost decomposition, fill rate and stock."""
    table = report.table()
    order = pl.DataFrame({"policy": report.labels, "_order": list(range(len(report.labels)))})
    head = table.filter(pl.col("metric") == primary).select(
        "policy",
        pl.col("mean").alias(primary),
        "ci95",
        "diff_vs_first",
        "diff_ci95",
    )
    extras = [
        m
        for m in ("holding_cost_per_period", "shortage_cost_per_period", "fill_rate", "mean_on_hand")
        if m != primary and m in set(table["metric"])
    ]
    frame = order.join(head, on="policy", how="left")
    for metric in extras:
        part = table.filter(pl.col("metric") == metric).select("policy", pl.col("mean").alias(metric))
        frame = frame.join(part, on="policy", how="left")
    return frame.sort("_order").drop("_order")


def simulate_paths(
    scenario: LostSalesScenario,
    policies: Sequence[tuple[str, Policy]],
    *,
    periods: int = TRAJECTORY_PERIODS,
    warmup: int = TRAJECTORY_WARMUP,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> pl.DataFrame:
    """Each policy on one shared demand path: ``warmup`` periods from an empty store (not shown),
    then ``periods`` periods recorded.

    Columns: policy, period (1..periods), on_hand (stock left after demand), order, demand.
    """
    from decisionlab.core.rollout import rollout
    from decisionlab.core.seeding import make_generator
    from decisionlab.domains.inventory.sim import SingleStoreSim

    sim = SingleStoreSim(scenario, device)
    demand = sim.sample_exogenous(1, warmup + periods, make_generator(seed, sim.device))
    frames = []
    for label, policy in policies:
        traj = rollout(sim, policy, demand, record=("on_hand", "order", "demand"))
        shown = {name: values[0, warmup:].detach().float().cpu().numpy() for name, values in traj.info.items()}
        frames.append(
            pl.DataFrame(
                {
                    "policy": [label] * periods,
                    "period": list(range(1, periods + 1)),
                    "on_hand": shown["on_hand"],
                    "order": shown["order"],
                    "demand": shown["demand"],
                }
            )
        )
    return pl.concat(frames) if frames else _empty_paths()


def _empty_paths() -> pl.DataFrame:
    return pl.DataFrame(
        schema={"policy": pl.String, "period": pl.Int64, "on_hand": pl.Float32, "order": pl.Float32,
                "demand": pl.Float32}
    )


def on_hand_grid(scenario: LostSalesScenario, max_points: int = 121) -> torch.Tensor:
    """On-hand levels from 0 to 3 × mean demand: whole units for Poisson demand (when that gives
    at most ``max_points`` points), otherwise ``max_points`` evenly spaced values."""
    top = 3.0 * scenario.demand_mean
    if scenario.demand_distribution == "poisson" and int(top) + 1 <= max_points:
        return torch.arange(0.0, float(int(top)) + 1.0)
    return torch.linspace(0.0, top, max_points)


def order_vs_position(
    scenario: LostSalesScenario,
    policies: Sequence[tuple[str, Policy]],
    *,
    device: torch.device | str = "cpu",
    max_points: int = 121,
) -> pl.DataFrame:
    """Each policy's order on a grid of states: on hand varied over :func:`on_hand_grid`, every
    pipeline slot holding one period's mean demand.

    Columns: policy, on_hand, inventory_position (on hand + on order), order (clipped at 0 as the
    simulator does).
    """
    on_hand = on_hand_grid(scenario, max_points)
    pipeline = torch.full((on_hand.numel(), scenario.lead_time), float(scenario.demand_mean))
    obs = torch.cat([on_hand[:, None], pipeline], dim=1).to(device)
    position = obs.sum(dim=1).cpu().numpy()
    frames = []
    with torch.no_grad():
        for label, policy in policies:
            orders = policy.act(obs).reshape(-1).clamp_min(0.0).detach().float().cpu().numpy()
            frames.append(
                pl.DataFrame(
                    {
                        "policy": [label] * on_hand.numel(),
                        "on_hand": on_hand.numpy(),
                        "inventory_position": position,
                        "order": orders,
                    }
                )
            )
    if not frames:
        return pl.DataFrame(
            schema={"policy": pl.String, "on_hand": pl.Float32, "inventory_position": pl.Float32,
                    "order": pl.Float32}
        )
    return pl.concat(frames)


@dataclass
class ComparisonResult:
    """Everything the page shows after one press of Run."""

    request: dict[str, Any]
    scenario: LostSalesScenario
    table: pl.DataFrame
    trajectories: pl.DataFrame
    orders: pl.DataFrame
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def run_comparison(
    overrides: Mapping[str, Any],
    names: Sequence[str],
    *,
    preset: str = "lost_sales",
    episodes: int = DEFAULT_EPISODES,
    seed: int = 0,
    device: torch.device | None = None,
    registry: PolicyRegistry | None = None,
    spec: DomainSpec | None = None,
) -> ComparisonResult:
    """Resolve the scenario, build the policies, evaluate them on common random numbers and
    compute the trajectory and order-curve frames.

    Raises :class:`DecisionlabError` for an invalid scenario, no policy chosen, or no chosen policy
    able to run; policies that merely cannot serve this scenario are listed in ``skipped``.
    """
    from decisionlab.core.device import get_device
    from decisionlab.core.evaluation import evaluate_policies

    start = time.perf_counter()
    spec = spec or _spec()
    device = device if device is not None else get_device()
    request = {"preset": preset, "overrides": dict(overrides), "policies": list(names), "episodes": int(episodes),
               "seed": int(seed)}
    scenario = spec.scenario(preset, overrides)
    if not isinstance(scenario, LostSalesScenario):  # pragma: no cover - every preset is lost_sales today
        raise DecisionlabError(f"the inventory page shows lost_sales scenarios, not {type(scenario).__name__}")
    if not names:
        raise DecisionlabError("choose at least one policy to compare")
    policies, skipped = build_selected_policies(spec, scenario, names, device, registry)
    if not policies:
        raise DecisionlabError(
            "none of the chosen policies can run on this scenario: "
            + "; ".join(f"{name}: {msg}" for name, msg in skipped.items())
        )
    report = evaluate_policies(spec, scenario, policies, episodes=int(episodes), seed=int(seed), device=device)
    return ComparisonResult(
        request=request,
        scenario=scenario,
        table=results_frame(report, spec.primary_metric),
        trajectories=simulate_paths(scenario, policies, seed=int(seed), device=device),
        orders=order_vs_position(scenario, policies, device=device),
        skipped=skipped,
        seconds=time.perf_counter() - start,
    )


# --------------------------------------------------------------------------------------------
# Figures (plotly, no Streamlit)
# --------------------------------------------------------------------------------------------


def cost_figure(table: pl.DataFrame) -> go.Figure:
    """Bar chart of cost per period with 95% error bars, one bar per policy."""
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Bar(
            x=table["policy"].to_list(),
            y=table["cost_per_period"].to_list(),
            error_y={"type": "data", "array": table["ci95"].to_list(), "visible": True},
            text=[f"{v:.3f}" for v in table["cost_per_period"]],
            textposition="inside",
            marker_color="#4C78A8",
        )
    )
    fig.update_layout(
        title="Cost per period (95% CI over episodes)", yaxis_title="cost per period", xaxis_title="policy",
        margin={"t": 50, "b": 40}, height=380,
    )
    return fig


def decomposition_figure(table: pl.DataFrame) -> go.Figure:
    """Stacked bars: holding vs lost-sales cost per period for each policy."""
    import plotly.graph_objects as go

    policies = table["policy"].to_list()
    fig = go.Figure(
        [
            go.Bar(name="holding", x=policies, y=table["holding_cost_per_period"].to_list(), marker_color="#72B7B2"),
            go.Bar(name="lost sales", x=policies, y=table["shortage_cost_per_period"].to_list(),
                   marker_color="#E45756"),
        ]
    )
    fig.update_layout(
        barmode="stack", title="Cost decomposition", yaxis_title="cost per period", xaxis_title="policy",
        margin={"t": 50, "b": 40}, height=380, legend={"orientation": "h", "y": -0.2},
    )
    return fig


def trajectory_figure(paths: pl.DataFrame) -> go.Figure:
    """On-hand stock (top) and orders (bottom) over time per policy, demand drawn in grey."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("On hand at the end of the period", "Orders placed"))
    colors = _palette()
    for i, label in enumerate(paths["policy"].unique(maintain_order=True).to_list()):
        part = paths.filter(pl.col("policy") == label)
        color = colors[i % len(colors)]
        period = part["period"].to_list()
        fig.add_trace(go.Scatter(x=period, y=part["on_hand"].to_list(), name=label, legendgroup=label,
                                 line={"color": color, "shape": "hv"}), row=1, col=1)
        fig.add_trace(go.Scatter(x=period, y=part["order"].to_list(), name=label, legendgroup=label,
                                 showlegend=False, line={"color": color, "shape": "hv"}), row=2, col=1)
    if paths.height:
        first = paths.filter(pl.col("policy") == paths["policy"][0])
        fig.add_trace(go.Bar(x=first["period"].to_list(), y=first["demand"].to_list(), name="demand",
                             marker_color="rgba(128,128,128,0.35)"), row=2, col=1)
    fig.update_yaxes(title_text="units", row=1, col=1)
    fig.update_yaxes(title_text="units", row=2, col=1)
    fig.update_xaxes(title_text="period", row=2, col=1)
    fig.update_layout(height=560, margin={"t": 60, "b": 40}, legend={"orientation": "h", "y": -0.12})
    return fig


def order_curve_figure(orders: pl.DataFrame, lead_time: int, demand_mean: float) -> go.Figure:
    """Order quantity against inventory position, one line per policy."""
    import plotly.graph_objects as go

    fig = go.Figure()
    colors = _palette()
    for i, label in enumerate(orders["policy"].unique(maintain_order=True).to_list()):
        part = orders.filter(pl.col("policy") == label)
        fig.add_trace(go.Scatter(x=part["inventory_position"].to_list(), y=part["order"].to_list(), name=label,
                                 mode="lines+markers", marker={"size": 4},
                                 line={"color": colors[i % len(colors)]}))
    fig.update_layout(
        title=f"Order vs inventory position (each of the {lead_time} pipeline slots = {demand_mean:g})",
        xaxis_title="inventory position (on hand + on order)", yaxis_title="order quantity",
        height=420, margin={"t": 50, "b": 40},
    )
    return fig


def _palette() -> list[str]:
    import plotly.express as px

    return list(px.colors.qualitative.Plotly)


# --------------------------------------------------------------------------------------------
# Streamlit page
# --------------------------------------------------------------------------------------------


def _key(name: str) -> str:
    return f"inventory_{name}"


def _preset_values(spec: DomainSpec, preset: str) -> dict[str, Any]:
    """The preset's editable parameters, typed as the sidebar widgets expect them."""
    scenario = spec.scenarios[preset]
    values: dict[str, Any] = {name: getattr(scenario, name) for name in SCENARIO_FIELDS}
    values["lead_time"] = min(int(values["lead_time"]), MAX_LEAD_TIME)
    for name in ("holding_cost", "underage_cost", "demand_mean", "demand_cv"):
        values[name] = float(values[name])
    return values


def _load_preset() -> None:
    """``on_change`` of the preset box: copy the preset's parameters into the inputs."""
    import streamlit as st

    for name, value in _preset_values(_spec(), st.session_state[_key("preset")]).items():
        st.session_state[_key(name)] = value


def _init_state(spec: DomainSpec) -> None:
    """Seed the widget values once per session (widgets then read them from session state)."""
    import streamlit as st

    preset = spec.default_scenario or next(iter(spec.scenarios))
    defaults: dict[str, Any] = {
        "preset": preset,
        **_preset_values(spec, preset),
        "episodes": DEFAULT_EPISODES,
        "horizon_periods": DEFAULT_HORIZON,
        "warmup_periods": DEFAULT_WARMUP,
        "seed": 0,
    }
    for name, value in defaults.items():
        if _key(name) not in st.session_state:
            st.session_state[_key(name)] = value


def _sidebar(spec: DomainSpec) -> tuple[str, dict[str, Any], int, int]:
    """Draw the settings; returns ``(preset, overrides, episodes, seed)``."""
    import streamlit as st

    bar = st.sidebar
    bar.header("Scenario")
    single_store = [name for name, preset in spec.scenarios.items() if isinstance(preset, LostSalesScenario)]
    bar.selectbox("Preset", single_store, key=_key("preset"), on_change=_load_preset,
                  help="named scenario; changing it reloads the parameters below")
    fields = LostSalesScenario.model_fields
    bar.number_input("Lead time (periods)", min_value=0, max_value=MAX_LEAD_TIME, step=1, key=_key("lead_time"),
                     help=fields["lead_time"].description)
    bar.number_input("Holding cost h", min_value=0.0, step=0.5, key=_key("holding_cost"),
                     help=fields["holding_cost"].description)
    bar.number_input("Lost-sales cost p", min_value=0.0, step=1.0, key=_key("underage_cost"),
                     help=fields["underage_cost"].description)
    bar.number_input("Mean demand", min_value=0.0, step=1.0, key=_key("demand_mean"),
                     help=fields["demand_mean"].description)
    bar.selectbox("Demand distribution", ["poisson", "normal"], key=_key("demand_distribution"),
                  help=fields["demand_distribution"].description)
    bar.number_input("Demand CV (normal only)", min_value=0.0, max_value=3.0, step=0.1, key=_key("demand_cv"),
                     help=fields["demand_cv"].description)
    bar.header("Evaluation")
    bar.number_input("Episodes", min_value=1, max_value=4096, step=8, key=_key("episodes"),
                     help="episodes per policy, all policies on the same demand paths")
    bar.number_input("Horizon (periods)", min_value=2, max_value=200_000, step=100, key=_key("horizon_periods"),
                     help=fields["horizon_periods"].description)
    bar.number_input("Warm-up (periods)", min_value=0, max_value=200_000, step=50, key=_key("warmup_periods"),
                     help=fields["warmup_periods"].description)
    bar.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key=_key("seed"))
    state = st.session_state
    overrides: dict[str, Any] = {name: state[_key(name)] for name in SCENARIO_FIELDS}
    overrides["lead_time"] = int(overrides["lead_time"])
    overrides["horizon_periods"] = int(state[_key("horizon_periods")])
    overrides["warmup_periods"] = int(state[_key("warmup_periods")])
    return state[_key("preset")], overrides, int(state[_key("episodes")]), int(state[_key("seed")])


def _format_table(table: pl.DataFrame) -> pl.DataFrame:
    """Rounded copy for display."""
    return table.with_columns(pl.col(pl.Float64, pl.Float32).round(4))


def _show_results(result: ComparisonResult, current_request: dict[str, Any]) -> None:
    import streamlit as st

    if result.request != current_request:
        st.info("The settings changed since these results were computed: press **Run** to update them.")
    for name, message in result.skipped.items():
        st.warning(f"Skipped **{name}**: {message}")
    scenario = result.scenario
    st.subheader("Results")
    st.caption(
        f"L={scenario.lead_time}, h={scenario.holding_cost:g}, p={scenario.underage_cost:g}, "
        f"demand {scenario.demand_distribution}({scenario.demand_mean:g}); "
        f"{result.request['episodes']} episodes × {scenario.horizon_periods} periods "
        f"(first {scenario.warmup_periods} excluded), seed {result.request['seed']}; "
        f"computed in {result.seconds:.1f} s. `diff_vs_first` is the paired difference to "
        f"**{result.table['policy'][0]}** on the same demand paths."
    )
    st.dataframe(_format_table(result.table), hide_index=True, key=_key("results_table"))
    left, right = st.columns(2)
    with left:
        st.plotly_chart(cost_figure(result.table), key=_key("cost_chart"))
    with right:
        st.plotly_chart(decomposition_figure(result.table), key=_key("decomposition_chart"))
    st.subheader("Inventory over time")
    st.caption(
        f"All policies on one shared demand path, {TRAJECTORY_PERIODS} periods after a "
        f"{TRAJECTORY_WARMUP}-period warm-up from an empty store."
    )
    st.plotly_chart(trajectory_figure(result.trajectories), key=_key("trajectory_chart"))
    st.subheader("Order-up-to behaviour")
    st.caption(
        "Order placed as a function of the inventory position, with on hand varied from 0 to 3× mean "
        "demand and every pipeline slot holding the mean demand. A base-stock policy is the line "
        "max(S − x, 0); the optimal lost-sales policy orders less steeply (Zipkin 2008)."
    )
    st.plotly_chart(order_curve_figure(result.orders, scenario.lead_time, scenario.demand_mean),
                    key=_key("order_chart"))


def render() -> None:
    """Draw the inventory page (called by ``dashboards/pages/1_Inventory.py``)."""
    import streamlit as st

    from decisionlab.core.device import configure_threads

    st.set_page_config(page_title="Inventory · decisionlab", layout="wide")
    configure_threads()  # Streamlit runs pages in its own process: set torch threads there too
    try:
        spec = _spec()
        from decisionlab.core.store.registry import PolicyRegistry

        registry = PolicyRegistry()
        choices = policy_choices(spec, registry)
    except DecisionlabError as err:
        st.error(str(err))
        return
    st.title(spec.title)
    st.markdown(
        f"{spec.description} Set a scenario in the sidebar, pick policies and press **Run**: every policy "
        "is simulated on the same demand paths, so their differences are paired."
    )
    _init_state(spec)
    preset, overrides, episodes, seed = _sidebar(spec)
    default = [name for name in DEFAULT_POLICIES if name in choices]
    names = st.multiselect("Policies (the first is the reference)", choices, default=default, key=_key("policies"),
                           help="baselines, then registered policies of this domain by reference")
    request = {"preset": preset, "overrides": dict(overrides), "policies": list(names), "episodes": episodes,
               "seed": seed}
    if st.button("Run", type="primary", key=_key("run")):
        try:
            with st.spinner("Simulating…"):
                st.session_state[STATE_KEY] = run_comparison(
                    overrides, names, preset=preset, episodes=episodes, seed=seed, registry=registry, spec=spec
                )
        except DecisionlabError as err:
            st.error(str(err))
            return
    result: ComparisonResult | None = st.session_state.get(STATE_KEY)
    if result is None:
        st.info("Press **Run** to evaluate the chosen policies.")
        return
    _show_results(result, request)
