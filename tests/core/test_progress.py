"""Progress: plain lines when piped, no nan, early stops said, time left, listeners told."""

from __future__ import annotations

import io
import math

import pytest

from decisionlab.core import progress as progress_module
from decisionlab.core.progress import Progress, duration, listening, shown_values


def test_piped_output_is_plain_lines_with_time_left_and_no_nan(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress_module, "PLAIN_EVERY_S", 0.0)  # a line at every update
    out = io.StringIO()  # not a terminal
    with Progress(4, "training", unit="step", stream=out) as bar:
        bar.show(eval=math.nan, best=None, loss=0.25)
        bar.update(1)
        bar.update(3)
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert lines[0] == "training: 4 steps to do"  # said at once: a log shows what started
    assert lines[1].startswith("training: 1/4 steps (25%)") and "left" in lines[1] and "loss=0.25" in lines[1]
    assert "nan" not in text and "best" not in text
    assert lines[-1].startswith("training: done, 4 steps in")


def test_an_early_stop_is_said_with_its_reason() -> None:
    out = io.StringIO()
    bar = Progress(100, "ppo", unit="env step", stream=out)
    bar.update(30)
    bar.stop_early("the held-out score has not improved in 5 evaluations")
    bar.close()
    assert "ppo: stopped early at 30 of 100 env steps (30%)" in out.getvalue()
    assert "not improved in 5 evaluations" in out.getvalue()
    assert "done," not in out.getvalue()


def test_disabled_progress_shows_nothing_but_listeners_hear_it() -> None:
    out, heard = io.StringIO(), []
    with listening(heard.append), Progress(10, "quiet", enabled=False, stream=out) as bar:
        bar.update(10)
        bar.stop_early("never")
    assert out.getvalue() == ""
    assert heard[0]["done"] == 0 and heard[0]["state"] == "running"
    assert heard[-1]["done"] == 10 and heard[-1]["state"] == "stopped early" and heard[-1]["total"] == 10
    assert heard[-1]["eta_s"] == 0.0


def test_formatting_helpers() -> None:
    assert duration(5) == "5 s" and duration(185) == "3 min 05 s" and duration(3720) == "1 h 02 min"
    assert shown_values({"a": math.nan, "b": None, "c": 1.23456789, "d": 3}) == {"c": "1.235", "d": "3"}


def test_a_long_step_still_prints_lines_when_piped(monkeypatch: pytest.MonkeyPatch) -> None:
    """No update for a while (one long chunk of episodes): the heartbeat still says the work goes on."""
    import time

    monkeypatch.setattr(progress_module, "PLAIN_EVERY_S", 0.5)
    out = io.StringIO()
    with Progress(5, "evaluating nearest", unit="episode", stream=out):
        time.sleep(1.3)
    assert out.getvalue().splitlines()[1].startswith("evaluating nearest: 0/5 episodes (0%), 1 s elapsed")
