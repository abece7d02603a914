"""Pathwise trainer on toy problems with known answers: convergence, best-weight restore, stopping rules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from decisionlab.core.algos.pathwise import PathwiseConfig, train_pathwise

MEAN, STD = 3.0, 1.0


def _constant_policy() -> nn.Linear:
    """``a = w·1 + b``, both starting at 0, so the action starts at 0."""
    policy = nn.Linear(1, 1, bias=True)
    nn.init.zeros_(policy.weight)
    nn.init.zeros_(policy.bias)
    return policy


def _action(policy: nn.Module) -> torch.Tensor:
    return policy(torch.ones(1, 1)).reshape(())


def _value(policy: nn.Module) -> float:
    with torch.no_grad():
        return float(_action(policy))


def _squared_error(policy: nn.Module, paths: torch.Tensor) -> torch.Tensor:
    """Differentiable objective E[(a - X)^2] over a minibatch of sampled X ``[B, T]``."""
    return ((_action(policy) - paths) ** 2).mean()


def _samples(n: int, seed: int) -> torch.Tensor:
    return MEAN + STD * torch.randn(n, 4, generator=torch.Generator().manual_seed(seed))


def _held_out(policy: nn.Module, target: float = MEAN) -> float:
    """Exact E[(a - X)^2] = (a - target)^2 + var when X ~ N(target, STD^2)."""
    with torch.no_grad():
        return float((_action(policy) - target) ** 2 + STD**2)


def test_converges_to_the_mean_and_records_history() -> None:
    torch.manual_seed(0)
    policy = _constant_policy()
    config = PathwiseConfig(max_steps=400, batch_size=64, learning_rate=0.05, eval_every=20, patience=100)
    result = train_pathwise(policy, _squared_error, _samples(4096, 1), _held_out, config,
                            generator=torch.Generator().manual_seed(2), progress=False)
    assert _value(result.policy) == pytest.approx(MEAN, abs=0.1)
    assert result.best_score == pytest.approx(STD**2, abs=0.01)
    assert result.policy is policy  # trained in place

    history = result.history
    assert history.columns == ["step", "train_loss", "eval_score", "seconds"]
    assert history["step"].to_list() == list(range(0, 401, 20))
    assert history["eval_score"][0] == pytest.approx(MEAN**2 + STD**2)  # untrained: a = 0
    assert history["eval_score"].min() == pytest.approx(result.best_score)
    assert history["seconds"].is_sorted()
    assert history["train_loss"][-1] == pytest.approx(STD**2, abs=0.3)
    assert result.steps == 400
    assert result.seconds >= history["seconds"][-1]


def test_returns_the_best_held_out_weights_not_the_last() -> None:
    """Training pulls a towards 3 while the held-out score prefers 2: the returned policy is the
    snapshot that scored best (a near 2), and best_score is that policy's score."""
    policy = _constant_policy()
    config = PathwiseConfig(max_steps=150, batch_size=64, learning_rate=0.05, final_learning_rate_fraction=1.0,
                            eval_every=2, patience=1000)
    result = train_pathwise(policy, _squared_error, _samples(2048, 3), lambda p: _held_out(p, target=2.0), config,
                            generator=torch.Generator().manual_seed(4), progress=False)
    assert result.steps == 150
    assert result.history["eval_score"][-1] > result.best_score + 0.3  # the last weights were worse
    assert _value(result.policy) == pytest.approx(2.0, abs=0.15)
    assert result.best_score == _held_out(result.policy, target=2.0)


def test_target_stops_early() -> None:
    """Training stops at the first evaluation whose best score reaches ``target``."""
    target = STD**2 + 0.5**2  # |a - 3| <= 0.5
    config = PathwiseConfig(max_steps=2000, batch_size=64, learning_rate=0.05, eval_every=5, patience=1000,
                            target=target)
    result = train_pathwise(_constant_policy(), _squared_error, _samples(2048, 5), _held_out, config,
                            generator=torch.Generator().manual_seed(6), progress=False)
    assert result.best_score <= target
    assert result.steps < 200
    assert result.steps % 5 == 0
    assert result.history["step"][-1] == result.steps
    assert (result.history["eval_score"][:-1] > target).all()  # it did not run past the first hit


def test_patience_stops_when_nothing_improves() -> None:
    """With a held-out score that never improves, training stops after ``patience`` evaluations."""
    config = PathwiseConfig(max_steps=1000, batch_size=16, learning_rate=0.01, eval_every=10, patience=3)
    start = _constant_policy()
    before = {k: v.clone() for k, v in start.state_dict().items()}
    result = train_pathwise(start, _squared_error, _samples(256, 7), lambda p: 1.0, config,
                            generator=torch.Generator().manual_seed(8), progress=False)
    assert result.steps == 30
    assert result.history.height == 4
    assert result.best_score == 1.0
    for key, value in result.policy.state_dict().items():  # best = the untrained start
        assert torch.equal(value, before[key])


def test_batches_are_reproducible_from_the_generator() -> None:
    """Same generator seed and same start: identical trained weights."""
    config = PathwiseConfig(max_steps=30, batch_size=8, learning_rate=0.05, eval_every=10)
    results = [
        train_pathwise(_constant_policy(), _squared_error, _samples(512, 9), _held_out, config,
                       generator=torch.Generator().manual_seed(10), progress=False)
        for _ in range(2)
    ]
    assert _value(results[0].policy) == _value(results[1].policy)


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        PathwiseConfig(max_steps=0)
    with pytest.raises(ValueError):
        PathwiseConfig(learning_rate=0.0)
    with pytest.raises(ValueError):
        PathwiseConfig(unknown=1)  # type: ignore[call-arg]
