"""The application factory: routers, error mapping, the request observer, metrics, the test page.

app = create_app(Settings())        # the Service loads on a thread when the app starts
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool

from vton.api.errors import install_error_handlers
from vton.api.metrics import install_metrics
from vton.api.observe import RequestObserver
from vton.api.routes import cache, clothing, fitting, health, jobs, person
from vton.api.runtime import Runtime
from vton.config import Settings
from vton.service import LoadEngine
from vton.service.engine import load_engine

STATIC = Path(__file__).parent / "static"
DESCRIPTION = """Virtual try-on (IDM-VTON). Every `/api` route needs `Authorization: Bearer <JWT>`
(HS256, `sub` = user id); `vton token USER_ID` mints one. The test page is at `/`."""


def create_app(
    settings: Settings | None = None,
    load: LoadEngine = load_engine,
    on_load_failure: Callable[[], None] | None = None,
) -> FastAPI:
    """The app; `load` builds one device's engine (tests wrap the real one); `on_load_failure`
    is called if the service cannot start (`vton serve` then stops)."""
    runtime = Runtime(settings or Settings(), load, on_load_failure)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        runtime.start()
        await runtime.jobs.start()
        try:
            yield
        finally:
            await runtime.jobs.close()
            await run_in_threadpool(runtime.close)

    # /docs and /redoc with the swagger-ui and redoc bundles from the fastapi-offline package,
    # served from /static-offline-docs: the pages work without internet.
    app = FastAPIOffline(title="vton", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.runtime = runtime
    install_error_handlers(app)
    app.add_middleware(
        RequestObserver,
        max_body_bytes=runtime.settings.max_upload_bytes,
        body_timeout_s=runtime.settings.body_timeout_s,
        metrics=install_metrics(runtime),
    )
    for module in (health, fitting, jobs, person, clothing, cache):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.openapi = _with_batch_limit(app, runtime.settings.max_batch_items)  # type: ignore[method-assign]

    @app.get("/", include_in_schema=False)
    def test_page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    return app


def _with_batch_limit(app: FastAPI, max_items: int) -> Callable[[], dict[str, Any]]:
    """app.openapi, with the batch size this server enforces (a setting) as maxItems."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schemas = generate()["components"]["schemas"]
            for name in ("BatchTryOnRequest", "BatchJobRequest"):
                schemas[name]["properties"]["clothingIds"]["maxItems"] = max_items
        return app.openapi_schema  # type: ignore[return-value]

    return openapi
