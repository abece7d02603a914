"""Train a policy for a domain scenario and register it (weights, card, curve) in one call."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from decisionlab.core.spec import DomainSpec, TrainOutcome
from decisionlab.core.store.registry import PolicyRecord, PolicyRegistry
from decisionlab.core.store.runs import RunStore


@dataclass
class TrainReport:
    record: PolicyRecord
    outcome: TrainOutcome
    train_seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "policy_ref": str(self.record.ref),
            "metrics": self.outcome.metrics,
            "train_seconds": self.train_seconds,
        }


def code_version() -> str:
    """The git commit of the running code, or 'unknown' outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def train_and_register(
    domain: DomainSpec,
    scenario_name: str,
    overrides: Mapping[str, Any],
    algo_name: str,
    *,
    seed: int,
    name: str | None,
    device: torch.device,
    progress: bool,
    options: Mapping[str, Any] | None = None,
    registry: PolicyRegistry | None = None,
    runs: RunStore | None = None,
) -> TrainReport:
    """Validate everything first (so a bad name fails before minutes of training), then train,
    then write the policy and the run record."""
    scenario = domain.scenario(scenario_name, overrides)
    algo = domain.algo(algo_name)
    registry = registry or PolicyRegistry()
    name = name or f"{algo_name}_{scenario_name}"
    from decisionlab.core.store.registry import NAME_PATTERN, RegistryError

    if not NAME_PATTERN.match(name):
        raise RegistryError(f"policy name '{name}' must be 1-64 characters of letters, digits, '_', '.', '-'")
    start = time.perf_counter()
    options = dict(options or {})
    if algo.options_model is not None:  # fail on a bad option before any training
        from decisionlab.core.scenario import resolve_options

        resolve_options(algo.options_model, options, f"{algo_name} option")
    outcome = algo.train(scenario, seed, device, progress, options)
    seconds = time.perf_counter() - start
    card = {
        "scenario_name": scenario_name,
        "scenario": scenario.describe(),
        "algo": algo_name,
        "algo_options": options,
        "algo_config": outcome.algo_config,
        "policy_config": outcome.policy_config,
        "metrics": outcome.metrics,
        "seed": seed,
        "train_seconds": seconds,
        "code_version": code_version(),
    }
    record = registry.save(domain.name, name, outcome.policy.state_dict(), card)
    (runs or RunStore(registry.home)).record(
        domain.name, "train", str(record.ref), card, outcome.metrics,
        {"curve": outcome.curve} if outcome.curve is not None else None,
    )
    return TrainReport(record, outcome, seconds)
