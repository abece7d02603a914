"""Simulator throughput: batched torch stepping vs the gymnasium adapter one env at a time.

Each measurement runs a base-stock policy and the single-store lost-sales step for a fixed
number of periods and reports env-steps/s (environments × periods / seconds). The headline is
the ratio between the batched simulator and the same simulator behind the gymnasium API.

    python benchmarks/inventory_throughput.py [--threads 1 2] [--batches 1 1024 65536]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from benchmarks.report import write_section
from decisionlab.core.engine import run
from decisionlab.core.gym import SimulatorEnv, to_normalized_action
from decisionlab.domains.inventory.single_store.policies import BaseStockPolicy
from decisionlab.domains.inventory.single_store.scenario import LostSalesScenario
from decisionlab.domains.inventory.single_store.sim import SingleStoreSim


def batched_steps_per_second(batch: int, device: str, min_seconds: float = 1.0) -> float:
    sim = SingleStoreSim(LostSalesScenario(lead_time=2), device)
    policy = BaseStockPolicy(14.0)
    periods = 64
    demand = sim.sample_exogenous(batch, periods, torch.Generator(device=device).manual_seed(0))
    state = sim.reset(batch)
    steps, start = 0, time.perf_counter()
    while True:
        state = run(sim, policy, state=state, exogenous=demand).final_state
        steps += batch * periods
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if time.perf_counter() - start >= min_seconds:
            return steps / (time.perf_counter() - start)


def gym_steps_per_second(min_seconds: float = 1.0) -> float:
    sim = SingleStoreSim(LostSalesScenario(lead_time=2), "cpu")
    env = SimulatorEnv(sim, 1000)
    policy = BaseStockPolicy(14.0)
    obs, _ = env.reset(seed=0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds:
        order = policy.act(torch.as_tensor(obs[None]))
        action = to_normalized_action(sim, order).numpy().astype(np.float32)
        obs, _, _, truncated, _ = env.step(action)
        if truncated:
            obs, _ = env.reset()
        steps += 1
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 1024, 65536])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        gym_rate = gym_steps_per_second(args.seconds)
        rows.append(("gymnasium adapter, 1 env", "cpu", threads, 1, gym_rate))
        for device in devices:
            for batch in args.batches:
                rate = batched_steps_per_second(batch, device, args.seconds)
                rows.append(("batched torch step", device, threads, batch, rate))
    best_gym = max(r[4] for r in rows if r[0].startswith("gym"))
    lines = [
        "| path | device | torch threads | batch | env-steps/s | vs gymnasium adapter |",
        "|---|---|---|---|---|---|",
    ]
    for path, device, threads, batch, rate in rows:
        lines.append(f"| {path} | {device} | {threads} | {batch:,} | {rate:,.0f} | {rate / best_gym:,.1f}× |")
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        body = (
            "## Inventory simulator throughput (single store, lost sales, L = 2, base-stock policy)\n\n"
            "Env-steps/s = environments × periods / wall seconds, policy included. The gymnasium row steps one\n"
            "environment at a time through `SimulatorEnv` (what SB3 sees).\n\n" + table
        )
        write_section("inventory-throughput", body)


if __name__ == "__main__":
    main()
