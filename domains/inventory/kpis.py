"""The inventory KPIs every setting reports, from sums of per-period quantities.

Each setting's ``metrics.py`` runs the core rollout (:func:`~decisionlab.core.engine.period_sums`
or :func:`~decisionlab.core.engine.accumulate`) over its simulator, summing the step diagnostics
named in :data:`SUMMED`, and :func:`per_period` turns the sums into the same metrics everywhere:
costs per period, fill rate and mean stock on hand.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from decisionlab.core import MetricSpec

SUMMED = ("cost", "holding_cost", "shortage_cost", "sales", "demand", "on_hand")

METRICS = {
    "cost_per_period": MetricSpec("cost_per_period", "average holding + shortage cost per period", "lower"),
    "holding_cost_per_period": MetricSpec("holding_cost_per_period", "average holding cost per period", "lower"),
    "shortage_cost_per_period": MetricSpec("shortage_cost_per_period", "average lost-sales penalty per period",
                                           "lower"),
    "backlog_cost_per_period": MetricSpec("backlog_cost_per_period", "average backlog penalty per period", "lower"),
    "fill_rate": MetricSpec("fill_rate", "share of demand served from stock in the period it occurs", "higher"),
    "mean_on_hand": MetricSpec("mean_on_hand", "average stock left at the end of a period", "lower", "units"),
}


def metrics(names: Iterable[str]) -> dict[str, MetricSpec]:
    """The :data:`METRICS` a setting reports, in the given order."""
    return {name: METRICS[name] for name in names}


def per_period(sums: dict[str, torch.Tensor], periods: torch.Tensor | float) -> dict[str, np.ndarray]:
    """KPIs per episode ``{metric: [B]}`` from the sums over ``periods`` scored periods (a number or
    ``[B]``): every ``*_cost`` sum becomes ``*_cost_per_period``; ``fill_rate`` = sales / demand;
    ``mean_on_hand`` = on hand / periods."""
    out: dict[str, torch.Tensor] = {}
    for name in ("cost", "holding_cost", "shortage_cost", "backlog_cost"):
        if name in sums:
            out[f"{name}_per_period"] = sums[name] / periods
    out["fill_rate"] = sums["sales"] / sums["demand"].clamp_min(1e-12)
    out["mean_on_hand"] = sums["on_hand"] / periods
    return {k: v.cpu().numpy() for k, v in out.items()}
