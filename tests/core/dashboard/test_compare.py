"""The comparison's pure helpers: which paired differences do not separate a policy from the reference."""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from decisionlab.core.dashboard.compare import separation_notes, unseparated
from decisionlab.core.evaluation import EvaluationReport


def _report(per_episode: dict[str, np.ndarray]) -> EvaluationReport:
    episodes = len(next(iter(per_episode.values())))
    return EvaluationReport("toy", cast(Any, None), list(per_episode),
                            {label: {"cost": values} for label, values in per_episode.items()}, episodes, seed=0)


def test_a_difference_whose_paired_ci_includes_zero_is_flagged() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(100.0, 20.0, 32)
    report = _report({"ref": base, "same": base + rng.normal(0.0, 1.0, 32), "worse": base + 10.0
                      + rng.normal(0.0, 1.0, 32)})
    flagged = unseparated(report, "cost")
    assert [policy for policy, _, _ in flagged] == ["same"]
    policy, diff, half = flagged[0]
    assert abs(diff) <= half
    notes = separation_notes(report, "cost")
    assert len(notes) == 1 and "**same** vs **ref**" in notes[0] and "not separated" in notes[0]
    assert "95% CIs overlap" in notes[0] and "run more episodes" in notes[0]


def test_no_note_when_every_policy_is_separated_or_alone() -> None:
    base = np.linspace(0.0, 10.0, 16)
    assert separation_notes(_report({"ref": base, "better": base - 1.0 + 0.01 * np.sin(base)}), "cost") == []
    assert separation_notes(_report({"ref": base}), "cost") == []


def test_one_episode_says_there_is_no_interval() -> None:
    notes = separation_notes(_report({"ref": np.array([1.0]), "other": np.array([2.0])}), "cost")
    assert len(notes) == 1 and "no confidence interval" in notes[0]
