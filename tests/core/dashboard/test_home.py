"""The dashboard shell: the home page (through the entry file the CLI starts, with ``st.navigation``),
its frames, and one generated page per registered domain."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from streamlit.testing.v1 import AppTest

from decisionlab.core.dashboard import home, shell
from decisionlab.core.spec import list_domains

ROOT = Path(__file__).resolve().parents[3]
HOME_PAGE = str(ROOT / "dashboards" / "Home.py")
REF = "inventory/hdpo_test@1"


def _charts(at: AppTest) -> list:
    return list(at.get("plotly_chart"))


# ------------------------------------------------------------------------------------------------
# Home page
# ------------------------------------------------------------------------------------------------


def test_home_without_policies(home: Path) -> None:
    at = AppTest.from_file(HOME_PAGE).run(timeout=60)
    assert not at.exception
    assert at.title[0].value == "decisionlab"
    domains = at.dataframe[0].value
    assert "inventory" in list(domains["name"])
    assert {"name", "title", "description", "scenarios", "policies", "algos"} <= set(domains.columns)
    infos = " ".join(i.value for i in at.info)
    assert "No policies registered yet" in infos
    assert "No training runs" in infos
    assert not _charts(at)


def test_home_lists_policies_runs_and_curve(registered: Path) -> None:
    at = AppTest.from_file(HOME_PAGE).run(timeout=60)
    assert not at.exception
    policies = at.dataframe[1].value
    assert list(policies["ref"]) == [REF]
    assert list(policies["algo"]) == ["hdpo"]
    assert "underage_cost=19" in policies["scenario"][0]
    assert "cost_per_period=6.5" in policies["metrics"][0]
    runs = at.dataframe[2].value
    assert list(runs["label"]) == [REF]
    assert len(_charts(at)) == 1




def test_navigation_has_a_page_per_registered_domain(home: Path, domain_page) -> None:
    pages = shell.page_specs()
    assert [url for _, url, _ in pages] == ["home", *(spec.name for spec in list_domains())]
    assert [title for title, _, _ in pages] == ["Home", *(spec.title for spec in list_domains())]
    for spec in list_domains():  # every generated page draws without an exception
        at = domain_page(spec.name).run()
        assert not at.exception, (spec.name, at.exception)
        assert at.title[0].value == spec.title


def test_domains_frame_lists_the_settings() -> None:
    frame = home.domains_frame(list_domains())
    row = frame.filter(pl.col("name") == "inventory").row(0, named=True)
    assert row["settings"] == "Single store, Real series, Inventory networks"
