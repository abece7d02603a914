"""Throughput of every inventory setting: simulator env-steps/s at batch 1k and 64k, and HDPO
gradient steps/s per policy architecture.

Env-steps/s = environments × periods / wall seconds, policy included: an order-up-to policy on
the setting's natural position (local for single stores, echelon for networks; levels set to the
typical position, no search), no gradient. Gradient steps/s: one HDPO step = a 32-period window
of 256 environments forward through the policy and the simulator, backward, Adam update (the
network trainers' default window and batch).

    python -m benchmarks.inventory_settings_throughput                  # every setting, 1 thread
    python -m benchmarks.inventory_settings_throughput --batches 1024 --settings backlog,serial --no-write
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from benchmarks.report import write_section
from decisionlab.core.engine import run
from decisionlab.core.seeding import make_generator
from decisionlab.domains.inventory.network.policies import LevelPolicy
from decisionlab.domains.inventory.network.scenario import (
    BacklogScenario,
    MultiWarehouseScenario,
    NetworkScenario,
    OneWarehouseScenario,
    SerialScenario,
    TransshipmentScenario,
)
from decisionlab.domains.inventory.network.sim import NetworkSim
from decisionlab.domains.inventory.network.train import NetworkHDPOSettings, make_network_policy, window_costs
from decisionlab.domains.inventory.series.policies import SeriesBaseStock
from decisionlab.domains.inventory.series.scenario import RealSeriesScenario
from decisionlab.domains.inventory.series.sim import SeriesSim
from decisionlab.domains.inventory.single_store.policies import BaseStockPolicy
from decisionlab.domains.inventory.single_store.scenario import LostSalesScenario
from decisionlab.domains.inventory.single_store.sim import SingleStoreSim

NETWORKS: dict[str, NetworkScenario] = {
    "backlog": BacklogScenario(),
    "serial": SerialScenario(),
    "one_warehouse_10": OneWarehouseScenario(n_stores=10),
    "one_warehouse_50": OneWarehouseScenario(n_stores=50),
    "transshipment": TransshipmentScenario(),
    "multi_warehouse": MultiWarehouseScenario(),
}
SETTINGS = ("lost_sales", *NETWORKS, "real_series")
PERIODS = 32


def _timed(run: Callable[[], int], device: torch.device, min_seconds: float) -> float:
    """Units per second of ``run`` (which returns how many units it did), repeated for ``min_seconds``."""
    run()  # warm-up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds:
        done += run()
        if device.type == "cuda":
            torch.cuda.synchronize()
    return done / (time.perf_counter() - start)


@torch.no_grad()
def env_steps_per_second(setting: str, batch: int, device: torch.device, min_seconds: float) -> float:
    gen = make_generator(0, device)
    if setting == "lost_sales":
        sim = SingleStoreSim(LostSalesScenario(), device)
        policy = BaseStockPolicy(sim.scenario.demand_mean * (sim.scenario.lead_time + 1.5))
    elif setting == "real_series":
        sim = SeriesSim(RealSeriesScenario(), device, split="train")
        policy = SeriesBaseStock(sim.scale * (sim.lead_time + 1.5), per="series")  # typical cover per series
    else:
        sim = NetworkSim(NETWORKS[setting], device)
        kind = "echelon" if sim.has_internal_links else "local"
        policy = LevelPolicy(sim, sim.typical_position(kind), kind)
    state0 = sim.reset(batch, gen)
    demand = sim.sample_exogenous(batch, PERIODS, gen)

    def rollout() -> int:
        run(sim, policy, state=state0, exogenous=demand)
        return batch * PERIODS

    return _timed(rollout, device, min_seconds)


def gradient_steps_per_second(setting: str, architecture: str, device: torch.device, min_seconds: float) -> float:
    sim = NetworkSim(NETWORKS[setting], device)
    sim.diagnostics = False
    settings = NetworkHDPOSettings(architecture=architecture)
    policy = make_network_policy(sim, settings)
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-3)
    gen = make_generator(0, device)
    start_state = sim.random_state(settings.batch_size, gen)

    def run() -> int:
        demand = sim.sample_exogenous(settings.batch_size, PERIODS, gen)
        costs, _ = window_costs(sim, policy, demand, start_state, sim.topology.longest_lead_path())
        optimizer.zero_grad()
        costs.mean().backward()
        optimizer.step()
        return 1

    return _timed(run, device, min_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--batches", type=int, nargs="+", default=[1024, 65536])
    parser.add_argument("--architectures", default="vanilla,symmetry,gnn")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    settings = [s for s in args.settings.split(",") if s]
    archs = [a for a in args.architectures.split(",") if a]
    header = ["setting", *(f"env-steps/s @ {b:,}" for b in args.batches), *(f"HDPO steps/s ({a})" for a in archs)]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for setting in settings:
        cells = [f"{env_steps_per_second(setting, b, device, args.seconds):,.0f}" for b in args.batches]
        for arch in archs:
            cells.append("—" if setting not in NETWORKS else
                         f"{gradient_steps_per_second(setting, arch, device, args.seconds):.1f}")
        lines.append(f"| {setting} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        body = (f"## Inventory: throughput of every setting ({device.type}, {args.threads} torch thread(s))\n\n"
                "Env-steps/s: an order-up-to policy at typical levels, no gradient, 32-period windows. HDPO "
                "steps/s: one 32-period window of 256 environments forward + backward + Adam (network settings; "
                "the single-store and real_series trainers are timed in their own sections).\n\n" + table)
        write_section("inventory-settings-throughput", body)


if __name__ == "__main__":
    main()
