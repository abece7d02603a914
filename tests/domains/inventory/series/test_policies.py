"""real_series: the simulator, the forecast, the baselines, the oracle and a quick HDPO run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from decisionlab.core.seeding import make_generator
from decisionlab.domains.inventory import SPEC
from decisionlab.domains.inventory.series.fit import fit_base_stock, training_costs
from decisionlab.domains.inventory.series.forecast import SeasonalEmpiricalForecaster, estimate_promo_uplift
from decisionlab.domains.inventory.series.metrics import episode_metrics
from decisionlab.domains.inventory.series.policies import (
    NEWSVENDOR_FAMILY,
    SERIES_POLICIES,
    JustInTime,
    QuantileNewsvendor,
    SeriesBaseStock,
    SeriesOrderNet,
)
from decisionlab.domains.inventory.series.scenario import RealSeriesScenario, series_data
from decisionlab.domains.inventory.series.sim import SeriesObservation, SeriesSim
from decisionlab.domains.inventory.series.train import (
    SeriesHDPOSettings,
    dev_span,
    train_series_hdpo,
)

SMALL = RealSeriesScenario(
    synthetic_items=2, synthetic_stores=3, synthetic_days=250, synthetic_seed=5, lead_time=2,
    window_periods=28, test_periods=42, dev_periods=28, warmup_periods=14,
)
CPU = torch.device("cpu")


def _observation(window: torch.Tensor, lead_time: int, **fields: torch.Tensor) -> SeriesObservation:
    batch = window.shape[0]
    base = {
        "on_hand": torch.zeros(batch), "pipeline": torch.zeros(batch, lead_time), "demand_window": window,
        "promo_window": torch.zeros_like(window), "promo_ahead": torch.zeros(batch, lead_time + 1),
        "phase": torch.zeros(batch, dtype=torch.long), "scale": torch.ones(batch),
        "critical_ratio": torch.full((batch,), 0.9), "series": torch.zeros(batch, dtype=torch.long),
        "period": torch.full((batch,), 100, dtype=torch.long),
    }
    return SeriesObservation(**{**base, **fields})


# ----- simulator ---------------------------------------------------------------------------------


def test_observation_reads_the_right_periods() -> None:
    sim = SeriesSim(SMALL, CPU)
    data = series_data(SMALL)
    state = sim.start_state(torch.tensor([0, 4]), torch.tensor([40, 100]))
    obs = sim.observe(state)
    assert torch.equal(obs.demand_window[0], data.demand[0, 12:40])
    assert torch.equal(obs.demand_window[1], data.demand[4, 72:100])
    assert torch.equal(obs.promo_ahead[1], data.promo[4, 100:103].float())
    weekday = torch.tensor([data.dates[40].weekday(), data.dates[100].weekday()])
    assert torch.equal(obs.phase, weekday)
    assert sim.flat_observation(obs).shape == (2, sim.observation_size)


def test_train_split_hides_the_held_out_periods() -> None:
    sim = SeriesSim(SMALL, CPU, split="train")
    late = torch.tensor([sim.split + 5])
    assert sim.windows(torch.tensor([0]), torch.tensor([sim.split - 2]), 4)[0, 2:].abs().sum() == 0
    obs = sim.observe(sim.start_state(torch.tensor([1]), late))
    assert obs.demand_window[0, -4:].abs().sum() == 0


def test_lost_sales_and_backlog_dynamics() -> None:
    for shortage, next_on_hand in (("lost_sales", 0.0), ("backlog", -3.0)):
        sim = SeriesSim(SMALL.model_copy(update={"shortage": shortage}), CPU)
        state = sim.start_state(torch.tensor([0]), torch.tensor([50]), torch.tensor([2.0]), torch.tensor([[1.0, 4.0]]))
        result = sim.step(state, torch.tensor([5.0]), torch.tensor([6.0]))
        p = float(series_data(SMALL).underage_cost[0])
        assert result.state.on_hand.item() == pytest.approx(next_on_hand)
        assert result.state.pipeline.tolist() == [[4.0, 5.0]]
        assert result.state.period.item() == 51
        assert -result.reward.item() == pytest.approx(3.0 * p)


def test_reset_and_sample_exogenous_agree() -> None:
    sim = SeriesSim(SMALL, CPU, split="train")
    gen = make_generator(3)
    state = sim.reset(5, gen)
    demand = sim.sample_exogenous(5, 7, gen)
    assert torch.equal(demand, sim.windows(state.series, state.period, 7))
    assert int(state.period.min()) >= SMALL.window_periods and int(state.period.max()) < sim.split


def test_gymnasium_adapter_runs_on_the_training_span() -> None:
    from decisionlab.core.gym import SimulatorEnv

    env = SimulatorEnv(SeriesSim(SMALL, CPU, split="train"), 5)
    obs, _ = env.reset(seed=1)
    assert obs.shape == env.observation_space.shape
    for _ in range(5):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert np.isfinite(reward) and reward <= 0 and not terminated
    assert truncated


# ----- forecast and the newsvendor family -----------------------------------------------------------


def test_forecast_uses_same_weekday_lags_and_promo_uplift() -> None:
    forecaster = SeasonalEmpiricalForecaster(lead_time=2, window=28, season_length=7, uplift=2.0)
    window = torch.arange(28.0).unsqueeze(0) + 1.0  # value = window position + 1 (t−28 .. t−1)
    promo_window = torch.zeros(1, 28)
    promo_window[0, 21] = 1.0  # the period one week before t
    obs = _observation(window, 2, promo_window=promo_window, promo_ahead=torch.tensor([[0.0, 1.0, 0.0]]))
    values = forecaster.period_values(obs)[0]  # [L + 1, k]
    # period t (j = 0): t−7, t−14, t−21, t−28 are positions 21, 14, 7, 0; position 21 was promoted
    assert values[0].tolist() == [22.0 / 2.0, 15.0, 8.0, 1.0]
    # period t+1 (promoted): t−6 .. t−27, each times the uplift
    assert values[1].tolist() == [2 * 23.0, 2 * 16.0, 2 * 9.0, 2 * 2.0]
    assert values[2].tolist() == [24.0, 17.0, 10.0, 3.0]


@pytest.mark.parametrize("rule", ["fixed", "newsvendor", "transformed"])
def test_newsvendor_orders_up_to_the_right_quantile(rule: str) -> None:
    forecaster = SeasonalEmpiricalForecaster(lead_time=2, window=28, season_length=7, samples=256)
    gen = torch.Generator().manual_seed(0)
    window = torch.poisson(torch.full((6, 28), 5.0), generator=gen)
    ratio = torch.tensor([0.6, 0.7, 0.8, 0.85, 0.9, 0.95])
    obs = _observation(window, 2, critical_ratio=ratio, on_hand=torch.tensor([0.0, 3, 30, 1, 2, 0]),
                       pipeline=torch.tensor([[1.0, 2.0]] * 6))
    policy = QuantileNewsvendor(forecaster, rule, fixed_level=0.8, a=0.5, b=0.7)  # type: ignore[arg-type]
    level = {"fixed": torch.full((6,), 0.8), "newsvendor": ratio,
             "transformed": torch.sigmoid(0.5 + 0.7 * torch.logit(ratio))}[rule]
    sums = forecaster.paths(obs).sum(dim=2)  # [B, M]
    expected = torch.stack([torch.quantile(sums[i], level[i]) for i in range(6)])
    position = obs.on_hand + obs.pipeline.sum(1)
    assert torch.allclose(policy.act(obs), torch.relu(expected - position), atol=1e-4)
    assert policy.act(obs)[2] == 0  # far above the target: order nothing


def test_transformed_rule_contains_fixed_and_newsvendor() -> None:
    forecaster = SeasonalEmpiricalForecaster(lead_time=1, window=14, season_length=7)
    obs = _observation(torch.rand(4, 14) * 9, 1, critical_ratio=torch.tensor([0.7, 0.8, 0.9, 0.95]))
    nv = QuantileNewsvendor(forecaster, "newsvendor").act(obs)
    assert torch.allclose(QuantileNewsvendor(forecaster, "transformed", a=0.0, b=1.0).act(obs), nv, atol=1e-5)
    fixed = QuantileNewsvendor(forecaster, "fixed", fixed_level=0.75).act(obs)
    logit = float(torch.logit(torch.tensor(0.75)))
    assert torch.allclose(QuantileNewsvendor(forecaster, "transformed", a=logit, b=0.0).act(obs), fixed, atol=1e-5)


def test_promo_uplift_estimate_is_above_one() -> None:
    data = series_data(SMALL)
    assert 1.3 < estimate_promo_uplift(data, 7) < 3.0  # generator uplifts are U[1.5, 2.5]


# ----- fitted baselines, oracle, evaluation --------------------------------------------------------


def test_fitted_base_stock_beats_nearby_levels_on_train() -> None:
    level = fit_base_stock(SMALL)
    n = level.shape[0]
    candidates = torch.stack([level, level * 0.8, level * 1.25 + 0.5])
    costs = training_costs(SMALL, lambda c: SeriesBaseStock(candidates.reshape(-1), per="row"), 3)
    assert costs.shape == (3, n)
    assert bool((costs[0] <= costs[1] + 1e-6).all() and (costs[0] <= costs[2] + 1e-6).all())


def test_fits_are_kept_in_the_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    """A restart (cleared in-process cache) or a second worker reads the fit instead of searching."""
    from decisionlab.domains.inventory.series import fit

    scenario = SMALL.model_copy(update={"lead_time": 1})
    first = fit.fit_base_stock(scenario)
    fit.fit_base_stock.cache_clear()

    def no_search(_: RealSeriesScenario) -> torch.Tensor:
        raise AssertionError("searched again")

    monkeypatch.setattr(fit, "_search_base_stock", no_search)
    assert torch.equal(fit.fit_base_stock(scenario), first)
    fit.fit_base_stock.cache_clear()


def test_oracle_is_a_lower_bound_of_every_admissible_baseline() -> None:
    results = {
        name: episode_metrics(SMALL, build(SMALL, CPU), 100, 0, CPU)["cost_per_period"]
        for name, (_, build, _) in SERIES_POLICIES.items()
    }
    oracle = results.pop("just_in_time")
    assert oracle.shape == (6,)
    assert np.allclose(oracle, 0.0)  # with warm-up ≥ L, the order always arrives as the demand comes
    assert not SERIES_POLICIES["just_in_time"][2] and isinstance(SERIES_POLICIES["just_in_time"][1](SMALL, CPU),
                                                                 JustInTime)
    for name, costs in results.items():
        assert (oracle <= costs + 1e-9).all(), name
        assert costs.mean() > 0
    assert set(NEWSVENDOR_FAMILY) <= set(results)
    first_three = episode_metrics(SMALL, SERIES_POLICIES["base_stock"][1](SMALL, CPU), 3, 0, CPU)
    assert first_three["cost_per_period"].shape == (3,)


def test_oracle_clears_the_start_up_backlog() -> None:
    backlog = SMALL.model_copy(update={"shortage": "backlog"})
    costs = episode_metrics(backlog, JustInTime(backlog, CPU), 100, 0, CPU)["cost_per_period"]
    assert np.allclose(costs, 0.0)
    myopic = episode_metrics(backlog, SERIES_POLICIES["myopic"][1](backlog, CPU), 100, 0, CPU)["cost_per_period"]
    newsvendor = SERIES_POLICIES["newsvendor_quantile"][1](backlog, CPU)
    assert (myopic > 0).all() and (episode_metrics(backlog, newsvendor, 100, 0, CPU)["cost_per_period"] > 0).all()


# ----- HDPO ----------------------------------------------------------------------------------------


def test_quick_hdpo_improves_on_the_untrained_net_and_round_trips() -> None:
    settings = SeriesHDPOSettings(max_steps=60, batch_size=128, periods=24, warmup=8, hidden=(32, 32),
                                  learning_rate=1e-2, warmup_steps=5, eval_every=30, eval_from=0.0)
    outcome = train_series_hdpo(SMALL, seed=0, device=CPU, progress=False, settings=settings)
    curve = outcome.curve
    assert curve is not None
    untrained, best = float(curve["eval_score"][0]), outcome.metrics["dev_cost_per_period"]
    assert best < 0.8 * untrained
    # dev score = a backtest of the returned policy on the dev span
    sim = SeriesSim(SMALL, CPU, split="train")
    start, periods, warmup = dev_span(sim)
    assert start + periods == sim.split
    rebuilt = SPEC.load_policy(outcome.policy_config, outcome.policy.state_dict(), SMALL, CPU)
    obs = sim.observe(sim.start_state(torch.arange(6), torch.full((6,), 60)))
    with torch.no_grad():
        assert torch.allclose(rebuilt.act(obs), outcome.policy.act(obs))
    assert isinstance(rebuilt, SeriesOrderNet)
    with pytest.raises(Exception, match="window_periods=28"):
        SPEC.load_policy(outcome.policy_config, outcome.policy.state_dict(),
                           SMALL.model_copy(update={"window_periods": 35}), CPU)


@pytest.mark.slow
def test_hdpo_beats_every_newsvendor_variant_on_held_out_periods() -> None:
    """The acceptance check on the preset (~3 min on one core; benchmarks/inventory_real_series.py
    prints the full table)."""
    from decisionlab.core.evaluation import mean_ci95
    from decisionlab.domains.inventory.series.scenario import SCENARIOS

    scenario = SCENARIOS["real_series"]
    n = series_data(scenario).n_series
    hdpo = train_series_hdpo(scenario, seed=0, device=CPU, progress=False).policy
    ours = episode_metrics(scenario, hdpo, n, 0, CPU)["cost_per_period"]
    for name in NEWSVENDOR_FAMILY:
        theirs = episode_metrics(scenario, SERIES_POLICIES[name][1](scenario, CPU), n, 0, CPU)["cost_per_period"]
        diff, half = mean_ci95(theirs - ours)
        assert diff > half, f"{name}: HDPO ahead by {diff:.3f} ± {half:.3f}"
