"""Request bodies bounded before anything reads them: `BodyLimit`, an ASGI middleware.

Every route has a body limit (`route_limits`): small for the JSON routes, the upload route its
own (`PACKSHOT_MAX_REQUEST_MB`; `packshot.api.uploads` also bounds each file). A request that
declares more in `Content-Length` is answered 413 before the app sees it; one that sends more
than it declared, or streams without a length, is cut off (413) as soon as its bytes go over,
so neither parsing nor authentication ever reads a body past its limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from packshot.api.errors import error_response

UPLOAD_ROUTE = re.compile(r"^/v1/products/[^/]+/photos/?$")


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a body goes over its route's limit while it is read.

    An HTTPException, so that every reader passes it on as it is (FastAPI's body parsing turns
    other exceptions into 400) and the app's handler answers 413 with the usual error body."""

    def __init__(self, limit: int):
        super().__init__(413, detail=too_large_message(limit))


def too_large_message(limit: int) -> str:
    size = f"{limit / 2**20:g} MiB" if limit >= 2**20 else f"{limit / 2**10:g} KiB"
    return f"The request body is over this route's limit of {size}: send less."


@dataclass(frozen=True)
class RouteLimits:
    """The body limits: `upload` bytes for `POST /v1/products/{id}/photos`, `json` for every
    other route (the biggest JSON a create call takes is a few tens of KB)."""

    json: int
    upload: int

    def for_request(self, method: str, path: str) -> int:
        if method == "POST" and UPLOAD_ROUTE.match(path):
            return self.upload
        return self.json


class BodyLimit:
    """Refuses a request body over its route's limit (413), by `Content-Length` and by counting
    the bytes that arrive."""

    def __init__(self, app: ASGIApp, limits: RouteLimits):
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.for_request(scope["method"], scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            response = error_response(413, "too_large", too_large_message(limit))
            response.headers["Connection"] = "close"  # the body it declared is not read
            await response(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None
