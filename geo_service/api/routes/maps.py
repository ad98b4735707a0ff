"""Map pages (``/maps``, ``/maps/{id}``) and the map libraries they load (``/assets/…``)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse

from geo_service.api.caching import SHORT, conditional
from geo_service.api.deps import AccessDep, BuildDep
from geo_service.api.links import base_url
from geo_service.errors import NotFoundError
from geo_service.maps.assets import asset_file
from geo_service.maps.definitions import LANGUAGES, MapDefinition, load_maps
from geo_service.maps.i18n import choose_language, translator
from geo_service.maps.page import build_page

router = APIRouter(tags=["maps"])
HTML = "text/html; charset=utf-8"
Lang = Annotated[
    str | None,
    Query(pattern="^(en|fr|pt)$", description="Language: en, fr or pt (else Accept-Language)."),
]


def _maps(request: Request) -> dict[str, MapDefinition]:
    cached = getattr(request.app.state, "maps", None)
    if cached is None:
        cached = load_maps(Path(request.app.state.settings.maps_file))
        request.app.state.maps = cached
    return cached


def _publishers(build: BuildDep, layer: str) -> list[str]:
    meta = build.catalog["layers"].get(layer)
    if meta is None:
        return []
    return [build.catalog["sources"][k]["publisher"] for k in meta["sources"]]


@router.get("/maps", summary="The maps")
def maps_index(request: Request, build: BuildDep, access: AccessDep, lang: Lang = None) -> Response:
    """Every map, with its title and description."""
    maps = _maps(request)
    base = base_url(request)
    lang = choose_language(lang, request.headers.get("accept-language"))
    _ = translator(lang)

    def body() -> bytes:
        items = "".join(
            f'<li><a href="{base}maps/{m.id}?lang={lang}">{html.escape(m.title.get(lang))}</a>'
            f"<p>{html.escape(m.description.get(lang))}</p></li>"
            for m in maps.values()
        )
        return (
            f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<title>diamond-risk-map</title></head><body style="font-family:sans-serif">'
            f"<h1>{html.escape(_('Maps'))}</h1><ul>{items}</ul></body></html>"
        ).encode()

    return conditional(request, build.build_id, access, body, HTML, SHORT)


@router.get("/maps/{map_id}", summary="A map page")
def map_page(
    map_id: str, request: Request, build: BuildDep, access: AccessDep, lang: Lang = None
) -> Response:
    """A full-page map; its data comes from this API as the view moves."""
    definition = _maps(request).get(map_id)
    if definition is None:
        raise NotFoundError(f"no map '{map_id}'; maps are {', '.join(_maps(request))}")
    base = base_url(request)
    lang = choose_language(lang, request.headers.get("accept-language"))
    _ = translator(lang)
    raster = build.catalog["layers"].get("risk_surface")
    zoom = build.store.raster("risk_surface").native_zoom if raster else 10
    factors = list(build.catalog.get("risk", {}).get("factors", {}))

    def body() -> bytes:
        # Short on the map (a phone is 360 px wide); every source's own wording is one click away.
        publishers = dict.fromkeys(
            p for layer in definition.layers for p in _publishers(build, layer)
        )
        attribution = (
            f"{html.escape(_('Data'))}: {html.escape(', '.join(publishers))} "
            f'(<a href="{base}collections?f=html">{html.escape(_("sources and licences"))}</a>)'
        )
        return build_page(definition, base, lang, zoom, attribution, factors).encode()

    return conditional(request, build.build_id, access, body, HTML, SHORT)


#: A small diamond, so browsers asking for an icon get one.
FAVICON = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    b'<path d="M8 1 15 7 8 15 1 7z" fill="#7e03a8"/></svg>'
)


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> Response:
    """The service's icon."""
    return Response(
        FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"}
    )


@router.get("/assets/{path:path}", summary="Map libraries", include_in_schema=False)
def assets(path: str, request: Request) -> FileResponse:
    """Leaflet and its plugins, as installed at set-up."""
    target, media = asset_file(Path(request.app.state.settings.assets_dir), path)
    return FileResponse(
        target, media_type=media, headers={"Cache-Control": "public, max-age=86400"}
    )


__all__ = ["router", "LANGUAGES"]
