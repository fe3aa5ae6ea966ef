"""The in-memory limits of the web process: the rate limiter's buckets and the progress-webhook
throttle stay bounded however many keys or jobs pass through; and what keeps its small requests
quick: routes inline on SQLite, connections opened and objects frozen at start-up."""

from __future__ import annotations

import os

import pytest

from api_support import ENV_POSTGRES
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


def _where_it_runs(database_url: str) -> tuple[int, int]:
    """(the event loop's thread, the thread an `inline_on_sqlite` route body ran on)."""
    import asyncio
    import threading

    from sqlalchemy import text

    from packshot.api.deps import inline_on_sqlite

    db = store.Database(database_url)
    ran_on: list[int] = []

    @inline_on_sqlite
    def route(session):  # type: ignore[no-untyped-def]
        ran_on.append(threading.get_ident())
        return session.execute(text("SELECT 1")).scalar()

    async def main() -> int:
        with db.session() as session:
            assert await route(session=session) == 1
        return threading.get_ident()

    try:
        loop_thread = asyncio.run(main())
    finally:
        db.dispose()
    return loop_thread, ran_on[0]


def test_small_routes_run_on_the_event_loop_with_sqlite(tmp_path) -> None:  # type: ignore[no-untyped-def]
    loop_thread, ran_on = _where_it_runs(f"sqlite:///{tmp_path / 'packshot.db'}")
    assert ran_on == loop_thread  # no thread hop: cheaper than the query itself


@pytest.mark.skipif(
    not os.environ.get(ENV_POSTGRES), reason=f"{ENV_POSTGRES} is not set (.ci/run sets it)"
)
def test_small_routes_run_on_threads_with_a_database_server() -> None:
    server = os.environ[ENV_POSTGRES]
    loop_thread, ran_on = _where_it_runs("postgresql+psycopg://" + server.split("://", 1)[1])
    assert ran_on != loop_thread  # a socket round trip must not block the loop


def test_the_app_starts_with_its_connections_open_and_its_objects_frozen(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import gc

    from fastapi.testclient import TestClient

    from packshot.api.app import create_app
    from packshot.api.settings import ApiSettings
    from packshot.jobs.settings import ServiceSettings

    service = ServiceSettings(
        data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'packshot.db'}"
    )
    app = create_app(ApiSettings(service=service))
    pool = app.state.db.engine.pool
    assert pool.checkedin() == 0
    try:
        with TestClient(app) as client:
            assert pool.checkedin() == store.POOL_CONNECTIONS  # opened before the first request
            assert gc.get_freeze_count() > 10_000  # start-up objects out of the collector's way
            assert client.get("/v1/health").status_code == 200
    finally:
        gc.unfreeze()
