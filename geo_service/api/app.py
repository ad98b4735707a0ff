"""The service's composition root: ``create_app(settings)`` assembles routes and state.

Nothing is built at import, so tests make an app with their own settings. The current build is
looked up on every request (one ``readlink``), so a new build is served as soon as its pointer
is swapped, without a restart; each response names the build it came from.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from geo_service import __version__
from geo_service.api.collections import router as collections_router
from geo_service.api.deps import BuildCache, BuildDep
from geo_service.errors import NoBuildError
from geo_service.settings import ApiSettings


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """Build the FastAPI application for one build directory."""
    settings = settings or ApiSettings()
    app = FastAPI(
        title="diamond-risk-map",
        version=__version__,
        description="Risk layers for communities affected by diamond mining.",
    )
    app.state.settings = settings
    app.state.builds = BuildCache(settings.build_dir)

    @app.exception_handler(NoBuildError)
    async def _no_build(request: Request, exc: NoBuildError) -> JSONResponse:
        return JSONResponse({"code": "NoBuild", "description": str(exc)}, status_code=503)

    @app.middleware("http")
    async def _build_header(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        build_id = getattr(request.state, "build_id", None)
        if build_id:
            response.headers["X-Build-Id"] = build_id
        return response

    @app.get("/health", tags=["service"])
    def health(build: BuildDep) -> dict[str, Any]:
        """Liveness and the build being served (503 while no build exists)."""
        return {
            "status": "ok",
            "build_id": build.build_id,
            "build_created": build.catalog["created"],
            "version": __version__,
        }

    app.include_router(collections_router)
    return app
