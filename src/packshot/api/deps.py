"""Dependencies of the routes: the database session, the settings, and who is asking.

`CurrentMerchant` is the merchant of the API key (`Authorization: Bearer <key>`) or of the
session cookie; with the cookie, every POST/PUT/PATCH/DELETE must also carry the session's
CSRF token in `X-CSRF-Token`. Every request of a merchant counts against its rate limit.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from packshot.api.errors import ApiError
from packshot.api.settings import ApiSettings
from packshot.jobs import store
from packshot.jobs.models import Merchant, WebSession

SESSION_COOKIE = "packshot_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def get_settings(request: Request) -> ApiSettings:
    return request.app.state.settings


def get_db(request: Request) -> Iterator[Session]:
    with request.app.state.db.session() as session:
        yield session


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_db)]


class RateLimiter:
    """A token bucket per key: `rate` requests a minute, bursts of up to `rate`."""

    def __init__(self, rate_per_minute: int):
        self.rate = rate_per_minute / 60.0
        self.capacity = float(rate_per_minute)
        self.buckets: dict[str, tuple[float, float]] = {}
        self.lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 when allowed, else the seconds to wait."""
        now = time.monotonic()
        with self.lock:
            tokens, last = self.buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self.buckets[key] = (tokens - 1, now)
                return 0.0
            self.buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate


def limit(request: Request, key: str) -> None:
    wait = request.app.state.limiter.take(key)
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


def current_merchant(request: Request, session: SessionDep) -> Merchant:
    key = bearer_key(request)
    if key is not None:
        merchant = store.merchant_for_key(session, key)
        if merchant is None:
            client = request.client.host if request.client else "unknown"
            limit(request, f"bad-key:{client}")  # guessing keys is rate limited per address
            raise ApiError(401, "This API key is not valid (or was revoked).")
        limit(request, merchant.id)
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
    limit(request, merchant.id)
    request.state.csrf_token = web.csrf_token
    return merchant


CurrentMerchant = Annotated[Merchant, Depends(current_merchant)]
