"""The dashboard's entry point: pages generated from the domain registry with ``st.navigation``.

``dashboards/Home.py`` calls :func:`main`: the home page, then one page per registered domain
(:func:`decisionlab.core.dashboard.compare.domain_page`), in the order of ``list_domains``. A new
domain gets its page the day it registers; nothing here names a domain.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from decisionlab.core.errors import DecisionlabError


def page_specs() -> list[tuple[str, str, Callable[[], None]]]:
    """``(title, url_path, draw)`` of every page: home first (the default), then one per domain."""
    from decisionlab.core.dashboard import compare, home
    from decisionlab.core.spec import list_domains

    found: list[tuple[str, str, Callable[[], None]]] = [("Home", "home", home.render)]
    for spec in list_domains():
        found.append((spec.title, spec.name, partial(compare.domain_page, spec.name)))
    return found


def pages() -> list[Any]:
    """The ``st.Page`` objects of :func:`page_specs` (the first is the default page)."""
    import streamlit as st

    return [st.Page(draw, title=title, url_path=url, default=i == 0)
            for i, (title, url, draw) in enumerate(page_specs())]


def main() -> None:
    import streamlit as st

    from decisionlab.core.dashboard.training import draw_training_status

    st.set_page_config(page_title="decisionlab", layout="wide")
    try:
        navigation = st.navigation(pages())
    except DecisionlabError as err:  # e.g. $DECISIONLAB_DOMAINS names a module that does not import
        draw_training_status()
        st.error(str(err))
        return
    # The status fragment after st.navigation: the browser starts its auto-rerun timer (REFRESH_S) when the
    # fragment arrives and sends the page it knows then. Drawn before, a first navigation slower than that (it
    # imports every domain: over 5 s in a fresh process) sent the rerun for the main script, and that fragment
    # run left the opened page blank.
    draw_training_status()
    navigation.run()
