"""Dependencies of the routes: the database session, the settings, and who is asking.

`CurrentMerchant` is the merchant of the API key (`Authorization: Bearer <key>`) or of the
session cookie; with the cookie, every POST/PUT/PATCH/DELETE must also carry the session's
CSRF token in `X-CSRF-Token`. Every request of a merchant counts against its rate limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import multiprocessing
import os
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from packshot.api.errors import ApiError
from packshot.api.settings import ApiSettings
from packshot.jobs import store
from packshot.jobs.models import Merchant, WebSession
from packshot.jobs.webhooks import WebhookUrlError, check_url

SESSION_COOKIE = "packshot_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


async def get_settings(request: Request) -> ApiSettings:
    # async: a plain attribute read, not worth a hop to a thread (FastAPI runs sync
    # dependencies on the thread pool)
    return request.app.state.settings


async def get_db(request: Request) -> AsyncIterator[Session]:
    """A session for the request, opened and closed on the event loop; closed as soon as the
    route has returned its response (`scope="function"`), before the response is sent, so
    that a download or an event stream holds no pooled connection while it sends.

    Closing only hands the connection back to the pool. Done in a sync dependency, that
    would need one of the thread pool's 40 threads: under load, all 40 can be waiting for a
    pooled connection that only such a closing frees, until the pool's 30 s timeout.
    """
    with request.app.state.db.session() as session:
        yield session


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_db, scope="function")]

T = TypeVar("T")


def inline_on_sqlite(fn: Callable[..., T]) -> Callable[..., Any]:
    """Make the sync route or dependency `fn` (which takes `session`) async: it runs on the
    event loop when the database is SQLite, and on a worker thread otherwise.

    FastAPI runs a sync route on a worker thread, its response validation on another hop, and
    each sync dependency on one more. A hop costs more than the few SQLite queries of a small
    JSON route (a local file, well under a millisecond each), and under load each one waits
    for the GIL: with 50 clients creating products at once, the hops made a create's p99
    ~470 ms against ~200 ms inline (`benchmarks/serve_load.py`). SQLite readers never wait
    in WAL mode; a write may wait for another writer's short transaction (the worker's
    progress updates), blocking the loop for that long. A server database answers over a
    socket, so there `fn` keeps its thread. Only for routes without slow work besides the
    database: uploads, downloads, deletions of folders, and the create calls that take a
    `webhook` (checking it resolves its host name: DNS, which may take seconds) stay on
    threads.
    """

    @functools.wraps(fn)
    async def call(*args: Any, **kwargs: Any) -> T:
        session = kwargs.get("session")
        if session is not None and session.get_bind().dialect.name == "sqlite":
            return fn(*args, **kwargs)
        return await run_in_threadpool(fn, *args, **kwargs)

    return call


INTAKE_NICENESS = 10


def _yield_to_the_api() -> None:
    """In each intake process: a lower CPU priority (POSIX `nice`). Judging an upload takes
    seconds of CPU and nobody waits on it at a millisecond's notice; the API's small requests
    do. On a 2-core machine, 50 clients uploading while others create products and poll jobs
    otherwise share the cores evenly with intake."""
    if hasattr(os, "nice"):
        with contextlib.suppress(OSError):  # not allowed here: the normal priority, then
            os.nice(INTAKE_NICENESS)


def intake_pool(app: Any) -> ProcessPoolExecutor:
    """The app's process pool for intake (one process per two cores), made on first use."""
    pool = getattr(app.state, "intake_pool", None)
    if pool is None:
        workers = max(1, (os.cpu_count() or 2) // 2)
        # spawn, not fork: the web process has threads (the pool's, the database's).
        context = multiprocessing.get_context("spawn")
        pool = app.state.intake_pool = ProcessPoolExecutor(
            workers, mp_context=context, initializer=_yield_to_the_api
        )
    return pool


def close_intake_pool(app: Any, *, wait: bool = False) -> None:
    """Stop the app's intake processes (queued work is dropped). At the app's shutdown, `wait`
    for them to exit: a web process of `serve --web-workers N` ends without the interpreter's
    exit hooks (multiprocessing's `os._exit`), which would leave them behind."""
    pool = getattr(app.state, "intake_pool", None)
    if pool is not None:
        app.state.intake_pool = None
        pool.shutdown(wait=wait, cancel_futures=True)


async def run_intake(request: Request, fn: Callable[..., T], *args: Any) -> T:
    """Run intake's judging (CPU-bound Python and numpy, holding the GIL much of the time) in
    the app's intake process, not on the web process's threads: 50 uploads at once queue
    there, and the rest of the API keeps its core and its speed. `fn` and its arguments are
    plain, picklable data (`packshot.api.judging`)."""
    try:
        return await asyncio.wrap_future(intake_pool(request.app).submit(fn, *args))
    except BrokenProcessPool:
        close_intake_pool(request.app)  # a new one on the next upload
        raise ApiError(
            503,
            "Judging the photos stopped unexpectedly (the server may be short of memory). "
            "Nothing of this upload was kept: send it again, or fewer or smaller photos.",
            code="intake_failed",
        ) from None


class RateLimiter:
    """A token bucket per key: `rate` requests a minute, bursts of up to `rate`.

    The buckets are rows of the database (`store.take_token`), so that every web process of
    `packshot serve --web-workers N` counts in the same ones. A missing row is a full bucket,
    so a bucket idle long enough to have refilled is deleted (once a minute, per process):
    the table holds only the keys used within the last minute.
    """

    def __init__(self, rate_per_minute: int, *, clock: Callable[[], float] = time.time):
        self.rate_per_minute = rate_per_minute
        self.clock = clock  # wall-clock seconds: the same in every process
        self.purged_at = clock()

    def take(self, session: Session, key: str) -> float:
        """0 when allowed, else the seconds to wait (commits `session`)."""
        now = self.clock()
        if now - self.purged_at >= PURGE_BUCKETS_S:
            self.purged_at = now
            store.purge_rate_buckets(session, now)
        return store.take_token(session, key, self.rate_per_minute, now)


PURGE_BUCKETS_S = 60.0


def check_webhook(settings: ApiSettings, url: str | None) -> None:
    """Refuse (422) a create call's `webhook` that packshot must not deliver to: not http(s),
    or a host that is or resolves to a loopback, private, link-local, multicast, reserved or
    unspecified address (unless PACKSHOT_WEBHOOK_ALLOW_PRIVATE=1). Every create call that
    takes a `webhook` calls this; each delivery checks the address again."""
    if url is None:
        return
    try:
        check_url(url, allow_private=settings.service.webhook_allow_private)
    except WebhookUrlError as exc:
        raise ApiError(422, f"`webhook`: {exc}", code="invalid_webhook") from None


def limit(request: Request, session: Session, key: str) -> None:
    wait = request.app.state.limiter.take(session, key)
    if wait:
        raise ApiError(
            429,
            f"Too many requests: at most {request.app.state.settings.rate_limit} a minute per "
            f"key. Retry in {wait:.1f} s.",
            headers={"Retry-After": str(max(1, round(wait)))},
        )


def bearer_key(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(401, "The Authorization header must be `Bearer <your API key>`.")
    return key.strip()


def session_for_cookie(session: Session, token: str | None) -> WebSession | None:
    if not token or len(token) > 200:
        return None
    row = session.get(WebSession, hashlib.sha256(token.encode()).hexdigest())
    if row is None or store.utc(row.expires_at) < datetime.now(UTC):  # type: ignore[operator]
        return None
    return row


@inline_on_sqlite
def current_merchant(request: Request, session: SessionDep) -> Merchant:
    key = bearer_key(request)
    if key is not None:
        merchant = store.merchant_for_key(session, key)
        if merchant is None:
            client = request.client.host if request.client else "unknown"
            limit(request, session, f"bad-key:{client}")  # key guessing: limited per address
            raise ApiError(401, "This API key is not valid (or was revoked).")
        limit(request, session, merchant.id)
        request.state.csrf_token = None
        return merchant
    web = session_for_cookie(session, request.cookies.get(SESSION_COOKIE))
    if web is None:
        raise ApiError(
            401, "Sign in: send `Authorization: Bearer <your API key>`, or sign in on the page."
        )
    merchant = session.get(Merchant, web.merchant_id)
    if merchant is None or merchant.revoked_at is not None:
        raise ApiError(401, "This merchant's key was revoked; sign in with a new one.")
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), web.csrf_token.encode()):
            raise ApiError(
                403,
                f"Missing or wrong {CSRF_HEADER} header: send the csrf_token from the sign-in.",
                code="csrf_failed",
            )
    limit(request, session, merchant.id)
    request.state.csrf_token = web.csrf_token
    return merchant


CurrentMerchant = Annotated[Merchant, Depends(current_merchant)]
