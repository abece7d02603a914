"""Gather-Trade-Build benchmark: the simulator's speed, and two-level PPO against the fixed schedules.

``throughput``: agent-steps per second of ``GatherTradeBuildSim`` at 4, 16 and 100 workers per economy
with 1,024 economies, one thread. An agent-step is one worker's step in one economy (the planner, which
acts once per tax period, is not counted). Three columns per size: the simulator alone (``observe`` +
``step`` under random legal choices, the drawing not timed), the same with the drawing timed, and with
the scripted workers of the baselines deciding.

``two_level``: ``two_level_ppo`` (``workers=scripted`` or ``ppo``) trained with ≥ 3 seeds; each trained
pair and the baselines ``saez``, ``us_federal``, ``free_market`` and ``searched`` are evaluated on the same held-out
economies (maps, skills and draws from one seed), so the differences are paired per economy. Reported
per training seed: equality × productivity with its 95% t-interval over economies, the paired difference
to Saez; over seeds: the mean of the per-seed differences with its t-interval over the seeds.

    python -m benchmarks.gtb_bench throughput [--no-write]
    python -m benchmarks.gtb_bench two_level [--workers scripted] [--seeds 3] [--economies 128] [--no-write]
        [--set key=value ...]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from benchmarks.report import write_section
from decisionlab.core import MergedPolicy, TrainContext, configure_threads
from decisionlab.core.evaluation import mean_ci95
from decisionlab.domains.taxation.gtb import PLANNER, WORKERS, GatherTradeBuildSim
from decisionlab.domains.taxation.gtb_metrics import episode_metrics
from decisionlab.domains.taxation.gtb_policies import gtb_free_market, gtb_saez, gtb_searched, gtb_us_federal
from decisionlab.domains.taxation.gtb_saez import saez_estimate
from decisionlab.domains.taxation.gtb_train import GtbTwoLevelOptions, train_gtb_two_level
from decisionlab.domains.taxation.gtb_workers import GatherBuildWorkers
from decisionlab.domains.taxation.scenario import GatherTradeBuildScenario


class FixedRates:
    """A planner that sets ``rates [K]`` in every economy."""

    def __init__(self, rates: torch.Tensor) -> None:
        self.rates = rates

    def act(self, obs: dict) -> dict[str, torch.Tensor]:
        return {PLANNER: self.rates.expand(obs[PLANNER]["features"].shape[0], 1, -1)}


SIZES = ((4, 25), (16, 25), (100, 100))
"""(workers, map side): the default map for 4 and 16; 100 workers on a 100 × 100 map."""


def steps_per_second(sim: GatherTradeBuildSim, batch: int, decide: str, timed_choice: bool, steps: int = 100
                     ) -> float:
    """Worker-steps per second of ``observe`` + ``step`` (+ the choice when ``timed_choice``)."""
    state = sim.reset(batch, torch.Generator().manual_seed(0))
    draws = sim.sample_exogenous(batch, steps + 10, torch.Generator().manual_seed(1))
    rates = torch.full((batch, 1, sim.scenario.n_brackets), 0.2)
    scripted = GatherBuildWorkers(sim.scenario)
    choices = torch.Generator().manual_seed(2)
    elapsed = 0.0
    for t in range(steps + 10):
        start = time.perf_counter()
        obs = sim.observe(state)
        chosen = time.perf_counter()
        if decide == "random":
            legal = obs[WORKERS]["legal"]
            choice = (torch.rand(legal.shape, generator=choices) * legal).argmax(-1)
        else:
            choice = scripted.act(obs)[WORKERS]
        stepping = time.perf_counter()
        state = sim.step(state, {WORKERS: choice, PLANNER: rates}, draws[:, t]).state
        if t >= 10:  # warm-up
            elapsed += time.perf_counter() - start - (0.0 if timed_choice else stepping - chosen)
    return batch * sim.scenario.n_agents * steps / elapsed


def throughput(write: bool) -> None:
    rows = []
    for agents, side in SIZES:
        sim = GatherTradeBuildSim(GatherTradeBuildScenario(n_agents=agents, map_size=side))
        speeds = [steps_per_second(sim, 1024, "random", False), steps_per_second(sim, 1024, "random", True),
                  steps_per_second(sim, 1024, "scripted", True)]
        rows.append(f"| {agents} | {side} × {side} | 1,024 | " + " | ".join(f"{v:,.0f}" for v in speeds) + " |")
        print(rows[-1], flush=True)
    body = "\n".join([
        "### Taxation: Gather-Trade-Build simulator speed",
        "",
        "One thread, 1,024 economies, 100 timed steps after 10 of warm-up; a worker-step is one worker's step in "
        "one economy (`observe` + `step`; the planner's rates are fixed). Columns: the simulator alone under random "
        "legal choices (drawing them is not timed); the same with the drawing timed (what a cheap policy adds); the "
        "baselines' scripted workers deciding, their decisions timed. Target: 1M worker-steps/s at 4 workers × 1,024.",
        "",
        "| workers | map | economies | simulator alone | with random legal choices drawn | with the scripted workers |",
        "|---:|---|---:|---:|---:|---:|",
        *rows,
    ])
    if write:
        write_section("gtb_throughput", body)
    print(body)


def two_level(write: bool, workers: str, seeds: int, economies: int, sets: list[str]) -> None:
    scenario = GatherTradeBuildScenario()
    overrides: dict[str, object] = {"workers": workers}
    for item in sets:
        key, _, value = item.partition("=")
        overrides[key] = value
    options = GtbTwoLevelOptions.model_validate(overrides)
    device, eval_seed = torch.device("cpu"), 12_345
    baselines = {"saez": gtb_saez(scenario), "us_federal": gtb_us_federal(scenario),
                 "free_market": gtb_free_market(scenario), "searched": gtb_searched(scenario)}
    base = {name: episode_metrics(scenario, policy, economies, eval_seed, device)["equality_times_productivity"]
            for name, policy in baselines.items()}
    rows, diffs, same_workers = [], [], []
    for seed in range(seeds):
        start = time.perf_counter()
        outcome = train_gtb_two_level(scenario, options, TrainContext(seed, device, progress=True))
        seconds = time.perf_counter() - start
        learned = episode_metrics(scenario, outcome.policy.for_scenario(scenario), economies, eval_seed, device)
        value = learned["equality_times_productivity"]
        mean, half = mean_ci95(value)
        cells = []
        for name in baselines:
            d_mean, d_half = mean_ci95(value - base[name])
            cells.append(f"{d_mean:+.1f} ± {d_half:.1f} ({100 * d_mean / base[name].mean():+.1f}%)")
        diffs.append(float((value - base["saez"]).mean()))
        rows.append(f"| {seed} | {mean:.1f} ± {half:.1f} | " + " | ".join(cells) + f" | {seconds:.0f} |")
        if workers == "ppo":  # the same schedules answered by the pair's own learned workers
            learned_workers = outcome.policy.members[WORKERS].for_scenario(scenario)
            own = []
            for name, policy in baselines.items():
                fixed = MergedPolicy({PLANNER: FixedRates(policy.rates), WORKERS: learned_workers})
                other = episode_metrics(scenario, fixed, economies, eval_seed, device)["equality_times_productivity"]
                d_mean, d_half = mean_ci95(value - other)
                own.append(f"{name} {d_mean:+.1f} ± {d_half:.1f}")
            same_workers.append(f"| {seed} | " + " | ".join(own) + " |")
        print(rows[-1], flush=True)
    saez_mean = float(base["saez"].mean())
    across = statistics.fmean(diffs)
    spread = 0.0
    if len(diffs) > 1:
        from scipy import stats

        spread = float(stats.t.ppf(0.975, len(diffs) - 1)) * statistics.stdev(diffs) / len(diffs) ** 0.5
    reference = " | ".join(f"{name} {mean_ci95(v)[0]:.1f} ± {mean_ci95(v)[1]:.1f}" for name, v in base.items())
    estimate = saez_estimate(scenario)
    body = "\n".join([
        f"### Taxation: two-level PPO in Gather-Trade-Build (workers: {workers})",
        "",
        f"`two_level_ppo` with `workers={workers}` and otherwise " + (
            ", ".join(f"`{k}={v}`" for k, v in overrides.items() if k != "workers") or "default options")
        + f", one thread, {seeds} training seeds. Every policy is scored on the same {economies} held-out "
        "economies (equality × productivity of the coin at the episode's end; 95% t-intervals over economies; "
        "differences paired per economy). The baselines' workers are the scripted ones.",
        "",
        f"Baselines: {reference}. Saez's estimated rates: "
        + " ".join(f"{r:.2f}" for r in estimate.rates) + f" (e = {estimate.elasticity:.2f}).",
        "",
        "| seed | two-level E×P | vs `saez` | vs `us_federal` | vs `free_market` | vs `searched` | seconds |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Over seeds, against Saez: {across:+.1f} ± {spread:.1f} ({100 * across / saez_mean:+.1f}% of Saez's "
        f"{saez_mean:.1f}; 95% t-interval over {len(diffs)} seeds). The paper reports +16% over Saez.",
        *([] if not same_workers else [
            "", "The pair against the same fixed schedules answered by its own learned workers (paired, 95% t):",
            "", "| seed | vs each schedule |", "|---:|---|", *same_workers]),
    ])
    if write:
        write_section(f"gtb_two_level_{workers}", body)
    print(body)
    np.set_printoptions(precision=3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["throughput", "two_level"])
    parser.add_argument("--workers", choices=["scripted", "ppo"], default="scripted")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--economies", type=int, default=128)
    parser.add_argument("--set", action="append", default=[], help="an option of two_level_ppo: key=value")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    configure_threads()
    if args.part == "throughput":
        throughput(not args.no_write)
    else:
        two_level(not args.no_write, args.workers, args.seeds, args.economies, args.set)


if __name__ == "__main__":
    main()
