"""The serving cache: single-flight baseline builds, bounded waits and queues, failed builds not
kept, registered policies loaded once per version and re-resolved when the registry changes."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from decisionlab.core.errors import BuildPendingError
from decisionlab.core.policy_cache import PolicyCache, build_wait_seconds
from decisionlab.core.spec import PolicySpec, get_domain
from decisionlab.core.store.registry import PolicyRegistry

CPU = torch.device("cpu")
SCENARIO = get_domain("inventory").scenario("lost_sales")


class Builder:
    """A baseline build that counts its calls and, when gated, waits for ``release``."""

    def __init__(self, gated: bool = False, fail: bool = False) -> None:
        self.calls = 0
        self.release = threading.Event()
        self.gated, self.fail = gated, fail
        self.lock = threading.Lock()

    def __call__(self, scenario: object, device: object) -> str:
        with self.lock:
            self.calls += 1
        if self.gated:
            assert self.release.wait(30)
        if self.fail:
            raise RuntimeError("build failed")
        return f"policy built for {scenario!r}"


def spec(builder: Builder, expensive: bool = True) -> PolicySpec:
    return PolicySpec("fake", "a fake baseline", builder, expensive=expensive)


def test_concurrent_first_requests_build_once() -> None:
    builder = Builder(gated=True)
    cache, fake = PolicyCache(PolicyRegistry(), build_wait_s=30), spec(builder)
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(cache.baseline, fake, SCENARIO, CPU) for _ in range(8)]
        builder.release.set()
        results = {f.result() for f in futures}
    assert builder.calls == 1 and len(results) == 1
    assert cache.baseline(fake, SCENARIO, CPU) in results and builder.calls == 1


def test_a_slow_build_answers_503_with_retry_after_and_goes_on() -> None:
    builder = Builder(gated=True)
    cache, fake = PolicyCache(PolicyRegistry(), build_wait_s=0.05), spec(builder)
    with pytest.raises(BuildPendingError) as info:
        cache.baseline(fake, SCENARIO, CPU)
    assert info.value.http_status == 503 and info.value.retry_after >= 1
    assert "still being built" in str(info.value)
    builder.release.set()
    cache.build_wait_s = 30
    assert cache.baseline(fake, SCENARIO, CPU).startswith("policy built")
    assert builder.calls == 1  # the request after the 503 got the build that went on


def test_the_build_queue_is_bounded() -> None:
    builder = Builder(gated=True)
    cache, fake = PolicyCache(PolicyRegistry(), build_wait_s=0.01, max_pending=3, build_threads=1), spec(builder)
    scenarios = [SCENARIO.model_copy(update={"demand_mean": 3.0 + i}) for i in range(5)]
    for scenario in scenarios[:3]:
        with pytest.raises(BuildPendingError, match="still being built"):
            cache.baseline(fake, scenario, CPU)
    with pytest.raises(BuildPendingError, match="already running or queued"):
        cache.baseline(fake, scenarios[3], CPU)
    builder.release.set()


def test_a_failed_build_is_not_kept() -> None:
    builder = Builder(fail=True)
    cache, fake = PolicyCache(PolicyRegistry(), build_wait_s=30), spec(builder, expensive=False)
    for _ in range(2):
        with pytest.raises(RuntimeError, match="build failed"):
            cache.baseline(fake, SCENARIO, CPU)
    assert builder.calls == 2
    builder.fail = False
    assert cache.baseline(fake, SCENARIO, CPU).startswith("policy built")


def test_cheap_builds_run_in_the_request_thread() -> None:
    builder = Builder()
    cache = PolicyCache(PolicyRegistry(), build_wait_s=0.0)
    assert cache.baseline(spec(builder, expensive=False), SCENARIO, CPU).startswith("policy built")


def test_the_wait_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DECISIONLAB_BUILD_WAIT_S", "2.5")
    assert build_wait_seconds() == 2.5
    monkeypatch.setenv("DECISIONLAB_BUILD_WAIT_S", "soon")
    with pytest.raises(Exception, match="DECISIONLAB_BUILD_WAIT_S"):
        build_wait_seconds()


def test_registered_policies_load_once_per_version_and_follow_the_registry(decisionlab_home: Path) -> None:
    registry = PolicyRegistry()
    record = registry.save("toy", "p", {"w": torch.zeros(1)}, {})
    cache = PolicyCache(registry, resolve_ttl_s=0.0)
    loads = []
    for _ in range(3):
        found = cache.resolve("toy", "p", lambda: registry.find("toy/p"))
        cache.registered(found, SCENARIO, CPU, lambda ref=found.ref: loads.append(ref) or f"net {ref}")
    assert loads == [record.ref]
    newer = registry.save("toy", "p", {"w": torch.ones(1)}, {})
    found = cache.resolve("toy", "p", lambda: registry.find("toy/p"))
    assert found.ref == newer.ref  # a new version is seen at once (ttl 0)
    cache.resolve_ttl_s = 3600.0
    registry.save("toy", "p", {"w": torch.ones(1)}, {})
    assert cache.resolve("toy", "p", lambda: registry.find("toy/p")).ref == newer.ref  # within the ttl: cached
