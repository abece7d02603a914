"""PPO: GAE by hand, the two action distributions, truncation vs termination in the collector, and learning toys."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file, save_file
from torch.distributions import AffineTransform, Independent, Normal, TanhTransform, TransformedDistribution

from decisionlab.core.algos.ppo import (
    ALL_DEAD_CHECK_EVERY,
    ActorCriticPolicy,
    PPOConfig,
    PPOResult,
    RolloutCollector,
    compute_gae,
    ppo_update,
    train_ppo,
)
from decisionlab.core.engine import rollout
from decisionlab.core.nets.actor_critic import ActorCritic, MaskedCategorical, SquashedGaussian
from decisionlab.core.sim import BatchedSimulator, Reshaped, StepResult
from decisionlab.core.spaces import SINGLE, AgentGroup, Box, Discrete, Spaces

SEED = 0


@pytest.fixture(autouse=True)
def one_thread(decisionlab_home: object) -> Iterator[None]:
    """One intra-op thread: the nets are tiny, a second thread only adds synchronisation on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------------------------- toy simulators


class TrackSim:
    """1-D tracking: observe ``x ~ U(−1, 1)``, act ``a ∈ [−2, 2]``, reward ``−(a − 1.5 x)²``; the next ``x``
    is exogenous. Optimal policy ``a = 1.5 x`` (inside the bounds), optimal reward 0."""

    GAIN = 1.5
    device = torch.device("cpu")
    differentiable = False
    spaces = Spaces(observation=Box((1,)), action=Box((1,), -2.0, 2.0))

    def sample_exogenous(self, batch: int, periods: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return 2 * torch.rand(batch, periods, generator=generator) - 1

    def reset(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return 2 * torch.rand(batch, generator=generator) - 1

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        return state.unsqueeze(-1)

    def flat_observation(self, obs: torch.Tensor) -> torch.Tensor:
        return obs

    def step(self, state: torch.Tensor, action: torch.Tensor, x_next: torch.Tensor) -> StepResult[torch.Tensor]:
        return StepResult(x_next, -(action[:, 0] - self.GAIN * state).square())


@dataclass
class ArmState:
    k: torch.Tensor  # [B] long, the rewarded arm


class ArmSim:
    """Contextual bandit: observe ``one_hot(k)``, ``k ∈ {0..3}``; reward 1 for arm ``k``. Arm 4 is invalid
    (masked) but would pay 2: a policy that ever samples a masked action is caught by its reward."""

    ARMS, CONTEXTS = 5, 4
    device = torch.device("cpu")
    differentiable = False
    spaces = Spaces(observation=Box((CONTEXTS,), 0.0, 1.0), action=Discrete(ARMS, masked=True))

    def sample_exogenous(self, batch: int, periods: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randint(self.CONTEXTS, (batch, periods), generator=generator)

    def reset(self, batch: int, generator: torch.Generator | None = None) -> ArmState:
        return ArmState(torch.randint(self.CONTEXTS, (batch,), generator=generator))

    def observe(self, state: ArmState) -> torch.Tensor:
        return torch.nn.functional.one_hot(state.k, self.CONTEXTS).float()

    def flat_observation(self, obs: torch.Tensor) -> torch.Tensor:
        return obs

    def __init__(self) -> None:
        self.masked_pulls = 0

    def action_mask(self, obs: torch.Tensor) -> torch.Tensor:
        return arm_mask(obs)

    def step(self, state: ArmState, action: torch.Tensor, k_next: torch.Tensor) -> StepResult[ArmState]:
        self.masked_pulls += int((action == self.ARMS - 1).sum())  # a host sync: fine for a test
        reward = (action == state.k).float() + 2.0 * (action == self.ARMS - 1).float()
        return StepResult(ArmState(k_next), reward)


def arm_mask(obs: torch.Tensor) -> torch.Tensor:
    mask = torch.ones(obs.shape[0], ArmSim.ARMS, dtype=torch.bool)
    mask[:, -1] = False
    return mask


class CountSim:
    """Reward 1 every step; the observation is ``[t, noise]`` with ``t`` the episode step (state) and noise
    exogenous. ``done_at [B]`` (optional) marks env ``b`` terminal at its step ``done_at[b]`` (1-based)."""

    device = torch.device("cpu")
    differentiable = False
    spaces = Spaces(observation=Box((2,)), action=Box((1,), -1.0, 1.0))

    def __init__(self, done_at: list[int] | None = None, time_feature: bool = True) -> None:
        self.done_at = None if done_at is None else torch.tensor(done_at)
        self.time_feature = time_feature
        self.actions: list[torch.Tensor] = []

    def sample_exogenous(self, batch: int, periods: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.rand(batch, periods, generator=generator)

    def reset(self, batch: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(batch), torch.rand(batch, generator=generator)

    def observe(self, state: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        t, noise = state
        return torch.stack([t if self.time_feature else torch.zeros_like(t), noise], dim=1)

    def flat_observation(self, obs: torch.Tensor) -> torch.Tensor:
        return obs

    def step(
        self, state: tuple[torch.Tensor, torch.Tensor], action: torch.Tensor, noise: torch.Tensor
    ) -> StepResult[tuple[torch.Tensor, torch.Tensor]]:
        self.actions.append(action)
        t = state[0] + 1
        ended = None if self.done_at is None else t >= self.done_at
        return StepResult((t, noise), torch.ones_like(t), terminated=ended)


class IdentitySim:
    """Observations are the features as given (a policy wrapper only reads ``spaces`` from it)."""

    device = torch.device("cpu")

    def __init__(self, features: int, action: Box | Discrete) -> None:
        self.spaces = Spaces(observation=Box((features,)), action=action)

    def flat_observation(self, obs: torch.Tensor) -> torch.Tensor:
        return obs


def mean_reward(sim: TrackSim | ArmSim, policy: ActorCriticPolicy, seed: int = 123, batch: int = 512) -> float:
    """Mean per-step reward of the deterministic policy over 8 periods of fixed held-out paths."""
    generator = torch.Generator().manual_seed(seed)
    state = sim.reset(batch, generator)
    return float(rollout(sim, policy, sim.sample_exogenous(batch, 8, generator), state).rewards.mean())


def seeded() -> torch.Generator:
    torch.manual_seed(SEED)
    return torch.Generator().manual_seed(SEED)


# --------------------------------------------------------------------------------------------- GAE


def test_compute_gae_by_hand() -> None:
    """T = 3, B = 2, γ = λ = 0.5 (γλ = 0.25).

    env 0: step 1 terminates (its next value 100 must be ignored), step 2 starts a new episode and
    bootstraps from next_values[2]. env 1: step 0 is truncated (bootstrap from the *final*
    observation's value 10, not values[1] = 2, and no λ-carry from step 1), steps 1-2 continue.
    """
    rewards = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    values = torch.tensor([[0.5, 1.0], [1.5, 2.0], [2.5, 3.0]])
    next_values = torch.tensor([[1.5, 10.0], [100.0, 3.0], [4.0, 8.0]])
    terminated = torch.tensor([[False, False], [True, False], [False, False]])
    episode_end = torch.tensor([[False, True], [True, False], [False, False]])
    advantages, returns = compute_gae(rewards, values, next_values, terminated, episode_end, gamma=0.5, lam=0.5)
    # env 0: δ2 = 5 + .5·4 − 2.5 = 4.5 -> A2 = 4.5
    #        δ1 = 3 − 1.5 = 1.5 (terminal: no bootstrap), episode end -> A1 = 1.5
    #        δ0 = 1 + .5·1.5 − .5 = 1.25 -> A0 = 1.25 + .25·1.5 = 1.625
    # env 1: δ2 = 6 + .5·8 − 3 = 7 -> A2 = 7
    #        δ1 = 4 + .5·3 − 2 = 3.5 -> A1 = 3.5 + .25·7 = 5.25
    #        δ0 = 2 + .5·10 − 1 = 6 (truncation bootstraps), episode end -> A0 = 6
    want = torch.tensor([[1.625, 6.0], [1.5, 5.25], [4.5, 7.0]])
    torch.testing.assert_close(advantages, want)
    torch.testing.assert_close(returns, want + values)
    # a non-finite bootstrap at a terminal step cannot leak
    next_values[1, 0] = math.inf
    torch.testing.assert_close(compute_gae(rewards, values, next_values, terminated, episode_end, 0.5, 0.5)[0], want)


# --------------------------------------------------------------------------------------------- distributions


def test_squashed_gaussian_log_prob_matches_change_of_variables() -> None:
    torch.manual_seed(SEED)
    dtype = torch.float64
    low, high = torch.tensor([-2.0, 0.0, -1.0], dtype=dtype), torch.tensor([2.0, 1.0, 3.0], dtype=dtype)
    mean = torch.randn(64, 3, dtype=dtype)
    log_std = torch.tensor([-0.5, 0.0, 0.3], dtype=dtype)
    dist = SquashedGaussian(mean, log_std, low, high)
    u = dist.sample(torch.Generator().manual_seed(1))
    action = dist.squash(u)
    # reference 1: torch.distributions, tanh then the affine map onto [low, high] (inverts a with atanh)
    base = Independent(Normal(mean, log_std.exp()), 1)
    reference = TransformedDistribution(base, [TanhTransform(), AffineTransform((low + high) / 2, (high - low) / 2)])
    torch.testing.assert_close(dist.log_prob(u), reference.log_prob(action), rtol=1e-9, atol=1e-9)
    # reference 2: explicit Jacobian of a(u) by autograd (diagonal): log p(u) − Σ log |da_i/du_i|
    u_leaf = u.clone().requires_grad_(True)
    (jacobian_diagonal,) = torch.autograd.grad(dist.squash(u_leaf).sum(), u_leaf)
    explicit = base.log_prob(u) - jacobian_diagonal.abs().log().sum(-1)
    torch.testing.assert_close(dist.log_prob(u), explicit, rtol=1e-9, atol=1e-9)
    # stable where 1 − tanh² underflows, and actions never leave the box
    far = SquashedGaussian(torch.full((4, 3), 40.0), log_std, low, high)
    extreme = torch.tensor([[40.0] * 3, [-40.0] * 3, [400.0] * 3, [-400.0] * 3], dtype=dtype)
    assert torch.isfinite(far.log_prob(extreme)).all()
    wild = SquashedGaussian(50 * torch.randn(10_000, 3, dtype=dtype), torch.full((3,), 2.0, dtype=dtype), low, high)
    sampled = wild.squash(wild.sample())
    assert ((sampled >= low) & (sampled <= high)).all()
    torch.testing.assert_close(dist.mode(), low + (high - low) * (torch.tanh(mean) + 1) / 2)


def test_masked_categorical_never_samples_masked_and_entropy_ignores_them() -> None:
    torch.manual_seed(SEED)
    logits = 3 * torch.randn(512, 5)
    mask = torch.rand(512, 5) < 0.6
    mask[torch.arange(512), torch.randint(5, (512,))] = True  # at least one valid action per row
    dist = MaskedCategorical(logits, mask)
    generator = torch.Generator().manual_seed(2)
    for _ in range(50):
        assert mask.gather(1, dist.sample(generator).unsqueeze(1)).all()
    assert mask.gather(1, dist.mode().unsqueeze(1)).all()
    # the entropy (and the log-probs) of the categorical restricted to the valid actions
    for row in range(0, 512, 37):
        restricted = torch.distributions.Categorical(logits=logits[row][mask[row]])
        torch.testing.assert_close(dist.entropy()[row], restricted.entropy())
        valid = mask[row].nonzero().squeeze(1)
        torch.testing.assert_close(dist.log_probs[row, valid], restricted.logits)
    assert torch.isfinite(dist.entropy()).all() and torch.isfinite(dist.log_probs).all()
    # Gumbel-max draws follow the probabilities
    one = MaskedCategorical(torch.tensor([[0.0, 1.0, 2.0, 5.0]]).expand(40_000, 4),
                            torch.tensor([[True, True, True, False]]).expand(40_000, 4))
    counts = torch.bincount(one.sample(generator), minlength=4).float() / 40_000
    torch.testing.assert_close(counts, torch.tensor([0.0, 1.0, 2.0, -math.inf]).softmax(0), atol=0.01, rtol=0)


def test_actor_critic_init_and_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(SEED)
    net = ActorCritic(3, 2, hidden=(16, 16), value_head="hl_gauss", bins=11, value_min=-1, value_max=1,
                      action_low=[-1.0, 0.0], action_high=[1.0, 5.0])
    assert net.actor[-1].weight.abs().max() < 0.05  # policy head: gain 0.01
    w = net.critic[2].weight  # the 16 x 16 hidden layer
    torch.testing.assert_close(w @ w.T, 2.0 * torch.eye(16))  # orthogonal, gain √2
    assert all(not m.bias.detach().any() for m in net.modules() if isinstance(m, torch.nn.Linear))
    x = torch.randn(7, 3)
    assert net.value_logits(x).shape == (7, 11) and net.value(x).shape == (7,)
    assert ((net.value(x) >= -1) & (net.value(x) <= 1)).all()
    sim = IdentitySim(3, Box((2,), [-1.0, 0.0], [1.0, 5.0]))
    policy = ActorCriticPolicy(net, sim)
    save_file(policy.state_dict(), tmp_path / "w.safetensors")
    rebuilt = ActorCriticPolicy.from_config(policy.config()).bind(sim)
    rebuilt.load_state_dict(load_file(tmp_path / "w.safetensors"))
    torch.testing.assert_close(rebuilt.act(x), policy.act(x))
    with pytest.raises(ValueError, match="bind"):
        ActorCriticPolicy.from_config(policy.config()).act(x)
    assert policy.config()["net"]["action_high"] == [1.0, 5.0]
    discrete = ActorCritic(3, 4, discrete=True)
    assert discrete.act(x, torch.tensor([[False, True, False, False]]).expand(7, 4)).eq(1).all()
    assert not any(name == "log_std" for name, _ in discrete.named_parameters())


def test_config_is_strict() -> None:
    with pytest.raises(ValidationError):
        PPOConfig(learning_rte=1e-3)
    with pytest.raises(ValidationError):
        PPOConfig(value_min=1.0, value_max=0.0)
    with pytest.raises(ValidationError):
        PPOConfig(hidden=(0,))
    with pytest.raises(ValueError, match="describe a network"):
        train_ppo(TrackSim(), ActorCritic(1, 1), PPOConfig(hidden=(8,)), horizon=4, progress=False)
    with pytest.raises(ValueError, match="discrete"):
        train_ppo(ArmSim(), ActorCritic(4, 5), PPOConfig(), horizon=4, progress=False)
    with pytest.raises(ValueError, match="no horizon"):
        train_ppo(ArmSim(), None, PPOConfig(), progress=False)


# --------------------------------------------------------------------------------------------- collector


def value_net(weight: float, bias: float) -> ActorCritic:
    """A net whose value is ``weight · obs[0] + bias`` (the first feature of CountSim is the episode step)."""
    net = ActorCritic(2, 1, hidden=())
    with torch.no_grad():
        net.critic[0].weight.copy_(torch.tensor([[weight, 0.0]]))
        net.critic[0].bias.fill_(bias)
    return net


def collect(sim: CountSim, net: ActorCritic, steps: int = 5, horizon: int = 3) -> RolloutCollector:
    collector = RolloutCollector(sim, num_envs=2, horizon=horizon, generator=torch.Generator().manual_seed(0),
                                 rng=torch.Generator().manual_seed(1))
    collector.rollout = collector.collect({SINGLE: net}, steps)[SINGLE]  # type: ignore[attr-defined]
    return collector


def test_collector_bootstraps_truncation_from_the_final_observation() -> None:
    """Horizon 3, 5 steps: the rollout crosses one boundary. V = t, so the final observation (t = 3) is
    told apart from the reset one (t = 0)."""
    batch = collect(CountSim(), value_net(1.0, 0.0)).rollout  # type: ignore[attr-defined]
    column = torch.tensor([0.0, 1.0, 2.0, 0.0, 1.0])
    torch.testing.assert_close(batch.values, column[:, None].expand(5, 2))
    torch.testing.assert_close(batch.next_values, (column + 1)[:, None].expand(5, 2))  # 3 at the cut, not 0
    assert batch.episode_end[:, 0].tolist() == [False, False, True, False, False]
    assert not batch.terminated.any() and batch.alive.all()
    # with V ≡ 1 / (1 − γ) the bootstrapped targets are V everywhere; treating the cut as terminal would give 1
    gamma = 0.9
    constant = collect(CountSim(), value_net(0.0, 1 / (1 - gamma))).rollout  # type: ignore[attr-defined]
    _, returns = compute_gae(constant.rewards, constant.values, constant.next_values, constant.terminated,
                             constant.episode_end, gamma, 0.95)
    torch.testing.assert_close(returns, torch.full((5, 2), 10.0))


def test_collector_terminations_and_dead_steps() -> None:
    """env 0 terminates at the horizon (step 3: no bootstrap), env 1 after its first step; env 1 is dead
    until the synchronized reset, and dead steps do not move the update at all."""
    gamma = 0.9
    collector = collect(CountSim(done_at=[3, 1]), value_net(0.0, 1 / (1 - gamma)))
    batch = collector.rollout  # type: ignore[attr-defined]
    assert batch.terminated[:, 0].tolist() == [False, False, True, False, False]
    assert batch.terminated[:, 1].tolist() == [True, False, False, True, False]
    assert batch.alive[:, 1].tolist() == [True, False, False, True, False]
    assert batch.episode_end[:, 1].tolist() == [True, False, True, True, False]
    advantages, returns = compute_gae(batch.rewards, batch.values, batch.next_values, batch.terminated,
                                      batch.episode_end, gamma, 1.0)
    assert returns[2, 0] == pytest.approx(1.0) and returns[0, 1] == pytest.approx(1.0)  # terminal: r only
    assert returns[1, 0] == pytest.approx(1.9) and returns[0, 0] == pytest.approx(2.71)
    assert collector.pop_episode_return() == pytest.approx((3 + 1) / 2)  # alive rewards only, one episode each
    assert math.isnan(collector.pop_episode_return())

    config = PPOConfig(num_envs=2, rollout_steps=5, minibatches=2, update_epochs=2)

    def update(adv: torch.Tensor, ret: torch.Tensor) -> dict[str, torch.Tensor]:
        torch.manual_seed(SEED)
        net = value_net(0.0, 10.0)
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
        ppo_update(net, optimizer, batch, adv, ret, config, torch.Generator().manual_seed(3))
        return net.state_dict()

    dead = ~batch.alive
    garbage = torch.where(dead, torch.tensor(math.nan), 0.0)
    first, second = update(advantages, returns), update(advantages + garbage, returns - 1e6 * dead)
    for name, value in first.items():
        torch.testing.assert_close(value, second[name], rtol=0, atol=0)


def test_collector_shapes_rewards_and_resets_early_when_all_terminated() -> None:
    """A reshaped simulator's reward and ``reward_scale`` shape what is learned (not the logged return); the
    simulator gets squashed actions inside its box; every env terminates at step 1 of a 20-step horizon, so
    the batch resets at the first all-terminated check instead of stepping dead envs to the horizon."""
    sim = CountSim(done_at=[1, 1])
    collector = RolloutCollector(
        Reshaped(sim, lambda result: 3 * result.reward), num_envs=2, horizon=20, reward_scale=0.5,
        generator=torch.Generator().manual_seed(0), rng=torch.Generator().manual_seed(1),
    )
    batch = collector.collect({SINGLE: value_net(0.0, 0.0)}, ALL_DEAD_CHECK_EVERY + 2)[SINGLE]
    torch.testing.assert_close(batch.rewards, torch.full_like(batch.rewards, 1.5))
    assert collector.pop_episode_return() == pytest.approx(1.0)
    seen = sim.actions
    assert all(((a >= -1) & (a <= 1)).all() for a in seen) and len(seen) == ALL_DEAD_CHECK_EVERY + 2
    cut = ALL_DEAD_CHECK_EVERY - 1
    assert batch.episode_end[:, 0].tolist() == [True] + [False] * (cut - 1) + [True, True, False]
    assert batch.alive[:, 0].tolist() == [True] + [False] * cut + [True, False]
    assert batch.features[cut + 1, :, 0].tolist() == [0.0, 0.0]  # a fresh episode after the early reset


# --------------------------------------------------------------------------------------------- learning


TRACK = dict(num_envs=256, rollout_steps=8, update_epochs=4, minibatches=4, gamma=0.5, learning_rate=3e-3,
             hidden=(32, 32), eval_every=256 * 8 * 10)


def test_ppo_learns_continuous_tracking() -> None:
    sim = TrackSim()
    assert isinstance(sim, BatchedSimulator)
    generator = seeded()
    config = PPOConfig(**TRACK, total_env_steps=256 * 8 * 60)
    initial = ActorCriticPolicy(config.build_network(sim.spaces.groups()[SINGLE]), sim)
    start = mean_reward(sim, initial)
    result = train_ppo(sim, None, config, horizon=8, evaluate=lambda p: -mean_reward(sim, p),
                       generator=generator, progress=False)
    final = mean_reward(sim, result.policy)
    assert start < -0.5
    assert final > -0.02  # optimum 0
    assert result.best_score == pytest.approx(-final)  # the best weights were kept
    history = result.history
    assert history.columns == ["update", "env_steps", "policy_loss", "value_loss", "entropy", "approx_kl",
                               "clip_fraction", "explained_variance", "epochs", "learning_rate",
                               "episode_return", "eval_score", "seconds"]
    assert history["env_steps"].to_list()[-1] == result.env_steps == 256 * 8 * 60
    assert result.updates == 60 and history["learning_rate"].to_list()[-1] == pytest.approx(3e-3 / 60)
    assert history["episode_return"].to_list()[-1] > 8 * -0.1  # stochastic policy, whole episodes


def test_a_log_std_floor_bounds_the_spread_and_round_trips() -> None:
    sim = TrackSim()
    config = PPOConfig(**TRACK, total_env_steps=256 * 8 * 60, min_log_std=-1.5)
    net = config.build_network(sim.spaces.groups()[SINGLE])
    assert net.config()["min_log_std"] == -1.5
    with torch.no_grad():
        net.log_std.fill_(-4.0)  # below the floor: the distribution uses the floor
    x = torch.randn(5, net.obs_dim)
    assert torch.equal(net.distribution(x).log_std, torch.full((5, net.action_dim), -1.5))
    rebuilt = ActorCritic.from_config(net.config())
    rebuilt.load_state_dict(net.state_dict())
    assert torch.equal(rebuilt.distribution(x).log_std, net.distribution(x).log_std)
    free = PPOConfig(**TRACK).build_network(sim.spaces.groups()[SINGLE])
    assert "min_log_std" not in free.config()  # configs without a floor read as before
    with torch.no_grad():
        free.log_std.fill_(-4.0)
    assert torch.equal(free.distribution(x).log_std, torch.full((5, free.action_dim), -4.0))
    with torch.no_grad():
        net.log_std.fill_(-0.5)
    start = mean_reward(sim, ActorCriticPolicy(net, sim))
    settings = {k: v for k, v in TRACK.items() if k != "hidden"}
    train_ppo(sim, net, PPOConfig(**settings, total_env_steps=256 * 8 * 30), horizon=8, generator=seeded(),
              progress=False)
    assert start < -0.5 and mean_reward(sim, ActorCriticPolicy(net, sim)) > -0.05  # it learns with a floor


def test_ppo_learns_masked_discrete_arms() -> None:
    sim = ArmSim()
    config = PPOConfig(**{**TRACK, "gamma": 0.0}, total_env_steps=256 * 8 * 25)
    result = train_ppo(sim, None, config, horizon=8, generator=seeded(), progress=False)
    assert 0.95 <= mean_reward(sim, result.policy) <= 1.0  # optimum 1; > 1 would mean the masked arm paid
    assert math.isnan(result.best_score)
    assert sim.masked_pulls == 0  # not once while sampling either


@pytest.mark.parametrize(("head", "clip_value"), [("hl_gauss", False), ("scalar", False), ("scalar", True)])
def test_value_head_learns_the_bootstrapped_value(head: str, clip_value: bool) -> None:
    """Reward 1 every step, truncated at horizon 4, no time feature: V = 1 / (1 − γ) = 2 for γ = 0.5.
    (Treating the cut as terminal would give the mean of the finite sums 1, 1.5, 1.75, 1.875 ≈ 1.53.)"""
    sim = CountSim(time_feature=False)
    config = PPOConfig(num_envs=64, rollout_steps=8, total_env_steps=64 * 8 * 30, gamma=0.5, learning_rate=1e-2,
                       hidden=(16,), value_head=head, hl_gauss_bins=31, value_min=-1.0, value_max=4.0,
                       clip_value=clip_value)
    result = train_ppo(sim, None, config, horizon=4, generator=seeded(), progress=False)
    with torch.no_grad():
        values = result.policy.net.value(torch.rand(256, 2) * torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(values, torch.full((256,), 2.0), atol=0.1, rtol=0)
    assert result.history["explained_variance"].is_finite().any()


def test_early_stop_at_target_and_reproducible() -> None:
    sim = TrackSim()
    config = PPOConfig(**{**TRACK, "eval_every": 2048}, total_env_steps=256 * 8 * 60, target=0.05)
    result: PPOResult = train_ppo(sim, None, config, horizon=8, evaluate=lambda p: -mean_reward(sim, p),
                                  generator=seeded(), progress=False)
    assert result.best_score <= 0.05  # mean reward >= -0.05 (the untrained policy: about -0.75)
    assert 1 < result.updates < 60
    assert result.history["epochs"].to_list()[1:] == [4] * result.updates
    again = train_ppo(sim, None, config, horizon=8, evaluate=lambda p: -mean_reward(sim, p),
                      generator=seeded(), progress=False)
    assert again.updates == result.updates
    for name, value in result.policy.state_dict().items():
        torch.testing.assert_close(value, again.policy.state_dict()[name], rtol=0, atol=0)


def test_target_kl_stops_the_epochs() -> None:
    config = PPOConfig(num_envs=64, rollout_steps=8, total_env_steps=64 * 8 * 3, update_epochs=5, target_kl=1e-12,
                       learning_rate=1e-2, hidden=(8,))
    result = train_ppo(TrackSim(), None, config, horizon=8, generator=seeded(), progress=False)
    assert result.history["epochs"].to_list() == [0, 1, 1, 1]
    assert all(kl > 0 for kl in result.history["approx_kl"].to_list()[1:])


# --------------------------------------------------------------------------------------------- event time, agents


def test_gae_discounts_by_the_time_each_decision_took() -> None:
    """Semi-Markov GAE: γ_t = γ^{elapsed_t}. One env, two steps of 2 and 0.5 time units, γ = 0.5, λ = 1."""
    rewards, values = torch.tensor([[1.0], [2.0]]), torch.tensor([[0.0], [0.0]])
    next_values = torch.tensor([[0.0], [4.0]])
    flags = torch.zeros(2, 1, dtype=torch.bool)
    advantages, _ = compute_gae(rewards, values, next_values, flags, flags, 0.5, 1.0, torch.tensor([[2.0], [0.5]]))
    second = 2.0 + 0.5**0.5 * 4.0
    torch.testing.assert_close(advantages, torch.tensor([[1.0 + 0.25 * second], [second]]))
    # elapsed of 1 everywhere is the ordinary GAE
    plain = compute_gae(rewards, values, next_values, flags, flags, 0.5, 1.0)[0]
    torch.testing.assert_close(compute_gae(rewards, values, next_values, flags, flags, 0.5, 1.0,
                                           torch.ones(2, 1))[0], plain)


class TeamArmsSim:
    """A group of 3 agents, each observing its own rewarded arm (one-hot of 4) and choosing one of 5
    arms; arm 4 is masked for every agent (it would pay 2). Each agent's reward is its own."""

    AGENTS, ARMS, CONTEXTS = 3, 5, 4
    device = torch.device("cpu")
    differentiable = False
    spaces = Spaces(agents={"pickers": AgentGroup(AGENTS, Box((CONTEXTS,), 0.0, 1.0), Discrete(ARMS, masked=True),
                                                  Box((CONTEXTS,)))})
    horizon = 4

    def sample_exogenous(self, batch: int, periods: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randint(self.CONTEXTS, (batch, periods, self.AGENTS), generator=generator)

    def reset(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randint(self.CONTEXTS, (batch, self.AGENTS), generator=generator)

    def observe(self, state: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"pickers": torch.nn.functional.one_hot(state, self.CONTEXTS).float()}

    def flat_observation(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return obs

    def action_mask(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        mask = torch.ones(*obs["pickers"].shape[:2], self.ARMS, dtype=torch.bool)
        mask[..., -1] = False
        return {"pickers": mask}

    def step(self, state: torch.Tensor, action: dict[str, torch.Tensor], k: torch.Tensor) -> StepResult[torch.Tensor]:
        arm = action["pickers"]
        assert arm.shape == state.shape and not (arm == self.ARMS - 1).any()
        return StepResult(k, {"pickers": (arm == state).float() + 2.0 * (arm == self.ARMS - 1).float()})


def test_ppo_shares_parameters_over_an_agent_group() -> None:
    sim = TeamArmsSim()
    config = PPOConfig(**{**TRACK, "gamma": 0.0, "num_envs": 128}, total_env_steps=128 * 8 * 25)
    result = train_ppo(sim, None, config, generator=seeded(), progress=False)
    assert set(result.policies) == {"pickers"}
    state = torch.arange(4).repeat(3, 1).T  # every context for every agent
    chosen = result.policy.act(sim.observe(state))["pickers"]
    assert torch.equal(chosen, state)  # one network, every agent picks its own arm
    assert "pickers/episode_return" in result.history.columns


class WageSim:
    """Two groups trained together (the two-level pattern). The planner sets next step's wage w ∈ {0.5,
    1.5, 2.5}; 4 workers, seeing the current wage, choose effort e ∈ {0, 1, 2} at cost 0.6·e²; a worker
    earns w·e − 0.6·e², the planner (3 − w)·Σe. Workers' best responses: e = 0, 1, 2; the planner's best
    wage is 1.5 (4 · 1.5 · 1 = 6, against 0 and 4 · 0.5 · 2 = 4)."""

    WAGES = torch.tensor([0.5, 1.5, 2.5])
    device = torch.device("cpu")
    differentiable = False
    horizon = 6
    spaces = Spaces(agents={
        "workers": AgentGroup(4, Box((3,), 0.0, 1.0), Discrete(3), Box((3,))),
        "planner": AgentGroup(1, Box((3,), 0.0, 1.0), Discrete(3), Box((3,))),
    })

    def sample_exogenous(self, batch: int, periods: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.zeros(batch, periods)

    def reset(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randint(3, (batch,), generator=generator)  # the wage index in force

    def observe(self, state: torch.Tensor) -> dict[str, torch.Tensor]:
        wage = torch.nn.functional.one_hot(state, 3).float()
        return {"workers": wage[:, None].expand(-1, 4, -1), "planner": wage[:, None]}

    def flat_observation(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return obs

    def step(self, state: torch.Tensor, action: dict[str, torch.Tensor], _: torch.Tensor) -> StepResult[torch.Tensor]:
        wage, effort = self.WAGES[state], action["workers"].float()
        workers = wage[:, None] * effort - 0.6 * effort.square()
        planner = ((3.0 - wage) * effort.sum(1))[:, None]
        return StepResult(action["planner"][:, 0], {"workers": workers, "planner": planner})


def test_two_groups_learn_together_and_one_can_be_frozen() -> None:
    sim = WageSim()
    config = PPOConfig(num_envs=256, rollout_steps=6, total_env_steps=256 * 6 * 40, gamma=0.5, learning_rate=1e-2,
                       hidden=(16,), ent_coef=0.01)
    result = train_ppo(sim, None, config, generator=seeded(), progress=False)
    wages = torch.arange(3)
    with torch.no_grad():
        effort = result.policies["workers"].group_action(sim.observe(wages))
        wage = result.policies["planner"].group_action(sim.observe(wages))
    assert effort.tolist() == [[0] * 4, [1] * 4, [2] * 4]  # best responses to every wage
    assert wage.flatten().tolist() == [1, 1, 1]  # the planner learnt the wage the workers answer best
    # a frozen group keeps its weights while the other learns
    frozen = {name: policy.net for name, policy in result.policies.items()}
    before = {k: v.clone() for k, v in frozen["planner"].state_dict().items()}
    again = train_ppo(sim, frozen, PPOConfig(num_envs=64, rollout_steps=6, total_env_steps=64 * 6 * 2),
                      train=("workers",), generator=seeded(), progress=False)
    assert all(torch.equal(before[k], v) for k, v in again.policies["planner"].net.state_dict().items())
    with pytest.raises(ValueError, match="no agent groups"):
        train_ppo(sim, None, config, train=("managers",), progress=False)
