"""The studio's FastAPI app: `create_app(settings)`; `packshot serve` runs it with uvicorn."""

from __future__ import annotations

import gc
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from packshot import __version__
from packshot.api import errors, judging
from packshot.api.deps import RateLimiter, close_intake_pool, intake_pool
from packshot.api.headers import SecurityHeaders, docs_page
from packshot.api.limits import BodyLimit, RouteLimits
from packshot.api.routes import catalogue, jobs, products, session
from packshot.api.settings import ApiSettings
from packshot.api.streams import EventHub
from packshot.jobs import store
from packshot.jobs.settings import ServiceSettings

WEB_DIR = Path(__file__).parent / "web"


def create_app(settings: ApiSettings, *, migrate: bool = True) -> FastAPI:
    """The app, its database (migrated to the newest schema unless told not to) and limits."""
    if migrate:
        store.migrate(settings.service.database_url)
    db = store.Database(settings.service.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        intake_pool(app).submit(judging.warm)  # the first upload finds intake loaded
        db.open_connections()  # and the first burst of requests, its connections open
        app.state.streams.start()
        # The app's ~90,000 objects from start-up live as long as the process: leave them out
        # of the collector's passes, each of which otherwise walked them all (60-70 ms on a
        # 2-core machine, landing on whichever request triggered it).
        gc.collect()
        gc.freeze()
        yield
        gc.unfreeze()  # several apps in one process (tests): their garbage is collectable again
        await app.state.streams.stop()
        close_intake_pool(app, wait=True)
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
        docs_url=None,  # below, with its own content security policy
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.limiter = RateLimiter(settings.rate_limit)
    app.state.streams = EventHub(db)
    errors.install(app)

    # Outermost last: the headers go on every answer, the body limit's 413s included.
    app.add_middleware(
        BodyLimit,
        limits=RouteLimits(json=settings.max_json_bytes, upload=settings.max_request_bytes),
    )
    app.add_middleware(SecurityHeaders)

    docs_html, docs_policy = docs_page(app.openapi_url or "/openapi.json", app.title)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        """The API docs (Swagger UI): its scripts come from a CDN, which only it may load."""
        return HTMLResponse(docs_html, headers={"Content-Security-Policy": docs_policy})

    @app.get("/v1/health", tags=["health"])
    def health() -> dict[str, str]:
        """Liveness, without authentication."""
        return {"status": "ok", "version": __version__}

    app.include_router(session.router)
    app.include_router(products.router)
    app.include_router(jobs.router)
    app.include_router(catalogue.router)
    if (WEB_DIR / "index.html").is_file():
        app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")
    return app


def app_from_env() -> FastAPI:
    """The app of one of `packshot serve --web-workers N`'s web processes: its settings from
    the environment `serve` set (the database is migrated already)."""
    service = ServiceSettings.from_env()
    return create_app(ApiSettings.from_env(service), migrate=False)
