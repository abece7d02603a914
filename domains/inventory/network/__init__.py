"""The inventory-networks setting: every network of the HDPO paper on one batched, differentiable simulator.

- :mod:`.topology`: nodes, supply links, costs, demand (data) and builders of the paper's networks;
- :mod:`.scenario`: pydantic scenario models and the presets ``backlog``, ``serial``,
  ``one_warehouse``, ``transshipment``, ``multi_warehouse``;
- :mod:`.sim`: :class:`NetworkSim`, the batched simulator (one class for every network);
- :mod:`.policies`: order-up-to baselines on local / echelon positions and the vanilla HDPO MLP;
  :mod:`.search`: their levels by coordinate search; :mod:`.graph_policies` and :mod:`.features`:
  the symmetry-aware and GNN policies that act on networks of any size;
- :mod:`.train`: HDPO over the three architectures;
- :mod:`.metrics`, :mod:`.serve`, :mod:`.view`, :mod:`.efficiency`: KPIs, serving converters (per-node
  states by name), the network tab and the data-efficiency tab.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from decisionlab.core import AlgoSpec, PolicySpec, SettingSpec, ViewSpec
from decisionlab.domains.inventory.network.metrics import NETWORK_METRICS, network_episode_metrics
from decisionlab.domains.inventory.network.policies import (
    LevelPolicy,
    critical_fractile,
    newsvendor_levels,
    single_backlog_store,
    two_echelon_distribution,
)
from decisionlab.domains.inventory.network.scenario import (
    NETWORK_SCENARIOS,
    BacklogScenario,
    MultiWarehouseScenario,
    NetworkScenario,
    OneWarehouseScenario,
    SerialScenario,
    TransshipmentScenario,
)
from decisionlab.domains.inventory.network.serve import SERVING
from decisionlab.domains.inventory.network.sim import NetworkSim, NetworkState
from decisionlab.domains.inventory.network.topology import DemandModel, Edge, Node, Topology
from decisionlab.domains.inventory.network.train import NetworkHDPOOptions, algo_hdpo

HERE = "decisionlab.domains.inventory.network"


def searched(kind: str, capped: bool = False) -> Callable[[NetworkScenario, torch.device], LevelPolicy]:
    """The builder of a searched order-up-to baseline (levels searched on the CPU once, cached)."""

    def build(scenario: NetworkScenario, device: torch.device) -> LevelPolicy:
        from decisionlab.domains.inventory.network import search

        found = {("local", False): search.best_base_stock, ("echelon", False): search.best_echelon_stock,
                 ("echelon", True): search.best_capped_echelon_stock}[(kind, capped)](scenario)
        return found if torch.device(device) == found.levels.device else found.to(NetworkSim(scenario, device))

    return build


SETTING = SettingSpec(
    name="network",
    title="Inventory networks",
    description="warehouses, transshipment centres and stores on supply links with lead times; lost sales or "
    "backlog (HDPO paper settings)",
    scenario_model=NetworkScenario,
    presets=NETWORK_SCENARIOS,
    make_simulator=lambda scenario, device: NetworkSim(scenario, device),
    episode_metrics=network_episode_metrics,
    metrics=NETWORK_METRICS,
    primary_metric="cost_per_period",
    policies={
        "base_stock": PolicySpec(
            "base_stock", "every node orders up to a level on its local position (on hand + in transit to it); "
            "levels by coordinate search on common random numbers", searched("local"), expensive=True),
        "echelon_stock": PolicySpec(
            "echelon_stock", "warehouses/centres order up to an echelon level (their stock + everything downstream, "
            "in transit included), stores up to a local level; levels by coordinate search", searched("echelon"),
            expensive=True),
        "capped_echelon_stock": PolicySpec(
            "capped_echelon_stock", "echelon_stock with a cap on each store's order (lost sales); levels and caps "
            "by coordinate search", searched("echelon", capped=True),
            check=lambda s: two_echelon_distribution(s.topology()), expensive=True),
        "newsvendor_echelon": PolicySpec(
            "newsvendor_echelon", "no search: echelon_stock at newsvendor-style levels (mean + z std of the demand "
            "each echelon position covers)", lambda s, d: newsvendor_levels(s, "echelon", d)),
        "newsvendor_local": PolicySpec(
            "newsvendor_local", "no search: base_stock on local positions at newsvendor-style levels",
            lambda s, d: newsvendor_levels(s, "local", d)),
        "critical_fractile": PolicySpec(
            "critical_fractile", "one backlogging store: the closed-form base-stock level mu(L+1) + z sigma sqrt(L+1)",
            critical_fractile, check=lambda s: single_backlog_store(s.topology())),
    },
    algos={
        "hdpo": AlgoSpec(
            "hdpo", "pathwise gradients through the simulator (HDPO); a vanilla MLP, a symmetry-aware net or a GNN "
            "(--algo-set architecture=...)", algo_hdpo, NetworkHDPOOptions,
            smoke_options={"max_steps": 3, "batch_size": 16}),
    },
    policy_kinds={
        "network_mlp": f"{HERE}.policies:NetworkMLP",
        "network_symmetry": f"{HERE}.graph_policies:SymmetryAwarePolicy",
        "network_gnn": f"{HERE}.graph_policies:GNNPolicy",
    },
    serving=SERVING,
    views=(
        ViewSpec("Network", f"{HERE}.view:network_tab"),
        ViewSpec("Cost breakdown", "decisionlab.domains.inventory.views:cost_breakdown_tab"),
        ViewSpec("Data efficiency", f"{HERE}.efficiency:efficiency_tab"),
    ),
    default_policies=("critical_fractile", "newsvendor_echelon", "newsvendor_local"),
    default_episodes=32,
    quick={"horizon_periods": 1000, "warmup_periods": 200},
    smoke={"horizon_periods": 300, "warmup_periods": 50, "n_stores": 1},  # the searches take seconds, not minutes
)

__all__ = [
    "NETWORK_SCENARIOS",
    "SETTING",
    "BacklogScenario",
    "DemandModel",
    "Edge",
    "MultiWarehouseScenario",
    "NetworkScenario",
    "NetworkSim",
    "NetworkState",
    "Node",
    "OneWarehouseScenario",
    "SerialScenario",
    "Topology",
    "TransshipmentScenario",
]
