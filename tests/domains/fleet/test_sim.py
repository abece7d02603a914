"""The fleet simulator keeps every operating rule, conserves passengers and time, and the greedy
baseline beats random on the same days."""

from __future__ import annotations

import torch

from decisionlab.core import RandomPolicy, Sum, make_generator, run
from decisionlab.domains.fleet.checks import violations
from decisionlab.domains.fleet.policies import GreedyPolicy
from decisionlab.domains.fleet.scenario import PRESETS
from decisionlab.domains.fleet.sim import FleetSim


def test_random_masked_decisions_never_break_a_rule_under_heavy_disruption() -> None:
    """At least 100,000 decisions of a random legal policy with delays, closures and downtime frequent
    and parking tight (40 aircraft on 40 pads): no rule broken, no illegal choice offered."""
    scenario = PRESETS["uam_8x40"].model_copy(update={
        "parking_pads": 5, "charging_pads": 2, "delay_prob": 0.5, "closure_prob": 0.3, "downtime_prob": 0.5,
        "downtime_h": 1.5, "battery_kwh": 60.0})
    sim = FleetSim(scenario)
    broken: dict[str, int] = {}
    decisions = torch.zeros((), dtype=torch.long)

    def check(step) -> None:  # noqa: ANN001 - the engine's Step
        nonlocal decisions
        alive = step.alive if step.alive is not None else torch.ones_like(step.state.time_h, dtype=torch.bool)
        for rule, count in violations(sim, step.state, step.action, step.result.state).items():
            broken[rule] = broken.get(rule, 0) + int((count * alive).sum())
        broken["illegal"] = broken.get("illegal", 0) + int((step.info["illegal"] * alive).sum())
        decisions += alive.sum()

    generator = make_generator(3)
    run(sim, RandomPolicy(sim, generator), batch=160, generator=generator, hooks=[check])
    assert int(decisions) >= 100_000, int(decisions)
    assert broken and not any(broken.values()), broken


def test_passengers_and_time_are_conserved_over_a_day() -> None:
    sim = FleetSim(PRESETS["uam_8x40"])
    generator = make_generator(0)
    state = sim.reset(16, generator)
    done = run(sim, GreedyPolicy(sim), state=state, generator=generator,
               reducers={name: Sum(name) for name in ("arrived", "boarded", "spilled")})
    final = done.final_state
    arrived = state.waiting.sum((1, 2)) + done.totals["arrived"]
    accounted = done.totals["boarded"] + done.totals["spilled"] + final.waiting.sum((1, 2))
    torch.testing.assert_close(accounted, arrived, rtol=1e-4, atol=1e-2)
    assert torch.all(final.time_h == sim.scenario.day_end_h)
    # an ended day stays ended: one more decision changes nothing
    again = sim.step(final, torch.zeros_like(final.actor), torch.zeros(16, 0))
    assert torch.equal(again.state.waiting, final.waiting) and torch.equal(again.state.location, final.location)
    assert not again.reward.any() and bool(again.terminated.all())
    assert torch.equal(arrived, state.day.arrivals.sum((1, 2, 3)))  # every slot's passengers arrived once


def test_greedy_earns_more_than_random_on_the_same_days() -> None:
    sim = FleetSim(PRESETS["uam_8x40"])
    profits = {}
    for name, make in (("random", lambda g: RandomPolicy(sim, g)), ("greedy", lambda g: GreedyPolicy(sim))):
        generator = make_generator(11)
        state = sim.reset(32, generator)  # the same 32 days for both
        policy_generator = make_generator(12)
        profits[name] = run(sim, make(policy_generator), state=state, generator=generator,
                            reducers={"profit": Sum("profit")}).totals["profit"]
    diff = profits["greedy"] - profits["random"]
    half_width = 2.04 * diff.std() / diff.numel() ** 0.5
    assert diff.mean() - half_width > 0, (profits["greedy"].mean(), profits["random"].mean())
    assert profits["greedy"].mean() > 0


def test_utilisation_counts_only_the_hours_within_the_day() -> None:
    # a day of 0.1 h is shorter than any flight: without clipping, flights that take off in it would count
    # several times the day; with it, every aircraft flies at most the whole day (utilisation ≤ 1)
    from decisionlab.domains.fleet.metrics import simulate_days

    scenario = PRESETS["uam_small"].model_copy(update={"day_start_h": 23.9, "day_end_h": 24.0})
    sim = FleetSim(scenario)
    for policy in (GreedyPolicy(sim), RandomPolicy(sim, make_generator(3))):
        totals = simulate_days(sim, policy, sim.reset(8, make_generator(2)))
        utilisation = totals["utilisation"]
        # (up to the rounding of float32 hours)
        assert bool((utilisation <= 1.0 + 1e-4).all()) and bool((utilisation >= 0.0).all()), utilisation
        assert bool((totals["flight_hours"] > totals["flight_hours_in_day"]).any())  # some land after the end
    # a long day: flight hours within it are the flight hours, but for the last departures
    totals = simulate_days(FleetSim(PRESETS["uam_small"]), GreedyPolicy(FleetSim(PRESETS["uam_small"])),
                           FleetSim(PRESETS["uam_small"]).reset(8, make_generator(2)))
    assert bool((totals["flight_hours_in_day"] <= totals["flight_hours"] + 1e-9).all())
    assert float(totals["flight_hours_in_day"].sum()) >= 0.9 * float(totals["flight_hours"].sum())
