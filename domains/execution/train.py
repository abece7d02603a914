"""Training execution agents: the core's pathwise (HDPO) trainer wired to the Almgren–Chriss simulator.

Pathwise: an :class:`~decisionlab.domains.execution.policies.ExecutionMLP` is rolled through the
differentiable simulator over pre-sampled price and liquidity paths, and the minibatch mean-variance
objective ``mean(IS) + λ·var(IS)`` is differentiated with respect to the network's weights. The loss is
divided by the analytic objective of the best static schedule, so the learning rate is scale-free; the
held-out score is the policy's objective divided by that schedule's objective *on the same held-out paths*
(a paired ratio: 1.0 = as good as the best static schedule, below 1 = better).

Double DQN (algorithm ``ddqn``) is wired by the lead once ``core/algos/dqn.py`` exists:

1. ``sim = GridActionSim(ExecutionSim(scenario, device), ActionGrid("fraction", 11))`` (``discrete.py``):
   integer actions, rewards in bps with the λσ²x² risk term (additive form of E + λV), N steps per episode;
2. train ``policy.q`` of ``policy = QGridPolicy(N, X, grid.config(), hidden)`` with the generic trainer;
3. return ``TrainOutcome(policy, policy.config(), metrics)`` (use :func:`held_out_ratio` for the score);
4. register ``AlgoSpec("ddqn", ...)`` in ``__init__.py``; ``load_policy`` already rebuilds ``q_grid`` policies.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from decisionlab.core.algos.pathwise import PathwiseConfig, train_pathwise
from decisionlab.core.policy import Policy
from decisionlab.core.rollout import rollout
from decisionlab.core.seeding import derive_seed, make_generator
from decisionlab.core.spec import TrainOutcome
from decisionlab.domains.execution import oracles
from decisionlab.domains.execution.policies import ExecutionMLP, static_expected_policy
from decisionlab.domains.execution.scenario import ExecutionScenario
from decisionlab.domains.execution.sim import ExecutionSim


class PathwiseSettings(PathwiseConfig):
    """Trainer settings plus the path protocol and the network size."""

    train_paths: int = Field(32768, ge=1, description="pre-sampled training paths")
    eval_paths: int = Field(32768, ge=2, description="held-out paths (paired with the best static schedule)")
    hidden: tuple[int, ...] = Field((64, 64), description="hidden layer widths of the policy MLP")
    price_features: bool = Field(True, description="let the policy see price moves (adaptive arrival-price trading)")


class PathwiseOptions(BaseModel):
    """What a user may set for ``pathwise`` (CLI ``--algo-set key=value``); unset keys keep the defaults."""

    model_config = ConfigDict(extra="forbid")

    price_features: bool | None = Field(None, description="let the policy see price moves (default true)")
    max_steps: int | None = Field(None, ge=1, description="gradient steps at most")
    batch_size: int | None = Field(None, ge=2, description="paths per gradient step (variance needs >= 2)")
    learning_rate: float | None = Field(None, gt=0)
    train_paths: int | None = Field(None, ge=2, description="pre-sampled training paths")
    eval_paths: int | None = Field(None, ge=2, description="held-out paths")
    hidden: tuple[int, ...] | None = Field(None, description="hidden layer widths of the MLP")
    target: float | None = Field(None, gt=0, description="stop once the held-out ratio to static_expected is <= this")


DEFAULT_SETTINGS = PathwiseSettings(max_steps=1500, batch_size=1024, learning_rate=3e-3, eval_every=50,
                                    patience=8, min_improvement=2e-4)


def settings_from_options(options: PathwiseOptions) -> PathwiseSettings:
    """The default settings with the user's options applied."""
    return DEFAULT_SETTINGS.model_copy(update=options.model_dump(exclude_none=True))


def mean_variance(shortfall: torch.Tensor, risk_aversion: float) -> torch.Tensor:
    """``mean + λ·var`` (ddof 0) of shortfalls ``[B]`` (differentiable)."""
    mean = shortfall.mean()
    return mean + risk_aversion * ((shortfall - mean) ** 2).mean()


def rollout_shortfall(sim: ExecutionSim, policy: Policy, paths: torch.Tensor, grad: bool = False) -> torch.Tensor:
    """Shortfall per path ``[B]`` (currency) of complete executions over ``paths [B, N, 3]``."""
    traj = rollout(sim, policy, paths, sim.reset(paths.shape[0]), record=("shortfall",), grad=grad)
    return traj.info["shortfall"].sum(dim=1)


def objective_scale(scenario: ExecutionScenario) -> float:
    """Analytic E + λV of the best static schedule (plug-in E[η_k]; impact variance included)."""
    holdings = oracles.static_expected_holdings(scenario)
    return oracles.moments(scenario, holdings).objective(scenario.risk_aversion)


@torch.no_grad()
def held_out_ratio(
    scenario: ExecutionScenario, policy: Policy, paths: torch.Tensor, device: torch.device | str = "cpu"
) -> float:
    """Objective of ``policy`` over ``paths`` divided by the best static schedule's on the same paths."""
    sim = ExecutionSim(scenario, device, risk_penalty_in_reward=False)
    reference = static_expected_policy(scenario, device)
    ratio = mean_variance(rollout_shortfall(sim, policy, paths).double(), scenario.risk_aversion)
    ratio /= mean_variance(rollout_shortfall(sim, reference, paths).double(), scenario.risk_aversion)
    return float(ratio)


def train_pathwise_policy(
    scenario: ExecutionScenario,
    seed: int,
    device: torch.device,
    progress: bool = True,
    settings: PathwiseSettings | None = None,
) -> TrainOutcome:
    """Train an :class:`ExecutionMLP` by differentiating mean(IS) + λ·var(IS) through the simulator."""
    settings = settings or DEFAULT_SETTINGS
    torch.manual_seed(derive_seed(seed, "init"))
    sim = ExecutionSim(scenario, device, risk_penalty_in_reward=False)
    n = scenario.horizon_steps
    train_paths = sim.sample_exogenous(settings.train_paths, n, make_generator(derive_seed(seed, "train"), device))
    eval_paths = sim.sample_exogenous(settings.eval_paths, n, make_generator(derive_seed(seed, "eval"), device))
    lam = scenario.risk_aversion
    scale = objective_scale(scenario)
    with torch.no_grad():
        reference = float(mean_variance(
            rollout_shortfall(sim, static_expected_policy(scenario, device), eval_paths).double(), lam))

    def objective(policy: torch.nn.Module, paths: torch.Tensor) -> torch.Tensor:
        return mean_variance(rollout_shortfall(sim, policy, paths, grad=True), lam) / scale

    def evaluate(policy: torch.nn.Module) -> float:
        with torch.no_grad():
            return float(mean_variance(rollout_shortfall(sim, policy, eval_paths).double(), lam)) / reference

    policy = ExecutionMLP(n, scenario.shares, settings.hidden, settings.price_features).to(device)
    result = train_pathwise(
        policy, objective, train_paths, evaluate, settings,
        generator=torch.Generator().manual_seed(derive_seed(seed, "batches")),
        progress=progress, description=f"pathwise N={n} {scenario.liquidity_model}",
    )
    return TrainOutcome(
        policy=result.policy,
        policy_config=result.policy.config(),
        metrics={
            "objective_vs_static_expected": result.best_score,
            "mean_variance_objective": result.best_score * reference,
            "static_expected_objective": reference,
            "train_steps": result.steps,
            "train_seconds": result.seconds,
        },
        curve=result.history,
        algo_config=settings.model_dump(mode="json"),
    )
