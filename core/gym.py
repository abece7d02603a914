"""Adapters from any registered batched simulator to the interfaces users' own code speaks.

- :func:`make_env` → a ``gymnasium.Env`` (one environment), its spaces derived from the simulator's
  declaration (``Box``, ``Discrete``, ``MultiDiscrete``, ``Dict``); the current legal choices as
  :meth:`SimulatorEnv.action_masks` (what sb3-contrib's ``MaskablePPO`` reads);
- :func:`~decisionlab.core.vec_env.make_vec_env` → a Stable-Baselines3 ``VecEnv`` of ``num_envs``
  environments backed by ONE batched simulator (one tensor step for all of them, not N copies);
- :func:`~decisionlab.core.parallel_env.make_parallel_env` → a PettingZoo ``ParallelEnv`` with one agent
  per member of each agent group.

(Those two live in their own modules: SB3 and PettingZoo load only when they are used.)

Conventions (the same in all three):

- observations: the simulator's features (``spaces.features``, a float ``Box``) by default, or its
  structured observation (``observation="structured"``: a ``Dict`` of the declared fields);
- continuous actions: normalised to ``[-1, 1]`` and mapped linearly onto the box's ``span`` (or bounds),
  as SB3 expects (``normalize_actions=False`` takes them in the simulator's units);
- agent groups in a single-agent interface (gymnasium, SB3): every agent's choice side by side
  (``MultiDiscrete`` when all groups choose from ``Discrete`` spaces), the features concatenated,
  the reward summed over all agents (a team reward);
- episodes: a simulator's ``terminated`` is a termination, its ``truncated`` or reaching
  ``max_episode_steps`` (the simulator's ``horizon`` by default) a truncation; ``info["elapsed"]``
  carries the time a decision took for event-timed simulators. Exogenous randomness is drawn from a
  torch generator seeded at ``reset``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import fields, is_dataclass, replace
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from decisionlab.core.seeding import make_generator
from decisionlab.core.sim import BatchedSimulator, action_mask, horizon_of
from decisionlab.core.spaces import Box, Composite, Discrete, Slate, Space, Spaces, as_fields
from decisionlab.core.spec import get_domain

# --- building simulators ---------------------------------------------------------------------------


def make_simulator(
    domain: str, scenario: str | None = None, overrides: Mapping[str, Any] | None = None, device: str = "cpu"
) -> BatchedSimulator[Any]:
    """The batched simulator of a registered domain's scenario preset (with parameter overrides)."""
    spec = get_domain(domain)
    resolved = spec.scenario(scenario or spec.default_scenario, overrides)
    return spec.setting_of(resolved).make_simulator(resolved, torch.device(device))


def _simulator(source: str | BatchedSimulator[Any], scenario: str | None, parameters: Mapping[str, Any],
               device: str) -> BatchedSimulator[Any]:
    if isinstance(source, str):
        return make_simulator(source, scenario, parameters or None, device)
    if scenario is not None or parameters:
        raise ValueError("scenario and parameters name a domain's preset: give a domain name, not a simulator")
    return source


# --- actions ---------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _box_range(space: Box, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The float32 range a normalised action maps onto, on ``device`` (spaces are immutable: cached)."""
    low, high = space.learner_bounds()
    return low.float().to(device), high.float().to(device)


def to_simulator_action(sim: Any, normalized: torch.Tensor) -> torch.Tensor:
    """Continuous actions in ``[-1, 1]`` mapped linearly onto the single-agent Box's span ``[B, *shape]``."""
    low, high = _box_range(sim.spaces.action, str(normalized.device))
    unit = (normalized.reshape(-1, *low.shape).clamp(-1.0, 1.0) + 1.0) / 2.0
    return low + unit * (high - low)


def to_normalized_action(sim: Any, action: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_simulator_action` (replaying a simulator-scale policy through an adapter)."""
    low, high = _box_range(sim.spaces.action, str(action.device))
    return 2.0 * (action.reshape(-1, *low.shape) - low) / (high - low) - 1.0


def _gym_action(space: Space, normalize: bool) -> gym.spaces.Space:
    if isinstance(space, Box):
        if not normalize:
            return space.gym()
        shape = space.shape or (1,)
        return gym.spaces.Box(-1.0, 1.0, shape, np.float32)
    if isinstance(space, Composite):
        return gym.spaces.Dict({name: _gym_action(part, normalize) for name, part in space.fields.items()})
    return space.gym()


def _torch_action(space: Space, value: Any, lead: tuple[int, ...], normalize: bool, device: torch.device) -> Any:
    """A batch of gymnasium actions (numpy, leading dims ``lead``) as the simulator takes them."""
    if isinstance(space, Composite):
        return {name: _torch_action(part, value[name], lead, normalize, device) for name, part in space.fields.items()}
    array = np.asarray(value)
    if isinstance(space, Box):
        x = torch.as_tensor(array, dtype=torch.float32, device=device).reshape(*lead, *space.shape)
        if normalize:
            low, high = _box_range(space, str(device))
            x = low + (x.clamp(-1.0, 1.0) + 1.0) / 2.0 * (high - low)
        return x if x.dtype == space.torch_dtype else x.to(space.torch_dtype)
    return torch.as_tensor(array.astype(np.int64), device=device).reshape(*lead, *space.shape)


class _Layout:
    """How one environment's actions, observations, masks and rewards look to a single-agent interface."""

    def __init__(self, spaces: Spaces, observation: str, normalize: bool) -> None:
        if observation not in ("features", "structured"):
            raise ValueError(f"observation must be 'features' or 'structured', got {observation!r}")
        self.spaces, self.structured, self.normalize = spaces, observation == "structured", normalize
        self.groups = spaces.groups()
        # agents choosing from single-choice Discrete spaces side by side: one MultiDiscrete
        self.side_by_side = spaces.multi_agent and all(
            isinstance(g.action, Discrete) and not g.action.shape for g in self.groups.values())
        self.action_space = self._action_space()
        self.observation_space = self._observation_space()

    def _action_space(self) -> gym.spaces.Space:
        if not self.spaces.multi_agent:
            return _gym_action(self.spaces.action, self.normalize)
        if self.side_by_side:
            nvec = np.concatenate([np.full(g.count, g.action.n) for g in self.groups.values()]).astype(np.int64)
            start = np.concatenate([np.full(g.count, g.action.start) for g in self.groups.values()]).astype(np.int64)
            return gym.spaces.MultiDiscrete(nvec, start=start)
        return gym.spaces.Dict({name: gym.vector.utils.batch_space(_gym_action(g.action, self.normalize), g.count)
                                for name, g in self.groups.items()})

    def _observation_space(self) -> gym.spaces.Space:
        if self.structured:
            if not self.spaces.multi_agent:
                return self.spaces.observation.gym()
            return gym.spaces.Dict({name: gym.vector.utils.batch_space(g.observation.gym(), g.count)
                                    for name, g in self.groups.items()})
        width = 0
        for name, group in self.groups.items():
            if group.features is None:
                raise ValueError(f"agent group {name!r} declares no features: use observation='structured'")
            width += group.count * group.features.size
        return gym.spaces.Box(-np.inf, np.inf, (width,), np.float32)

    def to_sim(self, actions: Any, batch: int, device: torch.device) -> Any:
        if not self.spaces.multi_agent:
            return _torch_action(self.spaces.action, actions, (batch,), self.normalize, device)
        if self.side_by_side:
            flat = torch.as_tensor(np.asarray(actions).astype(np.int64), device=device).reshape(batch, -1)
            out, at = {}, 0
            for name, group in self.groups.items():
                out[name] = flat[:, at:at + group.count]
                at += group.count
            return out
        return {name: _torch_action(g.action, actions[name], (batch, g.count), self.normalize, device)
                for name, g in self.groups.items()}

    def observation(self, sim: Any, obs: Any) -> Any:
        if self.structured:
            return _numpy_fields(obs)
        flat = sim.flat_observation(obs)
        if not self.spaces.multi_agent:
            return _numpy(flat).astype(np.float32)
        parts = [_numpy(flat[name]).reshape(flat[name].shape[0], -1) for name in self.groups]
        return np.concatenate(parts, axis=1).astype(np.float32)

    def reward(self, reward: Any) -> np.ndarray:
        if not self.spaces.multi_agent:
            return _numpy(reward).astype(np.float64)
        return sum(_numpy(reward[name]).reshape(-1, self.groups[name].count).sum(1) for name in self.groups)

    def masks(self, sim: Any, obs: Any) -> np.ndarray | None:
        """Legal choices per environment, flattened as MaskablePPO reads them ``[B, Σ n]``."""
        mask = action_mask(sim, obs)
        if mask is None:
            return None
        if not self.spaces.multi_agent:
            if isinstance(mask, Mapping):
                return np.concatenate([_numpy(mask[k]).reshape(_numpy(mask[k]).shape[0], -1) for k in mask], axis=1)
            flat = _numpy(mask).reshape(_numpy(mask).shape[0], -1)
            if isinstance(self.spaces.action, Slate):  # a MultiDiscrete of k positions, each over the candidates
                return np.tile(flat, (1, self.spaces.action.k))
            return flat
        parts = []
        for name, group in self.groups.items():
            part = mask.get(name) if isinstance(mask, Mapping) else None
            if part is None:  # an unmasked group: every choice is legal
                rows = next(iter(mask.values())).shape[0]
                size = group.count * getattr(group.action, "n", 1)
                parts.append(np.ones((rows, size), dtype=bool))
            else:
                parts.append(_numpy(part).reshape(part.shape[0], -1))
        return np.concatenate(parts, axis=1)


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().numpy() if x.device.type == "cpu" else x.detach().cpu().numpy()


def _numpy_fields(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        array = _numpy(value)
        return array.astype(np.float32) if array.dtype == np.float64 else array
    values = as_fields(value)
    if values is None:
        raise TypeError(f"cannot turn a {type(value).__name__} into gymnasium values")
    return {name: _numpy_fields(item) for name, item in values.items()}


def _index(value: Any, row: int) -> Any:
    """Row ``row`` of a batch of gymnasium values (an array, or a dict of them)."""
    if isinstance(value, Mapping):
        return {k: _index(v, row) for k, v in value.items()}
    return value[row]


# --- one batch of environments ---------------------------------------------------------------------


def merge_rows(take: torch.Tensor, fresh: Any, old: Any) -> Any:
    """``old`` with the rows ``take [B]`` (bool) replaced by ``fresh``'s: a partial reset. Works on tensors
    with a leading batch dimension inside dataclasses, mappings and tuples; other values must agree."""
    if isinstance(old, torch.Tensor):
        if old.dim() == 0:
            if not torch.equal(old, fresh):
                raise ValueError("the simulator's state has a value shared by the whole batch: its environments "
                                 "can only reset together")
            return old
        keep = take.reshape(take.shape + (1,) * (old.dim() - 1))
        return torch.where(keep, fresh, old)
    if is_dataclass(old) and not isinstance(old, type):
        return replace(old, **{f.name: merge_rows(take, getattr(fresh, f.name), getattr(old, f.name))
                               for f in fields(old) if f.init})
    if isinstance(old, Mapping):
        return {k: merge_rows(take, fresh[k], v) for k, v in old.items()}
    if isinstance(old, tuple):
        return type(old)(merge_rows(take, f, o) for f, o in zip(fresh, old, strict=True))
    if old is None or old == fresh:
        return old
    raise ValueError(f"the simulator's state has a {type(old).__name__} shared by the whole batch: its "
                     "environments can only reset together")


class BatchedEnvs:
    """``num_envs`` environments of one batched simulator: per-environment step counters, episode ends
    and resets (a full reset when all end together, as with a fixed horizon; rows spliced in otherwise).
    Counters and end flags live on the host (numpy): the adapters hand them to host code anyway."""

    def __init__(self, sim: BatchedSimulator[Any], num_envs: int, max_episode_steps: int | None = None,
                 seed: int = 0) -> None:
        self.sim, self.num_envs = sim, int(num_envs)
        self.horizon = horizon_of(sim, max_episode_steps)
        self.device = sim.device
        self.generator = make_generator(seed, self.device)
        self.state: Any = None
        self.exogenous: torch.Tensor | None = None
        self.t = np.zeros(self.num_envs, dtype=np.int64)
        self.synced = True  # every environment is at the same step (after a full reset): one index for all
        self.rows = torch.arange(self.num_envs, device=self.device)
        self.no = np.zeros(self.num_envs, dtype=bool)

    def seed(self, seed: int) -> None:
        self.generator = make_generator(int(seed), self.device)

    def reset(self) -> Any:
        """A new episode for every environment; returns the observation."""
        with torch.no_grad():
            self.state = self.sim.reset(self.num_envs, self.generator)
            self.exogenous = self.sim.sample_exogenous(self.num_envs, self.horizon, self.generator)
        self.t[:] = 0
        self.synced = True
        return self.sim.observe(self.state)

    def reset_rows(self, ended: np.ndarray) -> Any:
        """New episodes for the environments ``ended [B]`` (bool); returns the observation of all."""
        if ended.all():
            return self.reset()
        with torch.no_grad():
            fresh = self.sim.reset(self.num_envs, self.generator)
            paths = self.sim.sample_exogenous(self.num_envs, self.horizon, self.generator)
        take = torch.as_tensor(ended, device=self.device)
        self.state = merge_rows(take, fresh, self.state)
        keep = take.reshape(take.shape + (1,) * (paths.dim() - 1))
        self.exogenous = torch.where(keep, paths, self.exogenous)
        self.t[ended] = 0
        self.synced = False
        return self.sim.observe(self.state)

    def step(self, action: Any) -> tuple[Any, Any, np.ndarray, np.ndarray, torch.Tensor | None, dict[str, Any]]:
        """One decision for every environment: ``(next observation, reward, terminated [B], truncated [B],
        elapsed, info)`` (flags as numpy bools); the caller resets what ended."""
        if self.state is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        if self.synced:
            exogenous = self.exogenous[:, min(int(self.t[0]), self.horizon - 1)]
        else:
            t = np.minimum(self.t, self.horizon - 1)
            exogenous = self.exogenous[self.rows, torch.as_tensor(t, device=self.device)]
        with torch.no_grad():
            result = self.sim.step(self.state, action, exogenous)
        self.state = result.state
        self.t += 1
        terminated = _numpy(result.terminated).astype(bool) if result.terminated is not None else self.no
        truncated = np.full(self.num_envs, self.t[0] >= self.horizon) if self.synced else self.t >= self.horizon
        if result.truncated is not None:
            truncated = truncated | _numpy(result.truncated).astype(bool)
        return (self.sim.observe(self.state), result.reward, terminated, truncated & ~terminated, result.elapsed,
                result.info)


# --- gymnasium -------------------------------------------------------------------------------------


class SimulatorEnv(gym.Env):
    """One environment of a batched simulator, as gymnasium and single-environment libraries expect.

    Continuous actions are normalised to ``[-1, 1]`` (module docstring). After an episode ends, call
    ``reset``; ``reset()`` without a seed draws one from the env's own ``np_random``."""

    metadata = {"render_modes": []}

    def __init__(self, sim: BatchedSimulator[Any], max_episode_steps: int | None = None, *,
                 observation: str = "features", normalize_actions: bool = True) -> None:
        self.sim = sim
        self.layout = _Layout(sim.spaces, observation, normalize_actions)
        self.batch = BatchedEnvs(sim, 1, max_episode_steps)
        self.horizon = self.batch.horizon
        self.observation_space = self.layout.observation_space
        self.action_space = self.layout.action_space
        self._obs: Any = None
        self._done = True

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is None:
            seed = int(self.np_random.integers(2**31 - 1))
        self.batch.seed(seed)
        self._obs, self._done = self.batch.reset(), False
        return _index(self.layout.observation(self.sim, self._obs), 0), {}

    def step(self, action: Any):
        if self._done or self.batch.state is None:
            raise gym.error.ResetNeeded("the episode has ended: call reset() before step()")
        batched = {k: np.asarray(v)[None] for k, v in action.items()} if isinstance(action, Mapping) \
            else np.asarray(action)[None]
        obs, reward, terminated, truncated, elapsed, _ = self.batch.step(
            self.layout.to_sim(batched, 1, self.sim.device))
        self._obs = obs
        self._done = bool(terminated[0] or truncated[0])
        info = {"elapsed": float(elapsed[0])} if elapsed is not None else {}
        return (_index(self.layout.observation(self.sim, obs), 0), float(self.layout.reward(reward)[0]),
                bool(terminated[0]), bool(truncated[0]), info)

    def action_masks(self) -> np.ndarray:
        """The legal choices now, flattened (all True for an unmasked simulator): MaskablePPO's input."""
        masks = self.layout.masks(self.sim, self._obs) if self._obs is not None else None
        if masks is None:
            size = int(np.sum(getattr(self.action_space, "nvec", [getattr(self.action_space, "n", 1)])))
            return np.ones(size, dtype=bool)
        return masks[0]


def make_env(domain: str | BatchedSimulator[Any], scenario: str | None = None, *,
             max_episode_steps: int | None = None, device: str = "cpu", observation: str = "features",
             normalize_actions: bool = True, **parameters: Any) -> SimulatorEnv:
    """A ``gymnasium.Env`` of a registered domain's scenario (``parameters``: scenario overrides) or of a
    simulator; its spaces come from the simulator's declaration (module docstring)."""
    sim = _simulator(domain, scenario, parameters, device)
    return SimulatorEnv(sim, max_episode_steps, observation=observation, normalize_actions=normalize_actions)
