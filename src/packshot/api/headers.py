"""The security headers of every response, errors and the API docs page included.

`SecurityHeaders` (an ASGI middleware) adds them to every response the app sends; the 500
handler (`packshot.api.errors`) adds them to the one response sent outside it. The API docs
page (`docs_page`: Swagger UI from its CDN, with one inline script) carries a content security
policy of its own that allows exactly those; every other page keeps the strict one.
"""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi.openapi.docs import get_swagger_ui_html
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
    "script-src 'self'; font-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": CSP,
}
# Over TLS only: browsers ignore it over plain HTTP, and a loopback studio has no TLS.
HSTS = "max-age=31536000; includeSubDomains"


def docs_page(openapi_url: str, title: str) -> tuple[str, str]:
    """The API docs page (FastAPI's Swagger UI) and its content security policy: the hosts
    its scripts, styles and icon come from, and the hash of its inline script (no
    'unsafe-inline')."""
    html = get_swagger_ui_html(openapi_url=openapi_url, title=title).body.decode()

    def origins(pattern: str) -> str:
        return " ".join(sorted(set(re.findall(pattern, html))))

    scripts = origins(r'<script src="(https://[^/"]+)/')
    styles = origins(r'<link[^>]*rel="stylesheet"[^>]*href="(https://[^/"]+)/')
    icons = origins(r'<link[^>]*rel="shortcut icon"[^>]*href="(https://[^/"]+)/')
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    )
    policy = (
        f"default-src 'self'; img-src 'self' data: {icons} {styles}; style-src 'self' {styles}; "
        f"script-src 'self' {scripts} {hashes}; font-src 'self' {styles}; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )
    return html, policy


def security_headers(scope: Scope) -> dict[str, str]:
    """The headers a response to `scope` carries."""
    headers = dict(SECURITY_HEADERS)
    if scope.get("scheme") == "https":
        headers["Strict-Transport-Security"] = HSTS
    if str(scope.get("path", "")).startswith("/v1/"):
        headers["Cache-Control"] = "no-store"
    return headers


class SecurityHeaders:
    """Adds `security_headers` to every response (a header the route set is kept).

    A plain ASGI middleware: Starlette's `@app.middleware("http")` runs each request in a
    task of its own with a stream in between, a cost every request pays under load.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = security_headers(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
