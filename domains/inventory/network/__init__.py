"""Inventory networks: every setting of the HDPO paper on one batched, differentiable simulator.

- :mod:`.topology`: nodes, supply links, costs, demand (data) and builders of the paper's networks;
- :mod:`.scenario`: pydantic scenario models and the presets ``backlog``, ``serial``,
  ``one_warehouse``, ``transshipment``, ``multi_warehouse``;
- :mod:`.sim`: :class:`NetworkSim`, the batched simulator (one class for every network);
- :mod:`.baselines`: base-stock / echelon-stock heuristics with levels found by simulation search;
- :mod:`.train`: HDPO with a vanilla MLP over the flat observation;
- :mod:`.metrics`: per-episode KPIs.
"""

from __future__ import annotations

from decisionlab.domains.inventory.network.scenario import (
    NETWORK_SCENARIOS,
    BacklogScenario,
    MultiWarehouseScenario,
    NetworkScenario,
    OneWarehouseScenario,
    SerialScenario,
    TransshipmentScenario,
)
from decisionlab.domains.inventory.network.sim import NetworkSim, NetworkState
from decisionlab.domains.inventory.network.topology import DemandModel, Edge, Node, Topology

__all__ = [
    "NETWORK_SCENARIOS",
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
