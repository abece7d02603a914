"""Stable-Baselines3 through the core's adapters: one batched simulator as a VecEnv against the
one-environment adapter, and SB3's PPO against the core PPO in the same wall time.

On market making ``glft_bounded`` (GLFT exact is the optimum of this market), with the same reward
(``mean_variance``), observation scales and reward scale as the core PPO's default training:

1. the core PPO (its defaults), its wall time ``T`` and best held-out certainty equivalent;
2. SB3's PPO on ``make_vec_env(..., num_envs=1024)`` (ONE batched simulator) for the same ``T``;
3. SB3's PPO on the one-environment adapter (``SimulatorEnv`` in a ``DummyVecEnv``) for ``--one-env-seconds``.

Env-steps/s are counted while training (rollouts, updates and evaluations included). Held-out scores:
8,192 fixed episodes (common random numbers), every ~1M env steps for the vector runs.

    python -m benchmarks.sb3_vec_env [--one-env-seconds 60] [--num-envs 1024] [--no-write]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch

from benchmarks.report import command_line, machine, write_section
from decisionlab.core import Reshaped, make_generator, make_vec_env, to_simulator_action
from decisionlab.core.gym import SimulatorEnv
from decisionlab.domains.market_making import SPEC
from decisionlab.domains.market_making.baselines import GLFTExact
from decisionlab.domains.market_making.learned import observation_scales
from decisionlab.domains.market_making.model.recursion import exact_statistics
from decisionlab.domains.market_making.model.sim import ModelSim
from decisionlab.domains.market_making.train import held_out_score, reward_function, reward_scale_of

CPU = torch.device("cpu")


class Scaled:
    """An SB3 model acting on the quoting observation divided by the scales it was trained on."""

    def __init__(self, model: Any, sim: ModelSim, scales: torch.Tensor) -> None:
        self.model, self.sim, self.scales, self.name = model, sim, scales, "sb3_ppo"

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        action, _ = self.model.predict((obs / self.scales).numpy(), deterministic=True)
        return to_simulator_action(self.sim, torch.as_tensor(action, dtype=torch.float32))


def _wrappers(scales: np.ndarray, reward_scale: float):  # noqa: ANN202 - two SB3 wrapper classes
    from stable_baselines3.common.vec_env import VecEnvWrapper

    class ScaledVec(VecEnvWrapper):
        """Observations divided by the QuoteNet scales, rewards times the core PPO's reward scale."""

        def reset(self) -> np.ndarray:
            return (self.venv.reset() / scales).astype(np.float32)

        def step_wait(self):  # noqa: ANN202
            obs, reward, done, infos = self.venv.step_wait()
            for info in infos:
                if "terminal_observation" in info:
                    info["terminal_observation"] = (info["terminal_observation"] / scales).astype(np.float32)
            return (obs / scales).astype(np.float32), reward * reward_scale, done, infos

    return ScaledVec


def train_sb3(venv: Any, seconds: float, score: Any, sim: ModelSim, scales: torch.Tensor, n_steps: int,
              batch_size: int, eval_every: int) -> dict[str, float]:
    """SB3 PPO on ``venv`` for ``seconds`` of wall time; returns env steps, env-steps/s and the best score."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    torch.manual_seed(0)
    model = PPO("MlpPolicy", venv, n_steps=n_steps, batch_size=batch_size, gamma=1.0, seed=0, verbose=0,
                device="cpu")
    quoter = Scaled(model, sim, scales)
    best = {"ce": -float("inf"), "next": eval_every}
    start = time.perf_counter()

    class Budget(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps >= best["next"]:
                best["next"] += eval_every
                best["ce"] = max(best["ce"], -score(quoter))
            return time.perf_counter() - start < seconds

    model.learn(total_timesteps=10**10, callback=Budget())
    seconds_used = time.perf_counter() - start
    best["ce"] = max(best["ce"], -score(quoter))
    return {"env_steps": model.num_timesteps, "seconds": seconds_used,
            "steps_per_second": model.num_timesteps / seconds_used, "best_ce": best["ce"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one-env-seconds", type=float, default=60.0)
    parser.add_argument("--num-envs", type=int, default=1024)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from stable_baselines3.common.vec_env import DummyVecEnv

    scenario = SPEC.scenario("glft_bounded")
    optimum = exact_statistics(scenario, GLFTExact(scenario)).certainty_equivalent
    sim = ModelSim(scenario)
    score = held_out_score(sim, sim.sample_exogenous(8192, sim.horizon, make_generator(7)), scenario.risk_aversion)
    scales = torch.tensor(observation_scales(scenario))
    reward_scale = reward_scale_of(sim, scenario, make_generator(1))
    learner = Reshaped(sim, reward_function("mean_variance", scenario, 0.5))
    ScaledVec = _wrappers(scales.numpy(), reward_scale)

    start = time.perf_counter()
    core = SPEC.algo("ppo").train(scenario, seed=0, device=CPU, progress=True)
    core_seconds = time.perf_counter() - start
    core_row = {"env_steps": core.metrics["env_steps"], "seconds": core_seconds,
                "steps_per_second": core.metrics["env_steps"] / core_seconds,
                "best_ce": -score(core.policy)}
    print("core", core_row)

    vec = ScaledVec(make_vec_env(learner, num_envs=args.num_envs, seed=0))
    batched = train_sb3(vec, core_seconds, score, sim, scales, n_steps=50, batch_size=args.num_envs * 50 // 4,
                        eval_every=1_000_000)
    print("vec", batched)
    one = ScaledVec(DummyVecEnv([lambda: SimulatorEnv(learner)]))
    single = train_sb3(one, args.one_env_seconds, score, sim, scales, n_steps=2048, batch_size=64,
                       eval_every=10**12)
    print("one", single)

    def row(label: str, r: dict[str, float]) -> str:
        gap = 100.0 * (r["best_ce"] / optimum - 1.0)
        return (f"| {label} | {r['steps_per_second']:,.0f} | {r['seconds']:.0f} | {r['env_steps']:,.0f} | "
                f"{r['best_ce']:.3f} | {gap:+.2f}% |")

    lines = [
        "| learner | env-steps/s while training | wall seconds | env steps | best held-out CE | vs GLFT |",
        "|---|---|---|---|---|---|",
        row("core PPO (2,048 episodes a batch)", core_row),
        row(f"SB3 PPO, `make_vec_env` ({args.num_envs:,} envs, one batched simulator)", batched),
        row("SB3 PPO, one-environment adapter (`SimulatorEnv` in a `DummyVecEnv`)", single),
    ]
    ratio = batched["steps_per_second"] / single["steps_per_second"]
    body = "\n".join([
        "## Stable-Baselines3 through one batched simulator (`make_vec_env`)",
        "",
        f"`{command_line()}` — {machine()}; one thread. Market making `glft_bounded`, reward `mean_variance` with "
        f"the core PPO's observation and reward scales for every learner; GLFT exact's certainty equivalent "
        f"(the optimum of this market): {optimum:.3f}. SB3's PPO on the VecEnv trained for the core PPO's wall "
        "time; n_steps 50 per environment (a quarter of the 200-step episode), 4 minibatches, its defaults "
        f"otherwise. The one-environment adapter was timed for {args.one_env_seconds:.0f} s (n_steps 2,048, "
        "batch 64: SB3's defaults).",
        "",
        *lines,
        "",
        f"The VecEnv over one batched simulator steps {ratio:.0f}× the one-environment adapter's env-steps/s "
        "while training.",
        "",
        "Reading it: through `make_vec_env` the comparison with Stable-Baselines3 measures the algorithm, not a",
        f"one-environment adapter: SB3's PPO steps {batched['steps_per_second']:,.0f} env-steps/s, {ratio:.0f}× its "
        f"one-environment rate, and ends\n{100.0 * (batched['best_ce'] / optimum - 1.0):+.2f}% from GLFT in the "
        f"{core_seconds:.0f} s the core PPO needs to come within {100.0 * (core_row['best_ce'] / optimum - 1.0):+.2f}% "
        "of it (SB3's default\noptimisation: 10 epochs of large minibatches, lr 3e-4, a state-independent std "
        "starting at 1).",
    ])
    print(body)
    if not args.no_write:
        write_section("sb3_vec_env", body)


if __name__ == "__main__":
    main()
