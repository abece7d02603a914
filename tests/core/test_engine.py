"""The rollout engine against loops written out by hand: reducers, warm-up, records, hooks, chunked
exogenous paths, terminations masked out, event clocks and the final state."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from decisionlab.core.engine import Custom, Discounted, Last, Max, Mean, Min, Step, Sum, accumulate, rollout, run
from decisionlab.core.sim import StepResult
from decisionlab.core.spaces import Box, Spaces


@dataclass
class Walk:
    t: torch.Tensor  # [B] decisions taken
    x: torch.Tensor  # [B] position


class WalkSim:
    """``x' = x + a + noise``, reward ``−x'²``; row ``b`` terminates after ``ends[b]`` decisions (if given);
    each decision takes ``1 + b`` time units (event time)."""

    device = torch.device("cpu")
    differentiable = True
    spaces = Spaces(observation=Box((1,)), action=Box((1,), -1.0, 1.0), time_unit="minutes")
    horizon = 7

    def __init__(self, ends: list[int] | None = None) -> None:
        self.ends = None if ends is None else torch.tensor(ends)

    def sample_exogenous(self, batch: int, periods: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(batch, periods, generator=generator)

    def reset(self, batch: int, generator: torch.Generator | None = None) -> Walk:
        return Walk(torch.zeros(batch, dtype=torch.long), torch.zeros(batch))

    def observe(self, state: Walk) -> torch.Tensor:
        return state.x[:, None]

    def flat_observation(self, obs: torch.Tensor) -> torch.Tensor:
        return obs

    def step(self, state: Walk, action: torch.Tensor, noise: torch.Tensor) -> StepResult[Walk]:
        x = state.x + action.reshape(-1) + noise
        t = state.t + 1
        ended = None if self.ends is None else t >= self.ends
        elapsed = 1.0 + torch.arange(x.shape[0], dtype=torch.float32)
        return StepResult(Walk(t, x), -x.square(), {"x": x}, terminated=ended, elapsed=elapsed)


class Pull:
    name = "pull"

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return (-0.5 * obs).clamp(-1, 1)


def by_hand(sim: WalkSim, paths: torch.Tensor) -> tuple[list[torch.Tensor], Walk]:
    state, rewards = sim.reset(paths.shape[0]), []
    for t in range(paths.shape[1]):
        result = sim.step(state, Pull().act(sim.observe(state)), paths[:, t])
        rewards.append(result.reward)
        state = result.state
    return rewards, state


def test_reducers_records_hooks_and_the_final_state_match_a_loop_by_hand() -> None:
    sim = WalkSim()
    paths = sim.sample_exogenous(5, 7, torch.Generator().manual_seed(0))
    rewards, final = by_hand(sim, paths)
    stacked = torch.stack(rewards, dim=1).double()
    seen: list[int] = []
    done = run(sim, Pull(), state=sim.reset(5), exogenous=paths, warmup=2, record=("reward", "x"),
               hooks=[lambda step: seen.append(step.t)], reducers={
                   "sum": Sum("reward"), "mean": Mean("reward"), "last": Last("x"), "max": Max("reward"),
                   "min": Min("reward"), "custom": Custom("reward", start=lambda v: v.abs(),
                                                          fold=lambda a, v, alive: torch.maximum(a, v.abs())),
               })
    torch.testing.assert_close(done.totals["sum"], stacked[:, 2:].sum(1))
    torch.testing.assert_close(done.totals["mean"], stacked[:, 2:].mean(1))
    torch.testing.assert_close(done.totals["max"], stacked[:, 2:].max(1).values.float())
    torch.testing.assert_close(done.totals["min"], stacked[:, 2:].min(1).values.float())
    torch.testing.assert_close(done.totals["custom"], stacked[:, 2:].abs().max(1).values.float())
    torch.testing.assert_close(done.totals["last"], final.x)
    torch.testing.assert_close(done.records["reward"], stacked.float())
    assert done.records["x"].shape == (5, 7) and seen == list(range(7)) and done.steps == 7
    assert torch.equal(done.final_state.x, final.x)
    # the clock: row b's decisions take 1 + b time units each
    torch.testing.assert_close(done.time, 7.0 * (1.0 + torch.arange(5, dtype=torch.float64)))


def test_drawn_chunks_are_the_paths_of_one_draw() -> None:
    """Drawing from a generator 3 steps at a time is the same as pre-sampled paths drawn the same way."""
    sim = WalkSim()
    chunked = run(sim, Pull(), batch=4, generator=torch.Generator().manual_seed(1), steps=7, chunk=3,
                  reducers={"sum": Sum("reward")}).totals["sum"]
    generator = torch.Generator().manual_seed(1)
    state = sim.reset(4, generator)
    paths = torch.cat([sim.sample_exogenous(4, n, generator) for n in (3, 3, 1)], dim=1)
    assert torch.equal(run(sim, Pull(), state=state, exogenous=paths, reducers={"sum": Sum("reward")})
                       .totals["sum"], chunked)
    # accumulate (the long-run call) is the same fold
    again = accumulate(sim, Pull(), sim.reset(4), lambda start, length: paths[:, start:start + length], 7, 0,
                       {"sum": lambda info: -info["x"].square()}, chunk_periods=3)
    assert torch.equal(again["sum"], chunked)


def test_terminated_rows_stop_counting_and_the_run_ends_when_all_have() -> None:
    sim = WalkSim(ends=[1, 3, 9, 2])
    paths = sim.sample_exogenous(4, 20, torch.Generator().manual_seed(2))
    rewards, _ = by_hand(WalkSim(), paths[:, :9])
    stacked = torch.stack(rewards, dim=1).double()
    done = run(sim, Pull(), state=sim.reset(4), exogenous=paths, steps=20,
               reducers={"sum": Sum("reward"), "n": Sum(lambda step: torch.ones(4)), "mean": Mean("reward"),
                         "disc": Discounted("reward", gamma=0.5)})
    ends = [1, 3, 9, 2]
    for b, end in enumerate(ends):
        assert float(done.totals["sum"][b]) == pytest.approx(float(stacked[b, :end].sum()))
        assert done.totals["n"][b] == end
        assert float(done.totals["mean"][b]) == pytest.approx(float(stacked[b, :end].mean()))
        clock = (1.0 + b) * torch.arange(end, dtype=torch.float64)  # each decision's start time
        assert float(done.totals["disc"][b]) == pytest.approx(float((0.5**clock * stacked[b, :end]).sum()))
    assert not done.alive.any() and done.steps == 16  # all ended at step 9; checked every 8 steps
    kept = run(sim, Pull(), state=sim.reset(4), exogenous=paths, steps=20, record=("reward",))
    assert kept.records["reward"].shape == (4, 20)  # records are never cut short


def test_grad_flows_through_a_recorded_rollout() -> None:
    sim = WalkSim()
    scale = torch.tensor(0.5, requires_grad=True)

    class Scaled:
        name = "scaled"

        def act(self, obs: torch.Tensor) -> torch.Tensor:
            return -scale * obs

    paths = sim.sample_exogenous(8, 7, torch.Generator().manual_seed(3))
    traj = rollout(sim, Scaled(), paths, grad=True)
    traj.rewards.sum().backward()
    assert scale.grad is not None and torch.isfinite(scale.grad)
    with torch.no_grad():
        assert not rollout(sim, Scaled(), paths).rewards.requires_grad


def test_a_step_exposes_what_hooks_read() -> None:
    steps: list[Step] = []
    run(WalkSim(), Pull(), batch=2, generator=torch.Generator().manual_seed(4), steps=2, hooks=[steps.append])
    assert [s.t for s in steps] == [0, 1] and torch.equal(steps[1].obs, steps[0].info["x"][:, None])
    assert steps[1].time is not None and steps[0].time is None  # the clock starts after the first decision
