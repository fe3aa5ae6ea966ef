"""A running studio for the API tests: the real app, a real worker process, a real database.

`studio_for(database_url, ...)` starts the app (in this process, through `TestClient`), the
local runner's worker process and the webhook sender, with two merchants; the tests drive it
over HTTP like any client. PostgreSQL runs when PACKSHOT_TEST_POSTGRES_URL names a server
(`.ci/run` starts one): each run gets a fresh database there, dropped afterwards.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from packshot.api.app import create_app
from packshot.api.settings import ApiSettings
from packshot.jobs import store
from packshot.jobs.runner import LocalRunner
from packshot.jobs.settings import ServiceSettings
from packshot.jobs.webhooks import WebhookSender

ENV_POSTGRES = "PACKSHOT_TEST_POSTGRES_URL"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "backpack"


@dataclass
class Merchant:
    id: str
    key: str
    secret: str
    client: TestClient

    def get(self, url: str, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.key}", **kw.pop("headers", {})}
        return self.client.get(url, headers=headers, **kw)

    def post(self, url: str, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.key}", **kw.pop("headers", {})}
        return self.client.post(url, headers=headers, **kw)

    def delete(self, url: str, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.key}", **kw.pop("headers", {})}
        return self.client.delete(url, headers=headers, **kw)


@dataclass
class Receiver:
    """A webhook endpoint on loopback that records what it receives."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    fail_first: int = 0  # answer 500 to this many deliveries first (to see the retries)


@dataclass
class Studio:
    settings: ApiSettings
    db: store.Database
    runner: LocalRunner
    client: TestClient
    a: Merchant
    b: Merchant
    receiver: Receiver

    def wait(self, merchant: Merchant, url: str, statuses: tuple[str, ...], timeout: float = 240):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = merchant.get(url).json()
            if body["status"] in statuses:
                return body
            time.sleep(0.3)
        raise AssertionError(f"{url} still {body['status']} after {timeout} s: {body}")


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database on the server PACKSHOT_TEST_POSTGRES_URL names; dropped afterwards."""
    import psycopg

    server = os.environ[ENV_POSTGRES]
    name = f"packshot_test_{secrets.token_hex(6)}"
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = server.rpartition("/")
    try:
        yield f"postgresql+psycopg://{base.split('://', 1)[1]}/{name}"
    finally:
        with psycopg.connect(server, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    receiver = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            if receiver.fail_first > 0:
                receiver.fail_first -= 1
                self.send_response(500)
                self.end_headers()
                return
            receiver.received.append(
                {
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                    "json": json.loads(body),
                }
            )
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()


@contextmanager
def studio_for(
    database_url: str, data_dir: Path, cache_dir: Path, **limits: Any
) -> Iterator[Studio]:
    # The webhook receiver is on loopback: allowed here as PACKSHOT_WEBHOOK_ALLOW_PRIVATE=1 does.
    service = ServiceSettings(
        data_dir=data_dir,
        database_url=database_url,
        cache_dir=cache_dir,
        webhook_allow_private=True,
    )
    values = {"max_file_mb": 3.0, "max_request_mb": 12.0, "max_photos": 30, "rate_limit": 100000}
    values.update(limits)
    settings = ApiSettings(service=service, **values)
    app = create_app(settings)
    db = store.Database(database_url)
    os.environ["PACKSHOT_WORKER_THREADS"] = "1"
    runner = LocalRunner(service)
    sender = WebhookSender(db, interval=0.1, allow_private=True)
    with webhook_receiver() as receiver, TestClient(app) as client:
        with db.session() as session:
            (ma, key_a), (mb, key_b) = (
                store.create_merchant(session, "Merchant A"),
                store.create_merchant(session, "Merchant B"),
            )
        a = Merchant(ma.id, key_a, ma.webhook_secret, client)
        b = Merchant(mb.id, key_b, mb.webhook_secret, client)
        runner.start()
        sender.start()
        try:
            yield Studio(settings, db, runner, client, a, b, receiver)
        finally:
            sender.stop()
            runner.stop()
            db.dispose()


def upload(merchant: Merchant, product_id: str, files: list[tuple[str, bytes]]) -> Any:
    return merchant.post(
        f"/v1/products/{product_id}/photos",
        files=[("files", (name, data, "application/octet-stream")) for name, data in files],
    )


def example_photos() -> list[tuple[str, bytes]]:
    """The sample product's photos, made smaller (intake's time is not what is tested here)."""
    from PIL import Image

    photos = []
    for path in sorted(EXAMPLES.glob("*.jpg")):
        with Image.open(path) as image:
            image.thumbnail((640, 640))
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="JPEG", quality=92)
        photos.append((path.name, buffer.getvalue()))
    return photos
