"""The market-making settings' own dashboard tabs (the policy comparison itself comes from the core).

Pure helpers (no Streamlit) compute polars frames: :func:`path_frames` (every compared policy on the
same episodes: P&L and inventory over time, one episode's quotes and fills), :func:`depth_frame`
(each policy's quotes across inventories at a chosen time, GLFT exact alongside when the inventory
is bounded) and :func:`reward_frame` (the registered policies by the reward family they were trained
with). Figure builders turn frames into plotly figures; the ``*_tab`` functions draw the tabs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import polars as pl
import torch

from decisionlab.core import Policy, legend_below, make_generator, palette, rollout, short_label
from decisionlab.domains.market_making.baselines import GLFTExact
from decisionlab.domains.market_making.params import QuotingScenario
from decisionlab.domains.market_making.quotes import (
    ACT_ASK,
    ACT_BID,
    OBS_FLOW_IMBALANCE,
    OBS_MARKET_SPREAD,
    observation,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from decisionlab.core import PolicyRegistry, SettingSpec, ViewContext

MAX_PATH_EPISODES = 2000  # episodes simulated for the path views
RECORDED = ("pnl", "inventory", "bid_fill", "ask_fill", "mid")
UNBOUNDED_DEPTH_RANGE = 10  # inventories shown (±) when the scenario sets no bound


# --------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------


class _FirstEpisodeQuotes:
    """Acts as ``policy`` and keeps the first episode's observations and quoted depths, step by step."""

    def __init__(self, name: str, policy: Policy) -> None:
        self.name, self.policy = name, policy
        self.quotes: list[torch.Tensor] = []
        self.observations: list[torch.Tensor] = []

    def act(self, obs: Any) -> torch.Tensor:
        depths = self.policy.act(obs)
        self.quotes.append(depths[:1].detach())
        self.observations.append(obs[:1].detach())
        return depths


def _simulate(sim: Any, label: str, policy: Policy, episodes: int, seed: int,
              record: Sequence[str]) -> tuple[dict[str, np.ndarray], _FirstEpisodeQuotes]:
    """``episodes`` episodes of ``seed`` (every policy faces the same ones): the recorded info as
    float64 arrays ``[episodes, N]`` and the first episode's observations and quotes."""
    generator = make_generator(seed, sim.device)
    state = sim.reset(episodes, generator)
    exogenous = sim.sample_exogenous(episodes, sim.horizon, generator)
    recording = _FirstEpisodeQuotes(label, policy)
    trajectory = rollout(sim, recording, exogenous, state, record=tuple(record))
    return {k: v.double().cpu().numpy() for k, v in trajectory.info.items()}, recording


@dataclass
class PathFrames:
    """P&L and inventory bands per policy over time, and one episode's mid, quotes and fills."""

    bands: pl.DataFrame  # policy, step, time, pnl_mean, pnl_p10, pnl_p90, q_mean, q_p10, q_p90
    episode: pl.DataFrame  # policy, step, time, mid, bid, ask, bid_fill, ask_fill, inventory


def path_frames(setting: SettingSpec, scenario: QuotingScenario, policies: Sequence[tuple[str, Policy]],
                episodes: int, seed: int, device: torch.device | str = "cpu") -> PathFrames:
    """Simulate every policy on the same ``min(episodes, MAX_PATH_EPISODES)`` episodes of ``seed``."""
    sim = setting.make_simulator(scenario, torch.device(device))
    episodes = max(2, min(int(episodes), MAX_PATH_EPISODES))
    bands, shown = [], []
    for label, policy in policies:
        info, recording = _simulate(sim, label, policy, episodes, seed, RECORDED)
        steps = np.arange(1, sim.horizon + 1)
        times = steps * scenario.dt
        pnl, q = info["pnl"], info["inventory"]
        bands.append(pl.DataFrame({
            "policy": [label] * steps.size, "step": steps, "time": times,
            "pnl_mean": pnl.mean(0), "pnl_p10": np.quantile(pnl, 0.1, 0), "pnl_p90": np.quantile(pnl, 0.9, 0),
            "q_mean": q.mean(0), "q_p10": np.quantile(q, 0.1, 0), "q_p90": np.quantile(q, 0.9, 0),
        }))
        depths = torch.cat(recording.quotes).double().cpu().numpy()  # [N, 2] of episode 0
        mid_before = np.concatenate([[scenario.initial_price], info["mid"][0, :-1]])
        shown.append(pl.DataFrame({
            "policy": [label] * steps.size, "step": steps, "time": times, "mid": mid_before,
            "bid": mid_before - depths[:, ACT_BID], "ask": mid_before + depths[:, ACT_ASK],
            "bid_fill": info["bid_fill"][0], "ask_fill": info["ask_fill"][0], "inventory": q[0],
        }))
    return PathFrames(pl.concat(bands), pl.concat(shown))


REPLAY_RECORDED = ("mid", "mid_change", "bid_price", "ask_price", "bid_fill", "ask_fill", "inventory")


def replay_frame(setting: SettingSpec, scenario: QuotingScenario, label: str, policy: Policy, seed: int,
                 device: torch.device | str = "cpu") -> pl.DataFrame:
    """One held-out episode of ``policy`` on the replay: per step the market's best bid and ask (from the
    snapshot the policy saw), the mid, the policy's resting quotes (after tick rounding, post-only and
    latency: what the book held) and its fills and inventory."""
    sim = setting.make_simulator(scenario, torch.device(device))
    episodes, recording = _simulate(sim, label, policy, 1, seed, REPLAY_RECORDED)
    info = {k: v[0] for k, v in episodes.items()}
    seen = torch.cat(recording.observations).double().cpu().numpy()  # [N, 6]
    mid_before = info["mid"] - info["mid_change"]
    half_spread = seen[:, OBS_MARKET_SPREAD] / 2
    steps = np.arange(1, sim.horizon + 1)
    return pl.DataFrame({
        "step": steps, "time": steps * scenario.dt, "mid": mid_before,
        "best_bid": mid_before - half_spread, "best_ask": mid_before + half_spread,
        "bid": info["bid_price"], "ask": info["ask_price"], "bid_fill": info["bid_fill"],
        "ask_fill": info["ask_fill"], "inventory": info["inventory"], "imbalance": seen[:, OBS_FLOW_IMBALANCE],
    })


def depth_frame(scenario: QuotingScenario, policies: Sequence[tuple[str, Policy]], time_left: float,
                device: torch.device | str = "cpu") -> pl.DataFrame:
    """Bid and ask depth of each policy at every inventory (−Q..Q, or ±10 unbounded) at ``time_left``,
    other observation fields 0; GLFT exact is added when the inventory is bounded."""
    bound = scenario.max_inventory or UNBOUNDED_DEPTH_RANGE
    q = torch.arange(-bound, bound + 1, dtype=torch.float32, device=device)
    obs = observation(torch.full_like(q, float(time_left)), q)
    shown = list(policies)
    if scenario.max_inventory is not None and not any(label == "glft" for label, _ in shown):
        shown.append(("glft (reference)", GLFTExact(scenario)))
    inventory = q.cpu().numpy()
    closed = {"bid": inventory >= bound, "ask": inventory <= -bound}  # sides that do not quote at the bound
    rows = []
    for label, policy in shown:
        with torch.no_grad():
            depths = policy.act(obs).double().cpu().numpy()
        for side, column in (("bid", ACT_BID), ("ask", ACT_ASK)):
            depth = depths[:, column].copy()
            if scenario.max_inventory is not None:
                depth[closed[side]] = np.nan
            rows.append(pl.DataFrame({"policy": [label] * q.numel(), "side": [side] * q.numel(),
                                      "inventory": inventory, "depth": depth}))
    return pl.concat(rows)


def reward_frame(registry: PolicyRegistry, domain: str) -> pl.DataFrame:
    """Registered policies of ``domain``: name, version, algorithm, reward family and the held-out
    certainty equivalent recorded at training (latest version of each name)."""
    rows = []
    for record in registry.list(domain):
        card = record.card
        options = {**card.get("algo_config", {}), **card.get("algo_options", {})}
        rows.append({
            "policy": str(record.ref), "algo": card.get("algo", ""), "scenario": card.get("scenario_name", ""),
            "reward": options.get("reward", "certainty_equivalent" if card.get("algo") == "pathwise" else ""),
            "certainty_equivalent": float(card.get("metrics", {}).get("certainty_equivalent", float("nan"))),
        })
    schema = {"policy": pl.String, "algo": pl.String, "scenario": pl.String, "reward": pl.String,
              "certainty_equivalent": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def bands_figure(bands: pl.DataFrame, column: str, title: str, axis: str, domain: str | None = None) -> go.Figure:
    """Mean and 10–90% band of ``column`` (``pnl`` or ``q``) over time, one colour per policy; the
    legend goes under the plot (one policy a row), so many or long labels never squash it."""
    import plotly.graph_objects as go

    fig = go.Figure()
    colors = palette()
    for i, label in enumerate(bands["policy"].unique(maintain_order=True).to_list()):
        part = bands.filter(pl.col("policy") == label)
        color = colors[i % len(colors)]
        t = part["time"].to_list()
        band = part[f"{column}_p90"].to_list() + part[f"{column}_p10"].to_list()[::-1]
        fig.add_trace(go.Scatter(x=t + t[::-1], y=band, fill="toself", line={"width": 0}, fillcolor=color,
                                 opacity=0.15, showlegend=False, hoverinfo="skip", legendgroup=label))
        fig.add_trace(go.Scatter(x=t, y=part[f"{column}_mean"].to_list(), name=short_label(label, domain),
                                 legendgroup=label, mode="lines", line={"color": color}, hovertext=label))
    fig.update_layout(title=title, xaxis_title="time", yaxis_title=axis)
    return legend_below(fig, plot_height=300)


def episode_figure(episode: pl.DataFrame, label: str) -> go.Figure:
    """One episode of one policy: the mid with its bid and ask, fills marked; inventory below."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    part = episode.filter(pl.col("policy") == label)
    t = part["time"].to_list()
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.7, 0.3],
                        subplot_titles=(f"{label}: mid, quotes and fills (one episode)", "inventory"))
    fig.add_trace(go.Scatter(x=t, y=part["mid"].to_list(), name="mid", line={"color": "#444"}), row=1, col=1)
    fig.add_trace(go.Scatter(x=t, y=part["bid"].to_list(), name="bid", line={"color": "#4C78A8", "width": 1}),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=t, y=part["ask"].to_list(), name="ask", line={"color": "#E45756", "width": 1}),
                  row=1, col=1)
    for side, color, symbol in (("bid", "#4C78A8", "triangle-up"), ("ask", "#E45756", "triangle-down")):
        filled = part.filter(pl.col(f"{side}_fill") > 0.5)
        fig.add_trace(go.Scatter(x=filled["time"].to_list(), y=filled[side].to_list(), mode="markers",
                                 name=f"{side} filled", marker={"color": color, "symbol": symbol, "size": 8}),
                      row=1, col=1)
    fig.add_trace(go.Scatter(x=t, y=part["inventory"].to_list(), name="inventory", line={"shape": "hv"},
                             showlegend=False), row=2, col=1)
    fig.update_xaxes(title_text="time", row=2, col=1)
    return legend_below(fig, plot_height=420, per_row=3, top=60)


def replay_figure(frame: pl.DataFrame, label: str) -> go.Figure:
    """The market's best bid and ask with the policy's resting quotes and fills; inventory and the
    book's imbalance below."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    t = frame["time"].to_list()
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.7, 0.3],
                        subplot_titles=(f"{label} in the replayed book (one held-out episode)",
                                        "inventory (line) and best-level imbalance (bars)"))
    for column, name, style in (("best_bid", "market best bid", {"color": "#9ecae9", "shape": "hv"}),
                                ("best_ask", "market best ask", {"color": "#ff9d98", "shape": "hv"}),
                                ("bid", "your bid", {"color": "#4C78A8", "shape": "hv", "width": 2}),
                                ("ask", "your ask", {"color": "#E45756", "shape": "hv", "width": 2})):
        fig.add_trace(go.Scatter(x=t, y=frame[column].to_list(), name=name, line=style), row=1, col=1)
    for side, color, symbol in (("bid", "#4C78A8", "triangle-up"), ("ask", "#E45756", "triangle-down")):
        filled = frame.filter(pl.col(f"{side}_fill") > 0)
        fig.add_trace(go.Scatter(x=filled["time"].to_list(), y=filled[side].to_list(), mode="markers",
                                 name=f"{side} filled", marker={"color": color, "symbol": symbol, "size": 9}),
                      row=1, col=1)
    fig.add_trace(go.Bar(x=t, y=frame["imbalance"].to_list(), name="imbalance", marker_color="#bbb",
                         opacity=0.6), row=2, col=1)
    fig.add_trace(go.Scatter(x=t, y=frame["inventory"].to_list(), name="inventory", line={"shape": "hv"}),
                  row=2, col=1)
    fig.update_xaxes(title_text="time", row=2, col=1)
    return legend_below(fig, plot_height=460, per_row=3, top=60)


def depth_figure(depths: pl.DataFrame, time_left: float, domain: str | None = None) -> go.Figure:
    """Bid (solid) and ask (dashed) depth against inventory, one colour per policy (legend under the plot)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    colors = palette()
    for i, label in enumerate(depths["policy"].unique(maintain_order=True).to_list()):
        for side, dash in (("bid", "solid"), ("ask", "dash")):
            part = depths.filter((pl.col("policy") == label) & (pl.col("side") == side))
            fig.add_trace(go.Scatter(x=part["inventory"].to_list(), y=part["depth"].to_list(), mode="lines+markers",
                                     name=f"{short_label(label, domain)} {side}",
                                     line={"color": colors[i % len(colors)], "dash": dash}))
    fig.update_layout(title=f"Quote depth vs inventory at time left {time_left:g} (bid solid, ask dashed)",
                      xaxis_title="inventory q (units)", yaxis_title="depth from the mid (price units)")
    return legend_below(fig, plot_height=360, per_row=2)


def reward_figure(rewards: pl.DataFrame) -> go.Figure:
    """Held-out certainty equivalent of each registered policy, coloured by reward family."""
    import plotly.graph_objects as go

    fig = go.Figure()
    colors = palette()
    for i, family in enumerate(rewards["reward"].unique(maintain_order=True).to_list()):
        part = rewards.filter(pl.col("reward") == family)
        fig.add_trace(go.Bar(x=part["policy"].to_list(), y=part["certainty_equivalent"].to_list(),
                             name=family or "(none)", marker_color=colors[i % len(colors)]))
    fig.update_layout(title="Registered policies: held-out certainty equivalent by reward family",
                      yaxis_title="certainty equivalent (currency)")
    return legend_below(fig, plot_height=320, per_row=3, axis_px=110)  # x: the references, slanted


# --------------------------------------------------------------------------------------------
# Tabs
# --------------------------------------------------------------------------------------------


def _frames(ctx: ViewContext) -> PathFrames | None:
    result = ctx.result
    if result is None:
        return None
    if "paths" not in result.cache:
        scenario = cast(QuotingScenario, result.scenario)
        result.cache["paths"] = path_frames(ctx.setting, scenario, result.policies, result.request["episodes"],
                                            result.request["seed"], ctx.device)
    return result.cache["paths"]


def paths_tab(ctx: ViewContext) -> None:
    """P&L and inventory over the session for every compared policy, and one episode in detail."""
    import streamlit as st

    frames = _frames(ctx)
    if frames is None:
        st.info("Press **Run** to see the P&L and inventory paths of the chosen policies.")
        return
    left, right = st.columns(2)
    with left:
        st.plotly_chart(bands_figure(frames.bands, "pnl", "P&L (mean, 10–90% band)", "P&L (currency)",
                                     ctx.domain.name), key=ctx.key("pnl_paths"))
    with right:
        st.plotly_chart(bands_figure(frames.bands, "q", "Inventory (mean, 10–90% band)", "inventory (units)",
                                     ctx.domain.name), key=ctx.key("inventory_paths"))
    labels = frames.episode["policy"].unique(maintain_order=True).to_list()
    label = st.selectbox("Episode of", labels, key=ctx.key("episode_policy"))
    st.plotly_chart(episode_figure(frames.episode, label), key=ctx.key("episode"))


def depths_tab(ctx: ViewContext) -> None:
    """Each compared policy's bid and ask depth across inventories (GLFT exact as the reference)."""
    import streamlit as st

    scenario = cast(QuotingScenario, ctx.result.scenario if ctx.result is not None else ctx.scenario)
    policies = ctx.result.policies if ctx.result is not None else []
    time_left = st.slider("Time left", 0.0, float(scenario.horizon), float(scenario.horizon),
                          step=float(scenario.dt), key=ctx.key("depth_time_left"))
    st.caption("Quotes as a function of inventory with the other inputs at 0 (no price move, no flow). "
               "GLFT exact is the optimum of the stylised model with the inventory bound.")
    if not policies and scenario.max_inventory is None:
        st.info("Press **Run** to see the chosen policies' quotes; set max_inventory to see GLFT's.")
        return
    st.plotly_chart(depth_figure(depth_frame(scenario, policies, time_left, ctx.device), time_left, ctx.domain.name),
                    key=ctx.key("depths"))


def rewards_tab(ctx: ViewContext) -> None:
    """The registered policies by reward family, with their held-out certainty equivalent."""
    import streamlit as st

    rewards = reward_frame(ctx.registry, ctx.domain.name)
    if rewards.is_empty():
        st.info("No trained policy yet: `decisionlab train market_making --algo ppo --algo-set reward=dampened` "
                "(and `reward=pnl`, `reward=mean_variance`, `--algo pathwise`) fills this comparison.")
        return
    st.caption("Certainty equivalent on the held-out episodes of each policy's own training scenario, as recorded "
               "at training; compare them on one scenario with the paired table of the Comparison tab.")
    st.plotly_chart(reward_figure(rewards), key=ctx.key("rewards"))
    st.dataframe(rewards.to_pandas(), hide_index=True)


def replay_tab(ctx: ViewContext) -> None:
    """One held-out episode of a compared policy in the replayed book: your quotes against the market's."""
    import streamlit as st

    result = ctx.result
    if result is None:
        st.info("Press **Run** to see the chosen policies quote in the replayed book.")
        return
    labels = [label for label, _ in result.policies]
    label = st.selectbox("Policy", labels, key=ctx.key("replay_policy"))
    policy = dict(result.policies)[label]
    cache_key = f"replay:{label}"
    if cache_key not in result.cache:
        scenario = cast(QuotingScenario, result.scenario)
        result.cache[cache_key] = replay_frame(ctx.setting, scenario, label, policy, result.request["seed"],
                                               ctx.device)
    frame = result.cache[cache_key]
    st.caption("Quotes rest at the tick the simulator rounded them to (post-only, after latency); a fill needs the "
               "volume queued ahead at that price to trade first.")
    st.plotly_chart(replay_figure(frame, label), key=ctx.key("replay"))
