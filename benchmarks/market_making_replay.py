"""Market-making benchmark on the long order-book replay (``lob_replay_days``): do learned quotes beat the
closed forms on data they never saw, by more than chance?

Core PPO (rewards ``mean_variance`` and ``dampened``) trains on the preset's training part (22.75 h of
the synthetic days) for several seeds; model selection reads random windows of the training part too, so
the held-out part stays unseen until the end. The reference is the best closed form (GLFT exact, its
approximation, Avellaneda–Stoikov; calibrated on the training part) on training windows. Every trained
policy and the closed forms are then scored on every disjoint 10-minute window of the held-out part
(58), the same windows for all (paired). Reported per policy: the certainty equivalent with its 95%
t-interval over windows, the paired difference to the reference with its t-interval (Student t with n −
1 degrees of freedom, n the effective episodes: disjoint windows), per seed and as the mean over seeds
(there the interval is over seeds, s − 1 degrees of freedom: the spread of training outcomes).

    python -m benchmarks.market_making_replay [--ppo-steps 10000000] [--seeds 3] [--no-write] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import torch

from benchmarks.report import command_line, machine, write_section
from decisionlab.core.evaluation import EvaluationReport, default_episodes, evaluate_policies, mean_ci95
from decisionlab.core.options import TrainContext
from decisionlab.core.policy import Policy
from decisionlab.core.seeding import make_generator
from decisionlab.domains.market_making import REPLAY, SPEC, _replay_sim
from decisionlab.domains.market_making.baselines import AvellanedaStoikov, GLFTApprox, GLFTExact
from decisionlab.domains.market_making.replay.scenario import ReplayScenario
from decisionlab.domains.market_making.train import QuotingPPOSettings, held_out_score, train_ppo_quoter

PRESET = "lob_replay_days"
REWARDS = ("mean_variance", "dampened")
EVAL_SEED = 20261202  # the windows do not depend on it (disjoint tiling); kept for the record
SELECTION_PATHS = 1024  # random training windows of the model selection (8,192 would cost more than training)
METRIC = "certainty_equivalent"


def best_closed_form(scenario: ReplayScenario, device: torch.device) -> tuple[str, dict[str, Policy]]:
    """The closed forms (calibrated on the training part) and the name of the best of them on random
    windows of the training part: the reference is chosen without looking at the held-out windows."""
    forms: dict[str, Policy] = {"glft": GLFTExact(scenario), "glft_approx": GLFTApprox(scenario),
                                "avellaneda_stoikov": AvellanedaStoikov(scenario)}
    score = held_out_score(training := _replay_sim(scenario, device, "select"),
                           training.sample_exogenous(SELECTION_PATHS, training.horizon, make_generator(EVAL_SEED)),
                           scenario.risk_aversion)
    return min(forms, key=lambda name: score(forms[name])), forms  # the score is −CE


@dataclass
class Row:
    """One line of the result: a policy (a baseline, a seed's PPO or the mean over seeds)."""

    policy: str
    reward: str | None
    seed: int | None
    ce: float
    ce_ci95: float
    diff: float
    diff_ci95: float
    dof: int  # degrees of freedom of the t-intervals
    mean_pnl: float
    std_pnl: float
    effective_episodes: int

    def markdown(self) -> str:
        def half(value: float) -> str:
            return f"{value:.3f}" if self.dof > 0 else "n/a"

        seed = "mean over seeds" if self.seed is None and self.reward else ("" if self.seed is None else str(self.seed))
        diff = "reference" if self.reward is None and self.diff == 0 and self.diff_ci95 == 0 else \
            f"{self.diff:+.3f} ± {half(self.diff_ci95)}"
        return (f"| {self.policy} | {seed} | {self.ce:.3f} ± {half(self.ce_ci95)} | {diff} | {self.dof} | "
                f"{self.mean_pnl:.3f} | {self.std_pnl:.3f} | {self.effective_episodes} |")


def report_rows(report: EvaluationReport, seeds: dict[str, tuple[str, int]]) -> list[Row]:
    """A :class:`Row` per evaluated policy (``seeds``: label → (reward, seed) of the trained ones)."""
    table = report.table()
    n = int(report.effective_episodes or report.episodes)
    rows = []
    for label in report.labels:
        part = {r["metric"]: r for r in table.filter(pl.col("policy") == label).iter_rows(named=True)}
        ce = part[METRIC]
        reward, seed = seeds.get(label, (None, None))
        rows.append(Row(label, reward, seed, ce["mean"], ce["ci95"], ce["diff_vs_first"], ce["diff_ci95"], n - 1,
                        part["mean_pnl"]["mean"], part["std_pnl"]["mean"], n))
    return rows


def seed_means(rows: list[Row]) -> list[Row]:
    """Per reward, the mean over seeds of the CE and of the paired difference, t-intervals over seeds."""
    out = []
    for reward in REWARDS:
        mine = [row for row in rows if row.reward == reward]
        if not mine:
            continue
        ce, ce_half = mean_ci95(np.array([row.ce for row in mine]))
        diff, diff_half = mean_ci95(np.array([row.diff for row in mine]))
        out.append(Row(f"ppo_{reward}", reward, None, ce, ce_half, diff, diff_half, len(mine) - 1,
                       float(np.mean([row.mean_pnl for row in mine])), float(np.mean([row.std_pnl for row in mine])),
                       mine[0].effective_episodes))
    return out


def train(scenario: ReplayScenario, reward: str, seed: int, ppo_steps: int, device: torch.device) -> Policy:
    settings = QuotingPPOSettings(reward=reward, total_env_steps=ppo_steps, eval_paths=SELECTION_PATHS,
                                  eval_every=max(1, min(1_000_000, ppo_steps // 4)))
    # _replay_sim trains and selects on the training part: the held-out windows stay unseen
    return train_ppo_quoter(scenario, settings, TrainContext(seed, device, False), _replay_sim).policy


def run_benchmark(ppo_steps: int, seeds: int, device: torch.device) -> dict[str, Any]:
    scenario = SPEC.scenario(PRESET)
    start = time.perf_counter()
    episodes = default_episodes(REPLAY, scenario)  # every disjoint held-out window (data generated if needed)
    data_seconds = time.perf_counter() - start
    reference, forms = best_closed_form(scenario, device)
    policies: list[tuple[str, Policy]] = [(reference, forms[reference])]
    policies += [(name, policy) for name, policy in forms.items() if name != reference]
    trained: dict[str, tuple[str, int]] = {}
    train_seconds: dict[str, float] = {}
    for seed in range(seeds):
        for reward in REWARDS:
            label = f"ppo_{reward}_s{seed}"
            began = time.perf_counter()
            policies.append((label, train(scenario, reward, seed, ppo_steps, device)))
            train_seconds[label] = time.perf_counter() - began
            trained[label] = (reward, seed)
            print(f"trained {label} in {train_seconds[label]:.0f} s", flush=True)
    report = evaluate_policies(SPEC, scenario, policies, episodes=episodes, seed=EVAL_SEED, device=device)
    rows = report_rows(report, trained)
    return {"preset": PRESET, "scenario": scenario.describe(), "episodes": report.episodes,
            "effective_episodes": report.effective_episodes, "ppo_steps": ppo_steps, "seeds": seeds,
            "reference": reference, "data_seconds": data_seconds, "train_seconds": train_seconds,
            "rows": [vars(row) for row in rows], "mean_over_seeds": [vars(row) for row in seed_means(rows)]}


def markdown(result: dict[str, Any]) -> str:
    rows = [Row(**row) for row in result["rows"]]
    means = [Row(**row) for row in result["mean_over_seeds"]]
    n = result["effective_episodes"]
    lines = [f"| policy | seed | certainty equivalent (95% CI) | vs {result['reference']} (paired, 95% CI) | t dof | "
             "mean P&L | std P&L | effective episodes |", "|---|---|---|---|---|---|---|---|"]
    lines += [row.markdown() for row in rows if row.reward is None]
    for reward in REWARDS:
        lines += [row.markdown() for row in rows if row.reward == reward]
        lines += [row.markdown() for row in means if row.reward == reward]
    total = sum(result["train_seconds"].values())
    return "\n".join([
        "## Market making: the order-book replay, scored on disjoint held-out windows", "",
        f"`{command_line()}` — {machine()}; one thread. Preset `{PRESET}` (SYNTHETIC: 32.5 h of the sample's "
        f"generator, γ = {result['scenario']['risk_aversion']}); core PPO, {result['ppo_steps']:,} env steps per run, "
        f"{result['seeds']} seed(s) per reward, trained and selected on the training part ({total:.0f} s in all). "
        f"Scored on all {n} disjoint 10-minute held-out windows (effective episodes: {n}), every policy on the same "
        "windows. Intervals: Student t, 95%, over windows (dof n − 1) for single policies, over seeds "
        "(dof s − 1) for the means over seeds.", "",
        *lines,
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ppo-steps", type=int, default=10_000_000, help="env steps per PPO run")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per reward")
    parser.add_argument("--device", default="cpu", help="torch device of training and evaluation")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args()
    if args.seeds < 1 or args.ppo_steps < 1:
        parser.error("--seeds and --ppo-steps must be at least 1")
    torch.set_num_threads(1)
    result = run_benchmark(args.ppo_steps, args.seeds, torch.device(args.device))
    body = markdown(result)
    if not args.no_write:
        write_section("market_making_replay", body)
    print(json.dumps(result, indent=1) if args.json else body)


if __name__ == "__main__":
    main()
