"""The counter-based hashes: equal keys give equal draws, different keys independent uniform ones."""

from __future__ import annotations

import torch

from decisionlab.core import hash_rows, hash_uniform


def test_rows_that_differ_anywhere_get_different_keys_and_equal_rows_the_same() -> None:
    rows = torch.rand(20_000, 12, generator=torch.Generator().manual_seed(0))
    keys = hash_rows(rows)
    assert keys.unique().numel() == rows.shape[0]
    assert torch.equal(hash_rows(rows.clone()), keys)
    nudged = rows.clone()
    nudged[:, 7] += 1e-5  # one entry, above the default resolution of 2^-20
    assert bool((hash_rows(nudged) != keys).all())
    swapped = rows[:, [1, 0, *range(2, 12)]]  # the same values in another order: another key
    assert bool((hash_rows(swapped) != keys).all())


def test_hashed_uniforms_are_uniform_and_a_salt_gives_another_stream() -> None:
    keys = hash_rows(torch.arange(200_000, dtype=torch.float64)[:, None])
    u = hash_uniform(keys, 3)
    assert float(u.min()) >= 0.0 and float(u.max()) < 1.0
    counts = torch.histc(u.float(), bins=10, min=0.0, max=1.0)
    assert float((counts / u.numel() - 0.1).abs().max()) < 0.005
    other = hash_uniform(keys, 4)
    assert abs(float(torch.corrcoef(torch.stack([u, other]))[0, 1])) < 0.01
