"""The named baselines: a dispatcher, optionally with demand-chasing repositioning.

``nearest``, ``max_fare``, ``fare_matching`` (drivers only drift) and ``<policy>+reposition``
(idle drivers chase demand, reading the simulator's true demand: a baseline that *knows* the city),
``<policy>+reposition_estimated`` (the same, with demand estimated from :data:`LOGGED_DAYS` logged days:
what an operator can know, and the fair rival of a value learned from logs), plus
``nearest+random_walk`` (the repositioning floor).
"""

from __future__ import annotations

import torch

from decisionlab.core import PolicySpec, UnknownNameError
from decisionlab.domains.ride_hailing.demand import logged_demand
from decisionlab.domains.ride_hailing.policies import CityPolicy
from decisionlab.domains.ride_hailing.scenario import CityScenario

DISPATCH_BASELINES = {
    "nearest": "each order, oldest first, takes its nearest free driver (greedy)",
    "max_fare": "each order, highest fare first, takes its nearest free driver (greedy)",
    "fare_matching": "bipartite matching maximising (1 − p_cancel)·fare over the K nearest drivers",
}
LOGGED_DAYS, LOG_SEED = 16, 20_261_207  # the logged days the estimated baselines count demand on
# name -> (dispatcher, repositioner, description)
BASELINES: dict[str, tuple[str, str, str]] = {
    **{name: (name, "stay", text + "; idle drivers drift") for name, text in DISPATCH_BASELINES.items()},
    **{f"{name}+reposition": (name, "demand", text + "; drivers idle 5 min move to the nearby cell with the most "
                              "expected orders per idle driver (knows the simulator's true demand)")
       for name, text in DISPATCH_BASELINES.items()},
    **{f"{name}+reposition_estimated": (name, "demand", text + "; drivers idle 5 min move to the nearby cell with "
                                        f"the most orders per idle driver, demand counted on {LOGGED_DAYS} logged days")
       for name, text in DISPATCH_BASELINES.items() if name != "max_fare"},
    "nearest+random_walk": ("nearest", "random_walk", "nearest-driver greedy; drivers idle 5 min move to a random "
                            "neighbouring cell"),
}


def baseline(name: str, scenario: CityScenario, device: torch.device | str = "cpu") -> CityPolicy:
    """The baseline ``name`` (``nearest+demand`` is accepted for ``nearest+reposition``)."""
    key = name.replace("+demand", "+reposition")
    if key not in BASELINES:
        raise UnknownNameError("ride-hailing baseline", name, list(BASELINES))
    dispatch, reposition, _ = BASELINES[key]
    demand = logged_demand(scenario, LOGGED_DAYS, LOG_SEED, device) if key.endswith("_estimated") else None
    return CityPolicy(scenario, dispatch, reposition, demand=demand, device=device, name=key)


def policy_specs() -> dict[str, PolicySpec]:
    return {name: PolicySpec(name, text, lambda s, d, name=name: baseline(name, s, d))
            for name, (_, _, text) in BASELINES.items()}
