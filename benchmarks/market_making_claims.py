"""Market-making claims against fair baselines: learned quotes against the best *informed* closed form and
the exact optimum, over several training seeds.

For each model preset (``glft_bounded``, ``trending``, ``mean_reverting``, ``jumpy``):

- every closed form, each calibrated on the mid's total return volatility (jumps included): the plain
  ones (Avellaneda–Stoikov, GLFT exact, GLFT approximation) and the informed ones that also read the
  drift and the mean reversion the scenario states (``avellaneda_stoikov_informed``, ``glft_drift``,
  ``glft_approx_drift``); their exact certainty equivalent by the recursion where the mid does not revert;
- ``dp_optimal``, the discrete market's exact optimum, where it exists (no mean reversion);
- pathwise and core PPO (mean–variance reward), one training per seed.

The reference of every comparison is the best informed closed form, chosen before the evaluation (by its
exact certainty equivalent, or by a pilot evaluation on other episodes where the mid reverts). Every
policy is evaluated on the same fresh episodes (paired), with t-intervals; a learner's claim is read from
the t-interval of its paired difference across training seeds (n − 1 degrees of freedom).

    python -m benchmarks.market_making_claims [--presets glft_bounded,trending,mean_reverting,jumpy]
        [--seeds 3] [--ppo-steps 20000000] [--episodes 20000] [--json] [--no-write] [--save FILE]
    python -m benchmarks.market_making_claims --render FILE [FILE ...]   # the section from saved runs

``--save`` keeps a run's results (JSON) so that presets run in parallel processes can be written as one
section with ``--render``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from benchmarks.report import command_line, machine, write_section
from decisionlab.core.evaluation import evaluate_policies, mean_ci95
from decisionlab.core.options import TrainContext
from decisionlab.core.policy import Policy
from decisionlab.domains.market_making import SPEC, _model_sim
from decisionlab.domains.market_making.model.recursion import exact_statistics
from decisionlab.domains.market_making.model.scenario import ModelScenario
from decisionlab.domains.market_making.train import (
    QuotingPathwiseSettings,
    QuotingPPOSettings,
    train_pathwise_quoter,
    train_ppo_quoter,
)

CPU = torch.device("cpu")
PRESETS = ("glft_bounded", "trending", "mean_reverting", "jumpy")
PLAIN = ("avellaneda_stoikov", "glft", "glft_approx")
INFORMED = ("avellaneda_stoikov_informed", "glft_drift", "glft_approx_drift")
EVAL_SEED, PILOT_SEED = 20261206, 77
CE = "certainty_equivalent"


def closed_forms(scenario: ModelScenario) -> dict[str, Policy]:
    """Every plain and informed closed form (and ``dp_optimal``) that can serve ``scenario``, by name."""
    setting = SPEC.setting_of(scenario)
    built = {}
    # without drift or reversion the informed forms are the plain ones: leave the copies out
    informed = INFORMED if scenario.drift != 0 or scenario.mean_reversion != 0 else ()
    for name in (*PLAIN, *informed, "dp_optimal"):
        spec = setting.policies[name]
        if spec.problem(scenario) is None:
            built[name] = spec.build(scenario, CPU)
    return built


def exact_scores(scenario: ModelScenario, policies: dict[str, Policy]) -> dict[str, float]:
    """Exact certainty equivalents by the recursion (closed forms read (t, q) only when κ = 0)."""
    if not scenario.recursion_exact:
        return {}
    return {name: exact_statistics(scenario, policy).certainty_equivalent for name, policy in policies.items()}


def best_informed(scenario: ModelScenario, policies: dict[str, Policy], exact: dict[str, float]) -> str:
    """The best closed form (plain or informed), chosen on the exact score or on pilot episodes."""
    candidates = [n for n in (*PLAIN, *INFORMED) if n in policies]
    if exact:
        return max(candidates, key=lambda n: exact[n])
    pilot = evaluate_policies(SPEC, scenario, [(n, policies[n]) for n in candidates], episodes=4096,
                              seed=PILOT_SEED, device=CPU)
    rows = pilot.table().filter(metric=CE)
    return str(rows.sort("mean", descending=True)["policy"][0])


def train_learners(scenario: ModelScenario, seeds: int, ppo_steps: int) -> tuple[dict[str, Policy], dict]:
    """``pathwise@s`` and ``ppo@s`` for each seed s, and their training seconds."""
    learned: dict[str, Policy] = {}
    seconds: dict[str, float] = {}
    for seed in range(seeds):
        start = time.perf_counter()
        outcome = train_pathwise_quoter(scenario, QuotingPathwiseSettings(), TrainContext(seed, CPU, False),
                                        _model_sim)
        learned[f"pathwise@{seed}"], seconds[f"pathwise@{seed}"] = outcome.policy, time.perf_counter() - start
        start = time.perf_counter()
        settings = QuotingPPOSettings(reward="mean_variance", total_env_steps=ppo_steps)
        outcome = train_ppo_quoter(scenario, settings, TrainContext(seed, CPU, False), _model_sim)
        learned[f"ppo@{seed}"], seconds[f"ppo@{seed}"] = outcome.policy, time.perf_counter() - start
        print(f"  seed {seed}: pathwise {seconds[f'pathwise@{seed}']:.0f} s, ppo {seconds[f'ppo@{seed}']:.0f} s",
              flush=True)
    return learned, seconds


def paired(report: Any, label: str, reference: str) -> tuple[float, float]:
    """Paired CE difference ``label − reference`` and its 95% t half-width."""
    values = report.per_episode[label][CE] - report.per_episode[reference][CE]
    return mean_ci95(values)


def across_seeds(values: list[float]) -> tuple[float, float]:
    """Mean and 95% t half-width over training seeds (n − 1 degrees of freedom)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size < 2:
        return float(array.mean()), float("nan")
    half = stats.t.ppf(0.975, array.size - 1) * array.std(ddof=1) / np.sqrt(array.size)
    return float(array.mean()), float(half)


def verdict(mean: float, half: float) -> str:
    if not np.isfinite(half):
        return "one seed: no claim"
    if mean - half > 0:
        return "beats"
    if mean + half < 0:
        return "below"
    return "no significant difference"


def run_preset(name: str, seeds: int, ppo_steps: int, episodes: int) -> dict[str, Any]:
    scenario = SPEC.scenario(name)
    assert isinstance(scenario, ModelScenario)
    forms = closed_forms(scenario)
    exact = exact_scores(scenario, forms)
    reference = best_informed(scenario, forms, exact)
    print(f"{name}: reference {reference}; exact {json.dumps({k: round(v, 3) for k, v in exact.items()})}", flush=True)
    learned, seconds = train_learners(scenario, seeds, ppo_steps)
    ordered = [(reference, forms[reference])] + [(n, p) for n, p in forms.items() if n != reference]
    report = evaluate_policies(SPEC, scenario, ordered + list(learned.items()), episodes=episodes, seed=EVAL_SEED,
                               device=CPU)
    table = report.table()
    rows = []
    for label in report.labels:
        part = {r["metric"]: r for r in table.filter(policy=label).iter_rows(named=True)}
        diff, half = paired(report, label, reference)
        row = {"policy": label, "certainty_equivalent": part[CE]["mean"], "ci95": part[CE]["ci95"],
               "exact": exact.get(label), "vs_reference": diff, "vs_reference_ci95": half,
               "mean_pnl": part["mean_pnl"]["mean"], "std_pnl": part["std_pnl"]["mean"],
               "std_terminal_inventory": part["std_terminal_inventory"]["mean"]}
        if "dp_optimal" in forms:
            gap, gap_half = paired(report, label, "dp_optimal")
            row.update(vs_dp=gap, vs_dp_ci95=gap_half)
        rows.append(row)
    summary = []
    for algo in ("pathwise", "ppo"):
        labels = [f"{algo}@{s}" for s in range(seeds)]
        diffs = [paired(report, label, reference)[0] for label in labels]
        mean, half = across_seeds(diffs)
        entry = {"learner": algo, "seeds": seeds, "vs_reference": mean, "vs_reference_t95": half,
                 "verdict": verdict(mean, half), "train_seconds": float(np.mean([seconds[x] for x in labels]))}
        if "dp_optimal" in forms:
            gaps = [paired(report, label, "dp_optimal")[0] for label in labels]
            optimum = exact["dp_optimal"]
            entry.update(vs_dp=float(np.mean(gaps)), vs_dp_percent=100 * float(np.mean(gaps)) / optimum,
                         worst_vs_dp_percent=100 * min(gaps) / optimum)
        summary.append(entry)
    return {"preset": name, "reference": reference, "exact": exact, "policies": rows, "learners": summary,
            "episodes": episodes, "ppo_steps": ppo_steps}


def _number(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def markdown(result: dict[str, Any]) -> list[str]:
    ref, has_dp = result["reference"], any("vs_dp" in r for r in result["policies"])
    lines = [f"**{result['preset']}** — reference: `{ref}` (the best closed form); {result['episodes']:,} paired "
             "episodes.", "",
             "| policy | certainty equivalent | exact CE | vs reference (paired 95% CI) |"
             + (" vs dp_optimal (paired 95% CI) |" if has_dp else "") + " mean P&L | std P&L | std q_T |",
             "|---|---|---|---|" + ("---|" if has_dp else "") + "---|---|---|"]
    for r in result["policies"]:
        dp = f" {r['vs_dp']:+.3f} ± {r['vs_dp_ci95']:.3f} |" if has_dp else ""
        lines.append(f"| {r['policy']} | {r['certainty_equivalent']:.3f} ± {r['ci95']:.3f} | {_number(r['exact'])} | "
                     f"{r['vs_reference']:+.3f} ± {r['vs_reference_ci95']:.3f} |{dp} {r['mean_pnl']:.3f} | "
                     f"{r['std_pnl']:.3f} | {r['std_terminal_inventory']:.3f} |")
    ppo = f"PPO: mean–variance reward, {result['ppo_steps']:,} env steps"
    lines += ["", f"| learner (pathwise: default settings; {ppo}) | seeds | vs reference, mean over seeds "
              "(95% t-interval) | verdict |"
              + (" gap to dp_optimal, mean (worst seed) |" if has_dp else "") + " training s per seed |",
              "|---|---|---|---|" + ("---|" if has_dp else "") + "---|"]
    for e in result["learners"]:
        dp = f" {e['vs_dp_percent']:+.2f}% ({e['worst_vs_dp_percent']:+.2f}%) |" if has_dp else ""
        lines.append(f"| {e['learner']} | {e['seeds']} | {e['vs_reference']:+.3f} ± {e['vs_reference_t95']:.3f} | "
                     f"{e['verdict']} |{dp} {e['train_seconds']:.0f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--ppo-steps", type=int, default=20_000_000)
    parser.add_argument("--episodes", type=int, default=20_000)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--save", help="also write the results to this JSON file")
    parser.add_argument("--render", nargs="+", help="write the section from saved result files instead of running")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.render:
        results = [r for path in args.render for r in json.loads(Path(path).read_text())["results"]]
    else:
        results = [run_preset(p, args.seeds, args.ppo_steps, args.episodes) for p in args.presets.split(",")]
    if args.save:
        Path(args.save).write_text(json.dumps({"command": command_line(), "results": results}))
    if args.json:
        print(json.dumps({"results": results}))
        return
    runs = sorted({json.loads(Path(path).read_text())["command"] for path in args.render}) if args.render else []
    how = f"`{command_line()}`" + "".join(f", from `{run}`" for run in runs)
    body = [f"{how} — {machine()}; one thread.", ""]
    for result in results:
        body += [*markdown(result), ""]
    text = "\n".join(body)
    if not args.no_write:
        title = "## Market making: learned quotes against the best closed form and the exact optimum"
        write_section("market_making_claims", f"{title}\n\n{text}")
    print(text)


if __name__ == "__main__":
    main()
