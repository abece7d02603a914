"""What a Gather-Trade-Build episode starts from, drawn from the reset generator: the resource map, the skills
and the workers' tiles.

The map follows the Foundation's generated layout (``Uniform`` in its ``dynamic_layout.py``), batched over
economies: a row gradient ``row^steepness`` (wood towards the bottom rows, stone towards the top) times the
target coverage gives each tile's chance to seed a source; a share ``1 − clumpiness`` of the target is
seeded (the Foundation's rule: a uniform draw per tile, scaled down by 0.9 until enough tiles fall below
``0.1·(1 − clumpiness)·chance``), then clusters grow from the seeds (each round a random 7 × 7 kernel of
coin flips is convolved with the map plus noise; tiles whose sum is positive join) until the coverage is
reached. A map whose coverage of either resource is off the target by more than a factor 1.4 is drawn
again (as the Foundation does). Wood is placed first and stone only on tiles left free. There is no water.

Skills, per worker and economy (the Foundation's ``Build`` and ``Gather`` with ``skill_dist="pareto"``;
``X ~ Lomax(a)`` is numpy's ``pareto(a)``, ``(1 − U)^(−1/a) − 1``): the build multiplier
``min(m, (m − 1)·X + 1)`` (a = 4, so the house payment lies in [payment, m·payment]); the bonus-gather
probability ``min(2, X)/2`` (a = 3). Shapes: maps ``[B, S, S]``, skills ``[B, A]``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from decisionlab.domains.taxation.scenario import GatherTradeBuildScenario

NONE, WOOD, STONE = 0, 1, 2
"""Kinds of a tile's source (and, minus 1, the resource index: wood 0, stone 1)."""
SEED_SHRINK = 0.9
SEED_SHRINKS = 200
GROW_ROUNDS = 200
GROW_KERNEL = 7
COVERAGE_SLACK = 1.4
LAYOUT_TRIES = 20


def lomax(shape: tuple[int, ...], a: float, generator: torch.Generator | None, device: torch.device
          ) -> torch.Tensor:
    """Lomax (Pareto II) draws ``(1 − U)^(−1/a) − 1``, float64."""
    u = torch.rand(shape, generator=generator, device=device, dtype=torch.float64)
    return (1.0 - u) ** (-1.0 / a) - 1.0


def build_multipliers(s: GatherTradeBuildScenario, batch: int, generator: torch.Generator | None,
                      device: torch.device) -> torch.Tensor:
    """``[B, A]`` each worker's house payment as a multiple of ``build_payment``."""
    m = s.payment_max_skill_multiplier
    x = lomax((batch, s.n_agents), s.build_skill_pareto_shape, generator, device)
    return torch.clamp((m - 1.0) * x + 1.0, max=m)


def gather_bonus(s: GatherTradeBuildScenario, batch: int, generator: torch.Generator | None,
                 device: torch.device) -> torch.Tensor:
    """``[B, A]`` each worker's chance to collect a second unit with each one."""
    return lomax((batch, s.n_agents), s.gather_skill_pareto_shape, generator, device).clamp(max=2.0) / 2.0


def source_chance(s: GatherTradeBuildScenario, resource: int, device: torch.device) -> torch.Tensor:
    """``[S, S]`` the row gradient (mean 1) times the resource's coverage: wood rises to the bottom, stone
    to the top."""
    rows = torch.arange(s.map_size, dtype=torch.float64, device=device) ** s.gradient_steepness
    rows = rows / rows.mean()
    if resource == STONE:
        rows = rows.flip(0)
    coverage = s.wood_coverage if resource == WOOD else s.stone_coverage
    return (rows * coverage)[:, None].expand(s.map_size, s.map_size)


def seeds(chance: torch.Tensor, target: float, empty: torch.Tensor, generator: torch.Generator | None
          ) -> torch.Tensor:
    """``[B, S, S]`` seed tiles: those whose draw ``u`` satisfies ``u·0.9^k < chance`` for the least ``k``
    (up to 200) that seeds at least ``target`` of the tiles (the Foundation's shrinking loop, in closed form)."""
    batch, size = empty.shape[0], empty.shape[-1]
    u = torch.rand(empty.shape, generator=generator, device=empty.device, dtype=torch.float64)
    ratio = torch.where(empty & (chance > 0), u / chance.clamp_min(1e-300), torch.inf).reshape(batch, -1)
    wanted = min(max(1, math.ceil(target * size * size)), size * size)
    # tile u seeds after k shrinks where u/chance < 0.9^−k: the least k that passes the wanted-th smallest ratio
    kth = ratio.kthvalue(wanted, dim=1).values.clamp(min=1e-300, max=1e300)
    k = torch.ceil(torch.log(kth) / -math.log(SEED_SHRINK)).clamp(0, SEED_SHRINKS)
    k = torch.where(SEED_SHRINK ** -k > kth, k, k + 1).clamp(0, SEED_SHRINKS)
    return (ratio < (SEED_SHRINK ** -k)[:, None]).reshape(empty.shape)


def grow(tiles: torch.Tensor, target: float, empty: torch.Tensor, generator: torch.Generator | None
         ) -> torch.Tensor:
    """``[B, S, S]`` clusters grown from ``tiles`` until each economy covers ``target`` of its map (or after
    200 rounds); only the economies still short of it take part in a round."""
    out = tiles.clone()
    for _ in range(GROW_ROUNDS):
        short = torch.nonzero(out.double().mean((1, 2)) < target).flatten()
        if short.numel() == 0:
            break
        part, free = out[short].double(), empty[short]
        n = part.shape[0]
        kernel = (torch.randn(n, 1, GROW_KERNEL, GROW_KERNEL, generator=generator, device=out.device,
                              dtype=torch.float64) > 0).double()
        noisy = part + 0.2 * torch.randn(part.shape, generator=generator, device=out.device,
                                         dtype=torch.float64) - 0.25
        # one group per economy: each convolves its own map with its own kernel
        summed = F.conv2d(noisy[None], kernel, padding=GROW_KERNEL // 2, groups=n)[0]
        out[short] = ((summed > 0) | part.bool()) & free
    return out


def place(s: GatherTradeBuildScenario, resource: int, empty: torch.Tensor, generator: torch.Generator | None
          ) -> torch.Tensor:
    """``[B, S, S]`` one resource's source tiles on the ``empty`` ones."""
    coverage = s.wood_coverage if resource == WOOD else s.stone_coverage
    clumpiness = s.wood_clumpiness if resource == WOOD else s.stone_clumpiness
    clump = 1.0 - min(max(clumpiness, 0.0), 0.99)
    chance = source_chance(s, resource, empty.device) * 0.1 * clump
    return grow(seeds(chance, coverage * clump, empty, generator), coverage, empty, generator)


def resource_layout(s: GatherTradeBuildScenario, batch: int, generator: torch.Generator | None,
                    device: torch.device) -> torch.Tensor:
    """``[B, S, S]`` int64 source kind of each tile (:data:`NONE`, :data:`WOOD`, :data:`STONE`)."""
    size = s.map_size
    kinds = torch.zeros(batch, size, size, dtype=torch.long, device=device)
    todo = torch.arange(batch, device=device)
    for _ in range(LAYOUT_TRIES):
        empty = torch.ones(todo.numel(), size, size, dtype=torch.bool, device=device)
        wood = place(s, WOOD, empty, generator)
        stone = place(s, STONE, empty & ~wood, generator)
        kinds[todo] = torch.where(wood, WOOD, torch.where(stone, STONE, NONE))
        good = torch.ones(todo.numel(), dtype=torch.bool, device=device)
        for tiles, coverage in ((wood, s.wood_coverage), (stone, s.stone_coverage)):
            quotient = tiles.double().mean((1, 2)) / coverage
            good &= (quotient >= 1.0 / COVERAGE_SLACK) & (quotient <= COVERAGE_SLACK)
        todo = todo[~good]
        if todo.numel() == 0:
            break
    # economies still off target after the last try keep it, as the Foundation does, less any excess over
    # the slack (random tiles dropped): the simulator keeps a fixed number of source slots
    for kind, coverage in ((WOOD, s.wood_coverage), (STONE, s.stone_coverage)):
        cap = source_capacity(s, coverage)
        tiles = (kinds == kind).reshape(batch, -1)
        key = torch.where(tiles, torch.rand(tiles.shape, generator=generator, device=device, dtype=torch.float64),
                          2.0)
        rank = key.argsort(1).argsort(1)
        kinds = torch.where((tiles & (rank >= cap)).reshape(kinds.shape), NONE, kinds)
    return kinds


def source_capacity(s: GatherTradeBuildScenario, coverage: float) -> int:
    """The most source tiles of one resource a map keeps: the coverage target times the slack."""
    return max(1, math.floor(COVERAGE_SLACK * coverage * s.map_size ** 2))


def start_tiles(s: GatherTradeBuildScenario, batch: int, generator: torch.Generator | None,
                device: torch.device) -> torch.Tensor:
    """``[B, A]`` distinct random tiles (row-major index on the map), one per worker."""
    draw = torch.rand(batch, s.map_size * s.map_size, generator=generator, device=device)
    return draw.topk(s.n_agents, dim=1).indices
