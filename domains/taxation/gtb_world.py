"""The Gather-Trade-Build map as tensors: one byte of bit flags per tile, on a map padded by the observation
range so that every worker's window is a plain gather.

A tile's byte (:data:`WOOD` ... :data:`OFF_MAP`) says what is on it; tiles are addressed by their row-major
index on the padded map (``P = S + 2·range`` per side). A house blocks its tile to every worker (in the
Foundation its builder may still walk onto it: a simplification that spares the map an owner layer). Source
tiles are listed per economy in ``K`` slots with the step from which their resource is back
(``ready_at``): a tile emptied by gathering regrows after a geometric number of steps, which is the
Foundation's per-step regrowth probability drawn once (at regrowth radius 0 and one unit per tile, its
published setting). Shapes: ``code`` ``[B, P·P]``; positions ``[B, A]``; slots ``[B, K]``.
"""

from __future__ import annotations

import torch

WOOD, STONE, WOOD_SOURCE, STONE_SOURCE, HOUSE, AGENT, OFF_MAP = (1 << i for i in range(7))
"""Bits of a tile's byte; in a worker's window :data:`AGENT` marks the other workers."""
LAYERS = ("wood", "stone", "wood_source", "stone_source", "house", "agent", "off_map")
RESOURCES = WOOD | STONE
SOURCES = WOOD_SOURCE | STONE_SOURCE
NEVER = 1 << 30
"""``ready_at`` of a tile that never regrows (regrowth probability 0)."""
PAIRWISE_MOVES = 64
"""Up to this many workers, move conflicts are found by comparing every pair (``[A, A]``, fastest for few);
above it, by the first priority per target tile (``O(A)``)."""


def padded_index(tiles: torch.Tensor, size: int, pad: int) -> torch.Tensor:
    """Row-major indices on the ``size`` map → on the map padded by ``pad`` on every side."""
    row, col = tiles // size, tiles % size
    return (row + pad) * (size + 2 * pad) + col + pad


def move_offsets(size: int, pad: int, device: torch.device) -> torch.Tensor:
    """``[4]`` index steps of the moves left, right, up, down (the Foundation's order)."""
    side = size + 2 * pad
    return torch.tensor([-1, 1, -side, side], device=device)


def window_offsets(size: int, pad: int, device: torch.device) -> torch.Tensor:
    """``[W·W]`` index steps from a worker's tile to each tile of its window (row-major, ``W = 2·pad + 1``)."""
    side, span = size + 2 * pad, torch.arange(-pad, pad + 1, device=device)
    return (span[:, None] * side + span[None, :]).reshape(-1)


def initial_code(kinds: torch.Tensor, positions: torch.Tensor, pad: int) -> torch.Tensor:
    """``[B, P·P]`` uint8 tile bytes of a fresh map: sources full, workers on ``positions`` (padded), the
    padding off the map. ``kinds [B, S, S]``: 0 none, 1 wood, 2 stone."""
    body = torch.zeros(kinds.shape, dtype=torch.uint8, device=kinds.device)
    body = torch.where(kinds == 1, WOOD | WOOD_SOURCE, body)
    body = torch.where(kinds == 2, STONE | STONE_SOURCE, body).to(torch.uint8)
    code = pad_map(body, pad)
    return code.scatter(1, positions, code.gather(1, positions) | AGENT)


def pad_map(body: torch.Tensor, pad: int) -> torch.Tensor:
    """``[B, S, S]`` bytes → ``[B, P·P]`` with :data:`OFF_MAP` around them."""
    batch, size = body.shape[0], body.shape[-1]
    side = size + 2 * pad
    code = torch.full((batch, side, side), OFF_MAP, dtype=torch.uint8, device=body.device)
    code[:, pad:pad + size, pad:pad + size] = body
    return code.reshape(batch, side * side)


def source_slots(kinds: torch.Tensor, pad: int, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The source tiles of each economy as ``k`` slots (at least its number of sources): ``(tiles [B, K]
    padded index, bit [B, K] uint8 its resource's bit (0 for an unused slot), slot_of [B, P·P] int16 the
    slot of each tile or −1)``; unused slots point at tile 0 (off the map). ``K`` is fixed by the
    scenario, so that the states of separate resets have the same shapes."""
    batch, size = kinds.shape[0], kinds.shape[-1]
    flat = kinds.reshape(batch, -1)
    is_source = flat > 0
    if bool((is_source.sum(1) > k).any()):
        raise ValueError(f"a map has more than {k} source tiles")
    # sources first, in tile order: a stable sort on "not a source"
    order = torch.sort((~is_source).to(torch.uint8), dim=1, stable=True).indices[:, :k]
    used = is_source.gather(1, order)
    tiles = torch.where(used, padded_index(order, size, pad), 0)
    kind = flat.gather(1, order)
    bit = torch.where(used & (kind == 1), WOOD, torch.where(used & (kind == 2), STONE, 0)).to(torch.uint8)
    side = size + 2 * pad
    slot_of = torch.full((batch, side * side), -1, dtype=torch.int16, device=kinds.device)
    slot = torch.arange(k, dtype=torch.int16, device=kinds.device).expand(batch, k)
    slot_of = slot_of.scatter(1, tiles, torch.where(used, slot, -1).to(torch.int16))
    slot_of[:, 0] = -1  # unused slots all point at tile 0, which is off the map
    return tiles, bit, slot_of


def windows(code: torch.Tensor, positions: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """``[B, A, W·W]`` uint8 each worker's window (itself not marked as :data:`AGENT`)."""
    batch, agents = positions.shape
    # the offsets expanded first: torch adds this layout several times faster than positions[..., None] + offsets
    index = torch.add(offsets.expand(batch, agents, -1), positions[:, :, None])
    seen = code.gather(1, index.reshape(batch, -1)).reshape(batch, agents, -1)
    seen[:, :, offsets.numel() // 2] &= ~AGENT & 0xFF
    return seen


def unpack(window: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``[..., W·W]`` tile bytes → ``[..., L·W·W]`` 0/1 layers (:data:`LAYERS` order, each row-major)."""
    small = window.to(torch.uint8)  # shifting bytes is several times faster than int64 here
    return torch.stack([(small >> i) & 1 for i in range(len(LAYERS))], -2).to(dtype).flatten(-2)


def enterable(code: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``[B, ...]`` bool: whether ``targets`` (padded indices ``[B, ...]``) are tiles on the map with no worker
    and no house."""
    seen = code.gather(1, targets.reshape(targets.shape[0], -1)).view(targets.shape)
    return (seen & (OFF_MAP | AGENT | HOUSE)) == 0


def resolve_moves(positions: torch.Tensor, direction: torch.Tensor, legal: torch.Tensor, offsets: torch.Tensor,
                  priority: torch.Tensor, cells: int) -> torch.Tensor:
    """``[B, A]`` bool: which of the wanted moves (``direction`` 0..3, ``legal [B, A]``) go ahead. Workers
    move one by one in a random order (``priority``, lower first): of several heading for the same tile,
    the first gets it. ``cells``: the padded map's tiles (positions index them)."""
    target = positions + offsets[direction.clamp(0, 3)]
    if positions.shape[1] <= PAIRWISE_MOVES:
        same = (target[:, :, None] == target[:, None, :]) & legal[:, :, None] & legal[:, None, :]
        earlier = priority[:, None, :] < priority[:, :, None]  # [b, i, j]: j moves before i
        return legal & ~(same & earlier).any(-1)
    # many workers: the first priority heading for each tile (the wanted moves only; the rest aim at a spare
    # tile past the map), and a mover goes ahead when it holds it
    aim = torch.where(legal, target, cells)
    first = torch.full((positions.shape[0], cells + 1), float("inf"), dtype=priority.dtype, device=priority.device)
    first = first.scatter_reduce(1, aim, priority, "amin")
    return legal & (priority <= first.gather(1, aim))


def regrowth_delay(u: torch.Tensor, probability: float) -> torch.Tensor:
    """Steps (int32) until an emptied tile has its unit back, from uniforms ``u`` in [0, 1): geometric on
    1, 2, ... with success probability ``probability`` per step (1: back at the end of the step it was
    emptied; 0: :data:`NEVER`)."""
    if probability <= 0.0:
        return torch.full(u.shape, NEVER, dtype=torch.int32, device=u.device)
    if probability >= 1.0:
        return torch.ones(u.shape, dtype=torch.int32, device=u.device)
    trials = torch.floor(torch.log1p(-u.double()) / torch.log1p(torch.tensor(-probability, dtype=torch.float64)))
    return (trials.clamp(0, NEVER - 1) + 1).int()
