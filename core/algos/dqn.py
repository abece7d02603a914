"""Double DQN (dueling, n-step, optional HL-Gauss head) on any batched simulator with discrete actions.

The trainer knows nothing about any domain. It is given

- ``sim``: a :class:`~decisionlab.core.sim.BatchedSimulator`; ``num_envs`` environments are
  stepped together on ``sim.device`` for episodes of ``horizon`` steps, with exogenous paths
  pre-sampled per episode batch from ``generator``;
- a discrete action set: ``action_values [A, ...]`` (the env action of each index) or, more
  generally, ``to_env_action(obs, index [B]) -> env action [B, ...]`` (e.g. a fraction of the
  remaining shares), and optionally ``action_mask(obs) -> bool [B, A]`` of legal actions;
- ``evaluate(policy) -> float``: a held-out score, lower is better (as in pathwise).

Episode ends: the ``horizon`` cut is a *truncation* and bootstraps from the last state. A
simulator that marks true terminal steps with ``info['done'] [B]`` gets no bootstrap there, and
the steps an environment takes after its terminal step (the batch keeps stepping in lock-step)
are not stored. Targets are Double-DQN (online argmax, target network evaluation) over n-step
returns; the loss is Huber for the scalar head and cross-entropy for the HL-Gauss head.
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
from tqdm.auto import tqdm

from decisionlab.core.algos.replay import ReplayBuffer, ReplaySample, n_step_returns
from decisionlab.core.nets.heads import QNetwork
from decisionlab.core.seeding import child_generator
from decisionlab.core.sim import BatchedSimulator

ToEnvAction = Callable[[Any, torch.Tensor], torch.Tensor]
ActionMask = Callable[[Any], torch.Tensor]
Featurize = Callable[[Any], torch.Tensor]


class QNetworkConfig(BaseModel):
    """Architecture of the Q network built when ``train_dqn`` is not given one."""

    model_config = ConfigDict(extra="forbid")

    hidden: tuple[int, ...] = Field((64, 64), description="hidden layer widths of the Q-network trunk")
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


class GreedyQPolicy(nn.Module):
    """``act(obs)``: the legal action of highest Q, mapped to the simulator's action.

    ``featurize(obs) -> [B, obs_dim]`` turns the domain observation into the network input
    (``sim.flat_observation``); ``to_env_action`` / ``action_values`` and ``action_mask`` are the
    ones the policy was trained with. Only ``q_net`` and ``action_values`` are part of
    ``config()`` / the state dict: callables are re-attached by the domain in :meth:`from_config`.
    """

    def __init__(
        self,
        q_net: QNetwork,
        *,
        action_values: torch.Tensor | None = None,
        to_env_action: ToEnvAction | None = None,
        action_mask: ActionMask | None = None,
        featurize: Featurize | None = None,
        name: str = "ddqn",
    ) -> None:
        super().__init__()
        if (action_values is None) == (to_env_action is None):
            raise ValueError("give exactly one of action_values and to_env_action")
        self.q_net, self.name = q_net, name
        # Non-persistent: it lives in config(), and moves with .to(device).
        self.register_buffer(
            "action_values", None if action_values is None else torch.as_tensor(action_values).detach().clone(),
            persistent=False,
        )
        self.to_env_action, self.action_mask, self.featurize = to_env_action, action_mask, featurize

    def features(self, obs: Any) -> torch.Tensor:
        """Network input ``[B, obs_dim]``."""
        flat = self.featurize(obs) if self.featurize is not None else obs
        return flat.to(torch.get_default_dtype())

    @torch.no_grad()
    def action_index(self, obs: Any) -> torch.Tensor:
        """Greedy action indices ``[B]``."""
        mask = self.action_mask(obs) if self.action_mask is not None else None
        return masked_argmax(self.q_net.q_values(self.features(obs)), mask)

    @torch.no_grad()
    def act(self, obs: Any) -> torch.Tensor:
        index = self.action_index(obs)
        if self.action_values is not None:
            return self.action_values[index]
        return self.to_env_action(obs, index)

    def forward(self, obs: Any) -> torch.Tensor:
        return self.act(obs)

    def config(self) -> dict[str, Any]:
        values = None if self.action_values is None else self.action_values.cpu().tolist()
        return {"kind": "greedy_q", "name": self.name, "q_net": self.q_net.config(), "action_values": values}

    @classmethod
    def from_config(
        cls,
        config: dict[str, Any],
        *,
        to_env_action: ToEnvAction | None = None,
        action_mask: ActionMask | None = None,
        featurize: Featurize | None = None,
    ) -> GreedyQPolicy:
        """Rebuild (without weights: then ``load_state_dict`` the safetensors file)."""
        values = config.get("action_values")
        return cls(
            QNetwork.from_config(config["q_net"]),
            action_values=None if values is None else torch.tensor(values),
            to_env_action=to_env_action, action_mask=action_mask, featurize=featurize,
            name=config.get("name", "ddqn"),
        )


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
    horizon: int,
    action_values: torch.Tensor | None = None,
    to_env_action: ToEnvAction | None = None,
    n_actions: int | None = None,
    action_mask: ActionMask | None = None,
    evaluate: Callable[[GreedyQPolicy], float] | None = None,
    generator: torch.Generator | None = None,
    progress: bool = True,
    description: str = "DDQN",
) -> DQNResult:
    """Train a Q network by (Double) DQN and return the greedy policy with the best held-out weights.

    Args:
        sim: the batched simulator; its ``flat_observation`` is the network input ``[B, obs_dim]``.
        q_net: a :class:`QNetwork`, a factory ``(obs_dim, n_actions) -> QNetwork``, or None to
            build ``config.network``. Moved to ``sim.device`` and trained in place.
        horizon: steps per episode (a truncation: bootstrapped unless ``info['done']`` says terminal).
        action_values: ``[A]`` (or ``[A, ...]``) env action of each index; or give ``to_env_action``
            ``(obs, index [B]) -> action [B, ...]`` and ``n_actions`` (unless ``q_net`` is a module).
        action_mask: ``obs -> bool [B, A]`` legal actions (each row needs one, except at terminals).
        evaluate: held-out score of a policy, lower is better; None keeps the final weights.
        generator: drives resets and exogenous paths (passed to the simulator as is); the trainer's
            own draws (exploration, replay sampling) use a generator on ``sim.device`` seeded from it.
            Network initialisation uses torch's global generator (seed it for reproducibility).
    """
    config = config or DQNConfig()
    device = sim.device
    if (action_values is None) == (to_env_action is None):
        raise ValueError("give exactly one of action_values and to_env_action")
    if action_values is not None:
        action_values = torch.as_tensor(action_values, device=device)
        n_actions = action_values.shape[0]
    elif n_actions is None and isinstance(q_net, QNetwork):
        n_actions = q_net.n_actions
    if n_actions is None:
        raise ValueError("with to_env_action, give n_actions (or a QNetwork)")
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")

    obs_dim = int(sim.observation_size)
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
    policy = GreedyQPolicy(
        online, action_values=action_values, to_env_action=to_env_action, action_mask=action_mask,
        featurize=sim.flat_observation, name=description.lower(),
    )
    env_action = (lambda obs, index: action_values[index]) if action_values is not None else to_env_action

    # The trainer's own randomness on the simulator's device, derived from the caller's generator.
    rng = child_generator(generator, device)

    n_envs, n = config.num_envs, config.n_step
    buffer = ReplayBuffer(config.buffer_size, obs_dim, n_actions, device, masks=action_mask is not None)
    start = time.perf_counter()
    best_score = evaluate(policy) if evaluate is not None else math.nan
    best_state = copy.deepcopy(online.state_dict())
    rows = [{"step": 0, "env_steps": 0, "loss": math.nan, "eval_score": best_score,
             "epsilon": config.epsilon_start, "seconds": 0.0}]
    env_steps = vector_steps = grad_steps = 0
    loss_sum, loss_count = torch.zeros((), device=device), 0
    next_eval, stale, stop = config.eval_every, 0, False
    bar = tqdm(total=config.total_env_steps, desc=description, disable=not progress, leave=False)
    no_done = torch.zeros(n_envs, dtype=torch.bool, device=device)

    def evaluate_now() -> None:
        nonlocal best_score, best_state, stale, stop, loss_sum, loss_count
        loss = float(loss_sum) / loss_count if loss_count else math.nan
        loss_sum, loss_count = torch.zeros((), device=device), 0
        score = evaluate(policy) if evaluate is not None else math.nan
        rows.append({"step": grad_steps, "env_steps": env_steps, "loss": loss, "eval_score": score,
                     "epsilon": epsilon, "seconds": time.perf_counter() - start})
        bar.set_postfix(loss=f"{loss:.4g}", eps=f"{epsilon:.2f}", eval=f"{score:.4g}", best=f"{best_score:.4g}")
        if evaluate is None:
            return
        if score < best_score or math.isnan(best_score):
            best_score, best_state, stale = score, copy.deepcopy(online.state_dict()), 0
        elif env_steps >= config.learning_starts:
            stale += 1
        if config.target is not None and best_score <= config.target:
            stop = True
        if config.patience is not None and stale >= config.patience:
            stop = True

    epsilon = config.epsilon_start
    while not stop and env_steps < config.total_env_steps:
        with torch.no_grad():
            state = sim.reset(n_envs, generator)
            exogenous = sim.sample_exogenous(n_envs, horizon, generator)
            obs = sim.observe(state)
            flat = sim.flat_observation(obs).float()
            mask = action_mask(obs) if action_mask is not None else None
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
                result = sim.step(state, env_action(obs, action), exogenous[:, t])
                state = result.state
                done_flag = result.info.get("done")
                done = done_flag.bool() & alive if done_flag is not None else no_done
                next_obs = sim.observe(state)
                next_flat = sim.flat_observation(next_obs).float()
                next_mask = action_mask(next_obs) if action_mask is not None else None
                reward = result.reward.detach().float() * config.reward_scale
            window.append(StepRecord(flat, action, reward, done, alive, next_flat, next_mask))
            alive = alive & ~done
            env_steps += n_envs
            vector_steps += 1
            bar.update(n_envs)
            # --- store: n-step windows that just closed (all remaining ones at the episode's end)
            all_done = done_flag is not None and not bool(alive.any())
            if t == horizon - 1 or all_done:
                store_n_step(window, range(len(window)), buffer, config.gamma, n, done_flag is not None)
            elif len(window) == n:
                store_n_step(window, range(1), buffer, config.gamma, n, done_flag is not None)
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
    bar.close()
    if evaluate is not None:
        online.load_state_dict(best_state)
    return DQNResult(
        policy=policy, best_score=best_score, env_steps=env_steps, gradient_steps=grad_steps,
        seconds=time.perf_counter() - start, history=pl.DataFrame(rows),
    )
