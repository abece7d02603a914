"""Ready policies kept in memory for serving: registered ones by exact version, baselines by scenario.

- **Registered policies** are resolved (name or alias -> version) through the registry and loaded
  once per ``(reference, weights SHA-256, scenario, device)``. Resolutions are reused until the
  registry's generation changes (a save, a delete, an alias moved); the generation is read at most
  once per ``resolve_ttl_s``, so a promotion is served within that time, without a restart.
- **Baselines** are built once per ``(policy, resolved scenario, device)`` and shared by concurrent
  requests (single flight: the second request waits for the first build, it does not start one).
  Expensive builds (searches, exact solvers) run in a bounded pool off the request thread; a request
  waits at most ``build_wait_s`` and then gets a :class:`BuildPendingError` (503, ``Retry-After``)
  while the build goes on, and at most ``max_pending`` builds wait at once. Their results are also
  persisted in the data dir (:mod:`decisionlab.core.store.builds`), so a restart or a second worker
  reads them instead of searching again.

A failed build or load is not cached: the next request tries again (a fixed artefact serves at once).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from decisionlab.core import telemetry
from decisionlab.core.errors import BuildPendingError, DecisionlabError, PolicyMismatchError
from decisionlab.core.policy import Policy, split_member
from decisionlab.core.resolve import check_kind, find_record, load_registered
from decisionlab.core.scenario import Scenario
from decisionlab.core.spec import DomainSpec, PolicySpec
from decisionlab.core.store.registry import PolicyRecord, PolicyRegistry

T = TypeVar("T")
# Set while a request is served on the event loop: anything that would load or build raises
# WouldBlock instead, and the request is served again in a worker thread.
NONBLOCKING: contextvars.ContextVar[bool] = contextvars.ContextVar("decisionlab_nonblocking", default=False)
WAIT_ENV = "DECISIONLAB_BUILD_WAIT_S"
DEFAULT_WAIT_S = 10.0


class WouldBlock(Exception):  # noqa: N818 - a signal, not an error
    """The policy a request needs is not ready in memory (see :data:`NONBLOCKING`)."""


def build_wait_seconds() -> float:
    """``$DECISIONLAB_BUILD_WAIT_S`` or 10 s: the longest a request waits for a baseline build."""
    raw = os.environ.get(WAIT_ENV, "").strip()
    if not raw:
        return DEFAULT_WAIT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise DecisionlabError(f"{WAIT_ENV} must be a number of seconds >= 0, got {raw!r}")
    return value


@dataclass(frozen=True)
class Answerer:
    """The policy that answers a request: ``label`` (a baseline name or ``domain/name@version``),
    ``version`` (``None`` for baselines) and the policy."""

    label: str
    version: int | None
    policy: Policy

    def fields(self, scenario: Scenario) -> dict[str, Any]:
        """What every serving response says about what answered (:class:`~decisionlab.core.serving_spec.Answered`)."""
        return {"policy": self.label, "policy_version": self.version, "scenario": scenario.describe(),
                "scenario_hash": scenario.fingerprint()}


def check_admissible(domain: DomainSpec, name: str) -> None:
    """A 422 naming ``policy`` for a baseline that is not admissible (it reads the future): a bound
    for evaluations, never served. Checked by name, before anything else of the request."""
    entry = domain.policies.get(name)
    if entry is not None and not entry.admissible:
        raise PolicyMismatchError(
            f"policy: '{name}' is not admissible ({entry.description}): it is a bound for evaluations, not a "
            f"policy to act on; choose an admissible one (GET {domain.url_path}/policies)"
        )


class PolicyCache:
    """Ready policies for one registry (one per server process; thread-safe)."""

    def __init__(
        self,
        registry: PolicyRegistry,
        *,
        resolve_ttl_s: float = 1.0,
        max_loaded: int = 64,
        max_baselines: int = 256,
        build_threads: int = 2,
        build_wait_s: float | None = None,
        max_pending: int = 16,
    ) -> None:
        self.registry = registry
        self.resolve_ttl_s = resolve_ttl_s
        self.max_loaded, self.max_baselines = max_loaded, max_baselines
        self.build_wait_s = build_wait_seconds() if build_wait_s is None else build_wait_s
        self.max_pending = max_pending
        self._lock = threading.Lock()
        self._generation: object = None
        self._checked_at = -float("inf")
        self._resolved: dict[tuple[str, str], PolicyRecord] = {}
        self._loaded: OrderedDict[Hashable, Policy] = OrderedDict()
        self._loading: dict[Hashable, threading.Lock] = {}
        self._baselines: OrderedDict[Hashable, Future[Policy]] = OrderedDict()
        self._pool = ThreadPoolExecutor(max_workers=build_threads, thread_name_prefix="decisionlab-build")
        self._watcher: threading.Thread | None = None
        self._stopped = threading.Event()
        self._warming: set[Future[Policy]] = set()  # queued by the warm-up: not bounded by max_pending
        self._warm_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decisionlab-warm")

    # --- registered policies --------------------------------------------------------------------

    def watch(self) -> None:
        """Check the registry's generation every ``resolve_ttl_s`` in a background thread (the
        server does this), so no request waits for that database round trip."""
        if self._watcher is not None:
            return

        def loop() -> None:
            while not self._stopped.wait(max(self.resolve_ttl_s, 0.05)):
                with contextlib.suppress(Exception):  # a database hiccup: try again next round
                    self._check_generation(time.monotonic())

        self._watcher = threading.Thread(target=loop, name="decisionlab-registry-watch", daemon=True)
        self._watcher.start()

    def _check_generation(self, now: float) -> None:
        generation = self.registry.generation()
        with self._lock:
            if generation != self._generation:
                self._resolved.clear()
                self._generation = generation
            self._checked_at = now

    def _fresh(self) -> None:
        """Forget resolutions when the registry changed (read at most once per ``resolve_ttl_s``;
        by the watcher thread when one runs)."""
        if self._watcher is not None:
            return
        now = time.monotonic()
        if now - self._checked_at < self.resolve_ttl_s:
            return
        if NONBLOCKING.get():  # a database round trip: done in a worker thread
            raise WouldBlock
        self._check_generation(now)

    def resolve(self, domain: str, text: str, find: Callable[[], PolicyRecord]) -> PolicyRecord:
        """The record ``text`` names now (``find()`` on a miss; its errors are not cached)."""
        self._fresh()
        key = (domain, text)
        record = self._resolved.get(key)
        if record is None:
            if NONBLOCKING.get():
                raise WouldBlock
            record = find()
            with self._lock:
                self._resolved[key] = record
        return record

    def registered(
        self, record: PolicyRecord, scenario: Scenario, device: torch.device,
        load: Callable[[], Policy], member: str | None = None,
    ) -> Policy:
        """The loaded policy of ``record`` (or its ``member``) for ``scenario`` (``load()`` once per key)."""
        key = (str(record.ref), member, record.sha256, scenario, str(device))
        policy = self._loaded.get(key)
        if policy is not None:
            telemetry.CACHE.labels("registered", "hit").inc()
            return policy
        if NONBLOCKING.get():
            raise WouldBlock
        with self._lock:
            guard = self._loading.setdefault(key, threading.Lock())
        with guard:  # concurrent first requests load once
            policy = self._loaded.get(key)
            if policy is None:
                telemetry.CACHE.labels("registered", "miss").inc()
                started = time.perf_counter()
                policy = load()
                telemetry.BUILD_SECONDS.labels("registered", record.ref.name).observe(time.perf_counter() - started)
                with self._lock:
                    self._loaded[key] = policy
                    while len(self._loaded) > self.max_loaded:
                        self._loaded.popitem(last=False)
            with self._lock:
                self._loading.pop(key, None)
        return policy

    # --- baselines ------------------------------------------------------------------------------

    def _entry(self, spec: PolicySpec, scenario: Scenario, device: torch.device,
               warming: bool = False) -> tuple[Future[Policy], bool]:
        """``(future, started)``: the build of ``(spec, scenario, device)``, started here when absent
        (warm-up builds run one at a time in their own thread and do not count against the bound)."""
        key = (spec, scenario, str(device))
        with self._lock:
            future = self._baselines.get(key)
            if future is not None:
                self._baselines.move_to_end(key)
                return future, False
            if spec.expensive and not warming and self.pending() >= self.max_pending:
                raise BuildPendingError(
                    f"policy '{spec.name}': {self.max_pending} baseline builds are already running or queued; "
                    "try again shortly", retry_after=self.retry_after())
            future = Future()
            self._baselines[key] = future
            if warming and spec.expensive:
                self._warming.add(future)
            self._evict()
        if spec.expensive:
            telemetry.BUILDS_PENDING.inc()
            (self._warm_pool if warming else self._pool).submit(self._build, key, future, spec, scenario, device)
        else:  # cheap builds (closed forms, small tables) are made where they are asked for
            self._build(key, future, spec, scenario, device)
        return future, True

    def answerer(self, domain: DomainSpec, name: str, scenario: Scenario, device: torch.device,
                 admissible_checked: bool = False) -> Answerer:
        """A cached baseline of the scenario's setting, else a cached registered policy (baselines win
        clashes). A non-admissible baseline (one that reads the future; checked here unless the caller
        did) and one that cannot serve the scenario are a 422 naming ``policy``."""
        if not admissible_checked:
            check_admissible(domain, name)
        setting = domain.setting_of(scenario)
        spec = setting.policies.get(name)
        if spec is not None:
            problem = spec.problem(scenario)
            if problem is not None:
                raise PolicyMismatchError(f"policy: '{name}' cannot serve this scenario: {problem}")
            return Answerer(name, None, self.baseline(spec, scenario, device))
        try:
            if name in domain.policies:  # a baseline of another setting: say which settings it serves
                domain.policy(name).spec_for(scenario)
            reference, member = split_member(name)
            record = self.resolve(domain.name, reference,
                                  lambda: find_record(domain, setting, reference, self.registry))
            check_kind(record, setting, member)
            policy = self.registered(record, scenario, device,
                                     lambda: load_registered(record, scenario, device, self.registry, member), member)
        except PolicyMismatchError as err:
            raise PolicyMismatchError(f"policy: '{name}' cannot serve this scenario: {err}") from None
        label = str(record.ref) if member is None else f"{record.ref}:{member}"
        return Answerer(label, record.ref.version, policy)

    def baseline(self, spec: PolicySpec, scenario: Scenario, device: torch.device) -> Policy:
        """The built baseline ``spec`` for ``scenario`` (single flight; expensive builds bounded)."""
        if NONBLOCKING.get():
            found = self._baselines.get((spec, scenario, str(device)))
            if found is None or not found.done() or found.exception() is not None:
                raise WouldBlock
            telemetry.CACHE.labels("baseline", "hit").inc()
            return found.result()
        future, started = self._entry(spec, scenario, device)
        telemetry.CACHE.labels("baseline", "miss" if started else "hit").inc()
        try:  # a cheap build made here is done; one queued by the warm-up may not be
            return future.result(timeout=self.build_wait_s)
        except FutureTimeout:
            raise BuildPendingError(
                f"policy '{spec.name}' is still being built for this scenario (searches and exact solvers run once "
                f"per scenario, then serve at once): try again in {self.retry_after()} s",
                retry_after=self.retry_after()) from None

    def warm(self, spec: PolicySpec, scenario: Scenario, device: torch.device) -> Future[Policy]:
        """Build ``spec`` for ``scenario`` at server start-up: cheap ones at once, expensive ones queued
        in the warm-up thread (one at a time, leaving the build pool to requests)."""
        return self._entry(spec, scenario, device, warming=True)[0]

    def retry_after(self) -> int:
        """Seconds a client should wait before asking again for a build in progress."""
        return max(1, min(60, round(self.build_wait_s) or 5))

    def _build(self, key: Hashable, future: Future[Policy], spec: PolicySpec, scenario: Scenario,
               device: torch.device) -> None:
        started = time.perf_counter()
        try:
            future.set_result(spec.build(scenario, device))
        except BaseException as err:  # handed to every waiter; the entry is dropped so a retry rebuilds
            with self._lock:
                if self._baselines.get(key) is future:
                    del self._baselines[key]
            future.set_exception(err)
        finally:
            with self._lock:
                self._warming.discard(future)
            if spec.expensive:
                telemetry.BUILDS_PENDING.dec()
            telemetry.BUILD_SECONDS.labels("baseline", spec.name).observe(time.perf_counter() - started)

    def _evict(self) -> None:
        """Drop the oldest finished baselines beyond ``max_baselines`` (never one still building)."""
        extra = len(self._baselines) - self.max_baselines
        for key in [k for k, f in self._baselines.items() if f.done()][:max(0, extra)]:
            del self._baselines[key]

    def pending(self) -> int:
        """Baseline builds queued or running for requests (the warm-up's are not counted)."""
        return sum(1 for f in self._baselines.values() if not f.done() and f not in self._warming)

    def submit(self, work: Callable[[], T]) -> Future[T]:
        """Run ``work`` in the build pool (warm-up)."""
        return self._warm_pool.submit(work)

    def close(self) -> None:
        """Stop the watcher and stop taking builds (running ones finish in the background)."""
        self._stopped.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._warm_pool.shutdown(wait=False, cancel_futures=True)


def warm_presets(cache: PolicyCache, domains: Sequence[DomainSpec], device: torch.device,
                 every_baseline: bool = False) -> list[Future[Policy]]:
    """Start building, for every preset of every domain, the setting's default baselines (with
    ``every_baseline``: all its admissible baselines), and load
    each domain's default registered policy (``prod`` alias, else its latest version) for its
    default scenario. Returns the builds' futures (``/ready`` waits for them); nothing here blocks.
    A baseline that cannot serve a preset, or a registered policy that cannot be loaded, is skipped
    (requests for it get the error)."""
    futures: list[Future[Policy]] = []
    for domain in domains:
        for setting in domain.settings:
            # the dashboard's defaults first, then every other baseline (searches and solvers last)
            names = [*setting.default_policies]
            if every_baseline:
                names += [n for n in setting.policies if n not in setting.default_policies]
            for preset in setting.presets:
                scenario = domain.scenario(preset)
                for name in names:
                    spec = setting.policies[name]
                    if spec.admissible and spec.problem(scenario) is None:
                        with contextlib.suppress(DecisionlabError):
                            futures.append(cache.warm(spec, scenario, device))
        name = domain.default_policy_name
        if name is not None:
            futures.append(cache.submit(lambda d=domain, n=name: _load_default(cache, d, n, device)))
    return futures


def _load_default(cache: PolicyCache, domain: DomainSpec, name: str, device: torch.device) -> Policy | None:
    scenario = domain.scenario(domain.default_scenario)
    for reference in (f"{name}@prod", name):
        try:
            return cache.answerer(domain, reference, scenario, device).policy
        except DecisionlabError:
            continue
    return None
