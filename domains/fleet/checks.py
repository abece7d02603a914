"""Every operating rule of a fleet day, checked from the outside on each transition.

Independent of the masks (which are how the simulator keeps the rules): given the state before a
decision, the action and the state after, :func:`violations` counts, per day, the broken rules:
parking pads over capacity, charging pads over capacity, a battery below the reserve or above its
capacity, a flight on a route closed in its slot, a flight by an aircraft that is down, and an aircraft
other than the actor changed. A correct simulator driven by any policy returns zeros.
"""

from __future__ import annotations

import torch

from decisionlab.domains.fleet.sim import FleetSim, FleetState


def violations(sim: FleetSim, before: FleetState, action: torch.Tensor, after: FleetState) -> dict[str, torch.Tensor]:
    """``{rule: [B] count}`` of the rules ``before → after`` breaks (module docstring)."""
    s = sim.scenario
    b, a = before.location.shape
    rows = torch.arange(b, device=before.location.device)
    actor = before.actor
    parked = torch.nn.functional.one_hot(after.location, s.n_vertiports).sum(1)
    live = after.charging & (after.free_at_h > after.time_h[:, None])
    charging_at = (torch.nn.functional.one_hot(after.location, s.n_vertiports) * live[..., None]).sum(1)
    here, there = before.location[rows, actor], after.location[rows, actor]
    flew = there != here
    slot = sim.slot_of(before.time_h)
    start, end = before.day.down_start_h[rows, actor], before.day.down_end_h[rows, actor]
    down = (start <= before.time_h) & (before.time_h < end)
    others = torch.ones(b, a, dtype=torch.bool, device=rows.device)
    others[rows, actor] = False
    changed = ((after.location != before.location) | (after.free_at_h != before.free_at_h)
               | (after.battery_kwh != before.battery_kwh)) & others
    return {
        "parking_over_capacity": (parked > s.parking_pads).sum(1),
        "charging_over_capacity": (charging_at > s.charging_pads).sum(1),
        "battery_below_reserve": (after.battery_kwh < s.reserve_kwh - 1e-3).sum(1),
        "battery_over_capacity": (after.battery_kwh > s.battery_kwh + 1e-3).sum(1),
        "flew_closed_route": (flew & before.day.closed[rows, slot, here, there]).long(),
        "flew_while_down": (flew & down).long(),
        "others_changed": changed.sum(1),
    }
