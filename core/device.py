"""Device and thread selection.

``DECISIONLAB_DEVICE`` overrides the choice (``cpu``, ``cuda``, ``cuda:1``); otherwise CUDA is used
when present and the CPU when not. One rollout stays on one device.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from decisionlab.core.errors import DecisionlabError

_threads_configured = False


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
