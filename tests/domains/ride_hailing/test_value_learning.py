"""Value learning against numbers computed here, not by the library: V1D3's blend of the online table
with the offline value (the final :func:`blend` and the periodic in-place blend of ``online_td``), and
TD on the simulator's value transitions against the Monte Carlo returns of the same transitions."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from decisionlab.core.algos.td import FittedTDConfig, Transitions, blend, fitted_td, td0_update
from decisionlab.core.nets.value import NeuralValue, TabularValue
from decisionlab.core.options import TrainContext
from decisionlab.core.seeding import make_generator
from decisionlab.domains.ride_hailing.baselines import baseline
from decisionlab.domains.ride_hailing.metrics import run_episodes
from decisionlab.domains.ride_hailing.scenario import CityScenario
from decisionlab.domains.ride_hailing.sim import IDLE_MOVE, TERMINAL, TRIP, CitySim
from decisionlab.domains.ride_hailing.train import ValueSettings, online_td, step_transitions

DAY = 86_400.0

# --- the blend ---------------------------------------------------------------------------------------

# An online table of 4 six-hour bins x 3 cells and an offline table of 2 twelve-hour bins: online bins
# 0 and 1 (centres 3 h, 9 h) lie in offline bin 0, bins 2 and 3 (15 h, 21 h) in offline bin 1. All the
# numbers are exact in float32.
ONLINE = [[0.0, 4.0, 8.0], [12.0, 16.0, 20.0], [24.0, 28.0, 32.0], [36.0, 40.0, 44.0]]
OFFLINE = [[100.0, -20.0, 8.0], [0.0, 60.0, -4.0]]
BLENDED = {  # by hand: w · ONLINE[b][c] + (1 − w) · OFFLINE[b // 2][c]
    0.5: [[50.0, -8.0, 8.0], [56.0, -2.0, 14.0], [12.0, 44.0, 14.0], [18.0, 50.0, 20.0]],  # (a + b) / 2
    0.25: [[75.0, -14.0, 8.0], [78.0, -11.0, 11.0], [6.0, 52.0, 5.0], [9.0, 55.0, 8.0]],
}
# (time in seconds, the online bin it falls in): bin edges, a time just below an edge, later days
# and a negative time (both wrap modulo the day).
TIMES = [(0.0, 0), (21_599.0, 0), (21_600.0, 1), (43_199.5, 1), (43_200.0, 2), (64_800.0, 3), (86_399.0, 3),
         (DAY + 30_000.0, 1), (5 * DAY + 50_000.0, 2), (-100.0, 3)]


def table_of(entries: list[list[float]], period_s: float = DAY) -> TabularValue:
    value = TabularValue(len(entries[0]), len(entries), period_s)
    with torch.no_grad():
        value.table.copy_(torch.tensor(entries))
    return value


class HourPlusTenPerCell(nn.Module):
    """A non-tabular value in closed form: ``V(cell, t) = 10 · cell + t / 3600`` (hours into the day)."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))  # value_table reads the device off a parameter

    def forward(self, location: torch.Tensor, time_s: torch.Tensor) -> torch.Tensor:
        return 10.0 * location.to(time_s.dtype) + torch.remainder(time_s, DAY) / 3600.0


@pytest.mark.parametrize("w", [0.5, 0.25])
def test_blend_is_the_weighted_average_of_the_two_tables_at_every_cell_and_time(w: float) -> None:
    online, offline = table_of(ONLINE), table_of(OFFLINE)
    out = blend(online, offline, w)
    assert torch.equal(out.table.detach(), torch.tensor(BLENDED[w]))
    for time_s, b in TIMES:
        for cell in range(3):
            with torch.no_grad():
                got = float(out(torch.tensor([cell]), torch.tensor([time_s], dtype=torch.float64)))
            assert got == BLENDED[w][b][cell] == w * ONLINE[b][cell] + (1 - w) * OFFLINE[b // 2][cell], (time_s, cell)
    # Neither input moved, and the result is a new table.
    assert torch.equal(online.table.detach(), torch.tensor(ONLINE))
    assert torch.equal(offline.table.detach(), torch.tensor(OFFLINE))
    assert out is not online and out.table.data_ptr() != online.table.data_ptr()


def test_blend_evaluates_a_non_tabular_value_at_the_centres_of_the_online_bins() -> None:
    """The closed-form value at the bin centres 3, 9, 15, 21 h is ``10 · cell + 3, 9, 15, 21``; the
    blend at w = 0.5 is the plain average of that and the online entries (a value at the bins' starts
    0, 6, 12, 18 h would be 1.5 lower everywhere)."""
    out = blend(table_of(ONLINE), HourPlusTenPerCell(), 0.5)
    expected = [[1.5, 8.5, 15.5], [10.5, 17.5, 24.5], [19.5, 26.5, 33.5], [28.5, 35.5, 42.5]]
    assert torch.equal(out.table.detach(), torch.tensor(expected))


def test_blend_with_a_neural_value_averages_its_own_predictions() -> None:
    torch.manual_seed(0)
    neural = NeuralValue(3, 24, hidden=(8,))
    online = table_of(ONLINE)
    out = blend(online, neural, 0.5)
    for b, centre_s in enumerate((3 * 3600.0, 9 * 3600.0, 15 * 3600.0, 21 * 3600.0)):
        for cell in range(3):
            with torch.no_grad():
                v = float(neural(torch.tensor([cell]), torch.tensor([centre_s])))
            assert float(out.table.detach()[b, cell]) == pytest.approx((ONLINE[b][cell] + v) / 2, abs=1e-5)


# A tiny city for online_td: 0.1 h of 4 s windows, blended every 0.02 h (72 s): 5 blends, the last at
# the horizon's end.
BLEND_CITY = CityScenario(grid_size=2, n_drivers=4, orders_per_day=5000, start_hour=7.5, horizon_hours=0.1,
                          window_seconds=4.0, idle_transition_seconds=60.0)
BLENDS = 5


@pytest.mark.parametrize("w", [0.5, 0.25])
def test_online_td_blends_the_table_toward_the_anchor_in_place_every_period(w: float) -> None:
    """With a step size too small to move a float32 entry, online TD leaves only the blends:
    ``w`` times the table plus ``1 − w`` times the anchor, ``BLENDS`` times over, i.e.
    ``w⁵ · initial + (1 − w⁵) · anchor`` at every entry."""
    cells = BLEND_CITY.grid_size ** 2
    initial = [[64.0 + 4 * h + c for c in range(cells)] for h in range(24)]
    anchor_entries = [[float(8 * b - 3 * c) for c in range(cells)] for b in range(6)]  # 4-hour bins
    table, anchor = table_of(initial), table_of(anchor_entries)
    settings = ValueSettings(alpha=1e-9, online_days=1, cities=1, ensemble_every_hours=0.02,
                             ensemble_weight_online=w, eval_episodes=1)
    assert BLEND_CITY.horizon_hours / settings.ensemble_every_hours == pytest.approx(BLENDS)
    ctx = TrainContext(seed=0, device=torch.device("cpu"), progress=False)
    with torch.no_grad():
        used = online_td(BLEND_CITY, settings, ctx, table, anchor=anchor)
    keep = w ** BLENDS
    # Hour h's centre (h + 0.5 h) lies in the anchor's 4-hour bin h // 4.
    expected = torch.tensor([[keep * initial[h][c] + (1 - keep) * anchor_entries[h // 4][c] for c in range(cells)]
                             for h in range(24)])
    assert used > 0  # TD did run between the blends
    assert torch.allclose(table.table.detach(), expected, rtol=0, atol=1e-4)
    assert torch.equal(anchor.table.detach(), torch.tensor(anchor_entries))


# --- TD against Monte Carlo --------------------------------------------------------------------------

# A 3 x 3 city whose demand is the same everywhere and at every hour (no hot spots, no peaks, no
# congestion), so what a driver earns from here on depends little on anything but where they are and
# how long their shift still runs. Shifts of 2 h from 5:00 over 5.5 h: the early shift (6:30 ± 1 h)
# starts and ends inside the horizon; a driver whose shift runs past 10:30 is cut off and left out.
MC_CITY = CityScenario(grid_size=3, n_drivers=12, orders_per_day=800, hotspot_share=0.0, peak_strength=0.0,
                       peak_speed_factor=1.0, start_hour=5.0, horizon_hours=5.5, window_seconds=20.0, shift_hours=2.0,
                       idle_transition_seconds=300.0, max_pickup_km=5.0, reposition_max_km=5.0)
MC_EPISODES = 64
# γ = 0.5 per 10 minutes: the discount's horizon, 600 s / ln 2 ≈ 14 min, is short against a 2 h shift.
GAMMA, GAMMA_PERIOD_S = 0.5, 600.0
BINS = 4  # six-hour bins: 5:00-10:30 falls in bins 0 and 1
CELLS = MC_CITY.grid_size ** 2
WELL_VISITED = 100  # transitions starting in an entry
ENTRY_TOLERANCE = 0.10  # relative, per well-visited entry
MEAN_TOLERANCE = 0.04  # relative, count-weighted over all the transitions
RAW = ("tr_kind", "tr_from_cell", "tr_from_s", "tr_to_cell", "tr_to_s", "tr_reward", "tr_reward_s")


@dataclass
class Episodes:
    data: Transitions  # step_transitions of the complete chains: what TD learns from
    returns: torch.Tensor  # float64 [M]: the Monte Carlo discounted return from each transition's start state
    kind: torch.Tensor  # long [M]
    fare: torch.Tensor  # float64 [M]: the fare as recorded, undiscounted
    entry: torch.Tensor  # long [M]: bin · CELLS + cell of the start state, binned here
    counts: torch.Tensor  # long [BINS · CELLS]
    mc: torch.Tensor  # float64 [BINS · CELLS]: mean return per entry
    se: torch.Tensor  # float64 [BINS · CELLS]: its standard error


def monte_carlo_returns(rows: list[list[float]]) -> list[float]:
    """Each row ``[driver, kind, from_cell, from_s, to_cell, to_s, fare, fare_s]`` in recorded order ->
    its discounted return (NaN where the driver's chain does not end in TERMINAL before the horizon).

    Chained per driver, backwards from TERMINAL (return 0 there): ``G = fare · γ^((fare_s − from_s)/P)
    + γ^((to_s − from_s)/P) · G_next``; each transition must start where the previous one ended."""
    chains: dict[int, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        chains[int(row[0])].append(i)
    out = [math.nan] * len(rows)
    for chain in chains.values():
        for a, b in zip(chain[:-1], chain[1:], strict=True):
            assert rows[a][1] != TERMINAL, "a driver's transitions continue after going offline"
            assert (rows[a][4], rows[a][5]) == (rows[b][2], rows[b][3]), "the chain of anchors is broken"
        if rows[chain[-1]][1] != TERMINAL:
            continue  # cut by the end of the horizon: its returns are unknown
        g = 0.0
        for i in reversed(chain):
            _, kind, _, from_s, _, to_s, fare, fare_s = rows[i]
            if kind == TERMINAL:
                g = 0.0
            else:
                paid = fare * GAMMA ** ((fare_s - from_s) / GAMMA_PERIOD_S)
                g = paid + GAMMA ** ((to_s - from_s) / GAMMA_PERIOD_S) * g
            out[i] = g
    return out


@pytest.fixture(scope="module")
def episodes() -> Episodes:
    torch.set_num_threads(1)
    sim = CitySim(MC_CITY)
    n = MC_CITY.n_drivers
    raw: list[torch.Tensor] = []
    batches: list[Transitions] = []

    def record(state, info: dict[str, torch.Tensor]) -> None:  # noqa: ANN001
        mask = info["tr_kind"] != 0
        if bool(mask.any()):
            where = mask.nonzero()  # row-major, the order step_transitions flattens in
            driver = (where[:, 0] * n + where[:, 1]).double()
            raw.append(torch.stack([driver] + [info[name][mask].double() for name in RAW], 1))
            batches.append(step_transitions(info, GAMMA, GAMMA_PERIOD_S))

    run_episodes(sim, baseline("nearest", MC_CITY), MC_EPISODES, make_generator(0), on_step=record)
    rows, data = torch.cat(raw), Transitions.cat(batches)
    assert len(rows) == len(data)
    assert torch.equal(data.location, rows[:, 2].long())
    returns = torch.tensor(monte_carlo_returns(rows.tolist()), dtype=torch.float64)
    complete = ~returns.isnan()
    kind = rows[:, 1].long()
    assert {TRIP, IDLE_MOVE, TERMINAL} <= set(kind[complete].tolist())
    assert int(complete.sum()) > 0.8 * len(rows)  # most chains end inside the horizon
    data, rows, returns, kind = data.select(complete), rows[complete], returns[complete], kind[complete]
    # Entries from the times TD sees (float32), so a time a hair below a bin edge bins the same way.
    entry = (torch.remainder(data.time_s.double(), DAY) // (DAY / BINS)).long() * CELLS + data.location
    counts = torch.bincount(entry, minlength=BINS * CELLS)
    size = counts.clamp_min(1).double()
    mc = torch.zeros(BINS * CELLS, dtype=torch.float64).index_add_(0, entry, returns) / size
    square = torch.zeros(BINS * CELLS, dtype=torch.float64).index_add_(0, entry, returns ** 2) / size
    se = ((square - mc ** 2).clamp_min(0) / size).sqrt()
    return Episodes(data, returns, kind, rows[:, 6], entry, counts, mc, se)


def batch_td0(data: Transitions) -> TabularValue:
    """Batch TD(0): every pass is one td0_update on all the transitions (each entry moves by α times its
    mean TD error), repeated to the fixed point."""
    table = TabularValue(CELLS, BINS, DAY)
    for _ in range(300):
        td0_update(table, data, 0.5)
    return table


def batch_fitted_td(data: Transitions) -> TabularValue:
    table = TabularValue(CELLS, BINS, DAY)
    config = FittedTDConfig(iterations=200, batch_size=len(data), learning_rate=1.0, target_update_every=20,
                            grad_clip=None)
    fitted_td(table, data, config, generator=make_generator(0))
    return table


def mismatch(table: TabularValue, ep: Episodes) -> tuple[float, float]:
    """(relative error of the count-weighted mean value, worst relative error of a well-visited entry)."""
    values = table.table.detach().view(-1).double()
    mean = float(values[ep.entry].mean() / ep.returns.mean() - 1)
    well = ep.counts >= WELL_VISITED
    worst = float(((values - ep.mc) / ep.mc)[well].abs().max())
    return mean, worst


@pytest.mark.parametrize("learn", [batch_td0, batch_fitted_td], ids=["td0_update", "fitted_td"])
def test_td_agrees_with_monte_carlo_returns_on_a_tiny_city(episodes: Episodes, learn) -> None:  # noqa: ANN001
    """On one data set, batch TD converges to the certainty-equivalence value of the (cell, 6-hour bin)
    chain it sees, which equals the mean Monte Carlo return only where that chain is Markov. Here the
    demand is stationary and uniform, so the one thing that matters and TD cannot see is the time left
    in the driver's shift: near its end the true return falls to 0, while TD spreads the chance of
    going offline over the whole entry. For a Poisson stream of fares that bias is
    (1 + τ/S)⁻¹ / (1 − τ/S · (1 − γ^(S/P))) − 1 ≈ +1.5 % with τ = P/ln(1/γ) ≈ 865 s and shifts of
    S = 7200 s. The Monte Carlo means of the well-visited entries have standard errors of ~2 %
    (checked below). Hence 4 % on the count-weighted mean and 10 % per well-visited entry; a TD that
    dropped the reward (−100 %), the discount (+590 %) or the bootstrap (−56 %), discounted twice per
    period (−32 %), or paid the fare undiscounted at the anchor (+13 %) fails (next test)."""
    ep = episodes
    well = ep.counts >= WELL_VISITED
    assert int(well.sum()) >= 8 and float((ep.se / ep.mc)[well].max()) < 0.04
    table = learn(ep.data)
    values = table.table.detach().view(-1).double()
    # The fixed point: the mean TD error of every visited entry is 0, computed here from the transitions.
    next_entry = (torch.remainder(ep.data.next_time_s.double(), DAY) // (DAY / BINS)).long() * CELLS \
        + ep.data.next_location
    delta = ep.data.reward.double() + ep.data.discount.double() * values[next_entry] - values[ep.entry]
    mean_delta = torch.zeros_like(values).index_add_(0, ep.entry, delta) / ep.counts.clamp_min(1)
    assert float(mean_delta.abs().max()) < 0.01
    mean, worst = mismatch(table, ep)
    assert abs(mean) < MEAN_TOLERANCE, mean
    assert worst < ENTRY_TOLERANCE, (worst, ((values - ep.mc) / ep.mc)[well].tolist())


def perturbed(ep: Episodes, how: str) -> Transitions:
    d = ep.data
    reward, discount = d.reward, d.discount
    if how == "no reward":
        reward = torch.zeros_like(reward)
    elif how == "no discount":  # γ = 1: the undiscounted rest of the shift
        discount = torch.where(discount > 0, 1.0, 0.0)
    elif how == "no bootstrap":
        discount = torch.zeros_like(discount)
    elif how == "discount squared":  # e.g. gamma_period_s halved
        discount = discount ** 2
    elif how == "fare at the anchor":  # the fare not discounted from the anchor to the match
        reward = torch.where(ep.kind == TERMINAL, 0.0, ep.fare).float()
    return Transitions(d.location, d.time_s, reward, d.next_location, d.next_time_s, discount)


@pytest.mark.parametrize("how", ["no reward", "no discount", "no bootstrap", "discount squared",
                                 "fare at the anchor"])
def test_the_monte_carlo_check_rejects_a_broken_td(episodes: Episodes, how: str) -> None:
    """The check of the previous test is sharp enough: TD on transitions with one part broken fails it."""
    mean, worst = mismatch(batch_td0(perturbed(episodes, how)), episodes)
    assert abs(mean) >= MEAN_TOLERANCE or worst >= ENTRY_TOLERANCE, (mean, worst)
    assert abs(mean) >= 2 * MEAN_TOLERANCE or worst >= 1.5 * ENTRY_TOLERANCE  # and not by a hair
