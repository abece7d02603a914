"""The named baselines: a dispatcher, optionally with demand-chasing repositioning.

``nearest``, ``max_fare``, ``fare_matching`` (drivers only drift) and ``<policy>+reposition``
(idle drivers chase demand), plus ``nearest+random_walk`` (the repositioning floor).
"""

from __future__ import annotations

import torch

from decisionlab.core import PolicySpec, UnknownNameError
from decisionlab.domains.ride_hailing.policies import CityPolicy
from decisionlab.domains.ride_hailing.scenario import CityScenario

DISPATCH_BASELINES = {
    "nearest": "each order, oldest first, takes its nearest free driver (greedy)",
    "max_fare": "each order, highest fare first, takes its nearest free driver (greedy)",
    "fare_matching": "bipartite matching maximising (1 − p_cancel)·fare over the K nearest drivers",
}
# name -> (dispatcher, repositioner, description)
BASELINES: dict[str, tuple[str, str, str]] = {
    **{name: (name, "stay", text + "; idle drivers drift") for name, text in DISPATCH_BASELINES.items()},
    **{f"{name}+reposition": (name, "demand", text + "; drivers idle 5 min move to the nearby cell with the most "
                              "expected orders per idle driver") for name, text in DISPATCH_BASELINES.items()},
    "nearest+random_walk": ("nearest", "random_walk", "nearest-driver greedy; drivers idle 5 min move to a random "
                            "neighbouring cell"),
}


def baseline(name: str, scenario: CityScenario, device: torch.device | str = "cpu") -> CityPolicy:
    """The baseline ``name`` (``nearest+demand`` is accepted for ``nearest+reposition``)."""
    key = name.replace("+demand", "+reposition")
    if key not in BASELINES:
        raise UnknownNameError("ride-hailing baseline", name, list(BASELINES))
    dispatch, reposition, _ = BASELINES[key]
    return CityPolicy(scenario, dispatch, reposition, device=device, name=key)


def policy_specs() -> dict[str, PolicySpec]:
    return {name: PolicySpec(name, text, lambda s, d, name=name: baseline(name, s, d))
            for name, (_, _, text) in BASELINES.items()}
