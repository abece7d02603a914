"""The policy comparison behind the inventory page, for every setting (single store, networks,
``real_series``): which policies serve a scenario, building them, evaluating them on common random
numbers through :func:`decisionlab.core.evaluation.evaluate_policies`, the results table and the
cost figures. Pure python and plotly; no Streamlit (the page is :mod:`.dashboard`).

Every policy is evaluated on the same seed (common random numbers; for ``real_series`` the same
history), so the paired difference to the first policy is much tighter than the two confidence
intervals suggest.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl
import torch

from decisionlab.core import ui
from decisionlab.core.errors import DecisionlabError
from decisionlab.core.policy import Policy
from decisionlab.core.scenario import Scenario
from decisionlab.core.spec import DomainSpec
from decisionlab.core.ui import build_selected_policies
from decisionlab.domains.inventory import dashboard_network as network_view
from decisionlab.domains.inventory import dashboard_single as single_view
from decisionlab.domains.inventory.network.scenario import (
    BacklogScenario,
    MultiWarehouseScenario,
    NetworkScenario,
    OneWarehouseScenario,
)
from decisionlab.domains.inventory.scenario import LostSalesScenario
from decisionlab.domains.inventory.series.scenario import RealSeriesScenario

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from decisionlab.core.evaluation import EvaluationReport
    from decisionlab.core.store.registry import PolicyRegistry

DOMAIN = "inventory"
DEFAULT_POLICIES = ("optimal", "base_stock", "myopic")  # lost_sales
DEFAULT_EPISODES = 32

# Baselines of the domain that only serve some scenario classes (names not listed serve all).
SERVES: dict[str, tuple[type[Scenario], ...]] = {
    "optimal": (LostSalesScenario,),
    "myopic": (LostSalesScenario, RealSeriesScenario),
    "capped_base_stock": (LostSalesScenario, RealSeriesScenario),
    "fixed_quantile": (RealSeriesScenario,),
    "newsvendor_quantile": (RealSeriesScenario,),
    "transformed_quantile": (RealSeriesScenario,),
    "just_in_time": (RealSeriesScenario,),
    "echelon_stock": (NetworkScenario,),
    "capped_echelon_stock": (OneWarehouseScenario, MultiWarehouseScenario),
    "critical_fractile": (BacklogScenario,),
    "newsvendor_echelon": (NetworkScenario,),
    "newsvendor_local": (NetworkScenario,),
}
# Baselines whose parameters are searched or fitted on first use (tens of seconds; cached afterwards).
SLOW: dict[type[Scenario], tuple[str, ...]] = {
    NetworkScenario: ("base_stock", "echelon_stock", "capped_echelon_stock"),
    RealSeriesScenario: ("base_stock", "capped_base_stock", "fixed_quantile", "transformed_quantile"),
}


# --------------------------------------------------------------------------------------------
# Pure helpers (no Streamlit)
# --------------------------------------------------------------------------------------------


def domain_spec() -> DomainSpec:
    from decisionlab.core.spec import get_domain

    return get_domain(DOMAIN)


def default_policies(scenario: Scenario) -> list[str]:
    """The policies picked when a scenario class is chosen: quick ones only (no level search)."""
    if isinstance(scenario, RealSeriesScenario):
        return ["newsvendor_quantile", "myopic", "just_in_time"]
    if isinstance(scenario, BacklogScenario):
        return ["critical_fractile", "base_stock"]
    if isinstance(scenario, NetworkScenario):
        return list(network_view.QUICK_POLICIES)
    return list(DEFAULT_POLICIES)


def slow_policies(scenario: Scenario, names: Sequence[str]) -> list[str]:
    """Those of ``names`` that search or fit their parameters on first use for ``scenario``."""
    slow = next((v for cls, v in SLOW.items() if isinstance(scenario, cls)), ())
    if isinstance(scenario, BacklogScenario):
        slow = tuple(n for n in slow if n != "base_stock")  # one level: under a second
    return [name for name in names if name in slow]


def policy_choices(spec: DomainSpec, registry: PolicyRegistry | None = None,
                   scenario: Scenario | None = None) -> list[str]:
    """Baseline names, then the references of the registered policies of this domain.

    With ``scenario``: only the baselines that serve its class and the registered policies trained
    on a preset of the same class.
    """
    from decisionlab.core.store.registry import PolicyRegistry

    registry = registry or PolicyRegistry()
    records = registry.list(spec.name)
    if scenario is None:
        return [*spec.policies, *(str(record.ref) for record in records)]
    names = [n for n in spec.policies if n not in SERVES or isinstance(scenario, SERVES[n])]

    def same_class(card: Mapping[str, Any]) -> bool:
        preset = spec.scenarios.get(str(card.get("scenario_name")))
        return preset is None or type(preset) is type(scenario)

    return [*names, *(str(r.ref) for r in records if same_class(r.card))]


RESULT_EXTRAS = ("holding_cost_per_period", "shortage_cost_per_period", "backlog_cost_per_period", "fill_rate",
                 "mean_on_hand")


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
    extras = [m for m in RESULT_EXTRAS if m != primary and m in set(table["metric"])]
    frame = order.join(head, on="policy", how="left")
    for metric in extras:
        part = table.filter(pl.col("metric") == metric).select("policy", pl.col("mean").alias(metric))
        frame = frame.join(part, on="policy", how="left")
    return frame.sort("_order").drop("_order")


@dataclass
class ComparisonResult:
    """Everything the page shows after one press of Run.

    ``trajectories``/``orders``: lost_sales views; ``inventories``: per-node stock over one path
    (networks); ``policies`` are kept for the views computed on demand (a chosen real series).
    """

    request: dict[str, Any]
    scenario: Scenario
    table: pl.DataFrame
    trajectories: pl.DataFrame | None = None
    orders: pl.DataFrame | None = None
    inventories: pl.DataFrame | None = None
    policies: list[tuple[str, Policy]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    series_frames: dict[int, pl.DataFrame] = field(default_factory=dict)


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
    """Resolve the scenario, build the policies, evaluate them on common random numbers (through
    :func:`decisionlab.core.evaluation.evaluate_policies`) and compute the frames of the view of
    the scenario's class.

    Raises :class:`DecisionlabError` for an invalid scenario, no policy chosen, or no chosen policy
    able to run; policies that merely cannot serve this scenario are listed in ``skipped``.
    """
    from decisionlab.core.device import get_device
    from decisionlab.core.evaluation import evaluate_policies

    start = time.perf_counter()
    spec = spec or domain_spec()
    device = device if device is not None else get_device()
    request = {"preset": preset, "overrides": dict(overrides), "policies": list(names), "episodes": int(episodes),
               "seed": int(seed)}
    scenario = spec.scenario(preset, overrides)
    if not names:
        raise DecisionlabError("choose at least one policy to compare")
    policies, skipped = build_selected_policies(spec, scenario, names, device, registry)
    ui.require_runnable(policies, skipped)
    report = evaluate_policies(spec, scenario, policies, episodes=int(episodes), seed=int(seed), device=device)
    result = ComparisonResult(request=request, scenario=scenario, table=results_frame(report, spec.primary_metric),
                              policies=policies, skipped=skipped)
    if isinstance(scenario, LostSalesScenario):
        result.trajectories = single_view.simulate_paths(scenario, policies, seed=int(seed), device=device)
        result.orders = single_view.order_vs_position(scenario, policies, device=device)
    elif isinstance(scenario, NetworkScenario):
        result.inventories = network_view.node_inventories(scenario, policies, seed=int(seed), device=device)
    result.seconds = time.perf_counter() - start
    return result


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


def decomposition_figure(table: pl.DataFrame, shortage_label: str = "lost sales") -> go.Figure:
    """Stacked bars per policy: holding vs lost-sales vs backlog cost per period (a shortage part
    that is zero for every policy is left out; ``shortage_label`` names ``shortage_cost_per_period``)."""
    import plotly.graph_objects as go

    policies = table["policy"].to_list()
    parts = [("holding", "holding_cost_per_period", "#72B7B2"),
             (shortage_label, "shortage_cost_per_period", "#E45756"),
             ("backlog", "backlog_cost_per_period", "#F58518")]
    bars = [
        go.Bar(name=name, x=policies, y=table[column].to_list(), marker_color=color)
        for name, column, color in parts
        if column in table.columns and (column == "holding_cost_per_period" or table[column].abs().sum() > 0)
    ]
    fig = go.Figure(bars)
    fig.update_layout(
        barmode="stack", title="Cost decomposition", yaxis_title="cost per period", xaxis_title="policy",
        margin={"t": 50, "b": 40}, height=380, legend={"orientation": "h", "y": -0.2},
    )
    return fig
