"""Proximal policy optimisation (clipped PPO with GAE) on any batched simulator.

The trainer knows nothing about any domain. It is given

- ``sim``: a :class:`~decisionlab.core.sim.BatchedSimulator`; ``num_envs`` environments are stepped
  together as one batch on ``sim.device`` (no per-env Python loop) for episodes of ``horizon``
  steps. All environments start together, so the episode step counter is a Python int: at each
  reset the exogenous paths of the whole episode are sampled (``sim.sample_exogenous(num_envs,
  horizon, generator)``) and step ``t`` reads ``exogenous[:, t]``;
- the actions: continuous (a tanh-squashed Gaussian on the bounds ``sim.action_low`` /
  ``sim.action_high``, broadcast to ``[action_size]``; by default these are the simulator's
  units) or, with ``n_actions``, discrete indices from a masked categorical, optionally masked by
  ``action_mask(obs) -> bool [B, A]``; ``to_env_action(obs, action) -> env action`` maps the
  policy's action to the simulator's (identity by default);
- ``featurize(obs) -> [B, F]``, the network input (``sim.flat_observation`` by default);
- ``reward_fn(result, state_before, env_action) -> [B]`` to replace ``result.reward`` (reward
  shaping); rewards are multiplied by ``config.reward_scale`` before learning;
- ``evaluate(policy) -> float``: a held-out score, lower is better; the best weights are kept.

Episode ends (the same convention as :mod:`~decisionlab.core.algos.dqn`): reaching ``horizon`` is
a *truncation*, bootstrapped from the value of the final observation (computed before the reset),
unless the step's ``info['done']`` is true (a *termination*: no bootstrap). ``info['done']`` may
come earlier for some environments: the batch keeps stepping in lock-step until the synchronized
reset, and the steps of an environment after its terminal step are *dead*: an alive mask ``[T, B]``
weights them out of every loss and statistic. (When every environment has terminated the batch
resets early; to keep host syncs rare, that is checked every :data:`ALL_DEAD_CHECK_EVERY` steps.)
A rollout of ``rollout_steps`` may span episode boundaries: ``next_values`` carries each step's
bootstrap, ``episode_end`` stops the GAE recursion at the boundary (:func:`compute_gae`).

Multi-agent domains flatten agents into the batch (observations ``[B * n_agents, ...]``, rewards
``[B * n_agents]``): nothing in the trainer depends on what a batch row is, beyond shapes.

Updates (CleanRL-style details that matter): GAE(λ), ``update_epochs`` epochs of ``minibatches``
shuffled minibatches over the flattened ``[T * B]`` batch, advantages normalised per minibatch,
the clipped surrogate, an optional clipped value loss, an entropy bonus, Adam(eps=``adam_eps``)
with a learning rate annealed linearly to 0, gradient-norm clipping, and an optional early stop
of an update's epochs when its approximate KL exceeds ``target_kl``. The HL-Gauss value head is
trained by cross-entropy against ``HLGaussSupport.target_probs(returns)``; ``clip_value`` applies
to the scalar head only (a clipped cross-entropy has no standard form), and is ignored for HL-Gauss.

Everything runs on ``sim.device``; the per-step loop has no host sync (apart from the rare
all-terminated check for simulators that report ``done``); statistics are read once per update.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import polars as pl
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn
from tqdm.auto import tqdm

from decisionlab.core.nets.actor_critic import ActorCritic, SquashedGaussian
from decisionlab.core.seeding import child_generator
from decisionlab.core.sim import BatchedSimulator, StepResult

ToEnvAction = Callable[[Any, torch.Tensor], torch.Tensor]
ActionMask = Callable[[Any], torch.Tensor]
Featurize = Callable[[Any], torch.Tensor]
RewardFn = Callable[[StepResult[Any], Any, torch.Tensor], torch.Tensor]

ALL_DEAD_CHECK_EVERY = 8
"""Steps between checks (one host sync each) that every environment has terminated (then reset early)."""

NETWORK_FIELDS = frozenset(
    {"value_head", "hl_gauss_bins", "value_min", "value_max", "hidden", "activation", "init_log_std"}
)


class PPOConfig(BaseModel):
    """Hyper-parameters of the PPO trainer (defaults: CleanRL's continuous PPO, scaled to batched envs)."""

    model_config = ConfigDict(extra="forbid")

    num_envs: int = Field(1024, ge=1, description="environments stepped together as one batch")
    rollout_steps: int = Field(64, ge=1, description="steps per environment per update (may span episodes)")
    total_env_steps: int = Field(
        1_000_000, ge=1, description="environment steps (all envs counted), rounded down to whole updates (>= 1)"
    )
    update_epochs: int = Field(4, ge=1, description="passes over each rollout")
    minibatches: int = Field(4, ge=1, description="shuffled minibatches per epoch")
    gamma: float = Field(0.99, ge=0, le=1, description="discount factor")
    gae_lambda: float = Field(0.95, ge=0, le=1, description="GAE λ (1: Monte-Carlo returns, 0: one-step TD)")
    clip_coef: float = Field(0.2, gt=0, le=1, description="ratio clipping: 1 ± clip_coef (and the value clip)")
    clip_value: bool = Field(False, description="clip the scalar value update to ± clip_coef (not HL-Gauss)")
    ent_coef: float = Field(0.0, ge=0, description="weight of the entropy bonus")
    vf_coef: float = Field(0.5, ge=0, description="weight of the value loss")
    learning_rate: float = Field(3e-4, gt=0, description="Adam learning rate (at the first update)")
    anneal_lr: bool = Field(True, description="anneal the learning rate linearly to 0 over the updates")
    max_grad_norm: float = Field(0.5, gt=0, description="gradient-norm clip")
    target_kl: float | None = Field(
        None, gt=0, description="stop an update's epochs once the epoch's mean approx-KL exceeds this (None: off)"
    )
    norm_adv: bool = Field(True, description="normalise advantages per minibatch")
    adam_eps: float = Field(1e-5, gt=0, description="Adam epsilon")
    reward_scale: float = Field(1.0, gt=0, description="rewards are multiplied by this before learning")
    value_head: Literal["scalar", "hl_gauss"] = Field("scalar", description="value head: scalar or HL-Gauss")
    hl_gauss_bins: int = Field(51, ge=2, le=4096, description="HL-Gauss bins")
    value_min: float = Field(
        -10.0, ge=-1e9, le=1e9, description="HL-Gauss support low end, in scaled-reward return units (clamped beyond)"
    )
    value_max: float = Field(
        10.0, ge=-1e9, le=1e9, description="HL-Gauss support high end, in scaled-reward return units (clamped beyond)"
    )
    hidden: tuple[Annotated[int, Field(ge=1)], ...] = Field(
        (64, 64), description="hidden widths of each trunk (actor and critic are separate)"
    )
    activation: Literal["elu", "relu", "tanh", "silu"] = Field("tanh", description="trunk non-linearity")
    init_log_std: float = Field(-0.5, ge=-10, le=2, description="initial log-std of the pre-squash Gaussian")
    eval_every: int = Field(100_000, ge=1, description="env steps between held-out evaluations (after an update)")
    patience: int | None = Field(None, ge=1, description="evaluations without a new best before stopping")
    target: float | None = Field(None, description="stop as soon as the held-out score is <= this")

    @model_validator(mode="after")
    def _check(self) -> PPOConfig:
        if not self.value_max > self.value_min:
            raise ValueError(f"value_max ({self.value_max}) must be greater than value_min ({self.value_min})")
        if self.minibatches > self.num_envs * self.rollout_steps:
            raise ValueError(f"{self.minibatches} minibatches of a {self.num_envs * self.rollout_steps}-step batch")
        return self

    def build_network(
        self, obs_dim: int, action_dim: int, *, discrete: bool, action_low: Any = -1.0, action_high: Any = 1.0
    ) -> ActorCritic:
        """The :class:`ActorCritic` these settings describe."""
        return ActorCritic(
            obs_dim, action_dim, discrete=discrete, hidden=self.hidden, activation=self.activation,
            value_head=self.value_head, bins=self.hl_gauss_bins, value_min=self.value_min,
            value_max=self.value_max, action_low=action_low, action_high=action_high, init_log_std=self.init_log_std,
        )


class ActorCriticPolicy(nn.Module):
    """``act(obs)``: the deterministic action of ``net`` (squashed mean / most probable valid index),
    mapped to the simulator's action.

    ``featurize(obs) -> [B, F]``, ``action_mask(obs) -> bool [B, A]`` and ``to_env_action`` are the
    callables the policy was trained with. Only ``net`` is part of ``config()`` / the state dict:
    callables are re-attached by the domain in :meth:`from_config`.
    """

    def __init__(
        self,
        net: ActorCritic,
        *,
        featurize: Featurize | None = None,
        to_env_action: ToEnvAction | None = None,
        action_mask: ActionMask | None = None,
        name: str = "ppo",
    ) -> None:
        super().__init__()
        self.net, self.name = net, name
        self.featurize, self.to_env_action, self.action_mask = featurize, to_env_action, action_mask

    def features(self, obs: Any) -> torch.Tensor:
        """Network input ``[B, F]``."""
        flat = self.featurize(obs) if self.featurize is not None else obs
        return flat.to(torch.get_default_dtype())

    @torch.no_grad()
    def act(self, obs: Any) -> torch.Tensor:
        mask = self.action_mask(obs) if self.action_mask is not None else None
        action = self.net.act(self.features(obs), mask)
        return self.to_env_action(obs, action) if self.to_env_action is not None else action

    def forward(self, obs: Any) -> torch.Tensor:
        return self.act(obs)

    def config(self) -> dict[str, Any]:
        return {"kind": "actor_critic_policy", "name": self.name, "net": self.net.config()}

    @classmethod
    def from_config(
        cls,
        config: dict[str, Any],
        *,
        featurize: Featurize | None = None,
        to_env_action: ToEnvAction | None = None,
        action_mask: ActionMask | None = None,
    ) -> ActorCriticPolicy:
        """Rebuild (without weights: then ``load_state_dict`` the safetensors file)."""
        return cls(ActorCritic.from_config(config["net"]), featurize=featurize, to_env_action=to_env_action,
                   action_mask=action_mask, name=config.get("name", "ppo"))


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    episode_end: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates and λ-returns, all tensors ``[T, B]``.

    ``δ_t = r_t + γ (1 − term_t) V'_t − V_t`` and ``A_t = δ_t + γ λ (1 − end_t) A_{t+1}`` (``A_T = 0``);
    returns ``R_t = A_t + V_t``.

    Args:
        rewards: ``r_t`` (scaled).
        values: ``V_t``, the value of the observation the step acted on.
        next_values: ``V'_t``, the value of the observation reached by step ``t``; for a step that
            ended its episode by truncation it is the value of the *final* observation (before the
            reset), so truncation is bootstrapped.
        terminated: bool, the step ended in a true terminal state: its bootstrap is dropped
            (a ``where``, not a product, so a non-finite ``V'`` there cannot leak a NaN).
        episode_end: bool, terminated or truncated: the recursion does not cross into the next episode.

    Vectorised over ``B``; a Python loop over ``T``.
    """
    bootstrap = torch.where(terminated.bool(), torch.zeros_like(next_values), next_values)
    deltas = rewards + gamma * bootstrap - values
    carry = gamma * lam * (~episode_end.bool()).to(values.dtype)
    advantages = torch.empty_like(values)
    running = torch.zeros_like(values[0])
    for t in range(values.shape[0] - 1, -1, -1):
        running = deltas[t] + carry[t] * running
        advantages[t] = running
    return advantages, advantages + values


@dataclass
class Rollout:
    """``T`` steps of ``B`` environments; every field is ``[T, B, ...]``."""

    features: torch.Tensor  # [T, B, F] network input the step acted on
    actions: torch.Tensor  # [T, B, A] pre-squash u (continuous) or [T, B] long indices
    log_probs: torch.Tensor  # [T, B] log p(action) under the collecting policy
    values: torch.Tensor  # [T, B] V of the features
    next_values: torch.Tensor  # [T, B] V of the observation reached (the final one before a reset)
    rewards: torch.Tensor  # [T, B] (shaped and) scaled
    terminated: torch.Tensor  # [T, B] bool, this step was the env's terminal step
    episode_end: torch.Tensor  # [T, B] bool, terminated or the episode was cut (reset) after this step
    alive: torch.Tensor  # [T, B] bool, the env had not terminated before this step
    masks: torch.Tensor | None  # [T, B, A] bool valid actions, or None


class RolloutCollector:
    """Steps ``num_envs`` environments in lock-step across updates and collects :class:`Rollout` s.

    It owns the simulator state between updates: the episode step counter, this episode's exogenous
    paths, the alive mask and the running episode returns (of the simulator's own reward, before
    shaping and scaling, summed over alive steps).
    """

    def __init__(
        self,
        sim: BatchedSimulator[Any],
        *,
        num_envs: int,
        horizon: int,
        featurize: Featurize,
        to_env_action: ToEnvAction | None = None,
        action_mask: ActionMask | None = None,
        reward_fn: RewardFn | None = None,
        reward_scale: float = 1.0,
        generator: torch.Generator | None = None,
        rng: torch.Generator | None = None,
    ) -> None:
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        self.sim, self.num_envs, self.horizon = sim, num_envs, horizon
        self.featurize, self.to_env_action, self.action_mask = featurize, to_env_action, action_mask
        self.reward_fn, self.reward_scale = reward_fn, reward_scale
        self.generator, self.rng = generator, rng
        self.device = sim.device
        self.no_done = torch.zeros(num_envs, dtype=torch.bool, device=self.device)
        self.return_sum = torch.zeros((), device=self.device)
        self.return_count = 0
        self.reset()

    def _observe(self) -> None:
        self.obs = self.sim.observe(self.state)
        self.features = self.featurize(self.obs).to(torch.get_default_dtype())
        self.mask = self.action_mask(self.obs) if self.action_mask is not None else None

    def reset(self) -> None:
        """A new episode for every environment."""
        with torch.no_grad():
            self.state = self.sim.reset(self.num_envs, self.generator)
            self.exogenous = self.sim.sample_exogenous(self.num_envs, self.horizon, self.generator)
            self.t = 0
            self.alive = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
            self.episode_return = torch.zeros(self.num_envs, device=self.device)
            self._observe()

    @torch.no_grad()
    def collect(self, net: ActorCritic, steps: int) -> Rollout:
        """Sample ``steps`` vector steps with ``net``'s stochastic policy."""
        keys = ("features", "actions", "log_probs", "values", "rewards", "terminated", "episode_end", "alive")
        parts: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
        masks: list[torch.Tensor] = []
        next_values: list[torch.Tensor | None] = []
        for _ in range(steps):
            obs, features, mask, alive = self.obs, self.features, self.mask, self.alive
            dist = net.distribution(features, mask)
            sample = dist.sample(self.rng)  # indices [B], or pre-squash u [B, A]
            action = dist.squash(sample) if isinstance(dist, SquashedGaussian) else sample
            env_action = self.to_env_action(obs, action) if self.to_env_action is not None else action
            result = self.sim.step(self.state, env_action, self.exogenous[:, self.t])
            reward = self.reward_fn(result, self.state, env_action) if self.reward_fn is not None else result.reward
            done_flag = result.info.get("done")
            terminated = done_flag.bool() & alive if done_flag is not None else self.no_done
            self.episode_return += torch.where(alive, result.reward.detach(), 0.0).to(self.episode_return.dtype)
            self.state, self.alive, self.t = result.state, alive & ~terminated, self.t + 1

            record = {"features": features, "actions": sample, "log_probs": dist.log_prob(sample),
                      "values": net.value(features), "terminated": terminated, "alive": alive,
                      "rewards": reward.detach().to(features.dtype) * self.reward_scale}
            for key, value in record.items():
                parts[key].append(value)
            if mask is not None:
                masks.append(mask)

            cut = self.t >= self.horizon
            if not cut and done_flag is not None and self.t % ALL_DEAD_CHECK_EVERY == 0:
                cut = not bool(self.alive.any())  # one host sync every few steps, only for sims with 'done'
            if cut:
                final = self.featurize(self.sim.observe(self.state)).to(features.dtype)
                next_values.append(net.value(final))  # truncation bootstraps from the final observation
                parts["episode_end"].append(torch.ones_like(terminated))
                self.return_sum += self.episode_return.sum()
                self.return_count += self.num_envs
                self.reset()
            else:
                next_values.append(None)  # V of the next step's observation, filled in below
                parts["episode_end"].append(terminated)
                self._observe()

        values = parts["values"] + [net.value(self.features)]
        filled = [v if v is not None else values[t + 1] for t, v in enumerate(next_values)]
        stacked = {k: torch.stack(v) for k, v in parts.items()}
        return Rollout(next_values=torch.stack(filled), masks=torch.stack(masks) if masks else None, **stacked)

    def pop_episode_return(self) -> float:
        """Mean return of the episodes finished since the last call (NaN if none); one host sync."""
        if not self.return_count:
            return math.nan
        mean = float(self.return_sum) / self.return_count
        self.return_sum, self.return_count = torch.zeros((), device=self.device), 0
        return mean


def _weighted_mean(x: torch.Tensor, weight: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    return (x * weight).sum() / total


def ppo_update(
    net: ActorCritic,
    optimizer: torch.optim.Optimizer,
    rollout: Rollout,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    config: PPOConfig,
    rng: torch.Generator | None = None,
) -> dict[str, float]:
    """``update_epochs`` epochs of ``minibatches`` shuffled minibatches on the flattened ``[T * B]`` rollout.

    Dead steps (``rollout.alive`` False) have weight 0 in every mean. Returns the mean statistics
    over the minibatches run (read once, at the end): policy_loss, value_loss, entropy, approx_kl
    (``E[(ratio − 1) − log ratio]``), clip_fraction, explained_variance (of the returns by the
    collecting values) and epochs (fewer than ``update_epochs`` after a ``target_kl`` stop).
    """
    n = rollout.values.numel()
    features = rollout.features.reshape(n, -1)
    actions = rollout.actions.reshape(n, *rollout.actions.shape[2:])
    old_log_probs, old_values = rollout.log_probs.reshape(n), rollout.values.reshape(n)
    masks = rollout.masks.reshape(n, -1) if rollout.masks is not None else None
    alive = rollout.alive.reshape(n)
    weight = alive.to(old_values.dtype)
    # Dead steps carry arbitrary numbers: make them finite so that weight 0 really removes them.
    advantages = torch.where(alive, advantages.reshape(n), 0.0)
    returns = torch.where(alive, returns.reshape(n), old_values)

    total = weight.sum().clamp_min(1.0)
    mean_return = _weighted_mean(returns, weight, total)
    var_returns = _weighted_mean((returns - mean_return).square(), weight, total)
    residual = returns - old_values
    var_residual = _weighted_mean((residual - _weighted_mean(residual, weight, total)).square(), weight, total)
    explained = 1 - var_residual / var_returns  # NaN/inf when the returns are constant, as usual

    c = config.clip_coef
    stats = {k: torch.zeros((), device=old_values.device)
             for k in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")}
    count, epochs = 0, 0
    for _ in range(config.update_epochs):
        epochs += 1
        epoch_kl, epoch_count = torch.zeros((), device=old_values.device), 0
        order = torch.randperm(n, generator=rng, device=old_values.device)
        for index in torch.tensor_split(order, config.minibatches):
            w = weight[index]
            mb_total = w.sum().clamp_min(1.0)
            dist = net.distribution(features[index], masks[index] if masks is not None else None)
            log_ratio = dist.log_prob(actions[index]) - old_log_probs[index]
            ratio = log_ratio.exp()
            adv = advantages[index]
            if config.norm_adv:
                mean = _weighted_mean(adv, w, mb_total)
                std = _weighted_mean((adv - mean).square(), w, mb_total).sqrt()
                adv = (adv - mean) / (std + 1e-8)
            surrogate = torch.maximum(-adv * ratio, -adv * ratio.clamp(1 - c, 1 + c))
            policy_loss = _weighted_mean(surrogate, w, mb_total)

            out = net.value_logits(features[index])
            target = returns[index]
            if net.support is not None:  # HL-Gauss: cross-entropy to the target's bin distribution
                error = -(net.support.target_probs(target) * torch.log_softmax(out, dim=-1)).sum(dim=-1)
            elif config.clip_value:
                old = old_values[index]
                clipped = old + (out - old).clamp(-c, c)
                error = 0.5 * torch.maximum((out - target).square(), (clipped - target).square())
            else:
                error = 0.5 * (out - target).square()
            value_loss = _weighted_mean(error, w, mb_total)
            entropy = _weighted_mean(dist.entropy(), w, mb_total)

            loss = policy_loss - config.ent_coef * entropy + config.vf_coef * value_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), config.max_grad_norm)
            optimizer.step()

            with torch.no_grad():
                approx_kl = _weighted_mean((ratio - 1) - log_ratio, w, mb_total)
                stats["approx_kl"] += approx_kl
                stats["clip_fraction"] += _weighted_mean(((ratio - 1).abs() > c).to(w.dtype), w, mb_total)
                stats["policy_loss"] += policy_loss.detach()
                stats["value_loss"] += value_loss.detach()
                stats["entropy"] += entropy.detach()
                epoch_kl += approx_kl
            count += 1
            epoch_count += 1
        if config.target_kl is not None and float(epoch_kl) / epoch_count > config.target_kl:
            break  # one host sync per epoch, only when the KL stop is on
    out_stats = {k: float(v) / count for k, v in stats.items()}
    out_stats["explained_variance"] = float(explained)
    out_stats["epochs"] = epochs
    return out_stats


@dataclass
class PPOResult:
    policy: ActorCriticPolicy
    best_score: float
    env_steps: int
    updates: int
    seconds: float
    history: pl.DataFrame = field(default_factory=pl.DataFrame)


def train_ppo(
    sim: BatchedSimulator[Any],
    policy: ActorCritic | None = None,
    config: PPOConfig | None = None,
    *,
    horizon: int,
    n_actions: int | None = None,
    to_env_action: ToEnvAction | None = None,
    action_mask: ActionMask | None = None,
    featurize: Featurize | None = None,
    evaluate: Callable[[ActorCriticPolicy], float] | None = None,
    generator: torch.Generator | None = None,
    progress: bool = True,
    description: str = "PPO",
    reward_fn: RewardFn | None = None,
) -> PPOResult:
    """Train an actor-critic by PPO and return its deterministic policy with the best held-out weights.

    Args:
        sim: the batched simulator; ``num_envs`` environments, episodes of ``horizon`` steps.
        policy: an :class:`ActorCritic` (moved to ``sim.device`` and trained in place), or None to
            build one from ``config`` (then continuous actions are bounded by the simulator's
            ``action_low`` / ``action_high``).
        horizon: steps per episode (a truncation: bootstrapped unless ``info['done']`` says terminal).
        n_actions: discrete actions with this many indices (None: continuous, unless ``policy`` is discrete).
        to_env_action: ``(obs, action) -> simulator action``; default: the action as is (continuous
            actions in the simulator's units, or indices).
        action_mask: ``obs -> bool [B, A]`` valid indices (discrete only; each row needs one).
        featurize: ``obs -> [B, F]`` network input; default ``sim.flat_observation``.
        evaluate: held-out score of the :class:`ActorCriticPolicy`, lower is better, every
            ``config.eval_every`` env steps and at the end; None keeps the final weights.
        generator: drives resets and exogenous paths (passed to the simulator as is); the trainer's
            own draws (actions, minibatch shuffles) use a generator on ``sim.device`` seeded from it.
            Network initialisation uses torch's global generator (seed it for reproducibility).
        reward_fn: ``(step result, state before the step, env action) -> reward [B]``, replacing
            ``result.reward`` for learning (shaping); logged episode returns stay the simulator's.
    """
    config = config or PPOConfig()
    device = sim.device
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if policy is not None:
        if NETWORK_FIELDS & config.model_fields_set:
            raise ValueError(f"config fields {sorted(NETWORK_FIELDS & config.model_fields_set)} describe a network "
                             "to build: don't set them when passing policy")
        if n_actions is not None and not (policy.discrete and policy.action_dim == n_actions):
            raise ValueError(f"n_actions={n_actions} does not match the given policy")
        discrete = policy.discrete
    else:
        discrete = n_actions is not None
    if action_mask is not None and not discrete:
        raise ValueError("action_mask needs discrete actions (give n_actions)")
    featurize = featurize if featurize is not None else sim.flat_observation

    rng = child_generator(generator, device)
    collector = RolloutCollector(
        sim, num_envs=config.num_envs, horizon=horizon, featurize=featurize, to_env_action=to_env_action,
        action_mask=action_mask, reward_fn=reward_fn, reward_scale=config.reward_scale, generator=generator, rng=rng,
    )
    obs_dim = int(collector.features.shape[-1])
    action_dim = int(n_actions) if discrete and n_actions is not None else int(sim.action_size)
    if policy is None:
        policy = config.build_network(obs_dim, action_dim, discrete=discrete,
                                      action_low=sim.action_low, action_high=sim.action_high)
    if policy.obs_dim != obs_dim or (not discrete and policy.action_dim != action_dim):
        raise ValueError(f"policy is {policy.obs_dim} -> {policy.action_dim}, the task needs {obs_dim} -> {action_dim}")
    net = policy.to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.learning_rate, eps=config.adam_eps)
    wrapped = ActorCriticPolicy(net, featurize=featurize, to_env_action=to_env_action, action_mask=action_mask,
                                name=description.lower())

    steps_per_update = config.num_envs * config.rollout_steps
    num_updates = max(1, config.total_env_steps // steps_per_update)
    start = time.perf_counter()
    best_score = evaluate(wrapped) if evaluate is not None else math.nan
    best_state = copy.deepcopy(net.state_dict())
    nan = math.nan
    rows: list[dict[str, float | int]] = [{
        "update": 0, "env_steps": 0, "policy_loss": nan, "value_loss": nan, "entropy": nan, "approx_kl": nan,
        "clip_fraction": nan, "explained_variance": nan, "epochs": 0, "learning_rate": config.learning_rate,
        "episode_return": nan, "eval_score": best_score, "seconds": 0.0,
    }]
    env_steps = updates = stale = 0
    next_eval = config.eval_every
    bar = tqdm(total=num_updates * steps_per_update, desc=description, disable=not progress, leave=False)
    for update in range(1, num_updates + 1):
        lr = config.learning_rate * (1 - (update - 1) / num_updates) if config.anneal_lr else config.learning_rate
        for group in optimizer.param_groups:
            group["lr"] = lr
        rollout = collector.collect(net, config.rollout_steps)
        with torch.no_grad():
            advantages, returns = compute_gae(rollout.rewards, rollout.values, rollout.next_values,
                                              rollout.terminated, rollout.episode_end, config.gamma, config.gae_lambda)
        stats = ppo_update(net, optimizer, rollout, advantages, returns, config, rng)
        env_steps += steps_per_update
        updates = update
        bar.update(steps_per_update)

        score, stop = nan, False
        if evaluate is not None and (env_steps >= next_eval or update == num_updates):
            next_eval = (env_steps // config.eval_every + 1) * config.eval_every
            score = evaluate(wrapped)
            if score < best_score or math.isnan(best_score):
                best_score, best_state, stale = score, copy.deepcopy(net.state_dict()), 0
            else:
                stale += 1
            stop = (config.target is not None and best_score <= config.target) or (
                config.patience is not None and stale >= config.patience)
        rows.append({"update": update, "env_steps": env_steps, **stats, "learning_rate": lr,
                     "episode_return": collector.pop_episode_return(), "eval_score": score,
                     "seconds": time.perf_counter() - start})
        bar.set_postfix(ret=f"{rows[-1]['episode_return']:.4g}", kl=f"{stats['approx_kl']:.3g}",
                        eval=f"{score:.4g}", best=f"{best_score:.4g}")
        if stop:
            break
    bar.close()
    if evaluate is not None:
        net.load_state_dict(best_state)
    return PPOResult(policy=wrapped, best_score=best_score, env_steps=env_steps, updates=updates,
                     seconds=time.perf_counter() - start, history=pl.DataFrame(rows))
