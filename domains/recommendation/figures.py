"""Pure builders of the recommendation tabs (no Streamlit): the funnel day by day, a simulated A/B test,
off-policy estimates against the truth and the authors' exposure, as polars frames and plotly figures.

Every simulation is the core engine on the scenario's simulator with a fixed seed, so a tab redrawn for the
same comparison shows the same numbers. Funnel rates are per user of the starting cohort per day (users who
left count as users with no requests), as ``metrics.episode_metrics`` counts them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import torch

from decisionlab.core import (
    Policy,
    Step,
    Sum,
    ab_test,
    derive_seed,
    legend_below,
    make_generator,
    off_policy_report,
    palette,
    run,
)
from decisionlab.domains.recommendation.metrics import METRICS, episode_metrics, gini_influence
from decisionlab.domains.recommendation.ope import AB_METRICS, off_policy_log
from decisionlab.domains.recommendation.scenario import RecommendationScenario
from decisionlab.domains.recommendation.sim import RecommendationSim

if TYPE_CHECKING:
    import plotly.graph_objects as go

FUNNEL = ("clicks", "follows", "gifts")
"""The funnel stages: ``info`` entries of the simulator's step, counted per request."""
ESTIMATORS = {"ips": "IPS", "snips": "SNIPS", "dr": "doubly robust", "pi": "pseudo-inverse (slate)"}
ZERO_LINE = {"color": "#444", "dash": "dash", "width": 1}
FEW_ROWS = 10.0
"""Effective rows (Kish) below which an off-policy estimate is drawn grey: its t interval under-covers."""


def colors(labels: Sequence[str]) -> dict[str, str]:
    """One colour per policy, the same in every figure."""
    cycle = palette()
    return {label: cycle[i % len(cycle)] for i, label in enumerate(labels)}


# --- the funnel over the days of the horizon ------------------------------------------------------------


def _by_day(entry: str, days: int) -> Sum:
    """``[B, days]``: the step's ``info[entry]`` summed into the day of the request (``time_h // 24``)."""

    def read(step: Step) -> torch.Tensor:
        value = step.result.info[entry].double()
        day = torch.div(step.state.time_h, 24.0, rounding_mode="floor").long().clamp(0, days - 1)
        return torch.zeros(value.shape[0], days, dtype=torch.float64, device=value.device).scatter_add_(
            1, day[:, None], value[:, None])

    return Sum(read)


def funnel_frame(scenario: RecommendationScenario, policies: Sequence[tuple[str, Policy]], users: int, seed: int,
                 device: torch.device) -> pl.DataFrame:
    """One row per policy and day (1 .. ``days``): clicks, follows and gifts per user per day of ``users`` users
    (the same users and random numbers for every policy: those of ``episode_metrics`` with this seed)."""
    sim = RecommendationSim(scenario, device)
    rows = []
    for label, policy in policies:
        done = run(sim, policy, batch=users, generator=make_generator(seed, device),
                   reducers={stage: _by_day(stage, scenario.days) for stage in FUNNEL})
        per_day = {stage: (done.totals[stage].sum(0) / users).cpu().numpy() for stage in FUNNEL}
        rows += [{"policy": label, "day": day + 1, **{stage: float(per_day[stage][day]) for stage in FUNNEL}}
                 for day in range(scenario.days)]
    schema = {"policy": pl.String, "day": pl.Int64, **dict.fromkeys(FUNNEL, pl.Float64)}
    return pl.DataFrame(rows, schema=schema)


def funnel_figure(frame: pl.DataFrame) -> go.Figure:
    """Clicks, follows and gifts per user per day against the day, a panel per stage, a line per policy."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=len(FUNNEL), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=[f"{stage} per user per day" for stage in FUNNEL])
    labels = frame["policy"].unique(maintain_order=True).to_list()
    for label, color in colors(labels).items():
        rows = frame.filter(pl.col("policy") == label)
        for i, stage in enumerate(FUNNEL):
            fig.add_trace(go.Scatter(x=rows["day"].to_list(), y=rows[stage].to_list(), mode="lines+markers",
                                     name=label, legendgroup=label, showlegend=i == 0, line={"color": color},
                                     hovertemplate=f"{label}, day %{{x}}: %{{y:.4g}} {stage}<extra></extra>"),
                          row=i + 1, col=1)
    fig.update_xaxes(title_text="day of the horizon", dtick=1, row=len(FUNNEL), col=1)
    fig.update_yaxes(rangemode="tozero")
    fig.update_layout(title="The funnel day by day")
    return legend_below(fig, 180 * len(FUNNEL))


# --- the simulated A/B test ----------------------------------------------------------------------------


def ab_frame(scenario: RecommendationScenario, a: Policy, b: Policy, users: int, seed: int,
             device: torch.device, metrics: Sequence[str] = AB_METRICS) -> pl.DataFrame:
    """The A/B test of ``ope.off_policy_log``: ``users`` split in two halves (their own random numbers), A
    serving one and B the other; per metric the means, the difference B − A and its Welch 95% half-width."""
    half = max(1, users // 2)
    values_a = episode_metrics(scenario, a, half, derive_seed(seed, "ab-a"), device)
    values_b = episode_metrics(scenario, b, half, derive_seed(seed, "ab-b"), device)
    rows = [{"metric": name, **ab_test(values_a[name], values_b[name]).as_dict()} for name in metrics]
    schema = {"metric": pl.String, "difference": pl.Float64, "ci95": pl.Float64, "mean_a": pl.Float64,
              "mean_b": pl.Float64, "n_a": pl.Int64, "n_b": pl.Int64}
    return pl.DataFrame(rows, schema=schema).with_columns(pl.col(pl.Float64).fill_null(float("nan")))


def ab_figure(frame: pl.DataFrame, label_a: str, label_b: str) -> go.Figure:
    """The difference B − A of each metric with its 95% CI, a panel per metric (their scales differ)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=frame.height, subplot_titles=frame["metric"].to_list())
    for i, row in enumerate(frame.iter_rows(named=True)):
        separated = abs(row["difference"]) > row["ci95"]  # False for a NaN or infinite half-width
        fig.add_trace(go.Bar(x=[row["metric"]], y=[row["difference"]], showlegend=False,
                             marker_color=palette()[1] if separated else "#aaa",
                             error_y={"type": "data", "array": [row["ci95"]], "visible": True},
                             hovertemplate=f"%{{y:.4g}} ± {row['ci95']:.3g} (A {row['mean_a']:.4g}, "
                             f"B {row['mean_b']:.4g})<extra></extra>"), row=1, col=i + 1)
        fig.add_hline(y=0.0, line=ZERO_LINE, row=1, col=i + 1)
    better = {name: METRICS[name].better for name in frame["metric"] if name in METRICS}
    note = "; ".join(f"{name}: {way} is better" for name, way in better.items())
    fig.update_layout(title=f"{label_b} − {label_a} on split users (95% CI; grey: CI includes 0)",
                      height=380, margin={"t": 70, "b": 60})
    fig.update_xaxes(showticklabels=False)
    fig.add_annotation(text=note, showarrow=False, xref="paper", yref="paper", x=0.0, y=-0.06, xanchor="left",
                       yanchor="top")
    return fig


# --- off-policy estimates ------------------------------------------------------------------------------


def off_policy_estimates(scenario: RecommendationScenario, logging: Policy, target: Policy, users: int,
                         temperature: float, seed: int, device: torch.device) -> dict[str, Any]:
    """The report of ``decisionlab ope``: ``logging``'s Plackett–Luce log at ``temperature`` of ``users``
    users, every estimator of ``target``'s value on it, the simulator's truth and the effective sample sizes."""
    return off_policy_report(off_policy_log(scenario, logging, target, users, seed, device, temperature))


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)


def ope_frame(report: Mapping[str, Any]) -> pl.DataFrame:
    """One row per estimator and metric: the estimate, its 95% half-width (NaN: none), the Kish effective
    sample size, the truth and whether the interval covers it."""
    rows = []
    for kind, values in report["estimates"].items():
        for metric, found in values.items():
            estimate, half = _number(found["estimate"]), _number(found["ci95"])
            truth = _number(report["truth"].get(metric))
            rows.append({"estimator": ESTIMATORS.get(kind, kind), "metric": metric, "estimate": estimate,
                         "ci95": half, "effective_n": _number(report["effective_n"][kind][metric]),
                         "truth": truth, "covers": bool(abs(estimate - truth) <= half)})
    schema = {"estimator": pl.String, "metric": pl.String, "estimate": pl.Float64, "ci95": pl.Float64,
              "effective_n": pl.Float64, "truth": pl.Float64, "covers": pl.Boolean}
    return pl.DataFrame(rows, schema=schema)


def ope_figure(frame: pl.DataFrame, title: str = "Off-policy estimates (95% CI) against the truth") -> go.Figure:
    """Each estimator's estimate with its CI, a panel per metric, the simulator's truth as a dashed line; an
    estimate resting on fewer than ``FEW_ROWS`` effective rows is grey (its interval is not to be trusted)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    metrics = frame["metric"].unique(maintain_order=True).to_list()
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=metrics)
    for i, metric in enumerate(metrics):
        rows = frame.filter(pl.col("metric") == metric)
        names = rows["estimator"].to_list()
        half = [h if np.isfinite(h) else None for h in rows["ci95"]]
        few = [not n >= FEW_ROWS for n in rows["effective_n"]]  # NaN: no rows either
        fig.add_trace(go.Scatter(x=names, y=rows["estimate"].to_list(), mode="markers", name="estimate",
                                 legendgroup="estimate", showlegend=i == 0, customdata=rows["effective_n"].to_list(),
                                 marker={"size": 11, "color": ["#aaa" if f else palette()[0] for f in few]},
                                 error_y={"type": "data", "array": half, "visible": True, "thickness": 2},
                                 hovertemplate="%{x}: %{y:.4g} (effective rows %{customdata:.1f})<extra></extra>"),
                      row=1, col=i + 1)
        truth = rows["truth"][0]
        if np.isfinite(truth):
            fig.add_trace(go.Scatter(x=names, y=[truth] * len(names), mode="lines", name="truth (the simulator's)",
                                     legendgroup="truth", showlegend=i == 0, line=ZERO_LINE | {"color": "#E45756"}),
                          row=1, col=i + 1)
    fig.update_layout(title=title)
    return legend_below(fig, 340)


# --- the authors' exposure ------------------------------------------------------------------------------


def exposure_counts(scenario: RecommendationScenario, policies: Sequence[tuple[str, Policy]], users: int,
                    seed: int, device: torch.device) -> dict[str, np.ndarray]:
    """``{label: [users, bins]}``: each user's impressions per author bin (``episode_metrics``' ``exposure``)."""
    return {label: episode_metrics(scenario, policy, users, seed, device)["exposure"] for label, policy in policies}


def lorenz_curve(totals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(share of authors [n + 1], share of impressions [n + 1])``, the least exposed first, from (0, 0) to
    (1, 1); the diagonal when nothing was shown."""
    ordered = np.sort(np.asarray(totals, dtype=np.float64))
    authors = np.arange(ordered.size + 1) / max(ordered.size, 1)
    total = ordered.sum()
    if total <= 0.0:
        return authors, authors.copy()
    return authors, np.concatenate([[0.0], np.cumsum(ordered) / total])


def lorenz_frame(counts: Mapping[str, np.ndarray]) -> pl.DataFrame:
    """One row per policy and point of its Lorenz curve of impressions over authors, with the Gini (the mean of
    ``gini_influence``: the comparison's ``exposure_gini``)."""
    frames = []
    for label, per_user in counts.items():
        authors, impressions = lorenz_curve(np.asarray(per_user).sum(0))
        frames.append(pl.DataFrame({"policy": label, "authors": authors, "impressions": impressions,
                                    "gini": float(gini_influence(per_user).mean())}))
    return pl.concat(frames) if frames else pl.DataFrame(
        schema={"policy": pl.String, "authors": pl.Float64, "impressions": pl.Float64, "gini": pl.Float64})


def lorenz_figure(frame: pl.DataFrame, bins: int | None = None) -> go.Figure:
    """The Lorenz curve of impressions over authors per policy, its Gini in the legend, the line of equality."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="equal exposure", line=ZERO_LINE))
    labels = frame["policy"].unique(maintain_order=True).to_list()
    for label, color in colors(labels).items():
        rows = frame.filter(pl.col("policy") == label)
        fig.add_trace(go.Scatter(x=rows["authors"].to_list(), y=rows["impressions"].to_list(), mode="lines",
                                 name=f"{label} (Gini {rows['gini'][0]:.3f})", line={"color": color},
                                 hovertemplate=f"{label}: the least exposed %{{x:.0%}} of authors got "
                                 "%{y:.1%} of impressions<extra></extra>"))
    unit = "authors" if bins is None else f"authors ({bins:,} bins of ids)"
    fig.update_layout(title="Lorenz curves of impressions over authors",
                      xaxis_title=f"share of {unit}, least exposed first", yaxis_title="share of impressions",
                      xaxis={"range": [0, 1], "tickformat": ".0%", "constrain": "domain"},
                      yaxis={"range": [0, 1], "tickformat": ".0%", "scaleanchor": "x"})
    return legend_below(fig, 420)
