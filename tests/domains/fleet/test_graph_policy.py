"""The graph net's traced forward pass (``traced_logits``) against its eager one."""

from __future__ import annotations

import torch

from decisionlab.core import make_generator
from decisionlab.domains.fleet.graph_policy import _TRACES, FleetGraphNet, traced_logits
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
    for batch in (1, 3, 1):  # batch 1 twice: the second call runs the stored trace
        for seed in (0, 1):
            x = features("uam_8x40", batch, seed)
            with torch.no_grad():
                got, want = traced_logits(net, x), net._logits(x)
            for a, b in zip(got, want, strict=True):
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert {key[2] for key in _TRACES[net]} == {tuple(features("uam_8x40", 1, 0).shape),
                                                 tuple(features("uam_8x40", 3, 0).shape)}
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
