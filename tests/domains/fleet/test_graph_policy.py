"""The graph net's traced forward pass (``traced_logits``, dense graph convolutions) against its eager one
(torch-geometric's sparse message passing)."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.nn import GATv2Conv

from decisionlab.core import make_generator
from decisionlab.domains.fleet.graph_policy import (
    _TRACES,
    DENSE_ROWS,
    FleetGraphNet,
    dense_gatv2,
    traced_logits,
)
from decisionlab.domains.fleet.scenario import PRESETS
from decisionlab.domains.fleet.sim import FleetSim


def features(scenario_name: str, batch: int, seed: int, steps: int = 5) -> torch.Tensor:
    """Flat observations of ``batch`` days a few random legal decisions in."""
    sim = FleetSim(PRESETS[scenario_name])
    state = sim.reset(batch, make_generator(seed))
    generator = make_generator(seed + 1)
    for _ in range(steps):
        legal = sim.observe(state)["legal"]
        choice = torch.where(legal, torch.rand(legal.shape, generator=generator), -1.0).argmax(1)
        state = sim.step(state, choice, torch.zeros(batch, 0)).state
    return sim.flat_observation(sim.observe(state))


def test_the_trace_gives_the_eager_outputs_for_every_shape_and_follows_weight_updates() -> None:
    torch.manual_seed(0)
    net = FleetGraphNet(8, 40, hidden=32, heads=4)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    for batch in (1, 3, DENSE_ROWS + 4, 1):  # dense and sparse traces; batch 1 twice: the stored trace runs
        for seed in (0, 1):
            x = features("uam_8x40", batch, seed)
            with torch.no_grad():
                got, want = traced_logits(net, x), net._logits(x)
            for a, b in zip(got, want, strict=True):
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert {key[2] for key in _TRACES[net]} == {tuple(features("uam_8x40", 1, 0).shape),
                                                 tuple(features("uam_8x40", 3, 0).shape),
                                                 tuple(features("uam_8x40", DENSE_ROWS + 4, 0).shape)}
    assert all(trace is not None for trace in _TRACES[net].values())
    # an optimiser step changes the parameters in place: the stored trace must see the new weights
    x = features("uam_8x40", 1, 2)
    loss = net._logits(x)[0].logsumexp(1).sum() + net._logits(x)[1].sum()
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        after, eager = traced_logits(net, x), net._logits(x)
    for a, b in zip(after, eager, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_a_resized_net_gets_its_own_trace() -> None:
    """The same weights read 12 vertiports / 60 aircraft: another layout, another trace, the eager outputs."""
    torch.manual_seed(1)
    net = FleetGraphNet(8, 40, hidden=32, heads=4)
    small = features("uam_8x40", 2, 0)
    bigger_scenario = PRESETS["uam_8x40"].model_copy(update={"n_vertiports": 12, "n_aircraft": 60})
    sim = FleetSim(bigger_scenario)
    state = sim.reset(2, make_generator(3))
    bigger = sim.flat_observation(sim.observe(state))
    with torch.no_grad():
        traced_logits(net, small)
        net.resize(12, 60)
        got, want = traced_logits(net, bigger), net._logits(bigger)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert len(_TRACES[net]) == 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dense_gatv2_is_torch_geometric_gatv2_on_bipartite_graphs_with_lonely_targets(seed: int) -> None:
    """Sources pick one target each at random, so some targets have no edge (they get the bias alone)."""
    torch.manual_seed(seed)
    b, n_src, n_dst, width = 3, 11, 5, 16
    conv = GATv2Conv((width, width), 4, heads=4, add_self_loops=False)
    torch.nn.init.normal_(conv.bias)  # a zero bias would hide a lonely target's output
    source, target = torch.randn(b, n_src, width), torch.randn(b, n_dst, width)
    where = torch.randint(0, n_dst - 2, (b, n_src))  # the last two targets are never picked
    edge_index = torch.stack([torch.arange(b * n_src), (where + (torch.arange(b) * n_dst)[:, None]).flatten()])
    want = conv((source.reshape(-1, width), target.reshape(-1, width)), edge_index).reshape(b, n_dst, -1)
    got = dense_gatv2(conv, source, target, where[:, :, None] == torch.arange(n_dst))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got[:, -2:], conv.bias.expand(b, 2, -1))


@pytest.mark.parametrize("nodes", [2, 5, 9])
def test_dense_gatv2_is_torch_geometric_gatv2_on_complete_graphs_with_edge_features_and_self_loops(nodes: int) -> None:
    """GATv2Conv adds a self loop per node whose edge features are the mean of the node's incoming edges'."""
    torch.manual_seed(nodes)
    b, width, edge_dim = 2, 12, 3
    conv = GATv2Conv(width, 3, heads=4, edge_dim=edge_dim)
    x, attr = torch.randn(b, nodes, width), torch.randn(b, nodes, nodes, edge_dim)  # attr[b, j, i]: edge j → i
    off = ~torch.eye(nodes, dtype=torch.bool)
    src, dst = off.nonzero(as_tuple=True)
    edge_index = torch.cat([torch.stack([src + k * nodes, dst + k * nodes]) for k in range(b)], 1)
    want = conv(x.reshape(-1, width), edge_index, attr[:, src, dst].reshape(-1, edge_dim)).reshape(b, nodes, -1)
    loops = attr.masked_fill(~off[None, :, :, None], 0.0).sum(1) / (nodes - 1)  # [B, i, E]
    dense_attr = torch.where(off[None, :, :, None], attr, loops[:, None])
    got = dense_gatv2(conv, x, x, torch.ones(1, nodes, nodes, dtype=torch.bool), dense_attr)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
