"""Progress of long work, shown the same way by every training loop and long evaluation.

:class:`Progress` is a bar on a terminal (tqdm, with the time left) and plain lines when the output is
piped or logged (one line every :data:`PLAIN_EVERY_S` seconds: done / total, percent, elapsed, time
left), so no phase is silent for long and a log holds no carriage returns. Numbers that are not known
yet (``nan``, ``None``) are left out rather than shown as ``nan``. A loop that ends before its total
says so and why (:meth:`Progress.stop_early`). Listeners registered with :func:`listening` (``make
run``'s training status, read by the dashboard) get every update, throttled, whether or not anything
is shown.
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, TextIO

from tqdm.auto import tqdm

PLAIN_EVERY_S = 10.0
"""Seconds between two plain progress lines (piped output)."""
NOTIFY_EVERY_S = 1.0
"""Seconds between two updates sent to listeners."""

Listener = Callable[[dict[str, Any]], None]
_LISTENERS: ContextVar[tuple[Listener, ...]] = ContextVar("decisionlab_progress_listeners", default=())


@contextlib.contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Send every :class:`Progress` update made inside the block (this thread/context) to ``listener``
    (a dict: description, done, total, unit, elapsed_s, eta_s, values, state)."""
    token = _LISTENERS.set((*_LISTENERS.get(), listener))
    try:
        yield
    finally:
        _LISTENERS.reset(token)


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def plural(unit: str) -> str:
    """``step`` -> ``steps``, ``policy`` -> ``policies``, ``sim minute`` -> ``sim minutes``."""
    if unit.endswith("y") and not unit.endswith(("ay", "ey", "oy", "uy")):
        return unit[:-1] + "ies"
    return unit + "s"


def shown_values(values: dict[str, Any]) -> dict[str, str]:
    """``values`` formatted for a progress line, without the unknown ones (``None``, ``nan``)."""
    out = {}
    for key, value in values.items():
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        out[key] = f"{value:.4g}" if isinstance(value, float | int) and not isinstance(value, bool) else str(value)
    return out


class Progress:
    """``total`` units of work described by ``description``; ``enabled=False`` shows nothing (listeners
    are told all the same). Use as a context manager or call :meth:`close`."""

    def __init__(self, total: int, description: str, *, enabled: bool = True, unit: str = "step",
                 stream: TextIO | None = None) -> None:
        self.total, self.description, self.unit, self.enabled = max(int(total), 1), description, unit, enabled
        self.done, self.values, self.state = 0, {}, "running"
        self.stream = stream if stream is not None else sys.stderr
        self.start = time.monotonic()
        self._last_line = self._last_notice = self.start
        self._listeners = _LISTENERS.get()
        self.plain = enabled and not _is_terminal(self.stream)
        self._bar = None
        self._lock = threading.Lock()
        if enabled and not self.plain:
            self._bar = tqdm(total=self.total, desc=description, unit=unit, leave=False, file=self.stream,
                             dynamic_ncols=True)
        self._closed = threading.Event()
        if self.plain:  # a log says at once what has started and how much there is to do
            self._print(f"{description}: {self.total:,} {plural(unit)} to do")
        if enabled:  # a step that takes long (one chunk of episodes...) still shows time passing
            threading.Thread(target=self._heartbeat, daemon=True, name="decisionlab-progress").start()
        self._notify(force=True)

    # -- updates -----------------------------------------------------------------------------------
    def update(self, n: int = 1) -> None:
        self.done += int(n)
        if self._bar is not None:
            self._bar.update(n)
        self._plain_line_if_due()
        self._notify()

    def _plain_line_if_due(self) -> None:
        with self._lock:
            now = time.monotonic()
            if not self.plain or now - self._last_line < PLAIN_EVERY_S or self._closed.is_set():
                return
            self._last_line = now
        self._print(self.line())

    def _heartbeat(self) -> None:
        while not self._closed.wait(1.0):
            bar = self._bar
            if bar is not None:
                bar.refresh()  # the elapsed time moves on a terminal
            self._plain_line_if_due()

    def show(self, **values: Any) -> None:
        """Numbers shown beside the bar (``eval=..., best=...``); unknown ones are left out."""
        self.values.update(values)
        if self._bar is not None:
            self._bar.set_postfix(shown_values(self.values), refresh=False)

    def stop_early(self, reason: str) -> None:
        """Say that the loop ends before its total, and why (then :meth:`close`)."""
        self.state = "stopped early"
        self._print(f"{self.description}: stopped early at {self.done:,} of {self.total:,} {plural(self.unit)} "
                    f"({100 * self.done / self.total:.0f}%) after {duration(self.elapsed)}: {reason}")

    def close(self) -> None:
        self._closed.set()
        if self.state == "running":
            self.state = "done"
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.plain and self.state == "done":
            self._print(f"{self.description}: done, {self.done:,} {plural(self.unit)} in {duration(self.elapsed)}")
        self._notify(force=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what is shown -----------------------------------------------------------------------------
    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the pace so far (``None`` before any work is done)."""
        if self.done <= 0:
            return None
        return self.elapsed * max(self.total - self.done, 0) / self.done

    def line(self) -> str:
        """``desc: 1,200/4,000 steps (30%), 12 s elapsed, about 28 s left, eval=1.2``."""
        eta = self.eta_s
        left = f", about {duration(eta)} left" if eta is not None else ""
        extra = "  " + " ".join(f"{k}={v}" for k, v in shown_values(self.values).items()) if self.values else ""
        share = 100 * self.done / self.total
        return (f"{self.description}: {self.done:,}/{self.total:,} {plural(self.unit)} ({share:.0f}%), "
                f"{duration(self.elapsed)} elapsed{left}{extra}")

    def _print(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        elif self.enabled:
            print(text, file=self.stream, flush=True)

    def _notify(self, force: bool = False) -> None:
        if not self._listeners:
            return
        now = time.monotonic()
        if not force and now - self._last_notice < NOTIFY_EVERY_S:
            return
        self._last_notice = now
        update = {"description": self.description, "done": self.done, "total": self.total, "unit": self.unit,
                  "elapsed_s": round(self.elapsed, 1), "eta_s": None if self.eta_s is None else round(self.eta_s, 1),
                  "values": shown_values(self.values), "state": self.state}
        for listener in self._listeners:
            listener(update)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
