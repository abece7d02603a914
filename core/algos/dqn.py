"""Double DQN (dueling, n-step, optional HL-Gauss head) on any batched simulator with a discrete action.

The trainer knows nothing about any domain; it reads the simulator's declared spaces:

- the action: a single-choice ``Discrete`` space of ``n`` choices numbered from ``start`` (a
  continuous simulator gets a discrete *view* of its own, e.g. the execution domain's grid of
  fractions of the remaining shares), masked by ``sim.action_mask(obs)`` when the space is ``masked``;
- the network input: ``sim.flat_observation(obs)`` (the ``features`` space ``[B, F]``);
- ``num_envs`` environments are stepped together on ``sim.device`` for episodes of ``horizon``
  steps (default ``sim.horizon``), with exogenous paths pre-sampled per episode batch from ``generator``;
- ``evaluate(policy) -> float``: a held-out score, lower is better (as in pathwise).

Episode ends: the ``horizon`` cut is a *truncation* and bootstraps from the last state. A step's
``terminated`` gets no bootstrap, and the steps an environment takes after its terminal step (the
batch keeps stepping in lock-step) are not stored. Targets are Double-DQN (online argmax, target
network evaluation) over n-step returns; the loss is Huber for the scalar head and cross-entropy for
the HL-Gauss head.
"""

from __future__ import annotations

import copy
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from decisionlab.core.algos.replay import ReplayBuffer, ReplaySample, n_step_returns
from decisionlab.core.nets.heads import QNetwork
from decisionlab.core.options import Widths
from decisionlab.core.progress import Progress
from decisionlab.core.seeding import child_generator
from decisionlab.core.sim import BatchedSimulator, action_mask, horizon_of
from decisionlab.core.spaces import Discrete


class QNetworkConfig(BaseModel):
    """Architecture of the Q network built when ``train_dqn`` is not given one."""

    model_config = ConfigDict(extra="forbid")

    hidden: Widths = Field((64, 64), description="hidden layer widths of the Q-network trunk")
    activation: Literal["elu", "relu", "tanh", "silu"] = "relu"
    dueling: bool = True
    head: Literal["scalar", "hl_gauss"] = Field("scalar", description="value head: scalar or HL-Gauss (categorical)")
    bins: int = Field(51, ge=2, description="HL-Gauss bins")
    v_min: float = Field(-10.0, description="HL-Gauss support, in reward_scale-d return units")
    v_max: float = Field(10.0, description="HL-Gauss support, in reward_scale-d return units")
    sigma_ratio: float = Field(0.75, gt=0, description="HL-Gauss σ as a multiple of the bin width")

    @model_validator(mode="after")
    def _support(self) -> QNetworkConfig:
        if not self.v_max > self.v_min:
            raise ValueError(f"v_max ({self.v_max}) must be greater than v_min ({self.v_min})")
        return self

    def build(self, obs_dim: int, n_actions: int) -> QNetwork:
        return QNetwork(obs_dim, n_actions, **self.model_dump())


class DQNConfig(BaseModel):
    """Hyper-parameters of the DQN trainer (defaults: CleanRL's DQN, scaled to batched collection)."""

    model_config = ConfigDict(extra="forbid")

    total_env_steps: int = Field(200_000, ge=1, description="environment steps (all envs counted) at most")
    num_envs: int = Field(64, ge=1, description="environments stepped together")
    gamma: float = Field(0.99, ge=0, le=1)
    n_step: int = Field(1, ge=1, description="n-step returns (windows cut at terminals and at the horizon)")
    buffer_size: int = Field(100_000, ge=1, description="replay capacity in transitions")
    batch_size: int = Field(256, ge=1)
    learning_rate: float = Field(5e-4, gt=0)
    learning_starts: int = Field(2_000, ge=0, description="env steps of collection before the first update")
    train_every: int = Field(1, ge=1, description="vector steps (num_envs env steps each) between updates")
    gradient_steps: int = Field(1, ge=1, description="gradient steps per update")
    target_update_every: int = Field(250, ge=1, description="gradient steps between target updates")
    tau: float = Field(1.0, gt=0, le=1, description="1: hard copy; < 1: Polyak θ' ← (1 − τ)θ' + τθ")
    double: bool = Field(True, description="Double DQN target (online argmax); False: plain max of the target net")
    epsilon_start: float = Field(1.0, ge=0, le=1)
    epsilon_end: float = Field(0.05, ge=0, le=1)
    exploration_fraction: float = Field(0.3, gt=0, le=1, description="share of total_env_steps for the decay")
    huber_delta: float = Field(1.0, gt=0, description="Huber threshold (scalar head), in scaled reward units")
    grad_clip_norm: float = Field(10.0, gt=0)
    reward_scale: float = Field(1.0, gt=0, description="rewards are multiplied by this before learning")
    eval_every: int = Field(10_000, ge=1, description="env steps between held-out evaluations")
    patience: int | None = Field(None, ge=1, description="evaluations without a new best before stopping")
    target: float | None = Field(None, description="stop as soon as the held-out score is <= this")
    network: QNetworkConfig = Field(default_factory=QNetworkConfig)


def masked_argmax(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``argmax`` over the last dim of ``values [B, A]`` among ``mask [B, A]`` True entries -> ``[B]``.

    A row with no legal action falls back to index 0 (only happens at terminal states, whose
    bootstrap is multiplied by a zero discount).
    """
    if mask is not None:
        values = values.masked_fill(~mask, torch.finfo(values.dtype).min)
    return values.argmax(dim=-1)


def discrete_action(sim: Any) -> Discrete:
    """The simulator's action space, which must be a single choice of a single agent (what DQN learns)."""
    space = sim.spaces.action
    if sim.spaces.multi_agent or not isinstance(space, Discrete) or space.shape:
        raise ValueError(f"DQN learns a single-choice Discrete action of one agent, not {space or 'agent groups'} "
                         "(give the simulator a discrete view)")
    return space


class GreedyQPolicy(nn.Module):
    """``act(obs)``: the legal choice of highest Q of a simulator's ``Discrete`` action.

    Only ``q_net`` is part of ``config()`` / the state dict; the simulator whose features, masks and
    choice numbering it reads is bound with :meth:`bind` (a domain's learned kind does so)."""

    def __init__(self, q_net: QNetwork, sim: Any = None, *, name: str = "ddqn") -> None:
        super().__init__()
        self.q_net, self.name = q_net, name
        self.sim: Any = None
        if sim is not None:
            self.bind(sim)

    def bind(self, sim: Any) -> GreedyQPolicy:
        discrete_action(sim)
        self.sim = sim
        return self

    @torch.no_grad()
    def action_index(self, obs: Any) -> torch.Tensor:
        """Greedy choice indices ``[B]`` (0-based, before the space's ``start``)."""
        if self.sim is None:
            raise ValueError("bind the policy to a simulator first (GreedyQPolicy.bind)")
        features = self.sim.flat_observation(obs).to(torch.get_default_dtype())
        return masked_argmax(self.q_net.q_values(features), action_mask(self.sim, obs))

    @torch.no_grad()
    def act(self, obs: Any) -> torch.Tensor:
        start = self.sim.spaces.action.start if self.sim is not None else 0
        index = self.action_index(obs)
        return index + start if start else index

    def forward(self, obs: Any) -> torch.Tensor:
        return self.act(obs)

    def config(self) -> dict[str, Any]:
        return {"kind": "greedy_q", "name": self.name, "q_net": self.q_net.config()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> GreedyQPolicy:
        """Rebuild (without weights: then ``load_state_dict`` the safetensors file, and :meth:`bind`)."""
        return cls(QNetwork.from_config(config["q_net"]), name=config.get("name", "ddqn"))


def dqn_loss(
    online: QNetwork, target_net: QNetwork, batch: ReplaySample, *, double: bool = True, huber_delta: float = 1.0
) -> torch.Tensor:
    """TD loss of ``online`` on ``batch``; target ``y = G + discount · Q_target(s', a*)``.

    ``a* = argmax_a Q_online(s', a)`` among legal actions (Double DQN) or of ``Q_target`` when
    ``double`` is False. Scalar head: Huber(Q(s, a), y). HL-Gauss head: cross-entropy between the
    logits of ``(s, a)`` and the HL-Gauss distribution of ``y`` (the scalar TD target is projected,
    as in "Stop Regressing", rather than a distributional C51 backup).
    """
    with torch.no_grad():
        next_target = target_net.q_values(batch.next_obs)  # [N, A]
        chooser = online.q_values(batch.next_obs) if double else next_target
        best = masked_argmax(chooser, batch.next_mask)
        y = batch.reward + batch.discount * next_target.gather(1, best.unsqueeze(1)).squeeze(1)
    out = online(batch.obs)
    rows = torch.arange(batch.action.shape[0], device=batch.action.device)
    if online.support is not None:
        log_probs = torch.log_softmax(out[rows, batch.action], dim=-1)  # [N, K]
        return -(online.support.target_probs(y) * log_probs).sum(dim=-1).mean()
    return F.huber_loss(out[rows, batch.action], y, delta=huber_delta)


@torch.no_grad()
def update_target(online: nn.Module, target_net: nn.Module, tau: float) -> None:
    """Hard copy (``tau == 1``) or Polyak averaging of the target network's parameters."""
    if tau >= 1.0:
        target_net.load_state_dict(online.state_dict())
        return
    for p_target, p in zip(target_net.parameters(), online.parameters(), strict=True):
        p_target.lerp_(p, tau)


def linear_epsilon(env_steps: int, config: DQNConfig) -> float:
    """``epsilon_start`` decaying linearly to ``epsilon_end`` over ``exploration_fraction · total_env_steps``."""
    span = config.exploration_fraction * config.total_env_steps
    frac = min(1.0, env_steps / span)
    return config.epsilon_start + frac * (config.epsilon_end - config.epsilon_start)


@dataclass
class DQNResult:
    policy: GreedyQPolicy
    best_score: float
    env_steps: int
    gradient_steps: int
    seconds: float
    history: pl.DataFrame = field(default_factory=pl.DataFrame)


@dataclass
class StepRecord:
    """One vector step of ``B`` environments, kept until its n-step windows close."""

    obs: torch.Tensor  # [B, D] network input before the step
    action: torch.Tensor  # [B] long
    reward: torch.Tensor  # [B] scaled
    done: torch.Tensor  # [B] bool, the step ended in a terminal state
    alive: torch.Tensor  # [B] bool, the env had not terminated before this step
    next_obs: torch.Tensor  # [B, D]
    next_mask: torch.Tensor | None  # [B, A] bool, legal actions in next_obs


def store_n_step(
    window: Sequence[StepRecord], starts: Iterable[int], buffer: ReplayBuffer, gamma: float, n: int, filter_dead: bool
) -> None:
    """Write the n-step transitions that start at ``window[s]`` for ``s`` in ``starts`` into ``buffer``.

    ``window`` holds consecutive vector steps; a transition's window is cut at the end of
    ``window`` (so pass the whole remaining episode at its end) and at terminal steps. Its
    bootstrap observation is the ``next_obs`` of the window's last step. ``filter_dead`` drops
    transitions of environments that had terminated before their start.
    """
    rewards = torch.stack([s.reward for s in window], dim=1)  # [B, L]
    dones = torch.stack([s.done for s in window], dim=1)
    returns, discounts, _ = n_step_returns(rewards, dones, gamma, n)
    length = len(window)
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("obs", "action", "ret", "disc", "next", "mask", "alive")}
    for s in starts:
        boot = window[min(s + n, length) - 1]  # the last step of the window: bootstrap from its next obs
        parts["obs"].append(window[s].obs)
        parts["action"].append(window[s].action)
        parts["ret"].append(returns[:, s])
        parts["disc"].append(discounts[:, s])
        parts["next"].append(boot.next_obs)
        parts["alive"].append(window[s].alive)
        if boot.next_mask is not None:
            parts["mask"].append(boot.next_mask)
    cat = {k: torch.cat(v) if v else None for k, v in parts.items()}
    if filter_dead:  # drop the steps taken after a terminal (one host sync; only for sims with 'done')
        keep = cat["alive"]
        cat = {k: v[keep] if v is not None else None for k, v in cat.items()}
    buffer.add(cat["obs"], cat["action"], cat["ret"], cat["disc"], cat["next"], cat["mask"])


def train_dqn(
    sim: BatchedSimulator[Any],
    q_net: QNetwork | Callable[[int, int], QNetwork] | None = None,
    config: DQNConfig | None = None,
    *,
    horizon: int | None = None,
    evaluate: Callable[[GreedyQPolicy], float] | None = None,
    generator: torch.Generator | None = None,
    progress: bool = True,
    description: str = "DDQN",
) -> DQNResult:
    """Train a Q network by (Double) DQN and return the greedy policy with the best held-out weights.

    Args:
        sim: the batched simulator (module docstring: action, features and masks from ``sim.spaces``).
        q_net: a :class:`QNetwork`, a factory ``(obs_dim, n_actions) -> QNetwork``, or None to
            build ``config.network``. Moved to ``sim.device`` and trained in place.
        horizon: steps per episode (default ``sim.horizon``; a truncation, bootstrapped).
        evaluate: held-out score of a policy, lower is better; None keeps the final weights.
        generator: drives resets and exogenous paths (passed to the simulator as is); the trainer's
            own draws (exploration, replay sampling) use a generator on ``sim.device`` seeded from it.
            Network initialisation uses torch's global generator (seed it for reproducibility).
    """
    config = config or DQNConfig()
    device = sim.device
    space = discrete_action(sim)
    n_actions, masked = space.n, space.masked
    horizon = horizon_of(sim, horizon)
    features = sim.spaces.features
    if features is None or len(features.shape) != 1:
        raise ValueError("DQN reads a flat features space [F]: declare Spaces.features")
    obs_dim = features.shape[0]
    if q_net is None:
        q_net = config.network.build(obs_dim, n_actions)
    elif not isinstance(q_net, nn.Module):
        q_net = q_net(obs_dim, n_actions)
    elif "network" in config.model_fields_set:
        raise ValueError("config.network describes a network to build: don't set it when passing q_net")
    if (q_net.obs_dim, q_net.n_actions) != (obs_dim, n_actions):
        raise ValueError(f"q_net is {q_net.obs_dim} -> {q_net.n_actions}, the task needs {obs_dim} -> {n_actions}")
    online = q_net.to(device)
    target_net = copy.deepcopy(online).requires_grad_(False)
    optimizer = torch.optim.Adam(online.parameters(), lr=config.learning_rate)
    policy = GreedyQPolicy(online, sim, name=description.lower())

    def env_action(index: torch.Tensor) -> torch.Tensor:
        return index + space.start if space.start else index

    def features_of(obs: Any) -> torch.Tensor:
        return sim.flat_observation(obs).float()

    # The trainer's own randomness on the simulator's device, derived from the caller's generator.
    rng = child_generator(generator, device)

    n_envs, n = config.num_envs, config.n_step
    buffer = ReplayBuffer(config.buffer_size, obs_dim, n_actions, device, masks=masked)
    start = time.perf_counter()
    best_score = evaluate(policy) if evaluate is not None else math.nan
    best_state = copy.deepcopy(online.state_dict())
    rows = [{"step": 0, "env_steps": 0, "loss": math.nan, "eval_score": best_score,
             "epsilon": config.epsilon_start, "seconds": 0.0}]
    env_steps = vector_steps = grad_steps = 0
    loss_sum, loss_count = torch.zeros((), device=device), 0
    next_eval, stale, stop = config.eval_every, 0, ""
    bar = Progress(config.total_env_steps, description, enabled=progress, unit="env step")
    no_done = torch.zeros(n_envs, dtype=torch.bool, device=device)

    def evaluate_now() -> None:
        nonlocal best_score, best_state, stale, stop, loss_sum, loss_count
        loss = float(loss_sum) / loss_count if loss_count else math.nan
        loss_sum, loss_count = torch.zeros((), device=device), 0
        score = evaluate(policy) if evaluate is not None else math.nan
        rows.append({"step": grad_steps, "env_steps": env_steps, "loss": loss, "eval_score": score,
                     "epsilon": epsilon, "seconds": time.perf_counter() - start})
        bar.show(loss=loss, eps=round(epsilon, 2), eval=score, best=best_score)
        if evaluate is None:
            return
        if score < best_score or math.isnan(best_score):
            best_score, best_state, stale = score, copy.deepcopy(online.state_dict()), 0
        elif env_steps >= config.learning_starts:
            stale += 1
        if config.target is not None and best_score <= config.target:
            stop = f"reached the target score {config.target:.4g} (best {best_score:.4g})"
        elif config.patience is not None and stale >= config.patience:
            stop = f"the held-out score has not improved in {stale} evaluations (best {best_score:.4g})"

    epsilon = config.epsilon_start
    while not stop and env_steps < config.total_env_steps:
        with torch.no_grad():
            state = sim.reset(n_envs, generator)
            exogenous = sim.sample_exogenous(n_envs, horizon, generator)
            obs = sim.observe(state)
            flat = features_of(obs)
            mask = action_mask(sim, obs)
        alive = torch.ones(n_envs, dtype=torch.bool, device=device)
        window: deque[StepRecord] = deque(maxlen=n)
        for t in range(horizon):
            # --- act: epsilon-greedy among legal actions, all envs at once
            epsilon = linear_epsilon(env_steps, config)
            with torch.no_grad():
                greedy = masked_argmax(online.q_values(flat), mask)
                uniform = masked_argmax(torch.rand(n_envs, n_actions, generator=rng, device=device), mask)
                explore = torch.rand(n_envs, generator=rng, device=device) < epsilon
                action = torch.where(explore, uniform, greedy)
                result = sim.step(state, env_action(action), exogenous[:, t])
                state = result.state
                if result.truncated is not None:
                    raise ValueError("DQN ends episodes at the horizon or at terminated steps; the simulator "
                                     "truncates its own (use PPO, or the horizon)")
                ends = result.terminated is not None
                done = result.terminated.bool() & alive if ends else no_done
                next_obs = sim.observe(state)
                next_flat = features_of(next_obs)
                next_mask = action_mask(sim, next_obs)
                reward = result.reward.detach().float() * config.reward_scale
            window.append(StepRecord(flat, action, reward, done, alive, next_flat, next_mask))
            alive = alive & ~done
            env_steps += n_envs
            vector_steps += 1
            bar.update(n_envs)
            # --- store: n-step windows that just closed (all remaining ones at the episode's end)
            all_done = ends and not bool(alive.any())
            if t == horizon - 1 or all_done:
                store_n_step(window, range(len(window)), buffer, config.gamma, n, ends)
            elif len(window) == n:
                store_n_step(window, range(1), buffer, config.gamma, n, ends)
            obs, flat, mask = next_obs, next_flat, next_mask
            # --- learn
            if env_steps >= config.learning_starts and vector_steps % config.train_every == 0 and len(buffer):
                for _ in range(config.gradient_steps):
                    batch = buffer.sample(config.batch_size, rng)
                    loss = dqn_loss(online, target_net, batch, double=config.double, huber_delta=config.huber_delta)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    nn.utils.clip_grad_norm_(online.parameters(), config.grad_clip_norm)
                    optimizer.step()
                    grad_steps += 1
                    loss_sum += loss.detach()
                    loss_count += 1
                    if grad_steps % config.target_update_every == 0:
                        update_target(online, target_net, config.tau)
            if env_steps >= next_eval:
                next_eval = (env_steps // config.eval_every + 1) * config.eval_every
                evaluate_now()
            if stop or env_steps >= config.total_env_steps or all_done:
                break
    if rows[-1]["env_steps"] != env_steps:
        evaluate_now()
    if stop and env_steps < config.total_env_steps:
        bar.stop_early(stop)
    bar.close()
    if evaluate is not None:
        online.load_state_dict(best_state)
    return DQNResult(
        policy=policy, best_score=best_score, env_steps=env_steps, gradient_steps=grad_steps,
        seconds=time.perf_counter() - start, history=pl.DataFrame(rows),
    )
