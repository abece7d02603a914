"""Sweeps: a grid of algorithm options x training seeds, each trial a registered training scored on the
same held-out episodes; a table over seeds per configuration; the best configuration promoted.

A trial is one :func:`~decisionlab.core.training.train_and_register` (every trial is a version of the
sweep's policy name), then an evaluation of that policy on ``episodes`` episodes of ``eval_seed``
(common random numbers: every trial is scored on the same episodes). Its metrics are those episode
means, so a trial's result is a function of its configuration and seed alone: the local and the Ray
backend (``core/sweep_ray.py``) give the same numbers.

The ledger (``<data dir>/sweeps/<name>/``: ``plan.json`` and one JSON line per finished trial) is the
record both backends resume from: a trial in it is never trained again, so a sweep killed halfway and
started again trains only what is missing. A sweep name holds one plan; another plan under the same
name is refused rather than mixed into its table.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from decisionlab.core.errors import DecisionlabError, ScenarioError
from decisionlab.core.ray_backend import applied_env
from decisionlab.core.scenario import parse_overrides, resolve_options
from decisionlab.core.store.atomic import atomic_write_bytes, file_lock
from decisionlab.core.store.home import data_home

LEDGER = "trials.jsonl"
PLAN = "plan.json"


@dataclass(frozen=True)
class Trial:
    """One training of a sweep: the grid's ``config`` (algorithm options) with one ``seed``."""

    index: int
    config: dict[str, Any]
    seed: int

    @property
    def key(self) -> str:
        return json.dumps({"config": self.config, "seed": self.seed}, sort_keys=True, default=str)


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep trains and how it scores: everything a trial needs, on any machine."""

    name: str
    domain: str
    scenario: str
    algo: str
    grid: dict[str, list[Any]]
    seeds: list[int]
    overrides: dict[str, Any] = field(default_factory=dict)  # scenario parameters (--set)
    options: dict[str, Any] = field(default_factory=dict)  # algorithm options every trial shares (--algo-set)
    episodes: int = 64  # held-out episodes each trial is scored on
    eval_seed: int = 1_000_003  # their seed: not a training seed of the sweep

    def configs(self) -> list[dict[str, Any]]:
        """The grid's configurations, in the order of its keys and values."""
        keys = list(self.grid)
        return [dict(zip(keys, values, strict=True)) for values in itertools.product(*self.grid.values())]

    def trials(self) -> list[Trial]:
        """Every (configuration, seed), configurations outermost."""
        pairs = itertools.product(self.configs(), self.seeds)
        return [Trial(i, config, seed) for i, (config, seed) in enumerate(pairs)]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def digest(self) -> str:
        text = json.dumps(self.to_json(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["learning_rate=0.003,0.01", "hidden=32,64"]`` → ``{"learning_rate": [0.003, 0.01], ...}``; values
    are parsed as ``--set`` parses them (JSON where they can be)."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise ScenarioError(f"--grid: '{item}' must look like key=value1,value2")
        if key in grid:
            raise ScenarioError(f"--grid: '{key}' is given twice; list all its values once: {key}=a,b,c")
        values = [parse_overrides([f"{key}={part}"])[key] for part in raw.split(",")]
        if len({json.dumps(v, sort_keys=True, default=str) for v in values}) < len(values):
            raise ScenarioError(f"--grid: '{key}' lists a value twice")
        grid[key] = values
    if not grid:
        raise ScenarioError("--grid: give at least one key=value1,value2")
    return grid


def check_plan(plan: SweepPlan) -> None:
    """Refuse before any training: an unknown domain, scenario or algorithm, a grid key the algorithm does
    not take or a value it refuses, no seeds, or a policy name the registry would refuse."""
    from decisionlab.core.spec import get_domain
    from decisionlab.core.training import check_policy_name

    spec = get_domain(plan.domain)
    scenario = spec.scenario(plan.scenario, plan.overrides)
    algo = spec.algo(plan.algo).spec_for(scenario)
    clash = sorted(set(plan.grid) & set(plan.options))
    if clash:
        raise ScenarioError(f"--grid: {', '.join(clash)} also given with --algo-set; give each option once")
    for config in plan.configs():
        resolve_options(algo.options_model, {**plan.options, **config}, f"{plan.algo} option")
    if not plan.seeds:
        raise ScenarioError("--seeds: give at least 1 seed")
    if plan.episodes < 1:
        raise ScenarioError(f"--episodes: must be >= 1, got {plan.episodes}")
    check_policy_name(plan.name)


def run_trial(plan: SweepPlan, trial: Trial, env: Mapping[str, str]) -> dict[str, Any]:
    """Train ``trial``, register it, score it on the plan's held-out episodes. ``env``: the driver's
    decisionlab settings (where the registry is), applied around the work (see ``core.ray_backend``)."""
    with applied_env(env):
        from decisionlab.core.device import configure_threads, get_device
        from decisionlab.core.evaluation import evaluate_policies
        from decisionlab.core.resolve import build_policy
        from decisionlab.core.spec import get_domain
        from decisionlab.core.training import train_and_register

        configure_threads()
        device = get_device()
        spec = get_domain(plan.domain)
        report = train_and_register(spec, plan.scenario, plan.overrides, plan.algo, seed=trial.seed, name=plan.name,
                                    device=device, progress=False, options={**plan.options, **trial.config})
        ref = str(report.record.ref)
        scenario = spec.scenario(plan.scenario, plan.overrides)
        setting = spec.setting_of(scenario)
        scored = evaluate_policies(spec, scenario, [build_policy(spec, scenario, ref, device)],
                                   episodes=plan.episodes, seed=plan.eval_seed, device=device)
        values = scored.per_episode[scored.labels[0]]
        metrics = {name: float(np.mean(values[name])) for name, metric in setting.metrics.items()
                   if name in values and not metric.measured}  # wall-clock metrics differ run to run
    return {"index": trial.index, "config": trial.config, "seed": trial.seed, "metrics": metrics,
            "policy_ref": ref, "train_seconds": report.train_seconds}


class SweepLedger:
    """The finished trials of sweep ``name`` in a data dir, safe to append to from many processes."""

    def __init__(self, name: str, home: Path | None = None) -> None:
        self.folder = data_home(home) / "sweeps" / name

    @property
    def tune_folder(self) -> Path:
        """Where Ray Tune keeps this sweep's experiment (for ``Tuner.restore``)."""
        return self.folder / "tune"

    def open(self, plan: SweepPlan) -> None:
        """Write the plan, or check that the sweep already there has the same one."""
        path = self.folder / PLAN
        with file_lock(self.folder / ".lock"):
            if path.is_file():
                found = json.loads(path.read_text())
                if found.get("digest") != plan.digest():
                    raise DecisionlabError(
                        f"--name: a sweep named '{plan.name}' with another plan exists in {self.folder} (started "
                        f"with {found.get('plan', {}).get('grid')} over seeds {found.get('plan', {}).get('seeds')}): "
                        "rerun it with the same arguments to resume it, or choose another --name")
                return
            atomic_write_bytes(path, json.dumps({"digest": plan.digest(), "plan": plan.to_json()},
                                                default=str).encode())

    def finished(self) -> dict[str, dict[str, Any]]:
        """``{trial key: result}`` of every trial recorded (a torn last line, from a kill, is ignored)."""
        path = self.folder / LEDGER
        done: dict[str, dict[str, Any]] = {}
        if not path.is_file():
            return done
        for line in path.read_text().splitlines():
            try:
                result = json.loads(line)
            except json.JSONDecodeError:
                continue
            done[Trial(result["index"], result["config"], result["seed"]).key] = result
        return done

    def record(self, result: Mapping[str, Any]) -> None:
        """Append one finished trial (one line, written whole under the lock)."""
        line = json.dumps(dict(result), default=float) + "\n"
        self.folder.mkdir(parents=True, exist_ok=True)
        with file_lock(self.folder / ".lock"), open(self.folder / LEDGER, "a") as out:
            out.write(line)
            out.flush()


@dataclass
class SweepReport:
    """A finished sweep: every trial, the table over seeds, the best configuration."""

    plan: SweepPlan
    backend: str
    trials: list[dict[str, Any]]
    primary: str
    better: str
    trained: int  # trials trained by this run (the rest came from the ledger)
    best: dict[str, Any] | None = None

    def table(self) -> list[dict[str, Any]]:
        """One row per configuration: seeds, and each metric's mean and 95% t-interval over the seeds."""
        from decisionlab.core.evaluation import mean_ci95

        rows = []
        for config in self.plan.configs():
            mine = [t for t in self.trials if t["config"] == config]
            row: dict[str, Any] = {"config": config, "seeds": len(mine)}
            for name in mine[0]["metrics"] if mine else ():
                mean, half = mean_ci95(np.array([t["metrics"][name] for t in mine]))
                row[name] = {"mean": mean, "ci95": half}
            rows.append(row)
        return rows

    def to_json(self) -> dict[str, Any]:
        return {"sweep": self.plan.name, "domain": self.plan.domain, "scenario": self.plan.scenario,
                "algo": self.plan.algo, "backend": self.backend, "primary_metric": self.primary,
                "better": self.better, "trained": self.trained, "trials": self.trials, "table": self.table(),
                "best": self.best}


def best_trial(trials: Sequence[Mapping[str, Any]], primary: str, better: str) -> Mapping[str, Any]:
    """The best seed of the configuration whose mean ``primary`` over its seeds is best."""
    sign = 1.0 if better == "higher" else -1.0
    by_config: dict[str, list[Mapping[str, Any]]] = {}
    for trial in trials:
        by_config.setdefault(json.dumps(trial["config"], sort_keys=True, default=str), []).append(trial)

    def score(group: Sequence[Mapping[str, Any]]) -> float:
        value = float(np.mean([t["metrics"][primary] for t in group]))
        return sign * value if math.isfinite(value) else -math.inf

    group = max(by_config.values(), key=score)  # first best on ties: the grid's order
    return max(group, key=lambda t: sign * t["metrics"][primary])
