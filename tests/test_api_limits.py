"""The in-memory limits of the web process: the rate limiter's buckets and the progress-webhook
throttle stay bounded however many keys or jobs pass through."""

from __future__ import annotations

import pytest

from packshot.api.deps import RateLimiter
from packshot.jobs import store


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_counts_per_key() -> None:
    clock = Clock()
    limiter = RateLimiter(3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(20.0)  # 3 a minute: one token every 20 s
    assert limiter.take("b") == 0.0
    clock.now += 20
    assert limiter.take("a") == 0.0 and limiter.take("a") > 0


def test_rate_limiter_drops_idle_full_buckets() -> None:
    """A bucket idle for a minute is full again, the same as no bucket: it is dropped, so the
    dict holds only the keys seen within the last minute."""
    clock = Clock()
    limiter = RateLimiter(60, clock=clock)
    for i in range(5000):  # e.g. key guessing from many addresses
        limiter.take(f"bad-key:10.0.{i // 256}.{i % 256}")
    limiter.take("mer_busy")
    assert len(limiter.buckets) == 5001
    clock.now += 30
    limiter.take("mer_busy")
    assert len(limiter.buckets) == 5001  # not yet refilled: kept, they still count
    clock.now += 30
    limiter.take("mer_other")
    assert list(limiter.buckets) == ["mer_busy", "mer_other"]
    clock.now += 60
    limiter.take("mer_other")
    assert list(limiter.buckets) == ["mer_other"]


def test_rate_limiter_eviction_changes_no_answer() -> None:
    """Dropping a refilled bucket is exact: a key that comes back gets what it would have."""
    clock = Clock()
    limiter = RateLimiter(2, clock=clock)
    assert limiter.take("a") == 0.0 and limiter.take("a") == 0.0 and limiter.take("a") > 0
    clock.now += 60  # refilled (2 a minute)
    limiter.take("b")  # evicts "a"
    assert "a" not in limiter.buckets
    assert [limiter.take("a") == 0.0 for _ in range(3)] == [True, True, False]


def test_rate_limiter_never_holds_more_than_max_keys() -> None:
    clock = Clock()
    limiter = RateLimiter(10, max_keys=100, clock=clock)
    for i in range(10_000):
        limiter.take(f"k{i}")
        clock.now += 0.001  # all within the minute: none refilled
    assert len(limiter.buckets) <= 100
    assert "k9999" in limiter.buckets and "k0" not in limiter.buckets  # least recent first
    # The limit still holds for a key that stays busy.
    codes = [limiter.take("busy") == 0.0 for _ in range(12)]
    assert codes == [True] * 10 + [False, False]


def test_progress_webhook_throttle_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "_last_progress_webhook", {})
    clock = 500.0
    assert store.progress_webhook_due("job_a", clock)
    assert not store.progress_webhook_due("job_a", clock + 0.2)  # at most every 500 ms
    assert store.progress_webhook_due("job_a", clock + 0.5)
    # Jobs that never finish here (deleted while running) don't pile up.
    for i in range(10_000):
        clock += 0.001
        store.progress_webhook_due(f"job_{i}", clock)
    assert len(store._last_progress_webhook) <= store._PROGRESS_THROTTLE_KEYS
