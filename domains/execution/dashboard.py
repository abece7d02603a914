"""The execution page of the Streamlit dashboard.

Pure helpers (no Streamlit) compute polars frames: :func:`frontier_frame` (the static efficient frontier,
E vs V over λ), :func:`run_comparison` (policies on common random numbers: summary table, shortfall samples,
holdings trajectories, one liquidity path with every policy's child orders). Figure builders turn frames into
plotly figures. :func:`render` draws the page; results live in ``st.session_state`` between reruns.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import torch

from decisionlab.core import ui
from decisionlab.core.errors import DecisionlabError
from decisionlab.core.spec import DomainSpec
from decisionlab.core.ui import build_selected_policies
from decisionlab.domains.execution import oracles
from decisionlab.domains.execution.metrics import population_values, simulate, summarize
from decisionlab.domains.execution.scenario import ExecutionScenario

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from decisionlab.core.store.registry import PolicyRegistry

DOMAIN = "execution"
DEFAULT_POLICIES = ("static_expected", "ac_optimal", "twap")
DEFAULT_EPISODES = 4000
MAX_SHOWN_SAMPLES = 4000  # shortfalls per policy kept for the histogram
STATE_KEY = "execution_results"
SCENARIO_FIELDS = ("side", "shares", "horizon_steps", "sigma", "eta", "gamma", "epsilon", "risk_aversion",
                   "initial_price", "liquidity_model")


def _spec() -> DomainSpec:
    from decisionlab.core.spec import get_domain

    return get_domain(DOMAIN)


# --------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------


def frontier_frame(scenario: ExecutionScenario, points: int = 41, decades: float = 3.0) -> pl.DataFrame:
    """Best static schedules for λ from 0 and log-spaced over ``λ·10^±decades``: risk_aversion, expected,
    variance, std, objective (the objective at each row's own λ)."""
    base = scenario.risk_aversion if scenario.risk_aversion > 0 else 1e-6
    grid = np.concatenate([[0.0], base * np.logspace(-decades, decades, points)])
    return pl.DataFrame(oracles.efficient_frontier(scenario, grid))


def policy_choices(spec: DomainSpec, registry: PolicyRegistry | None = None) -> list[str]:
    """Baselines, then the references of registered execution policies."""
    from decisionlab.core.store.registry import PolicyRegistry

    registry = registry or PolicyRegistry()
    return [*spec.policies, *(str(record.ref) for record in registry.list(spec.name))]


def summary_frame(scenario: ExecutionScenario, shortfalls: Mapping[str, np.ndarray]) -> pl.DataFrame:
    """One row per policy: the objective with its 95% CI, the paired difference to the first policy
    (delta-method CIs, see ``metrics.py``), mean/std/CVaR shortfall, bps, and P(beat TWAP-like first)."""
    from decisionlab.core.evaluation import mean_ci95

    labels = list(shortfalls)
    values = {label: population_values(s, scenario.risk_aversion, scenario.notional) for label, s in shortfalls.items()}
    first = values[labels[0]]["mean_variance_objective"]
    rows = []
    for label in labels:
        stats = summarize(shortfalls[label], scenario.risk_aversion, scenario.notional)
        objective = values[label]["mean_variance_objective"]
        _, half = mean_ci95(objective)
        diff, diff_half = mean_ci95(objective - first)
        rows.append({
            "policy": label,
            "mean_variance_objective": stats["mean_variance_objective"],
            "ci95": half,
            "diff_vs_first": diff,
            "diff_ci95": diff_half,
            "mean_shortfall": stats["mean_shortfall"],
            "std_shortfall": stats["std_shortfall"],
            "cvar95_shortfall": stats["cvar95_shortfall"],
            "shortfall_bps": stats["shortfall_bps"],
        })
    return pl.DataFrame(rows)


@dataclass
class ComparisonResult:
    """Everything the page shows after one press of Run."""

    request: dict[str, Any]
    scenario: ExecutionScenario
    table: pl.DataFrame
    shortfalls: pl.DataFrame  # policy, shortfall (a sample of at most MAX_SHOWN_SAMPLES per policy)
    trajectories: pl.DataFrame  # policy, step, mean, p10, p90 of the fraction of X left
    liquidity: pl.DataFrame  # step, path, impact (η_k/η), regime, and per policy the child order on path 0
    frontier: pl.DataFrame
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def trajectories_frame(label: str, remaining: np.ndarray, shares: float) -> pl.DataFrame:
    """Mean and 10–90% band of the fraction of X left after each step (step 0 = arrival)."""
    left = np.concatenate([np.ones((remaining.shape[0], 1)), remaining / shares], axis=1)
    steps = left.shape[1]
    return pl.DataFrame({
        "policy": [label] * steps,
        "step": list(range(steps)),
        "mean": left.mean(axis=0),
        "p10": np.quantile(left, 0.1, axis=0),
        "p90": np.quantile(left, 0.9, axis=0),
    })


def liquidity_frame(
    scenario: ExecutionScenario, trades: Mapping[str, np.ndarray], impact: np.ndarray, regime: np.ndarray,
    paths: int = 3,
) -> pl.DataFrame:
    """Long frame over the first ``paths`` paths: step (1..N), path, impact η_k/η, regime and the child
    order of every policy as a fraction of X (column ``trade:<policy>``)."""
    n = scenario.horizon_steps
    paths = min(paths, impact.shape[0])
    data: dict[str, Any] = {
        "step": np.tile(np.arange(1, n + 1), paths),
        "path": np.repeat(np.arange(paths), n),
        "impact": impact[:paths].reshape(-1),
        "regime": regime[:paths].reshape(-1),
    }
    for label, values in trades.items():
        data[f"trade:{label}"] = values[:paths].reshape(-1) / scenario.shares
    return pl.DataFrame(data)


def run_comparison(
    overrides: Mapping[str, Any],
    names: Sequence[str],
    *,
    preset: str = "latent_liquidity",
    episodes: int = DEFAULT_EPISODES,
    seed: int = 0,
    device: torch.device | None = None,
    registry: PolicyRegistry | None = None,
    spec: DomainSpec | None = None,
) -> ComparisonResult:
    """Resolve the scenario, build the policies, simulate them on common random numbers, build every frame.

    Raises :class:`DecisionlabError` for an invalid scenario, no policy chosen, or none able to run.
    """
    from decisionlab.core.device import get_device

    start = time.perf_counter()
    spec = spec or _spec()
    device = device if device is not None else get_device()
    request = {"preset": preset, "overrides": dict(overrides), "policies": list(names), "episodes": int(episodes),
               "seed": int(seed)}
    scenario = spec.scenario(preset, overrides)
    assert isinstance(scenario, ExecutionScenario)
    if not names:
        raise DecisionlabError("choose at least one policy to compare")
    if episodes < 2:
        raise DecisionlabError(f"episodes must be >= 2 (got {episodes})")
    policies, skipped = build_selected_policies(spec, scenario, names, device, registry)
    ui.require_runnable(policies, skipped)
    shortfalls: dict[str, np.ndarray] = {}
    trajectories, trades = [], {}
    impact = regime = np.zeros((0, scenario.horizon_steps))
    for label, policy in policies:
        shortfall, traj = simulate(scenario, policy, int(episodes), int(seed), device,
                                   record=("remaining", "trade", "eta", "regime"))
        shortfalls[label] = shortfall
        trajectories.append(trajectories_frame(label, traj.info["remaining"].double().cpu().numpy(), scenario.shares))
        trades[label] = traj.info["trade"][:3].double().cpu().numpy()
        impact = (traj.info["eta"][:3].double().cpu().numpy()) / scenario.eta
        regime = traj.info["regime"][:3].cpu().numpy()
    shown = [pl.DataFrame({"policy": [label] * min(s.size, MAX_SHOWN_SAMPLES), "shortfall": s[:MAX_SHOWN_SAMPLES]})
             for label, s in shortfalls.items()]
    return ComparisonResult(
        request=request,
        scenario=scenario,
        table=summary_frame(scenario, shortfalls),
        shortfalls=pl.concat(shown),
        trajectories=pl.concat(trajectories),
        liquidity=liquidity_frame(scenario, trades, impact, regime),
        frontier=frontier_frame(scenario),
        skipped=skipped,
        seconds=time.perf_counter() - start,
    )


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def frontier_figure(frontier: pl.DataFrame, table: pl.DataFrame | None = None,
                    risk_aversion: float | None = None) -> go.Figure:
    """Static efficient frontier (std vs E over λ) with the simulated policies as points."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(
        x=np.sqrt(frontier["variance"].to_numpy()), y=frontier["expected"].to_list(), mode="lines",
        name="static frontier", line={"color": "#888"},
        customdata=frontier["risk_aversion"].to_list(),
        hovertemplate="λ=%{customdata:.3g}<br>√V=%{x:.4g}<br>E=%{y:.4g}",
    ))
    if risk_aversion is not None and frontier.height:
        lam = frontier["risk_aversion"].to_numpy()
        here = frontier[int(np.argmin(np.abs(lam - risk_aversion)))]
        fig.add_trace(go.Scatter(x=np.sqrt(here["variance"].to_numpy()), y=here["expected"].to_list(),
                                 mode="markers", name=f"static optimum at λ={risk_aversion:g}",
                                 marker={"symbol": "star", "size": 14, "color": "#222"}))
    if table is not None:
        colors = ui.palette()
        for i, row in enumerate(table.iter_rows(named=True)):
            fig.add_trace(go.Scatter(x=[row["std_shortfall"]], y=[row["mean_shortfall"]], mode="markers",
                                     name=row["policy"], marker={"size": 11, "color": colors[i % len(colors)]}))
    fig.update_layout(title="Efficient frontier: expected shortfall vs its std (static optimum over λ)",
                      xaxis_title="std of shortfall √V (currency)", yaxis_title="expected shortfall E (currency)",
                      height=420, margin={"t": 50, "b": 40})
    return fig


def trajectory_figure(trajectories: pl.DataFrame) -> go.Figure:
    """Fraction of the order left after each step: mean per policy with a 10–90% band."""
    import plotly.graph_objects as go

    fig = go.Figure()
    colors = ui.palette()
    for i, label in enumerate(trajectories["policy"].unique(maintain_order=True).to_list()):
        part = trajectories.filter(pl.col("policy") == label)
        color = colors[i % len(colors)]
        steps = part["step"].to_list()
        fig.add_trace(go.Scatter(x=steps + steps[::-1], y=part["p90"].to_list() + part["p10"].to_list()[::-1],
                                 fill="toself", line={"width": 0}, fillcolor=color, opacity=0.15,
                                 showlegend=False, hoverinfo="skip", legendgroup=label))
        fig.add_trace(go.Scatter(x=steps, y=part["mean"].to_list(), name=label, legendgroup=label,
                                 mode="lines+markers", line={"color": color}))
    fig.update_layout(title="Holdings: fraction of the order left (mean, 10–90% band)", xaxis_title="step",
                      yaxis_title="fraction of X left", height=420, margin={"t": 50, "b": 40})
    return fig


def shortfall_figure(shortfalls: pl.DataFrame) -> go.Figure:
    """Overlaid histograms of the implementation shortfall per policy."""
    import plotly.graph_objects as go

    fig = go.Figure()
    colors = ui.palette()
    for i, label in enumerate(shortfalls["policy"].unique(maintain_order=True).to_list()):
        values = shortfalls.filter(pl.col("policy") == label)["shortfall"].to_list()
        fig.add_trace(go.Histogram(x=values, name=label, opacity=0.5, nbinsx=80,
                                   marker_color=colors[i % len(colors)], histnorm="probability density"))
    fig.update_layout(barmode="overlay", title="Shortfall distribution (same price and liquidity paths)",
                      xaxis_title="implementation shortfall (currency)", yaxis_title="density", height=420,
                      margin={"t": 50, "b": 40})
    return fig


def liquidity_figure(liquidity: pl.DataFrame, path: int = 0) -> go.Figure:
    """One path: latent impact η_k/η (stressed steps marked) above, each policy's child orders below."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    part = liquidity.filter(pl.col("path") == path)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=("Latent temporary impact η_k/η (× = stressed regime)",
                                        "Child orders (fraction of X)"))
    steps = part["step"].to_list()
    fig.add_trace(go.Scatter(x=steps, y=part["impact"].to_list(), name="η_k/η", mode="lines+markers",
                             line={"color": "#444", "shape": "hv"}), row=1, col=1)
    stressed = part.filter(pl.col("regime") > 0.5)
    if stressed.height:
        fig.add_trace(go.Scatter(x=stressed["step"].to_list(), y=stressed["impact"].to_list(), mode="markers",
                                 name="stressed", marker={"symbol": "x", "size": 11, "color": "#E45756"}),
                      row=1, col=1)
    colors = ui.palette()
    for i, column in enumerate(c for c in part.columns if c.startswith("trade:")):
        fig.add_trace(go.Bar(x=steps, y=part[column].to_list(), name=column.removeprefix("trade:"),
                             marker_color=colors[i % len(colors)]), row=2, col=1)
    fig.update_xaxes(title_text="step", row=2, col=1)
    fig.update_layout(barmode="group", height=520, margin={"t": 60, "b": 40}, legend={"orientation": "h", "y": -0.15})
    return fig


# --------------------------------------------------------------------------------------------
# Streamlit page
# --------------------------------------------------------------------------------------------


def _key(name: str) -> str:
    return ui.widget_key(DOMAIN, name)


def _load_preset() -> None:
    """``on_change`` of the preset box: copy the preset's parameters into the inputs."""
    import streamlit as st

    ui.set_values(DOMAIN, ui.preset_values(_spec().scenarios[st.session_state[_key("preset")]], SCENARIO_FIELDS))


def _init_state(spec: DomainSpec) -> None:
    preset = spec.default_scenario or next(iter(spec.scenarios))
    ui.init_state(DOMAIN, {"preset": preset, **ui.preset_values(spec.scenarios[preset], SCENARIO_FIELDS),
                           "episodes": DEFAULT_EPISODES, "seed": 0})


def _sidebar(spec: DomainSpec) -> tuple[str, dict[str, Any], int, int]:
    import streamlit as st

    with st.sidebar:
        st.header("Scenario")
        st.selectbox("Preset", list(spec.scenarios), key=_key("preset"), on_change=_load_preset,
                     help="almgren_chriss: the paper's example; time_varying: U-shaped intraday profile; "
                     "latent_liquidity: stochastic, unobserved liquidity")
        st.radio("Side", ["sell", "buy"], key=_key("side"), horizontal=True)
        st.number_input("Shares X", min_value=1.0, key=_key("shares"), format="%.0f")
        st.number_input("Steps N", min_value=1, max_value=200, step=1, key=_key("horizon_steps"))
        st.number_input("σ per step", min_value=0.0, key=_key("sigma"), format="%.4g")
        st.number_input("η temporary impact", min_value=0.0, key=_key("eta"), format="%.3e")
        st.number_input("γ permanent impact", min_value=0.0, key=_key("gamma"), format="%.3e")
        st.number_input("ε fixed cost / share", min_value=0.0, key=_key("epsilon"), format="%.4g")
        st.number_input("λ risk aversion", min_value=0.0, key=_key("risk_aversion"), format="%.3e")
        st.number_input("Arrival price S0", min_value=0.01, key=_key("initial_price"), format="%.4g")
        st.selectbox("Liquidity", ["deterministic", "stochastic"], key=_key("liquidity_model"))
        st.header("Evaluation")
        st.number_input("Episodes", min_value=2, max_value=200_000, step=1000, key=_key("episodes"))
        st.number_input("Seed", min_value=0, step=1, key=_key("seed"))
    state = st.session_state
    overrides = {name: state[_key(name)] for name in SCENARIO_FIELDS}
    overrides["horizon_steps"] = int(overrides["horizon_steps"])
    return state[_key("preset")], overrides, int(state[_key("episodes")]), int(state[_key("seed")])


def _show_results(result: ComparisonResult, current_request: dict[str, Any]) -> None:
    import streamlit as st

    if result.request != current_request:
        st.info("The settings changed since these results were computed: press **Run** to update them.")
    for name, message in result.skipped.items():
        st.warning(f"Skipped **{name}**: {message}")
    s = result.scenario
    st.subheader("Results")
    st.caption(
        f"{s.side} {s.shares:,.0f} shares over {s.horizon_steps} steps, λ={s.risk_aversion:g}, liquidity "
        f"{s.liquidity_model}; {result.request['episodes']:,} episodes, seed {result.request['seed']}, "
        f"{result.seconds:.1f} s. Objective = mean(IS) + λ·var(IS) over the episodes; `diff_vs_first` is "
        f"paired against **{result.table['policy'][0]}** on the same paths (delta-method 95% CI)."
    )
    st.dataframe(result.table.with_columns(pl.col(pl.Float64).round(2)), hide_index=True, key=_key("table"))
    left, right = st.columns(2)
    with left:
        st.plotly_chart(frontier_figure(result.frontier, result.table, s.risk_aversion), key=_key("frontier"))
    with right:
        st.plotly_chart(trajectory_figure(result.trajectories), key=_key("trajectories"))
    left, right = st.columns(2)
    with left:
        st.plotly_chart(shortfall_figure(result.shortfalls), key=_key("shortfalls"))
    with right:
        st.plotly_chart(liquidity_figure(result.liquidity), key=_key("liquidity"))


def render() -> None:
    """Draw the execution page (called by ``dashboards/pages/2_Execution.py``)."""
    import streamlit as st

    from decisionlab.core.device import configure_threads

    st.set_page_config(page_title="Execution · decisionlab", layout="wide")
    configure_threads()
    try:
        spec = _spec()
        from decisionlab.core.store.registry import PolicyRegistry

        registry = PolicyRegistry()
        choices = policy_choices(spec, registry)
    except DecisionlabError as err:
        st.error(str(err))
        return
    st.title(spec.title)
    st.markdown(f"{spec.description} Pick a scenario and policies and press **Run**: every policy trades on "
                "the same price and liquidity paths, so their differences are paired.")
    _init_state(spec)
    preset, overrides, episodes, seed = _sidebar(spec)
    default = [name for name in DEFAULT_POLICIES if name in choices]
    names = st.multiselect("Policies (the first is the reference)", choices, default=default, key=_key("policies"))
    request = {"preset": preset, "overrides": dict(overrides), "policies": list(names), "episodes": episodes,
               "seed": seed}
    if st.button("Run", type="primary", key=_key("run")):
        try:
            with st.spinner("Simulating…"):
                st.session_state[STATE_KEY] = run_comparison(
                    overrides, names, preset=preset, episodes=episodes, seed=seed, registry=registry, spec=spec)
        except DecisionlabError as err:
            st.error(str(err))
            return
    result: ComparisonResult | None = st.session_state.get(STATE_KEY)
    if result is None:
        st.info("Press **Run** to compare the chosen policies.")
        try:
            scenario = spec.scenario(preset, overrides)
        except DecisionlabError as err:
            st.error(str(err))
            return
        assert isinstance(scenario, ExecutionScenario)
        st.plotly_chart(frontier_figure(frontier_frame(scenario), risk_aversion=scenario.risk_aversion),
                        key=_key("frontier_only"))
        return
    _show_results(result, request)
