"""The inventory quickstart notebook runs top to bottom (small sizes)."""

from __future__ import annotations


def test_quickstart_notebook_executes(run_notebook) -> None:
    assert run_notebook("inventory_quickstart.ipynb").figures
