"""The limits of the web processes: the rate limiter's buckets (in the database, shared by
every web process) and the progress-webhook throttle stay bounded however many keys or jobs
pass through; and what keeps its small requests
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


@pytest.fixture
def db(tmp_path):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'packshot.db'}"
    store.migrate(url)
    database = store.Database(url)
    yield database
    database.dispose()


def test_rate_limiter_counts_per_key(db: store.Database) -> None:
    clock = Clock()
    limiter = RateLimiter(3, clock=clock)
    with db.session() as session:
        assert [limiter.take(session, "a") for _ in range(3)] == [0.0, 0.0, 0.0]
        assert limiter.take(session, "a") == pytest.approx(20.0)  # one token every 20 s
        assert limiter.take(session, "b") == 0.0
        clock.now += 20
        assert limiter.take(session, "a") == 0.0 and limiter.take(session, "a") > 0


def test_every_web_process_counts_in_the_same_buckets(db: store.Database) -> None:
    """Two web processes (two limiters, each its own connection to the one database): a key's
    requests count once, whichever process answers them."""
    clock = Clock()
    first, second = RateLimiter(4, clock=clock), RateLimiter(4, clock=clock)
    other_db = store.Database(db.url)
    try:
        with db.session() as one, other_db.session() as two:
            answers = [first.take(one, "mer_a"), second.take(two, "mer_a")]
            answers += [first.take(one, "mer_a"), second.take(two, "mer_a")]
            assert answers == [0.0] * 4
            assert first.take(one, "mer_a") > 0 and second.take(two, "mer_a") > 0
    finally:
        other_db.dispose()


def test_rate_limiter_drops_idle_full_buckets(db: store.Database) -> None:
    """A bucket idle for a minute is full again: its row goes (absent means full), so the
    table holds only the keys used within the last minute, however many keys pass through."""
    from sqlalchemy import func, select

    from packshot.jobs.models import RateBucket

    clock = Clock()
    limiter = RateLimiter(2, clock=clock)
    with db.session() as session:
        for i in range(300):
            limiter.take(session, f"bad-key:10.0.{i // 256}.{i % 256}")
        assert limiter.take(session, "a") == 0.0 and limiter.take(session, "a") == 0.0
        assert limiter.take(session, "a") > 0
        assert session.scalar(select(func.count()).select_from(RateBucket)) == 301
        clock.now += 61
        limiter.take(session, "b")  # a minute on: the idle ones are purged
        keys = session.scalars(select(RateBucket.key)).all()
        assert keys == ["b"]
        assert [limiter.take(session, "a") == 0.0 for _ in range(3)] == [True, True, False]


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
