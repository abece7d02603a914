"""The market-making page of the dashboard (Streamlit AppTest: the generic comparison plus the
market-making tabs, with a registered learned policy) and the pure helpers of its tabs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import torch

from decisionlab.core.store.registry import PolicyRegistry
from decisionlab.domains.market_making import MODEL, REPLAY, view
from decisionlab.domains.market_making.baselines import AvellanedaStoikov, Symmetric
from decisionlab.domains.market_making.learned import QuoteNet
from decisionlab.domains.market_making.model.scenario import PRESETS

BOUNDED = PRESETS["glft_bounded"]


def _register(name: str = "quoter", reward: str = "dampened") -> str:
    net = QuoteNet.initial(BOUNDED, torch.device("cpu"))
    card = {"setting": "model", "scenario_name": "glft_bounded", "algo": "ppo", "policy_kind": net.kind,
            "policy_config": net.config(), "algo_options": {"reward": reward},
            "metrics": {"certainty_equivalent": 42.0}}
    return str(PolicyRegistry().save("market_making", name, net.state_dict(), card).ref)


def test_page_runs_with_a_learned_policy_and_every_tab_draws(decisionlab_home: Path, domain_page) -> None:
    ref = _register()
    at = domain_page("market_making").run()
    assert not at.exception, at.exception
    at.selectbox(key="market_making_preset").set_value("glft_bounded").run()
    at.number_input(key="market_making_episodes").set_value(300)
    at.multiselect(key="market_making_policies").set_value(["glft", "avellaneda_stoikov", ref])
    at.button(key="market_making_run").click().run(timeout=120)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert list(at.dataframe[0].value["policy"]) == ["glft", "avellaneda_stoikov", ref]
    # difference chart; P&L and inventory bands and one episode; depths; rewards
    assert len(at.get("plotly_chart")) == 6


def test_path_frames_pair_the_policies_on_the_same_episodes() -> None:
    policies = [("avellaneda_stoikov", AvellanedaStoikov(BOUNDED)), ("symmetric", Symmetric(BOUNDED))]
    frames = view.path_frames(MODEL, BOUNDED, policies, 200, seed=3)
    assert frames.bands.height == 2 * BOUNDED.steps and frames.episode.height == 2 * BOUNDED.steps
    stoikov = frames.episode.filter(pl.col("policy") == "avellaneda_stoikov")
    symmetric = frames.episode.filter(pl.col("policy") == "symmetric")
    # same mid path (the fills do not move the mid), and the quotes straddle the mid before any fill
    np.testing.assert_allclose(stoikov["mid"].to_numpy(), symmetric["mid"].to_numpy())
    first = stoikov.row(0, named=True)
    assert first["bid"] < first["mid"] < first["ask"]
    # the inventory path is the running sum of fills
    np.testing.assert_allclose(np.cumsum(stoikov["bid_fill"] - stoikov["ask_fill"]), stoikov["inventory"])


def test_depth_frame_adds_glft_and_closes_sides_at_the_bound() -> None:
    depths = view.depth_frame(BOUNDED, [("avellaneda_stoikov", AvellanedaStoikov(BOUNDED))], time_left=1.0)
    assert set(depths["policy"]) == {"avellaneda_stoikov", "glft (reference)"}
    glft_bid = depths.filter((pl.col("policy") == "glft (reference)") & (pl.col("side") == "bid"))
    assert glft_bid.filter(pl.col("inventory") == 10)["depth"].is_nan().all()
    values = glft_bid.filter(pl.col("inventory") < 10)["depth"].to_numpy()
    assert np.all(np.diff(values) > 0)  # longer inventory: bid further from the mid


def test_reward_frame_lists_registered_policies(decisionlab_home: Path) -> None:
    ref = _register("damped", "dampened")
    frame = view.reward_frame(PolicyRegistry(), "market_making")
    assert frame.row(0, named=True) == {"policy": ref, "algo": "ppo", "scenario": "glft_bounded",
                                        "reward": "dampened", "certainty_equivalent": 42.0}


def test_replay_page_shows_the_book_with_the_quotes(decisionlab_home: Path, domain_page) -> None:
    at = domain_page("market_making").run()
    at.selectbox(key="market_making_preset").set_value("lob_replay").run()
    assert at.number_input(key="market_making_episodes").value == 7  # every disjoint held-out window
    at.button(key="market_making_run").click().run(timeout=120)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert list(at.dataframe[0].value["policy"]) == list(REPLAY.default_policies)
    # difference chart; P&L and inventory bands and one episode; depths; the replayed book
    keys = [chart.key for chart in at.get("plotly_chart")]
    assert keys == [f"market_making_{k}" for k in ("difference_chart", "pnl_paths", "inventory_paths", "episode",
                                                   "depths", "replay")]


def test_replay_frame_quotes_on_the_tick_grid_and_never_cross() -> None:
    scenario = REPLAY.presets["lob_replay"]
    frame = view.replay_frame(REPLAY, scenario, "avellaneda_stoikov", AvellanedaStoikov(scenario), seed=2)
    assert frame.height == scenario.steps
    quoted = frame.filter(pl.col("bid").is_not_nan() & pl.col("ask").is_not_nan())
    assert quoted.height > 0
    assert (quoted["bid"] < quoted["ask"]).all()
    ticks = quoted["bid"].to_numpy() / 0.01
    np.testing.assert_allclose(ticks, np.round(ticks), atol=1e-4)
