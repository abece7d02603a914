"""HDPO for inventory networks: a vanilla MLP over the flat observation, trained by differentiating
the mean cost through :class:`~decisionlab.domains.inventory.network.sim.NetworkSim` with the core's
pathwise trainer (:func:`decisionlab.core.algos.pathwise.train_pathwise`).

Protocol of one gradient step (``persistent=True``, the default): ``batch_size`` networks carried
over from the previous step (so each window starts from the current policy's own state
distribution; a small ``restart_fraction`` is restarted empty or spread out, so the policy keeps
seeing the start-up states evaluations begin from) run ``periods`` periods on fresh demand; the
loss is their mean cost per period. Orders of the last ``frozen_tail`` periods (default: the
longest supplier-to-store lead time) are detached, because their consequences fall after the
window. With ``persistent=False`` the trainer draws minibatches from a fixed, pre-sampled set of
``train_paths`` (random start state + demand path) and leaves the first ``warmup`` periods of each
window out of the loss. Every ``eval_every`` steps the policy is scored on fixed held-out paths
(common random numbers) and the best weights are kept.

Measured (``benchmarks/inventory_networks.py``, one CPU thread): backlog +0.2% and serial +0.6%
over the base-stock / echelon-stock optimum; one warehouse with 3, 5, 10 stores 2.5-3% below the
best searched heuristic (capped echelon-stock), in under a minute each (serial ~3 min).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from pydantic import BaseModel, Field
from torch import nn

from decisionlab.core import (
    PathwiseConfig,
    TrainContext,
    TrainOutcome,
    Widths,
    apply_options,
    options_model,
    resolve_options,
    rollout,
    run,
    torch_threads,
    train_pathwise,
)
from decisionlab.domains.inventory.network.policies import NetworkMLP
from decisionlab.domains.inventory.network.scenario import NetworkScenario
from decisionlab.domains.inventory.network.sim import NetworkSim, NetworkState

Quality = Literal["fast", "precise"]
Architecture = Literal["vanilla", "symmetry", "gnn"]
# Policy kinds of the size-independent architectures (classes in .graph_policies, imported when used:
# torch-geometric takes seconds to import).
ARCHITECTURE_KINDS: dict[str, str] = {"symmetry": "network_symmetry", "gnn": "network_gnn"}
LONG_CHAIN = 8  # periods of supplier-to-store lead time above which the long-chain preset applies


def make_network_policy(sim: NetworkSim, settings: NetworkHDPOSettings) -> nn.Module:
    """A fresh policy of ``settings.architecture`` for ``sim``'s network."""
    if settings.architecture == "vanilla":
        return NetworkMLP.for_simulator(sim, settings.hidden)
    from decisionlab.domains.inventory.network.graph_policies import GRAPH_POLICIES

    graph = GRAPH_POLICIES[ARCHITECTURE_KINDS[settings.architecture]]
    return graph(settings.graph_hidden, settings.graph_layers).to(sim.device).bind(sim)


class NetworkHDPOSettings(PathwiseConfig):
    """Trainer settings plus the path protocol (defaults: the ``fast`` preset)."""

    max_steps: int = 600
    batch_size: int = 256
    learning_rate: float = 3e-3
    warmup_steps: int = 20
    final_learning_rate_fraction: float = 0.02
    eval_every: int = 50
    eval_from: float = 0.3
    patience: int | None = None

    persistent: bool = Field(True, description="carry networks over between steps (else fixed pre-sampled paths)")
    train_paths: int = Field(8192, ge=1, description="size of the pre-sampled training set when not persistent")
    periods: int = Field(32, ge=1, description="periods per training window")
    restart_fraction: float = Field(
        0.02, ge=0, le=1, description="share of carried networks restarted (empty or random) every step, so the "
        "policy keeps seeing start-up states such as the empty network evaluations start from")
    warmup: int = Field(0, ge=0, description="first periods of a window left out of the loss")
    frozen_tail: int | None = Field(
        None, ge=0, description="orders of the last periods of a window get no gradient (their effect falls "
        "outside the window, so their gradient would be biased); None: the longest supplier-to-store lead time")
    eval_paths: int = Field(512, ge=1)
    eval_periods: int = Field(400, ge=2)
    eval_warmup: int = Field(100, ge=0)
    architecture: Architecture = Field(
        "vanilla", description="'vanilla' (MLP over the flat state, one network per topology), 'symmetry' "
        "(weights shared across sibling nodes, summary of siblings) or 'gnn' (message passing over the supply "
        "graph); the last two run unchanged on networks of other sizes")
    hidden: Widths = Field((128, 128), description="hidden widths of the vanilla MLP")
    graph_hidden: int = Field(64, ge=4, le=1024, description="embedding width of the symmetry-aware / GNN policy")
    graph_layers: int = Field(2, ge=1, le=8, description="message-passing rounds of the GNN")
    threads: int | None = Field(1, ge=1, description="torch CPU threads while training (None: leave as is)")

    @classmethod
    def preset(cls, scenario: NetworkScenario | None = None, quality: Quality = "fast",
               **overrides: object) -> NetworkHDPOSettings:
        """``fast`` (the default) or ``precise`` (about 3x the compute: more steps, larger batches
        and held-out set). Networks whose longest supplier-to-store lead time exceeds
        :data:`LONG_CHAIN` periods (the serial preset: 13) get 64-period windows, 512 networks
        per step and 900 steps (``fast``): credit for an upstream order arrives a long time later
        and the gradient is noisier."""
        long_chain = scenario is not None and scenario.topology().longest_lead_path() > LONG_CHAIN
        base: dict[str, object] = {}
        if long_chain:
            base = {"periods": 64, "batch_size": 512, "max_steps": 900, "eval_warmup": 150}
        if quality == "precise":
            base.update({"max_steps": 3 * int(base.get("max_steps", 600)), "batch_size": 512, "eval_paths": 1024,
                         "eval_periods": 600})
        elif quality != "fast":
            raise ValueError(f"unknown quality {quality!r}: use 'fast' or 'precise'")
        return cls(**{**base, **overrides})


def train_network_hdpo(
    scenario: NetworkScenario,
    seed: int,
    device: torch.device,
    progress: bool = True,
    settings: NetworkHDPOSettings | None = None,
    quality: Quality = "fast",
) -> TrainOutcome:
    """Train a :class:`NetworkMLP` for ``scenario`` (``settings`` wins over ``quality``)."""
    settings = settings or NetworkHDPOSettings.preset(scenario, quality)
    with torch_threads(settings.threads):
        return _train(scenario, seed, torch.device(device), progress, settings)


NetworkHDPOOptions = options_model(
    "NetworkHDPOOptions", NetworkHDPOSettings,
    ("max_steps", "batch_size", "learning_rate", "periods", "max_seconds", "hidden", "architecture", "train_paths"),
    extra={"quality": (Quality, Field("fast", description="'fast' or 'precise' (about 3x the compute)"))},
    doc="What a user may set from the CLI (``--algo-set key=value``) or the API for network HDPO; ``train_paths`` "
    "trains on that many fixed pre-sampled scenarios (start state + demand path) instead of fresh demand.",
)


def network_settings_from_options(
    scenario: NetworkScenario, options: BaseModel | Mapping[str, Any]
) -> NetworkHDPOSettings:
    """Settings from user options (:data:`NetworkHDPOOptions`, or a mapping validated as one): the
    scenario's preset of the chosen quality, then the options that are set."""
    if not isinstance(options, BaseModel):
        options = resolve_options(NetworkHDPOOptions, {k: v for k, v in options.items() if v is not None},
                                  "hdpo option")
    settings = apply_options(NetworkHDPOSettings.preset(scenario, options.quality), options, exclude=("quality",))
    if options.train_paths is not None:
        settings = settings.model_copy(update={"persistent": False})
    return settings


def algo_hdpo(scenario: NetworkScenario, options: BaseModel, ctx: TrainContext) -> TrainOutcome:
    """The network ``hdpo`` algorithm: :func:`train_network_hdpo` with the user's options."""
    return train_network_hdpo(scenario, ctx.seed, ctx.device, ctx.progress,
                              network_settings_from_options(scenario, options))


def _train(
    scenario: NetworkScenario, seed: int, device: torch.device, progress: bool, settings: NetworkHDPOSettings
) -> TrainOutcome:
    ctx = TrainContext(seed, device, progress)
    ctx.seed_init()
    sim = NetworkSim(scenario, device)
    sim.diagnostics = False  # the loss needs costs only
    gen_train, gen_eval = ctx.generator("train"), ctx.generator("eval")
    eval_demand = sim.sample_exogenous(settings.eval_paths, settings.eval_periods, gen_eval)
    eval_start = _start_states(sim, settings.eval_paths, gen_eval)
    tail = sim.topology.longest_lead_path() if settings.frozen_tail is None else settings.frozen_tail
    tail = min(tail, settings.periods - 1)

    if settings.persistent:
        carried = [_start_states(sim, settings.batch_size, gen_train)]

        def train_paths(step: int) -> torch.Tensor:
            return sim.sample_exogenous(settings.batch_size, settings.periods, gen_train)

        def objective(policy: nn.Module, demand: torch.Tensor) -> torch.Tensor:
            start = _restart_some(sim, carried[0], settings.restart_fraction, gen_train)
            costs, carried[0] = window_costs(sim, policy, demand, start, tail)
            return costs[:, settings.warmup :].mean()
    else:
        train_paths = _presampled_paths(sim, settings, gen_train)

        def objective(policy: nn.Module, paths: torch.Tensor) -> torch.Tensor:
            start, demand = _split_paths(sim, paths)
            costs, _ = window_costs(sim, policy, demand, start, tail)
            return costs[:, settings.warmup :].mean()

    def evaluate(policy: nn.Module) -> float:
        traj = rollout(sim, policy, eval_demand, eval_start)
        return float(-traj.rewards[:, settings.eval_warmup :].mean())

    policy = make_network_policy(sim, settings)
    result = train_pathwise(
        policy, objective, train_paths, evaluate, settings,
        generator=ctx.cpu_generator("batches"),
        progress=progress, description=f"HDPO network of {sim.n_nodes} nodes",
    )
    metrics = {"cost_per_period": result.best_score, "train_steps": float(result.steps),
               "train_seconds": result.seconds}
    return TrainOutcome(policy=result.policy, policy_config=result.policy.config(), metrics=metrics,
                        curve=result.history, algo_config=settings.model_dump())


def window_costs(
    sim: NetworkSim, policy: nn.Module, demand: torch.Tensor, start: NetworkState, frozen_tail: int = 0
) -> tuple[torch.Tensor, NetworkState]:
    """Costs ``[B, T]`` of a training window over ``demand [B, T, n_stores]`` and the detached end
    state. Orders of the last ``frozen_tail`` periods are detached: most of their consequences
    (arrivals a lead time later) fall after the window, so differentiating the in-window part
    alone would teach the policy to under-order. Earlier orders still see everything they cause
    within the window."""
    done = run(sim, FrozenTail(policy, demand.shape[1] - frozen_tail), state=start, exogenous=demand,
               record=("cost",), grad=True)
    return done.records["cost"], done.final_state.detach()


class FrozenTail:
    """``policy``'s actions, detached from the ``first_frozen``-th call on (one rollout per instance)."""

    def __init__(self, policy: nn.Module, first_frozen: int) -> None:
        self.policy, self.first_frozen, self.calls = policy, first_frozen, 0

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        action = self.policy(obs)
        self.calls += 1
        return action.detach() if self.calls > self.first_frozen else action


def _start_states(sim: NetworkSim, batch: int, gen: torch.Generator) -> NetworkState:
    """Start states: a quarter empty networks (where evaluations start), the rest spread out
    (:meth:`NetworkSim.random_state`)."""
    state = sim.random_state(batch, gen)
    empty = (torch.rand(batch, generator=gen, device=sim.device) < 0.25).float()
    return NetworkState(state.on_hand * (1 - empty[:, None]), state.pipeline * (1 - empty[:, None, None]))


def _restart_some(sim: NetworkSim, state: NetworkState, fraction: float, gen: torch.Generator) -> NetworkState:
    """``state`` with a random ``fraction`` of its rows replaced by fresh :func:`_start_states`."""
    if fraction <= 0:
        return state
    fresh = _start_states(sim, state.batch, gen)
    keep = (torch.rand(state.batch, generator=gen, device=sim.device) >= fraction).float()
    return NetworkState(state.on_hand * keep[:, None] + fresh.on_hand * (1 - keep[:, None]),
                        state.pipeline * keep[:, None, None] + fresh.pipeline * (1 - keep[:, None, None]))


def _presampled_paths(sim: NetworkSim, settings: NetworkHDPOSettings, gen: torch.Generator) -> torch.Tensor:
    """``[train_paths, periods + 1 + max_lead, max(n_nodes, n_stores, n_edges)]`` rows: on hand,
    the pipeline (one row per slot) and the demand path, packed so minibatches stay aligned."""
    start = _start_states(sim, settings.train_paths, gen)
    demand = sim.sample_exogenous(settings.train_paths, settings.periods, gen)
    width = max(sim.n_nodes, sim.n_stores, sim.n_edges)
    rows = [start.on_hand.unsqueeze(1), start.pipeline.transpose(1, 2), demand]
    return torch.cat([nn.functional.pad(r, (0, width - r.shape[2])) for r in rows], dim=1)


def _split_paths(sim: NetworkSim, paths: torch.Tensor) -> tuple[NetworkState, torch.Tensor]:
    on_hand = paths[:, 0, : sim.n_nodes]
    pipeline = paths[:, 1 : 1 + sim.max_lead, : sim.n_edges].transpose(1, 2)
    return NetworkState(on_hand, pipeline), paths[:, 1 + sim.max_lead :, : sim.n_stores]
