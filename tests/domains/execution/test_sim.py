"""The execution simulator: dynamics, accounting, differentiability, latency of liquidity, adapters."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from decisionlab.core.engine import rollout
from decisionlab.core.gym import SimulatorEnv, make_simulator
from decisionlab.core.seeding import make_generator
from decisionlab.core.spec import get_domain
from decisionlab.domains.execution.discrete import DiscreteActionWrapper, GridActionSim
from decisionlab.domains.execution.policies import ActionGrid, ExecutionMLP, QGridPolicy, twap_policy
from decisionlab.domains.execution.scenario import ExecutionScenario
from decisionlab.domains.execution.sim import OBS_OBSERVED_IMPACT, OBSERVATION_FIELDS, ExecutionSim


def _scenario(name: str = "almgren_chriss", **overrides: object) -> ExecutionScenario:
    scenario = get_domain("execution").scenario(name, overrides)
    assert isinstance(scenario, ExecutionScenario)
    return scenario


class Constant:
    """Trade a fixed number of shares every step (for tests)."""

    name = "constant"

    def __init__(self, shares: float) -> None:
        self.shares = shares

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.full((obs.shape[0],), self.shares, dtype=obs.dtype)


def _run(scenario: ExecutionScenario, policy, batch: int = 64, seed: int = 0, **sim_kwargs):
    sim = ExecutionSim(scenario, "cpu", dtype=torch.float64, **sim_kwargs)
    paths = sim.sample_exogenous(batch, scenario.horizon_steps, make_generator(seed))
    traj = rollout(sim, policy, paths, sim.reset(batch),
                   record=("shortfall", "trade", "execution_price", "risk_penalty", "remaining", "eta"))
    return sim, paths, traj


def test_shapes_and_start_state() -> None:
    scenario = _scenario()
    sim = ExecutionSim(scenario)
    state = sim.reset(8)
    obs = sim.observe(state)
    assert obs.shape == (8, len(OBSERVATION_FIELDS)) and obs.shape[1:] == sim.spaces.observation.shape
    np.testing.assert_allclose(obs[0].numpy(), [1.0, 1.0, 1 / 5, 0.0, 0.0, 1.0, 1.0])
    paths = sim.sample_exogenous(8, 5, make_generator(0))
    assert paths.shape == (8, 5, 3)
    assert torch.equal(paths, sim.sample_exogenous(8, 5, make_generator(0)))  # common random numbers


@pytest.mark.parametrize("side", ["sell", "buy"])
def test_shortfall_is_arrival_value_minus_proceeds(side: str) -> None:
    scenario = _scenario("latent_liquidity", side=side)
    _, _, traj = _run(scenario, twap_policy(scenario))
    trades = traj.info["trade"]
    np.testing.assert_allclose(trades.sum(dim=1).numpy(), scenario.shares, rtol=1e-12)
    proceeds = (trades * traj.info["execution_price"]).sum(dim=1)
    arrival = scenario.shares * scenario.initial_price
    expected = arrival - proceeds if side == "sell" else proceeds - arrival
    np.testing.assert_allclose(traj.info["shortfall"].sum(dim=1).numpy(), expected.numpy(), rtol=1e-9)


def test_forced_completion_and_clamping() -> None:
    scenario = _scenario()
    _, _, traj = _run(scenario, Constant(0.0))
    trades = traj.info["trade"]
    assert torch.all(trades[:, :-1] == 0)
    assert torch.allclose(trades[:, -1], torch.tensor(scenario.shares, dtype=trades.dtype))
    _, _, traj = _run(scenario, Constant(10 * scenario.shares))
    assert torch.allclose(traj.info["trade"][:, 0], torch.tensor(scenario.shares, dtype=torch.float64))
    assert torch.all(traj.info["trade"][:, 1:] == 0)
    _, _, traj = _run(scenario, Constant(-5.0))
    assert torch.all(traj.info["trade"][:, :-1] == 0)


def test_steps_after_the_horizon_cost_nothing() -> None:
    scenario = _scenario()
    sim = ExecutionSim(scenario)
    paths = sim.sample_exogenous(4, 8, make_generator(1))
    traj = rollout(sim, Constant(1e5), paths, record=("shortfall", "trade"))
    assert torch.all(traj.info["trade"][:, 5:] == 0) and torch.all(traj.rewards[:, 5:] == 0)
    assert torch.all(traj.final_state.steps_done == 5)


def test_rewards_add_up_to_the_risk_adjusted_shortfall_in_bps() -> None:
    scenario = _scenario()
    sim, _, traj = _run(scenario, twap_policy(scenario))
    shortfall = traj.info["shortfall"].sum(dim=1)
    risk = traj.info["risk_penalty"].sum(dim=1)
    scale = 1e4 / scenario.notional
    np.testing.assert_allclose(traj.rewards.sum(dim=1).numpy(), (-(shortfall + risk) * scale).numpy(), rtol=1e-9)
    remaining = traj.info["remaining"]
    expected_risk = scenario.risk_aversion * scenario.sigma**2 * (remaining**2).sum(1)
    np.testing.assert_allclose(risk.numpy(), expected_risk.numpy())
    _, _, raw = _run(scenario, twap_policy(scenario), risk_penalty_in_reward=False)
    np.testing.assert_allclose(raw.rewards.sum(dim=1).numpy(), (-shortfall * scale).numpy(), rtol=1e-9)


def test_gradients_flow_from_shortfall_to_trades_and_weights() -> None:
    scenario = _scenario("latent_liquidity")
    sim = ExecutionSim(scenario, risk_penalty_in_reward=False)
    paths = sim.sample_exogenous(32, scenario.horizon_steps, make_generator(2))
    trade = torch.full((32,), 1e5, requires_grad=True)
    result = sim.step(sim.reset(32), trade, paths[:, 0])
    (grad,) = torch.autograd.grad(result.info["shortfall"].sum(), trade)
    # d/dn of n(ε + η_k n) at d = 0 is ε + 2η_k n
    expected = scenario.epsilon + 2 * scenario.eta * paths[:, 0, 1] * 1e5
    torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-6)
    net = ExecutionMLP(scenario.horizon_steps, scenario.shares)
    traj = rollout(sim, net, paths, record=("shortfall",), grad=True)
    traj.info["shortfall"].sum(dim=1).mean().backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_liquidity_is_latent_the_agent_sees_only_its_own_fills() -> None:
    scenario = _scenario("latent_liquidity")
    sim = ExecutionSim(scenario, dtype=torch.float64)
    paths = sim.sample_exogenous(16, scenario.horizon_steps, make_generator(3))
    calm = paths.clone()
    calm[:, :, 1] = 1.0
    state_a, state_b = sim.reset(16), sim.reset(16)
    for t in range(3):
        # Not trading reveals nothing: observations do not depend on the (different) liquidity paths.
        assert torch.equal(sim.observe(state_a), sim.observe(state_b))
        state_a = sim.step(state_a, torch.zeros(16), paths[:, t]).state
        state_b = sim.step(state_b, torch.zeros(16), calm[:, t]).state
    assert not torch.equal(state_a.liquidity, state_b.liquidity)  # the latent state differs
    # A fill reveals the impact of its own step, η_k / η, and nothing later.
    filled = sim.step(state_a, torch.full((16,), 5e4), paths[:, 3]).state
    torch.testing.assert_close(sim.observe(filled)[:, OBS_OBSERVED_IMPACT], paths[:, 3, 1], rtol=1e-6, atol=1e-9)


def test_gymnasium_adapter_and_discrete_wrapper() -> None:
    sim = make_simulator("execution", "almgren_chriss")
    env = SimulatorEnv(sim, 5)
    check_env(env, skip_render_check=True)
    discrete = DiscreteActionWrapper(SimulatorEnv(sim, 5), ActionGrid("fraction", 11))
    obs, _ = discrete.reset(seed=0)
    total, steps, truncated = 0.0, 0, False
    while not truncated:
        obs, reward, terminated, truncated, _ = discrete.step(5)  # half of what is left
        total += reward
        steps += 1
    assert steps == 5 and obs[1] == pytest.approx(0.0, abs=1e-6) and total < 0


def test_grid_action_sim_and_q_grid_policy() -> None:
    scenario = _scenario()
    grid = ActionGrid("twap_multiple", 9, max_multiple=4.0)
    sim = GridActionSim(ExecutionSim(scenario), grid)
    state = sim.reset(3)
    paths = sim.sample_exogenous(3, 5, make_generator(0))
    result = sim.step(state, torch.tensor([0, 2, 8]), paths[:, 0])
    np.testing.assert_allclose(result.info["trade"].numpy(), [0.0, 0.2e6, 0.8e6], rtol=1e-6)  # 0, 1, 4 × X/5
    assert result.terminated.sum() == 0
    policy = QGridPolicy(5, scenario.shares, grid.config(), hidden=(8,))
    trade = policy.act(sim.observe(state))
    assert trade.shape == (3,) and torch.all(trade >= 0)
    index = grid.nearest(sim.observe(state), torch.full((3,), 0.2e6), scenario.shares)
    assert torch.all(index == 2)


def test_sb3_dqn_runs_through_the_discrete_wrapper() -> None:
    """The comparison hook of the benchmark: SB3's DQN on the same simulator (a smoke run)."""
    sb3 = pytest.importorskip("stable_baselines3")
    env = DiscreteActionWrapper(SimulatorEnv(make_simulator("execution", "almgren_chriss"), 5))
    model = sb3.DQN("MlpPolicy", env, learning_starts=50, buffer_size=1000, seed=0, verbose=0)
    model.learn(200)
    action, _ = model.predict(env.reset(seed=1)[0], deterministic=True)
    assert 0 <= int(action) < 11


def test_an_arrival_price_that_underflows_is_refused_naming_it() -> None:
    # 5e-324 was accepted (gt=0) and every shortfall came out NaN: float32 notionals underflow
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="initial_price"):
        ExecutionScenario(initial_price=5e-324)
    assert ExecutionScenario(initial_price=1e-6).initial_price == 1e-6
