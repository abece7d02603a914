"""Execution page: the domain package draws it (see decisionlab.domains.execution.dashboard)."""

from decisionlab.domains.execution.dashboard import render

render()
