"""Double DQN for optimal execution: the discrete simulator's rewards, a quick training run through the registry,
and (slow) the acceptance run against the analytic optimum and the static benchmarks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from decisionlab.core.errors import DecisionlabError
from decisionlab.core.evaluation import evaluate_policies, mean_ci95
from decisionlab.core.gym import SimulatorEnv
from decisionlab.core.resolve import build_policy
from decisionlab.core.seeding import make_generator
from decisionlab.core.spec import get_domain
from decisionlab.core.store.registry import PolicyRegistry
from decisionlab.domains.execution import oracles
from decisionlab.domains.execution.discrete import DiscreteActionWrapper, GridActionSim
from decisionlab.domains.execution.policies import ActionGrid, QGridPolicy
from decisionlab.domains.execution.scenario import ExecutionScenario
from decisionlab.domains.execution.sim import OBS_INVENTORY, OBSERVATION_SIZE, ExecutionSim
from decisionlab.domains.execution.train import DDQNOptions, ddqn_settings_from_options

CPU = torch.device("cpu")
# The quick run: about 10 s of one CPU thread (the default trains ~600k env steps in 1-2 minutes).
QUICK = {"total_env_steps": 60_000, "eval_paths": 4096}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny networks: a second intra-op thread only adds synchronisation on the shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _scenario(name: str, **overrides: object) -> ExecutionScenario:
    scenario = get_domain("execution").scenario(name, overrides)
    assert isinstance(scenario, ExecutionScenario)
    return scenario


def _episode(sim: GridActionSim, indices: torch.Tensor, paths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed rewards ``[B]`` and done flags ``[B, N]`` of fixed per-step grid indices ``[B, N]``."""
    state, total, done = sim.reset(paths.shape[0]), torch.zeros(paths.shape[0], dtype=torch.float64), []
    for t in range(paths.shape[1]):
        result = sim.step(state, indices[:, t], paths[:, t])
        state, total = result.state, total + result.reward.double()
        done.append(result.terminated)
    return total, torch.stack(done, dim=1).long()


@pytest.mark.parametrize("name", ["almgren_chriss", "latent_liquidity"])
def test_reward_forms_keep_the_return(name: str) -> None:
    """Mark-to-market shaping leaves every episode's summed reward unchanged; dropping the price term changes
    it by a zero-mean amount only; ``done`` comes on the step that completes the order."""
    scenario = _scenario(name)
    n, batch = scenario.horizon_steps, 20_000
    grid = ActionGrid("fraction", 21)
    paths = ExecutionSim(scenario).sample_exogenous(batch, n, make_generator(3))
    indices = torch.randint(0, 21, (batch, n), generator=torch.Generator().manual_seed(4))
    plain, _ = _episode(GridActionSim(ExecutionSim(scenario), grid), indices, paths)
    shaped, done = _episode(GridActionSim(ExecutionSim(scenario), grid, mark_to_market=True), indices, paths)
    torch.testing.assert_close(shaped, plain, rtol=1e-5, atol=1e-3)  # bps; float32 steps
    quiet, _ = _episode(GridActionSim(ExecutionSim(scenario), grid, mark_to_market=True, price_noise=False),
                        indices, paths)
    diff = (quiet - plain).numpy()
    assert abs(diff.mean()) < 4 * diff.std() / np.sqrt(batch)  # a control variate: same expected return
    assert diff.std() > 0.1 * plain.numpy().std()  # and it does take the price noise out
    # done: on the first step that sells everything (index 20 = 100%) and on the forced last step, then stays
    first_all = torch.where(indices == 20, torch.arange(n), n - 1).min(dim=1).values
    assert torch.equal(done.argmax(dim=1), first_all)
    assert bool(done[:, -1].all()) and bool((done.diff(dim=1) >= 0).all())
    with pytest.raises(ValueError, match="mark_to_market"):
        GridActionSim(ExecutionSim(scenario), grid, price_noise=False)


def test_sb3_sees_the_grid_sim_through_the_gymnasium_adapter() -> None:
    """The adapter of a ``GridActionSim`` is discrete (its declared space), so SB3 gets the DDQN rewards; the
    order's completion is a termination (at the forced last step, or as soon as everything is sold)."""
    scenario = _scenario("almgren_chriss")
    sim = GridActionSim(ExecutionSim(scenario), ActionGrid("fraction", 21), mark_to_market=True)
    env = SimulatorEnv(sim, 5)
    assert env.action_space.n == 21
    obs, _ = env.reset(seed=0)
    for step in range(5):
        obs, _, terminated, truncated, _ = env.step(10)  # half of what is left
        assert terminated == (step == 4) and not truncated
        if step < 4:
            assert obs[OBS_INVENTORY] == pytest.approx(0.5 ** (step + 1), rel=1e-5)
    env.reset(seed=0)
    assert env.step(20)[2]  # selling everything at once ends the episode
    with pytest.raises(ValueError, match="is discrete already"):
        DiscreteActionWrapper(SimulatorEnv(sim, 5), ActionGrid("fraction", 11))


def test_options_are_validated_and_reach_the_network() -> None:
    spec = get_domain("execution")
    settings = ddqn_settings_from_options(DDQNOptions(head="hl_gauss", hidden=(32,), n_step=3, num_envs=8))
    assert settings.network.head == "hl_gauss" and settings.network.hidden == (32,)
    assert (settings.n_step, settings.num_envs, settings.levels) == (3, 8, 21)
    assert ddqn_settings_from_options(DDQNOptions(mark_to_market=False)).price_noise  # the plain reward
    with pytest.raises(DecisionlabError, match="needs mark_to_market"):
        ddqn_settings_from_options(DDQNOptions(mark_to_market=False, price_noise=False))
    with pytest.raises(DecisionlabError, match="learning_rte"):
        spec.algo("ddqn").train(_scenario("almgren_chriss"), 0, CPU, False, {"learning_rte": 1e-3})
    with pytest.raises(ValueError, match="needs 7 -> 21"):
        QGridPolicy(5, 1e6, ActionGrid("fraction", 21).config(), q_net=settings.network.build(7, 11).config())


def test_quick_ddqn_beats_twap_and_round_trips_through_the_registry(decisionlab_home: Path) -> None:
    """A short run (CLI path: the spec's train with --algo-set options) beats TWAP on held-out paths, and the
    registered policy rebuilds with the same actions (any order size)."""
    spec = get_domain("execution")
    scenario = _scenario("almgren_chriss")
    outcome = spec.algo("ddqn").train(scenario, 0, CPU, False, QUICK)
    policy = outcome.policy
    assert isinstance(policy, QGridPolicy) and outcome.policy_config["q_net"]["dueling"] is True
    assert outcome.metrics["objective_vs_static_expected"] < 1.1
    twap = spec.policy("twap").build(scenario, CPU)
    report = evaluate_policies(spec, scenario, [("ddqn", policy), ("twap", twap)], episodes=20_000, seed=7,
                               device=CPU)
    mean, half = mean_ci95(report.per_episode["ddqn"]["mean_variance_objective"]
                           - report.per_episode["twap"]["mean_variance_objective"])
    assert mean + half < 0, (mean, half)

    card = {"scenario_name": "almgren_chriss", "scenario": scenario.describe(), "algo": "ddqn",
            "policy_config": outcome.policy_config, "metrics": outcome.metrics}
    PolicyRegistry().save("execution", "dq", policy.state_dict(), card)
    label, loaded = build_policy(spec, scenario, "execution/dq@1", CPU)
    assert label == "execution/dq@1"
    sim = ExecutionSim(scenario)
    state, paths = sim.reset(512), sim.sample_exogenous(512, 5, make_generator(11))
    for t in range(5):  # along real trajectories, so every step's states are compared
        obs = sim.observe(state)
        torch.testing.assert_close(loaded.act(obs), policy.act(obs))
        state = sim.step(state, policy.act(obs), paths[:, t]).state
    _, bigger = build_policy(spec, _scenario("almgren_chriss", shares=2e6), "execution/dq@1", CPU)
    obs = sim.observe(sim.reset(4))
    torch.testing.assert_close(bigger.act(obs), 2 * policy.act(obs))


def test_legacy_q_grid_layout_still_loads() -> None:
    """``q_grid`` configs without ``q_net`` (a plain MLP head) keep loading."""
    spec = get_domain("execution")
    scenario = _scenario("almgren_chriss")
    old = QGridPolicy(5, scenario.shares, {"kind": "fraction", "levels": 11}, (8,))
    assert "q_net" not in old.config()
    loaded = spec.load_policy(old.config(), old.state_dict(), scenario, CPU)
    obs = torch.rand(16, OBSERVATION_SIZE)
    torch.testing.assert_close(loaded.act(obs), old.act(obs))


@pytest.mark.slow
def test_default_ddqn_meets_the_acceptance() -> None:
    """Default settings (1-2 minutes per scenario on one thread). Constant impact: the sample objective on 100k
    held-out episodes is within 2% of the analytic AC objective (and so is the paired difference to the AC
    schedule, upper CI bound). Latent liquidity: beats TWAP, static_expected and static_best by more than the
    paired 95% CI."""
    spec = get_domain("execution")
    train = spec.algo("ddqn").train
    constant = _scenario("almgren_chriss")
    analytic = oracles.moments(constant, oracles.ac_optimal_holdings(constant)).objective(constant.risk_aversion)
    ddqn = train(constant, 0, CPU, False, {}).policy
    report = evaluate_policies(spec, constant, [("ddqn", ddqn), ("ac_optimal", spec.policy("ac_optimal").build(
        constant, CPU))], episodes=100_000, seed=777, device=CPU)
    mine = report.per_episode["ddqn"]["mean_variance_objective"]
    assert mine.mean() <= 1.02 * analytic
    mean, half = mean_ci95(mine - report.per_episode["ac_optimal"]["mean_variance_objective"])
    assert mean + half <= 0.02 * analytic

    latent = _scenario("latent_liquidity")
    learned = train(latent, 0, CPU, False, {}).policy
    baselines = [(name, spec.policy(name).build(latent, CPU)) for name in ("twap", "static_expected", "static_best")]
    report = evaluate_policies(spec, latent, [("ddqn", learned), *baselines], episodes=100_000, seed=777, device=CPU)
    mine = report.per_episode["ddqn"]["mean_variance_objective"]
    for name, _ in baselines:
        mean, half = mean_ci95(mine - report.per_episode[name]["mean_variance_objective"])
        assert mean + half < 0, (name, mean, half)
