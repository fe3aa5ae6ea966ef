"""Webhook delivery: signed POSTs of a job's state, retried with back-off.

The store records each webhook as a row (`WebhookDelivery`); `WebhookSender` (a thread in the
`packshot serve` process) sends the due ones, several at once, each within a deadline.
Signing follows Standard Webhooks: headers `webhook-id`, `webhook-timestamp` and
`webhook-signature: v1,<base64 HMAC-SHA256>` of `"{id}.{timestamp}.{body}"`, keyed with the
merchant's secret (`whsec_<base64>`).

Webhook URLs are the merchant's, so they are checked against server-side request forgery:
only http(s), and only to public addresses unless the operator allows private ones
(`PACKSHOT_WEBHOOK_ALLOW_PRIVATE=1`, for local development). `check_url` runs when a job is
created; each delivery resolves the host once more, checks every address, and connects to the
address it checked (the URL's host stays in the Host header and the TLS SNI), so a name that
re-resolves to an internal address later (DNS rebinding) is refused. Redirects are never
followed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from packshot.errors import UsageError
from packshot.jobs import store
from packshot.jobs.models import Merchant, WebhookDelivery

log = logging.getLogger("packshot.webhooks")
TIMEOUT_S = 10.0  # for each connect, write and read
DEADLINE_S = 15.0  # for a whole delivery: an endpoint trickling its answer is cut off here
CONCURRENCY = 32  # deliveries in flight at once
PER_HOST = 4  # of which to one host
CLAIM_SCAN = 500  # due deliveries looked at per round (those to busy hosts are passed over)
CLAIM_MARGIN_S = 15.0  # a claim outlasts the deadline by this much
SCHEMES = ("http", "https")
ALLOW_PRIVATE_HINT = "PACKSHOT_WEBHOOK_ALLOW_PRIVATE=1"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port → the addresses it resolves to (socket.getaddrinfo by default; tests pass others).
Resolver = Callable[[str, int], list[str]]

NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class WebhookUrlError(UsageError):
    """A webhook URL packshot won't deliver to (HTTP 422 at create time)."""


class WebhookHostUnresolved(WebhookUrlError):
    """The webhook URL's host does not resolve (at delivery: maybe for now, so retried)."""


def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, in the resolver's order, without repeats."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise WebhookHostUnresolved(
            f"The webhook URL's host {host!r} does not resolve ({exc}): check the URL."
        ) from None
    addresses: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]  # an IPv6 scope id is not part of it
        if address not in addresses:
            addresses.append(address)
    return addresses


def address_problem(address: Address) -> str | None:
    """Why webhooks must not go to this address ("a loopback address", …); None if public."""
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv4 address inside an IPv6 one reaches that IPv4 address: judge that one.
        inner: ipaddress.IPv4Address | None = address.ipv4_mapped or address.sixtofour
        if inner is None and address.teredo is not None:
            inner = address.teredo[1]
        if inner is None and address in NAT64:
            inner = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if inner is not None:
            problem = address_problem(inner)
            if problem:
                return f"an IPv6 address embedding {inner}, {problem}"
    checks = (
        (address.is_unspecified, "the unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_reserved, "a reserved address"),
        (isinstance(address, ipaddress.IPv6Address) and address.is_site_local, "a private address"),
        (address.is_private, "a private address"),
        (not address.is_global, "not a public address"),
    )
    for flag, problem in checks:
        if flag:
            return problem
    return None


@dataclass(frozen=True)
class Target:
    """A checked webhook URL: the parsed URL and the addresses to connect to."""

    url: Any  # httpx.URL
    addresses: tuple[str, ...]


def _parse(url: str) -> Any:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise WebhookUrlError(f"The webhook URL is not a valid URL ({exc}).") from None
    if parsed.scheme not in SCHEMES:
        raise WebhookUrlError(
            f"The webhook URL must start with http:// or https://, not {parsed.scheme or '?'}:."
        )
    if not parsed.host:
        raise WebhookUrlError("The webhook URL has no host: send e.g. https://example.com/hook.")
    return parsed


def check_url(url: str, *, allow_private: bool, resolve: Resolver | None = None) -> Target:
    """The URL parsed and its host resolved, every address checked; else `WebhookUrlError`.

    With `allow_private` any address is allowed (local development), but the scheme still
    has to be http or https.
    """
    parsed = _parse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        addresses = [str(ipaddress.ip_address(parsed.host))]  # a literal address
        literal = True
    except ValueError:
        addresses = (resolve or resolve_host)(parsed.host, port)
        literal = False
    if not addresses:
        raise WebhookHostUnresolved(f"The webhook URL's host {parsed.host!r} has no address.")
    if not allow_private:
        for address in addresses:
            problem = address_problem(ipaddress.ip_address(address))
            if problem:
                named = parsed.host if literal else f"{parsed.host} ({address})"
                raise WebhookUrlError(
                    f"The webhook URL's host {named} is {problem}: packshot only delivers "
                    "webhooks to public addresses. Use a public URL (or, for local "
                    f"development, run the server with {ALLOW_PRIVATE_HINT})."
                )
    return Target(url=parsed, addresses=tuple(addresses))


async def deliver(
    client: Any,
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    allow_private: bool,
    resolve: Resolver | None = None,
) -> tuple[str | None, bool]:
    """POST `body` to `url` with the async `client`, connecting only to addresses `check_url`
    allowed; the answer's status and headers are read, never its body.

    Returns (error or None, whether to give up): a refused address is not retried. The caller
    bounds the whole delivery in time (`WebhookSender`'s deadline).
    """

    try:
        target = await asyncio.to_thread(
            check_url, url, allow_private=allow_private, resolve=resolve
        )
    except WebhookHostUnresolved as exc:
        return str(exc), False  # DNS may answer next time
    except WebhookUrlError as exc:
        return f"refused: {exc}", True
    host = target.url.host
    headers = {**headers, "host": target.url.netloc.decode("ascii"), "connection": "close"}
    extensions = {"sni_hostname": host} if target.url.scheme == "https" else {}
    error: str | None = None
    for address in target.addresses:
        request = client.build_request(
            "POST",
            target.url.copy_with(host=address),
            content=body,
            headers=headers,
            extensions=extensions,
        )
        try:
            # Streamed, and closed unread: an endpoint answering 150 MB costs nothing.
            response = await client.send(request, stream=True, follow_redirects=False)
            await response.aclose()
        except httpx.ConnectError:
            error = "ConnectError"
            continue  # the next address of the same host, as a browser would
        except Exception as exc:  # timeout, TLS failure, protocol error
            return type(exc).__name__, False
        if 200 <= response.status_code < 300:
            return None, False
        return f"HTTP {response.status_code}", False
    return error, False


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for this message."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, headers: dict[str, str], body: bytes, tolerance_s: int = 300) -> bool:
    """Check a received webhook the way a merchant's server should (used by the tests)."""
    msg_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not stamp.isdigit() or abs(time.time() - int(stamp)) > tolerance_s:
        return False
    expected = sign(secret, msg_id, int(stamp), body).encode()
    return any(
        hmac.compare_digest(expected, candidate.encode())
        for candidate in headers.get("webhook-signature", "").split()
    )


@dataclass(frozen=True)
class Outgoing:
    """A due delivery, claimed, as plain data: what one POST needs."""

    id: str
    url: str
    host: str
    body: bytes
    secret: str | None  # None: the merchant is gone


class WebhookSender:
    """Sends due webhooks until stopped: a thread running an event loop, on which deliveries
    run concurrently, at most `concurrency` at once and `per_host` to one host, each within
    `deadline_s` from its first byte to its last. A slow or silent endpoint holds only its own
    deliveries; the others go on. Every `interval` seconds it claims what is due (the claim
    holds a delivery for its deadline, so that no other sender takes it meanwhile).

    `allow_private` lets deliveries go to loopback and private addresses (local development,
    `PACKSHOT_WEBHOOK_ALLOW_PRIVATE=1`); `resolve` replaces DNS and `client` makes the HTTP
    client (tests).
    """

    def __init__(
        self,
        db: store.Database,
        interval: float = 0.25,
        *,
        allow_private: bool = False,
        resolve: Resolver | None = None,
        concurrency: int = CONCURRENCY,
        per_host: int = PER_HOST,
        deadline_s: float = DEADLINE_S,
        client: Callable[[], Any] | None = None,
    ):
        self.db = db
        self.interval = interval
        self.allow_private = allow_private
        self.resolve = resolve
        self.concurrency = concurrency
        self.per_host = per_host
        self.deadline_s = deadline_s
        self.make_client = client or make_client
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.in_flight: dict[str, asyncio.Task[None]] = {}  # delivery id → its task
        self.hosts: dict[str, int] = {}  # host → deliveries in flight to it

    def start(self) -> None:
        self.thread = threading.Thread(target=self._loop, name="webhooks", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=self.deadline_s + 2)

    def _loop(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        async with self.make_client() as client:
            while not self.stopping.is_set():
                try:
                    await self._start_due(client)
                except Exception:  # never let one bad row stop deliveries
                    log.exception("webhook delivery loop failed; retrying")
                await asyncio.sleep(self.interval)
            for task in self.in_flight.values():
                task.cancel()  # claimed: sent again once the claim lapses
            await asyncio.gather(*self.in_flight.values(), return_exceptions=True)

    def send_due(self) -> int:
        """Send what is due now and wait for it (tests): how many were sent or tried."""

        async def once() -> int:
            async with self.make_client() as client:
                started = await self._start_due(client)
                await asyncio.gather(*self.in_flight.values())
                return started

        return asyncio.run(once())

    async def _start_due(self, client: Any) -> int:
        """Claim the due deliveries that have a free slot and start them; how many."""
        free = self.concurrency - len(self.in_flight)
        if free <= 0:
            return 0
        busy = {host for host, count in self.hosts.items() if count >= self.per_host}
        claimed = await asyncio.to_thread(self._claim, free, busy, set(self.in_flight))
        for outgoing in claimed:
            self.hosts[outgoing.host] = self.hosts.get(outgoing.host, 0) + 1
            task = asyncio.get_running_loop().create_task(self._send(client, outgoing))
            self.in_flight[outgoing.id] = task
        return len(claimed)

    def _claim(self, free: int, busy: set[str], in_flight: set[str]) -> list[Outgoing]:
        """Up to `free` due deliveries, oldest first, none to a host in `busy` nor more than
        `per_host` to one host, each claimed for its deadline."""
        per_host = {host: self.per_host - self.hosts.get(host, 0) for host in self.hosts}
        taken: list[Outgoing] = []
        with self.db.session() as session:
            for delivery in store.due_webhooks(session, limit=CLAIM_SCAN):
                if len(taken) >= free:
                    break
                host = _host(delivery.url)
                if delivery.id in in_flight or host in busy or per_host.get(host, 1) <= 0:
                    continue
                if not store.claim_webhook(session, delivery.id, self.deadline_s + CLAIM_MARGIN_S):
                    continue  # another sender took it
                per_host[host] = per_host.get(host, self.per_host) - 1
                merchant = session.get(Merchant, delivery.merchant_id)
                body = json.dumps(delivery.payload, separators=(",", ":")).encode()
                secret = merchant.webhook_secret if merchant is not None else None
                taken.append(Outgoing(delivery.id, delivery.url, host, body, secret))
        return taken

    async def _send(self, client: Any, outgoing: Outgoing) -> None:
        try:
            if outgoing.secret is None:
                error, give_up = "merchant deleted", True
            else:
                stamp = int(time.time())
                headers = {
                    "content-type": "application/json",
                    "user-agent": "packshot-webhooks",
                    "webhook-id": outgoing.id,
                    "webhook-timestamp": str(stamp),
                    "webhook-signature": sign(outgoing.secret, outgoing.id, stamp, outgoing.body),
                }
                try:
                    error, give_up = await asyncio.wait_for(
                        deliver(
                            client,
                            outgoing.url,
                            outgoing.body,
                            headers,
                            allow_private=self.allow_private,
                            resolve=self.resolve,
                        ),
                        self.deadline_s,
                    )
                except TimeoutError:
                    error, give_up = f"no answer within {self.deadline_s:g} s", False
            # Only the host goes to the log: URLs may carry tokens.
            if error:
                log.info("webhook %s to %s failed: %s", outgoing.id, outgoing.host, error)
            await asyncio.to_thread(self._record, outgoing.id, error, give_up)
        except Exception:
            log.exception("webhook %s: recording the attempt failed", outgoing.id)
        finally:
            self.in_flight.pop(outgoing.id, None)
            self.hosts[outgoing.host] -= 1
            if not self.hosts[outgoing.host]:
                del self.hosts[outgoing.host]

    def _record(self, delivery_id: str, error: str | None, give_up: bool) -> None:
        with self.db.session() as session:
            delivery = session.get(WebhookDelivery, delivery_id)
            if delivery is not None:
                store.record_attempt(session, delivery, error, give_up=give_up)


def make_client() -> Any:
    """The HTTP client deliveries use: no redirects, no proxies from the environment (the
    address checked must be the one connected to), a fresh connection per delivery."""

    return httpx.AsyncClient(
        timeout=TIMEOUT_S,
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_keepalive_connections=0, max_connections=None),
    )


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"
