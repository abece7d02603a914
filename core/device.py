"""Device, thread and allocator selection.

``DECISIONLAB_DEVICE`` overrides the choice (``cpu``, ``cuda``, ``cuda:1``); otherwise CUDA is used
when present and the CPU when not. One rollout stays on one device.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
from collections.abc import Iterator

import torch

from decisionlab.core.errors import DecisionlabError

_threads_configured = False
_allocator_configured: bool | None = None
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def get_device(requested: str | torch.device | None = None) -> torch.device:
    """The device to run on: ``requested`` > ``$DECISIONLAB_DEVICE`` > cuda if available > cpu."""
    choice = requested if requested is not None else os.environ.get("DECISIONLAB_DEVICE")
    if choice is None or str(choice).strip() == "":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(str(choice).strip())
    except RuntimeError as err:
        raise DecisionlabError(
            f"DECISIONLAB_DEVICE/device '{choice}' is not a device name (try 'cpu' or 'cuda')"
        ) from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DecisionlabError(f"device '{choice}' was requested but CUDA is not available here")
    return device


def configure_threads(num_threads: int | None = None) -> int:
    """Set torch's intra-op thread count once, deliberately.

    Batched simulators run many tiny element-wise kernels; on a small CPU, extra threads cost more
    in synchronisation than they give, and a second process (API next to the dashboard, a test
    runner) turns them into oversubscription. Measured here (docs/benchmarks.md): one thread is as
    fast or faster at every batch size on 2 cores. Default: ``$DECISIONLAB_NUM_THREADS`` if set,
    else 1. Returns the count in force.
    """
    global _threads_configured
    if num_threads is None:
        env = os.environ.get("DECISIONLAB_NUM_THREADS")
        if env is not None and _threads_configured:
            return torch.get_num_threads()
        num_threads = int(env) if env else 1
    torch.set_num_threads(max(1, int(num_threads)))
    _threads_configured = True
    return torch.get_num_threads()


def configure_allocator() -> bool:
    """Let glibc reuse the large blocks a batched simulation frees, instead of returning them to the kernel.

    A batched CPU step makes dozens of temporary tensors of tens of MB. By default glibc serves each from
    fresh ``mmap`` pages, which the kernel faults in and zeroes, and unmaps it when freed. For a recommendation
    step at a batch of 65,536 that was ~40,000 page faults, and more time than the arithmetic. Raising the
    mmap threshold to glibc's most (32 MiB) and the trim threshold to 1 GiB keeps the blocks in the heap for
    the next step (``docs/benchmarks.md``, recommendation throughput). The price: up to 1 GiB of freed memory
    stays with the process, so the CLI and the benchmarks set this, the API server does not.

    Linux with glibc only; ``DECISIONLAB_MALLOC_TUNING=0`` turns it off. Returns whether it is in force.
    """
    global _allocator_configured
    if _allocator_configured is not None:
        return _allocator_configured
    _allocator_configured = False
    if os.environ.get("DECISIONLAB_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 (absent from musl and other C libraries: no tuning there)
    except (OSError, AttributeError):
        return False
    _allocator_configured = bool(libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30))
    return _allocator_configured


@contextlib.contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Run a block with ``num_threads`` torch threads (``None``: leave as is), then restore them.

    Training loops of small networks are fastest on one thread even where evaluation is not."""
    previous = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
