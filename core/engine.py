"""The one rollout engine: a policy stepped through a batched simulator, every loop of the project.

:func:`run` steps ``B`` environments together: observe, act, step, for a number of decisions. What a
caller wants out of the run it says declaratively:

- ``reducers``: per-episode values folded over the steps in constant memory (:class:`Sum`,
  :class:`Mean`, :class:`Last`, :class:`Max`, :class:`Min`, :class:`Discounted` or a custom
  :class:`Reducer`), after an optional warm-up: long-run KPIs, backtests of millions of periods;
- ``record``: per-step quantities stacked ``[B, T, ...]`` (training losses, plots);
- ``hooks``: functions called with every :class:`Step` (trip logs, online learning, progress);
- the final state (``Run.final_state``).

Exogenous randomness comes pre-sampled (a tensor ``[B, T, ...]``), cut from data by a callable
``(start, length) -> [B, length, ...]``, or drawn from ``generator`` chunk by chunk (``chunk`` steps at
a time, so memory stays bounded). Episodes that end (``StepResult.terminated``, or ``truncated`` by the
simulator's own time limit) stop counting (their later steps are masked out of every reducer) and the run
ends early once all have; decisions
of different lengths (``StepResult.elapsed``) advance each row's clock, which :class:`Discounted`
and hooks read.

:func:`rollout`, :func:`accumulate` and :func:`period_sums` are the common calls, written on :func:`run`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from decisionlab.core.policy import Policy
from decisionlab.core.sim import BatchedSimulator, StepResult, horizon_of
from decisionlab.core.spaces import batch_size

ALIVE_CHECK_EVERY = 8
"""Steps between checks (one host sync each) that every episode has terminated."""


@dataclass(slots=True)
class Step:
    """One decision of a batch: what hooks and reducers read.

    ``t``: the decision's index in the run; ``state`` / ``obs``: before it; ``result``: the step's
    result; ``alive [B]``: the row's episode had not ended (terminated or truncated) before this decision
    (None: the simulator never ends an episode); ``time [B]``: the row's clock at the decision (event-timed
    simulators; None otherwise)."""

    t: int
    state: Any
    obs: Any
    action: Any
    result: StepResult[Any]
    alive: torch.Tensor | None = None
    time: torch.Tensor | None = None

    @property
    def info(self) -> dict[str, torch.Tensor]:
        return self.result.info

    @property
    def reward(self) -> Any:
        return self.result.reward


Read = str | Callable[[Step], torch.Tensor]
"""A per-step quantity ``[B, ...]``: ``"reward"``, the name of an ``info`` entry, or ``step -> tensor``."""


def read(step: Step, what: Read) -> torch.Tensor:
    if callable(what):
        return what(step)
    if what == "reward":
        return step.result.reward
    return step.result.info[what]


@dataclass(frozen=True)
class Reducer(ABC):
    """Folds a per-step quantity into one value per row: ``first`` on the first counted step, then
    ``update``; ``final(acc, count)`` at the end (``count [B]``: counted steps per row)."""

    read: Read

    @abstractmethod
    def first(self, value: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def update(self, acc: torch.Tensor, value: torch.Tensor, alive: torch.Tensor | None) -> torch.Tensor: ...

    def final(self, acc: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        return acc


def _masked(value: torch.Tensor, alive: torch.Tensor | None, fill: float = 0.0) -> torch.Tensor:
    if alive is None:
        return value
    keep = alive.reshape(alive.shape + (1,) * (value.dim() - alive.dim()))
    return torch.where(keep, value, fill)


@dataclass(frozen=True)
class Sum(Reducer):
    """Sum over the counted steps (float64)."""

    def first(self, value: torch.Tensor) -> torch.Tensor:
        return value.to(torch.float64).clone()

    def update(self, acc: torch.Tensor, value: torch.Tensor, alive: torch.Tensor | None) -> torch.Tensor:
        acc += _masked(value, alive)
        return acc


@dataclass(frozen=True)
class Mean(Sum):
    """Average over each row's counted steps (float64)."""

    def final(self, acc: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        shape = count.shape + (1,) * (acc.dim() - count.dim())
        return acc / count.clamp_min(1).reshape(shape).to(acc.dtype)


@dataclass(frozen=True)
class Last(Reducer):
    """The value at each row's last counted step."""

    def first(self, value: torch.Tensor) -> torch.Tensor:
        return value.detach().clone()

    def update(self, acc: torch.Tensor, value: torch.Tensor, alive: torch.Tensor | None) -> torch.Tensor:
        if alive is None:
            return value.detach().clone()
        return torch.where(alive.reshape(alive.shape + (1,) * (value.dim() - alive.dim())), value, acc)


@dataclass(frozen=True)
class Max(Reducer):
    """Largest value over the counted steps."""

    def first(self, value: torch.Tensor) -> torch.Tensor:
        return value.detach().clone()

    def update(self, acc: torch.Tensor, value: torch.Tensor, alive: torch.Tensor | None) -> torch.Tensor:
        return torch.maximum(acc, _masked(value, alive, -torch.inf))


@dataclass(frozen=True)
class Min(Reducer):
    """Smallest value over the counted steps."""

    def first(self, value: torch.Tensor) -> torch.Tensor:
        return value.detach().clone()

    def update(self, acc: torch.Tensor, value: torch.Tensor, alive: torch.Tensor | None) -> torch.Tensor:
        return torch.minimum(acc, _masked(value, alive, torch.inf))


@dataclass(frozen=True)
class Discounted(Sum):
    """``Σ γ^{τ} · value`` with ``τ`` the row's clock at the decision (event-timed simulators: elapsed
    time in ``spaces.time_unit``) or the decision's index (lock-step simulators)."""

    gamma: float = 1.0

    def weigh(self, value: torch.Tensor, step: Step) -> torch.Tensor:
        clock = step.time if step.time is not None else torch.full(value.shape[:1], float(step.t),
                                                                    dtype=torch.float64, device=value.device)
        weight = torch.pow(torch.tensor(self.gamma, dtype=torch.float64, device=value.device), clock.double())
        return value.to(torch.float64) * weight.reshape(weight.shape + (1,) * (value.dim() - 1))


@dataclass(frozen=True)
class Custom(Reducer):
    """A reducer from three functions: ``start(value)``, ``step(acc, value, alive)`` and ``end(acc, count)``."""

    start: Callable[[torch.Tensor], torch.Tensor] = lambda value: value.clone()
    fold: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor] = lambda a, v, alive: a + v
    end: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = lambda acc, count: acc

    def first(self, value: torch.Tensor) -> torch.Tensor:
        return self.start(value)

    def update(self, acc: torch.Tensor, value: torch.Tensor, alive: torch.Tensor | None) -> torch.Tensor:
        return self.fold(acc, value, alive)

    def final(self, acc: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        return self.end(acc, count)


Exogenous = torch.Tensor | Callable[[int, int], torch.Tensor] | None
Hook = Callable[[Step], None]


@dataclass
class Run:
    """What :func:`run` returns: reducer values ``{name: [B, ...]}``, records ``{name: [B, T, ...]}``, the
    final state, the number of decisions taken, and (terminating / event-timed simulators) each row's
    alive flag and clock at the end."""

    totals: dict[str, torch.Tensor] = field(default_factory=dict)
    records: dict[str, torch.Tensor] = field(default_factory=dict)
    final_state: Any = None
    steps: int = 0
    alive: torch.Tensor | None = None
    time: torch.Tensor | None = None


def _ended(result: StepResult[Any]) -> torch.Tensor:
    """``[B]`` bool: the step ended its row's episode (terminated or truncated)."""
    if result.terminated is None:
        return result.truncated.bool()
    if result.truncated is None:
        return result.terminated.bool()
    return result.terminated.bool() | result.truncated.bool()


def _chunks(sim: BatchedSimulator[Any], batch: int, exogenous: Exogenous, generator: torch.Generator | None,
            steps: int, chunk: int):  # noqa: ANN202 - a generator of (start, [B, length, ...])
    if isinstance(exogenous, torch.Tensor):
        if exogenous.shape[1] < steps:
            raise ValueError(f"exogenous paths have {exogenous.shape[1]} steps, the run needs {steps}")
        yield 0, exogenous
        return
    start = 0
    while start < steps:
        length = min(chunk, steps - start)
        paths = exogenous(start, length) if exogenous is not None else sim.sample_exogenous(batch, length, generator)
        yield start, paths
        start += length


def run(
    sim: BatchedSimulator[Any],
    policy: Policy,
    *,
    batch: int | None = None,
    state: Any = None,
    generator: torch.Generator | None = None,
    exogenous: Exogenous = None,
    steps: int | None = None,
    reducers: Mapping[str, Reducer] | None = None,
    record: Sequence[str] | Mapping[str, Read] = (),
    hooks: Sequence[Hook] = (),
    warmup: int = 0,
    chunk: int = 1000,
    grad: bool = False,
    until_done: bool = True,
) -> Run:
    """Step ``policy`` through ``sim`` (module docstring).

    Args:
        batch: rows to simulate from ``sim.reset(batch, generator)``; or give ``state``, the start state.
        exogenous: pre-sampled paths ``[B, T, ...]``, a callable ``(start, length) -> [B, length, ...]``,
            or None to draw ``sim.sample_exogenous(B, length, generator)`` ``chunk`` steps at a time.
        steps: decisions to take (default: the paths' length for a tensor, else ``sim.horizon``).
        reducers: ``{name: Reducer}`` folded over the steps from ``warmup`` on.
        record: names (``"reward"`` or ``info`` entries) or ``{name: Read}`` stacked per step.
        hooks: called with each :class:`Step`, in order.
        grad: keep the autograd graph (pathwise training); otherwise no gradients are recorded.
        until_done: end the run once every row's episode has terminated (checked every
            :data:`ALIVE_CHECK_EVERY` steps; never when something is recorded, so records are ``[B, steps]``).
    """
    if state is None:
        if batch is None:
            raise ValueError("give batch or a start state")
        state = sim.reset(batch, generator)
    if batch is None:
        batch = exogenous.shape[0] if isinstance(exogenous, torch.Tensor) else batch_size(sim.observe(state))
    if steps is None:
        steps = exogenous.shape[1] if isinstance(exogenous, torch.Tensor) else horizon_of(sim)
    reducers = dict(reducers or {})
    wanted = dict(record) if isinstance(record, Mapping) else {name: name for name in record}
    stacks: dict[str, list[torch.Tensor]] = {name: [] for name in wanted}
    totals: dict[str, torch.Tensor] = {}
    counts: torch.Tensor | int = 0
    alive: torch.Tensor | None = None
    clock: torch.Tensor | None = None
    t = 0
    finished = False
    stop_early = until_done and not wanted
    # records of named entries are read straight from the result; a Step is built only for what needs one
    named = {name: what for name, what in wanted.items() if isinstance(what, str)}
    stepped = {name: what for name, what in wanted.items() if not isinstance(what, str)}
    observed = bool(stepped or reducers or hooks)
    tracked = observed or stop_early  # a run that only records keeps every row's every step: no alive mask
    with nullcontext() if grad else torch.no_grad():
        for start, paths in _chunks(sim, batch, exogenous, generator, steps, chunk):
            length = min(paths.shape[1], steps - start)
            for offset in range(length):
                t = start + offset
                obs = sim.observe(state)
                action = policy.act(obs)
                result = sim.step(state, action, paths[:, offset])
                for name, what in named.items():
                    stacks[name].append(result.reward if what == "reward" else result.info[what])
                if observed:
                    step = Step(t, state, obs, action, result, alive, clock)
                    for name, what in stepped.items():
                        stacks[name].append(read(step, what))
                    if t >= warmup and reducers:
                        for name, reducer in reducers.items():
                            value = read(step, reducer.read)
                            if isinstance(reducer, Discounted):
                                value = reducer.weigh(value, step)
                            if name in totals:
                                totals[name] = reducer.update(totals[name], value, alive)
                            else:
                                totals[name] = reducer.first(_masked(value, alive) if isinstance(reducer, Sum)
                                                             else value)
                        counts = counts + (alive.long() if alive is not None else 1)
                    for hook in hooks:
                        hook(step)
                state = result.state
                if result.elapsed is not None:
                    elapsed = result.elapsed.double()
                    clock = elapsed.clone() if clock is None else clock + (elapsed if alive is None
                                                                           else torch.where(alive, elapsed, 0.0))
                if tracked and (result.terminated is not None or result.truncated is not None):
                    # a row whose episode ended either way (a true end, or the simulator's own time limit)
                    # takes no further steps: they are masked out of the reducers
                    ended = _ended(result)
                    alive = ~ended if alive is None else alive & ~ended
                    if stop_early and (t + 1) % ALIVE_CHECK_EVERY == 0 and not bool(alive.any()):
                        finished = True
                        break
            if finished:
                break
    taken = t + 1 if steps else 0
    if not isinstance(counts, torch.Tensor):
        counts = torch.full((batch,), counts, dtype=torch.long, device=sim.device)
    out = {name: reducers[name].final(value, counts) for name, value in totals.items()}
    for name in reducers:
        out.setdefault(name, torch.zeros(batch, dtype=torch.float64, device=sim.device))  # every step was warm-up
    return Run(totals=out, records={name: torch.stack(values, dim=1) for name, values in stacks.items() if values},
               final_state=state, steps=taken, alive=alive, time=clock)


# --- the common calls ----------------------------------------------------------------------------


@dataclass
class Trajectory:
    """Rewards ``[B, T]``, selected per-period diagnostics ``[B, T, ...]`` and the final state."""

    rewards: torch.Tensor
    info: dict[str, torch.Tensor] = field(default_factory=dict)
    final_state: Any = None


def rollout(
    sim: BatchedSimulator[Any],
    policy: Policy,
    exogenous: torch.Tensor,
    state: Any | None = None,
    *,
    record: tuple[str, ...] = (),
    grad: bool = False,
) -> Trajectory:
    """Rewards and ``record``-ed info per period of ``policy`` over pre-sampled ``exogenous [B, T, ...]``
    from ``state`` (``sim.reset(B)`` when omitted); ``grad`` keeps the autograd graph."""
    if state is None:
        state = sim.reset(exogenous.shape[0])
    done = run(sim, policy, state=state, exogenous=exogenous, record=("reward", *record), grad=grad)
    rewards = done.records.pop("reward")
    return Trajectory(rewards=rewards, info=done.records, final_state=done.final_state)


Quantities = dict[str, Callable[[dict[str, torch.Tensor]], torch.Tensor]]
"""``{name: read}``: ``read(info) -> [B]`` picks a per-period quantity out of a step's info."""


def accumulate(
    sim: BatchedSimulator[Any],
    policy: Policy,
    state: Any,
    exogenous: Callable[[int, int], torch.Tensor],
    periods: int,
    warmup: int,
    quantities: Quantities,
    chunk_periods: int = 1000,
) -> dict[str, torch.Tensor]:
    """Sums ``{name: [B]}`` (float64) over the periods after ``warmup`` of per-period ``quantities``,
    from ``state`` over ``periods`` periods; ``exogenous(start, length)`` gives the paths chunk by chunk."""
    reducers = {name: Sum(_info_reader(pick)) for name, pick in quantities.items()}
    return run(sim, policy, state=state, exogenous=exogenous, steps=periods, reducers=reducers, warmup=warmup,
               chunk=chunk_periods).totals


def _info_reader(pick: Callable[[dict[str, torch.Tensor]], torch.Tensor]) -> Read:
    return lambda step: pick(step.result.info)


def period_sums(
    sim: BatchedSimulator[Any],
    policy: Policy,
    episodes: int,
    horizon_periods: int,
    warmup_periods: int,
    generator: torch.Generator | None,
    quantities: Quantities,
    chunk_periods: int = 1000,
) -> dict[str, torch.Tensor]:
    """:func:`accumulate` over ``episodes`` episodes of ``horizon_periods`` from ``sim.reset``, with
    exogenous paths drawn from ``generator`` chunk by chunk."""
    return accumulate(sim, policy, sim.reset(episodes),
                      lambda start, length: sim.sample_exogenous(episodes, length, generator),
                      horizon_periods, warmup_periods, quantities, chunk_periods)
