"""Training quoting agents: the reward families by hand, the certainty equivalent, the headline (a short
pathwise run within 1% of the exact optimum), PPO beating the trivial quotes, and registry round trips."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from decisionlab.core.evaluation import evaluate_policies
from decisionlab.core.options import TrainContext
from decisionlab.core.policy import rebuild_policy
from decisionlab.core.sim import StepResult
from decisionlab.domains.market_making import SPEC, _model_sim
from decisionlab.domains.market_making.baselines import AvellanedaStoikov, GLFTExact, Symmetric
from decisionlab.domains.market_making.model.dp import DPOptimal
from decisionlab.domains.market_making.model.recursion import exact_statistics
from decisionlab.domains.market_making.model.scenario import PRESETS
from decisionlab.domains.market_making.model.sim import ModelSim
from decisionlab.domains.market_making.train import (
    QuotingPathwiseSettings,
    QuotingPPOSettings,
    certainty_equivalent,
    held_out_score,
    reward_function,
    train_pathwise_quoter,
    train_ppo_quoter,
)

CPU = torch.device("cpu")
BOUNDED = PRESETS["glft_bounded"]


def _scores(scenario, episodes: int = 4096):  # noqa: ANN001, ANN202
    sim = ModelSim(scenario)
    paths = sim.sample_exogenous(episodes, sim.horizon, torch.Generator().manual_seed(123))
    return held_out_score(sim, paths, scenario.risk_aversion)


def test_certainty_equivalent_by_hand() -> None:
    x = torch.tensor([1.0, 3.0])
    expected = -math.log((math.exp(-0.5) + math.exp(-1.5)) / 2) / 0.5
    assert float(certainty_equivalent(x, 0.5)) == pytest.approx(expected, rel=1e-12)
    assert float(certainty_equivalent(torch.full((4,), 7.0), 2.0)) == pytest.approx(7.0)


def test_reward_families_by_hand() -> None:
    info = {"inventory": torch.tensor([2.0, -3.0, 1.0]), "mid_change": torch.tensor([0.5, 0.5, -0.2])}
    result = StepResult(state=None, reward=torch.tensor([1.0, -1.0, 0.3]), info=info)
    assert reward_function("pnl", BOUNDED, 0.5) is None
    dampened = reward_function("dampened", BOUNDED, 0.5)(result)
    # inventory gains q'·Δs = 1.0, −1.5, −0.2: only the positive one is damped (by half of it)
    torch.testing.assert_close(dampened, torch.tensor([0.5, -1.0, 0.3]))
    mean_variance = reward_function("mean_variance", BOUNDED, 0.5)(result)
    weight = 0.5 * 0.1 * 2.0**2 * 0.005
    torch.testing.assert_close(mean_variance, result.reward - weight * info["inventory"] ** 2)


def _paired_gaps(scenario, learned, others: dict, episodes: int = 8192) -> dict:  # noqa: ANN001
    """Paired certainty-equivalent differences ``learned − other`` and their 95% half-widths, by name."""
    report = evaluate_policies(SPEC, scenario, [("learned", learned), *others.items()], episodes=episodes, seed=5,
                               device=CPU)
    rows = report.table().filter(metric="certainty_equivalent").iter_rows(named=True)
    return {r["policy"]: (-r["diff_vs_first"], r["diff_ci95"]) for r in rows if r["policy"] != "learned"}


def test_headline_pathwise_comes_within_one_percent_of_the_exact_optimum() -> None:
    """The domain's main claim, fast: 60 gradient steps of 256 episodes on ``glft_bounded`` and the learned
    quotes' certainty equivalent is within 1% of ``dp_optimal``'s (the discrete market's exact optimum),
    by the whole paired 95% CI; it beats the symmetric strategy by more than the CI."""
    settings = QuotingPathwiseSettings(max_steps=60, batch_size=256, eval_paths=1024, eval_every=10)
    outcome = train_pathwise_quoter(BOUNDED, settings, TrainContext(0, CPU, False), _model_sim)
    optimum = DPOptimal(BOUNDED)
    gaps = _paired_gaps(BOUNDED, outcome.policy, {"dp_optimal": optimum, "symmetric": Symmetric(BOUNDED)})
    gap, half_width = gaps["dp_optimal"]
    assert gap - half_width > -0.01 * optimum.certainty_equivalent, gaps
    assert gaps["symmetric"][0] > gaps["symmetric"][1], gaps
    assert outcome.policy_config["kind"] == "quote_mlp" and outcome.curve is not None


class ConstantDepth:
    """Both sides at one fixed depth, whatever the state."""

    def __init__(self, depth: float) -> None:
        self.depth = depth

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.full((obs.shape[0], 2), self.depth, dtype=obs.dtype, device=obs.device)


def test_ppo_beats_the_trivial_quotes_and_round_trips() -> None:
    """400k env steps on a quarter horizon where inventory risk matters (σ = 6, |q| ≤ 10): PPO beats the
    symmetric strategy and the best constant depth (found by the exact recursion) by more than the paired
    95% CI, and gets within 5% of the exact optimum; the trained net rebuilds from its config."""
    scenario = BOUNDED.model_copy(update={"horizon": 0.25, "sigma": 6.0})
    settings = QuotingPPOSettings(num_envs=256, rollout_steps=16, gae_lambda=0.8, init_log_std=-2.0,
                                  total_env_steps=256 * 16 * 100, eval_paths=512, eval_every=256 * 16 * 50)
    outcome = train_ppo_quoter(scenario, settings, TrainContext(0, CPU, False), _model_sim)
    constant = max((ConstantDepth(d) for d in np.arange(0.3, 2.0, 0.05)),
                   key=lambda p: exact_statistics(scenario, p).certainty_equivalent)
    optimum = DPOptimal(scenario)
    gaps = _paired_gaps(scenario, outcome.policy, {"symmetric": Symmetric(scenario), "constant": constant,
                                                   "dp_optimal": optimum}, episodes=4096)
    for trivial in ("symmetric", "constant"):
        assert gaps[trivial][0] > gaps[trivial][1], (trivial, gaps)
    assert gaps["dp_optimal"][0] > -0.05 * optimum.certainty_equivalent, gaps
    rebuilt = rebuild_policy(outcome.policy_config, outcome.policy.state_dict(), scenario, CPU)
    obs = torch.tensor([[0.2, 3.0, 0.1, -0.02, 0.0, 0.0], [0.01, -9.0, 0.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(rebuilt.act(obs), outcome.policy.act(obs))


def test_as_is_below_glft_where_the_bound_binds() -> None:
    """The issue's figure: at max_inventory=10, γ=0.1, AS gives up a few percent of GLFT's certainty
    equivalent (the exact recursion puts it at about 3.7%)."""
    score = _scores(BOUNDED)
    glft, stoikov = -score(GLFTExact(BOUNDED)), -score(AvellanedaStoikov(BOUNDED))
    assert 0.02 < 1 - stoikov / glft < 0.06
