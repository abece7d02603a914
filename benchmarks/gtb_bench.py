"""Gather-Trade-Build benchmark: the simulator's speed, and two-level PPO against the fixed schedules.

``throughput``: agent-steps per second of ``GatherTradeBuildSim`` at 4, 16 and 100 workers per economy
with 1,024 economies, one thread. An agent-step is one worker's step in one economy (the planner, which
acts once per tax period, is not counted). Three columns per size: the simulator alone (``observe`` +
``step`` under random legal choices, the drawing not timed), the same with the drawing timed, and with
the scripted workers of the baselines deciding.

``two_level``: ``two_level_ppo`` (``workers=scripted`` or ``ppo``) trained with ≥ 3 seeds; each trained
pair and the baselines ``saez``, ``us_federal``, ``free_market``, ``searched`` and ``searched_by_period``
are evaluated on the same held-out economies (maps, skills and draws from one seed), so the differences
are paired per economy. Reported per training seed: equality × productivity with its 95% t-interval over
economies, the paired difference to each baseline; over seeds: the mean of the per-seed differences to
Saez with its t-interval over the seeds.

With learned workers (``workers=ppo``) the baselines are scored as the AI Economist scores them, with
workers that adapted to each: every fixed schedule (``saez``, ``us_federal``, ``free_market``) is answered
by a copy of the pair's workers after PPO under that schedule for the budget of the pair's own last
catch-up (``adapt_workers``), Saez's rates are estimated from the pair's workers' incomes, and a second
table gives the same schedules answered by the pair's workers unadapted. (The searched schedules are
searched with the scripted workers and belong to the scripted table.)

``compare``: the same table for pairs already registered (``--policy taxation/NAME@VERSION``, one per
training seed), their training time read from their cards.

    python -m benchmarks.gtb_bench throughput [--no-write]
    python -m benchmarks.gtb_bench two_level [--workers scripted] [--seeds 3] [--economies 128] [--no-write]
        [--set key=value ...]
    python -m benchmarks.gtb_bench compare --policy taxation/NAME@1 --policy ... [--economies 128] [--no-write]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch

from benchmarks.report import publish
from decisionlab.core import MergedPolicy, TrainContext, configure_allocator, configure_threads, make_generator
from decisionlab.core.evaluation import mean_ci95
from decisionlab.domains.taxation.gtb import PLANNER, WORKERS, GatherTradeBuildSim
from decisionlab.domains.taxation.gtb_metrics import episode_metrics
from decisionlab.domains.taxation.gtb_policies import (
    gtb_free_market,
    gtb_saez,
    gtb_searched,
    gtb_searched_by_period,
    gtb_us_federal,
)
from decisionlab.domains.taxation.gtb_saez import estimate_saez, saez_estimate
from decisionlab.domains.taxation.gtb_train import (
    GtbTwoLevelOptions,
    GtbWorkers,
    adapt_workers,
    train_gtb_two_level,
)
from decisionlab.domains.taxation.gtb_view import period_trace
from decisionlab.domains.taxation.gtb_workers import GatherBuildWorkers, GtbSchedule, SchedulePlanner
from decisionlab.domains.taxation.scenario import GatherTradeBuildScenario

EVAL_SEED = 12_345
"""The held-out economies' seed (apart from the training's, Saez's and the searches')."""
SIZES = ((4, 25, 100), (16, 25, 100), (100, 100, 100), (1000, 100, 20))
"""(workers, map side, timed steps): the default map for 4 and 16; 100 and 1,000 workers on a 100 × 100 map
(1,000 workers: fewer steps, each is a million worker-steps)."""


def steps_per_second(sim: GatherTradeBuildSim, batch: int, decide: str, timed_choice: bool, steps: int = 100,
                     warm: int = 10) -> float:
    """Worker-steps per second of ``observe`` + ``step`` (+ the choice when ``timed_choice``) over ``steps``
    steps after ``warm`` untimed ones."""
    state = sim.reset(batch, torch.Generator().manual_seed(0))
    draws = sim.sample_exogenous(batch, steps + warm, torch.Generator().manual_seed(1))
    rates = torch.full((batch, 1, sim.scenario.n_brackets), 0.2)
    scripted = GatherBuildWorkers(sim.scenario)
    choices = torch.Generator().manual_seed(2)
    elapsed = 0.0
    for t in range(steps + warm):
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
        if t >= warm:
            elapsed += time.perf_counter() - start - (0.0 if timed_choice else stepping - chosen)
    return batch * sim.scenario.n_agents * steps / elapsed


def throughput(write: bool) -> None:
    rows = []
    for agents, side, steps in SIZES:
        sim = GatherTradeBuildSim(GatherTradeBuildScenario(n_agents=agents, map_size=side))
        warm = min(10, steps // 4)
        speeds = [steps_per_second(sim, 1024, decide, timed, steps, warm)
                  for decide, timed in (("random", False), ("random", True), ("scripted", True))]
        rows.append(f"| {agents:,} | {side} × {side} | 1,024 | {steps} | "
                    + " | ".join(f"{v:,.0f}" for v in speeds) + " |")
        print(rows[-1], flush=True)
    body = "\n".join([
        "### Taxation: Gather-Trade-Build simulator speed",
        "",
        "One thread, 1,024 economies, the timed steps after 10 of warm-up (5 for 1,000 workers); a worker-step is "
        "one worker's step in "
        "one economy (`observe` + `step`; the planner's rates are fixed). Columns: the simulator alone under random "
        "legal choices (drawing them is not timed); the same with the drawing timed (what a cheap policy adds); the "
        "baselines' scripted workers deciding, their decisions timed. Target: 1M worker-steps/s at 4 workers × 1,024.",
        "",
        "| workers | map | economies | timed steps | simulator alone | with random legal choices drawn | "
        "with the scripted workers |",
        "|---:|---|---:|---:|---:|---:|---:|",
        *rows,
    ])
    publish("gtb_throughput", body, write)


def baseline_values(scenario: GatherTradeBuildScenario, economies: int, device: torch.device
                    ) -> tuple[dict[str, GtbSchedule], dict[str, np.ndarray]]:
    baselines = {"saez": gtb_saez(scenario), "us_federal": gtb_us_federal(scenario),
                 "free_market": gtb_free_market(scenario), "searched": gtb_searched(scenario),
                 "searched_by_period": gtb_searched_by_period(scenario)}
    return baselines, {name: episode_metrics(scenario, policy, economies, EVAL_SEED, device)[
        "equality_times_productivity"] for name, policy in baselines.items()}


def score(scenario: GatherTradeBuildScenario, trained: list[tuple[str, Any, float]], economies: int,
          heading: str, description: str) -> str:
    """The comparison table of ``trained`` pairs ``(label, pair policy, training seconds)`` with scripted
    workers against the baselines on the same held-out economies (module docstring)."""
    device = torch.device("cpu")
    baselines, base = baseline_values(scenario, economies, device)
    rows, diffs = [], []
    for label, pair, seconds in trained:
        policy = pair.for_scenario(scenario)
        value = episode_metrics(scenario, policy, economies, EVAL_SEED, device)["equality_times_productivity"]
        mean, half = mean_ci95(value)
        cells = []
        for name in baselines:
            d_mean, d_half = mean_ci95(value - base[name])
            cells.append(f"{d_mean:+.1f} ± {d_half:.1f} ({100 * d_mean / base[name].mean():+.1f}%)")
        diffs.append(float((value - base["saez"]).mean()))
        rows.append(f"| {label} | {mean:.1f} ± {half:.1f} | " + " | ".join(cells) + f" | {seconds:.0f} |")
        print(rows[-1], flush=True)
    saez_mean = float(base["saez"].mean())
    across, spread = mean_ci95(np.array(diffs))
    reference = " | ".join(f"{name} {mean_ci95(v)[0]:.1f} ± {mean_ci95(v)[1]:.1f}" for name, v in base.items())
    searched = " ".join(f"{r:.1f}" for r in baselines["searched"].rates.tolist())
    timing = []
    for label, pair, _ in trained[:1]:  # what the first planner does, period by period (mean over 32 economies)
        _, rates = period_trace(scenario, pair.for_scenario(scenario), economies=32, seed=EVAL_SEED)
        table = rates.pivot(on="bracket", index="period", values="rate")
        timing = ["", f"Rates set by the planner of seed {label}, mean over 32 of the held-out economies:", "",
                  "| period | " + " | ".join(table.columns[1:]) + " |", "|---:|" + "---:|" * (table.width - 1),
                  *("| " + " | ".join([str(row[0])] + [f"{v:.2f}" for v in row[1:]]) + " |" for row in table.rows())]
    estimate = saez_estimate(scenario)
    return "\n".join([
        heading, "", description + f" Every policy is scored on the same {economies} held-out economies "
        "(equality × productivity of the coin at the episode's end; 95% t-intervals over economies; differences "
        "paired per economy). The baselines' workers are the scripted ones.",
        "",
        f"Baselines: {reference}. Saez's estimated rates: "
        + " ".join(f"{r:.2f}" for r in estimate.rates) + f" (e = {estimate.elasticity:.2f}); `searched`'s: "
        + searched + ".",
        "",
        "| training seed | two-level E×P | vs `saez` | vs `us_federal` | vs `free_market` | vs `searched` "
        "| vs `searched_by_period` | training seconds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Over seeds, against Saez: {across:+.1f} ± {spread:.1f} ({100 * across / saez_mean:+.1f}% of Saez's "
        f"{saez_mean:.1f}; 95% t-interval over {len(diffs)} seeds). The paper reports +16% over Saez.",
        *timing,
    ])


def learned_score(scenario: GatherTradeBuildScenario, trained: list[tuple[str, Any, float]], economies: int,
                  options: GtbTwoLevelOptions, heading: str, how: str) -> str:
    """The table of pairs with learned workers, trained with ``options``: each fixed schedule is answered by
    the pair's workers after PPO under it for the budget of their last catch-up (:func:`adapt_workers`),
    and Saez's rates are estimated from the pair's own workers (module docstring)."""
    device = torch.device("cpu")
    adapt_steps = int(options.worker_steps * options.worker_share)
    names = ("saez", "us_federal", "free_market")
    rows, unadapted, rates_lines = [], [], []
    across_seeds: dict[str, list[float]] = {}
    baseline_means: dict[str, list[float]] = {}
    for i, (label, pair, seconds) in enumerate(trained):
        workers = pair.members[WORKERS]
        own = episode_metrics(scenario, pair.for_scenario(scenario), economies, EVAL_SEED, device)
        value = own["equality_times_productivity"]
        estimate = estimate_saez(scenario, workers=workers.for_scenario(scenario))
        schedules = {"saez": GtbSchedule(scenario, list(estimate.rates), "saez"),
                     "us_federal": gtb_us_federal(scenario), "free_market": gtb_free_market(scenario)}
        rates_lines.append(f"seed {label}: Saez's rates from its workers' incomes "
                           + " ".join(f"{r:.2f}" for r in estimate.rates) + f" (e = {estimate.elasticity:.2f})")
        cells, plain = [], []
        for name in names:
            schedule = schedules[name]
            adapted = adapt_workers(workers, schedule, adapt_steps, make_generator(1000 + i), options)
            for answering, out in ((adapted, cells), (workers.for_scenario(scenario), plain)):
                fixed = MergedPolicy({PLANNER: SchedulePlanner(schedule), WORKERS: answering})
                other = episode_metrics(scenario, fixed, economies, EVAL_SEED, device)["equality_times_productivity"]
                d_mean, d_half = mean_ci95(value - other)
                out.append(f"{float(other.mean()):.1f} → {d_mean:+.1f} ± {d_half:.1f} "
                           f"({100 * d_mean / max(float(other.mean()), 1e-9):+.1f}%)")
                if answering is adapted:
                    across_seeds.setdefault(name, []).append(d_mean)
                    baseline_means.setdefault(name, []).append(float(other.mean()))
        mean, half = mean_ci95(value)
        rows.append(f"| {label} | {mean:.1f} ± {half:.1f} | {float(own['houses_built'].mean()):.1f} | "
                    f"{float(own['labour'].mean()):.0f} | {float(own['utility'].mean()):.2f} | " + " | ".join(cells)
                    + f" | {seconds:.0f} |")
        unadapted.append(f"| {label} | " + " | ".join(plain) + " |")
        print(rows[-1], flush=True)
    summary = []
    for name in names:
        across, spread = mean_ci95(np.array(across_seeds[name]))
        reference = float(np.mean(baseline_means[name]))
        share = 100 * across / max(reference, 1e-9)
        summary.append(f"| `{name}` | {reference:.1f} | {across:+.1f} ± {spread:.1f} | {share:+.1f}% |")
    label, pair, _ = trained[0]
    _, rates = period_trace(scenario, pair.for_scenario(scenario), economies=32, seed=EVAL_SEED)
    table = rates.pivot(on="bracket", index="period", values="rate")
    timing = ["", f"Rates set by the planner of seed {label}, mean over 32 of the held-out economies:", "",
              "| period | " + " | ".join(table.columns[1:]) + " |", "|---:|" + "---:|" * (table.width - 1),
              *("| " + " | ".join([str(row[0])] + [f"{v:.2f}" for v in row[1:]]) + " |" for row in table.rows())]
    return "\n".join([
        heading, "", how + f" Every policy is scored on the same {economies} held-out economies (equality × "
        "productivity of the coin at the episode's end; 95% "
        "t-intervals over economies; differences paired per economy). The learned workers act by sampling "
        "their choices. Each fixed schedule is answered by the pair's workers after "
        f"{adapt_steps:,} env steps of PPO under it (the budget of the pair's own last catch-up; the paper "
        "scores each baseline with agents trained under it); Saez's rates are estimated from the pair's workers' "
        "incomes. A cell: the schedule's E×P → the pair's margin over it.", "",
        "| training seed | two-level E×P | houses | labour | utility | vs `saez` | vs `us_federal` | "
        "vs `free_market` | training seconds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows, "",
        f"Over the {len(trained)} seeds (the mean of the per-seed paired margins, 95% t-interval over seeds; adapted "
        "workers). The paper reports +16% over Saez.", "",
        "| baseline | its E×P (mean over seeds) | the pair's margin | in % |", "|---|---:|---:|---:|", *summary, "",
        *(f"- {line}" for line in rates_lines), *timing, "",
        "The same schedules answered by the pair's workers as they are (no adaptation):", "",
        "| training seed | vs `saez` | vs `us_federal` | vs `free_market` |", "|---|---:|---:|---:|", *unadapted,
    ])


def two_level(write: bool, workers: str, seeds: int, economies: int, sets: list[str]) -> None:
    scenario = GatherTradeBuildScenario()
    overrides: dict[str, object] = {"workers": workers}
    for item in sets:
        key, _, value = item.partition("=")
        overrides[key] = value
    options = GtbTwoLevelOptions.model_validate(overrides)
    trained = []
    for seed in range(seeds):
        start = time.perf_counter()
        outcome = train_gtb_two_level(scenario, options, TrainContext(seed, torch.device("cpu"), progress=True))
        trained.append((str(seed), outcome.policy, time.perf_counter() - start))
    settings = ", ".join(f"`{k}={v}`" for k, v in overrides.items() if k != "workers") or "default options"
    heading = f"### Taxation: two-level PPO in Gather-Trade-Build (workers: {workers})"
    how = f"`two_level_ppo` with `workers={workers}` and otherwise {settings}, one thread, {seeds} training seeds."
    if workers == "ppo":
        body = learned_score(scenario, trained, economies, options, heading, how)
    else:
        body = score(scenario, trained, economies, heading, how)
    publish(f"gtb_two_level_{workers}", body, write)


def compare(write: bool, refs: list[str], economies: int) -> None:
    from decisionlab.core import PolicyRegistry
    from decisionlab.core.policy import rebuild_module

    registry = PolicyRegistry()
    trained, kinds = [], set()
    scenario = GatherTradeBuildScenario()
    for ref in refs:
        record = registry.find(ref)
        card = record.card
        scenario = GatherTradeBuildScenario.model_validate(card["scenario"])
        pair = rebuild_module(card["policy_config"], registry.load_weights(record), torch.device("cpu"))
        kinds.add(str(card.get("algo_options", {}).get("workers")))
        trained.append((f"{card.get('seed')} (`{ref}`)", pair, float(card.get("train_seconds", 0.0))))
    workers = "/".join(sorted(kinds))
    if all(isinstance(pair.members[WORKERS], GtbWorkers) for _, pair, _ in trained):
        options = GtbTwoLevelOptions.model_validate(registry.find(refs[0]).card.get("algo_options", {}))
        body = learned_score(scenario, trained, economies, options,
                             "### Taxation: registered two-level pairs in Gather-Trade-Build (workers: learned by PPO)",
                             "`two_level_ppo` pairs trained by `decisionlab train taxation --algo two_level_ppo "
                             "--scenario gather_trade_build --algo-set workers=ppo --seed S`, one thread.")
        publish("gtb_registered_ppo", body, write)
        return
    body = score(scenario, trained, economies, f"### Taxation: registered two-level pairs in Gather-Trade-Build "
                 f"(workers: {workers})", f"`two_level_ppo` pairs trained by `decisionlab train taxation --algo "
                 f"two_level_ppo --scenario gather_trade_build --algo-set workers={workers} --seed S`, one thread.")
    publish(f"gtb_registered_{workers}", body, write)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["throughput", "two_level", "compare"])
    parser.add_argument("--policy", action="append", default=[], help="compare: a registered pair, per seed")
    parser.add_argument("--workers", choices=["scripted", "ppo"], default="scripted")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--economies", type=int, default=128)
    parser.add_argument("--set", action="append", default=[], help="an option of two_level_ppo: key=value")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    configure_threads()
    configure_allocator()
    if args.part == "throughput":
        throughput(not args.no_write)
    elif args.part == "compare":
        compare(not args.no_write, args.policy, args.economies)
    else:
        two_level(not args.no_write, args.workers, args.seeds, args.economies, args.set)


if __name__ == "__main__":
    main()
