"""Evaluation on the replay scores disjoint held-out windows: the same ones for every policy, seed and
chunk size; more episodes than windows are refused naming ``episodes`` and the maximum; the report and
the CLI's JSON carry the effective (independent) episode count."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from decisionlab.apps.cli import app as cli_app
from decisionlab.core.errors import ScenarioError
from decisionlab.core.evaluation import default_episodes, episode_values, evaluate_policies
from decisionlab.domains.market_making import REPLAY, SPEC
from decisionlab.domains.market_making.baselines import AvellanedaStoikov, Symmetric
from decisionlab.domains.market_making.quotes import OBS_FLOW_IMBALANCE, OBS_MARKET_SPREAD
from decisionlab.domains.market_making.replay.scenario import PRESETS, held_out_windows, replay_data, split_row
from decisionlab.domains.market_making.replay.sim import ReplaySim

CPU = torch.device("cpu")
SCENARIO = PRESETS["lob_replay"].model_copy(update={"horizon": 60.0})  # 1.2 h held out: 71 windows of 60 s


class Recorder:
    """A policy that records what it sees of the data (imbalance and spread, whatever the policy does)."""

    def __init__(self, policy) -> None:  # noqa: ANN001
        self.policy, self.calls = policy, []

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        self.calls.append(obs[:, [OBS_FLOW_IMBALANCE, OBS_MARKET_SPREAD]].clone())
        return self.policy.act(obs)

    def seen(self, steps: int) -> torch.Tensor:
        """``[episodes, steps, 2]``: the calls of each chunk (``steps`` calls of one batch) side by side."""
        assert len(self.calls) % steps == 0
        chunks = [torch.stack(self.calls[i:i + steps], dim=1) for i in range(0, len(self.calls), steps)]
        return torch.cat(chunks, dim=0)


def test_the_held_out_part_is_tiled_into_disjoint_windows() -> None:
    sim = ReplaySim(SCENARIO, CPU, "test", first_window=0)
    assert sim.windows == held_out_windows(SCENARIO) == REPLAY.max_episodes(SCENARIO) == 71
    rows = sim.sample_exogenous(71, 61, torch.Generator().manual_seed(1))[:, :, 0].long()
    again = sim.sample_exogenous(71, 61, torch.Generator().manual_seed(2))[:, :, 0].long()
    assert torch.equal(rows, again)  # the seed does not choose the windows
    assert torch.equal(rows[:, 0], torch.arange(71) * 60)
    stepped = rows[:, :60]  # the rows whose trades the 60 steps play: no two episodes share one
    assert stepped.unique().numel() == stepped.numel() and int(rows.max()) < sim.rows
    later = ReplaySim(SCENARIO, CPU, "test", first_window=5)
    assert torch.equal(later.sample_exogenous(3, 61)[:, :, 0].long(), rows[5:8])
    state = later.reset(3, torch.Generator().manual_seed(9))  # reset binds to the same windows
    assert torch.equal(state.row, rows[5:8, 0])
    with pytest.raises(ScenarioError, match="episodes: at most 71 for this scenario, got 72"):
        later.sample_exogenous(67, 61)


def test_policies_seeds_and_chunks_see_the_same_windows() -> None:
    one_batch = dataclasses.replace(REPLAY, eval_chunk=4096)
    chunked = dataclasses.replace(REPLAY, eval_chunk=4)  # chunks of 4, 4, 2 episodes
    stoikov, symmetric = Recorder(AvellanedaStoikov(SCENARIO)), Recorder(Symmetric(SCENARIO))
    values = episode_values(one_batch, SCENARIO, stoikov, 10, 3, CPU)
    episode_values(chunked, SCENARIO, symmetric, 10, 4, CPU)
    seen = stoikov.seen(60)
    assert seen.shape == (10, 60, 2) and torch.equal(seen, symmetric.seen(60))
    data = replay_data(SCENARIO)
    first = split_row(SCENARIO.train_fraction, data.snapshots)
    expected = data.imbalance[first + np.arange(10)[:, None] * 60 + np.arange(60)]  # window w, step t
    np.testing.assert_allclose(seen[:, :, 0].numpy(), expected, atol=1e-6)
    again = episode_values(chunked, SCENARIO, AvellanedaStoikov(SCENARIO), 10, 99, CPU)
    for metric, value in values.items():
        np.testing.assert_array_equal(value, again[metric], err_msg=metric)


def test_more_episodes_than_windows_are_refused() -> None:
    preset = SPEC.scenario("lob_replay")
    assert held_out_windows(preset) == 7 and default_episodes(REPLAY, preset) == 7
    with pytest.raises(ScenarioError, match="episodes: at most 7 for this scenario, got 8"):
        evaluate_policies(SPEC, preset, [("as", AvellanedaStoikov(preset))], episodes=8, seed=0, device=CPU)
    runner = CliRunner()
    base = ["evaluate", "market_making", "--scenario", "lob_replay", "--policy", "avellaneda_stoikov"]
    refused = runner.invoke(cli_app, [*base, "--episodes", "8"])
    assert refused.exit_code == 2 and "episodes: at most 7" in refused.output


def test_effective_episodes_in_the_report_and_the_json() -> None:
    report = evaluate_policies(SPEC, SCENARIO, [("as", AvellanedaStoikov(SCENARIO)), ("sym", Symmetric(SCENARIO))],
                               episodes=12, seed=0, device=CPU)
    assert report.effective_episodes == report.episodes == 12
    assert report.to_json()["effective_episodes"] == 12
    runner = CliRunner()
    result = runner.invoke(cli_app, ["evaluate", "market_making", "--scenario", "lob_replay", "--set", "horizon=60",
                                     "--policy", "symmetric", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["episodes"] == body["effective_episodes"] == 71  # the default: every held-out window
    table = runner.invoke(cli_app, ["evaluate", "market_making", "--scenario", "lob_replay", "--set", "horizon=60",
                                    "--policy", "symmetric", "--episodes", "5"])
    assert table.exit_code == 0 and "5 effective" in table.output
