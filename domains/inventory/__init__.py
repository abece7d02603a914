"""Inventory control: the reference domain, three settings.

- :mod:`.single_store`: one store with lost sales and a lead time; the exact DP optimum, the
  base-stock family, the myopic policy, HDPO and contextual HDPO;
- :mod:`.network`: the HDPO paper's networks (backlog, serial, one warehouse, transshipment, many
  warehouses) with echelon-stock baselines and HDPO over a vanilla MLP, a symmetry-aware net or a GNN;
- :mod:`.series`: ``real_series``, many store-items with demand replayed from sales history, against
  the newsvendor family on a quantile forecast.

Shared by the three: the store-period dynamics (:mod:`.dynamics`), the KPIs (:mod:`.kpis`), the cost
breakdown tab (:mod:`.views`) and the named HTTP routes (:mod:`.routes`).
"""

from __future__ import annotations

from decisionlab.core import DomainSpec, register_domain
from decisionlab.domains.inventory.network import SETTING as NETWORK
from decisionlab.domains.inventory.series import SETTING as SERIES
from decisionlab.domains.inventory.single_store import SETTING as SINGLE_STORE


def _routes():
    from decisionlab.domains.inventory.routes import build_router

    return build_router()


SPEC = register_domain(
    DomainSpec(
        name="inventory",
        title="Inventory control",
        description="Order stock under lead times and uncertain demand; lost sales or backlog.",
        settings=(SINGLE_STORE, SERIES, NETWORK),
        default_scenario="lost_sales",
        default_algo="hdpo",
        routes=_routes,
    )
)

__all__ = ["NETWORK", "SERIES", "SINGLE_STORE", "SPEC"]
