"""PPO for the fleet: the graph policy (graph_policy.py) trained by the core PPO on the event-driven days.

The core trainer reads the masks and the elapsed hours from the simulator's spaces (``γ`` is per hour
of the day). Before PPO the network imitates greedy on greedy's own days for ``imitation_steps``
(cross-entropy on the legal choices): a warm start from a rule that sees what the policy sees, so
that PPO spends its samples on what greedy misses (repositioning ahead of the peaks, charging
before a long flight) rather than on learning that a full aircraft should fly. The held-out score is
the mean daily profit on days no update saw; the best weights are kept.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, Field

from decisionlab.core import (
    NETWORK_FIELDS,
    SINGLE,
    PPOConfig,
    Progress,
    TrainContext,
    TrainOutcome,
    apply_options,
    options_model,
    run,
    train_ppo,
)
from decisionlab.domains.fleet.graph_policy import FleetGraphPolicy
from decisionlab.domains.fleet.metrics import alive, episode_metrics
from decisionlab.domains.fleet.policies import GreedyPolicy
from decisionlab.domains.fleet.scenario import FleetScenario
from decisionlab.domains.fleet.sim import FleetSim


class FleetPPOSettings(PPOConfig):
    num_envs: int = Field(64, ge=1, le=100_000)
    rollout_steps: int = Field(32, ge=1, le=10_000)
    total_env_steps: int = Field(200_000, ge=1, le=100_000_000)
    gamma: float = Field(0.9, ge=0, le=1, description="discount per hour (decisions are events)")
    learning_rate: float = Field(3e-4, gt=0, le=1)
    ent_coef: float = Field(0.003, ge=0)
    reward_scale: float = Field(0.01, gt=0, description="profits in hundreds of dollars")
    update_epochs: int = Field(2, ge=1)
    eval_every: int = Field(40_000, ge=1)
    eval_days: int = Field(64, ge=2, le=100_000, description="held-out days of each evaluation")
    graph_hidden: int = Field(32, ge=4, le=1024, description="width of the graph encoders and the decoder")
    heads: int = Field(4, ge=1, le=64, description="attention heads")
    imitation_steps: int = Field(300, ge=0, le=1_000_000, description="greedy-imitation updates before PPO")
    imitation_days: int = Field(8, ge=1, le=4096, description="greedy days the imitation learns from")
    imitation_batch: int = Field(256, ge=1, le=1_000_000)


FleetPPOOptions = options_model(
    "FleetPPOOptions", FleetPPOSettings,
    ("total_env_steps", "num_envs", "rollout_steps", "learning_rate", "gamma", "ent_coef", "eval_every", "eval_days",
     "graph_hidden", "heads", "imitation_steps", "imitation_days"),
    doc="What a user may set from the CLI (``--algo-set key=value``) or the API for the fleet's ``ppo``.",
)


def imitate_greedy(policy: FleetGraphPolicy, sim: FleetSim, settings: FleetPPOSettings, ctx: TrainContext) -> float:
    """Cross-entropy of the network's masked distribution against greedy's choices on greedy's days;
    returns the final batch's accuracy."""
    if settings.imitation_steps == 0:
        return float("nan")
    greedy = GreedyPolicy(sim)
    days = run(sim, greedy, batch=settings.imitation_days, generator=ctx.generator("imitation"), until_done=True,
               record={"features": lambda step: sim.flat_observation(step.obs), "legal": lambda step: step.obs["legal"],
                       "choice": lambda step: step.action.reshape(-1),
                       "alive": alive})
    kept = days.records["alive"].reshape(-1)
    features = days.records["features"].flatten(0, 1)[kept]
    legal = days.records["legal"].flatten(0, 1)[kept]
    choice = days.records["choice"].flatten(0, 1)[kept]
    optimizer = torch.optim.Adam(policy.net.parameters(), lr=1e-3)
    draws = ctx.generator("imitation_batches")
    accuracy = float("nan")
    bar = Progress(settings.imitation_steps, "imitating greedy", enabled=ctx.progress, unit="step")
    for _ in range(settings.imitation_steps):
        index = torch.randint(features.shape[0], (settings.imitation_batch,), generator=draws, device=sim.device)
        dist = policy.net.distribution(features[index], legal[index])
        loss = -dist.log_prob(choice[index]).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        accuracy = float((dist.mode() == choice[index]).float().mean())
        bar.update(1)
        bar.show(loss=float(loss.detach()), accuracy=accuracy)
    bar.close()
    return accuracy


def train_fleet_ppo(scenario: FleetScenario, options: BaseModel, ctx: TrainContext) -> TrainOutcome:
    settings = apply_options(FleetPPOSettings(), options)
    ctx.seed_init()
    sim = FleetSim(scenario, ctx.device)
    policy = FleetGraphPolicy.initial(scenario, ctx.device, settings.graph_hidden, settings.heads)
    held_out = int(ctx.stream("eval") % 2**31)

    def evaluate(acting: object) -> float:
        return -float(episode_metrics(scenario, policy, settings.eval_days, held_out, ctx.device)["daily_profit"]
                      .mean())

    accuracy = imitate_greedy(policy, sim, settings, ctx)
    imitated_profit = -evaluate(policy)
    config = PPOConfig(**settings.model_dump(include=set(PPOConfig.model_fields) - NETWORK_FIELDS))
    result = train_ppo(sim, {SINGLE: policy.net}, config, evaluate=evaluate, generator=ctx.generator("train"),
                       progress=ctx.progress, description="fleet PPO")
    policy.bind(sim)
    metrics = {"daily_profit": -result.best_score, "imitated_daily_profit": imitated_profit,
               "imitation_accuracy": accuracy, "env_steps": result.env_steps, "train_seconds": result.seconds}
    return TrainOutcome(policy, policy.config(), metrics, result.history, settings.model_dump(mode="json"))
