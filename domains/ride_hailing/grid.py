"""The city's hexagonal grid: an axial hex grid of its own, ``size × size`` cells.

Cells are pointy-top hexagons laid out in "odd-r" offset rows (odd rows shifted right by half a
cell), indexed ``cell = row · size + col``. ``cell_km`` is the distance between the centres of two
neighbouring cells, so every cell has up to six neighbours at exactly ``cell_km``. Distances are
straight lines between centres times a road ``detour`` factor; the hex distance (number of cell
steps) is exact. Everything is a tensor on one device, so the simulator and the policies index it
without Python loops.

Why not h3: a city simulator needs a dense, fixed cell index (tables ``[time, cell]``, embeddings)
and neighbour tables as tensors; h3 cells over a bounding box are a ragged set of 64-bit ids that
would have to be mapped onto exactly such an index anyway. Trip records with coordinates are
projected onto this grid (:meth:`HexGrid.cell_of_km`).
"""

from __future__ import annotations

import math

import torch

SQRT3_2 = math.sqrt(3.0) / 2.0
# Axial direction vectors of the six neighbours (pointy-top): E, W, NE, NW, SE, SW.
AXIAL_DIRECTIONS = ((1, 0), (-1, 0), (1, -1), (0, -1), (0, 1), (-1, 1))
INTRA_CELL = 0.35  # a trip inside one cell: this share of a cell's width (km), before the detour


class HexGrid:
    """``size × size`` hexagonal cells, centres ``cell_km`` apart.

    Attributes:
        n_cells: ``size²``.
        centres_km: ``[C, 2]`` cell centres (x east, y north), km.
        axial: ``[C, 2]`` axial coordinates ``(q, r)`` (long).
        neighbours: ``[C, 7]`` the cell itself, then its neighbours (cells at the edge repeat
            themselves in the missing places).
    """

    def __init__(self, size: int, cell_km: float, detour: float = 1.3, device: torch.device | str = "cpu") -> None:
        if size < 1:
            raise ValueError(f"grid size must be at least 1, got {size}")
        self.size, self.cell_km, self.detour = int(size), float(cell_km), float(detour)
        self.device = torch.device(device)
        self.n_cells = self.size * self.size
        self.intra_km = INTRA_CELL * self.cell_km * self.detour  # the shortest road trip (inside one cell)
        idx = torch.arange(self.n_cells, device=self.device)
        row, col = idx // self.size, idx % self.size
        self.centres_km = torch.stack(
            (self.cell_km * (col.double() + 0.5 * (row % 2).double()), self.cell_km * SQRT3_2 * row.double()), dim=1
        ).float()
        q = col - (row - (row % 2)) // 2
        self.axial = torch.stack((q, row), dim=1)
        self.neighbours = self._neighbours(q, row)
        self.extent_km = (float(self.centres_km[:, 0].max()) + self.cell_km / 2,
                          float(self.centres_km[:, 1].max()) + self.cell_km / 2)

    def _neighbours(self, q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        out = [torch.arange(self.n_cells, device=self.device)]
        for dq, dr in AXIAL_DIRECTIONS:
            nq, nr = q + dq, r + dr
            col = nq + (nr - (nr % 2)) // 2
            inside = (nr >= 0) & (nr < self.size) & (col >= 0) & (col < self.size)
            out.append(torch.where(inside, nr * self.size + col, out[0]))
        return torch.stack(out, dim=1)

    def hex_distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Cell steps between cells ``a`` and ``b`` (broadcast), long."""
        qa, ra = self.axial[a, 0], self.axial[a, 1]
        qb, rb = self.axial[b, 0], self.axial[b, 1]
        dq, dr = qa - qb, ra - rb
        return (dq.abs() + dr.abs() + (dq + dr).abs()) // 2

    def distance_km(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Road distance between the centres of cells ``a`` and ``b`` (broadcast): straight line × detour."""
        return self.detour * torch.linalg.vector_norm(self.centres_km[a] - self.centres_km[b], dim=-1)

    def road_km(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """:meth:`distance_km` of a trip, at least :attr:`intra_km` (a trip inside one cell)."""
        return self.distance_km(a, b).clamp_min(self.intra_km)

    def cell_of_km(self, xy_km: torch.Tensor) -> torch.Tensor:
        """The cell whose centre is nearest to each point ``[..., 2]`` (km; points outside the grid go to
        the nearest edge cell). Long ``[...]``."""
        xy = xy_km.to(self.device, torch.float32)
        row0 = torch.round(xy[..., 1] / (self.cell_km * SQRT3_2)).long()
        best = torch.full(xy.shape[:-1], -1, dtype=torch.long, device=self.device)
        best_d = torch.full(xy.shape[:-1], math.inf, device=self.device)
        for dr in (-1, 0, 1):
            row = (row0 + dr).clamp(0, self.size - 1)
            col0 = torch.round(xy[..., 0] / self.cell_km - 0.5 * (row % 2)).long()
            for dc in (-1, 0, 1):
                col = (col0 + dc).clamp(0, self.size - 1)
                cell = row * self.size + col
                d = torch.linalg.vector_norm(self.centres_km[cell] - xy, dim=-1)
                better = d < best_d
                best = torch.where(better, cell, best)
                best_d = torch.where(better, d, best_d)
        return best

    def disk(self, radius: int) -> torch.Tensor:
        """``[C, D]`` every cell within ``radius`` steps of each cell, its own cell first (cells near the
        edge repeat themselves where a place falls outside). ``D = 1 + 3·r·(r + 1)`` with ``r`` the radius
        capped at ``2·size`` (farther offsets fall outside the grid from every cell)."""
        r = min(int(radius), 2 * self.size)
        span = torch.arange(-r, r + 1, device=self.device)
        dq, dr = torch.meshgrid(span, span, indexing="xy")
        dq, dr = dq.flatten(), dr.flatten()
        keep = ((dq.abs() + dr.abs() + (dq + dr).abs()) // 2 <= r) & ~((dq == 0) & (dr == 0))
        dq = torch.cat((dq.new_zeros(1), dq[keep]))
        dr = torch.cat((dr.new_zeros(1), dr[keep]))
        q, row = self.axial[:, 0:1] + dq, self.axial[:, 1:2] + dr  # [C, D]
        col = q + (row - (row % 2)) // 2
        inside = (row >= 0) & (row < self.size) & (col >= 0) & (col < self.size)
        cells = torch.arange(self.n_cells, device=self.device)[:, None]
        return torch.where(inside, row * self.size + col, cells)

    def disk_within_km(self, km: float) -> torch.Tensor:
        """:meth:`disk` of the most steps whose road distance stays within ``km`` (at least the cell itself)."""
        return self.disk(max(0, int(km / (self.cell_km * self.detour) + 1e-9)))
