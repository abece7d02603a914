"""A policy-improvement step for the workers, before and after they catch up with a schedule: each worker
tries incomes across its whole range, and the network's deterministic response is fitted to the best one it
found (before a catch-up, PPO then refines it; after one, the planner faces responses no try beats).

Why: a high marginal rate above a bracket's cut-off gives a worker's utility two local optima, bunching at
the cut-off or earning well above it. A Gaussian policy explores around its mean; a worker in the worse
basin meets the better one only in rare far draws, whose advantage the valley between outweighs, and it
stays. The planner then learns to tax exactly there (a learned worker does not flee where an exact best
responder would), and the schedule it keeps is worth less than its own workers tell it. A wide search
finds the other basin at once.

Each try is one bandit pull: the worker's learning reward from the simulator, with every other worker's
choice left out (the rebate is not in it), exactly what PPO learns from. The tries are the current
response, incomes a hair below each bracket cut-off (bunching; the schedule, cut-offs included, is
public), and uniformly drawn shares of the no-tax income. Only a try that beats the current response
moves the target.
"""

from __future__ import annotations

from typing import Any

import torch

from decisionlab.core import ActorCritic, group_rows
from decisionlab.domains.taxation.sim import PLANNER, WORKERS


def improve_workers(sim: Any, nets: dict[str, ActorCritic], generator: torch.Generator, economies: int,
                    tries: int = 64, fit_steps: int = 500, learning_rate: float = 3e-3,
                    tolerance: float = 2e-3) -> float:
    """Fit the workers' deterministic response to the best of ``tries`` incomes (module docstring).

    ``sim`` is the two-group simulator the workers catch up in (its learning rewards); the planner sets the
    rates of ``economies`` economies by a draw from its policy, as in a catch-up. The fit (Adam on the
    actor, squared error in shares) stops once every response is within ``tolerance`` of its target (a
    worker bunched at a cut-off must not be fitted into the bracket above it) or after ``fit_steps``.
    Returns the share of workers whose best try beat their current response."""
    readers = group_rows(sim.spaces)
    planner, workers = readers[PLANNER], readers[WORKERS]
    net = nets[WORKERS]
    device = sim.device
    # the search's own draws on the simulator's device; resets and exogenous paths from ``generator``, as PPO's
    rng = torch.Generator(device).manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
    state = sim.reset(economies, generator)
    exogenous = sim.sample_exogenous(economies, 2, generator)
    obs = sim.observe(state)
    with torch.no_grad():
        dist = nets[PLANNER].distribution(planner.features(sim, obs), planner.mask(sim, obs))
        draw = dist.sample(rng)
        plan = planner.to_env(draw if nets[PLANNER].discrete else dist.squash(draw))
        still = torch.zeros(economies, workers.count, 1, device=device)
        state = sim.step(state, {PLANNER: plan, WORKERS: still}, exogenous[:, 0]).state
        obs = sim.observe(state)
        features = workers.features(sim, obs)  # [R, F], R = economies · N
        current = net.act(features)  # [R, 1] shares of the no-tax income
        low, high = net.action_low.to(current), net.action_high.to(current)
        untaxed = sim.economy.untaxed_of(state.skills).reshape(-1, 1).to(current)  # [R, 1]
        cutoffs = torch.tensor(sim.scenario.bracket_cutoffs[1:], device=device, dtype=current.dtype)
        bunching = (cutoffs * (1 - 1e-9))[None, :] / untaxed.clamp_min(1e-9)  # [R, K - 1]
        spread = low + (high - low) * torch.rand(current.shape[0], tries, generator=rng, device=device,
                                                 dtype=current.dtype)
        candidates = torch.cat([current, bunching.clamp(low, high), spread], 1)  # [R, 1 + K - 1 + tries]
        rewards = torch.stack([workers.reward(sim.step(state, {PLANNER: plan, WORKERS: workers.to_env(
            candidates[:, j:j + 1])}, exogenous[:, 1]).reward) for j in range(candidates.shape[1])], 1)
        best = rewards.argmax(1, keepdim=True)  # the current response wins ties (column 0)
        target = torch.gather(candidates, 1, best)
        moved = best[:, 0] > 0
    if fit_steps > 0 and bool(moved.any()):
        optimiser = torch.optim.Adam(net.actor.parameters(), lr=learning_rate)
        for _ in range(fit_steps):
            dist = net.distribution(features)
            error = dist.squash(dist.mean) - target
            if float(error.detach().abs().max()) < tolerance:
                break
            loss = (error**2).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return float(moved.float().mean())
