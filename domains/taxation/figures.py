"""Pure builders of the taxation tabs (no Streamlit): every schedule's exact responses, Lorenz curves, tax
schedules, the equality–productivity trade-off and the workers' labour, as numpy arrays and plotly figures.

Shapes: ``P`` schedules (one per policy), ``N`` workers in ascending skill, ``K`` brackets, ``M`` points of an
income grid. Incomes, taxes and cut-offs are per tax period; rates are fractions (0.2 = 20%).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from decisionlab.core import legend_below, palette
from decisionlab.domains.taxation.economy import Economy, social_metrics, tax
from decisionlab.domains.taxation.saez import one_step_saez_rates
from decisionlab.domains.taxation.scenario import OneStepScenario

if TYPE_CHECKING:
    import plotly.graph_objects as go

BUNCHING_REL_TOL = 1e-6
"""A worker sits at cut-off ``b`` when ``|z − b| < 1e-6·b``: best responses land on a cut-off up to rounding."""
FLAT_RATES = np.linspace(0.0, 1.0, 21)  # flat taxes 0, 5, ..., 100%
SAEZ_SCALES = np.linspace(0.0, 2.0, 21)  # the Saez schedule × 0, 0.1, ..., 2 (each rate clipped to 1)
CUTOFF_LINE = {"color": "#999", "dash": "dot", "width": 1}


@dataclass(frozen=True)
class Responses:
    """Schedules and the workers' exact answers: ``labels [P]``, ``rates [P, K]``, ``cutoffs [K]``,
    ``skills [N]``, ``income`` and ``net_income`` (after tax and rebate) ``[P, N]``, ``metrics {name: [P]}``."""

    labels: list[str]
    rates: np.ndarray
    cutoffs: np.ndarray
    skills: np.ndarray
    income: np.ndarray
    net_income: np.ndarray
    metrics: dict[str, np.ndarray]


def responses(scenario: OneStepScenario, schedules: Mapping[str, Sequence[float]]) -> Responses:
    """Every worker's exact best response to each schedule ``{label: rates [K]}`` (on the CPU: tiny tensors)."""
    economy = Economy(scenario)
    rates = torch.tensor([list(r) for r in schedules.values()], dtype=torch.float64).reshape(-1, scenario.n_brackets)
    result = economy.outcome(rates)
    metrics = {name: value.numpy() for name, value in social_metrics(result, economy.skills).items()}
    return Responses(list(schedules), rates.numpy(), economy.cutoffs.numpy(), economy.skills.numpy(),
                     result.income.numpy(), result.net_income.numpy(), metrics)


def lorenz_curve(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(population share [N + 1], income share [N + 1])``: the share held by the poorest, from (0, 0) to
    (1, 1); the diagonal when nobody has anything."""
    ordered = np.sort(np.asarray(values, dtype=float))
    population = np.arange(ordered.size + 1) / max(ordered.size, 1)
    total = ordered.sum()
    if total <= 0.0:
        return population, population.copy()
    return population, np.concatenate([[0.0], np.cumsum(ordered) / total])


def income_grid(cutoffs: np.ndarray, incomes: np.ndarray, points: int = 400) -> np.ndarray:
    """``[M]`` incomes from 0 past the top cut-off and the richest worker, every cut-off on the grid (the
    steps of the schedule fall on grid points)."""
    top = max(float(cutoffs[-1]) * 1.25, float(np.max(incomes, initial=0.0)) * 1.05, 1.0)
    return np.unique(np.concatenate([np.linspace(0.0, top, points), cutoffs]))


def marginal_rates(incomes: np.ndarray, rates: np.ndarray, cutoffs: np.ndarray) -> np.ndarray:
    """``[M]`` the marginal rate at each income: that of the bracket it falls in (a cut-off opens its bracket)."""
    bracket = np.searchsorted(cutoffs, incomes, side="right") - 1
    return np.asarray(rates)[np.clip(bracket, 0, len(cutoffs) - 1)]


def effective_rates(incomes: np.ndarray, rates: np.ndarray, cutoffs: np.ndarray) -> np.ndarray:
    """``[M]`` the average rate T(z)/z at each income; at z = 0 its limit, the first bracket's rate."""
    z = np.asarray(incomes, dtype=float)
    owed = tax(torch.as_tensor(z)[None], torch.as_tensor(np.asarray(rates, dtype=float))[None],
               torch.as_tensor(np.asarray(cutoffs, dtype=float))).numpy()[0]
    return np.where(z > 0.0, owed / np.where(z > 0.0, z, 1.0), float(rates[0]))


def bunching(income: np.ndarray, cutoffs: np.ndarray, rel_tol: float = BUNCHING_REL_TOL) -> np.ndarray:
    """``[P, K − 1]`` workers sitting exactly at each cut-off above 0 (``|z − b| < rel_tol·b``) per schedule;
    the cut-off 0 is left out: it is the floor, not an edge between two brackets."""
    edges = np.asarray(cutoffs, dtype=float)[1:]
    return (np.abs(income[:, :, None] - edges) < rel_tol * edges).sum(1)


@dataclass(frozen=True)
class Family:
    """Schedules of one parameter: ``name`` (legend), ``parameter [S]``, ``equality`` and ``productivity [S]``."""

    name: str
    parameter: np.ndarray
    equality: np.ndarray
    productivity: np.ndarray


def schedule_families(scenario: OneStepScenario) -> list[Family]:
    """Flat taxes 0–100% by 5% and the Saez rates scaled by 0–2 (clipped to 1): each a curve of the
    equality–productivity trade-off that one knob traces."""
    saez = np.asarray(one_step_saez_rates(scenario))
    families = []
    for name, parameter, rates in (
            ("flat tax 0–100% (step 5%)", FLAT_RATES, np.repeat(FLAT_RATES[:, None], scenario.n_brackets, 1)),
            ("Saez rates × 0–2 (step 0.1)", SAEZ_SCALES, np.clip(SAEZ_SCALES[:, None] * saez, 0.0, 1.0))):
        found = responses(scenario, {f"{i}": row for i, row in enumerate(rates)}).metrics
        families.append(Family(name, parameter, found["equality"], found["productivity"]))
    return families


def _colors(labels: Sequence[str]) -> dict[str, str]:
    """One colour per policy, the same in every figure."""
    colors = palette()
    return {label: colors[i % len(colors)] for i, label in enumerate(labels)}


def lorenz_figure(found: Responses) -> go.Figure:
    """The Lorenz curve of net incomes (after tax and rebate) per policy, with the line of equality."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="equality line",
                               line={"color": "#444", "dash": "dash"}))
    for i, (label, color) in enumerate(_colors(found.labels).items()):
        population, share = lorenz_curve(found.net_income[i])
        fig.add_trace(go.Scatter(x=population, y=share, mode="lines+markers", name=label, line={"color": color},
                                 hovertemplate=f"{label}: the poorest %{{x:.0%}} hold %{{y:.1%}}<extra></extra>"))
    fig.update_layout(title="Lorenz curves of net income (after tax and rebate)",
                      xaxis_title="share of workers, poorest first", yaxis_title="share of total net income",
                      xaxis={"range": [0, 1], "tickformat": ".0%", "constrain": "domain"},  # square, not wider
                      yaxis={"range": [0, 1], "tickformat": ".0%", "scaleanchor": "x"})
    return legend_below(fig, 420)


def schedule_figures(found: Responses, points: int = 400) -> tuple[go.Figure, go.Figure]:
    """``(marginal rate by income as steps, effective rate T(z)/z by income)`` per policy, cut-offs dotted."""
    import plotly.graph_objects as go

    grid = income_grid(found.cutoffs, found.income, points)
    marginal, effective = go.Figure(), go.Figure()
    ceiling = max(float(found.rates.max(initial=0.0)), 0.05)  # a margin below 0: zero rates stay visible
    for i, (label, color) in enumerate(_colors(found.labels).items()):
        marginal.add_trace(go.Scatter(x=grid, y=marginal_rates(grid, found.rates[i], found.cutoffs), name=label,
                                      mode="lines", line={"color": color, "shape": "hv"}))
        effective.add_trace(go.Scatter(x=grid, y=effective_rates(grid, found.rates[i], found.cutoffs), name=label,
                                       mode="lines", line={"color": color}))
    for fig, title, axis in ((marginal, "Marginal rate by income", "marginal rate"),
                             (effective, "Effective rate T(z)/z by income", "average rate T(z)/z")):
        for cutoff in found.cutoffs[1:]:
            fig.add_vline(x=float(cutoff), line=CUTOFF_LINE)
        fig.update_layout(title=title, xaxis_title="income z (per period; dotted: bracket cut-offs)",
                          yaxis_title=axis, yaxis={"tickformat": ".0%", "range": [-0.03, ceiling + 0.03]})
        legend_below(fig, 320)
    return marginal, effective


def frontier_figure(found: Responses, families: Sequence[Family], optima: Responses | None = None) -> go.Figure:
    """Equality (x) vs productivity (y): a curve per family of schedules, the policies as points and the
    exact optima (stars) with the level curve of equality × productivity through the best of them."""
    import plotly.graph_objects as go

    top = max([float(found.metrics["productivity"].max()), *(float(f.productivity.max()) for f in families)])
    fig = go.Figure()
    for family, dash in zip(families, ("solid", "dash", "dot"), strict=False):
        fig.add_trace(go.Scatter(x=family.equality, y=family.productivity, mode="lines+markers", name=family.name,
                                 line={"color": "#888", "dash": dash}, marker={"size": 4},
                                 customdata=family.parameter, hovertemplate="%{customdata:.2f}: equality %{x:.3f}, "
                                 "productivity %{y:.1f}<extra>" + family.name + "</extra>"))
    if optima is not None and optima.labels:
        # the level curve of the best optimum: with the optimum of equality × productivity among them, no
        # schedule on the rate grid lies above it
        level = float(optima.metrics["equality_times_productivity"].max())
        x = np.linspace(min(level / (top * 1.05), 1.0), 1.0, 100)
        fig.add_trace(go.Scatter(x=x, y=level / x, mode="lines", line={"color": "#bbb", "width": 1},
                                 name=f"equality × productivity = {level:.1f}", hoverinfo="skip"))
        for i, label in enumerate(optima.labels):
            fig.add_trace(go.Scatter(x=optima.metrics["equality"][i:i + 1], y=optima.metrics["productivity"][i:i + 1],
                                     mode="markers", name=label,
                                     marker={"symbol": "star", "size": 16, "color": ("#222", "#E45756")[i % 2]}))
    for i, (label, color) in enumerate(_colors(found.labels).items()):
        fig.add_trace(go.Scatter(x=found.metrics["equality"][i:i + 1], y=found.metrics["productivity"][i:i + 1],
                                 mode="markers", name=label, marker={"size": 11, "color": color}))
    fig.update_layout(title="Equality–productivity trade-off", xaxis_title="equality (1 − Gini of net income)",
                      yaxis_title="productivity Σz (per period)", yaxis={"range": [0, top * 1.05]})
    return legend_below(fig, 440)


def labour_figures(found: Responses) -> tuple[go.Figure, go.Figure]:
    """``(income z by skill, labour z/w by skill)`` per policy on a log skill axis; the income figure marks
    the cut-offs up to the first above the richest worker."""
    import plotly.graph_objects as go

    income, labour = go.Figure(), go.Figure()
    for i, (label, color) in enumerate(_colors(found.labels).items()):
        income.add_trace(go.Scatter(x=found.skills, y=found.income[i], name=label, mode="lines+markers",
                                    line={"color": color}))
        labour.add_trace(go.Scatter(x=found.skills, y=found.income[i] / found.skills, name=label,
                                    mode="lines+markers", line={"color": color}))
    richest = float(found.income.max(initial=0.0))
    shown = [float(b) for b in found.cutoffs[1:] if b <= richest]
    shown += [float(b) for b in found.cutoffs[1:] if b > richest][:1]
    for cutoff in shown:
        income.add_hline(y=cutoff, line=CUTOFF_LINE, annotation_text=f"{cutoff:g}", annotation_position="right")
    income.update_layout(title="Income by skill (dotted: bracket cut-offs)", yaxis_title="income z (per period)")
    labour.update_layout(title="Labour by skill", yaxis_title="labour z/w (income per unit of skill)")
    for fig in (income, labour):
        fig.update_xaxes(type="log", title="skill w (log scale)")
        legend_below(fig, 320)
    return income, labour


def bunching_figure(found: Responses, rel_tol: float = BUNCHING_REL_TOL) -> go.Figure:
    """Workers sitting exactly at each cut-off (``|z − b| < rel_tol·b``), grouped bars per policy."""
    import plotly.graph_objects as go

    counts = bunching(found.income, found.cutoffs, rel_tol)
    edges = [f"{b:g}" for b in found.cutoffs[1:]]
    fig = go.Figure([go.Bar(x=edges, y=counts[i], name=label, marker_color=color)
                     for i, (label, color) in enumerate(_colors(found.labels).items())])
    fig.update_layout(barmode="group", title=f"Bunching: workers at a cut-off (of {found.skills.size})",
                      xaxis_title="cut-off b (income per period)", yaxis_title="workers with |z − b| < 1e-6·b",
                      xaxis={"type": "category"}, yaxis={"rangemode": "tozero"})
    if counts.max(initial=0) <= 10:  # whole workers: no fractional ticks on a short axis
        fig.update_yaxes(tick0=0, dtick=1)
    return legend_below(fig, 300)
