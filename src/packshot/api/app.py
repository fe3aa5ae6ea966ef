"""The studio's FastAPI app: `create_app(settings)`; `packshot serve` runs it with uvicorn."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles

from packshot import __version__
from packshot.api import errors
from packshot.api.deps import RateLimiter
from packshot.api.routes import jobs, products, session
from packshot.api.settings import ApiSettings
from packshot.jobs import store

WEB_DIR = Path(__file__).parent / "web"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
        "script-src 'self'; font-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'"
    ),
}


def create_app(settings: ApiSettings, *, migrate: bool = True) -> FastAPI:
    """The app, its database (migrated to the newest schema unless told not to) and limits."""
    if migrate:
        store.migrate(settings.service.database_url)
    db = store.Database(settings.service.database_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        db.dispose()

    app = FastAPI(
        title="packshot studio",
        version=__version__,
        description=(
            "Product photography from a handful of photos: upload, train, shoot. "
            "Authenticate with `Authorization: Bearer <API key>`; jobs are asynchronous "
            "(poll, follow /events, or pass a webhook)."
        ),
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.limiter = RateLimiter(settings.rate_limit)
    errors.install(app)

    @app.middleware("http")
    async def _headers(request: Request, call_next):
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.url.path.startswith("/v1/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.get("/v1/health", tags=["health"])
    def health() -> dict[str, str]:
        """Liveness, without authentication."""
        return {"status": "ok", "version": __version__}

    app.include_router(session.router)
    app.include_router(products.router)
    app.include_router(jobs.router)
    if (WEB_DIR / "index.html").is_file():
        app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")
    return app
