"""Sharded evaluation on Ray: the same chunks as the local path (``core/evaluation.py``), spread over workers.

Each worker is a Ray actor that builds every policy once (by name, from the registry or the baselines:
policies travel as names, not as objects) and simulates the chunks it is handed, chunk ``k`` with
``chunk_seed(seed, k)`` as locally. The driver merges the chunks in their order through
:func:`~decisionlab.core.evaluation.merge_chunks`, the local path's merge, so the numbers and the
confidence intervals are those of ``--backend local`` for the same seed. Chunks go to workers round
robin; a worker's chunks queue on it, so at most ``workers`` chunks are in memory at once per worker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from decisionlab.core.evaluation import (
    EvaluationReport,
    check_episodes,
    check_labels,
    check_memory,
    chunk_plan,
    merge_chunks,
    report_of,
    run_chunk,
)
from decisionlab.core.progress import Progress
from decisionlab.core.ray_backend import applied_env, cluster_cpus, connect, forwarded_env
from decisionlab.core.scenario import Scenario
from decisionlab.core.spec import DomainSpec


class ChunkWorker:
    """One worker's policies, built once, and the chunks it simulates (a Ray actor on the cluster)."""

    def __init__(self, domain: str, scenario: Scenario, names: Sequence[str], env: Mapping[str, str]) -> None:
        self.env = dict(env)
        with applied_env(self.env):
            from decisionlab.core.device import configure_threads, get_device
            from decisionlab.core.resolve import build_policy
            from decisionlab.core.spec import get_domain

            configure_threads()
            self.device = get_device()
            self.spec = get_domain(domain)
            self.scenario = scenario
            self.setting = self.spec.setting_of(scenario)
            self.policies = [build_policy(self.spec, scenario, name, self.device) for name in names]

    def labels(self) -> list[str]:
        return [label for label, _ in self.policies]

    def run(self, index: int, start: int, count: int, seed: int) -> list[dict[str, np.ndarray]]:
        """Chunk ``index`` of every policy, in the order of the names."""
        with applied_env(self.env):
            return [run_chunk(self.setting, self.scenario, policy, index, start, count, seed, self.device)
                    for _, policy in self.policies]


def evaluate_on_ray(
    domain: DomainSpec, scenario: Scenario, names: Sequence[str], *, episodes: int, seed: int,
    address: str | None = None, workers: int | None = None, progress: bool = False,
) -> EvaluationReport:
    """Evaluate the policies ``names`` (baselines or registered references) like
    :func:`~decisionlab.core.evaluation.evaluate_policies`, chunks spread over ``workers`` Ray actors
    (default: the cluster's CPUs)."""
    check_labels(names, episodes)
    setting = domain.setting_of(scenario)
    check_memory(setting, len(names), episodes)
    check_episodes(setting, scenario, episodes)
    ray = connect(address)
    plan = chunk_plan(setting, episodes)
    count = max(1, min(workers or cluster_cpus(ray), len(plan)))
    actor = ray.remote(num_cpus=1)(ChunkWorker)
    env = forwarded_env()
    pool = [actor.remote(domain.name, scenario, list(names), env) for _ in range(count)]
    try:
        labels = ray.get(pool[0].labels.remote())
        pending: dict[Any, int] = {pool[i % count].run.remote(index, start, n, seed): i
                                   for i, (index, start, n) in enumerate(plan)}
        parts: list[list[dict[str, np.ndarray]] | None] = [None] * len(plan)
        with Progress(episodes * len(names), "evaluating on Ray", unit="episode", enabled=progress) as bar:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                position = pending.pop(ready[0])
                parts[position] = ray.get(ready[0])
                bar.update(plan[position][2] * len(names))
    finally:
        for worker in pool:
            ray.kill(worker)
    counts = [n for _, _, n in plan]
    per_episode = {
        label: merge_chunks(setting, scenario, [part[k] for part in parts if part is not None], counts)
        for k, label in enumerate(labels)
    }
    return report_of(domain, scenario, per_episode, episodes, seed)
