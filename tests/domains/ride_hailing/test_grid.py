"""The hex grid against brute force: neighbours one cell apart, hex distance = shortest path over
neighbours, disks = every cell within the radius, nearest cell of a point."""

from __future__ import annotations

from collections import deque

import pytest
import torch

from decisionlab.domains.ride_hailing.grid import HexGrid


def bfs_steps(grid: HexGrid, start: int) -> list[int]:
    steps = [-1] * grid.n_cells
    steps[start] = 0
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        for nxt in grid.neighbours[cell].tolist():
            if steps[nxt] < 0:
                steps[nxt] = steps[cell] + 1
                queue.append(nxt)
    return steps


@pytest.mark.parametrize("size", [1, 2, 5, 8])
def test_neighbours_distances_and_disks_match_brute_force(size: int) -> None:
    grid = HexGrid(size, 0.7)
    cells = torch.arange(grid.n_cells)
    gap = torch.linalg.vector_norm(grid.centres_km[grid.neighbours] - grid.centres_km[:, None], dim=-1)
    real = grid.neighbours != cells[:, None]
    assert torch.allclose(gap[real], torch.tensor(0.7)) and bool((grid.neighbours[:, 0] == cells).all())
    for start in range(grid.n_cells):
        steps = bfs_steps(grid, start)
        assert grid.hex_distance(torch.tensor(start), cells).tolist() == steps
        for radius in (0, 1, 2, 3):
            disk = grid.disk(radius)[start]
            assert int(disk[0]) == start
            assert set(disk.tolist()) == {c for c, k in enumerate(steps) if k <= radius}


def test_points_go_to_the_nearest_centre() -> None:
    grid = HexGrid(6, 1.0)
    points = torch.rand(500, 2, generator=torch.Generator().manual_seed(0)) * 7 - 0.5
    nearest = torch.cdist(points, grid.centres_km).argmin(1)
    assert torch.equal(grid.cell_of_km(points), nearest)
