"""The GPU path, measured: env-steps/s of every domain at large batches, and its headline training, per device.

``throughput``: for every registered domain (those under ``decisionlab.domains``), its default scenario's
batched simulator (``SettingSpec.make_simulator``) driven by the rollout engine (``decisionlab.core.run``)
with uniformly random legal actions (``RandomPolicy``: the simulator's own cost, not a baseline's), at each
batch size and on each device. Env-steps/s = rows × decisions / seconds stepping, over windows of
``min(--steps, horizon)`` decisions, each from a fresh ``reset`` (timed apart and left out: at 64k rows a
reset of a big state costs several decisions, and it would swamp a measurement cut to few decisions; it is
in the JSON), with the exogenous randomness drawn by the simulator inside the window (counted), after a
one-decision warm-up at the same size; on CUDA every clock reading follows ``torch.cuda.synchronize``.
Nothing in it is per domain:
the two tables below (``SCENARIO``, ``POLICY``) are where a domain would get its own choice.

Each measurement is guarded, so a size that cannot run is a table cell saying why instead of a crash:
memory (the peak of the previous, smaller size, per row, projected linearly, against what the device has
free) and time (``--max-seconds`` per measurement: fewer decisions are timed, marked †, or the size is
skipped when even one would take longer).

``training`` (``--train``): each domain's default algorithm on its default scenario, with its
``smoke_options`` and the setting's ``quick`` + ``smoke`` scenario overrides (``--train-options smoke``, the
default: seconds) or with the algorithm's defaults on the preset itself (``--train-options default``: the
headline run, minutes to hours), per device: training seconds and the quality reached, the setting's
primary metric of the trained policy over ``--eval-episodes`` episodes of the same seed on every device.

Every run states its hardware (CPU model and cores, torch threads, GPU name and memory, torch and CUDA
versions). ``DECISIONLAB_DEVICE`` is set to the device under measurement while it runs, so any code that
asks :func:`decisionlab.core.get_device` follows it. Progress goes to stderr, the tables to stdout.

    python -m benchmarks.gpu                                   # cpu (+ cuda when present), 1k / 64k / 1M
    python -m benchmarks.gpu --sizes 1000,65536 --no-train --write-docs
    python -m benchmarks.gpu --devices cuda --domains inventory,fleet --steps 64 --out gpu.json
    python -m benchmarks.gpu --train --train-options default --sizes 65536   # the headline trainings
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.report import cpu_model, write_section
from decisionlab.core import (
    DecisionlabError,
    DomainSpec,
    RandomPolicy,
    configure_threads,
    get_device,
    get_domain,
    list_domains,
    make_generator,
    rebuild_policy,
    run,
)

DEFAULT_SIZES = (1_000, 65_536, 1_000_000)
DEFAULT_STEPS = 32
DEFAULT_MAX_SECONDS = 60.0
DEFAULT_MEMORY_FRACTION = 0.7  # of what the device has free: the rest is the OS's, other jobs' and slack
EVAL_SEED = 20261207
PROBE_BATCHES = (64, 512)  # two small sizes give a per-row memory slope before the first real size
WARMUP_STEPS = 1

# Per-domain choices: the only place a domain gets its own. Empty means every domain is measured on its
# default scenario with random legal actions (``--policy baseline`` picks its first cheap default baseline).
SCENARIO: dict[str, str] = {}
"""domain -> the preset to measure instead of ``DomainSpec.default_scenario``."""
POLICY: dict[str, str] = {}
"""domain -> the baseline ``--policy baseline`` uses instead of the first cheap one."""


def log(message: str) -> None:
    """Progress on stderr (stdout carries the tables)."""
    print(message, file=sys.stderr, flush=True)


# --- hardware -------------------------------------------------------------------------------------


def hardware() -> dict[str, Any]:
    """What the numbers ran on: CPU, cores, torch threads, GPUs (name, memory), versions."""
    gpus = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            gpus.append({"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                         "capability": f"{props.major}.{props.minor}", "multiprocessors": props.multi_processor_count})
    return {
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gib": round(_meminfo("MemTotal") / 2**30, 1) if _meminfo("MemTotal") else None,
        "gpus": gpus,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def describe_hardware(hw: Mapping[str, Any]) -> str:
    memory = f", {hw['memory_gib']} GiB RAM" if hw.get("memory_gib") else ""
    gpus = "; ".join(f"{g['name']} ({g['memory_gib']} GiB, compute {g['capability']})" for g in hw["gpus"])
    cuda = f", CUDA {hw['cuda']}" if hw["gpus"] else ""
    return (f"CPU: {hw['cpu']}, {hw['cpu_cores']} logical cores{memory}, torch threads {hw['torch_threads']}. "
            f"GPU: {gpus or 'none'}{cuda}. torch {hw['torch']}, Python {hw['python']}.")


# --- memory ---------------------------------------------------------------------------------------


def _proc_kib(path: str, key: str) -> int | None:
    """Entry ``key`` (a size in kB) of a /proc file such as /proc/meminfo, in bytes (None off Linux)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _meminfo(key: str) -> int | None:
    return _proc_kib("/proc/meminfo", key)


def _rss_status(key: str) -> int | None:
    return _proc_kib("/proc/self/status", key)


def free_bytes(device: torch.device) -> int | None:
    """What ``device`` has free now (None: unknown, no memory guard)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return _meminfo("MemAvailable")


class PeakMemory:
    """Peak bytes a block added on ``device``: CUDA's allocator statistics, or on the CPU the process's
    resident high-water mark (reset through /proc/self/clear_refs; ``peak`` stays None where that is
    not possible, and the guard falls back to the tensors' own sizes)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.base, self.peak = device, 0, None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            try:
                Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
                self.base = _rss_status("VmRSS") or 0
            except OSError:
                self.base = -1
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = max(0, torch.cuda.max_memory_allocated(self.device) - self.base)
        elif self.base >= 0 and (hwm := _rss_status("VmHWM")) is not None:
            self.peak = max(0, hwm - self.base)


def tensor_bytes(value: Any, seen: set[int] | None = None) -> int:
    """Bytes of the tensors in ``value`` (tensors, mappings, sequences, dataclasses, plain objects)."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return 0
    seen.add(id(value))
    if isinstance(value, torch.Tensor):
        return value.untyped_storage().nbytes()
    if isinstance(value, Mapping):
        return sum(tensor_bytes(v, seen) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(tensor_bytes(v, seen) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(tensor_bytes(getattr(value, f.name), seen) for f in dataclasses.fields(value))
    return 0


def tensor_devices(value: Any, seen: set[int] | None = None) -> set[str]:
    """The devices of the tensors in ``value`` (the check that nothing stayed on the CPU)."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return set()
    seen.add(id(value))
    if isinstance(value, torch.Tensor):
        return {value.device.type}
    items: Sequence[Any] = ()
    if isinstance(value, Mapping):
        items = list(value.values())
    elif isinstance(value, list | tuple):
        items = value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = [getattr(value, f.name) for f in dataclasses.fields(value)]
    return set().union(*(tensor_devices(v, seen) for v in items)) if items else set()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def device_env(device: torch.device) -> Iterator[None]:
    """``DECISIONLAB_DEVICE`` set to ``device`` for the block (code that asks ``get_device()`` follows)."""
    old = os.environ.get("DECISIONLAB_DEVICE")
    os.environ["DECISIONLAB_DEVICE"] = str(device)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("DECISIONLAB_DEVICE", None)
        else:
            os.environ["DECISIONLAB_DEVICE"] = old


def is_oom(err: BaseException) -> bool:
    return isinstance(err, MemoryError | torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


# --- throughput -----------------------------------------------------------------------------------


@dataclass
class Throughput:
    """One cell: a domain on a device at a batch size (``rate`` None when ``skipped`` says why)."""

    domain: str
    scenario: str
    policy: str
    device: str
    batch: int
    steps: int = 0
    requested_steps: int = 0
    seconds: float = 0.0
    reset_seconds: float = 0.0
    rate: float | None = None
    peak_gib: float | None = None
    skipped: str | None = None


@dataclass
class Estimate:
    """What the previous sizes said about the next one: bytes per row and seconds per env-step."""

    points: list[tuple[int, float]] = field(default_factory=list)  # (batch, peak bytes)
    static_row_bytes: float = 0.0
    step_seconds: float = 0.0

    def row_bytes(self) -> float:
        """Per-row memory: the slope of the last two peaks (fixed overheads cancel), never below the
        state's own tensors per row."""
        slope = 0.0
        if len(self.points) >= 2:
            (b0, p0), (b1, p1) = self.points[-2], self.points[-1]
            slope = (p1 - p0) / (b1 - b0) if b1 != b0 else 0.0
        elif self.points:
            slope = self.points[-1][1] / self.points[-1][0]
        return max(slope, 2.0 * self.static_row_bytes)  # a step holds at least the old and the new state


def pick_policy(domain: DomainSpec, scenario: Any, sim: Any, device: torch.device, choice: str) -> tuple[str, Any]:
    """``("random", RandomPolicy)`` or, for ``choice == "baseline"``, the domain's ``POLICY`` entry or the
    first default baseline that is cheap to build and serves the scenario."""
    if choice == "random":
        return "random", RandomPolicy(sim, make_generator(1, device))
    setting = domain.setting_of(scenario)
    names = [POLICY[domain.name]] if domain.name in POLICY else [
        n for n in (*setting.default_policies, *setting.policies)
        if not setting.policies[n].expensive and setting.policies[n].problem(scenario) is None]
    if not names:
        return "random", RandomPolicy(sim, make_generator(1, device))
    return names[0], setting.policy(names[0]).build(scenario, device)


class _Deadline(Exception):
    """Raised by the rollout hook once a measurement has used its time."""


def timed_windows(sim: Any, policy: Any, batch: int, steps: int, generator: torch.Generator,
                  device: torch.device, deadline: float | None = None) -> tuple[int, float, float]:
    """``(decisions, step seconds, reset seconds)`` for ``steps`` decisions of ``batch`` rows, in episodes of
    at most the simulator's horizon, each from a fresh reset. The resets are timed apart (a reset of a big
    state costs several decisions, and a measurement cut short would otherwise be mostly reset); exogenous
    sampling stays in the step time. Past ``deadline`` (a ``perf_counter`` time) it stops after the decision
    under way: at least one is taken."""
    horizon = getattr(sim, "horizon", None)
    window = min(steps, int(horizon)) if horizon else steps
    counted = 0

    def tick(_: Any) -> None:
        nonlocal counted
        counted += 1
        if deadline is not None and time.perf_counter() > deadline:
            raise _Deadline

    sync(device)
    start = time.perf_counter()
    done, reset_seconds = 0, 0.0
    while done < steps:
        length, counted = min(window, steps - done), 0
        reset_start = time.perf_counter()
        state = sim.reset(batch, generator)
        sync(device)
        reset_seconds += time.perf_counter() - reset_start
        try:
            run(sim, policy, state=state, generator=generator, steps=length, chunk=length, hooks=(tick,))
        except _Deadline:
            done += counted
            break
        finally:
            del state  # the next window's reset should not hold two states at once
        done += max(1, counted)  # all rows ended early: the next window starts a new episode
    sync(device)
    return done, time.perf_counter() - start - reset_seconds, reset_seconds


def measure_domain(domain: DomainSpec, device: torch.device, sizes: Sequence[int], steps: int, max_seconds: float,
                   memory_fraction: float, policy_choice: str) -> list[Throughput]:
    """Every size of one domain on one device (ascending sizes: each guards the next)."""
    preset = SCENARIO.get(domain.name, domain.default_scenario)
    scenario = domain.scenario(preset)
    setting = domain.setting_of(scenario)
    sim = setting.make_simulator(scenario, device)
    label, policy = pick_policy(domain, scenario, sim, device, policy_choice)
    generator = make_generator(0, device)
    rows: list[Throughput] = []

    # Probe: two small batches give the first memory slope and step time, and check that every tensor
    # of the rollout (state, observation, action) is on the device asked for.
    estimate = Estimate()
    wrong: set[str] = set()
    for batch in PROBE_BATCHES:
        with PeakMemory(device) as peak:
            state = sim.reset(batch, generator)
            obs = sim.observe(state)
            action = policy.act(obs)
            taken, seconds, _ = timed_windows(sim, policy, batch, 2, generator, device)
        wrong |= tensor_devices((state, obs, action)) - {device.type}
        estimate.static_row_bytes = tensor_bytes((state, obs)) / batch
        estimate.points.append((batch, float(peak.peak if peak.peak is not None else 0)))
        estimate.step_seconds = seconds / (batch * taken)
    del state, obs, action
    if peak.peak is None:  # no peak measurement here: the static size (x2) is the guard
        estimate.points.clear()
    if wrong:
        log(f"  {domain.name} on {device}: tensors on {sorted(wrong)} in the rollout")

    for batch in sorted(sizes):
        row = Throughput(domain.name, preset, label, str(device), batch, requested_steps=steps)
        rows.append(row)
        if wrong:
            row.skipped = f"tensors on {', '.join(sorted(wrong))}, not {device.type}"
            continue
        free = free_bytes(device)
        needed = estimate.row_bytes() * batch * 1.25
        if free is not None and needed > memory_fraction * free:
            row.skipped = f"memory: needs ~{needed / 2**30:,.1f} GiB, {free / 2**30:,.1f} GiB free"
            log(f"  {domain.name} {device} batch {batch:,}: skipped ({row.skipped})")
            continue
        one = estimate.step_seconds * batch
        if one > max_seconds:
            row.skipped = f"time: one decision ~{one:,.0f} s, over --max-seconds {max_seconds:g}"
            log(f"  {domain.name} {device} batch {batch:,}: skipped ({row.skipped})")
            continue
        try:
            with PeakMemory(device) as peak:
                # the warm-up at this very size also tells how many decisions fit in the time left
                warm_start = time.perf_counter()
                warm, warm_seconds, warm_reset = timed_windows(sim, policy, batch, WARMUP_STEPS, generator, device)
                left = max_seconds - (time.perf_counter() - warm_start) - warm_reset  # a reset per window too
                timed = max(1, min(steps, int(left / max(warm_seconds / warm, 1e-9))))
                taken, seconds, reset_seconds = timed_windows(sim, policy, batch, timed, generator, device,
                                                              deadline=time.perf_counter() + max(left, 0.0))
        except (RuntimeError, MemoryError) as err:
            if not is_oom(err):
                raise
            row.skipped = f"out of memory ({type(err).__name__})"
            log(f"  {domain.name} {device} batch {batch:,}: skipped ({row.skipped})")
            if device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        row.steps, row.seconds, row.reset_seconds = taken, seconds, reset_seconds
        row.rate = batch * taken / seconds
        if peak.peak is not None:
            row.peak_gib = peak.peak / 2**30
            estimate.points.append((batch, float(peak.peak)))
        estimate.step_seconds = seconds / (batch * taken)
        log(f"  {domain.name} {device} batch {batch:,}: {row.rate:,.0f} env-steps/s ({taken} decisions, "
            f"{seconds:.2f} s{f', peak {row.peak_gib:.2f} GiB' if row.peak_gib is not None else ''})")
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rows


# --- training -------------------------------------------------------------------------------------


@dataclass
class Training:
    """One headline training on one device: seconds to finish and the quality reached."""

    domain: str
    algo: str
    scenario: str
    options: str
    device: str
    seconds: float | None = None
    metric: str = ""
    better: str = ""
    value: float | None = None
    episodes: int = 0
    skipped: str | None = None


def small_overrides(domain: DomainSpec, preset: str) -> dict[str, Any]:
    """The setting's ``quick`` and ``smoke`` overrides that the preset's model has (as the conformance
    suite makes a scenario small)."""
    setting = domain.setting_of_preset(preset)
    fields = type(setting.presets[preset]).model_fields
    return {k: v for k, v in {**setting.quick, **setting.smoke}.items() if k in fields}


def train_domain(domain: DomainSpec, device: torch.device, options_kind: str, eval_episodes: int,
                 seed: int = 0) -> Training:
    """Train ``domain``'s default algorithm on its default scenario on ``device``, then score the policy."""
    preset = domain.default_scenario
    row = Training(domain.name, domain.default_algo or "", preset, options_kind, str(device))
    if not domain.default_algo:
        row.skipped = "no default algorithm"
        return row
    scenario = domain.scenario(preset, small_overrides(domain, preset) if options_kind == "smoke" else None)
    setting = domain.setting_of(scenario)
    algo = domain.algo(domain.default_algo)
    options = dict(algo.spec_for(scenario).smoke_options) if options_kind == "smoke" else {}
    row.metric, row.better = setting.primary_metric, setting.metrics[setting.primary_metric].better
    sync(device)
    start = time.perf_counter()
    outcome = algo.train(scenario, seed=seed, device=device, options=options)
    sync(device)
    row.seconds = time.perf_counter() - start
    policy = rebuild_policy(outcome.policy_config, outcome.policy.state_dict(), scenario, device)
    limit = setting.max_episodes(scenario) if setting.max_episodes is not None else None
    episodes = max(1, min(eval_episodes, setting.eval_chunk, limit or eval_episodes))
    values = setting.episode_metrics(scenario, policy, episodes, EVAL_SEED, device)
    if setting.finalize_metrics is not None:
        values = setting.finalize_metrics(scenario, values)
    row.value = float(np.mean(values[setting.primary_metric]))
    row.episodes = len(values[setting.primary_metric])
    log(f"  {domain.name} {device}: {row.algo} trained in {row.seconds:.1f} s, {row.metric} = {row.value:,.4g}")
    return row


# --- tables ---------------------------------------------------------------------------------------


def _cell(row: Throughput) -> str:
    if row.rate is None:
        return f"skipped: {row.skipped}"
    return f"{row.rate:,.0f}" + (" †" if row.steps < row.requested_steps else "")


def throughput_table(rows: Sequence[Throughput], sizes: Sequence[int]) -> str:
    """Rows domain × device, a column per batch size; then GPU ÷ CPU where both ran."""
    header = ["domain", "scenario", "policy", "device", *(f"env-steps/s @ {b:,}" for b in sizes)]
    lines = ["| " + " | ".join(header) + " |", "|---|---|---|---|" + "---:|" * len(sizes)]
    keys = list(dict.fromkeys((r.domain, r.device) for r in rows))
    by = {(r.domain, r.device, r.batch): r for r in rows}
    for domain, device in keys:
        first = next(r for r in rows if r.domain == domain and r.device == device)
        cells = [_cell(by[domain, device, b]) if (domain, device, b) in by else "—" for b in sizes]
        lines.append(f"| {domain} | {first.scenario} | {first.policy} | {device} | " + " | ".join(cells) + " |")
    devices = list(dict.fromkeys(r.device for r in rows))
    gpus = [d for d in devices if d.startswith("cuda")]
    if "cpu" in devices and gpus:
        lines += ["", "| domain | device ÷ cpu | " + " | ".join(f"@ {b:,}" for b in sizes) + " |",
                  "|---|---|" + "---:|" * len(sizes)]
        for domain in dict.fromkeys(r.domain for r in rows):
            for gpu in gpus:
                ratios = []
                for b in sizes:
                    cpu, fast = by.get((domain, "cpu", b)), by.get((domain, gpu, b))
                    ok = cpu is not None and fast is not None and cpu.rate and fast.rate
                    ratios.append(f"{fast.rate / cpu.rate:,.1f}×" if ok else "—")  # type: ignore[union-attr]
                lines.append(f"| {domain} | {gpu} | " + " | ".join(ratios) + " |")
    return "\n".join(lines)


def training_table(rows: Sequence[Training]) -> str:
    lines = ["| domain | algorithm | scenario | options | device | train s | quality (primary metric) | value |",
             "|---|---|---|---|---|---:|---|---:|"]
    for r in rows:
        if r.skipped:
            lines.append(f"| {r.domain} | {r.algo or '—'} | {r.scenario} | {r.options} | {r.device} | "
                         f"skipped: {r.skipped} | | |")
            continue
        lines.append(f"| {r.domain} | {r.algo} | {r.scenario} | {r.options} | {r.device} | {r.seconds:,.1f} | "
                     f"{r.metric} ({r.better} is better, {r.episodes} episodes) | {r.value:,.4g} |")
    return "\n".join(lines)


def markdown(report: Mapping[str, Any], sizes: Sequence[int], steps: int, max_seconds: float) -> str:
    throughput = [Throughput(**r) for r in report["throughput"]]
    training = [Training(**r) for r in report["training"]]
    devices = report["devices"]
    gpu = any(d.startswith("cuda") for d in devices)
    parts = [
        f"## GPU path: env-steps/s per domain and batch size ({', '.join(devices)})",
        "",
        f"Hardware: {describe_hardware(report['hardware'])}",
        "",
        "Each domain's default scenario, its batched simulator driven by the rollout engine with random legal "
        f"actions; windows of min({steps}, horizon) decisions from a fresh reset, after a one-decision warm-up; "
        "env-steps/s = rows × decisions / seconds stepping (exogenous sampling included, resets timed apart "
        "and left out). "
        f"† fewer than {steps} decisions timed, to stay within {max_seconds:g} s per measurement. "
        "A skipped cell says why (memory projected from the smaller sizes' peak, or time).",
    ]
    if not gpu:
        parts += ["", "No GPU was available for this run: CPU rows only. The same command on a machine with CUDA "
                  "adds the GPU rows and a GPU ÷ CPU table."]
    parts += ["", throughput_table(throughput, sizes)]
    if training:
        parts += ["", "Training (each domain's default algorithm on its default scenario; seconds to finish, and "
                  "the quality reached: the primary metric of the trained policy over the same evaluation "
                  "episodes on every device):", "", training_table(training)]
    return "\n".join(parts)


# --- main -----------------------------------------------------------------------------------------


def product_domains() -> list[DomainSpec]:
    """The registered domains that ship with decisionlab (a test's example domains are left out)."""
    return [d for d in list_domains()
            if all(s.scenario_model.__module__.startswith("decisionlab.domains.") for s in d.settings)]


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(str(s) for s in DEFAULT_SIZES),
                        help="batch sizes, comma-separated (default %(default)s)")
    parser.add_argument("--devices", default=None,
                        help="devices, comma-separated (default: cpu, plus cuda when available)")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="decisions timed per measurement")
    parser.add_argument("--domains", default=None, help="domains, comma-separated (default: all)")
    parser.add_argument("--policy", choices=("random", "baseline"), default="random",
                        help="random legal actions (default) or each domain's first cheap default baseline")
    parser.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS,
                        help="time limit of one measurement (fewer decisions, or skipped)")
    parser.add_argument("--memory-fraction", type=float, default=DEFAULT_MEMORY_FRACTION,
                        help="share of the device's free memory a measurement may use")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: $DECISIONLAB_NUM_THREADS or 1, as the product)")
    parser.add_argument("--train", action=argparse.BooleanOptionalAction, default=True,
                        help="also time each domain's headline training (default: on)")
    parser.add_argument("--train-options", choices=("smoke", "default"), default="smoke",
                        help="smoke: smoke options on the small scenario (seconds); default: the real run")
    parser.add_argument("--eval-episodes", type=int, default=64, help="episodes scoring each trained policy")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--write-docs", action="store_true", help="replace this run's section of docs/benchmarks.md")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the report (hardware, throughput rows, training rows, markdown)."""
    args = parse_args(argv)
    configure_threads(args.threads)
    sizes = sorted({int(s) for s in _csv(args.sizes)})
    names = _csv(args.devices) if args.devices else ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    devices = [get_device(name) for name in names]  # a clear error for cuda where there is none
    domains = [get_domain(name) for name in _csv(args.domains)] if args.domains else product_domains()
    report: dict[str, Any] = {"hardware": hardware(), "devices": [str(d) for d in devices], "sizes": sizes,
                              "steps": args.steps, "policy": args.policy, "throughput": [], "training": []}
    log(describe_hardware(report["hardware"]))
    for device in devices:
        with device_env(device):
            for domain in domains:
                log(f"{domain.name} on {device}: throughput")
                rows = measure_domain(domain, device, sizes, args.steps, args.max_seconds, args.memory_fraction,
                                      args.policy)
                report["throughput"] += [dataclasses.asdict(r) for r in rows]
            if args.train:
                for domain in domains:
                    log(f"{domain.name} on {device}: training ({args.train_options})")
                    row = train_domain(domain, device, args.train_options, args.eval_episodes)
                    report["training"].append(dataclasses.asdict(row))
    report["markdown"] = markdown(report, sizes, args.steps, args.max_seconds)
    print(report["markdown"])
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
        log(f"wrote {args.out}")
    if args.write_docs:
        write_section("gpu-path-" + "-".join(d.type for d in devices), report["markdown"])
        log("wrote the section of docs/benchmarks.md")
    return report


if __name__ == "__main__":
    try:
        main()
    except DecisionlabError as err:  # e.g. --devices cuda where there is none: one line, not a traceback
        sys.exit(f"benchmarks.gpu: {err}")
