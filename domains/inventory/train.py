"""HDPO for the single store: the core's pathwise trainer wired to the inventory simulator."""

from __future__ import annotations

import torch

from decisionlab.core.algos.pathwise import PathwiseConfig, train_pathwise
from decisionlab.core.rollout import rollout
from decisionlab.core.seeding import derive_seed, make_generator
from decisionlab.core.spec import TrainOutcome
from decisionlab.domains.inventory.policies import OrderMLP
from decisionlab.domains.inventory.scenario import LostSalesScenario
from decisionlab.domains.inventory.sim import SingleStoreSim, StoreState


def _start_states(sim: SingleStoreSim, batch: int, scenario: LostSalesScenario, gen: torch.Generator) -> StoreState:
    """Spread-out start states so short training windows see the states a policy meets.

    On hand ~ U[0, 2μ], each pipeline slot ~ U[0, 2μ]: cheap stand-in for a long warm-up.
    """
    scale = 2.0 * scenario.demand_mean
    on_hand = torch.rand(batch, generator=gen, device=sim.device) * scale
    pipeline = torch.rand(batch, scenario.lead_time, generator=gen, device=sim.device) * scale
    return StoreState(on_hand, pipeline)


class HDPOSettings(PathwiseConfig):
    """Trainer settings plus the path protocol (periods per path and the warm-up excluded)."""

    train_paths: int = 8192
    periods: int = 48
    warmup: int = 16
    eval_paths: int = 512
    eval_periods: int = 600
    eval_warmup: int = 100


def train_hdpo(
    scenario: LostSalesScenario,
    seed: int,
    device: torch.device,
    progress: bool = True,
    settings: HDPOSettings | None = None,
) -> TrainOutcome:
    """Train an :class:`OrderMLP` by differentiating the mean cost through the simulator."""
    settings = settings or HDPOSettings(max_steps=1500, batch_size=512, learning_rate=1e-2, eval_every=50,
                                        patience=6)
    torch.manual_seed(derive_seed(seed, "init"))
    sim = SingleStoreSim(scenario, device)
    gen_train = make_generator(derive_seed(seed, "train"), device)
    gen_eval = make_generator(derive_seed(seed, "eval"), device)
    train_demand = sim.sample_exogenous(settings.train_paths, settings.periods, gen_train)
    train_start = _start_states(sim, settings.train_paths, scenario, gen_train)
    # Each path carries its start state: stack it with the demand so minibatches stay aligned.
    train_paths = torch.cat([train_start.on_hand[:, None], train_start.pipeline, train_demand], dim=1)
    eval_demand = sim.sample_exogenous(settings.eval_paths, settings.eval_periods, gen_eval)
    eval_start = _start_states(sim, settings.eval_paths, scenario, gen_eval)
    width = 1 + scenario.lead_time

    def objective(policy: torch.nn.Module, paths: torch.Tensor) -> torch.Tensor:
        start = StoreState(paths[:, 0], paths[:, 1:width])
        traj = rollout(sim, policy, paths[:, width:], start, grad=True)
        return -traj.rewards[:, settings.warmup :].mean()

    def evaluate(policy: torch.nn.Module) -> float:
        traj = rollout(sim, policy, eval_demand, eval_start)
        return float(-traj.rewards[:, settings.eval_warmup :].mean())

    policy = OrderMLP(scenario.lead_time, scenario.demand_mean).to(device)
    result = train_pathwise(
        policy, objective, train_paths, evaluate, settings,
        generator=torch.Generator().manual_seed(derive_seed(seed, "batches")),
        progress=progress, description=f"HDPO L={scenario.lead_time} p={scenario.underage_cost:g}",
    )
    return TrainOutcome(
        policy=result.policy,
        policy_config=result.policy.config(),
        metrics={"cost_per_period": result.best_score, "train_steps": result.steps,
                 "train_seconds": result.seconds},
        curve=result.history,
        algo_config=settings.model_dump(),
    )
