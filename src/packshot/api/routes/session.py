"""Signing in on the page: a session cookie (HttpOnly) and its CSRF token."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request, Response

from packshot.api.deps import (
    SESSION_COOKIE,
    CurrentMerchant,
    SessionDep,
    SettingsDep,
    limit,
    session_for_cookie,
)
from packshot.api.errors import ApiError
from packshot.api.schemas import ErrorPublic, MerchantPublic, SessionCreate, SessionPublic
from packshot.jobs import store
from packshot.jobs.models import Merchant, WebSession

router = APIRouter(prefix="/v1/session", tags=["session"])
ERRORS = {401: {"model": ErrorPublic}, 429: {"model": ErrorPublic}}


def _public(merchant: Merchant, csrf: str | None) -> SessionPublic:
    return SessionPublic(
        merchant=MerchantPublic(id=merchant.id, name=merchant.name),
        csrf_token=csrf,
        webhook_secret=merchant.webhook_secret,
    )


@router.post("", response_model=SessionPublic, responses=ERRORS)
def sign_in(
    body: SessionCreate,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
) -> SessionPublic:
    """Sign in with an API key: sets the HttpOnly session cookie, returns the CSRF token."""
    client = request.client.host if request.client else "unknown"
    limit(request, session, f"sign-in:{client}")  # key guessing is rate limited per address too
    merchant = store.merchant_for_key(session, body.key.strip())
    if merchant is None:
        raise ApiError(401, "This API key is not valid (or was revoked).")
    store.purge_expired_sessions(session)  # expired sign-ins go as new ones come
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires = datetime.now(UTC) + timedelta(hours=settings.session_hours)
    session.add(
        WebSession(
            id=hashlib.sha256(token.encode()).hexdigest(),
            merchant_id=merchant.id,
            csrf_token=csrf,
            expires_at=expires,
        )
    )
    session.commit()
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(settings.session_hours * 3600),
        httponly=True,
        secure=settings.secure_cookies,
        samesite="strict",
        path="/",
    )
    return _public(merchant, csrf)


@router.get("", response_model=SessionPublic, responses=ERRORS)
def who_am_i(request: Request, merchant: CurrentMerchant) -> SessionPublic:
    """The signed-in merchant (cookie or key) and, with the cookie, its CSRF token."""
    return _public(merchant, request.state.csrf_token)


@router.delete("", status_code=204, responses={**ERRORS, 403: {"model": ErrorPublic}})
def sign_out(request: Request, session: SessionDep, merchant: CurrentMerchant) -> Response:
    """Sign out: the session ends and its cookie is cleared."""
    web = session_for_cookie(session, request.cookies.get(SESSION_COOKIE))
    if web is not None:
        session.delete(web)
        session.commit()
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
