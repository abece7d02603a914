"""Train a policy for a domain scenario and register it (weights, card, curve) in one call."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from decisionlab.core.errors import RegistryError
from decisionlab.core.options import TrainContext
from decisionlab.core.scenario import resolve_options
from decisionlab.core.spec import DomainSpec, TrainOutcome
from decisionlab.core.store.registry import NAME_PATTERN, PolicyRecord, PolicyRegistry
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


def check_policy_name(name: str) -> str:
    """``name`` if it is a valid registry name (1-64 letters, digits, '_', '.', '-', not starting
    with a symbol), else a ``RegistryError`` saying so."""
    if not NAME_PATTERN.match(name):
        raise RegistryError(
            f"policy name '{name}' is not a valid registry name: use 1-64 characters of letters, digits, '_', '.', "
            "'-', starting with a letter or digit"
        )
    return name


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
    """Validate everything first (scenario, algorithm, options, name; so a mistake fails before
    minutes of training), train, then write the policy and the run record."""
    scenario = domain.scenario(scenario_name, overrides)
    setting = domain.setting_of(scenario)
    algo = domain.algo(algo_name).spec_for(scenario)
    name = check_policy_name(f"{algo_name}_{scenario_name}" if name is None else name)
    chosen = resolve_options(algo.options_model, dict(options or {}), f"{algo_name} option")
    registry = registry or PolicyRegistry()
    registry.check_writable()  # before training: a policy that cannot be saved is not trained
    start = time.perf_counter()
    outcome = algo.train(scenario, chosen, TrainContext(int(seed), device, progress))
    seconds = time.perf_counter() - start
    kind = str(outcome.policy_config.get("kind"))
    if kind not in setting.policy_kinds:
        raise TypeError(f"algorithm {algo_name} produced a {kind!r} policy, not a kind of setting {setting.name!r}")
    card = {
        "setting": setting.name,
        "scenario_name": scenario_name,
        "scenario": scenario.describe(),
        "algo": algo_name,
        "algo_options": chosen.model_dump(mode="json", exclude_none=True),
        "algo_config": outcome.algo_config,
        "policy_kind": kind,
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
