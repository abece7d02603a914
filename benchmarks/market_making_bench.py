"""Market-making benchmark: simulator throughput, agents against the exact optimum, reward families.

``throughput``: env-steps/s of both settings at batch 1, 1k and 64k on one thread (model: the torch
simulator against a batched numpy simulator of the same process, measured in the same run).

``agents``: on ``glft_bounded`` (|q| ≤ 10, γ = 0.1, where GLFT exact is optimal): time until a
learner's held-out certainty equivalent is within 1% of GLFT exact's (exact recursion: 65.235),
pathwise, core PPO with each reward family, and Stable-Baselines3 PPO on the same simulator through
the gymnasium adapter (same normalised observations and reward scale) under a wall-clock budget;
then every trained policy against GLFT and AS with paired 95% CIs.

The learned quotes against the best *informed* closed form on the mis-specified models, over several
training seeds, are :mod:`benchmarks.market_making_claims`; on the order-book replay,
:mod:`benchmarks.market_making_replay`.

    python -m benchmarks.market_making_bench throughput [--no-write]
    python -m benchmarks.market_making_bench agents [--ppo-steps 20000000] [--sb3-seconds 300] [--no-write]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import polars as pl
import torch

from benchmarks.report import command_line, machine, write_section
from decisionlab.core.engine import run
from decisionlab.core.evaluation import evaluate_policies
from decisionlab.core.gym import SimulatorEnv, to_simulator_action
from decisionlab.core.options import TrainContext
from decisionlab.core.policy import ConstantPolicy, Policy
from decisionlab.core.seeding import make_generator
from decisionlab.domains.market_making import SPEC, _model_sim
from decisionlab.domains.market_making.baselines import AvellanedaStoikov, GLFTExact, Symmetric
from decisionlab.domains.market_making.learned import observation_scales
from decisionlab.domains.market_making.model.dp import DPOptimal
from decisionlab.domains.market_making.model.recursion import exact_statistics
from decisionlab.domains.market_making.model.scenario import ModelScenario
from decisionlab.domains.market_making.model.sim import ModelSim
from decisionlab.domains.market_making.params import QuotingScenario
from decisionlab.domains.market_making.replay.sim import ReplaySim
from decisionlab.domains.market_making.train import (
    QuotingPathwiseSettings,
    QuotingPPOSettings,
    held_out_score,
    reward_scale_of,
    train_pathwise_quoter,
    train_ppo_quoter,
)

CPU = torch.device("cpu")
EVAL_EPISODES = 20_000
QUALITY = 0.99  # within 1% of GLFT exact's certainty equivalent


# --- throughput -------------------------------------------------------------------------------


def numpy_model_steps(scenario: ModelScenario, batch: int, steps: int, *, sampling: bool, seed: int = 0) -> float:
    """Env-steps/s of a batched numpy simulator of the same step as :class:`ModelSim` (fixed depths): the
    same fills (inventory bound), fees, wealth change, mid move, state and per-step diagnostics."""
    rng = np.random.default_rng(seed)
    s = scenario
    f32 = np.float32
    q, pnl, x = (np.zeros(batch, dtype=f32) for _ in range(3))
    step = np.zeros(batch, dtype=np.int64)
    bid_depth = ask_depth = np.full(batch, 0.75, dtype=f32)
    log_adt, k, vol = f32(math.log(s.fill_intensity_a * s.dt)), f32(s.fill_decay_k), f32(s.sigma * math.sqrt(s.dt))
    bound = s.max_inventory
    pre = None if sampling else (rng.random((steps, 2, batch), dtype=f32),
                                 rng.standard_normal((steps, batch), dtype=f32))
    start = time.perf_counter()
    for t in range(steps):
        if pre is None:
            u, xi = rng.random((2, batch), dtype=f32), rng.standard_normal(batch, dtype=f32)
        else:
            u, xi = pre[0][t], pre[1][t]
        bid = u[0] < np.exp(log_adt - k * bid_depth)
        ask = u[1] < np.exp(log_adt - k * ask_depth)
        if bound is not None:
            bid &= q < bound
            ask &= q > -bound
        bid, ask = bid.astype(f32), ask.astype(f32)
        q = q + bid - ask
        gain = bid * (bid_depth - f32(s.maker_fee)) + ask * (ask_depth - f32(s.maker_fee))
        move = xi * vol
        wealth_change = gain + q * move
        pnl = pnl + wealth_change
        x = x + move
        step = step + 1
        spread = bid_depth + ask_depth
        done = step >= s.steps
    del spread, done
    return batch * steps / (time.perf_counter() - start)


def torch_steps(sim: Any, batch: int, steps: int, *, sampling: bool, policy: Policy | None = None) -> float:
    """Env-steps/s of the rollout engine's decisions (observe, act, ``sim.step``; exogenous pre-sampled unless
    ``sampling``; fixed depths unless ``policy``)."""
    generator = make_generator(0)
    state = sim.reset(batch, generator)
    exogenous = None if sampling else sim.sample_exogenous(batch, steps, generator)
    policy = policy or ConstantPolicy(torch.full((batch, 2), 0.75 if isinstance(sim, ModelSim) else 0.02))
    start = time.perf_counter()
    if sampling:
        exogenous = sim.sample_exogenous(batch, steps, generator)
    run(sim, policy, state=state, exogenous=exogenous, steps=steps, until_done=False)
    return batch * steps / (time.perf_counter() - start)


def throughput(write: bool) -> None:
    torch.set_num_threads(1)
    model = SPEC.scenario("avellaneda_stoikov")
    replay = SPEC.scenario("lob_replay")
    rows = []
    for batch in (1, 1024, 65536):
        steps = 2000 if batch == 1 else 200
        sim = ModelSim(model)
        torch_steps(sim, batch, 10, sampling=False)  # warm-up
        step_only = torch_steps(sim, batch, steps, sampling=False)
        with_sampling = torch_steps(sim, batch, steps, sampling=True)
        with_policy = torch_steps(sim, batch, steps, sampling=True, policy=AvellanedaStoikov(model))
        numpy_step = numpy_model_steps(model, batch, steps, sampling=False)
        numpy_rate = numpy_model_steps(model, batch, steps, sampling=True)
        rsim = ReplaySim(replay, CPU, "test")
        rsteps = min(steps, rsim.horizon)
        replay_rate = torch_steps(rsim, batch, rsteps, sampling=True)
        rows.append({"batch": batch, "model step": step_only, "numpy step": numpy_step,
                     "model step + sampling": with_sampling, "numpy step + sampling": numpy_rate,
                     "model + sampling + AS policy": with_policy, "replay step + sampling": replay_rate})
        print(rows[-1])
    table = pl.DataFrame(rows)
    lines = ["| batch | model observe + step (torch) | same step (numpy) | torch ÷ numpy | model observe + step + "
             "sampling (torch) | same (numpy) | torch ÷ numpy | model + sampling + AS policy | replay + sampling |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in table.iter_rows(named=True):
        lines.append(f"| {r['batch']:,} | {r['model step']:,.0f} | {r['numpy step']:,.0f} | "
                     f"{r['model step'] / r['numpy step']:.1f}× | {r['model step + sampling']:,.0f} | "
                     f"{r['numpy step + sampling']:,.0f} | "
                     f"{r['model step + sampling'] / r['numpy step + sampling']:.1f}× "
                     f"| {r['model + sampling + AS policy']:,.0f} | {r['replay step + sampling']:,.0f} |")
    body = "\n".join([f"`{command_line()}` — {machine()}; one thread; env-steps/s. Every torch column is the "
                      "rollout engine's decision loop (observe, act, step: since contract v3 no benchmark steps a "
                      "simulator by hand), so it includes the observation; the numpy columns are the step alone.",
                      "", *lines])
    if write:
        write_section("market_making_throughput", body)
    print(body)


def _pathwise_settings(max_steps: int | None) -> QuotingPathwiseSettings:
    return QuotingPathwiseSettings() if max_steps is None else QuotingPathwiseSettings(max_steps=max_steps)


# --- agents -----------------------------------------------------------------------------------


def time_to_quality(history: pl.DataFrame, target: float) -> float | None:
    """Seconds of the first held-out evaluation whose certainty equivalent (−eval_score) reaches ``target``."""
    if "eval_score" not in history.columns:
        return None
    scored = history.filter(pl.col("eval_score").is_not_nan())  # polars orders NaN above every number
    hit = scored.filter((-pl.col("eval_score")) >= target)
    return float(hit["seconds"][0]) if hit.height else None


class SB3Quoter:
    """An SB3 policy acting on the shared observation (the features it was trained on)."""

    def __init__(self, model: Any, sim: ModelSim, scales: torch.Tensor, name: str = "sb3_ppo") -> None:
        self.model, self.sim, self.scales, self.name = model, sim, scales, name

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        action, _ = self.model.predict((obs / self.scales).cpu().numpy(), deterministic=True)
        return to_simulator_action(self.sim, torch.as_tensor(action, dtype=torch.float32))


def train_sb3(scenario: ModelScenario, seconds: float, target: float, score: Callable[[Policy], float],
              eval_every: int = 25_000) -> tuple[SB3Quoter, pl.DataFrame]:
    """SB3 PPO through the gymnasium adapter (normalised observations, the same reward scale as core
    PPO) for ``seconds`` of wall time; held-out certainty equivalent every ``eval_every`` env steps."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    sim = ModelSim(scenario)
    scales = torch.tensor(observation_scales(scenario))
    reward_scale = reward_scale_of(sim, scenario, make_generator(1))

    class Features(gym.Wrapper):
        def reset(self, **kwargs: Any):  # noqa: ANN202
            obs, info = self.env.reset(**kwargs)
            return (obs / scales.numpy()).astype(np.float32), info

        def step(self, action: np.ndarray):  # noqa: ANN202
            obs, reward, terminated, truncated, info = self.env.step(action)
            return (obs / scales.numpy()).astype(np.float32), reward * reward_scale, terminated, truncated, info

    env = Features(SimulatorEnv(sim, sim.horizon))
    env.observation_space = gym.spaces.Box(-np.inf, np.inf, (6,), np.float32)
    model = PPO("MlpPolicy", env, seed=0, verbose=0, device="cpu", gamma=1.0)
    quoter = SB3Quoter(model, sim, scales)
    rows: list[dict[str, float]] = []
    start = time.perf_counter()

    class Stop(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % eval_every == 0:
                value = -score(quoter)
                rows.append({"env_steps": self.num_timesteps, "eval_score": -value,
                             "seconds": time.perf_counter() - start})
                print(f"sb3 {self.num_timesteps} {value:.3f} {rows[-1]['seconds']:.0f}s")
                if value >= target:
                    return False
            return time.perf_counter() - start < seconds

    model.learn(total_timesteps=10**9, callback=Stop())
    return quoter, pl.DataFrame(rows)


def _ci_table(scenario: QuotingScenario, policies: list[tuple[str, Policy]], reference: str) -> list[str]:
    """Markdown rows: certainty equivalent, mean/std P&L, std q_T, and the paired difference to ``reference``."""
    ordered = [p for p in policies if p[0] == reference] + [p for p in policies if p[0] != reference]
    report = evaluate_policies(SPEC, scenario, ordered, episodes=EVAL_EPISODES if isinstance(scenario, ModelScenario)
                               else 2000, seed=20261202, device=CPU)
    table = report.table()
    lines = [f"| policy | certainty equivalent | vs {reference} (paired 95% CI) | mean P&L | std P&L | std q_T | "
             "fill rate |", "|---|---|---|---|---|---|---|"]
    for label in report.labels:
        part = {r["metric"]: r for r in table.filter(pl.col("policy") == label).iter_rows(named=True)}
        ce = part["certainty_equivalent"]
        lines.append(f"| {label} | {ce['mean']:.3f} ± {ce['ci95']:.3f} | {ce['diff_vs_first']:+.3f} ± "
                     f"{ce['diff_ci95']:.3f} | {part['mean_pnl']['mean']:.3f} | {part['std_pnl']['mean']:.3f} | "
                     f"{part['std_terminal_inventory']['mean']:.3f} | {part['fill_rate']['mean']:.4f} |")
    return lines


def agents(ppo_steps: int, sb3_seconds: float, write: bool, pathwise_steps: int | None = None) -> None:
    torch.set_num_threads(1)
    scenario = SPEC.scenario("glft_bounded")
    glft = GLFTExact(scenario)
    optimum = exact_statistics(scenario, glft).certainty_equivalent
    stoikov = exact_statistics(scenario, AvellanedaStoikov(scenario)).certainty_equivalent
    target = QUALITY * optimum
    sim = ModelSim(scenario)
    score = held_out_score(sim, sim.sample_exogenous(8192, sim.horizon, make_generator(7)), scenario.risk_aversion)
    ctx = TrainContext(0, CPU, False)
    trained: list[tuple[str, Policy]] = []
    timing = []
    outcome = train_pathwise_quoter(scenario, _pathwise_settings(pathwise_steps), ctx, _model_sim)
    trained.append(("pathwise", outcome.policy))
    timing.append(("pathwise (core)", outcome.curve, outcome.metrics["train_seconds"], outcome.metrics["steps"]))
    for reward in ("mean_variance", "dampened", "pnl"):
        settings = QuotingPPOSettings(reward=reward, total_env_steps=ppo_steps)
        outcome = train_ppo_quoter(scenario, settings, ctx, _model_sim)
        trained.append((f"ppo_{reward}", outcome.policy))
        timing.append((f"PPO (core), reward {reward}", outcome.curve, outcome.metrics["train_seconds"],
                       outcome.metrics["env_steps"]))
        print(reward, outcome.metrics)
    if sb3_seconds > 0:
        quoter, history = train_sb3(scenario, sb3_seconds, target, score)
        trained.append(("sb3_ppo", quoter))
        timing.append(("PPO (Stable-Baselines3, gymnasium adapter), reward pnl", history,
                       float(history["seconds"][-1]) if history.height else 0.0,
                       float(history["env_steps"][-1]) if history.height else 0.0))
    lines = ["| learner | seconds to within 1% of GLFT | best held-out CE | training seconds | env steps (or "
             "gradient steps) |", "|---|---|---|---|---|"]
    for label, history, seconds, steps in timing:
        reached = time_to_quality(history, target)
        best = float((-history["eval_score"]).max()) if "eval_score" in history.columns else float("nan")
        lines.append(f"| {label} | {'not reached' if reached is None else f'{reached:.0f}'} | {best:.3f} | "
                     f"{seconds:.0f} | {steps:,.0f} |")
    optimal = DPOptimal(scenario)
    baselines = [("glft", glft), ("dp_optimal", optimal), ("avellaneda_stoikov", AvellanedaStoikov(scenario)),
                 ("symmetric", Symmetric(scenario))]
    body = "\n".join([
        f"`{command_line()}` — {machine()}; one thread. GLFT exact's certainty equivalent (exact recursion): "
        f"{optimum:.3f}; the discrete market's exact optimum (dp_optimal): {optimal.certainty_equivalent:.3f}; "
        f"Avellaneda–Stoikov's: {stoikov:.3f} ({100 * (1 - stoikov / optimum):.2f}% below GLFT). "
        f"Target: {target:.3f}. Held-out scores on 8,192 fixed episodes (common random numbers).", "",
        *lines, "",
        f"Every trained policy against GLFT exact on {EVAL_EPISODES:,} fresh episodes (paired on the same random "
        "numbers; the certainty equivalent as per-episode influence values):", "",
        *_ci_table(scenario, baselines + trained, "glft"),
    ])
    if write:
        write_section("market_making_agents", body)
    print(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=("throughput", "agents"))
    parser.add_argument("--ppo-steps", type=int, default=None)
    parser.add_argument("--sb3-seconds", type=float, default=300.0)
    parser.add_argument("--pathwise-steps", type=int, default=None, help="smoke runs: fewer pathwise steps")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    write = not args.no_write
    if args.part == "throughput":
        throughput(write)
    else:
        agents(args.ppo_steps or 20_000_000, args.sb3_seconds, write, args.pathwise_steps)


if __name__ == "__main__":
    main()
