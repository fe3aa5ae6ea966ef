"""The job store: the database (SQLite in the data dir, or PostgreSQL), its migrations, and the
queue operations every runner uses (see `packshot.jobs.runner` for the list).

Functions take a SQLAlchemy `Session` and commit their own change, so each one is one
transaction; none of them knows about HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Engine,
    Float,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from packshot.errors import UsageError
from packshot.jobs.kinds import KINDS, to_json
from packshot.jobs.models import (
    Job,
    JobEvent,
    Merchant,
    RateBucket,
    ShotRow,
    StreamLease,
    WebhookDelivery,
    WebSession,
    new_id,
    now,
)

KEY_PREFIX = "pk_live_"  # every API key starts with this, so leaked keys are easy to spot
TERMINAL = ("succeeded", "failed", "canceled")
PROGRESS_WEBHOOK_INTERVAL = 0.5  # s: at most two progress webhooks a second per job
WEBHOOK_EVENTS = ("start", "step", "sample", "checkpoint", "resume", "shot", "done")


def utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every one stored is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


# -- the database ---------------------------------------------------------------------------


# The web app runs its sync routes on anyio's thread pool (40 threads): a pool as large lets
# every one of them hold a connection, so that none waits for another's request to finish.
POOL_CONNECTIONS = 40


def make_engine(database_url: str) -> Engine:
    """An engine for `database_url`; SQLite gets WAL and a busy timeout (two processes write)."""
    if database_url.startswith("sqlite"):
        # SQLite connections are cheap: keep them all open, and open more when every one is
        # taken (no cap): routes run on the event loop with SQLite (`inline_on_sqlite`), where
        # a wait for a pooled connection would stop the whole server.
        engine = create_engine(
            database_url,
            connect_args={"timeout": 30},
            pool_size=POOL_CONNECTIONS,
            max_overflow=-1,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # WAL's recommended durability: a commit no longer waits for an fsync (only a
            # checkpoint does), so 50 clients writing at once are not queued behind the disk.
            # The database stays consistent through any crash; a power cut may undo the last
            # commits, never half of one.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(
        database_url,
        pool_pre_ping=True,
        pool_size=POOL_CONNECTIONS // 4,
        max_overflow=POOL_CONNECTIONS - POOL_CONNECTIONS // 4,
    )


def migrate(database_url: str) -> None:
    """Apply every Alembic migration not yet applied (`packshot serve` does this on start)."""

    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    command.upgrade(config, "head")


class Database:
    """An engine and its session factory."""

    def __init__(self, database_url: str):
        self.url = database_url
        self.engine = make_engine(database_url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessions() as session:
            yield session

    def open_connections(self) -> int:
        """Open all of the pool's kept connections now; return how many.

        Otherwise the first burst of requests after a start opens them one by one, each with
        its PRAGMAs (SQLite) or its handshake (a server): ~70 ms more at the p99 of 50
        products created at once (`benchmarks/serve_load.py`)."""
        size = getattr(self.engine.pool, "size", None)
        count = size() if callable(size) else 0
        connections = [self.engine.connect() for _ in range(count)]
        for connection in connections:
            connection.close()  # back to the pool, still open
        return count

    def dispose(self) -> None:
        self.engine.dispose()


def job_dir(data_dir: Path, job: Job) -> Path:
    """Where a job's files live: `<data>/jobs/<job id>`."""
    return Path(data_dir) / "jobs" / job.id


def product_dir(data_dir: Path, product_id: str) -> Path:
    """Where a product's photos live: `<data>/products/<product id>/photos`."""
    return Path(data_dir) / "products" / product_id


# -- merchants and keys ---------------------------------------------------------------------


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_merchant(session: Session, name: str) -> tuple[Merchant, str]:
    """A new merchant and its API key (returned once; only its hash is stored)."""
    name = name.strip()
    if not name or len(name) > 200:
        raise UsageError("A merchant's name must be 1 to 200 characters.")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    merchant = Merchant(
        id=new_id("mer"),
        name=name,
        key_prefix=key[: len(KEY_PREFIX) + 6],
        key_hash=hash_key(key),
        webhook_secret="whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
    )
    session.add(merchant)
    session.commit()
    return merchant, key


# Built once: every authenticated request runs it, and building the expression anew took a
# third of the lookup's ~0.55 ms.
_MERCHANTS_BY_PREFIX = select(Merchant).where(Merchant.key_prefix == bindparam("prefix"))


def merchant_for_key(session: Session, key: str) -> Merchant | None:
    """The active merchant whose key this is, compared in constant time; else None."""
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    digest = hash_key(key)
    # The lookup is by the key's prefix (not secret); the hash comparison is constant-time.
    candidates = session.scalars(_MERCHANTS_BY_PREFIX, {"prefix": key[: len(KEY_PREFIX) + 6]}).all()
    found = None
    for merchant in candidates:
        if hmac.compare_digest(merchant.key_hash, digest) and merchant.revoked_at is None:
            found = merchant
    return found


def find_merchant(session: Session, ref: str) -> Merchant:
    """A merchant by id or by name (for the CLI)."""
    merchant = session.get(Merchant, ref)
    if merchant is None:
        matches = session.scalars(select(Merchant).where(Merchant.name == ref)).all()
        if len(matches) > 1:
            raise UsageError(f"{len(matches)} merchants are called {ref!r}: pass the id instead.")
        merchant = matches[0] if matches else None
    if merchant is None:
        raise UsageError(f"No merchant {ref!r}: see `packshot merchants list`.")
    return merchant


def revoke_merchant(session: Session, ref: str) -> Merchant:
    """Revoke a merchant's key; its signed-in browsers are signed out."""
    merchant = find_merchant(session, ref)
    if merchant.revoked_at is None:
        merchant.revoked_at = now()
    session.execute(delete(WebSession).where(WebSession.merchant_id == merchant.id))
    session.commit()
    return merchant


def purge_expired_sessions(session: Session, at: datetime | None = None) -> int:
    """Delete the web sessions that expired before `at` (now); how many were deleted.

    Sign-in calls this, so the table holds at most the sessions started within one session
    lifetime (`ApiSettings.session_hours`): only sign-ins add rows.
    """
    result = session.execute(delete(WebSession).where(WebSession.expires_at < (at or now())))
    session.commit()
    return result.rowcount or 0


# -- the queue ------------------------------------------------------------------------------


def job_result(job: Job) -> Any | None:
    """A finished job's result record (its kind's), from the JSON stored; None before."""
    return KINDS[job.kind].load_result(dict(job.result)) if job.result else None


def enqueue(
    session: Session,
    *,
    merchant_id: str,
    product_id: str | None,
    kind: str,
    params: Any,
    request: dict[str, Any],
    webhook: str | None,
    prefix: str,
) -> Job:
    """Queue a job of `kind`: `params` is its params record (stored as JSON)."""
    if not isinstance(params, KINDS[kind].params_type):
        raise TypeError(f"a {kind} job takes {KINDS[kind].params_type.__name__}, not {params!r}")
    job = Job(
        id=new_id(prefix),
        merchant_id=merchant_id,
        product_id=product_id,
        kind=kind,
        status="queued",
        params=to_json(params),
        request=request,
        webhook=webhook,
        progress={},
    )
    session.add(job)
    session.commit()
    return job


def queued_count(session: Session, merchant_id: str) -> int:
    """How many of a merchant's jobs wait in the queue."""
    return (
        session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.merchant_id == merchant_id, Job.status == "queued")
        )
        or 0
    )


def next_in_line(session: Session, max_running: int | None = None) -> Job | None:
    """The queued job to run next, fair between merchants; None when none may run now.

    Only merchants with fewer than `max_running` jobs running take part (None: all). Of
    theirs, a job that ran before (its worker died: it resumes) comes first. Otherwise the
    merchant with the fewest jobs running, then the one whose last job started longest ago
    (never: first), has their oldest job run: one merchant's 20 jobs take turns with another's
    first, instead of all running before it.
    """
    waiting = session.execute(
        select(Job.merchant_id, func.min(Job.created_at))
        .where(Job.status == "queued")
        .group_by(Job.merchant_id)
    ).all()
    if not waiting:
        return None
    merchants = [merchant for merchant, _oldest in waiting]
    running = dict(
        session.execute(
            select(Job.merchant_id, func.count())
            .where(Job.status == "running", Job.merchant_id.in_(merchants))
            .group_by(Job.merchant_id)
        ).all()
    )
    if max_running is not None:
        waiting = [row for row in waiting if running.get(row[0], 0) < max_running]
        if not waiting:
            return None  # every waiting merchant has as many running as they may
    eligible = [merchant for merchant, _oldest in waiting]
    queued = select(Job).where(Job.status == "queued").order_by(Job.created_at, Job.id).limit(1)
    resumed = session.scalars(
        queued.where(Job.started_at.is_not(None), Job.merchant_id.in_(eligible))
    ).first()
    if resumed is not None:
        return resumed
    started = dict(
        session.execute(
            select(Job.merchant_id, func.max(Job.started_at))
            .where(Job.started_at.is_not(None), Job.merchant_id.in_(eligible))
            .group_by(Job.merchant_id)
        ).all()
    )
    never = datetime.min.replace(tzinfo=UTC)
    merchant, _oldest = min(
        waiting,
        key=lambda row: (running.get(row[0], 0), utc(started.get(row[0])) or never, utc(row[1])),
    )
    return session.scalars(queued.where(Job.merchant_id == merchant)).first()


def claim_next(
    session: Session, worker_id: str, runner: str = "local", max_running: int | None = None
) -> Job | None:
    """The next queued job (`next_in_line`, with its merchant under `max_running` jobs
    running), now running under `worker_id`; None when none may run now."""
    while True:
        job = next_in_line(session, max_running)
        if job is None:
            return None
        # Compare-and-set, so that two workers never take the same job.
        claimed = session.execute(
            update(Job)
            .where(Job.id == job.id, Job.status == "queued")
            .values(
                status="running",
                worker_id=worker_id,
                runner=runner,
                attempts=Job.attempts + 1,
                started_at=job.started_at or now(),
                heartbeat_at=now(),
            )
        ).rowcount
        session.commit()
        if claimed:
            session.refresh(job)
            if job.attempts == 1:
                _webhook(session, job, "job.started")
                session.commit()
            return job


def requeue_running(session: Session, runner: str = "local") -> list[str]:
    """Jobs left running by a worker that is gone, back in the queue (they resume)."""
    jobs = session.scalars(select(Job).where(Job.status == "running", Job.runner == runner)).all()
    for job in jobs:
        if job.cancel_requested:
            job.status, job.finished_at = "canceled", now()
            _webhook(session, job, "job.canceled")
        else:
            job.status, job.worker_id = "queued", None
    session.commit()
    return [job.id for job in jobs]


def heartbeat(session: Session, job_id: str, worker_id: str) -> None:
    session.execute(
        update(Job).where(Job.id == job_id, Job.worker_id == worker_id).values(heartbeat_at=now())
    )
    session.commit()


def cancel_requested(session: Session, job_id: str) -> bool:
    return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def request_cancel(session: Session, job: Job) -> Job:
    """Cancel a job: a queued one at once, a running one at its next step (409 if finished)."""
    if job.status in TERMINAL:
        raise JobConflict(f"The job is already {job.status}; only queued or running jobs cancel.")
    if job.status == "queued":
        claimed = session.execute(
            update(Job)
            .where(Job.id == job.id, Job.status == "queued")
            .values(status="canceled", cancel_requested=True, finished_at=now())
        ).rowcount
        session.commit()
        session.refresh(job)
        if claimed:
            _webhook(session, job, "job.canceled")
            session.commit()
            return job
    job.cancel_requested = True
    session.commit()
    return job


class JobConflict(UsageError):
    """The job is not in a state that allows this (HTTP 409)."""


# When each running job last queued a progress webhook, in the process that stores its events
# (the one worker of the local runner, or the Ray runner in `packshot serve`): one process
# per job at a time, so memory is the right place. Finished jobs leave it; so does any entry
# older than the interval once it holds many (a job deleted while it ran).
_last_progress_webhook: dict[str, float] = {}
_PROGRESS_THROTTLE_KEYS = 1024


def progress_webhook_due(job_id: str, clock: float) -> bool:
    """Whether a progress webhook for this job may go now (at most every 500 ms per job)."""
    if clock - _last_progress_webhook.get(job_id, float("-inf")) < PROGRESS_WEBHOOK_INTERVAL:
        return False
    if len(_last_progress_webhook) >= _PROGRESS_THROTTLE_KEYS:
        for stale in [
            key
            for key, last in _last_progress_webhook.items()
            if clock - last >= PROGRESS_WEBHOOK_INTERVAL
        ]:
            del _last_progress_webhook[stale]
    _last_progress_webhook[job_id] = clock
    return True


def add_event(session: Session, job_id: str, event: dict[str, Any]) -> None:
    """Store one progress event (relative paths, see `execute.relative_event`)."""
    data = event.get("data") or {}
    kind = str(data.get("event") or "progress")
    progress = {
        "stage": event.get("stage"),
        "done": event.get("done"),
        "total": event.get("total"),
        "message": event.get("message", ""),
    }
    for key in ("loss", "loss_ema", "it_s", "eta_s", "step"):
        if key in data:
            progress[key] = data[key]
    session.add(JobEvent(job_id=job_id, type=kind, data={**event, "type": kind}))
    job = session.get(Job, job_id)
    if job is not None and job.status == "running":
        if kind != "warning":
            job.progress = progress
        if kind == "shot" and KINDS[job.kind].shots and data.get("path"):
            add_shot(session, job, str(data["path"]), {})
        # At most every 500 ms per job (notable events too: the next one carries on).
        if (
            job.webhook
            and kind in WEBHOOK_EVENTS
            and progress_webhook_due(job_id, time.monotonic())
        ):
            _webhook(session, job, "job.progress")
    session.commit()


def add_shot(session: Session, job: Job, file: str, info: dict[str, Any]) -> ShotRow:
    existing = session.scalars(
        select(ShotRow).where(ShotRow.job_id == job.id, ShotRow.file == file)
    ).first()
    if existing is not None:
        return existing
    row = ShotRow(
        id=new_id("shot"), merchant_id=job.merchant_id, job_id=job.id, file=file, info=info
    )
    session.add(row)
    return row


def finish(session: Session, job_id: str, record: Any) -> None:
    """The job succeeded with `record`, its kind's result record (stored as JSON)."""
    job = session.get(Job, job_id)
    if job is None:
        return
    result = to_json(record)
    if KINDS[job.kind].shots:
        _reconcile_shots(session, job, result)
    job.status, job.result, job.finished_at = "succeeded", result, now()
    job.progress = {**(job.progress or {}), "done": (job.progress or {}).get("total")}
    session.add(JobEvent(job_id=job_id, type="done", data={"type": "done", "result": result}))
    _webhook(session, job, "job.succeeded")
    _last_progress_webhook.pop(job_id, None)
    session.commit()


def _reconcile_shots(session: Session, job: Job, result: dict[str, Any]) -> None:
    """The delivered shots are those in the result (--best sets the others aside)."""
    listed, key = KINDS[job.kind].shots  # type: ignore[misc]
    images = {image[key]: image for image in result.get(listed, [])}
    rows = {
        row.file: row for row in session.scalars(select(ShotRow).where(ShotRow.job_id == job.id))
    }
    for file, row in rows.items():
        if file not in images:
            session.delete(row)
    for file, image in images.items():
        row = rows.get(file) or add_shot(session, job, file, {})
        row.info = image


def fail(session: Session, job_id: str, code: str, message: str) -> None:
    job = session.get(Job, job_id)
    if job is None:
        return
    job.status, job.finished_at = "failed", now()
    job.error = {"code": code, "message": message}
    session.add(JobEvent(job_id=job_id, type="failed", data={"type": "failed", "error": job.error}))
    _webhook(session, job, "job.failed")
    _last_progress_webhook.pop(job_id, None)
    session.commit()


def mark_canceled(session: Session, job_id: str) -> None:
    job = session.get(Job, job_id)
    if job is None:
        return
    job.status, job.finished_at = "canceled", now()
    session.add(JobEvent(job_id=job_id, type="canceled", data={"type": "canceled"}))
    _webhook(session, job, "job.canceled")
    _last_progress_webhook.pop(job_id, None)
    session.commit()


def events_after(session: Session, job_id: str, after: int, limit: int = 500) -> list[JobEvent]:
    return list(
        session.scalars(
            select(JobEvent)
            .where(JobEvent.job_id == job_id, JobEvent.id > after)
            .order_by(JobEvent.id)
            .limit(limit)
        )
    )


# -- webhooks -------------------------------------------------------------------------------


def job_payload(job: Job) -> dict[str, Any]:
    """What a webhook carries: the job's public fields (the same as GET on it, minus files)."""
    return {
        "id": job.id,
        "object": job.kind,
        "product_id": job.product_id,
        "status": job.status,
        "progress": job.progress or {},
        "error": job.error,
        "result": job.result,
        "url": f"/v1/{KINDS[job.kind].plural}/{job.id}",
    }


def _webhook(session: Session, job: Job, event_type: str) -> None:
    if not job.webhook:
        return
    data = job_payload(job)
    session.add(
        WebhookDelivery(
            id=new_id("msg"),
            merchant_id=job.merchant_id,
            job_id=job.id,
            url=job.webhook,
            event=event_type,
            payload={"type": event_type, "timestamp": now().isoformat(), "data": data},
        )
    )


def due_webhooks(session: Session, limit: int = 20) -> list[WebhookDelivery]:
    return list(
        session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now())
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.created_at)
            .limit(limit)
        )
    )


def claim_webhook(session: Session, delivery_id: str, hold_s: float) -> bool:
    """Take a due delivery for `hold_s` seconds (it is due again after, unless recorded):
    whether this caller got it, so that two senders never send the same one at once."""
    moment = now()
    claimed = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == "pending",
            WebhookDelivery.next_attempt_at <= moment,
        )
        .values(next_attempt_at=moment + timedelta(seconds=hold_s))
        .execution_options(synchronize_session=False)  # the rows loaded are read no further
    ).rowcount
    session.commit()
    return bool(claimed)


WEBHOOK_BACKOFF = (5, 30, 120, 600, 1800, 7200)  # s before attempts 2, 3, …; then it gives up


def record_attempt(
    session: Session, delivery: WebhookDelivery, error: str | None, *, give_up: bool = False
) -> None:
    """One delivery attempt: sent, retried later, or (after the last or with `give_up`) failed."""
    delivery.attempts += 1
    if error is None:
        delivery.status, delivery.last_error = "sent", None
    elif give_up or delivery.attempts > len(WEBHOOK_BACKOFF):
        delivery.status, delivery.last_error = "failed", error
    else:
        delivery.last_error = error
        delivery.next_attempt_at = now() + timedelta(seconds=WEBHOOK_BACKOFF[delivery.attempts - 1])
    session.commit()


def expired(moment: datetime | None, seconds: float) -> bool:
    return moment is None or utc(moment) < datetime.now(UTC) - timedelta(seconds=seconds)  # type: ignore[operator]


# -- limits every web process shares ----------------------------------------------------------


def _take_token_statement(dialect: str) -> Any:
    """The upsert `take_token` runs, built once per dialect: every authenticated request runs
    it, and building it anew cost more than running it."""
    insert = (postgresql if dialect == "postgresql" else sqlite).insert
    clock = bindparam("clock", type_=Float)
    rate = bindparam("rate", type_=Float)
    capacity = bindparam("capacity", type_=Float)
    refilled = RateBucket.tokens + (clock - RateBucket.updated_at) * rate
    level = case((refilled > capacity, capacity), else_=refilled)
    statement = insert(RateBucket).values(
        key=bindparam("key"), tokens=capacity - 1, updated_at=clock, allowed=True
    )
    return statement.on_conflict_do_update(
        index_elements=[RateBucket.key],
        set_={
            "tokens": case((level >= 1, level - 1), else_=level),
            "updated_at": clock,
            "allowed": level >= 1,
        },
    ).returning(RateBucket.tokens, RateBucket.allowed)


_TAKE_TOKEN = {name: _take_token_statement(name) for name in ("sqlite", "postgresql")}


def _without_waiting_for_the_disk(session: Session) -> str:
    """On PostgreSQL, this transaction's commit doesn't wait for its WAL to reach the disk (a
    crash may lose its last few milliseconds, never half of it): right for counters that
    every request writes, where that wait was half of the request's database time. SQLite
    in WAL mode with synchronous=NORMAL already doesn't wait. The dialect's name."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(_ASYNC_COMMIT)
    return dialect


_ASYNC_COMMIT = text("SET LOCAL synchronous_commit TO OFF")


def take_token(session: Session, key: str, per_minute: int, clock: float) -> float:
    """Take one token from `key`'s bucket (`per_minute` a minute, bursts of as many): 0 when
    allowed, else the seconds to wait. One statement (an upsert), so that every web process
    counts in the same bucket; `clock` is `time.time()` (the same in every process)."""
    rate = per_minute / 60.0
    statement = _TAKE_TOKEN[_without_waiting_for_the_disk(session)]
    params = {"key": key, "clock": clock, "rate": rate, "capacity": float(per_minute)}
    tokens, allowed = session.execute(statement, params).one()
    session.commit()
    return 0.0 if allowed else (1 - tokens) / rate


def purge_rate_buckets(session: Session, clock: float) -> int:
    """Delete the buckets idle long enough to be full again (absent means full); how many."""
    refill_s = 60.0  # an empty bucket refills in a minute, whatever the rate
    result = session.execute(delete(RateBucket).where(RateBucket.updated_at < clock - refill_s))
    session.commit()
    return result.rowcount or 0


class TooManyStreams(UsageError):
    """Opening one more event stream would pass a stream cap (HTTP 429)."""


def open_stream_lease(
    session: Session,
    merchant_id: str,
    *,
    per_merchant: int,
    total: int,
    ttl_s: float,
    clock: float,
) -> str:
    """Count one more open event stream of `merchant_id`; its lease id. `TooManyStreams` when
    the merchant already has `per_merchant` open, or all merchants `total`. The lease is added
    first and counted after, in one transaction: streams opened at once may be refused
    together, never both let through past the cap (on SQLite, whose writers take turns)."""
    _without_waiting_for_the_disk(session)
    lease = StreamLease(id=new_id("stm"), merchant_id=merchant_id, expires_at=clock + ttl_s)
    session.add(lease)
    session.flush()
    live = select(func.count()).select_from(StreamLease).where(StreamLease.expires_at > clock)
    mine = session.scalar(live.where(StreamLease.merchant_id == merchant_id)) or 0
    everyone = session.scalar(live) or 0
    if mine > per_merchant:
        session.rollback()
        raise TooManyStreams(
            f"Too many open event streams: at most {per_merchant} per merchant. Close one "
            "(a browser tab following a job), or poll the job instead."
        )
    if everyone > total:
        session.rollback()
        raise TooManyStreams(
            "The studio is following as many event streams as it can right now: poll the "
            "job instead, or retry in a minute."
        )
    session.commit()
    return lease.id


def count_stream_leases(session: Session, clock: float) -> int:
    """How many event streams are open now, in every web process."""
    live = select(func.count()).select_from(StreamLease).where(StreamLease.expires_at > clock)
    return session.scalar(live) or 0


def renew_stream_leases(
    session: Session, open_ids: list[str], closed_ids: list[str], *, ttl_s: float, clock: float
) -> None:
    """One web process's streams: the open ones renewed, the closed ones and every expired
    lease (a process that died) deleted."""
    if open_ids:
        session.execute(
            update(StreamLease).where(StreamLease.id.in_(open_ids)).values(expires_at=clock + ttl_s)
        )
    if closed_ids:
        session.execute(delete(StreamLease).where(StreamLease.id.in_(closed_ids)))
    session.execute(delete(StreamLease).where(StreamLease.expires_at <= clock))
    session.commit()


def events_of_jobs(
    session: Session, after: dict[str, int], limit: int = 500
) -> tuple[dict[str, str], list[JobEvent], bool]:
    """For the jobs `after` names: their statuses (a deleted job is absent), then their events
    after each job's own id, oldest first, at most `limit` (and whether that cut them short).

    The statuses are read first: a job whose status is final then has all its events stored
    (a job's last event is stored with its final status, in one transaction)."""
    if not after:
        return {}, [], False
    ids = list(after)
    statuses = dict(session.execute(select(Job.id, Job.status).where(Job.id.in_(ids))).all())
    rows = session.scalars(
        select(JobEvent)
        .where(JobEvent.job_id.in_(ids), JobEvent.id > min(after.values()))
        .order_by(JobEvent.id)
        .limit(limit)
    ).all()
    events = [e for e in rows if e.id > after[e.job_id]]
    session.commit()  # the connection goes back to the pool between polls
    return statuses, events, len(rows) == limit
