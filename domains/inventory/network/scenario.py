"""Scenario models of the inventory-network settings of the HDPO paper (Alvo, Russo & Kanoria).

Every model is a :class:`~decisionlab.core.scenario.Scenario` (frozen, validated, overridable with
``--set key=value``) that builds a :class:`~decisionlab.domains.inventory.network.topology.Topology`
and a :class:`~decisionlab.domains.inventory.network.topology.DemandModel`. Units: quantities in
units of stock, costs per unit per period, time in periods. Timing: an order placed in period t
on a link with lead time L is usable at the start of period t + L, before that period's demand.

Store parameters of the multi-store settings (means, CVs, lead times, costs) are drawn from the
paper's ranges with ``scenario_seed``; each attribute has its own random stream, so store ``i``
is the same store whatever ``n_stores`` is (growing the network only adds stores).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field, model_validator
from scipy import stats

from decisionlab.core import EpisodicScenario
from decisionlab.domains.inventory.network.topology import (
    DemandModel,
    Topology,
    multi_warehouse,
    one_warehouse,
    serial,
    single_store,
)

Range = tuple[float, float]


class NetworkScenario(EpisodicScenario):
    """Base of the network scenarios: an evaluation horizon, a topology and a demand model."""

    @abstractmethod
    def topology(self) -> Topology:
        """The network (nodes, links, costs); each setting's scenario class defines it."""

    @abstractmethod
    def demand(self) -> DemandModel:
        """Store demand, one column per store in node order; each setting's scenario class defines it."""


class BacklogScenario(NetworkScenario):
    """One store, backlogged demand: cost ``h·x⁺ + p·x⁻`` on the end-of-period net stock ``x``.

    With normal demand and ``allow_negative_demand`` the optimal policy is the base-stock level
    ``S* = μ(L+1) + z·σ√(L+1)``, ``z = Φ⁻¹(p/(p+h))``, at cost ``(p+h)·σ√(L+1)·φ(z)``
    (:meth:`critical_fractile_level`, :meth:`critical_fractile_cost`). The preset (μ=5, σ=1.6)
    truncates at 0, which moves the demand mean by ~4e-4: the formulas stay exact to ~1e-4.
    """

    lead_time: int = Field(4, ge=0, le=30, description="periods between placing and receiving an order (L)")
    holding_cost: float = Field(1.0, gt=0, le=1e6, description="cost per unit on hand at the end of a period (h)")
    underage_cost: float = Field(9.0, gt=0, le=1e6, description="cost per unit backlogged at the end of a period (p)")
    demand_mean: float = Field(5.0, gt=0, le=1e6, description="mean demand per period (μ)")
    demand_cv: float = Field(0.32, ge=0, le=3, description="coefficient of variation of normal demand (σ/μ)")
    demand_distribution: Literal["normal", "poisson"] = Field("normal", description="'normal' or 'poisson'")
    allow_negative_demand: bool = Field(
        False, description="normal demand not clipped at 0 (negative = returns); makes the closed form exact"
    )

    @property
    def demand_std(self) -> float:
        if self.demand_distribution == "poisson":
            return self.demand_mean**0.5
        return self.demand_mean * self.demand_cv

    def topology(self) -> Topology:
        return single_store(self.lead_time, self.holding_cost, self.underage_cost, lost_sales=False)

    def demand(self) -> DemandModel:
        return DemandModel((self.demand_mean,), (self.demand_std,), self.demand_distribution,
                           allow_negative=self.allow_negative_demand)

    def critical_fractile_level(self) -> float:
        """``S* = μ(L+1) + z·σ√(L+1)`` (optimal for untruncated normal demand)."""
        z = stats.norm.ppf(self.underage_cost / (self.underage_cost + self.holding_cost))
        periods = self.lead_time + 1
        return float(self.demand_mean * periods + z * self.demand_std * periods**0.5)

    def critical_fractile_cost(self) -> float:
        """Optimal expected cost per period ``(p+h)·σ√(L+1)·φ(z)`` (untruncated normal demand)."""
        z = stats.norm.ppf(self.underage_cost / (self.underage_cost + self.holding_cost))
        return float((self.underage_cost + self.holding_cost) * self.demand_std
                     * (self.lead_time + 1) ** 0.5 * stats.norm.pdf(z))


class SerialScenario(NetworkScenario):
    """A chain supplier → echelon K → … → echelon 1 (the store); backlog at the store.

    ``lead_times`` and ``holding_costs`` list the echelons upstream first; holding costs are
    installation costs (per unit on hand at that echelon; equivalent to echelon costs
    ``h_k − h_{k+1}`` up to a constant in-transit term). Preset: our reading of the paper's
    "echelon lead times [2, 4], warehouse 3, store 4; holding [0.1, 0.2], 0.5, 1" as a 4-echelon
    chain with lead times (2, 4, 3, 4) and holding costs (0.1, 0.2, 0.5, 1), upstream → store.
    """

    lead_times: tuple[int, ...] = Field((2, 4, 3, 4), min_length=1, max_length=10,
                                        description="lead time of each echelon's inbound link, upstream first")
    holding_costs: tuple[float, ...] = Field((0.1, 0.2, 0.5, 1.0), min_length=1, max_length=10,
                                             description="installation holding cost per echelon, upstream first")
    underage_cost: float = Field(9.0, gt=0, le=1e6, description="backlog cost per unit per period at the store (p)")
    demand_mean: float = Field(5.0, gt=0, le=1e6, description="mean demand per period")
    demand_std: float = Field(2.0, ge=0, le=1e6, description="standard deviation of demand per period")
    allow_negative_demand: bool = Field(False, description="normal demand not clipped at 0")

    @model_validator(mode="after")
    def _one_cost_per_echelon(self) -> SerialScenario:
        if len(self.lead_times) != len(self.holding_costs):
            raise ValueError("lead_times and holding_costs need one entry per echelon")
        if any(lead < 0 or lead > 30 for lead in self.lead_times):
            raise ValueError("lead_times must be in 0..30")
        if any(h < 0 for h in self.holding_costs):
            raise ValueError("holding_costs must be >= 0")
        if self.holding_costs and self.holding_costs[-1] <= 0:  # the store's: p / (p + h) must stay below 1
            raise ValueError("holding_costs: the store's (the last entry) must be > 0")
        return self

    def topology(self) -> Topology:
        return serial(self.lead_times, self.holding_costs, self.underage_cost)

    def demand(self) -> DemandModel:
        return DemandModel((self.demand_mean,), (self.demand_std,), "normal",
                           allow_negative=self.allow_negative_demand)


@dataclass(frozen=True)
class StoreParameters:
    """Per-store parameters ``[n_stores]`` drawn from the scenario's ranges."""

    demand_means: np.ndarray
    demand_cvs: np.ndarray
    lead_times: np.ndarray
    holding_costs: np.ndarray
    underage_costs: np.ndarray

    @property
    def demand_stds(self) -> np.ndarray:
        return self.demand_means * self.demand_cvs


def _stream(seed: int, attribute: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), attribute])


class _ManyStores(NetworkScenario):
    """Shared fields of the multi-store settings: store parameters drawn from ranges."""

    n_stores: int = Field(3, ge=1, le=200, description="number of stores")
    scenario_seed: int = Field(0, ge=0, description="seed of the store parameters drawn from the ranges")
    demand_mean_range: Range = Field((2.5, 7.5), description="store mean demand ~ U[low, high]")
    demand_cv_range: Range = Field((0.25, 0.5), description="store demand CV ~ U[low, high]")
    correlation: float = Field(0.5, ge=0, lt=1, description="pairwise correlation of store demands")
    store_lead_times: tuple[int, ...] = Field((2, 3), min_length=1, description="store lead time drawn from these")
    store_holding_range: Range = Field((0.7, 1.3), description="store holding cost ~ U[low, high]")
    store_underage_range: Range = Field((6.3, 11.7), description="store lost-sales / backlog cost ~ U[low, high]")

    @model_validator(mode="after")
    def _ranges_ordered(self) -> _ManyStores:
        for name, most in (("demand_mean_range", 1e6), ("demand_cv_range", 3.0), ("store_holding_range", 1e6),
                           ("store_underage_range", 1e6)):
            low, high = getattr(self, name)
            if not 0 <= low <= high <= most:
                raise ValueError(f"{name}: need 0 <= low <= high <= {most:g} (got {low}, {high})")
        # a store's critical ratio p / (p + h) must lie strictly inside (0, 1): its quantile is a stock level
        for name in ("demand_mean_range", "store_holding_range", "store_underage_range"):
            if getattr(self, name)[0] <= 0:
                raise ValueError(f"{name}: the low end must be > 0 (got {getattr(self, name)[0]})")
        if any(lead < 0 or lead > 30 for lead in self.store_lead_times):
            raise ValueError("store_lead_times must be in 0..30")
        return self

    @property
    def stores(self) -> StoreParameters:
        """The drawn store parameters (deterministic in ``scenario_seed``). Recomputed on every call
        (a few small draws): a cached value would survive ``model_copy(update=...)`` and describe
        the wrong stores."""
        n, seed = self.n_stores, self.scenario_seed
        return StoreParameters(
            demand_means=_stream(seed, 0).uniform(*self.demand_mean_range, size=n),
            demand_cvs=_stream(seed, 1).uniform(*self.demand_cv_range, size=n),
            lead_times=_stream(seed, 2).choice(np.array(self.store_lead_times), size=n),
            holding_costs=_stream(seed, 3).uniform(*self.store_holding_range, size=n),
            underage_costs=_stream(seed, 4).uniform(*self.store_underage_range, size=n),
        )

    def demand(self) -> DemandModel:
        s = self.stores
        return DemandModel(tuple(float(x) for x in s.demand_means), tuple(float(x) for x in s.demand_stds),
                           "normal", self.correlation)


class OneWarehouseScenario(_ManyStores):
    """One warehouse (holds stock, lead time from the supplier) feeding N stores with lost sales.

    Preset (HDPO paper): store means ~U[2.5, 7.5], CVs ~U[0.25, 0.5], pairwise correlation 0.5
    (normal demand clipped at 0), store lead times in {2, 3}, h ~U[0.7, 1.3], p ~U[6.3, 11.7];
    warehouse h = 0.3, L = 3. When store orders exceed the warehouse's stock each store gets
    ``request_i · min(1, stock / Σ requests)`` (proportional allocation).
    """

    warehouse_lead_time: int = Field(3, ge=0, le=30, description="supplier -> warehouse lead time")
    warehouse_holding_cost: float = Field(0.3, ge=0, le=1e6, description="warehouse holding cost per unit")
    lost_sales: bool = Field(True, description="lost sales at the stores (else backlog)")

    def topology(self) -> Topology:
        s = self.stores
        return one_warehouse(
            self.warehouse_lead_time, self.warehouse_holding_cost, tuple(int(x) for x in s.lead_times),
            tuple(float(x) for x in s.holding_costs), tuple(float(x) for x in s.underage_costs),
            self.lost_sales, hub="warehouse",
        )


class TransshipmentScenario(_ManyStores):
    """A transshipment centre that holds no stock serving N stores with backlog.

    Everything that arrives at the centre in a period is shipped to the stores in that period,
    split in proportion to the stores' requests (by mean demand when nobody asks). Store parameters are
    drawn as in the one-warehouse setting (our choice: the paper gives no separate ranges).
    """

    centre_lead_time: int = Field(3, ge=1, le=30, description="supplier -> centre lead time")

    def topology(self) -> Topology:
        s = self.stores
        return one_warehouse(
            self.centre_lead_time, 0.0, tuple(int(x) for x in s.lead_times),
            tuple(float(x) for x in s.holding_costs), tuple(float(x) for x in s.underage_costs),
            lost_sales=False, hub="centre",
        )


class MultiWarehouseScenario(_ManyStores):
    """W warehouses and N stores; a store can order from each adjacent warehouse (one order per link).

    ``adjacency`` (W rows of N 0/1 entries) sets the links explicitly; otherwise store ``i`` is
    linked to warehouses ``i, i+1, …, i+warehouses_per_store−1`` (mod W). Link lead times are
    drawn from ``store_lead_times``; each warehouse allocates proportionally when short.
    """

    n_stores: int = Field(6, ge=1, le=200, description="number of stores")
    n_warehouses: int = Field(3, ge=1, le=50, description="number of warehouses")
    warehouses_per_store: int = Field(2, ge=1, description="links per store when adjacency is not given")
    adjacency: tuple[tuple[int, ...], ...] | None = Field(None, description="explicit W x N 0/1 matrix")
    warehouse_lead_time: int = Field(3, ge=0, le=30, description="supplier -> warehouse lead time")
    warehouse_holding_cost: float = Field(0.3, ge=0, le=1e6, description="warehouse holding cost per unit")
    lost_sales: bool = Field(True, description="lost sales at the stores (else backlog)")

    @model_validator(mode="after")
    def _adjacency_shape(self) -> MultiWarehouseScenario:
        if self.adjacency is not None:
            if len(self.adjacency) != self.n_warehouses or any(len(r) != self.n_stores for r in self.adjacency):
                raise ValueError(f"adjacency must be {self.n_warehouses} rows of {self.n_stores} entries")
            if any(v not in (0, 1) for r in self.adjacency for v in r):
                raise ValueError("adjacency entries must be 0 or 1")
            lonely = [i for i in range(self.n_stores) if not any(r[i] for r in self.adjacency)]
            if lonely:
                raise ValueError(f"adjacency: every store needs at least one adjacent warehouse (store {lonely[0]} "
                                 "has none)")
        elif self.warehouses_per_store > self.n_warehouses:
            raise ValueError("warehouses_per_store cannot exceed n_warehouses")
        return self

    def adjacency_matrix(self) -> np.ndarray:
        """``[W, N]`` bool."""
        if self.adjacency is not None:
            return np.array(self.adjacency, dtype=bool)
        adj = np.zeros((self.n_warehouses, self.n_stores), dtype=bool)
        for i in range(self.n_stores):
            for k in range(self.warehouses_per_store):
                adj[(i + k) % self.n_warehouses, i] = True
        return adj

    def topology(self) -> Topology:
        s, adj = self.stores, self.adjacency_matrix()
        n_links = int(adj.sum())
        link_leads = _stream(self.scenario_seed, 5).choice(np.array(self.store_lead_times), size=n_links)
        w = self.n_warehouses
        return multi_warehouse(
            adj, (self.warehouse_lead_time,) * w, (self.warehouse_holding_cost,) * w,
            tuple(int(x) for x in link_leads), tuple(float(x) for x in s.holding_costs),
            tuple(float(x) for x in s.underage_costs), self.lost_sales,
        )


NETWORK_SCENARIOS: dict[str, NetworkScenario] = {
    "backlog": BacklogScenario(),
    "serial": SerialScenario(),
    "one_warehouse": OneWarehouseScenario(),
    "transshipment": TransshipmentScenario(),
    "multi_warehouse": MultiWarehouseScenario(),
}
