"""Proximal policy optimisation (clipped PPO with GAE) on any batched simulator, read from its spaces.

The trainer knows nothing about any domain. Everything it needs comes from the simulator's declared
:class:`~decisionlab.core.spaces.Spaces`:

- the network input: ``sim.flat_observation(obs)`` (the ``features`` space, ``[B, F]``);
- the action head: a ``Box`` action gets a tanh-squashed Gaussian on the box's bounds (its ``span``
  where the simulator takes any value); a single-choice ``Discrete`` action a categorical over its
  ``n`` choices (numbered from ``start``), masked by ``sim.action_mask(obs)`` when the space is
  ``masked``;
- agent groups: each group's ``count`` agents share one network (their rows are flattened into the
  batch, see :mod:`decisionlab.core.agents`), and several groups are trained together, each with its
  own network and optimiser (``train`` picks which ones learn: the two-level pattern, where workers
  and a planner co-adapt, or one group learns against a frozen other);
- episode ends: reaching ``horizon`` (``sim.horizon`` unless given) is a *truncation*, bootstrapped
  from the value of the final observation (computed before the reset); a step's ``terminated`` is a
  true end (no bootstrap) and its ``truncated`` a time limit of the simulator's own (bootstrapped);
- time: a step's ``elapsed`` (event-timed simulators) discounts by ``γ^elapsed`` in GAE.

``num_envs`` environments step together as one batch on ``sim.device`` (no per-env Python loop). All
start together: the exogenous paths of a whole episode are sampled at each reset
(``sim.sample_exogenous(num_envs, horizon, generator)``) and step ``t`` reads ``exogenous[:, t]``. An
environment whose episode ended before the synchronized reset keeps stepping in lock-step; its *dead*
steps are weighted out of every loss and statistic (the batch resets early when all are dead, checked
every :data:`ALL_DEAD_CHECK_EVERY` steps to keep host syncs rare). A rollout of ``rollout_steps`` may
span episode boundaries: ``next_values`` carries each step's bootstrap, ``episode_end`` stops the GAE
recursion at the boundary (:func:`compute_gae`).

Reward shaping is a view of the simulator (:class:`~decisionlab.core.sim.Reshaped`): its reward is what
is learned, the simulator's own (``info["env_reward"]``) is what the logs show.

Updates (CleanRL-style details that matter): GAE(λ), ``update_epochs`` epochs of ``minibatches``
shuffled minibatches over the flattened ``[T * R]`` batch, advantages normalised per minibatch,
the clipped surrogate, an optional clipped value loss, an entropy bonus, Adam(eps=``adam_eps``)
with a learning rate annealed linearly to 0, gradient-norm clipping, and an optional early stop
of an update's epochs when its approximate KL exceeds ``target_kl``. The HL-Gauss value head is
trained by cross-entropy against ``HLGaussSupport.target_probs(returns)``; ``clip_value`` applies
to the scalar head only (a clipped cross-entropy has no standard form), and is ignored for HL-Gauss.

Everything runs on ``sim.device``; the per-step loop has no host sync (apart from the rare
all-ended check for simulators that end episodes themselves); statistics are read once per update.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import polars as pl
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from decisionlab.core.agents import GroupRows, assemble, group_rows
from decisionlab.core.nets.actor_critic import ActorCritic, SquashedGaussian
from decisionlab.core.policy import MergedPolicy
from decisionlab.core.progress import Progress
from decisionlab.core.seeding import child_generator
from decisionlab.core.sim import BatchedSimulator, horizon_of
from decisionlab.core.spaces import SINGLE, AgentGroup, Box, Discrete

ALL_DEAD_CHECK_EVERY = 8
"""Steps between checks (one host sync each) that every environment has terminated (then reset early)."""

NETWORK_FIELDS = frozenset(
    {"value_head", "hl_gauss_bins", "value_min", "value_max", "hidden", "activation", "init_log_std", "min_log_std"}
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
    min_log_std: float | None = Field(None, ge=-20, le=2, description="floor on the pre-squash Gaussian's log-std "
                                      "(None: none)")
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

    def build_network(self, group: AgentGroup, **overrides: Any) -> ActorCritic:
        """The :class:`ActorCritic` these settings describe for ``group``'s features and action space;
        ``overrides`` replace constructor arguments (``obs_scale``, a policy's own ``action_low`` /
        ``action_high``)."""
        arguments = {"hidden": self.hidden, "activation": self.activation, "value_head": self.value_head,
                     "bins": self.hl_gauss_bins, "value_min": self.value_min, "value_max": self.value_max,
                     "init_log_std": self.init_log_std, "min_log_std": self.min_log_std, **action_bounds(group),
                     **overrides}
        features, width, discrete = network_shape(group)
        return ActorCritic(features, width, discrete=discrete, **arguments)


def network_shape(group: AgentGroup) -> tuple[int, int, bool]:
    """``(features, action width or choices, discrete)`` of a network acting for ``group``."""
    if group.features is None or len(group.features.shape) != 1:
        raise ValueError("PPO reads a flat features space [F]: declare Spaces.features")
    space = group.action
    if isinstance(space, Box):
        return group.features.shape[0], space.size, False
    if isinstance(space, Discrete) and not space.shape:
        return group.features.shape[0], space.n, True
    raise ValueError(f"PPO acts in a Box or a single-choice Discrete space, not {space} (declare several "
                     "choices as agents of a group)")


def action_bounds(group: AgentGroup) -> dict[str, Any]:
    """The squashed Gaussian's bounds of a Box action (flattened), nothing for a discrete one."""
    if not isinstance(group.action, Box):
        return {}
    low, high = group.action.learner_bounds()
    return {"action_low": low.flatten().tolist(), "action_high": high.flatten().tolist()}


class ActorCriticPolicy(nn.Module):
    """``act(obs)``: the deterministic action of ``net`` (squashed mean / most probable legal choice) for
    one group of a simulator, read and written through its spaces (:mod:`decisionlab.core.agents`).

    Only ``net`` is part of ``config()`` / the state dict; the simulator whose features and masks it reads
    is bound with :meth:`bind` (a domain's learned kind does so in ``for_scenario``)."""

    def __init__(self, net: ActorCritic, sim: Any = None, group: str = SINGLE, name: str = "ppo") -> None:
        super().__init__()
        self.net, self.group, self.name = net, group, name
        self.sim: Any = None
        self.reader: GroupRows | None = None
        if sim is not None:
            self.bind(sim)

    def bind(self, sim: Any) -> ActorCriticPolicy:
        """Read observations and write actions through ``sim``'s spaces (returns ``self``)."""
        readers = group_rows(sim.spaces)
        if self.group not in readers:
            raise ValueError(f"the simulator has no agent group {self.group!r} (groups: {sorted(readers)})")
        self.sim, self.reader = sim, readers[self.group]
        return self

    @torch.no_grad()
    def group_action(self, obs: Any) -> torch.Tensor:
        """This group's action in the simulator's form (``[B, ...]`` or ``[B, count, ...]``)."""
        if self.reader is None:
            raise ValueError("bind the policy to a simulator first (ActorCriticPolicy.bind)")
        raw = self.net.act(self.reader.features(self.sim, obs), self.reader.mask(self.sim, obs))
        return self.reader.to_env(raw)

    @torch.no_grad()
    def act(self, obs: Any) -> Any:
        part = self.group_action(obs)
        return assemble(self.sim.spaces, {self.group: part})

    def forward(self, obs: Any) -> Any:
        return self.act(obs)

    def config(self) -> dict[str, Any]:
        return {"kind": "actor_critic_policy", "name": self.name, "group": self.group, "net": self.net.config()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ActorCriticPolicy:
        """Rebuild (without weights: then ``load_state_dict`` the safetensors file, and :meth:`bind`)."""
        return cls(ActorCritic.from_config(config["net"]), group=config.get("group", SINGLE),
                   name=config.get("name", "ppo"))


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    episode_end: torch.Tensor,
    gamma: float,
    lam: float,
    elapsed: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates and λ-returns, all tensors ``[T, B]``.

    ``δ_t = r_t + γ_t (1 − term_t) V'_t − V_t`` and ``A_t = δ_t + γ_t λ (1 − end_t) A_{t+1}`` (``A_T = 0``);
    returns ``R_t = A_t + V_t``. ``γ_t = γ``, or ``γ^{elapsed_t}`` when the decisions are events
    (semi-Markov: the time the step took discounts what comes after it).

    Args:
        rewards: ``r_t`` (scaled).
        values: ``V_t``, the value of the observation the step acted on.
        next_values: ``V'_t``, the value of the observation reached by step ``t``; for a step that
            ended its episode by truncation it is the value of the *final* observation (before the
            reset), so truncation is bootstrapped.
        terminated: bool, the step ended in a true terminal state: its bootstrap is dropped
            (a ``where``, not a product, so a non-finite ``V'`` there cannot leak a NaN).
        episode_end: bool, terminated or truncated: the recursion does not cross into the next episode.
        elapsed: ``[T, B]`` time each step took (None: one period each).

    Vectorised over ``B``; a Python loop over ``T``.
    """
    bootstrap = torch.where(terminated.bool(), torch.zeros_like(next_values), next_values)
    if elapsed is None:
        deltas = rewards + gamma * bootstrap - values
        carry = gamma * lam * (~episode_end.bool()).to(values.dtype)
    else:
        discount = torch.pow(torch.tensor(gamma, dtype=values.dtype, device=values.device), elapsed.to(values.dtype))
        deltas = rewards + discount * bootstrap - values
        carry = discount * lam * (~episode_end.bool()).to(values.dtype)
    advantages = torch.empty_like(values)
    running = torch.zeros_like(values[0])
    for t in range(values.shape[0] - 1, -1, -1):
        running = deltas[t] + carry[t] * running
        advantages[t] = running
    return advantages, advantages + values


@dataclass
class Rollout:
    """``T`` steps of ``R`` rows (environments × agents of one group); every field is ``[T, R, ...]``."""

    features: torch.Tensor  # [T, R, F] network input the step acted on
    actions: torch.Tensor  # [T, R, A] pre-squash u (continuous) or [T, R] long indices
    log_probs: torch.Tensor  # [T, R] log p(action) under the collecting policy
    values: torch.Tensor  # [T, R] V of the features
    next_values: torch.Tensor  # [T, R] V of the observation reached (the final one before a reset)
    rewards: torch.Tensor  # [T, R] scaled
    terminated: torch.Tensor  # [T, R] bool, this step was the env's terminal step
    episode_end: torch.Tensor  # [T, R] bool, ended or the episode was cut (reset) after this step
    alive: torch.Tensor  # [T, R] bool, the env's episode had not ended before this step
    masks: torch.Tensor | None  # [T, R, A] bool legal choices, or None
    elapsed: torch.Tensor | None = None  # [T, R] time each step took (event-timed simulators)


class RolloutCollector:
    """Steps ``num_envs`` environments in lock-step across updates and collects one :class:`Rollout` per
    agent group.

    It owns the simulator state between updates: the episode step counter, this episode's exogenous
    paths, the alive mask and the running episode returns (of the simulator's own reward, before
    shaping and scaling, summed over alive steps, per group)."""

    def __init__(
        self,
        sim: BatchedSimulator[Any],
        *,
        num_envs: int,
        horizon: int,
        reward_scale: float = 1.0,
        generator: torch.Generator | None = None,
        rng: torch.Generator | None = None,
    ) -> None:
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        self.sim, self.num_envs, self.horizon = sim, num_envs, horizon
        self.reward_scale, self.generator, self.rng = reward_scale, generator, rng
        self.readers = group_rows(sim.spaces)
        self.device = sim.device
        self.no_end = torch.zeros(num_envs, dtype=torch.bool, device=self.device)
        self.return_sum = {name: torch.zeros((), device=self.device) for name in self.readers}
        self.return_count = 0
        self.reset()

    def _observe(self) -> None:
        self.obs = self.sim.observe(self.state)
        self.features = {name: r.features(self.sim, self.obs) for name, r in self.readers.items()}
        self.mask = {name: r.mask(self.sim, self.obs) for name, r in self.readers.items()}

    def reset(self) -> None:
        """A new episode for every environment."""
        with torch.no_grad():
            self.state = self.sim.reset(self.num_envs, self.generator)
            self.exogenous = self.sim.sample_exogenous(self.num_envs, self.horizon, self.generator)
            self.t = 0
            self.alive = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
            self.episode_return = {name: torch.zeros(self.num_envs * r.count, device=self.device)
                                   for name, r in self.readers.items()}
            self._observe()

    @torch.no_grad()
    def collect(self, nets: Mapping[str, ActorCritic], steps: int) -> dict[str, Rollout]:
        """Sample ``steps`` vector steps with each group's stochastic policy ``nets[group]``."""
        keys = ("features", "actions", "log_probs", "values", "rewards", "terminated", "episode_end", "alive")
        parts = {name: {k: [] for k in keys} for name in self.readers}
        masks: dict[str, list[torch.Tensor]] = {name: [] for name in self.readers}
        elapsed: list[torch.Tensor] = []
        next_values: dict[str, list[torch.Tensor | None]] = {name: [] for name in self.readers}
        for _ in range(steps):
            features, mask, alive = self.features, self.mask, self.alive
            sampled, actions = {}, {}
            for name, reader in self.readers.items():
                dist = nets[name].distribution(features[name], mask[name])
                sample = dist.sample(self.rng)  # indices [R], or pre-squash u [R, A]
                sampled[name] = (dist, sample)
                actions[name] = reader.to_env(dist.squash(sample) if isinstance(dist, SquashedGaussian) else sample)
            result = self.sim.step(self.state, assemble(self.sim.spaces, actions), self.exogenous[:, self.t])
            terminated = result.terminated.bool() & alive if result.terminated is not None else self.no_end
            ended = terminated if result.truncated is None else terminated | (result.truncated.bool() & alive)
            logged = result.info.get("env_reward", result.reward)
            if result.elapsed is not None:
                elapsed.append(result.elapsed)
            for name, reader in self.readers.items():
                dist, sample = sampled[name]
                row_alive = reader.per_row(alive)
                self.episode_return[name] += torch.where(row_alive, reader.reward(logged).detach(), 0.0).to(
                    self.episode_return[name].dtype)
                record = {"features": features[name], "actions": sample, "log_probs": dist.log_prob(sample),
                          "values": nets[name].value(features[name]), "terminated": reader.per_row(terminated),
                          "alive": row_alive,
                          "rewards": reader.reward(result.reward).detach().to(features[name].dtype) * self.reward_scale}
                for key, value in record.items():
                    parts[name][key].append(value)
                if mask[name] is not None:
                    masks[name].append(mask[name])
            self.state, self.alive, self.t = result.state, alive & ~ended, self.t + 1

            cut = self.t >= self.horizon
            if not cut and (result.terminated is not None or result.truncated is not None) \
                    and self.t % ALL_DEAD_CHECK_EVERY == 0:
                cut = not bool(self.alive.any())  # one host sync every few steps, only for sims that end episodes
            if cut:
                final_obs = self.sim.observe(self.state)
                for name, reader in self.readers.items():
                    final = reader.features(self.sim, final_obs).to(features[name].dtype)
                    next_values[name].append(nets[name].value(final))  # truncation bootstraps from the final obs
                    parts[name]["episode_end"].append(torch.ones_like(parts[name]["terminated"][-1]))
                    self.return_sum[name] += self.episode_return[name].sum() / reader.count
                self.return_count += self.num_envs
                self.reset()
            else:
                self._observe()
                for name, reader in self.readers.items():
                    next_values[name].append(None)  # V of the next step's observation, filled in below
                    parts[name]["episode_end"].append(reader.per_row(ended))

        out = {}
        for name in self.readers:
            values = parts[name]["values"] + [nets[name].value(self.features[name])]
            filled = [v if v is not None else values[t + 1] for t, v in enumerate(next_values[name])]
            stacked = {k: torch.stack(v) for k, v in parts[name].items()}
            taken = None
            if elapsed:
                taken = torch.stack([self.readers[name].per_row(e) for e in elapsed])
            stacked_masks = torch.stack(masks[name]) if masks[name] else None
            out[name] = Rollout(next_values=torch.stack(filled), masks=stacked_masks, elapsed=taken, **stacked)
        return out

    def pop_episode_returns(self) -> dict[str, float]:
        """Mean return per agent of each group over the episodes finished since the last call (NaN if
        none); one host sync per group."""
        if not self.return_count:
            return {name: math.nan for name in self.readers}
        out = {name: float(total) / self.return_count for name, total in self.return_sum.items()}
        self.return_sum = {name: torch.zeros((), device=self.device) for name in self.readers}
        self.return_count = 0
        return out

    def pop_episode_return(self) -> float:
        """:meth:`pop_episode_returns` of the first (for a single agent: the only) group."""
        return next(iter(self.pop_episode_returns().values()))


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
    """The trained policy (``policies`` per group; ``policy``: the one group's, or all groups acting
    together), its best held-out score and the training record."""

    policy: Any
    best_score: float
    env_steps: int
    updates: int
    seconds: float
    history: pl.DataFrame = field(default_factory=pl.DataFrame)
    policies: dict[str, ActorCriticPolicy] = field(default_factory=dict)


def _stat_columns(groups: Collection[str], stats: Mapping[str, Mapping[str, float]], returns: Mapping[str, float],
                  single: bool) -> dict[str, float]:
    """One history row's statistics: plain names for a single agent, ``group/name`` for groups."""
    row: dict[str, float] = {}
    for group in groups:
        prefix = "" if single else f"{group}/"
        row.update({f"{prefix}{k}": v for k, v in stats.get(group, {}).items()})
        row[f"{prefix}episode_return"] = returns.get(group, math.nan)
    return row


STAT_NAMES = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "explained_variance", "epochs")


def train_ppo(
    sim: BatchedSimulator[Any],
    policy: ActorCritic | Mapping[str, ActorCritic] | None = None,
    config: PPOConfig | None = None,
    *,
    horizon: int | None = None,
    train: Collection[str] | None = None,
    evaluate: Callable[[Any], float] | None = None,
    generator: torch.Generator | None = None,
    progress: bool = True,
    description: str = "PPO",
) -> PPOResult:
    """Train actor-critics by PPO and return their deterministic policy with the best held-out weights.

    Args:
        sim: the batched simulator (module docstring: everything is read from ``sim.spaces``).
        policy: an :class:`ActorCritic` (a single agent), ``{group: ActorCritic}`` (agent groups), or None
            to build them from ``config`` for the declared spaces. Moved to ``sim.device`` and trained in place.
        horizon: steps per episode (default ``sim.horizon``; a truncation, see the module docstring).
        train: the groups that learn (default: all); the others act with their current weights.
        evaluate: held-out score of the acting policy, lower is better, every ``config.eval_every``
            env steps and at the end; None keeps the final weights.
        generator: drives resets and exogenous paths (passed to the simulator as is); the trainer's
            own draws (actions, minibatch shuffles) use a generator on ``sim.device`` seeded from it.
            Network initialisation uses torch's global generator (seed it for reproducibility).
    """
    config = config or PPOConfig()
    device = sim.device
    horizon = horizon_of(sim, horizon)
    groups = sim.spaces.groups()
    single = not sim.spaces.multi_agent
    if policy is not None and NETWORK_FIELDS & config.model_fields_set:
        raise ValueError(f"config fields {sorted(NETWORK_FIELDS & config.model_fields_set)} describe a network "
                         "to build: don't set them when passing policy")
    if isinstance(policy, ActorCritic):
        if not single:
            raise ValueError(f"give one ActorCritic per agent group: {sorted(groups)}")
        policy = {SINGLE: policy}
    nets: dict[str, ActorCritic] = {}
    for name, group in groups.items():
        given = (policy or {}).get(name)
        net = given if given is not None else config.build_network(group)
        features, width, discrete = network_shape(group)
        if (net.obs_dim, net.action_dim, net.discrete) != (features, width, discrete):
            raise ValueError(f"the network of {name!r} is {net.obs_dim} -> {net.action_dim} "
                             f"({'discrete' if net.discrete else 'continuous'}), the task needs {features} -> {width} "
                             f"({'discrete' if discrete else 'continuous'})")
        nets[name] = net.to(device)
    learning = list(groups) if train is None else [name for name in groups if name in set(train)]
    unknown = sorted(set(train or ()) - set(groups))
    if unknown:
        raise ValueError(f"train: no agent groups {unknown} (groups: {sorted(groups)})")

    rng = child_generator(generator, device)
    collector = RolloutCollector(sim, num_envs=config.num_envs, horizon=horizon, reward_scale=config.reward_scale,
                                 generator=generator, rng=rng)
    optimizers = {name: torch.optim.Adam(nets[name].parameters(), lr=config.learning_rate, eps=config.adam_eps)
                  for name in learning}
    label = description.lower()
    wrapped = {name: ActorCriticPolicy(nets[name], sim, name, label) for name in groups}
    acting: Any = wrapped[SINGLE] if single else MergedPolicy(wrapped, label)

    steps_per_update = config.num_envs * config.rollout_steps
    num_updates = max(1, config.total_env_steps // steps_per_update)
    start = time.perf_counter()
    best_score = evaluate(acting) if evaluate is not None else math.nan
    best_state = {name: copy.deepcopy(net.state_dict()) for name, net in nets.items()}
    nan = math.nan
    empty = {name: dict.fromkeys(STAT_NAMES, nan) | {"epochs": 0} for name in groups}
    rows: list[dict[str, float | int]] = [{
        "update": 0, "env_steps": 0, **_stat_columns(groups, empty, {}, single),
        "learning_rate": config.learning_rate, "eval_score": best_score, "seconds": 0.0,
    }]
    env_steps = updates = stale = 0
    next_eval = config.eval_every
    bar = Progress(num_updates * steps_per_update, description, enabled=progress, unit="env step")
    for update in range(1, num_updates + 1):
        lr = config.learning_rate * (1 - (update - 1) / num_updates) if config.anneal_lr else config.learning_rate
        for optimizer in optimizers.values():
            for param_group in optimizer.param_groups:
                param_group["lr"] = lr
        rollouts = collector.collect(nets, config.rollout_steps)
        stats = {}
        for name in learning:
            rollout = rollouts[name]
            with torch.no_grad():
                advantages, returns = compute_gae(rollout.rewards, rollout.values, rollout.next_values,
                                                  rollout.terminated, rollout.episode_end, config.gamma,
                                                  config.gae_lambda, rollout.elapsed)
            stats[name] = ppo_update(nets[name], optimizers[name], rollout, advantages, returns, config, rng)
        env_steps += steps_per_update
        updates = update
        bar.update(steps_per_update)

        score, stop = nan, ""
        if evaluate is not None and (env_steps >= next_eval or update == num_updates):
            next_eval = (env_steps // config.eval_every + 1) * config.eval_every
            score = evaluate(acting)
            if score < best_score or math.isnan(best_score):
                best_score, stale = score, 0
                best_state = {name: copy.deepcopy(net.state_dict()) for name, net in nets.items()}
            else:
                stale += 1
            if config.target is not None and best_score <= config.target:
                stop = f"reached the target score {config.target:.4g} (best {best_score:.4g})"
            elif config.patience is not None and stale >= config.patience:
                stop = f"the held-out score has not improved in {stale} evaluations (best {best_score:.4g})"
        returns_now = collector.pop_episode_returns()
        rows.append({"update": update, "env_steps": env_steps, **_stat_columns(groups, stats, returns_now, single),
                     "learning_rate": lr, "eval_score": score, "seconds": time.perf_counter() - start})
        first = learning[0] if learning else next(iter(groups))
        shown = {"ret": returns_now.get(first, nan), "kl": stats.get(first, {}).get("approx_kl", nan)}
        if evaluate is not None:
            shown |= {"eval": score if not math.isnan(score) else None, "best": best_score}
        bar.show(**shown)
        if stop:
            if update < num_updates:
                bar.stop_early(stop)
            break
    bar.close()
    if evaluate is not None:
        for name, net in nets.items():
            net.load_state_dict(best_state[name])
    history = pl.DataFrame(rows)
    if single:  # the column order of a single-agent run (what curves and tests read)
        history = history.select(["update", "env_steps", *[c for c in STAT_NAMES if c != "epochs"], "epochs",
                                  "learning_rate", "episode_return", "eval_score", "seconds"])
    return PPOResult(policy=acting, best_score=best_score, env_steps=env_steps, updates=updates,
                     seconds=time.perf_counter() - start, history=history, policies=wrapped)
