"""Typed declarations of what a simulator shows and what it takes (the domain contract v3).

A simulator declares its observation and its action as :class:`Spaces`: named, typed fields in the
vocabulary of gymnasium's spaces (``Box``, ``Discrete``/``MultiDiscrete``, ``Dict``), extended with
what gymnasium leaves out and our domains need:

- :class:`Box`: real (or integer, or boolean) values of a per-item ``shape`` within ``low``/``high``;
- :class:`Discrete`: one choice out of ``n`` per item of ``shape`` (``()``: a single choice), the
  choices numbered from ``start`` (``start=-1``: "none" is a choice), optionally ``masked``: the
  simulator says which choices are legal in each state (``sim.action_mask(obs)``, bool
  ``[..., *shape, n]``). ``n`` may be far beyond 2^24: choices are int64 end to end;
- :class:`Slate`: ``k`` distinct choices out of ``n`` (a ranked list of candidates), optionally masked;
- :class:`Composite`: named fields, each a space (a ``dict[str, Tensor]`` of values);
- :class:`AgentGroup`: ``count`` agents sharing one observation and one action space: their values
  carry an agent axis after the batch, ``[B, count, ...]``; a setting may have several groups
  (``workers`` and ``planner``), each with its own spaces.

Everything generic reads these declarations: the gymnasium / Stable-Baselines3 / PettingZoo adapters
(:mod:`decisionlab.core.gym`), the trainers (continuous or categorical heads, masks, the agent axis),
the serving path and the conformance suite (every action inside its space, no masked choice taken).

Why gymnasium's vocabulary and not torchrl's specs: every domain already speaks gymnasium (the SB3
peer, users' own code), :meth:`Space.gym` converts exactly, and torchrl would add a heavy dependency
for the same four shapes. What gymnasium lacks (masks, slates, agent groups, torch tensors) is here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium
import numpy as np
import torch

DType = Literal["float32", "float64", "int64", "bool"]
TORCH_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64,
                                        "int64": torch.int64, "bool": torch.bool}
Bound = float | tuple[float, ...]


def _shape(shape: int | Sequence[int]) -> tuple[int, ...]:
    return (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)


def _lead(x: torch.Tensor, shape: tuple[int, ...], lead: int) -> list[str]:
    """Problems with the shape of ``x``: ``lead`` leading (batch, agent) axes, then ``shape``."""
    if tuple(x.shape[lead:]) != shape or x.dim() != lead + len(shape):
        return [f"shape {tuple(x.shape)}, expected {lead} leading axes then {shape}"]
    return []


@dataclass(frozen=True)
class Box:
    """Values of per-item ``shape`` in ``[low, high]`` (scalars or one bound per component).

    ``dtype`` float32/float64 (continuous), int64 (counts, ids used as numbers) or bool (flags).
    ``span``: where ``[low, high]`` is unbounded (orders, quote depths: the simulator takes any value),
    the range learners and adapters map a normalised action onto (a squashed Gaussian's bounds,
    SB3's ``[-1, 1]``).
    """

    shape: tuple[int, ...]
    low: Bound = -math.inf
    high: Bound = math.inf
    dtype: DType = "float32"
    unit: str = ""
    description: str = ""
    span: tuple[Bound, Bound] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _shape(self.shape))
        for name in ("low", "high"):
            value = getattr(self, name)
            if not isinstance(value, int | float):
                object.__setattr__(self, name, tuple(float(v) for v in value))
        if self.dtype not in TORCH_DTYPES:
            raise ValueError(f"dtype must be one of {sorted(TORCH_DTYPES)}, got {self.dtype!r}")
        low, high = self.bounds()
        if bool((low > high).any()):
            raise ValueError(f"Box bounds need low <= high, got {self.low} and {self.high}")
        if self.span is not None:
            span_low, span_high = (self._full(b) for b in self.span)
            if not bool((torch.isfinite(span_low) & torch.isfinite(span_high) & (span_high > span_low)).all()):
                raise ValueError(f"a Box span needs finite bounds with high > low, got {self.span}")

    def _full(self, value: Bound) -> torch.Tensor:
        tensor = torch.as_tensor(value, dtype=torch.float64)
        return tensor.expand(self.shape).clone() if tensor.dim() == 0 else tensor.reshape(self.shape)

    @property
    def torch_dtype(self) -> torch.dtype:
        return TORCH_DTYPES[self.dtype]

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(low, high)`` as float64 tensors of ``shape`` (on the CPU)."""
        return self._full(self.low), self._full(self.high)

    def learner_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``span`` when given, else ``(low, high)``, which must then be finite: the range a normalised
        action is mapped onto."""
        if self.span is not None:
            return self._full(self.span[0]), self._full(self.span[1])
        if not self.bounded:
            raise ValueError("an unbounded Box needs a span for learners and adapters")
        return self.bounds()

    @property
    def bounded(self) -> bool:
        low, high = self.bounds()
        return bool(torch.isfinite(low).all() and torch.isfinite(high).all())

    def gym(self) -> gymnasium.spaces.Space:
        if self.dtype == "bool":
            return gymnasium.spaces.MultiBinary(list(self.shape))
        low, high = (b.numpy() for b in self.bounds())
        dtype = np.int64 if self.dtype == "int64" else np.float32 if self.dtype == "float32" else np.float64
        if dtype is np.int64:  # gymnasium needs finite integer bounds
            info = np.iinfo(np.int64)
            low, high = np.nan_to_num(low, neginf=info.min, posinf=info.max), np.nan_to_num(high, neginf=info.min,
                                                                                           posinf=info.max)
        return gymnasium.spaces.Box(low.astype(dtype), high.astype(dtype), self.shape, dtype)

    def problems(self, x: Any, lead: int = 1) -> list[str]:
        if not isinstance(x, torch.Tensor):
            return [f"a {type(x).__name__}, expected a tensor"]
        found = _lead(x, self.shape, lead)
        if found:
            return found
        if self.dtype == "bool":
            return [] if x.dtype == torch.bool else [f"dtype {x.dtype}, expected bool"]
        if self.dtype == "int64" and x.is_floating_point():
            return [f"dtype {x.dtype}, expected integers"]
        if x.numel() == 0:
            return []
        values = x.detach().double()
        if not bool(torch.isfinite(values).all()) and self.bounded:
            return ["non-finite values"]
        if bool(torch.isnan(values).any()):
            return ["NaN values"]
        low, high = (b.to(values.device) for b in self.bounds())
        outside = (values < low) | (values > high)
        if bool(outside.any()):
            worst = values[outside].flatten()[0].item()
            return [f"value {worst:g} outside [{self.low}, {self.high}]"]
        return []

    def sample(self, lead: tuple[int, ...], generator: torch.Generator | None = None,
               device: torch.device | str = "cpu", mask: torch.Tensor | None = None) -> torch.Tensor:
        """Uniform values inside the bounds (standard normal on unbounded components)."""
        low, high = (b.to(device) for b in self.bounds())
        u = torch.rand((*lead, *self.shape), generator=generator, device=device, dtype=torch.float64)
        if self.dtype == "bool":
            return u < 0.5
        finite = torch.isfinite(low) & torch.isfinite(high)
        normal = torch.randn((*lead, *self.shape), generator=generator, device=device, dtype=torch.float64)
        value = torch.where(finite, low + u * (high - low).nan_to_num(0.0), normal.clamp(low, high))
        if self.dtype == "int64":
            return value.floor().clamp(low, high).long()
        return value.to(self.torch_dtype)


@dataclass(frozen=True)
class Discrete:
    """One choice out of ``n`` per item of ``shape``, numbered ``start .. start + n − 1`` (int64).

    ``masked``: the simulator's ``action_mask(obs)`` gives the legal choices now, bool
    ``[..., *shape, n]`` (index ``c − start`` for choice ``c``)."""

    n: int
    shape: tuple[int, ...] = ()
    start: int = 0
    masked: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _shape(self.shape))
        if self.n < 1:
            raise ValueError(f"a Discrete space needs n >= 1, got {self.n}")

    @property
    def dtype(self) -> str:
        return "int64"

    def gym(self) -> gymnasium.spaces.Space:
        if not self.shape:
            return gymnasium.spaces.Discrete(self.n, start=self.start)
        return gymnasium.spaces.MultiDiscrete(np.full(self.shape, self.n, dtype=np.int64),
                                              start=np.full(self.shape, self.start, dtype=np.int64))

    def problems(self, x: Any, lead: int = 1, mask: torch.Tensor | None = None) -> list[str]:
        if not isinstance(x, torch.Tensor):
            return [f"a {type(x).__name__}, expected a tensor"]
        if x.is_floating_point() or x.dtype == torch.bool:
            return [f"dtype {x.dtype}, expected integer choices"]
        found = _lead(x, self.shape, lead)
        if found or x.numel() == 0:
            return found
        index = x.long() - self.start
        outside = (index < 0) | (index >= self.n)
        if bool(outside.any()):
            return [f"choice {int(x[outside].flatten()[0])} outside {self.start}..{self.start + self.n - 1}"]
        if mask is not None:
            legal = torch.gather(mask, -1, index.unsqueeze(-1)).squeeze(-1)
            if not bool(legal.all()):
                return [f"{int((~legal).sum())} masked choice(s) taken"]
        return []

    def sample(self, lead: tuple[int, ...], generator: torch.Generator | None = None,
               device: torch.device | str = "cpu", mask: torch.Tensor | None = None) -> torch.Tensor:
        """Uniform legal choices ``[*lead, *shape]`` (uniform over all ``n`` without a mask)."""
        if mask is None:
            return torch.randint(self.n, (*lead, *self.shape), generator=generator, device=device) + self.start
        noise = torch.rand(mask.shape, generator=generator, device=mask.device)
        return torch.where(mask, noise, -1.0).argmax(-1) + self.start


@dataclass(frozen=True)
class Slate:
    """``k`` distinct choices out of ``n`` candidates, in rank order (int64 ``[..., k]``); ``masked``:
    ``action_mask(obs)`` gives the candidates that may be shown, bool ``[..., n]``."""

    n: int
    k: int
    masked: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.k <= self.n:
            raise ValueError(f"a Slate needs 1 <= k <= n, got k={self.k}, n={self.n}")

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.k,)

    @property
    def dtype(self) -> str:
        return "int64"

    def gym(self) -> gymnasium.spaces.Space:
        return gymnasium.spaces.MultiDiscrete(np.full(self.k, self.n, dtype=np.int64))

    def problems(self, x: Any, lead: int = 1, mask: torch.Tensor | None = None) -> list[str]:
        found = Discrete(self.n, (self.k,)).problems(x, lead)
        if found or x.numel() == 0:
            return found
        ordered = torch.sort(x.long(), dim=-1).values
        if bool((ordered[..., 1:] == ordered[..., :-1]).any()):
            return ["a slate shows the same candidate twice"]
        if mask is not None and not bool(torch.gather(mask, -1, x.long()).all()):
            return ["a masked candidate is in a slate"]
        return []

    def sample(self, lead: tuple[int, ...], generator: torch.Generator | None = None,
               device: torch.device | str = "cpu", mask: torch.Tensor | None = None) -> torch.Tensor:
        """``k`` distinct legal candidates in random order (each row needs ``k`` legal ones)."""
        noise = torch.rand((*lead, self.n), generator=generator, device=device)
        if mask is not None:
            noise = torch.where(mask, noise, -1.0)
        return torch.topk(noise, self.k, dim=-1).indices


@dataclass(frozen=True)
class Composite:
    """Named fields (``dict[str, Tensor]`` of values), each a space."""

    fields: Mapping[str, Space]
    description: str = ""

    def gym(self) -> gymnasium.spaces.Dict:
        return gymnasium.spaces.Dict({name: space.gym() for name, space in self.fields.items()})

    @property
    def masked(self) -> bool:
        return any(getattr(space, "masked", False) for space in self.fields.values())

    def problems(self, x: Any, lead: int = 1, mask: Mapping[str, torch.Tensor] | None = None) -> list[str]:
        values = as_fields(x)
        if values is None:
            return [f"a {type(x).__name__}, expected fields {sorted(self.fields)}"]
        missing = sorted(set(self.fields) - set(values))
        if missing:
            return [f"missing fields {missing}"]
        out = []
        for name, space in self.fields.items():
            extra = {"mask": mask[name]} if mask is not None and name in mask else {}
            out += [f"{name}: {p}" for p in space.problems(values[name], lead, **extra)]
        return out

    def sample(self, lead: tuple[int, ...], generator: torch.Generator | None = None,
               device: torch.device | str = "cpu", mask: Mapping[str, torch.Tensor] | None = None
               ) -> dict[str, torch.Tensor]:
        return {name: space.sample(lead, generator, device, **({"mask": mask[name]} if mask and name in mask else {}))
                for name, space in self.fields.items()}


Space = Box | Discrete | Slate | Composite


def as_fields(value: Any) -> dict[str, Any] | None:
    """A mapping or a dataclass of tensors as ``{field: value}`` (None for anything else)."""
    if isinstance(value, Mapping):
        return dict(value)
    names = getattr(type(value), "__dataclass_fields__", None)
    if names is not None:
        return {name: getattr(value, name) for name in names}
    return None


@dataclass(frozen=True)
class AgentGroup:
    """``count`` agents that share spaces (and, in training, parameters); values carry an agent axis:
    ``[B, count, ...]``. ``features``: the width-``F`` float vector generic learners read per agent."""

    count: int
    observation: Space
    action: Space
    features: Box | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"an agent group needs count >= 1, got {self.count}")


SINGLE = "agent"
"""The name generic code gives the one acting entity of a setting without agent groups."""


@dataclass(frozen=True)
class Spaces:
    """What a simulator shows and takes.

    Single agent: ``observation`` (what ``observe`` returns per batch row), ``action`` (what ``step``
    takes per row) and ``features`` (``flat_observation``: a float vector ``[B, F]`` for generic
    learners; defaults to ``observation`` when that is a float Box).
    Agent groups: ``agents = {name: AgentGroup}``; ``observe``, ``flat_observation``, ``action_mask``
    and the reward become ``{group: [B, count, ...]}`` and ``step`` takes ``{group: action}``.
    ``time_unit``: decisions are events at irregular times; ``StepResult.elapsed`` gives the time
    since the previous decision in this unit, and discounting is per unit of time (γ^Δt).
    """

    observation: Space | None = None
    action: Space | None = None
    features: Box | None = None
    agents: Mapping[str, AgentGroup] = field(default_factory=dict)
    time_unit: str | None = None

    def __post_init__(self) -> None:
        if self.agents:
            if self.observation is not None or self.action is not None:
                raise ValueError("give observation/action per agent group, not both")
        elif self.observation is None or self.action is None:
            raise ValueError("give observation and action (or agent groups)")
        if not self.agents and self.features is None and isinstance(self.observation, Box) \
                and self.observation.dtype.startswith("float") and len(self.observation.shape) == 1:
            object.__setattr__(self, "features", self.observation)

    @property
    def multi_agent(self) -> bool:
        return bool(self.agents)

    @property
    def event_timed(self) -> bool:
        return self.time_unit is not None

    def groups(self) -> dict[str, AgentGroup]:
        """The agent groups, or one pseudo-group :data:`SINGLE` of count 1 for a single agent (its
        values have no agent axis)."""
        if self.agents:
            return dict(self.agents)
        assert self.observation is not None and self.action is not None
        return {SINGLE: AgentGroup(1, self.observation, self.action, self.features)}

    @property
    def masked(self) -> bool:
        return any(getattr(g.action, "masked", False) for g in self.groups().values())


def action_problems(spaces: Spaces, action: Any, mask: Any = None, lead: int = 1) -> list[str]:
    """What is wrong with a batch of ``action`` under ``spaces`` (and ``mask``, the simulator's
    ``action_mask`` of the same observation): ``[]`` when it lies inside the declared space."""
    if not spaces.agents:
        extra = {"mask": mask} if mask is not None and not isinstance(spaces.action, Box) else {}
        return spaces.action.problems(action, lead, **extra)
    if not isinstance(action, Mapping):
        return [f"a {type(action).__name__}, expected one action per agent group {sorted(spaces.agents)}"]
    out = []
    for name, group in spaces.agents.items():
        if name not in action:
            out.append(f"no action for agent group {name!r}")
            continue
        part = mask.get(name) if isinstance(mask, Mapping) else None
        extra = {"mask": part} if part is not None and not isinstance(group.action, Box) else {}
        out += [f"{name}: {p}" for p in group.action.problems(action[name], lead + 1, **extra)]
    return out


def sample_action(spaces: Spaces, batch: int, generator: torch.Generator | None, device: torch.device | str,
                  mask: Any = None) -> Any:
    """A uniformly random legal action for ``batch`` rows (a random masked policy)."""
    if not spaces.agents:
        extra = {"mask": mask} if mask is not None and not isinstance(spaces.action, Box) else {}
        return spaces.action.sample((batch,), generator, device, **extra)
    out = {}
    for name, group in spaces.agents.items():
        part = mask.get(name) if isinstance(mask, Mapping) else None
        extra = {"mask": part} if part is not None and not isinstance(group.action, Box) else {}
        out[name] = group.action.sample((batch, group.count), generator, device, **extra)
    return out


class RandomPolicy:
    """Uniformly random legal actions of a simulator's declared spaces (masks read from the simulator):
    the floor every learner must beat, and what the conformance suite drives simulators with."""

    name = "random"

    def __init__(self, sim: Any, generator: torch.Generator | None = None) -> None:
        self.sim, self.generator = sim, generator

    def act(self, obs: Any) -> Any:
        spaces: Spaces = self.sim.spaces
        mask = self.sim.action_mask(obs) if spaces.masked else None
        return sample_action(spaces, batch_size(obs), self.generator, self.sim.device, mask)


def batch_size(value: Any) -> int:
    """The leading dimension of a tensor, or of the first tensor in a mapping / dataclass."""
    if isinstance(value, torch.Tensor):
        return int(value.shape[0])
    fields = as_fields(value)
    if fields:
        for item in fields.values():
            if isinstance(item, torch.Tensor) and item.dim() > 0:
                return int(item.shape[0])
            if fields is not None and (isinstance(item, Mapping) or as_fields(item) is not None):
                return batch_size(item)
    raise ValueError(f"cannot find a batch dimension in a {type(value).__name__}")
