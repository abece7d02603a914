"""A warm start for learned Gather-Trade-Build workers: imitate the scripted workers (DAgger), then PPO.

Learning to gather two resources and build from the utility alone takes the AI Economist hundreds of
millions of steps; a CPU run of ours has a few million. So the workers' network first imitates
:class:`~decisionlab.domains.taxation.gtb_workers.GatherBuildWorkers` under random schedules (each
economy's rates drawn at its reset), DAgger-style: the scripted choice labels every state, and the
economies move by the learner's own sampled choice with probability ``1 − β`` (β annealed from 1 to
``beta_end``), so it learns in the states its own mistakes lead to. Then PPO refines it on the utility,
as in the paper, from a worker that already gathers and builds, and that already works less under
higher taxes. A library would need an SB3 policy (``imitation``'s DAgger trains SB3 policies, not the
core's actor-critics): the loop below is that algorithm's few lines.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from decisionlab.core import ActorCriticPolicy, Progress
from decisionlab.domains.taxation.gtb import NOOP, PLANNER, WORKERS, GatherTradeBuildSim
from decisionlab.domains.taxation.gtb_workers import GatherBuildWorkers
from decisionlab.domains.taxation.scenario import GatherTradeBuildScenario

ACTIVE_WEIGHT = 4.0
"""Weight of a step in which the scripted worker does something (rather than rest) in the imitation loss."""
RICHEST = 300.0
"""Most coin a worker starts an imitation episode with."""


def random_rates(batch: int, brackets: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``[B, 1, K]`` schedules to imitate under: a random cap times uniform rates (no tax to heavy tax)."""
    cap = torch.rand(batch, 1, 1, generator=generator, device=device)
    return cap * torch.rand(batch, 1, brackets, generator=generator, device=device)


def varied_start(sim: GatherTradeBuildSim, economies: int, generator: torch.Generator) -> Any:
    """A fresh episode whose workers start with random coin (0 to ``RICHEST``): the scripted workers rest
    once a house is worth too little to them, and imitation must see both sides of that line."""
    state = sim.reset(economies, generator)
    coin = RICHEST * torch.rand(state.coin.shape, generator=generator, device=state.coin.device, dtype=torch.float64)
    return dataclasses.replace(state, coin=coin, period_start_coin=coin.clone(),
                               utility=sim.utility(coin, state.labour))


def imitate(member: ActorCriticPolicy, scenario: GatherTradeBuildScenario, steps: int, economies: int,
            generator: torch.Generator, learning_rate: float = 1e-3, beta_end: float = 0.3, horizon: int = 200,
            progress: bool = False) -> list[float]:
    """Train ``member`` (the workers' actor-critic) to choose what the scripted workers choose for
    ``steps`` steps of ``economies`` economies, in episodes cut after ``horizon`` steps (the scripted workers
    do most of their moving early; later most of them rest) from :func:`varied_start` (module docstring).
    Returns the loss every 100 steps."""
    device = next(member.net.parameters()).device
    sim = GatherTradeBuildSim(scenario, device)
    horizon = min(horizon, sim.horizon)
    member.bind(sim)
    reader, expert = member.reader, GatherBuildWorkers(scenario, device)
    assert reader is not None
    optimiser = torch.optim.Adam(member.net.parameters(), lr=learning_rate)
    draws = torch.Generator(device=device).manual_seed(int(torch.randint(2**31, (1,), generator=generator)))
    state, t, paths, rates = None, 0, None, None
    losses: list[float] = []
    meter = Progress(steps, "workers imitate the scripted workers", enabled=progress)
    for i in range(steps):
        if state is None or t == horizon:
            state = varied_start(sim, economies, generator)
            paths = sim.sample_exogenous(economies, horizon, generator)
            rates, t = random_rates(economies, scenario.n_brackets, generator, device), 0
        obs = sim.observe(state)
        target = reader.rows({WORKERS: expert.act(obs)[WORKERS]})
        distribution = member.net.distribution(reader.features(sim, obs), reader.mask(sim, obs))
        # the scripted workers rest in most steps: their moves weigh more, or the learner rests where they work
        weight = torch.where(target == NOOP, 1.0, ACTIVE_WEIGHT)
        loss = -(weight * distribution.log_prob(target)).sum() / weight.sum()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        beta = 1.0 - (1.0 - beta_end) * i / max(steps - 1, 1)
        with torch.no_grad():
            own = distribution.sample(draws)
            chosen = torch.where(torch.rand(own.shape, generator=draws, device=device) < beta, target, own)
        state = sim.step(state, {WORKERS: reader.to_env(chosen), PLANNER: rates}, paths[:, t]).state
        t += 1
        if i % 100 == 0:
            losses.append(float(loss.detach()))
            meter.show(loss=losses[-1])
        meter.update()
    meter.close()
    return losses


def agreement(member: ActorCriticPolicy, scenario: GatherTradeBuildScenario, economies: int, steps: int,
              generator: torch.Generator) -> float:
    """Share of the worker-steps in which ``member``'s deterministic choice is the scripted workers' (the
    economies moved by the member, under random schedules)."""
    device = next(member.net.parameters()).device
    sim = GatherTradeBuildSim(scenario, device)
    member.bind(sim)
    expert = GatherBuildWorkers(scenario, device)
    state = sim.reset(economies, generator)
    paths = sim.sample_exogenous(economies, steps, generator)
    rates = random_rates(economies, scenario.n_brackets, generator, device)
    same = total = 0
    for t in range(steps):
        obs = sim.observe(state)
        own = member.act(obs)[WORKERS]
        same += int((own == expert.act(obs)[WORKERS]).sum())
        total += own.numel()
        state = sim.step(state, {WORKERS: own, PLANNER: rates}, paths[:, t]).state
    return same / max(total, 1)


__all__ = ["agreement", "imitate", "random_rates", "varied_start"]
