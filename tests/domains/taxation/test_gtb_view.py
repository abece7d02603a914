"""The Gather-Trade-Build tab of the taxation page: the quick baselines at once, the estimated and searched
ones on request, on a small economy."""

from __future__ import annotations

from pathlib import Path

SMALL = {"n_agents": 2, "map_size": 9, "observation_range": 2, "episode_steps": 20, "tax_period_steps": 5}


def test_the_tax_periods_tab_draws_the_quick_baselines_then_the_searched_ones_on_request(
        decisionlab_home: Path, domain_page) -> None:
    at = domain_page("taxation").run()
    at.selectbox(key="taxation_preset").set_value("gather_trade_build").run()
    for field, value in SMALL.items():
        at.number_input(key=f"taxation_{field}").set_value(value)
    at.run(timeout=120)
    assert not at.exception, at.exception
    charts = {chart.key for chart in at.get("plotly_chart")}
    assert {"taxation_gtb_objective", "taxation_gtb_rates"} <= charts
    assert at.selectbox(key="taxation_gtb_rates_of").options == ["free_market", "us_federal"]
    at.button(key="taxation_gtb_expensive").click().run(timeout=180)
    assert not at.exception, at.exception
    assert at.selectbox(key="taxation_gtb_rates_of").options == [
        "free_market", "us_federal", "saez", "searched", "searched_by_period"]
    assert any("Saez's rates" in caption.value for caption in at.caption)
