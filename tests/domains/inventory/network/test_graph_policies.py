"""Symmetry-aware and GNN network policies: features match the simulator, weights do not depend on the
network's size, sibling stores are treated alike (permutation equivariance), and short HDPO runs learn."""

from __future__ import annotations

import json

import pytest
import torch

from decisionlab.core.errors import DecisionlabError
from decisionlab.core.store.registry import PolicyRegistry
from decisionlab.domains.inventory import SPEC
from decisionlab.domains.inventory.network.features import GraphFeatures, node_feature_names
from decisionlab.domains.inventory.network.graph_policies import GNNPolicy, SymmetryAwarePolicy
from decisionlab.domains.inventory.network.metrics import network_episode_metrics
from decisionlab.domains.inventory.network.scenario import MultiWarehouseScenario, OneWarehouseScenario
from decisionlab.domains.inventory.network.sim import NetworkSim
from decisionlab.domains.inventory.network.topology import Topology
from decisionlab.domains.inventory.network.train import (
    NetworkHDPOSettings,
    train_network_hdpo,
)

CPU = torch.device("cpu")
POLICIES = (SymmetryAwarePolicy, GNNPolicy)


def _state(sim: NetworkSim, batch: int = 16, seed: int = 0):
    return sim.random_state(batch, torch.Generator().manual_seed(seed))


def test_node_features_are_the_scaled_state() -> None:
    sim = NetworkSim(MultiWarehouseScenario(), CPU)
    state = _state(sim)
    features = GraphFeatures.for_simulator(sim, slots=2)
    nodes = features.nodes(sim.observe(state))
    names = node_feature_names(2)
    assert nodes.shape == (16, sim.n_nodes, len(names))
    flow = sim.node_flow
    torch.testing.assert_close(nodes[..., names.index("on_hand")], state.on_hand * sim.can_hold / flow)
    inbound = torch.einsum("bek,en->bn", state.pipeline, sim.in_incidence)
    local = (state.on_hand * sim.can_hold + inbound) / flow
    torch.testing.assert_close(nodes[..., names.index("local_position")], local)
    # slots past the last one are folded into it: the slots sum to everything inbound
    slots = nodes[..., names.index("inbound_slot0") : names.index("inbound_slot1") + 1].sum(-1)
    torch.testing.assert_close(slots, inbound / flow)
    in_transit = features.edges(sim.observe(state))[..., 0]
    torch.testing.assert_close(in_transit, state.pipeline.sum(-1) / sim.edge_flow)


@pytest.mark.parametrize("policy_class", POLICIES)
def test_same_weights_act_on_networks_of_any_size(policy_class) -> None:
    torch.manual_seed(0)
    policy = policy_class(hidden=16)
    keys = set(policy.state_dict())
    for n in (2, 5, 20):
        sim = NetworkSim(OneWarehouseScenario(n_stores=n), CPU)
        orders = policy.bind(sim)(sim.observe(_state(sim)))
        assert orders.shape == (16, n + 1) and bool((orders >= 0).all())
        assert set(policy.state_dict()) == keys  # nothing about the network is saved


@pytest.mark.parametrize("policy_class", POLICIES)
def test_permuting_sibling_stores_permutes_their_orders(policy_class) -> None:
    torch.manual_seed(1)
    scenario = OneWarehouseScenario(n_stores=4)
    sim = NetworkSim(scenario, CPU)
    topo = sim.topology
    perm = [3, 1, 0, 2]  # new store i is old store perm[i]
    nodes = (*topo.nodes[:2], *(topo.nodes[2 + j] for j in perm))
    edges = (topo.edges[0], *(type(topo.edges[0])(1, 2 + i, topo.edges[1 + j].lead_time) for i, j in enumerate(perm)))
    demand = scenario.demand()
    permuted_demand = type(demand)(tuple(demand.means[j] for j in perm), tuple(demand.stds[j] for j in perm),
                                   demand.distribution, demand.correlation)
    sim_p = NetworkSim.from_parts(Topology(nodes, edges, topo.lost_sales), permuted_demand, CPU)
    state = _state(sim)
    on_hand = torch.cat([state.on_hand[:, :2], state.on_hand[:, [2 + j for j in perm]]], 1)
    pipeline = torch.cat([state.pipeline[:, :1], state.pipeline[:, [1 + j for j in perm]]], 1)
    state_p = type(state)(on_hand, pipeline)
    policy = policy_class(hidden=16)
    orders = policy.bind(sim)(sim.observe(state))
    orders_p = policy.bind(sim_p)(sim_p.observe(state_p))
    torch.testing.assert_close(orders_p, torch.cat([orders[:, :1], orders[:, [1 + j for j in perm]]], 1))


def _quick(architecture: str) -> NetworkHDPOSettings:
    return NetworkHDPOSettings(max_steps=100, batch_size=128, periods=24, learning_rate=1e-2, eval_every=25,
                               eval_from=0.0, eval_paths=128, eval_periods=200, eval_warmup=50,
                               architecture=architecture, graph_hidden=32)


@pytest.fixture(scope="module")
def gnn_outcome():
    return train_network_hdpo(OneWarehouseScenario(n_stores=3), 0, CPU, progress=False, settings=_quick("gnn"))


def test_short_gnn_run_learns(gnn_outcome) -> None:
    scenario = OneWarehouseScenario(n_stores=3, horizon_periods=600, warmup_periods=100)
    torch.manual_seed(0)
    untrained = GNNPolicy(hidden=32).bind(NetworkSim(scenario, CPU))
    trained = network_episode_metrics(scenario, gnn_outcome.policy, 32, 5, CPU)["cost_per_period"].mean()
    initial = network_episode_metrics(scenario, untrained, 32, 5, CPU)["cost_per_period"].mean()
    assert trained < 0.9 * initial


def test_gnn_round_trips_through_the_registry_and_serves_a_larger_network(gnn_outcome, tmp_path) -> None:
    registry = PolicyRegistry(tmp_path)
    config = json.loads(json.dumps(gnn_outcome.policy_config))
    assert config["kind"] == "network_gnn"
    record = registry.save("inventory", "gnn", gnn_outcome.policy.state_dict(), {"policy_config": config})
    loaded_config, weights = record.card["policy_config"], registry.load_weights(record)
    bigger = OneWarehouseScenario(n_stores=8)
    policy = SPEC.load_policy(loaded_config, weights, bigger, CPU)
    sim = NetworkSim(bigger, CPU)
    obs = sim.observe(_state(sim))
    expected = gnn_outcome.policy.bind(sim)(obs)
    torch.testing.assert_close(policy(obs), expected)
    with pytest.raises(DecisionlabError):
        SPEC.load_policy({**loaded_config, "kind": "network_unknown"}, weights, bigger, CPU)


def test_symmetry_aware_short_run_learns() -> None:
    scenario = OneWarehouseScenario(n_stores=3, horizon_periods=600, warmup_periods=100)
    outcome = train_network_hdpo(scenario, 0, CPU, progress=False, settings=_quick("symmetry"))
    assert outcome.policy_config["kind"] == "network_symmetry"
    torch.manual_seed(0)
    untrained = SymmetryAwarePolicy(hidden=32).bind(NetworkSim(scenario, CPU))
    trained = network_episode_metrics(scenario, outcome.policy, 32, 5, CPU)["cost_per_period"].mean()
    initial = network_episode_metrics(scenario, untrained, 32, 5, CPU)["cost_per_period"].mean()
    assert trained < 0.9 * initial


def test_architecture_is_a_user_option_for_networks_only() -> None:
    from decisionlab.domains.inventory import SPEC
    from decisionlab.domains.inventory.network.train import network_settings_from_options
    from decisionlab.domains.inventory.single_store.scenario import LostSalesScenario

    settings = network_settings_from_options(OneWarehouseScenario(), {"architecture": "gnn", "train_paths": 64})
    assert settings.architecture == "gnn" and settings.train_paths == 64 and not settings.persistent
    with pytest.raises(DecisionlabError, match="architecture"):
        SPEC.algos["hdpo"].train(LostSalesScenario(), 0, CPU, False, {"architecture": "gnn"})


@pytest.mark.slow
def test_gnn_trained_on_five_stores_is_within_three_percent_of_one_trained_on_twenty() -> None:
    from decisionlab.core.evaluation import mean_ci95

    def scenario(n: int) -> OneWarehouseScenario:
        return OneWarehouseScenario(n_stores=n, horizon_periods=3000, warmup_periods=500)

    settings = NetworkHDPOSettings(architecture="gnn")
    small = train_network_hdpo(scenario(5), 0, CPU, False, settings=settings).policy
    large = train_network_hdpo(scenario(20), 0, CPU, False, settings=settings).policy
    small.bind(NetworkSim(scenario(20), CPU))
    transferred = network_episode_metrics(scenario(20), small, 64, 123, CPU)["cost_per_period"]
    retrained = network_episode_metrics(scenario(20), large, 64, 123, CPU)["cost_per_period"]
    gap, half = mean_ci95(transferred - retrained)
    assert (gap + half) / retrained.mean() < 0.03
