"""Execution benchmark: simulator throughput and time-to-quality of the learning agents.

1. Env-steps/s of the batched Almgren–Chriss simulator (``latent_liquidity``, policy included) at batch 1k and
   64k, and of one environment behind the gymnasium adapter (what SB3 sees).
2. Time-to-within-2%: wall seconds until a learner's held-out mean-variance objective is within 2% of the
   analytic optimum at constant impact (``almgren_chriss``; paired ratio vs the AC schedule on the same
   held-out paths), and the learner's env-steps/s while training (gradient updates and held-out evaluations
   included): pathwise, the core's batched Double DQN (``ddqn``), and Stable-Baselines3's DQN on the same
   simulator and rewards through the gymnasium adapter of the discrete view (``SimulatorEnv(GridActionSim)``:
   a ``Discrete(21)`` action, terminated when the order completes), under a wall-clock budget (``--sb3-seconds``).
3. Latent liquidity: the default pathwise and DDQN trainings, their held-out ratio to the best static schedule.

    python -m benchmarks.execution_bench [--threads 1] [--batches 1024 65536] [--sb3-seconds 240] [--no-write]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from benchmarks.report import write_section
from decisionlab.core.engine import run
from decisionlab.core.gym import SimulatorEnv, to_normalized_action
from decisionlab.core.policy import Policy
from decisionlab.core.seeding import derive_seed, make_generator
from decisionlab.core.spec import get_domain
from decisionlab.domains.execution.discrete import GridActionSim
from decisionlab.domains.execution.policies import (
    ActionGrid,
    ExecutionMLP,
    QGridPolicy,
    static_best_policy,
    static_expected_policy,
)
from decisionlab.domains.execution.scenario import ExecutionScenario
from decisionlab.domains.execution.sim import OBSERVATION_FIELDS, ExecutionSim
from decisionlab.domains.execution.train import (
    DEFAULT_DDQN,
    DEFAULT_SETTINGS,
    held_out_ratio,
    objective_scale_bps,
    train_ddqn_policy,
    train_pathwise_policy,
)

TARGET = 1.02


def scenario(name: str) -> ExecutionScenario:
    out = get_domain("execution").scenario(name)
    assert isinstance(out, ExecutionScenario)
    return out


# --- throughput -------------------------------------------------------------------------------


def batched_steps_per_second(batch: int, policy: Policy, min_seconds: float = 1.0) -> float:
    """Env-steps/s = batch × steps / seconds, stepping complete executions (exogenous paths pre-sampled)."""
    s = scenario("latent_liquidity")
    sim = ExecutionSim(s)
    paths = sim.sample_exogenous(batch, s.horizon_steps, make_generator(0))
    steps, start = 0, time.perf_counter()
    while True:
        run(sim, policy, state=sim.reset(batch), exogenous=paths)
        steps += batch * s.horizon_steps
        if time.perf_counter() - start >= min_seconds:
            return steps / (time.perf_counter() - start)


def gym_steps_per_second(min_seconds: float = 1.0) -> float:
    s = scenario("latent_liquidity")
    sim = ExecutionSim(s)
    env = SimulatorEnv(sim, s.horizon_steps)
    policy = static_expected_policy(s)
    obs, _ = env.reset(seed=0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds:
        shares = policy.act(torch.as_tensor(obs[None]))
        obs, _, _, truncated, _ = env.step(to_normalized_action(sim, shares).numpy().astype(np.float32))
        if truncated:
            obs, _ = env.reset()
        steps += 1
    return steps / (time.perf_counter() - start)


# --- time to quality --------------------------------------------------------------------------


@dataclass
class TimeToTarget:
    agent: str
    seconds: float | None  # None: target not reached (or not run)
    env_steps: int | None
    final_ratio: float | None
    note: str = ""
    steps_per_second: float | None = None  # env-steps/s while training (updates and evaluations included)


def fresh_ratio(s: ExecutionScenario, policy: Policy) -> float:
    """Paired ratio to static_expected (= AC at constant impact) on 100k fresh paths (seed 99)."""
    fresh = ExecutionSim(s).sample_exogenous(100_000, s.horizon_steps, make_generator(99))
    return held_out_ratio(s, policy, fresh)


def pathwise_time_to_target(price_features: bool, seed: int = 0) -> TimeToTarget:
    """Pathwise on ``almgren_chriss`` with the trainer's early stop at ratio <= 1.02 (evaluated every 10 steps)."""
    s = scenario("almgren_chriss")
    settings = DEFAULT_SETTINGS.model_copy(update={"price_features": price_features, "target": TARGET,
                                                   "eval_every": 10})
    start = time.perf_counter()
    outcome = train_pathwise_policy(s, seed, torch.device("cpu"), progress=False, settings=settings)
    seconds = time.perf_counter() - start
    steps = int(outcome.metrics["train_steps"]) * settings.batch_size * s.horizon_steps
    reached = outcome.metrics["objective_vs_static_expected"] <= TARGET
    return TimeToTarget(
        f"pathwise ({'with' if price_features else 'without'} price features)",
        seconds if reached else None, steps, fresh_ratio(s, outcome.policy), steps_per_second=steps / seconds,
    )


def ddqn_time_to_target(seed: int = 0, head: str = "scalar") -> TimeToTarget:
    """The ``ddqn`` defaults on ``almgren_chriss`` with the trainer's early stop at held-out ratio <= 1.02,
    evaluated every 5,000 env steps on 16,384 held-out paths (wall seconds include the evaluations)."""
    s = scenario("almgren_chriss")
    settings = DEFAULT_DDQN.model_copy(update={"target": TARGET, "eval_every": 5_000})
    settings = settings.model_copy(update={"network": settings.network.model_copy(update={"head": head})})
    start = time.perf_counter()
    outcome = train_ddqn_policy(s, seed, torch.device("cpu"), progress=False, settings=settings)
    seconds = time.perf_counter() - start
    steps = int(outcome.metrics["train_env_steps"])
    reached = outcome.metrics["objective_vs_static_expected"] <= TARGET
    return TimeToTarget(
        f"Double DQN (core, dueling, {head} head, {settings.num_envs} envs)", seconds if reached else None, steps,
        fresh_ratio(s, outcome.policy), f"{int(outcome.metrics['train_gradient_steps']):,} gradient steps",
        steps / seconds,
    )


class SB3GreedyPolicy:
    """An SB3 DQN's greedy action as an execution policy: obs -> Q-net argmax -> grid fraction -> shares."""

    name = "sb3_dqn"

    def __init__(self, model: object, grid: ActionGrid, shares: float) -> None:
        self.model, self.grid, self.shares = model, grid, shares

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        q = self.model.q_net(obs.float())  # type: ignore[attr-defined]
        return self.grid.to_shares(obs, q.argmax(dim=1), self.shares)


def sb3_dqn_time_to_target(
    seed: int = 0, budget_seconds: float = 240.0, name: str = "almgren_chriss", target: float | None = TARGET
) -> TimeToTarget:
    """Stable-Baselines3 ``DQN`` on ``make_env(GridActionSim(...))`` (a ``Discrete(21)`` action space).

    The same simulator, 21-level grid and rewards as the ``ddqn`` defaults (mark-to-market, price control
    variate, divided by the best static objective), terminal at order completion, γ = 1; SB3's plain DQN
    (no double, no dueling) with an MLP 64×64, replay 100k, batch 256, lr 5e-4, one gradient step per 4 env
    steps, target copy every 1,000 env steps, ε 1 → 0.02 over 30k steps. Every 5,000 env steps the greedy
    policy is scored on the same 16,384 held-out paths as DDQN (its best weights are kept); training stops at
    ratio <= ``target`` (None: never) or after ``budget_seconds`` of wall time (evaluations included).
    """
    try:
        from stable_baselines3 import DQN
        from stable_baselines3.common.callbacks import BaseCallback
    except ImportError:
        return TimeToTarget("SB3 DQN (gymnasium adapter)", None, None, None, "stable-baselines3 not installed")
    s = scenario(name)
    grid = ActionGrid("fraction", DEFAULT_DDQN.levels)
    sim = GridActionSim(ExecutionSim(s), grid, mark_to_market=DEFAULT_DDQN.mark_to_market,
                        price_noise=DEFAULT_DDQN.price_noise)
    scale = 1.0 / objective_scale_bps(s)
    env = gym.wrappers.TransformReward(SimulatorEnv(sim, s.horizon_steps), lambda r: r * scale)
    eval_paths = sim.sample_exogenous(DEFAULT_DDQN.eval_paths, s.horizon_steps,
                                      make_generator(derive_seed(seed, "eval")))
    torch.manual_seed(seed)
    total = 2_000_000  # nominal: the callback stops at the target or at the time budget
    model = DQN("MlpPolicy", env, learning_rate=5e-4, buffer_size=100_000, learning_starts=5_000, batch_size=256,
                gamma=1.0, train_freq=4, gradient_steps=1, target_update_interval=1_000, exploration_fraction=1.0,
                exploration_final_eps=0.02, policy_kwargs={"net_arch": [64, 64]}, seed=seed, device="cpu")
    # ε decays linearly over the first 30k env steps (SB3 schedules take the progress remaining of ``total``)
    model.exploration_schedule = lambda progress: max(0.02, 1.0 - 0.98 * (1.0 - progress) * total / 30_000)
    policy = SB3GreedyPolicy(model, grid, s.shares)
    best: dict[str, Any] = {"ratio": float("inf"), "seconds": None, "steps": None}
    start = time.perf_counter()

    class Watch(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % 5_000:
                return True
            ratio = held_out_ratio(s, policy, eval_paths)
            elapsed = time.perf_counter() - start
            if ratio < best["ratio"]:
                best.update(ratio=ratio, state={k: v.clone() for k, v in model.q_net.state_dict().items()})
            if target is not None and ratio <= target:
                best.update(seconds=elapsed, steps=self.num_timesteps)
                return False
            return elapsed < budget_seconds

    model.learn(total_timesteps=total, callback=Watch())
    seconds = time.perf_counter() - start
    steps = int(model.num_timesteps)
    if "state" in best:
        model.q_net.load_state_dict(best["state"])
    note = "" if best["seconds"] is not None or target is None else (
        f"not reached in {budget_seconds:.0f} s (best held-out {best['ratio']:.3f})")
    return TimeToTarget("SB3 DQN (gymnasium adapter, 1 env)", best["seconds"], best["steps"] or steps,
                        fresh_ratio(s, policy), note, steps / seconds)


def latent_run(algo: str, option: str | bool, seed: int = 0) -> tuple[str, float, float, float, float]:
    """Default training on ``latent_liquidity``: (label, wall s, CPU s, ratio to static_expected, ratio to
    static_best), both ratios paired on 100k fresh paths. ``option``: pathwise's price features, ddqn's head."""
    s = scenario("latent_liquidity")
    start, cpu = time.perf_counter(), time.process_time()
    if algo == "pathwise":
        outcome = train_pathwise_policy(s, seed, torch.device("cpu"), progress=False,
                                        settings=DEFAULT_SETTINGS.model_copy(update={"price_features": option}))
        label = f"pathwise ({'with' if option else 'without'} price features)"
    else:
        settings = DEFAULT_DDQN.model_copy(update={"network": DEFAULT_DDQN.network.model_copy(update={"head": option})})
        outcome = train_ddqn_policy(s, seed, torch.device("cpu"), progress=False, settings=settings)
        label = f"Double DQN ({option} head)"
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    ratio = fresh_ratio(s, outcome.policy)
    return label, seconds, cpu, ratio, ratio / fresh_ratio(s, static_best_policy(s))


def _fmt(value: float | None, pattern: str) -> str:
    return "—" if value is None else format(value, pattern)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", type=int, nargs="+", default=[1024, 65536])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--sb3-seconds", type=float, default=240.0, help="wall-clock budget of the SB3 DQN run")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    s = scenario("latent_liquidity")
    q_net = DEFAULT_DDQN.network.build(len(OBSERVATION_FIELDS), DEFAULT_DDQN.levels)
    q_policy = QGridPolicy(s.horizon_steps, s.shares, ActionGrid("fraction", DEFAULT_DDQN.levels).config(),
                           q_net=q_net.config()).eval()
    rows = [("gymnasium adapter, 1 env", "static_expected", 1, gym_steps_per_second(args.seconds))]
    for batch in args.batches:
        rows.append(("batched torch step", "static_expected", batch,
                     batched_steps_per_second(batch, static_expected_policy(s), args.seconds)))
        rows.append(("batched torch step", "pathwise MLP 64×64", batch,
                     batched_steps_per_second(batch, ExecutionMLP(s.horizon_steps, s.shares).eval(), args.seconds)))
        rows.append(("batched torch step", "DDQN Q-net 64×64 dueling, greedy", batch,
                     batched_steps_per_second(batch, q_policy, args.seconds)))
    throughput = ["| path | policy | batch | env-steps/s |", "|---|---|---|---|"]
    throughput += [f"| {p} | {pol} | {b:,} | {r:,.0f} |" for p, pol, b, r in rows]

    timings = [pathwise_time_to_target(True), pathwise_time_to_target(False), ddqn_time_to_target(),
               ddqn_time_to_target(head="hl_gauss"), sb3_dqn_time_to_target(budget_seconds=args.sb3_seconds)]
    quality = ["| agent | seconds to within 2% | env-steps used | training env-steps/s | held-out ratio vs AC "
               "(100k fresh paths) | note |", "|---|---|---|---|---|---|"]
    quality += [f"| {t.agent} | {_fmt(t.seconds, '.1f')} | {_fmt(t.env_steps, ',')} | "
                f"{_fmt(t.steps_per_second, ',.0f')} | {_fmt(t.final_ratio, '.4f')} | {t.note} |" for t in timings]

    latent = [latent_run("pathwise", False), latent_run("pathwise", True), latent_run("ddqn", "scalar")]
    start, cpu = time.perf_counter(), time.process_time()
    sb3_latent = sb3_dqn_time_to_target(budget_seconds=args.sb3_seconds, name="latent_liquidity", target=None)
    if sb3_latent.final_ratio is not None:
        vs_best = sb3_latent.final_ratio / fresh_ratio(s, static_best_policy(s))
        latent.append((f"SB3 DQN (gymnasium adapter, {sb3_latent.env_steps:,} env steps)",
                       time.perf_counter() - start, time.process_time() - cpu, sb3_latent.final_ratio, vs_best))
    latent_rows = ["| agent | training wall s | CPU s | objective / static_expected | objective / static_best |",
                   "|---|---|---|---|---|"]
    latent_rows += [f"| {label} | {sec:.1f} | {cpu:.1f} | {ratio:.4f} | {vs_best:.4f} |"
                    for label, sec, cpu, ratio, vs_best in latent]

    body = (
        "## Execution (Almgren–Chriss)\n\n"
        f"Throughput on `latent_liquidity` (N = 10), torch threads = {args.threads}; env-steps/s = paths × steps /\n"
        "wall seconds with the policy included.\n\n" + "\n".join(throughput) + "\n\n"
        "Time to within 2% of the analytic optimum at constant impact (`almgren_chriss`, seed 0): wall seconds\n"
        "including path sampling and the held-out evaluations (pathwise every 10 gradient steps; DDQN and SB3 every\n"
        "5,000 env steps, 16,384 held-out paths). `training env-steps/s` counts every simulated step of training\n"
        "(pathwise: batch × N per gradient step). SB3's DQN runs on the same `GridActionSim` rewards through\n"
        f"`SimulatorEnv(GridActionSim)` (terminated at completion) with a {args.sb3_seconds:.0f} s budget. A ratio\n"
        "below 1 beats the\n"
        "static AC optimum (adaptive arrival-price trading, Almgren & Lorenz 2007).\n\n" + "\n".join(quality) + "\n\n"
        "Latent liquidity (`latent_liquidity`), default settings (seed 0); ratios paired on 100k fresh paths:\n\n"
        + "\n".join(latent_rows)
    )
    print(body)
    if not args.no_write:
        write_section("execution", body)


if __name__ == "__main__":
    main()
