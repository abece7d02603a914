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

import math
from collections.abc import Mapping
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from decisionlab.core.algos.pathwise import PathwiseConfig, train_pathwise
from decisionlab.core.device import torch_threads
from decisionlab.core.errors import DecisionlabError
from decisionlab.core.nets.mlp import mlp
from decisionlab.core.rollout import rollout
from decisionlab.core.scenario import Scenario, resolve_options
from decisionlab.core.seeding import derive_seed, make_generator
from decisionlab.core.spec import TrainOutcome
from decisionlab.domains.inventory.network.graph_policies import (
    GRAPH_POLICIES,
    GNNPolicy,
    SharedWeightPolicy,
    SymmetryAwarePolicy,
)
from decisionlab.domains.inventory.network.scenario import NetworkScenario
from decisionlab.domains.inventory.network.sim import NetworkSim, NetworkState

Quality = Literal["fast", "precise"]
Architecture = Literal["vanilla", "symmetry", "gnn"]
ARCHITECTURE_KINDS: dict[str, str] = {"symmetry": SymmetryAwarePolicy.kind, "gnn": GNNPolicy.kind}
LONG_CHAIN = 8  # periods of supplier-to-store lead time above which the long-chain preset applies


def network_signature(sim: NetworkSim) -> dict[str, Any]:
    """What a trained network must match to act in a simulator: node kinds, links, lead times and
    store demand means (the scales the inputs and outputs were normalised with)."""
    topo = sim.topology
    return {
        "kinds": [node.kind for node in topo.nodes],
        "edges": [[e.src, e.dst, e.lead_time] for e in topo.edges],
        "demand_means": [round(float(m), 6) for m in sim.demand_model.means],
    }


class NetworkMLP(nn.Module):
    """Vanilla HDPO policy for networks: ``softplus(MLP(features)) · link mean flow`` per link.

    Features: the flat observation divided by each column's mean flow, plus every node's local
    and echelon inventory positions (fixed linear maps of the observation, in periods of the node's
    mean flow; they help optimisation, not expressiveness). The
    scales and maps are buffers, so they travel with the weights; :meth:`config` holds sizes and
    the network signature only.
    Initialisation: last layer near 0, bias so every link first orders its mean flow.
    ``forward(obs [B, observation_size]) -> orders [B, n_edges]``.
    """

    name = "hdpo_network_mlp"

    def __init__(
        self,
        observation_size: int,
        n_edges: int,
        n_positions: int,
        hidden: tuple[int, ...] = (128, 128),
        signature: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.observation_size, self.n_edges, self.n_positions = int(observation_size), int(n_edges), int(n_positions)
        self.hidden = tuple(int(h) for h in hidden)
        self.signature = signature or {}
        # input_map = [diag(1 / feature scale) | position maps]: features = obs @ input_map.
        self.register_buffer("input_map", torch.zeros(self.observation_size, self.observation_size + self.n_positions))
        self.register_buffer("action_scale", torch.ones(self.n_edges))
        self.net = mlp(self.observation_size + self.n_positions, self.hidden, self.n_edges, activation="elu")
        with torch.no_grad():
            last = self.net[-1]
            last.weight.mul_(0.1)
            last.bias.fill_(math.log(math.e - 1.0))  # softplus(bias) = 1: order ≈ mean flow

    @classmethod
    def for_simulator(cls, sim: NetworkSim, hidden: tuple[int, ...] = (128, 128)) -> NetworkMLP:
        """A fresh network with the scales and position maps of ``sim``."""
        nodes = [j for j in range(sim.n_nodes) if sim.topology.nodes[j].kind != "supplier"]
        maps = [sim.position_matrix(kind)[:, nodes] / sim.node_flow[nodes] for kind in ("local", "echelon")]
        net = cls(sim.observation_size, sim.n_edges, 2 * len(nodes), hidden, network_signature(sim))
        with torch.no_grad():
            net.input_map.copy_(torch.cat([torch.diag(1.0 / sim.feature_scale), *maps], dim=1))
            net.action_scale.copy_(sim.edge_flow)
        return net.to(sim.device)

    def config(self) -> dict[str, Any]:
        return {"kind": "network_mlp", "observation_size": self.observation_size, "n_edges": self.n_edges,
                "n_positions": self.n_positions, "hidden": list(self.hidden), "signature": self.signature}

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(self.net(obs @ self.input_map)) * self.action_scale

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return self(obs)


def make_network_policy(sim: NetworkSim, settings: NetworkHDPOSettings) -> NetworkMLP | SharedWeightPolicy:
    """A fresh policy of ``settings.architecture`` for ``sim``'s network."""
    if settings.architecture == "vanilla":
        return NetworkMLP.for_simulator(sim, settings.hidden)
    graph = GRAPH_POLICIES[ARCHITECTURE_KINDS[settings.architecture]]
    return graph(settings.graph_hidden, settings.graph_layers).to(sim.device).bind(sim)


def load_network_policy(
    config: dict[str, Any], weights: dict[str, torch.Tensor], scenario: Scenario, device: torch.device
) -> NetworkMLP | SharedWeightPolicy:
    """Rebuild a registered network policy for ``scenario``. A vanilla MLP must match the network it
    was trained on; symmetry-aware and GNN policies act on any network (they are bound to it here)."""
    kind = config.get("kind")
    if kind not in ("network_mlp", *GRAPH_POLICIES):
        raise DecisionlabError(f"unknown inventory network policy kind {kind!r}")
    if not isinstance(scenario, NetworkScenario):
        raise DecisionlabError(f"this policy acts on inventory networks, not on {type(scenario).__name__}")
    sim = NetworkSim(scenario, device)
    if kind in GRAPH_POLICIES:
        graph = GRAPH_POLICIES[kind](int(config["hidden"]), int(config["layers"]), int(config["slots"]))
        graph.load_state_dict(weights)
        return graph.to(device).bind(sim).eval()
    expected = network_signature(sim)
    if config.get("signature") != expected:
        raise DecisionlabError(
            "this policy was trained for a different network (nodes, links, lead times or demand means "
            "differ): train one for this scenario, or use architecture=symmetry / gnn, which act on any size"
        )
    net = NetworkMLP(config["observation_size"], config["n_edges"], config["n_positions"], tuple(config["hidden"]),
                     config["signature"])
    net.load_state_dict(weights)
    return net.to(device).eval()


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
    hidden: tuple[int, ...] = Field((128, 128), description="hidden widths of the vanilla MLP")
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


class NetworkHDPOOptions(BaseModel):
    """What a user may set from the CLI (``--algo-set key=value``) or the API for network HDPO."""

    model_config = ConfigDict(extra="forbid")

    quality: Quality = Field("fast", description="'fast' or 'precise' (about 3x the compute)")
    max_steps: int | None = Field(None, ge=1, description="gradient steps")
    batch_size: int | None = Field(None, ge=1, description="networks per gradient step")
    learning_rate: float | None = Field(None, gt=0)
    periods: int | None = Field(None, ge=1, description="periods per training window")
    max_seconds: float | None = Field(None, gt=0, description="stop training after this many seconds")
    hidden: tuple[int, ...] | None = Field(None, description="hidden layer widths of the MLP")
    architecture: Architecture | None = Field(None, description="'vanilla', 'symmetry' or 'gnn'")
    train_paths: int | None = Field(None, ge=1, description="train on this many fixed pre-sampled scenarios "
                                    "(start state + demand path) instead of fresh demand every step")


def network_settings_from_options(scenario: NetworkScenario, options: Mapping[str, Any]) -> NetworkHDPOSettings:
    """Settings from user options (:class:`NetworkHDPOOptions`; the single-store ``HDPOOptions`` are
    a subset, ``None`` values mean "preset default"): the scenario's preset, then the overrides."""
    chosen = resolve_options(NetworkHDPOOptions, {k: v for k, v in options.items() if v is not None},
                             "hdpo option")
    overrides = chosen.model_dump(exclude={"quality"}, exclude_none=True)
    if "train_paths" in overrides:
        overrides["persistent"] = False
    return NetworkHDPOSettings.preset(scenario, chosen.quality, **overrides)


def _train(
    scenario: NetworkScenario, seed: int, device: torch.device, progress: bool, settings: NetworkHDPOSettings
) -> TrainOutcome:
    torch.manual_seed(derive_seed(seed, "init"))
    sim = NetworkSim(scenario, device)
    sim.diagnostics = False  # the loss needs costs only
    gen_train = make_generator(derive_seed(seed, "train"), device)
    gen_eval = make_generator(derive_seed(seed, "eval"), device)
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
        generator=torch.Generator().manual_seed(derive_seed(seed, "batches")),
        progress=progress, description=f"HDPO {type(scenario).__name__}",
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
    state, costs = start, []
    periods = demand.shape[1]
    for t in range(periods):
        action = policy(sim.observe(state))
        if t >= periods - frozen_tail:
            action = action.detach()
        result = sim.step(state, action, demand[:, t])
        state = result.state
        costs.append(result.info["cost"])
    return torch.stack(costs, dim=1), state.detach()


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
