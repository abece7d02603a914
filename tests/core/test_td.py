"""Spatio-temporal TD learning: a small semi-Markov process whose exact V is solved by linear algebra
is the oracle of online TD(0) and of offline fitted TD; plus the value modules' configs, maps and
the online/offline blend."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import cache

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from decisionlab.core.algos.td import (
    FittedTDConfig,
    Transitions,
    blend,
    discount_for,
    fitted_td,
    td0_update,
)
from decisionlab.core.nets.value import NeuralValue, TabularValue, value_from_config, value_table
from decisionlab.core.seeding import make_generator

L, T, BIN_S = 3, 4, 600.0  # 3 locations x 4 time bins of 600 s; the period is 2400 s
PERIOD_S = T * BIN_S
GAMMA = 0.9  # per BIN_S seconds
S = L * T  # state s = bin * L + location, the row-major order of a [T, L] table


@dataclass(frozen=True)
class Process:
    """From each state one of two outcomes: probability (tenths), reward, next location, bins ahead, terminal."""

    tenths: np.ndarray  # [S] the tenths of probability of outcome 0
    reward: np.ndarray  # [S, 2]
    next_location: np.ndarray  # [S, 2]
    hops: np.ndarray  # [S, 2] bins elapsed: 1 or 2
    terminal: np.ndarray  # [S, 2] bool

    @property
    def prob(self) -> np.ndarray:
        return np.stack([self.tenths / 10, 1 - self.tenths / 10], axis=1)

    @property
    def discount(self) -> np.ndarray:
        return GAMMA**self.hops * ~self.terminal

    @property
    def next_state(self) -> np.ndarray:
        next_bin = (np.arange(S)[:, None] // L + self.hops) % T
        return next_bin * L + self.next_location

    def exact_value(self) -> np.ndarray:
        """``V [T, L]`` solving ``V = r̄ + M V`` with ``M[s, s'] = Σ_o p_o · discount_o · [s'_o = s']``."""
        m = np.zeros((S, S))
        np.add.at(m, (np.repeat(np.arange(S), 2), self.next_state.ravel()), (self.prob * self.discount).ravel())
        return np.linalg.solve(np.eye(S) - m, (self.prob * self.reward).sum(axis=1)).reshape(T, L)

    def transitions(self, state: torch.Tensor, outcome: torch.Tensor) -> Transitions:
        """The transitions of outcomes ``outcome [N]`` from states ``state [N]`` (times at bin centres)."""
        hops = torch.as_tensor(self.hops)[state, outcome]
        time_s = (state // L + 0.5) * BIN_S
        live = torch.as_tensor(~self.terminal)[state, outcome]
        return Transitions(
            location=state % L,
            time_s=time_s.float(),
            reward=torch.as_tensor(self.reward, dtype=torch.float32)[state, outcome],
            next_location=torch.as_tensor(self.next_location)[state, outcome],
            # Not wrapped: the value modules must wrap times past the period themselves.
            next_time_s=(time_s + hops * BIN_S).float(),
            discount=(discount_for(hops * BIN_S, GAMMA, BIN_S) * live).float(),
        )

    def sample(self, state: torch.Tensor, generator: torch.Generator) -> Transitions:
        u = torch.rand(state.shape[0], generator=generator, dtype=torch.float64)
        return self.transitions(state, (u >= torch.as_tensor(self.tenths)[state] / 10).long())

    def logged(self) -> Transitions:
        """Ten transitions per state with outcome counts equal to the tenths: its empirical process is
        the true one, so fitted TD's fixed point on it is the exact V."""
        state = torch.arange(S).repeat_interleave(10)
        outcome = (torch.arange(10).repeat(S) >= torch.as_tensor(self.tenths).repeat_interleave(10)).long()
        return self.transitions(state, outcome)


@cache
def process() -> Process:
    rng = np.random.default_rng(0)
    return Process(
        tenths=rng.integers(2, 9, S),
        next_location=rng.integers(0, L, (S, 2)),
        hops=rng.integers(1, 3, (S, 2)),
        reward=rng.uniform(0, 5, (S, 2)).round(2),
        terminal=rng.uniform(size=(S, 2)) < 0.15,
    )


def exact() -> torch.Tensor:
    return torch.as_tensor(process().exact_value(), dtype=torch.float32)


def value_range() -> float:
    v = process().exact_value()
    return float(v.max() - v.min())  # ~6.5 (V in [5.8, 12.3])


def table_of(values: torch.Tensor) -> TabularValue:
    table = TabularValue(L, T, PERIOD_S)
    with torch.no_grad():
        table.table.copy_(values)
    return table


def batch(location: list[int], time_s: list[float], reward: list[float], next_location: list[int],
          next_time_s: list[float], discount: list[float]) -> Transitions:
    return Transitions(torch.tensor(location), torch.tensor(time_s), torch.tensor(reward), torch.tensor(next_location),
                       torch.tensor(next_time_s), torch.tensor(discount))


# --------------------------------------------------------------------------- the oracle and the basics


def test_exact_value_is_the_fixed_point_of_the_expected_td0_update() -> None:
    """The logged data carry the exact outcome frequencies, so TD(0) with alpha 1 on all of them at once
    (mean δ per entry = the Bellman residual) leaves the solved V unchanged: oracle and updates agree."""
    table = table_of(exact())
    delta = td0_update(table, process().logged(), alpha=1.0)
    torch.testing.assert_close(table.table.detach(), exact(), atol=1e-5, rtol=0)
    assert delta.abs().max() > 0.5  # single transitions are far from V: only their mean vanishes


def test_time_bins_wrap_around_the_period() -> None:
    table = TabularValue(L, T, PERIOD_S)
    times = torch.tensor([0.0, 599.9, 600.0, 2399.9, 2400.0, 3000.0, -1.0, -2400.0, 10 * PERIOD_S + 1300.0])
    assert table.time_bin(times).tolist() == [0, 0, 1, 3, 0, 1, 3, 0, 2]


def test_discount_for_elapsed_time() -> None:
    torch.testing.assert_close(discount_for(torch.tensor([0.0, 600.0, 1200.0, 300.0]), 0.9, 600.0),
                               torch.tensor([1.0, 0.9, 0.81, 0.9**0.5]))
    with pytest.raises(ValueError, match="gamma"):
        discount_for(1.0, 1.5, 600.0)
    with pytest.raises(ValueError, match="gamma_period_s"):
        discount_for(1.0, 0.9, 0.0)


def test_transitions_helpers() -> None:
    data = process().logged()
    assert len(data) == 10 * S
    mask = data.location == 1
    picked = data.select(mask)
    assert len(picked) == int(mask.sum()) and bool((picked.location == 1).all())
    index = torch.tensor([3, 3, 0])
    torch.testing.assert_close(data.select(index).reward, data.reward[index])
    both = Transitions.cat([data.select(slice(0, 5)), data.select(slice(5, None))])
    for name in ("location", "time_s", "reward", "next_location", "next_time_s", "discount"):
        assert torch.equal(getattr(both, name), getattr(data, name))
    assert data.to("cpu").reward.device.type == "cpu"
    with pytest.raises(ValueError, match=r"\[N\]"):
        Transitions(torch.zeros(2, dtype=torch.long), torch.zeros(3), torch.zeros(2), torch.zeros(2, dtype=torch.long),
                    torch.zeros(2), torch.zeros(2))
    with pytest.raises(ValueError, match="at least one"):
        Transitions.cat([])


# --------------------------------------------------------------------------- online TD(0)


def test_td0_single_transition_is_the_textbook_update() -> None:
    values = torch.arange(S, dtype=torch.float32).view(T, L) / 2
    table = table_of(values)
    # From location 2 in bin 1 (t = 900 s) to location 0 two bins on (t = 2100 s, bin 3), reward 1.5, γ 0.81.
    delta = td0_update(table, batch([2], [900.0], [1.5], [0], [2100.0], [0.81]), alpha=0.3)
    by_hand = 1.5 + 0.81 * float(values[3, 0]) - float(values[1, 2])
    torch.testing.assert_close(delta, torch.tensor([by_hand]))
    expected = values.clone()
    expected[1, 2] += 0.3 * by_hand
    torch.testing.assert_close(table.table.detach(), expected)


def test_td0_duplicates_move_by_alpha_times_their_mean_error() -> None:
    """Three transitions from one entry and one from another, with one landing on a start entry: all
    errors come from the table before the update, and the shared entry moves by alpha · mean(δ)."""
    values = torch.arange(S, dtype=torch.float32).view(T, L)
    table = table_of(values)
    data = batch(
        location=[0, 0, 0, 1], time_s=[100.0, 200.0, 550.0, 1300.0], reward=[1.0, 2.0, 6.0, 0.5],
        next_location=[1, 2, 0, 0], next_time_s=[1300.0, 2500.0, 1000.0, 300.0], discount=[0.9, 0.5, 0.0, 0.81],
    )
    delta = td0_update(table, data, alpha=0.5)
    # Next states (bin, location): (2, 1), (0, 2) [2500 s wraps to bin 0], terminal, (0, 0) = the shared start.
    v = values
    by_hand = torch.stack([1.0 + 0.9 * v[2, 1] - v[0, 0], 2.0 + 0.5 * v[0, 2] - v[0, 0], 6.0 - v[0, 0],
                           0.5 + 0.81 * v[0, 0] - v[2, 1]])
    torch.testing.assert_close(delta, by_hand)
    expected = values.clone()
    expected[0, 0] += 0.5 * by_hand[:3].mean()
    expected[2, 1] += 0.5 * by_hand[3]
    torch.testing.assert_close(table.table.detach(), expected)


def test_td0_on_sampled_transitions_converges_to_the_exact_value() -> None:
    """Batches of 512 uniformly drawn states (~43 transitions per entry), alpha_k = 0.5 / (1 + k / 100).

    Tolerance: δ has a standard deviation of ~2.5 per transition (at most 4.6, by entry), so at the
    final step size α ≈ 0.05 the stochastic-approximation noise of an entry is about
    sqrt(α σ² / (2 n (1 − ρ))) ≈ 0.1 (n ≈ 43 per batch, ρ ≈ 0.7 the spectral radius of the discounted
    transition matrix). Seeds 0-19 gave a max abs error (of 12 entries) of 0.08-0.19; 0.35 is ~2x that,
    against values of 5.8-12.3; a table stuck at its initial 0, or summing duplicate δ, fails by far.
    """
    generator = make_generator(0)
    table = TabularValue(L, T, PERIOD_S)
    for k in range(1000):
        state = torch.randint(S, (512,), generator=generator)
        td0_update(table, process().sample(state, generator), alpha=min(0.5, 0.5 / (1 + k / 100)))
    assert float((table.table.detach() - exact()).abs().max()) < 0.35


# --------------------------------------------------------------------------- offline fitted TD


def test_fitted_td_recovers_the_exact_value_with_a_table() -> None:
    """Full batch (batch >= data): no sampling noise, so Adam on the fitted Bellman iteration gets
    within ~1e-5 of the exact V in 2000 steps (1e-3 asserted)."""
    table = TabularValue(L, T, PERIOD_S)
    config = FittedTDConfig(iterations=2000, batch_size=1024, learning_rate=0.1, target_update_every=20)
    result = fitted_td(table, process().logged(), config, generator=make_generator(0))
    assert result.value is table and result.steps == 2000
    assert float((table.table.detach() - exact()).abs().max()) < 1e-3
    assert result.history.columns == ["step", "loss", "seconds"]
    assert result.history.height == 2000 // 20
    # Targets are stochastic (and move), so the loss need not fall: it ends at their irreducible
    # variance, the mean δ² at the exact V.
    irreducible = float(td0_update(table_of(exact()), process().logged(), alpha=0.0).pow(2).mean())
    assert result.history["loss"][-1] == pytest.approx(irreducible, rel=1e-3)


@pytest.mark.parametrize("head", ["scalar", "hl_gauss"])
def test_fitted_td_recovers_the_exact_value_with_a_network(head: str) -> None:
    """Minibatches of 40 of the 120 transitions; seeds 0-5 gave at most 0.9% (scalar) and 1.3% (HL-Gauss)
    of the value range as max abs error, so 5% has margin, while a net that only learned the mean value
    (off by up to 61% of the range) fails."""
    torch.manual_seed(0)
    net = NeuralValue(L, T, PERIOD_S, hidden=(32, 32), head=head, bins=41, v_min=0.0, v_max=20.0)
    config = FittedTDConfig(iterations=1500, batch_size=40, learning_rate=3e-3, target_update_every=25)
    fitted_td(net, process().logged(), config, generator=make_generator(0))
    error = float((value_table(net) - exact()).abs().max())
    assert error < 0.05 * value_range()


def test_fitted_td_is_determined_by_the_generator_seed() -> None:
    torch.manual_seed(0)
    initial = NeuralValue(L, T, PERIOD_S, hidden=(16,), head="hl_gauss", bins=21, v_min=0.0, v_max=20.0)
    config = FittedTDConfig(iterations=60, batch_size=32, learning_rate=1e-2, target_update_every=10)

    def trained(seed: int) -> dict[str, torch.Tensor]:
        net = copy.deepcopy(initial)
        fitted_td(net, process().logged(), config, generator=make_generator(seed))
        return net.state_dict()

    first, again, other = trained(1), trained(1), trained(2)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)  # the seed does shuffle the batches


def test_fitted_td_logs_a_row_per_target_refresh_and_the_last_step(capsys: pytest.CaptureFixture[str]) -> None:
    table = TabularValue(L, T, PERIOD_S)
    config = FittedTDConfig(iterations=25, batch_size=50, target_update_every=10)
    result = fitted_td(table, process().logged(), config, generator=make_generator(0), progress=True, description="td")
    assert result.history["step"].to_list() == [10, 20, 25]
    assert "td" in capsys.readouterr().err  # the progress bar


def test_fitted_td_config_is_bounded() -> None:
    with pytest.raises(ValidationError):
        FittedTDConfig(iterations=0)
    with pytest.raises(ValidationError):
        FittedTDConfig(learning_rate=0.0)
    with pytest.raises(ValidationError):
        FittedTDConfig(unknown=1)
    assert "gradient steps" in FittedTDConfig.model_fields["iterations"].description


# --------------------------------------------------------------------------- value modules, maps, blending


def modules() -> list[torch.nn.Module]:
    torch.manual_seed(0)
    table = table_of(torch.randn(T, L))
    return [
        table,
        NeuralValue(L, T, PERIOD_S, embedding_dim=4, harmonics=2, hidden=(8,), activation="tanh"),
        NeuralValue(L, T, PERIOD_S, hidden=(8, 8), head="hl_gauss", bins=11, v_min=-3.0, v_max=3.0),
    ]


@pytest.mark.parametrize("index", range(3))
def test_config_round_trip_gives_identical_outputs(index: int) -> None:
    module = modules()[index]
    config = json.loads(json.dumps(module.config()))  # plain JSON
    rebuilt = value_from_config(config)
    assert type(rebuilt) is type(module) and rebuilt.config() == module.config()
    rebuilt.load_state_dict(module.state_dict())
    location, time_s = torch.tensor([0, 1, 2, 2, 0]), torch.tensor([0.0, 700.0, 1500.0, 2399.0, 5000.0])
    assert torch.equal(rebuilt(location, time_s), module(location, time_s))


def test_value_from_config_rejects_an_unknown_type() -> None:
    with pytest.raises(ValueError, match="unknown value type"):
        value_from_config({"type": "spline"})


@pytest.mark.parametrize("index", range(3))
def test_value_table_matches_forward_at_bin_centres(index: int) -> None:
    module = modules()[index]
    grid = value_table(module)
    assert grid.shape == (T, L) and not grid.requires_grad
    for b in range(T):
        centre = torch.full((L,), (b + 0.5) * BIN_S)
        torch.testing.assert_close(grid[b], module(torch.arange(L), centre).detach())
    if isinstance(module, TabularValue):
        torch.testing.assert_close(grid, module.table.detach())


def test_neural_value_heads_and_periodicity() -> None:
    _, scalar, categorical = modules()
    location, time_s = torch.tensor([0, 1, 2]), torch.tensor([10.0, 900.0, 2000.0])
    assert scalar.logits(location, time_s).shape == (3, 1)
    logits = categorical.logits(location, time_s)
    assert logits.shape == (3, 11)
    torch.testing.assert_close(categorical(location, time_s), torch.softmax(logits, -1) @ categorical.support.centres)
    for net in (scalar, categorical):
        torch.testing.assert_close(net(location, time_s + 3 * PERIOD_S), net(location, time_s), atol=1e-5, rtol=0)
        assert net.loss(location, time_s, torch.tensor([0.5, -1.0, 2.0])).shape == ()
    with pytest.raises(ValueError, match="head"):
        NeuralValue(L, T, PERIOD_S, head="quantile")


def test_blend_is_the_weighted_sum_and_changes_neither_input() -> None:
    online, offline, _ = modules()
    before_online, before_offline = online.table.detach().clone(), value_table(offline)
    mixed = blend(online, offline, 0.3)
    assert isinstance(mixed, TabularValue) and mixed is not online
    torch.testing.assert_close(mixed.table.detach(), 0.3 * before_online + 0.7 * before_offline)
    torch.testing.assert_close(blend(online, offline, 1.0).table.detach(), before_online)
    torch.testing.assert_close(blend(online, offline, 0.0).table.detach(), before_offline)
    assert torch.equal(online.table.detach(), before_online) and torch.equal(value_table(offline), before_offline)


@pytest.mark.parametrize("weight", [-0.1, 1.1, float("nan")])
def test_blend_weight_out_of_range_raises(weight: float) -> None:
    online, offline, _ = modules()
    with pytest.raises(ValueError, match=r"weight_online must be in \[0, 1\]"):
        blend(online, offline, weight)
