"""Did a refactor move any figure? Run the same workloads on this checkout and on another one,
alternately, and compare: rollout throughput as paired ratios (they hold on a noisy machine where
absolute numbers do not) and trained / evaluated results for exact equality.

The other checkout needs its own virtual environment (``python -m venv``, ``pip install
torch==2.13.0``, ``pip install -e DIR``). Written for the domain contract v2 (compared with commit
e01fe45, where the inventory modules sat at the package's top level: the imports fall back to them)
and extended for v3 (compared with 3cce16d, the last v2 commit): the throughput rows go through
``period_sums`` / ``rollout``, which both versions have (in v3 they are calls of the rollout engine),
and the results cover every trainer the v3 refactor touched (PPO, DQN, pathwise) and every domain's
evaluation, through the names both versions share (``DomainSpec.algo(...).train``, ``episode_metrics``).

    python -m benchmarks.contract_check --against /tmp/oldvenv/bin/python --cwd /tmp/old --rounds 6
    python -m benchmarks.contract_check --workload results      # one workload, printed as JSON
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

BATCHES = (1024, 65536)


def _single_store():  # noqa: ANN202 - modules of either layout
    try:
        from decisionlab.domains.inventory.single_store import metrics, policies, scenario, sim, train
    except ImportError:  # the layout before the domain contract v2
        from decisionlab.domains.inventory import metrics, policies, scenario, sim, train
    return scenario, sim, policies, train, metrics


def _rollout_module():  # noqa: ANN202 - the engine (v3) or the rollout module (v2)
    try:
        from decisionlab.core import engine
    except ImportError:
        from decisionlab.core import rollout as engine  # type: ignore[no-redef]
    return engine


def throughput() -> dict[str, float]:
    """Rollout env-steps/s at each batch, best of 3 windows: single-store base stock through ``period_sums``
    (one cost summed per period), and the market-making AS quotes through ``rollout`` (rewards kept)."""
    scenario, sim_module, policies, _, _ = _single_store()
    engine = _rollout_module()
    sim = sim_module.SingleStoreSim(scenario.LostSalesScenario(), "cpu")
    policy = policies.BaseStockPolicy(15.0)
    out = {}
    for batch in BATCHES:
        periods = max(200, 2_000_000 // batch)
        best = 0.0
        for _ in range(3):
            start = time.perf_counter()
            engine.period_sums(sim, policy, batch, periods, 0, torch.Generator().manual_seed(0),
                               {"cost": lambda info: info["cost"]})
            best = max(best, batch * periods / (time.perf_counter() - start))
        out[f"lost_sales env-steps/s @ {batch:,}"] = best
    from decisionlab.domains.market_making.baselines import AvellanedaStoikov
    from decisionlab.domains.market_making.model.scenario import PRESETS
    from decisionlab.domains.market_making.model.sim import ModelSim

    quoting = ModelSim(PRESETS["avellaneda_stoikov"])
    quotes = AvellanedaStoikov(PRESETS["avellaneda_stoikov"])
    for batch in BATCHES:
        paths = quoting.sample_exogenous(batch, quoting.horizon, torch.Generator().manual_seed(0))
        best = 0.0
        for _ in range(3):
            start = time.perf_counter()
            engine.rollout(quoting, quotes, paths)
            best = max(best, batch * quoting.horizon / (time.perf_counter() - start))
        out[f"avellaneda_stoikov env-steps/s @ {batch:,}"] = best
    return out


def results() -> dict[str, float]:
    """Short training runs and evaluations of every trainer: must be bit-identical across a refactor."""
    cpu = torch.device("cpu")
    scenario, _, _, train, metrics = _single_store()
    from decisionlab.domains.execution.metrics import episode_metrics as execution_metrics
    from decisionlab.domains.execution.scenario import SCENARIOS as EXECUTION
    from decisionlab.domains.execution.train import DEFAULT_SETTINGS, train_pathwise_policy
    from decisionlab.domains.inventory.network.metrics import network_episode_metrics
    from decisionlab.domains.inventory.network.scenario import OneWarehouseScenario
    from decisionlab.domains.inventory.network.train import NetworkHDPOSettings, train_network_hdpo

    out: dict[str, float] = {}
    single = scenario.LostSalesScenario(horizon_periods=500, warmup_periods=100)
    hdpo = train.train_hdpo(single, 0, cpu, False, train.HDPOSettings.preset("fast", max_steps=60))
    out["single-store HDPO held-out cost"] = hdpo.metrics["cost_per_period"]
    out["single-store HDPO evaluated cost"] = float(metrics.episode_metrics(single, hdpo.policy, 16, 3, cpu)
                                                    ["cost_per_period"].mean())
    network = OneWarehouseScenario(n_stores=3, horizon_periods=300, warmup_periods=50)
    settings = NetworkHDPOSettings.preset(network, max_steps=30, eval_every=15, eval_paths=64)
    trained = train_network_hdpo(network, 0, cpu, False, settings)
    out["one_warehouse HDPO held-out cost"] = trained.metrics["cost_per_period"]
    out["one_warehouse HDPO evaluated cost"] = float(network_episode_metrics(network, trained.policy, 8, 1, cpu)
                                                     ["cost_per_period"].mean())
    latent = EXECUTION["latent_liquidity"]
    quick = DEFAULT_SETTINGS.model_copy(update={"max_steps": 20, "train_paths": 4096, "eval_paths": 4096})
    pathwise = train_pathwise_policy(latent, 0, cpu, False, quick)
    out["execution pathwise held-out ratio"] = pathwise.metrics["objective_vs_static_expected"]
    out["execution pathwise evaluated objective"] = float(
        execution_metrics(latent, pathwise.policy, 2000, 1, cpu)["mean_variance_objective"].mean())
    out.update(v3_results())
    return out


def v3_results() -> dict[str, float]:
    """What contract v3 rewired: PPO (spaces, the reshaped reward, obs scales), DQN (spaces, terminations),
    the engine behind the market-making and ride-hailing KPIs, integer ride-hailing actions."""
    from decisionlab.core.spec import get_domain

    cpu = torch.device("cpu")
    out: dict[str, float] = {}
    making = get_domain("market_making")
    short = making.scenario("glft_bounded", {"horizon": 0.25})
    for reward in ("mean_variance", "dampened"):
        ppo = making.algo("ppo").train(short, seed=0, device=cpu, options={
            "reward": reward, "num_envs": 256, "rollout_steps": 16, "total_env_steps": 256 * 16 * 8,
            "eval_paths": 512, "eval_every": 256 * 16 * 4})
        out[f"market_making PPO ({reward}) held-out CE"] = ppo.metrics["certainty_equivalent"]
        # the curve reflects every update (the held-out CE may stay the initial policy's on so short a run)
        out[f"market_making PPO ({reward}) mean episode return"] = float(ppo.curve["episode_return"].drop_nans().mean())
        out[f"market_making PPO ({reward}) value loss summed"] = float(ppo.curve["value_loss"][1:].sum())
    setting = making.setting_of(short)
    for name in ("glft", "avellaneda_stoikov"):
        values = setting.episode_metrics(short, making.policy(name).build(short, cpu), 512, 3, cpu)
        out[f"market_making {name} evaluated CE"] = float(setting.finalize_metrics(short, values)
                                                          ["certainty_equivalent"].mean())
    execution = get_domain("execution")
    ddqn = execution.algo("ddqn").train(execution.scenario("almgren_chriss"), seed=0, device=cpu, options={
        "total_env_steps": 6000, "num_envs": 32, "eval_paths": 1024})
    out["execution DDQN held-out ratio"] = ddqn.metrics["objective_vs_static_expected"]
    out["execution DDQN weights summed"] = float(sum(v.double().sum() for v in ddqn.policy.state_dict().values()))
    rides = get_domain("ride_hailing")
    city = rides.scenario("city_small", {"horizon_hours": 1.0})
    for name in ("nearest+reposition", "fare_matching"):
        kpis = rides.setting_of(city).episode_metrics(city, rides.policy(name).build(city, cpu), 4, 5, cpu)
        out[f"ride_hailing {name} total income"] = float(kpis["total_income"].mean())
        out[f"ride_hailing {name} answer rate"] = float(kpis["answer_rate"].mean())
    return out


WORKLOADS = {"throughput": throughput, "results": results}


def run(python: str, cwd: str, workload: str) -> dict[str, float]:
    """This file's ``workload`` under ``python`` (whose venv has the checkout at ``cwd`` installed)."""
    done = subprocess.run([python, str(Path(__file__).resolve()), "--workload", workload], cwd=cwd,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), help="run one workload here, print JSON")
    parser.add_argument("--against", help="python of the other checkout's venv")
    parser.add_argument("--cwd", help="the other checkout")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.workload:
        print(json.dumps(WORKLOADS[args.workload]()))
        return
    if not (args.against and args.cwd):
        parser.error("give --workload, or --against and --cwd")
    here = str(Path(__file__).resolve().parents[1])
    ratios: dict[str, list[float]] = {}
    for _ in range(args.rounds):  # A B A B ...: pairing keeps the ratio meaningful while the machine drifts
        mine, theirs = run(sys.executable, here, "throughput"), run(args.against, args.cwd, "throughput")
        for key in mine:
            ratios.setdefault(key, []).append(mine[key] / theirs[key])
    mine, theirs = run(sys.executable, here, "results"), run(args.against, args.cwd, "results")
    lines = ["| figure | this checkout / the other (median of paired runs) | min | max |", "|---|---|---|---|"]
    lines += [f"| {k} | {statistics.median(v):.3f} | {min(v):.3f} | {max(v):.3f} |" for k, v in ratios.items()]
    lines += ["", "| result | this checkout | the other | identical |", "|---|---|---|---|"]
    lines += [f"| {k} | {mine[k]:.10g} | {theirs[k]:.10g} | {'yes' if mine[k] == theirs[k] else 'NO'} |" for k in mine]
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        from benchmarks.report import write_section

        write_section("contract-check", "## Refactor check: throughput ratios and identical results\n\n"
                      f"{args.rounds} alternating rounds against `{args.cwd}`.\n\n" + table)


if __name__ == "__main__":
    main()
