"""Counter-based randomness: SplitMix64 on int64 tensors, exact and the same on every device.

A draw that is a pure function of a key (an id, a quantised observation) repeats wherever the key
repeats, needs no generator state, and lets two runs that meet the same key see the same draw
(multiplication wraps modulo 2^64; shifts are made logical by masking, as torch shifts arithmetically).
"""

from __future__ import annotations

import torch


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


_GOLDEN, _MIX1, _MIX2 = _signed(0x9E3779B97F4A7C15), _signed(0xBF58476D1CE4E5B9), _signed(0x94D049BB133111EB)


def _shr(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 (torch shifts arithmetically)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def _mix_(z: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finaliser of int64 ``z``, in place (``z`` is overwritten and returned).

    In place because each op of the out-of-place form allocates a tensor of ``z``'s size: on one CPU thread, for a
    batch of candidates (``[65,536, 50]``), that form was about 3× slower, most of it spent on fresh pages."""
    scratch = torch.empty_like(z)
    z.add_(_GOLDEN)
    for bits, multiplier in ((30, _MIX1), (27, _MIX2)):
        torch.bitwise_right_shift(z, bits, out=scratch)
        z.bitwise_xor_(scratch.bitwise_and_((1 << (64 - bits)) - 1)).mul_(multiplier)
    torch.bitwise_right_shift(z, 31, out=scratch)
    return z.bitwise_xor_(scratch.bitwise_and_((1 << 33) - 1))


def mix(x: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finaliser of int64 ``x`` (any shape; ``x`` is not modified)."""
    return _mix_(x.to(torch.long, memory_format=torch.contiguous_format, copy=True))


def hash_uniform(key: torch.Tensor, salt: int) -> torch.Tensor:
    """A float64 uniform in [0, 1) per int64 ``key`` (53 bits), a different stream per ``salt``."""
    h = _mix_(_mix_(key ^ _signed((salt * 0x2545F4914F6CDD1D) % (1 << 64))).add_(salt))
    return _shr(h, 11).double() * (1.0 / (1 << 53))


def hash_rows(values: torch.Tensor, resolution: float = 2.0**-20) -> torch.Tensor:
    """One int64 key per row of ``values [..., F]`` (floats quantised to ``resolution``): rows that differ
    by at least ``resolution`` in any entry get different keys but for a 2^-64 chance."""
    q = torch.round(values.double() / resolution).long()
    columns = torch.arange(q.shape[-1], dtype=torch.long, device=q.device)
    return mix((mix(q + mix(columns)) * (2 * columns + 1)).sum(-1))


__all__ = ["hash_rows", "hash_uniform", "mix"]
