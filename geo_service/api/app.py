"""The service's composition root: ``create_app(settings)`` assembles routes and state.

Nothing is built at import, so tests make an app with their own settings. The current build is
looked up on every request (one ``readlink``), so a new build is served once its pointer is
swapped and it has loaded, without a restart (``builds.py``); each response names the build it
came from. Errors are JSON (``code``, ``description``), or a page for a browser that asks for
HTML.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geo_service import __version__
from geo_service.api import openapi
from geo_service.api.auth import Tokens, UnauthorizedError, read_tokens
from geo_service.api.builds import BuildCache
from geo_service.api.caching import VARY
from geo_service.api.deps import BuildDep
from geo_service.api.files import HEAD_AS_GET
from geo_service.api.links import base_url
from geo_service.api.routes.features import router as features_router
from geo_service.api.routes.maps import router as maps_router
from geo_service.api.routes.rasters import router as rasters_router
from geo_service.api.routes.styles import router as styles_router
from geo_service.api.routes.tiles import render_tile
from geo_service.api.routes.tiles import router as tiles_router
from geo_service.api.security import SecurityHeaders, tile_origins
from geo_service.errors import (
    BadQueryError,
    NoBuildError,
    NotFoundError,
    RiskMapError,
    UnsupportedFormatError,
)
from geo_service.maps.i18n import choose_language
from geo_service.maps.page import Basemap
from geo_service.render.features import negotiate
from geo_service.render.templates import render
from geo_service.settings import ApiSettings
from geo_service.store import open_store

#: Domain errors → HTTP status: the one place where they meet.
#: The first entry an error is an instance of gives its status (subclasses first).
STATUS = {
    NotFoundError: 404,
    UnsupportedFormatError: 501,
    BadQueryError: 400,
    UnauthorizedError: 401,
    NoBuildError: 503,
}


class BuildIdHeader:
    """Names the build a response came from (``X-Build-Id``), as pure ASGI: no extra task."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the header to the response start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_build(message: Message) -> None:
            if message["type"] == "http.response.start":
                build_id = scope.get("state", {}).get("build_id")
                headers = message.setdefault("headers", [])
                if build_id and not any(k == b"x-build-id" for k, _ in headers):
                    headers.append((b"x-build-id", build_id.encode()))
            await send(message)

        await self.app(scope, receive, send_with_build)


class HeadAsGet:
    """HEAD answered as GET without the body (RFC 9110 §9.3.2): link checkers and ``curl -I``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run HEAD as GET; send the head and an empty body."""
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        done = False

        async def head_only(message: Message) -> None:
            nonlocal done
            if message["type"] == "http.response.body":
                if not done:
                    done = True
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await send(message)

        # Marked, so a file can answer with its headers without reading itself (files.py).
        await self.app({**scope, "method": "GET", HEAD_AS_GET: True}, receive, head_only)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Loaded in a thread, so the first visitor does not wait for every layer.
    threading.Thread(target=app.state.builds.warm, name="warm", daemon=True).start()
    yield


def _error(request: Request, status: int, code: str, description: str) -> Response:
    """The error as JSON; as a page in the visitor's language when a browser asks for HTML
    (Accept) and no other format (``f``). The description is the same English either way;
    the answer says it depends on Accept, so a cache never gives one to the other."""
    accept = request.headers.get("accept")
    fmt = request.query_params.get("f", "html").lower()
    if fmt == "html" and negotiate(None, accept, allowed=("json", "html")).key == "html":
        lang = request.query_params.get("lang")
        page = render(
            "error.html",
            lang=choose_language(lang, request.headers.get("accept-language")),
            base=base_url(request),
            here=str(request.url),
            status=status,
            code=code,
            description=description,
        )
        return HTMLResponse(page, status_code=status, headers={"Vary": VARY})
    return JSONResponse(
        {"code": code, "description": description}, status_code=status, headers={"Vary": VARY}
    )


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """Build the FastAPI application for one build directory."""
    settings = settings or ApiSettings()
    app = FastAPI(
        title="diamond-risk-map",
        version=__version__,
        description="Risk layers for communities affected by diamond mining, as OGC API – "
        "Features: concessions, tailings dams, incidents, communities and their risk scores.",
        lifespan=_lifespan,
        # The documentation page loads Swagger UI from this service (/assets), not a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.builds = BuildCache(open_store(settings), render_tile=render_tile)
    # A tokens file that cannot be read stops the service here, not at the first request.
    app.state.tokens = Tokens(read_tokens(settings.tokens_file, settings.tokens))

    @app.exception_handler(RiskMapError)
    async def _domain(request: Request, exc: RiskMapError) -> Response:
        status = next((s for t, s in STATUS.items() if isinstance(exc, t)), 500)
        response = _error(request, status, type(exc).__name__.removesuffix("Error"), str(exc))
        if status == 401:
            response.headers["WWW-Authenticate"] = (
                'Bearer realm="diamond-risk-map", error="invalid_token"'
            )
        return response

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        """No such route (404) or method (405): the same JSON shape as every other error."""
        words = {404: ("NotFound", f"no resource at {request.url.path}; see /openapi.json")}
        words[405] = ("MethodNotAllowed", f"{request.method} is not served: this API only reads")
        code, description = words.get(exc.status_code, (str(exc.status_code), str(exc.detail)))
        response = _error(request, exc.status_code, code, description)
        for k, v in (exc.headers or {}).items():
            response.headers[k] = v
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("query", "path"))
            problems.append(f"parameter '{where}': {e.get('msg', 'invalid')}")
        return _error(request, 400, "BadQuery", "; ".join(problems))

    @app.get("/health", tags=["service"])
    def health(build: BuildDep) -> dict[str, Any]:
        """Liveness and the build being served (503 while no build exists)."""
        return {
            "status": "ok",
            "build_id": build.build_id,
            "build_created": build.catalog.created,
            "version": __version__,
        }

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        """Every endpoint, with forms to try them."""
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="diamond-risk-map — API",
            swagger_js_url="/assets/swagger-ui-dist/swagger-ui-bundle.js",
            swagger_css_url="/assets/swagger-ui-dist/swagger-ui.css",
            swagger_favicon_url="/favicon.ico",
        )

    app.include_router(features_router)
    app.include_router(tiles_router)
    app.include_router(rasters_router)
    app.include_router(maps_router)
    app.include_router(styles_router)
    openapi.install(app)
    app.add_middleware(BuildIdHeader)
    app.add_middleware(
        SecurityHeaders,
        max_body_bytes=settings.max_body_bytes,
        max_url_bytes=settings.max_url_bytes,
        frame_ancestors=settings.frame_ancestors,
        images=tile_origins(Basemap.named(settings.basemap).url),
    )
    app.add_middleware(HeadAsGet)
    # A GeoTIFF is compressed inside, and its byte offsets must stay those of the file.
    app.add_middleware(
        GZipMiddleware,
        minimum_size=1024,
        exclude_content_types=(*DEFAULT_EXCLUDED_CONTENT_TYPES, "image/tiff"),
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "HEAD", "OPTIONS"],
        allow_headers=["*"],
        # Content-Range and Accept-Ranges: a page reading a GeoTIFF by ranges (geotiff.js).
        expose_headers=["ETag", "X-Build-Id", "Content-Range", "Accept-Ranges"],
    )
    return app
