"""Webhook delivery: signed POSTs of a job's state, retried with back-off.

The store records each webhook as a row (`WebhookDelivery`); `WebhookSender` (a thread in the
`packshot serve` process) sends the due ones. Signing follows Standard Webhooks: headers
`webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256>` of
`"{id}.{timestamp}.{body}"`, keyed with the merchant's secret (`whsec_<base64>`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
from typing import Any

from packshot.jobs import store
from packshot.jobs.models import Merchant

log = logging.getLogger("packshot.webhooks")
TIMEOUT_S = 10.0


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


class WebhookSender:
    """Sends due webhooks every `interval` seconds until stopped."""

    def __init__(self, db: store.Database, interval: float = 0.25):
        self.db = db
        self.interval = interval
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._loop, name="webhooks", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=TIMEOUT_S + 2)

    def _loop(self) -> None:
        import httpx

        with httpx.Client(timeout=TIMEOUT_S, follow_redirects=False) as client:
            while not self.stopping.is_set():
                try:
                    sent = self.send_due(client)
                except Exception:  # never let one bad row stop deliveries
                    log.exception("webhook delivery loop failed; retrying")
                    sent = 0
                if not sent:
                    self.stopping.wait(self.interval)

    def send_due(self, client: Any) -> int:
        with self.db.session() as session:
            due = store.due_webhooks(session)
            for delivery in due:
                merchant = session.get(Merchant, delivery.merchant_id)
                if merchant is None:
                    store.record_attempt(session, delivery, "merchant deleted")
                    continue
                body = json.dumps(delivery.payload, separators=(",", ":")).encode()
                stamp = int(time.time())
                headers = {
                    "content-type": "application/json",
                    "user-agent": "packshot-webhooks",
                    "webhook-id": delivery.id,
                    "webhook-timestamp": str(stamp),
                    "webhook-signature": sign(merchant.webhook_secret, delivery.id, stamp, body),
                }
                error = None
                try:
                    response = client.post(delivery.url, content=body, headers=headers)
                    if not 200 <= response.status_code < 300:
                        error = f"HTTP {response.status_code}"
                except Exception as exc:  # connection refused, timeout, bad URL
                    error = type(exc).__name__
                # Only the host goes to the log: URLs may carry tokens.
                if error:
                    log.info("webhook %s to %s failed: %s", delivery.id, _host(delivery.url), error)
                store.record_attempt(session, delivery, error)
            return len(due)


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or "?"
