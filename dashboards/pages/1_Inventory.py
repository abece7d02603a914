"""Inventory page: the domain package draws it (see decisionlab.domains.inventory.dashboard)."""

from decisionlab.domains.inventory.dashboard import render

render()
