"""Progress streams under load: many open `GET …/events` streams neither starve the server nor
hold its database connections, they all get the job's events and its end, and the stream caps
answer 429 (the full load, 500 streams and 50 clients, is benchmarks/stream_load.py)."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

from api_support import ENV_POSTGRES, postgres_database
from packshot.api.app import create_app
from packshot.api.settings import ApiSettings
from packshot.jobs import store
from packshot.jobs.models import Job, Product, new_id
from packshot.jobs.settings import ServiceSettings


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'packshot.db'}"
        return
    if not os.environ.get(ENV_POSTGRES):
        pytest.skip(f"{ENV_POSTGRES} is not set (.ci/run sets it; see the README)")
    with postgres_database() as url:
        yield url


STREAMS = 70  # more than the old pool's 50 connections, which froze the server at 52


@contextmanager
def serving(settings: ApiSettings) -> Iterator[tuple[str, object]]:
    """The app on a loopback port, in a thread of this process (its pool can be looked at)."""
    app = create_app(settings)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _running_job(db: store.Database) -> tuple[str, str, str]:
    """(API key, job id, product id): a merchant's training, running (no worker needed)."""
    with db.session() as session:
        merchant, key = store.create_merchant(session, "Acme")
        product = Product(id=new_id("prd"), merchant_id=merchant.id, name="mug", class_name="mug")
        session.add(product)
        session.flush()  # the product's row first: the job's refers to it
        job = Job(
            id=new_id("trn"),
            merchant_id=merchant.id,
            product_id=product.id,
            kind="training",
            status="running",
            params={},
            request={},
            progress={},
        )
        session.add(job)
        session.commit()
        return key, job.id, product.id


async def _open_stream(port: int, path: str, key: str) -> tuple[asyncio.StreamReader, object, int]:
    """One stream opened over a raw socket (cheap, so 70 fit in a fast test): its reader, its
    writer and the response's status."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {key}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    return reader, writer, int(head.split()[1])


async def _read_until(reader: asyncio.StreamReader, marker: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        chunk = await asyncio.wait_for(reader.read(65536), max(0.01, deadline - time.monotonic()))
        if not chunk:
            break
        seen += chunk
    return seen


def test_open_streams_do_not_starve_the_server(tmp_path: Path, database_url: str) -> None:
    service = ServiceSettings(data_dir=tmp_path, database_url=database_url)
    settings = ApiSettings(service=service, max_streams_per_merchant=STREAMS, max_streams=500)
    store.migrate(service.database_url)
    db = store.Database(service.database_url)
    key, job_id, _product = _running_job(db)
    events = f"/v1/trainings/{job_id}/events"
    headers = {"Authorization": f"Bearer {key}"}

    with serving(settings) as (base, app):
        port = int(base.rsplit(":", 1)[1])
        pool = app.state.db.engine.pool  # type: ignore[attr-defined]

        async def scenario() -> None:
            opened = await asyncio.gather(
                *(_open_stream(port, events, key) for _ in range(STREAMS))
            )
            assert [status for _r, _w, status in opened] == [200] * STREAMS
            # Past the merchant's cap: a clear 429, and the streams already open carry on.
            async with httpx.AsyncClient(base_url=base, headers=headers, timeout=5) as http:
                refused = await http.get(events)
                assert refused.status_code == 429, refused.text
                assert "at most 70 per merchant" in refused.json()["error"]["message"]
                # The server still answers at once, with every stream open.
                for _ in range(5):
                    started = time.monotonic()
                    health = await http.get("/v1/health")
                    products = await http.get("/v1/products")
                    assert health.status_code == 200 and products.status_code == 200
                    assert time.monotonic() - started < 1.0
                # The streams hold no connection between polls.
                assert pool.checkedout() <= 3
                with db.session() as session:
                    store.add_event(
                        session,
                        job_id,
                        {"stage": "train", "done": 1, "total": 4, "data": {"event": "step"}},
                    )
                    store.mark_canceled(session, job_id)
                # Every stream gets the step, then the end with the final status.
                bodies = await asyncio.gather(
                    *(_read_until(reader, b"event: end", 10) for reader, _w, _s in opened)
                )
                for body in bodies:
                    assert b"event: step" in body and b'"status": "canceled"' in body
                for _reader, writer, _status in opened:
                    writer.close()  # type: ignore[attr-defined]
                # Closed streams give their leases back: the merchant may open streams again.
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    with db.session() as session:
                        if store.count_stream_leases(session, time.time()) == 0:
                            break
                    await asyncio.sleep(0.1)
                again = await http.get(events)
                assert again.status_code == 200 and "event: end" in again.text

        asyncio.run(scenario())
    db.dispose()


def test_stream_caps_count_every_process_leases(database_url: str) -> None:
    """The caps count the leases in the database (any web process's); an expired lease (its
    process died) no longer counts."""
    store.migrate(database_url)
    db = store.Database(database_url)
    clock = 1000.0
    with db.session() as session:
        open_lease = lambda merchant: store.open_stream_lease(  # noqa: E731
            session, merchant, per_merchant=2, total=3, ttl_s=60, clock=clock
        )
        first = open_lease("mer_a")
        open_lease("mer_a")
        with pytest.raises(store.TooManyStreams, match="at most 2 per merchant"):
            open_lease("mer_a")
        open_lease("mer_b")
        with pytest.raises(store.TooManyStreams, match="as many event streams as it can"):
            open_lease("mer_c")
        store.renew_stream_leases(session, [], [first], ttl_s=60, clock=clock)
        open_lease("mer_c")  # a closed stream's lease is given back
        clock += 61  # nobody renewed them: their process is gone
        store.renew_stream_leases(session, [], [], ttl_s=60, clock=clock)
        assert store.count_stream_leases(session, clock) == 0
        open_lease("mer_a")
    db.dispose()


def test_a_download_holds_no_connection_while_it_sends(tmp_path: Path) -> None:
    """A client reading a big model file slowly (here: not at all) keeps no pooled connection:
    the request's session closed when the route returned its response."""
    service = ServiceSettings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'p.db'}")
    store.migrate(service.database_url)
    db = store.Database(service.database_url)
    key, job_id, _product = _running_job(db)
    with db.session() as session:
        job = session.get(Job, job_id)
        job.status = "succeeded"  # type: ignore[union-attr]
        session.commit()
    model = tmp_path / "jobs" / job_id / "model"
    model.mkdir(parents=True)
    (model / "pytorch_lora_weights.safetensors").write_bytes(b"\0" * (64 * 1024 * 1024))
    path = f"/v1/trainings/{job_id}/files/pytorch_lora_weights.safetensors"

    with serving(ApiSettings(service=service)) as (base, app):
        port = int(base.rsplit(":", 1)[1])
        pool = app.state.db.engine.pool  # type: ignore[attr-defined]

        async def scenario() -> None:
            readers = [await _open_stream(port, path, key) for _ in range(3)]
            assert [status for _r, _w, status in readers] == [200] * 3
            await asyncio.sleep(0.3)  # the sends are stuck on full socket buffers
            assert pool.checkedout() == 0
            for _reader, writer, _status in readers:
                writer.close()  # type: ignore[attr-defined]

        asyncio.run(scenario())
    db.dispose()
