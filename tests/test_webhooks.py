"""Webhooks against server-side request forgery: the URL checked when a job is created, and
again at each delivery against the address actually connected to; the setting for local
development; no redirects; the Host header and TLS SNI kept when connecting to the address."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api_support import webhook_receiver
from packshot.errors import UsageError
from packshot.jobs import store
from packshot.jobs.kinds import TrainingParams
from packshot.jobs.models import Product, WebhookDelivery
from packshot.jobs.settings import ENV_WEBHOOK_ALLOW_PRIVATE, ServiceSettings
from packshot.jobs.webhooks import (
    WebhookHostUnresolved,
    WebhookSender,
    WebhookUrlError,
    check_url,
    deliver,
    verify,
)

# Each address class, as a literal in a URL: (host as written in the URL, the class named).
REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.1.2.3", "loopback"),
    ("[::1]", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("[fc00::1]", "private"),
    ("[fd12:3456::1]", "private"),
    ("[fec0::1]", "private"),  # IPv6 site-local (deprecated, still not public)
    ("169.254.169.254", "link-local"),  # the cloud metadata service
    ("[fe80::1]", "link-local"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("[ff02::1]", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),  # broadcast
    ("0.0.0.0", "unspecified"),
    ("[::]", "unspecified"),
    ("100.64.0.1", "not a public address"),  # carrier-grade NAT
    ("203.0.113.7", "private"),  # documentation range
    # IPv4 inside IPv6: judged by the IPv4 address it reaches.
    ("[::ffff:127.0.0.1]", "embedding 127.0.0.1, a loopback address"),
    ("[::ffff:10.0.0.1]", "embedding 10.0.0.1, a private address"),
    ("[::ffff:169.254.169.254]", "embedding 169.254.169.254, a link-local"),
    ("[::ffff:0.0.0.0]", "unspecified"),
    ("[2002:7f00:1::]", "embedding 127.0.0.1, a loopback address"),  # 6to4
    ("[64:ff9b::a9fe:a9fe]", "embedding 169.254.169.254, a link-local"),  # NAT64
    # Other spellings of loopback that resolvers accept.
    ("2130706433", "loopback"),
    ("0x7f.1", "loopback"),
    ("localhost", "loopback"),  # a name: resolved (through /etc/hosts) and checked
]


@pytest.mark.parametrize(("host", "problem"), REFUSED)
def test_non_public_addresses_are_refused(host: str, problem: str) -> None:
    for url in (f"http://{host}/hook", f"https://{host}:8443/hook?token=x"):
        with pytest.raises(WebhookUrlError) as refused:
            check_url(url, allow_private=False)
        message = str(refused.value)
        assert problem in message, message
        assert "only delivers webhooks to public addresses" in message
        assert ENV_WEBHOOK_ALLOW_PRIVATE in message
        assert "token" not in message  # the path and query never show


@pytest.mark.parametrize(
    "url", ["http://8.8.8.8/hook", "https://1.1.1.1:8443/x", "https://[2606:4700:4700::1111]/x"]
)
def test_public_addresses_are_allowed(url: str) -> None:
    target = check_url(url, allow_private=False)
    assert target.addresses == (target.url.host,)


def test_names_are_resolved_and_every_address_checked() -> None:
    def resolver(answers: list[str]):
        return lambda host, port: answers

    public = check_url(
        "https://hooks.example.test/x", allow_private=False, resolve=resolver(["8.8.8.8"])
    )
    assert public.addresses == ("8.8.8.8",) and public.url.host == "hooks.example.test"
    for answers, problem in (
        (["10.0.0.7"], "hooks.example.test (10.0.0.7) is a private address"),
        (["8.8.8.8", "127.0.0.1"], "hooks.example.test (127.0.0.1) is a loopback address"),
        (
            ["2606:4700:4700::1111", "::ffff:192.168.0.1"],
            "embedding 192.168.0.1, a private address",
        ),
    ):
        with pytest.raises(WebhookUrlError, match=problem.replace("(", r"\(").replace(")", r"\)")):
            check_url(
                "https://hooks.example.test/x", allow_private=False, resolve=resolver(answers)
            )
    with pytest.raises(WebhookHostUnresolved, match="does not resolve"):
        check_url("https://no-such-host.invalid/x", allow_private=False)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://8.8.8.8/x", "must start with http:// or https://"),
        ("file:///etc/passwd", "must start with http:// or https://"),
        ("gopher://8.8.8.8:70/x", "must start with http:// or https://"),
        ("javascript:alert(1)", "must start with http:// or https://"),
        ("http:///hook", "has no host"),
    ],
)
def test_only_http_and_https(url: str, problem: str) -> None:
    for allow_private in (False, True):
        with pytest.raises(WebhookUrlError, match=problem):
            check_url(url, allow_private=allow_private)


def test_the_setting_allows_private_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_url("http://127.0.0.1:9/hook", allow_private=True).addresses == ("127.0.0.1",)
    mapped = check_url("http://[::ffff:10.0.0.1]/", allow_private=True).addresses
    assert [ipaddress.ip_address(a) for a in mapped] == [ipaddress.ip_address("::ffff:10.0.0.1")]
    monkeypatch.delenv(ENV_WEBHOOK_ALLOW_PRIVATE, raising=False)
    assert ServiceSettings.from_env(Path("d")).webhook_allow_private is False
    for value, expected in (("1", True), ("0", False), ("", False)):
        monkeypatch.setenv(ENV_WEBHOOK_ALLOW_PRIVATE, value)
        assert ServiceSettings.from_env(Path("d")).webhook_allow_private is expected
    monkeypatch.setenv(ENV_WEBHOOK_ALLOW_PRIVATE, "yes please")
    with pytest.raises(UsageError, match=f"{ENV_WEBHOOK_ALLOW_PRIVATE} must be 1"):
        ServiceSettings.from_env(Path("d"))


# -- at create time, through the API ------------------------------------------------------------

# A valid body for each create call that takes a `webhook` (its other fields as small as can be).
CREATE_BODIES = {
    "/v1/products/{product_id}/trainings": {"model": "tiny"},
    "/v1/products/{product_id}/shoots": {"descriptions": ["{product} on a table"]},
    "/v1/products/{product_id}/placements": {"photo_id": "pho_x", "descriptions": ["on a table"]},
    "/v1/catalogue-shoots": {
        "product_ids": ["prd_x"],
        "shots": [{"slot": "main", "preset": "studio"}],
    },
}


@contextmanager
def api(tmp_path: Path, allow_private: bool) -> Iterator[tuple[TestClient, dict[str, str], str]]:
    from packshot.api.app import create_app
    from packshot.api.settings import ApiSettings

    url = f"sqlite:///{tmp_path / 'packshot.db'}"
    service = ServiceSettings(
        data_dir=tmp_path, database_url=url, webhook_allow_private=allow_private
    )
    app = create_app(ApiSettings(service=service))
    with TestClient(app) as client:
        with app.state.db.session() as session:
            _merchant, key = store.create_merchant(session, "Acme")
        headers = {"Authorization": f"Bearer {key}"}
        product = client.post(
            "/v1/products", json={"name": "bag", "class_name": "bag"}, headers=headers
        )
        yield client, headers, product.json()["id"]


def test_create_calls_refuse_private_webhooks(tmp_path: Path) -> None:
    with api(tmp_path, allow_private=False) as (client, headers, product_id):
        schema = client.get("/openapi.json").json()
        takes_webhook = set()
        for path, operations in schema["paths"].items():
            post = operations.get("post", {})
            content = post.get("requestBody", {}).get("content", {})
            for media in content.values():
                ref = media["schema"].get("$ref", "")
                body = schema["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {})
                if "webhook" in body.get("properties", {}):
                    takes_webhook.add(path)
        assert takes_webhook == set(CREATE_BODIES), (
            "a create call takes `webhook`: call check_webhook() in it and add its body here"
        )
        for path, body in CREATE_BODIES.items():
            url = path.format(product_id=product_id)
            for webhook, problem in (
                ("http://127.0.0.1:8000/hook", "loopback"),
                ("http://169.254.169.254/latest/meta-data", "link-local"),
                ("http://[::ffff:10.0.0.1]/hook", "embedding 10.0.0.1, a private address"),
                ("http://localhost/hook", "loopback"),
                ("https://[fd00::1]/hook", "private"),
            ):
                refused = client.post(url, json={**body, "webhook": webhook}, headers=headers)
                assert refused.status_code == 422, (path, webhook, refused.text)
                error = refused.json()["error"]
                assert error["code"] == "invalid_webhook"
                assert error["message"].startswith("`webhook`: The webhook URL's host")
                assert problem in error["message"]
            ftp = client.post(url, json={**body, "webhook": "ftp://8.8.8.8/"}, headers=headers)
            assert ftp.status_code == 422 and "http://" in ftp.json()["error"]["message"]
            # A public address passes the check; the call then stops at what comes next
            # (no photos yet, no trained model: 409, or no such photo: 404): nothing queued.
            public = client.post(
                url, json={**body, "webhook": "https://8.8.8.8/h"}, headers=headers
            )
            assert public.status_code in (404, 409), public.text


def test_create_calls_take_private_webhooks_when_allowed(tmp_path: Path) -> None:
    with api(tmp_path, allow_private=True) as (client, headers, product_id):
        for path, body in CREATE_BODIES.items():
            url = path.format(product_id=product_id)
            passed = client.post(
                url, json={**body, "webhook": "http://127.0.0.1:9/hook"}, headers=headers
            )
            assert passed.status_code in (404, 409), passed.text  # past the webhook check
            ftp = client.post(url, json={**body, "webhook": "ftp://127.0.0.1/"}, headers=headers)
            assert ftp.status_code == 422


# -- at delivery ---------------------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Iterator[store.Database]:
    url = f"sqlite:///{tmp_path / 'packshot.db'}"
    store.migrate(url)
    database = store.Database(url)
    yield database
    database.dispose()


def queue_webhook(db: store.Database, url: str) -> tuple[str, str]:
    """A job with this webhook, started: one `job.started` delivery is due. (merchant secret,
    delivery id)"""
    with db.session() as session:
        merchant, _ = store.create_merchant(session, "Acme")
        session.add(Product(id="prd_1", merchant_id=merchant.id, name="bag", class_name="bag"))
        session.commit()
        store.enqueue(
            session,
            merchant_id=merchant.id,
            product_id="prd_1",
            kind="training",
            params=TrainingParams(photos_dir="/photos", model="tiny", class_word="bag"),
            request={},
            webhook=url,
            prefix="trn",
        )
        store.claim_next(session, "w1")
        delivery = session.scalars(select(WebhookDelivery)).one()
        return merchant.webhook_secret, delivery.id


def delivery_row(db: store.Database) -> WebhookDelivery:
    with db.session() as session:
        return session.scalars(select(WebhookDelivery)).one()


def test_delivery_to_a_loopback_receiver_works_when_allowed(db: store.Database) -> None:
    with webhook_receiver() as receiver:
        secret, _ = queue_webhook(db, receiver.url)
        assert WebhookSender(db, allow_private=True).send_due() == 1
        (received,) = receiver.received
        assert received["json"]["type"] == "job.started"
        assert verify(secret, received["headers"], received["body"])
        assert delivery_row(db).status == "sent"


def test_delivery_to_a_loopback_receiver_is_refused_by_default(db: store.Database) -> None:
    """A URL stored before the check existed (or a database edited by hand) is refused at
    delivery, and not retried."""
    with webhook_receiver() as receiver:
        queue_webhook(db, receiver.url)
        assert WebhookSender(db).send_due() == 1
        assert receiver.received == []
        row = delivery_row(db)
        assert row.status == "failed" and row.attempts == 1
        assert row.last_error.startswith("refused: The webhook URL's host 127.0.0.1 is a loopback")


def test_delivery_checks_the_address_again_dns_rebinding(db: store.Database) -> None:
    """The name resolved to a public address when the job was created; by delivery time it
    resolves to loopback, where a receiver listens: nothing is sent to it."""
    answers = iter([["8.8.8.8"], ["127.0.0.1"]])

    def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    with webhook_receiver() as receiver:
        port = httpx.URL(receiver.url).port
        url = f"http://hooks.example.test:{port}/hook"
        check_url(url, allow_private=False, resolve=rebinding)  # at create: public, accepted
        queue_webhook(db, url)
        assert WebhookSender(db, resolve=rebinding).send_due() == 1
        assert receiver.received == []
        row = delivery_row(db)
        assert row.status == "failed"
        assert "hooks.example.test (127.0.0.1) is a loopback address" in row.last_error


def test_delivery_connects_to_the_checked_address_and_keeps_the_host(db: store.Database) -> None:
    """The host is resolved once, by packshot; the connection goes to that address (the name
    exists nowhere else, and a second lookup would answer an unroutable address) and the
    Host header still names the URL's host."""
    calls: list[str] = []

    def once(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"] if len(calls) == 1 else ["10.255.255.1"]

    with webhook_receiver() as receiver:
        port = httpx.URL(receiver.url).port
        queue_webhook(db, f"http://hooks.example.test:{port}/hook?token=abc")
        assert WebhookSender(db, allow_private=True, resolve=once).send_due() == 1
        assert calls == ["hooks.example.test"]
        (received,) = receiver.received
        assert received["headers"]["host"] == f"hooks.example.test:{port}"
        assert delivery_row(db).status == "sent"


@contextmanager
def server(handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_redirects_are_not_followed(db: store.Database) -> None:
    hits: list[str] = []

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            hits.append(self.path)
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(307)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    async def deliver_following(port: int) -> tuple[str | None, bool]:
        # Even a client that follows redirects by default doesn't, for webhooks.
        async with httpx.AsyncClient(follow_redirects=True) as following:
            return await deliver(
                following, f"http://127.0.0.1:{port}/again", b"{}", {}, allow_private=True
            )

    with server(Redirect) as port:
        queue_webhook(db, f"http://127.0.0.1:{port}/hook")
        WebhookSender(db, allow_private=True).send_due()
        error, give_up = asyncio.run(deliver_following(port))
    assert hits == ["/hook", "/again"]
    assert (error, give_up) == ("HTTP 307", False)
    row = delivery_row(db)
    assert row.status == "pending" and row.last_error == "HTTP 307"  # retried later


def test_https_delivery_keeps_the_sni_and_checks_the_certificate(
    db: store.Database, tmp_path: Path
) -> None:
    """TLS to the checked address: SNI and the certificate check use the URL's host name."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
            "-subj", "/CN=hooks.example.test", "-addext", "subjectAltName=DNS:hooks.example.test",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    names: list[str | None] = []
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    tls.sni_callback = lambda _sock, name, _ctx: names.append(name)
    received: list[dict[str, Any]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            received.append({"host": self.headers["host"], "json": json.loads(body)})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    def to_loopback(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    trust = ssl.create_default_context(cafile=str(cert))

    def client() -> httpx.AsyncClient:
        return httpx.AsyncClient(verify=trust, trust_env=False)

    async def deliver_as_other(port: int) -> tuple[str | None, bool]:
        async with client() as http:
            return await deliver(
                http,
                f"https://other.example.test:{port}/hook",
                b"{}",
                {},
                allow_private=True,
                resolve=to_loopback,
            )

    with server(Receiver, tls) as port:
        queue_webhook(db, f"https://hooks.example.test:{port}/hook")
        WebhookSender(db, allow_private=True, resolve=to_loopback, client=client).send_due()
        # The same server under another name: the certificate doesn't match, nothing is sent.
        error, _ = asyncio.run(deliver_as_other(port))
    assert delivery_row(db).status == "sent"
    assert (
        received == [{"host": f"hooks.example.test:{port}", "json": received[0]["json"]}]
        and received[0]["json"]["type"] == "job.started"
    )
    assert names[0] == "hooks.example.test" and names[-1] == "other.example.test"
    assert error == "ConnectError"  # certificate verify failed: a TLS error on connect


# -- one slow endpoint holds only its own deliveries ---------------------------------------------


def test_a_slow_endpoint_does_not_stall_the_others(db: store.Database) -> None:
    """An endpoint trickling its answer a byte at a time is cut off at the delivery's deadline
    (a timeout per read never fires); one answering 150 MB is not read; meanwhile the other
    endpoints get theirs at once, and the slow host gets at most `per_host` at a time."""

    class Trickle(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("content-length", 0)))
            try:
                self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                for _ in range(120):  # a byte every 0.25 s: each read is quick
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.25)
            except OSError:
                pass  # the sender hung up

        def log_message(self, *args: Any) -> None:
            pass

    class Huge(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(200)
            self.send_header("Content-Length", str(150 * 1024 * 1024))
            self.end_headers()
            try:
                for _ in range(150):
                    self.wfile.write(b"\0" * 1024 * 1024)
                    time.sleep(0.05)
            except OSError:
                pass

        def log_message(self, *args: Any) -> None:
            pass

    def to_loopback(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    with (
        server(Trickle) as slow_port,
        server(Huge) as huge_port,
        webhook_receiver() as fast,
        db.session() as session,
    ):
        merchant, _ = store.create_merchant(session, "Acme")
        session.add(Product(id="prd_1", merchant_id=merchant.id, name="bag", class_name="bag"))
        session.commit()
        urls = [f"http://slow.example.test:{slow_port}/hook"] * 3
        urls += [f"http://huge.example.test:{huge_port}/hook"]
        urls += [fast.url.replace("127.0.0.1", "fast.example.test")] * 3
        for url in urls:  # each job started: one job.started webhook due, in this order
            store.enqueue(
                session,
                merchant_id=merchant.id,
                product_id="prd_1",
                kind="training",
                params=TrainingParams(photos_dir="/photos", model="tiny", class_word="bag"),
                request={},
                webhook=url,
                prefix="trn",
            )
            store.claim_next(session, "w1")
        sender = WebhookSender(
            db, interval=0.05, allow_private=True, resolve=to_loopback, deadline_s=2, per_host=2
        )
        started = time.monotonic()
        sender.start()
        try:
            while len(fast.received) < 3 and time.monotonic() - started < 10:
                time.sleep(0.02)
            fast_s = time.monotonic() - started
            assert len(fast.received) == 3 and fast_s < 1.5, fast_s  # not behind the slow ones
            time.sleep(max(0.0, started + 2.6 - time.monotonic()))
            session.expire_all()
            by_host: dict[str, list[WebhookDelivery]] = {}
            for row in session.scalars(select(WebhookDelivery)):
                by_host.setdefault(httpx.URL(row.url).host, []).append(row)
        finally:
            sender.stop()
    assert [r.status for r in by_host["huge.example.test"]] == ["sent"]  # body never read
    assert [r.status for r in by_host["fast.example.test"]] == ["sent"] * 3
    slow = by_host["slow.example.test"]
    cut = [r for r in slow if r.last_error == "no answer within 2 s"]
    assert len(cut) == 2  # two at a time to the slow host: the third waited for a slot
    assert all(r.status == "pending" and r.attempts == 1 for r in cut)  # retried later
