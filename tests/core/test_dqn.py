"""Double DQN: HL-Gauss targets, dueling identities, n-step returns, replay, targets, and learning a toy."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file, save_file

from decisionlab.core.algos.dqn import (
    DQNConfig,
    DQNResult,
    GreedyQPolicy,
    QNetworkConfig,
    StepRecord,
    dqn_loss,
    masked_argmax,
    store_n_step,
    train_dqn,
)
from decisionlab.core.algos.replay import ReplayBuffer, ReplaySample, n_step_returns
from decisionlab.core.engine import Sum, run
from decisionlab.core.nets.heads import DuelingHead, HLGaussSupport, QNetwork
from decisionlab.core.sim import BatchedSimulator, StepResult
from decisionlab.core.spaces import Box, Discrete, Spaces

SEED = 0  # of the learning tests (checked to pass on seeds 0-7)


@pytest.fixture(autouse=True)
def one_thread(decisionlab_home: object) -> Iterator[None]:
    """One intra-op thread: these nets are tiny (batch 64, width 32), so a second OpenMP thread only adds
    synchronisation; on a shared 2-core machine it made the learning tests ~15x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------------------------- toy


@dataclass
class SellState:
    t: torch.Tensor  # [B] long, periods elapsed
    inventory: torch.Tensor  # [B] fraction of the unit still held


class SellOnceSim:
    """Sell one unit over 6 periods; the price ``PRICES[t] + noise`` peaks at t = 3 (noise mean 0).

    Action: an index into ``FRACTIONS``, the fraction of the remaining inventory to sell (``no_half``:
    selling half is masked). The last period forces completion and is terminal; selling everything
    earlier is terminal too (``terminated``). Optimal: hold, hold, hold, sell all — expected return 2.0.

    The batch keeps stepping in lock-step after an env's terminal step, and such a *dead* env earns
    a bogus ``GHOST`` reward per step: by the contract, a learner must ignore what happens after
    ``done``. One that bootstraps through terminals or stores dead steps learns to sell at once
    (1.0 + 5 × 0.5 = 3.5 > 2.0), so the learning tests also check the terminal handling.
    """

    PRICES = (1.0, 1.2, 1.5, 2.0, 1.4, 1.1)
    GHOST = 0.5
    device = torch.device("cpu")
    differentiable = False

    def __init__(self, noise: float = 0.1, no_half: bool = False) -> None:
        self.prices = torch.tensor(self.PRICES)
        self.periods = self.horizon = len(self.PRICES)
        self.noise = noise
        self.no_half = no_half
        self.spaces = Spaces(observation=Box((2,), 0.0, 1.0), action=Discrete(3, masked=no_half))

    def action_mask(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tensor([True, not self.no_half, True]).expand(obs.shape[0], 3)

    def sample_exogenous(self, batch: int, periods: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.noise * torch.randn(batch, periods, generator=generator)

    def reset(self, batch: int, generator: torch.Generator | None = None) -> SellState:
        return SellState(torch.zeros(batch, dtype=torch.long), torch.ones(batch))

    def observe(self, state: SellState) -> torch.Tensor:
        return torch.stack([state.t.float() / (self.periods - 1), state.inventory], dim=1)

    def flat_observation(self, obs: torch.Tensor) -> torch.Tensor:
        return obs

    def step(self, state: SellState, action: torch.Tensor, noise: torch.Tensor) -> StepResult[SellState]:
        last = state.t >= self.periods - 1
        fraction = FRACTIONS[action.long()] if not action.is_floating_point() else action.clamp(0, 1)
        sold = torch.where(last, state.inventory, fraction * state.inventory)
        price = self.prices[state.t.clamp_max(self.periods - 1)] + noise
        left = state.inventory - sold
        ghost = self.GHOST * (state.inventory <= 1e-9).float()
        done = last | (left <= 1e-9)
        return StepResult(SellState(state.t + 1, left), sold * price + ghost, terminated=done)


FRACTIONS = torch.tensor([0.0, 0.5, 1.0])
OPTIMAL_INDICES = [0, 0, 0, 2]  # hold x3, then sell all


def toy_score(sim: SellOnceSim, policy: GreedyQPolicy, seed: int = 123, batch: int = 512) -> float:
    """Minus the mean return up to each env's terminal step, on fixed held-out paths (lower is better)."""
    exogenous = sim.sample_exogenous(batch, sim.periods, torch.Generator().manual_seed(seed))
    returns = run(sim, policy, state=sim.reset(batch), exogenous=exogenous, reducers={"return": Sum("reward")})
    return -float(returns.totals["return"].mean())  # the engine counts each episode up to its terminal step


class OptimalToyPolicy:
    name = "optimal"

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return 2 * (obs[:, 0] * 5).round().eq(3).long()  # index 2: sell everything


def greedy_path(policy: GreedyQPolicy) -> list[int]:
    """The greedy indices along the optimal path (full inventory at t = 0..3)."""
    obs = torch.tensor([[t / 5, 1.0] for t in range(4)])
    return policy.action_index(obs).tolist()


# --------------------------------------------------------------------------------------------- heads


def test_hl_gauss_target_is_a_distribution_with_mean_y() -> None:
    support = HLGaussSupport(-1.0, 3.0, bins=40)
    assert support.sigma == pytest.approx(0.75 * 0.1)
    inside = torch.linspace(-1.0 + 3 * support.sigma, 3.0 - 3 * support.sigma, 501)
    probs = support.target_probs(inside)
    assert probs.shape == (501, 40)
    assert (probs >= 0).all()
    torch.testing.assert_close(probs.sum(-1), torch.ones(501))
    # the expectation over bin centres reproduces y to a small fraction of a bin width
    torch.testing.assert_close(probs @ support.centres, inside, atol=1e-3, rtol=0)
    # a point mass of logits at y's distribution predicts y
    torch.testing.assert_close(support.expectation(probs.log()), inside, atol=1e-3, rtol=0)
    # targets outside the support are clamped to the edge bins, never NaN
    outside = support.target_probs(torch.tensor([-1e6, 1e6]))
    torch.testing.assert_close(outside.sum(-1), torch.ones(2))
    assert outside[0].argmax() == 0 and outside[1].argmax() == 39


def test_dueling_head_advantages_have_zero_mean() -> None:
    torch.manual_seed(0)
    features = torch.randn(7, 16)
    for atoms in (1, 5):
        head = DuelingHead(16, n_actions=4, atoms=atoms)
        out = head(features)  # [B, A, K]
        value, _ = head.split(features)
        assert out.shape == (7, 4, atoms)
        # the mean over actions is the value stream, i.e. the centred advantages average to zero
        torch.testing.assert_close(out.mean(dim=1, keepdim=True), value)
        torch.testing.assert_close((out - value).mean(dim=1), torch.zeros(7, atoms), atol=1e-6, rtol=0)
    scalar = QNetwork(3, 4, hidden=(8,), dueling=True)
    categorical = QNetwork(3, 4, hidden=(8,), dueling=True, head="hl_gauss", bins=11, v_min=0, v_max=1)
    x = torch.randn(5, 3)
    assert scalar(x).shape == (5, 4) and categorical(x).shape == (5, 4, 11)
    q = categorical.q_values(x)
    assert q.shape == (5, 4) and ((q >= 0) & (q <= 1)).all()


# --------------------------------------------------------------------------------------------- n-step + replay


def test_n_step_returns_hand_computed_with_terminal_cut() -> None:
    g = 0.5
    rewards = torch.tensor([[1.0, 2.0, 4.0, 8.0, 16.0], [1.0, 2.0, 4.0, 8.0, 16.0]])
    dones = torch.tensor([[False, False, True, False, False], [False] * 5])
    returns, discounts, bootstrap = n_step_returns(rewards, dones, g, n=3)
    # row 0: terminal at step 2 cuts every window that reaches it (no reward after it, no bootstrap)
    #   s=0: 1 + .5·2 + .25·4 = 3, cut;  s=1: 2 + .5·4 = 4, cut;  s=2: 4, cut
    #   s=3: 8 + .5·16 = 16 (window truncated at the segment end: bootstrap with γ²);  s=4: 16, γ
    # row 1: no terminal: s=0: 3, s=1: 2 + 2 + 2 = 6, s=2: 4 + 4 + 4 = 12, s=3: 16, s=4: 16
    torch.testing.assert_close(returns, torch.tensor([[3.0, 4.0, 4.0, 16.0, 16.0], [3.0, 6.0, 12.0, 16.0, 16.0]]))
    torch.testing.assert_close(discounts, torch.tensor([[0.0, 0.0, 0.0, 0.25, 0.5], [0.125, 0.125, 0.125, 0.25, 0.5]]))
    assert bootstrap.tolist() == [2, 3, 4, 4, 4]
    one_step, one_discount, _ = n_step_returns(rewards, dones, g, n=1)
    torch.testing.assert_close(one_step, rewards)
    torch.testing.assert_close(one_discount, torch.where(dones, 0.0, g))


def test_store_n_step_bootstraps_from_window_end_and_drops_dead_steps() -> None:
    """Two envs, 3 steps, n = 2; env 0 terminates at step 0, so its later steps must not be stored."""
    done = [torch.tensor([True, False]), torch.tensor([False, False]), torch.tensor([False, False])]
    alive = [torch.tensor([True, True]), torch.tensor([False, True]), torch.tensor([False, True])]
    window = [
        StepRecord(
            obs=torch.full((2, 1), 10.0 * t) + torch.tensor([[0.0], [1.0]]),  # env e at step t: 10 t + e
            action=torch.tensor([t, t]), reward=torch.tensor([1.0, 1.0]), done=done[t], alive=alive[t],
            next_obs=torch.full((2, 1), 10.0 * (t + 1)) + torch.tensor([[0.0], [1.0]]), next_mask=None,
        )
        for t in range(3)
    ]
    buffer = ReplayBuffer(16, obs_dim=1, n_actions=3, device="cpu")
    store_n_step(window, range(3), buffer, gamma=0.9, n=2, filter_dead=True)
    assert len(buffer) == 4  # env 0: step 0 only; env 1: steps 0, 1, 2
    rows = {(int(o), int(a)): (float(r), float(d), int(nx)) for o, a, r, d, nx in zip(
        buffer.obs[:4, 0], buffer.action[:4], buffer.reward[:4], buffer.discount[:4], buffer.next_obs[:4, 0],
        strict=True)}
    assert rows[(0, 0)][:2] == pytest.approx((1.0, 0.0))  # terminal: no bootstrap (next obs irrelevant)
    assert rows[(1, 0)] == pytest.approx((1.9, 0.81, 21))  # full 2-step window, bootstrap from step 2's obs
    assert rows[(11, 1)] == pytest.approx((1.9, 0.81, 31))  # window reaches the episode end: truncation bootstraps
    assert rows[(21, 2)] == pytest.approx((1.0, 0.9, 31))  # 1-step remainder


def test_replay_buffer_wraps_around() -> None:
    buffer = ReplayBuffer(5, obs_dim=2, n_actions=3, device="cpu", masks=True)

    def add(ids: list[int]) -> None:
        x = torch.tensor(ids, dtype=torch.float32)
        mask = torch.ones(len(ids), 3, dtype=torch.bool)
        buffer.add(x[:, None].repeat(1, 2), torch.tensor(ids), x, x, -x[:, None].repeat(1, 2), mask)

    add([0, 1, 2])
    assert (len(buffer), buffer.cursor) == (3, 3)
    drawn = buffer.sample(200, torch.Generator().manual_seed(0))
    assert set(drawn.action.tolist()) == {0, 1, 2}  # never an unwritten row
    torch.testing.assert_close(drawn.obs[:, 0], drawn.reward)  # columns stay aligned
    add([3, 4, 5, 6])
    assert (len(buffer), buffer.cursor) == (5, 2)
    assert buffer.action.tolist() == [5, 6, 2, 3, 4]  # the two oldest were overwritten
    assert buffer.next_obs[:, 0].tolist() == [-5.0, -6.0, -2.0, -3.0, -4.0]
    add(list(range(10, 22)))  # larger than the buffer: only the newest 5 survive
    assert sorted(buffer.action.tolist()) == [17, 18, 19, 20, 21]
    assert buffer.cursor == 2 and len(buffer) == 5


# --------------------------------------------------------------------------------------------- targets + policy


def constant_q(values: list[float]) -> QNetwork:
    """A plain scalar Q network that outputs ``values`` whatever the observation."""
    net = QNetwork(1, len(values), hidden=(), dueling=False)
    with torch.no_grad():
        net.q_head.out.weight.zero_()
        net.q_head.out.bias.copy_(torch.tensor(values))
    return net


def test_double_dqn_target_uses_online_argmax_and_target_values() -> None:
    online, target = constant_q([1.0, 3.0, 2.0]), constant_q([10.0, 5.0, 20.0])
    batch = ReplaySample(
        obs=torch.zeros(2, 1), action=torch.tensor([0, 1]), reward=torch.tensor([1.0, 0.5]),
        discount=torch.tensor([0.5, 0.0]), next_obs=torch.zeros(2, 1), next_mask=None,
    )

    def loss_for(target_q: float, **kwargs: object) -> tuple[float, float]:
        got = float(dqn_loss(online, target, batch, huber_delta=100.0, **kwargs).detach())
        y = torch.tensor([1.0 + 0.5 * target_q, 0.5])  # env 1 is terminal: no bootstrap
        want = float(0.5 * ((torch.tensor([1.0, 3.0]) - y) ** 2).mean())  # Huber is quadratic below delta
        return got, want

    got, want = loss_for(5.0)
    assert got == pytest.approx(want)  # online picks a=1, the target net says 5
    got, want = loss_for(20.0, double=False)
    assert got == pytest.approx(want)  # plain DQN: max of the target net
    batch.next_mask = torch.tensor([[True, False, True], [True, True, True]])
    got, want = loss_for(20.0)
    assert got == pytest.approx(want)  # a=1 is illegal: online picks a=2, target says 20


def test_greedy_policy_respects_mask_and_round_trips(tmp_path) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    net = QNetwork(2, 3, hidden=(8,), head="hl_gauss", bins=9, v_min=-1, v_max=1)
    policy = GreedyQPolicy(net, SellOnceSim())
    obs = torch.randn(64, 2)
    best = policy.action_index(obs)
    masked = GreedyQPolicy(net, SellOnceSim(no_half=True))
    legal = masked.action_index(obs)
    assert (legal != 1).all() and (legal[best != 1] == best[best != 1]).all()
    assert masked_argmax(torch.tensor([[5.0, 1.0]]), torch.tensor([[False, True]])).item() == 1

    save_file(policy.state_dict(), tmp_path / "w.safetensors")
    rebuilt = GreedyQPolicy.from_config(policy.config()).bind(SellOnceSim())
    rebuilt.load_state_dict(load_file(tmp_path / "w.safetensors"))
    torch.testing.assert_close(rebuilt.act(obs), policy.act(obs))
    assert policy.act(obs).dtype == torch.long


def test_config_is_strict() -> None:
    with pytest.raises(ValidationError):
        DQNConfig(learning_rte=1e-3)
    with pytest.raises(ValidationError):
        QNetworkConfig(v_min=1.0, v_max=0.0)
    with pytest.raises(ValueError, match="config.network"):
        train_dqn(SellOnceSim(), QNetwork(2, 3), DQNConfig(network=QNetworkConfig()), progress=False)
    continuous = SellOnceSim()
    continuous.spaces = Spaces(observation=Box((2,)), action=Box((), 0.0, 1.0))
    with pytest.raises(ValueError, match="single-choice Discrete"):
        train_dqn(continuous, None, DQNConfig(), progress=False)


# --------------------------------------------------------------------------------------------- learning


def train_toy(
    config: DQNConfig, *, keep_best: bool = True, no_half: bool = False
) -> tuple[SellOnceSim, GreedyQPolicy, DQNResult]:
    torch.manual_seed(SEED)
    sim = SellOnceSim(no_half=no_half)
    assert isinstance(sim, BatchedSimulator)
    evaluate: Callable[[GreedyQPolicy], float] = lambda policy: toy_score(sim, policy)  # noqa: E731
    result = train_dqn(sim, None, config, evaluate=evaluate if keep_best else None,
                       generator=torch.Generator().manual_seed(SEED), progress=False)
    return sim, result.policy, result


TOY = dict(total_env_steps=6_000, num_envs=8, gamma=1.0, buffer_size=5_000, batch_size=64, learning_rate=2e-3,
           learning_starts=256, gradient_steps=2, target_update_every=50, exploration_fraction=0.5, eval_every=500)


def test_double_dqn_learns_the_optimal_sale_time() -> None:
    config = DQNConfig(**TOY, n_step=1, network=QNetworkConfig(hidden=(32, 32)))
    sim, policy, result = train_toy(config)
    assert greedy_path(policy) == OPTIMAL_INDICES
    optimal = toy_score(sim, OptimalToyPolicy())  # type: ignore[arg-type]
    assert result.best_score == pytest.approx(optimal, abs=0.01)
    assert toy_score(sim, policy) == pytest.approx(optimal, abs=0.01)  # the best weights were kept
    history = result.history
    assert history.columns == ["step", "env_steps", "loss", "eval_score", "epsilon", "seconds"]
    assert history["env_steps"].to_list()[-1] == result.env_steps == 6_000
    assert history["epsilon"].to_list()[-1] == pytest.approx(0.05)


def test_hl_gauss_double_dqn_learns_with_masks_and_n_step() -> None:
    """HL-Gauss head (dueling on logits), a masked action space forbidding 'sell half', 3-step returns; no
    held-out selection: the *final* weights must be optimal and their Q-values calibrated."""
    config = DQNConfig(**TOY, n_step=3, network=QNetworkConfig(
        hidden=(32, 32), head="hl_gauss", bins=32, v_min=-0.5, v_max=2.7))
    sim, policy, result = train_toy(config, keep_best=False, no_half=True)
    assert greedy_path(policy) == OPTIMAL_INDICES
    assert toy_score(sim, policy) == pytest.approx(toy_score(sim, OptimalToyPolicy()), abs=0.01)  # type: ignore[arg-type]
    # Q(t, full inventory, sell all) = E[price at t] for t = 0..3: the expectation over bins is calibrated
    q_sell_all = policy.q_net.q_values(torch.tensor([[t / 5, 1.0] for t in range(4)]))[:, 2]
    torch.testing.assert_close(q_sell_all, torch.tensor(SellOnceSim.PRICES[:4]), atol=0.15, rtol=0)
    assert result.best_score != result.best_score  # NaN: nothing was evaluated


def test_early_stop_at_target() -> None:
    config = DQNConfig(**{**TOY, "total_env_steps": 50_000}, target=-1.95, network=QNetworkConfig(hidden=(32, 32)))
    _, _, result = train_toy(config)
    assert result.best_score <= -1.95
    assert result.env_steps < 50_000


def test_training_is_reproducible_from_the_seeds() -> None:
    config = DQNConfig(**{**TOY, "total_env_steps": 600, "learning_starts": 96}, n_step=2,
                       network=QNetworkConfig(hidden=(16,)))
    first = train_toy(config, keep_best=False)[1].state_dict()
    second = train_toy(config, keep_best=False)[1].state_dict()
    for name, value in first.items():
        torch.testing.assert_close(value, second[name], rtol=0, atol=0)
    assert any(not torch.equal(value, QNetwork(2, 3, hidden=(16,)).state_dict()[name.removeprefix("q_net.")])
               for name, value in first.items())  # it did train
