"""The jobs' progress streams (server-sent events): one poller per web process reads the new
events of every followed job in one query and hands them to the open streams, which hold no
database connection; each open stream holds a lease in the database, which the stream caps
count in every web process.

Before, each stream polled with its own session and kept its request's pooled connection for
its whole life: ~50 browser tabs took every connection and froze the server. Now 500 streams
cost one query every `POLL_S` and a lease renewal every `LEASE_RENEW_S`, whatever their number.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import anyio

from packshot.jobs import store
from packshot.jobs.models import JobEvent

log = logging.getLogger("packshot.streams")
POLL_S = 0.5  # how often the poller looks for new events while any stream is open
KEEPALIVE_S = 15.0  # a comment line after this long without events (proxies close idle ones)
LEASE_TTL_S = 60.0  # a lease not renewed for this long is gone (its process died)
LEASE_RENEW_S = 20.0

Render = Callable[[JobEvent], str]  # an event → its `id:`/`event:`/`data:` lines


@dataclass(eq=False)
class Follower:
    """One open stream: the job it follows, the last event id it was sent, its queue of
    chunks (None: the stream ends)."""

    job_id: str
    after: int
    render: Render
    lease: str
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)


class EventHub:
    """The web process's event poller and its followers (`app.state.streams`)."""

    def __init__(self, db: store.Database):
        self.db = db
        self.followers: dict[str, set[Follower]] = {}
        self.closed_leases: list[str] = []
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.renewed_at = 0.0

    def start(self) -> None:
        """Start polling, on the running event loop (the app's lifespan does this)."""
        self.wake = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._run(), name="event-hub")

    async def stop(self) -> None:
        """End every stream (they send nothing more) and give their leases back."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None
        leases = self.closed_leases + [f.lease for fs in self.followers.values() for f in fs]
        for follower in [f for fs in self.followers.values() for f in fs]:
            follower.queue.put_nowait(None)
        self.followers.clear()
        self.closed_leases = []
        if leases:
            with contextlib.suppress(Exception):  # the database may be gone first
                await anyio.to_thread.run_sync(self._renew, [], leases)

    @property
    def open_streams(self) -> int:
        return sum(len(fs) for fs in self.followers.values())

    async def follow(
        self, job_id: str, after: int, lease: str, render: Render
    ) -> AsyncIterator[str]:
        """The chunks of one stream: the job's events after `after`, then `end` with its final
        status; a keep-alive comment after `KEEPALIVE_S` of silence."""
        if self.task is None:  # an app run without its lifespan (a bare test client)
            self.start()
        follower = Follower(job_id, after, render, lease)
        self.followers.setdefault(job_id, set()).add(follower)
        self.wake.set()  # its first events now, not at the next poll
        try:
            while True:
                try:
                    async with asyncio.timeout(KEEPALIVE_S):  # no task per wait, as wait_for
                        chunk = await follower.queue.get()
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if chunk is None:
                    return
                yield chunk
        finally:
            self._drop(follower)
            self.closed_leases.append(lease)
            self.wake.set()  # its lease back soon: the caps count open streams only

    def _drop(self, follower: Follower) -> None:
        followers = self.followers.get(follower.job_id)
        if followers is not None:
            followers.discard(follower)
            if not followers:
                del self.followers[follower.job_id]

    async def _run(self) -> None:
        while True:
            more = False
            if self.followers or self.closed_leases:
                try:
                    more = await self._poll()
                except Exception:  # a database hiccup: the streams wait for the next poll
                    log.exception("polling the job events failed; retrying")
            if more:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), POLL_S if self.followers else None)
            self.wake.clear()

    async def _poll(self) -> bool:
        """One round: read, hand out, end the finished; whether events were left to read."""
        after = {job: min(f.after for f in fs) for job, fs in self.followers.items()}
        statuses, events, cut = await anyio.to_thread.run_sync(self._read, after)
        clock = time.time()
        closed, self.closed_leases = self.closed_leases, []
        if closed or clock - self.renewed_at >= LEASE_RENEW_S:
            self.renewed_at = clock
            open_leases = [f.lease for fs in self.followers.values() for f in fs]
            await anyio.to_thread.run_sync(self._renew, open_leases, closed)
        by_job: dict[str, list[JobEvent]] = {}
        for event in events:
            by_job.setdefault(event.job_id, []).append(event)
        for job_id in after:
            followers = self.followers.get(job_id)
            if not followers:
                continue  # all closed while the poll ran
            rendered: dict[int, str] = {}
            status = statuses.get(job_id)
            for follower in list(followers):
                for event in by_job.get(job_id, ()):
                    if event.id > follower.after:
                        if event.id not in rendered:
                            rendered[event.id] = follower.render(event)
                        follower.queue.put_nowait(rendered[event.id])
                        follower.after = event.id
                if status is None:  # the job was deleted
                    follower.queue.put_nowait(None)
                    self._drop(follower)
                elif status in store.TERMINAL and not cut:
                    follower.queue.put_nowait(end_chunk(status))
                    follower.queue.put_nowait(None)
                    self._drop(follower)
        return cut

    def _read(self, after: dict[str, int]) -> tuple[dict[str, str], list[JobEvent], bool]:
        with self.db.session() as session:
            return store.events_of_jobs(session, after)

    def _renew(self, open_leases: list[str], closed: list[str]) -> None:
        with self.db.session() as session:
            store.renew_stream_leases(
                session, open_leases, closed, ttl_s=LEASE_TTL_S, clock=time.time()
            )


def end_chunk(status: str) -> str:
    return f"event: end\ndata: {json.dumps({'status': status})}\n\n"
