"""User-facing errors.

Everything a user can get wrong (a name, a parameter, a file) raises a subclass of
:class:`DecisionlabError`. The CLI prints its message without a traceback and exits non-zero;
the API server turns it into a 4xx response. Anything else is a bug and is allowed to surface.
"""

from __future__ import annotations


class DecisionlabError(Exception):
    """A mistake the user can fix; ``str(err)`` says what and how."""

    http_status: int = 400


class UnknownNameError(DecisionlabError):
    """A domain, scenario, policy, algorithm or registry reference that does not exist."""

    http_status = 404

    def __init__(self, kind: str, name: str, choices: list[str] | None = None) -> None:
        self.kind, self.name, self.choices = kind, name, sorted(choices or [])
        hint = f"; choose one of: {', '.join(self.choices)}" if self.choices else ""
        super().__init__(f"unknown {kind} '{name}'{hint}")


class ScenarioError(DecisionlabError):
    """Scenario parameters that are unknown or fail validation."""

    http_status = 422


class NotTractableError(DecisionlabError):
    """A solver asked for outside the range where it can run (e.g. the exact DP at long lead times)."""

    http_status = 422


class RegistryError(DecisionlabError):
    """A registry or run-store problem the user caused (bad reference, corrupt artefact)."""


class PolicyNotFoundError(RegistryError):
    """A well-formed registry reference that names no registered policy."""

    http_status = 404
