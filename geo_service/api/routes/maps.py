"""Map pages (``/maps``, ``/maps/{id}``) and the map libraries they load (``/assets/…``)."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qsl, urlencode, urlsplit

import numpy as np
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse

from geo_service.api.caching import SHORT, conditional
from geo_service.api.caching import TILES as TILES_CACHE
from geo_service.api.deps import AccessDep, BuildDep
from geo_service.api.links import base_url
from geo_service.api.params import parse_bbox
from geo_service.errors import BadQueryError, NotFoundError
from geo_service.maps.assets import asset_file
from geo_service.maps.definitions import LANGUAGES, MapDefinition, load_maps
from geo_service.maps.i18n import choose_language, translator
from geo_service.maps.page import CLASS_COLOURS, Basemap, View, build_page
from geo_service.render import static_map
from geo_service.store.base import ItemQuery

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


def _basemap(request: Request) -> Basemap:
    cached = getattr(request.app.state, "basemap", None)
    if cached is None:
        cached = Basemap.named(request.app.state.settings.basemap)
        request.app.state.basemap = cached
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
            f'<li><a href="{base}maps/{m.id}?lang={lang}">'
            f'<img src="{base}maps/{m.id}.png?width=360&amp;height=240&amp;lang={lang}" '
            f'width="360" height="240" loading="lazy" alt="{html.escape(m.title.get(lang))}">'
            f"<br>{html.escape(m.title.get(lang))}</a>"
            f"<p>{html.escape(m.description.get(lang))}</p></li>"
            for m in maps.values()
        )
        return (
            f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<title>diamond-risk-map</title><style>ul{list-style:none;padding:0}"
            "li{margin:1rem 0}img{max-width:100%;height:auto;border:1px solid #ccc}</style>"
            '</head><body style="font-family:sans-serif">'
            f"<h1>{html.escape(_('Maps'))}</h1><ul>{items}</ul></body></html>"
        ).encode()

    return conditional(request, build.build_id, access, body, HTML, SHORT)


def _view(request: Request, definition: MapDefinition) -> View:
    """The view a share link asks for (``lat``, ``lon``, ``z``, ``layers``), checked."""
    q = request.query_params
    lat, lon = definition.centre
    zoom = definition.zoom
    try:
        lat = float(q.get("lat", lat))
        lon = float(q.get("lon", lon))
        zoom = int(q.get("z", zoom))
    except ValueError as exc:
        raise BadQueryError("lat and lon must be numbers, z a whole number") from exc
    if not (-90 <= lat <= 90 and -180 <= lon <= 180 and 0 <= zoom <= 18):
        raise BadQueryError("lat must be within -90..90, lon within -180..180, z within 0..18")
    layers = tuple(definition.layers)
    if "layers" in q:
        layers = tuple(x for x in q["layers"].split(",") if x)
        unknown = set(layers) - set(definition.layers)
        if unknown:
            raise BadQueryError(
                f"unknown layer(s) {', '.join(sorted(unknown))}; this map has "
                f"{', '.join(definition.layers)}",
                parameter="layers",
            )
    return View(lat, lon, zoom, layers)


def _page(
    map_id: str, request: Request, build: BuildDep, access: AccessDep, lang: str | None, embed: bool
) -> Response:
    definition = _maps(request).get(map_id)
    if definition is None:
        raise NotFoundError(f"no map '{map_id}'; maps are {', '.join(_maps(request))}")
    view = _view(request, definition)
    base = base_url(request)
    lang = choose_language(lang, request.headers.get("accept-language"))
    _ = translator(lang)
    raster = build.catalog["layers"].get("risk_surface")
    zoom = build.store.raster("risk_surface").native_zoom if raster else 10
    factors = list(build.catalog.get("risk", {}).get("factors", {}))
    extent = (build.catalog["layers"].get("incidents") or {}).get("time_extent")
    years = (int(extent[0][:4]), int(extent[1][:4])) if extent else None
    classes = build.catalog.get("risk", {}).get("parameters", {}).get("classes", {})
    thresholds = tuple(
        float(classes.get(k, d)) for k, d in (("medium", 25), ("high", 50), ("very_high", 75))
    )

    def body() -> bytes:
        # Short on the map (a phone is 360 px wide); every source's own wording is one click away.
        publishers = dict.fromkeys(
            p for layer in definition.layers for p in _publishers(build, layer)
        )
        attribution = (
            f"{html.escape(_('Data'))}: {html.escape(', '.join(publishers))} "
            f'(<a href="{base}collections?f=html">{html.escape(_("sources and licences"))}</a>)'
        )
        page = build_page(
            definition,
            base,
            lang,
            zoom,
            attribution,
            factors,
            view,
            embed,
            years,
            _basemap(request),
            thresholds,
        )
        return page.encode()

    return conditional(request, build.build_id, access, body, HTML, SHORT)


ViewParam = Annotated[str | None, Query(description="Share link: centre, zoom and layers.")]


@router.get("/maps/{map_id}.png", summary="A map as a picture")
def map_png(
    map_id: str,
    request: Request,
    build: BuildDep,
    access: AccessDep,
    bbox: Annotated[str | None, Query(description="west,south,east,north in degrees.")] = None,
    width: Annotated[int, Query(ge=100, le=3000)] = 1200,
    height: Annotated[int, Query(ge=100, le=3000)] = 800,
    layers: Annotated[str | None, Query(description="Comma-separated layers of the map.")] = None,
    lang: Lang = None,
) -> Response:
    """The map drawn on the server (PNG): basemap, surface, points, title, legend, scale bar
    and attribution, for print and social media."""
    definition = _maps(request).get(map_id)
    if definition is None:
        raise NotFoundError(f"no map '{map_id}'; maps are {', '.join(_maps(request))}")
    view = _view(request, definition)
    lang = choose_language(lang, request.headers.get("accept-language"))
    _ = translator(lang)
    if bbox is not None:
        box = parse_bbox(bbox)
        if box[0] > box[2]:
            raise BadQueryError("a picture cannot cross the antimeridian", parameter="bbox")
        frame = static_map.frame_for(box, width, height)
    else:  # the map's view at its zoom
        cx, cy = static_map.mercator(np.array([view.lon]), np.array([view.lat]))
        res = static_map.WORLD / (256 * 2**view.zoom)
        frame = static_map.Frame(
            float(cx[0]) - res * width / 2,
            float(cy[0]) - res * height / 2,
            float(cx[0]) + res * width / 2,
            float(cy[0]) + res * height / 2,
            width,
            height,
        )
    west, south, east, north = frame.lonlat_bounds()
    query = ItemQuery(bbox=(max(west, -180), max(south, -90), min(east, 180), min(north, 90)))

    def body() -> bytes:
        drawn = []
        legend = []
        if "community_risk" in view.layers:
            table = build.store.table("community_risk")
            rows = table.select(query, access)
            geo = table.frame.geometry.iloc[rows]
            classes = table.frame["risk_class"].iloc[rows].astype(str).tolist()
            colours = [CLASS_COLOURS.get(c, "#bdbdbd") for c in classes]
            drawn.append((geo.x.to_numpy(), geo.y.to_numpy(), colours, 5, "#000000"))
            legend += [(_(name), colour) for name, colour in CLASS_COLOURS.items()]
        if "incidents" in view.layers and "incidents" in build.catalog["layers"]:
            table = build.store.table("incidents")
            rows = table.select(query, access)
            geo = table.frame.geometry.iloc[rows]
            drawn.insert(
                0, (geo.x.to_numpy(), geo.y.to_numpy(), ["#222222"] * len(rows), 3, "#ffffff")
            )
            legend.append((_("Incidents"), "#222222"))
        raster = build.catalog["layers"].get("risk_surface")
        cog = (
            build.store.path / raster["file"] if raster and "risk_surface" in view.layers else None
        )
        publishers = dict.fromkeys(p for layer in view.layers for p in _publishers(build, layer))
        attribution = (
            f"{_basemap(request).attribution}; Natural Earth; {_('Data')}: {', '.join(publishers)}"
        )
        return static_map.compose(
            frame,
            _basemap(request).url,
            lambda: json.loads((build.store.path / build.catalog["basemap"]["file"]).read_bytes())[
                "features"
            ],
            cog,
            drawn,
            definition.title.get(lang),
            legend,
            _("Risk surface, 0 to 1") if cog is not None else None,
            attribution,
        )

    return conditional(request, build.build_id, access, body, "image/png", SHORT)


@router.get("/maps/{map_id}", summary="A map page")
def map_page(
    map_id: str,
    request: Request,
    build: BuildDep,
    access: AccessDep,
    lang: Lang = None,
    lat: ViewParam = None,
    lon: ViewParam = None,
    z: ViewParam = None,
    layers: ViewParam = None,
) -> Response:
    """A full-page map; its data comes from this API as the view moves. The view (``lat``,
    ``lon``, ``z``, ``layers``) and ``lang`` in the URL reopen it as it was shared."""
    return _page(map_id, request, build, access, lang, embed=False)


@router.get("/embed/{map_id}", summary="A map for an iframe")
def embed_page(
    map_id: str,
    request: Request,
    build: BuildDep,
    access: AccessDep,
    lang: Lang = None,
    lat: ViewParam = None,
    lon: ViewParam = None,
    z: ViewParam = None,
    layers: ViewParam = None,
) -> Response:
    """The map without page chrome, for ``<iframe>`` embeds (attribution kept)."""
    return _page(map_id, request, build, access, lang, embed=True)


@router.get("/oembed", summary="oEmbed 1.0")
def oembed(
    request: Request,
    build: BuildDep,
    access: AccessDep,
    url: Annotated[str, Query(description="A map page or embed URL of this service.")],
    maxwidth: Annotated[int | None, Query(ge=50, le=4000)] = None,
    maxheight: Annotated[int | None, Query(ge=50, le=4000)] = None,
    format: Annotated[str, Query(description="json (default) or xml.")] = "json",
) -> Response:
    """The embed code of a map page by its URL (oEmbed 1.0, type ``rich``), for CMSs."""
    if format not in ("json", "xml"):
        raise BadQueryError(f"expected json or xml, got {format!r}", parameter="format")
    base = base_url(request)
    target = urlsplit(url)
    own = urlsplit(base)
    match = re.fullmatch(r"/(?:maps|embed)/([^/]+)", target.path)
    definition = _maps(request).get(match.group(1)) if match else None
    if target.netloc != own.netloc or definition is None:
        raise NotFoundError(f"{url!r} is not a map of this service")
    params = dict(parse_qsl(target.query))
    lang = choose_language(params.get("lang"), request.headers.get("accept-language"))
    width = min(maxwidth or 800, 800)
    height = min(maxheight or round(width * 2 / 3), round(width * 2 / 3))
    src = (
        f"{base}embed/{definition.id}?{urlencode(params)}"
        if params
        else (f"{base}embed/{definition.id}")
    )
    title = definition.title.get(lang)
    code = (
        f'<iframe src="{html.escape(src)}" width="{width}" height="{height}" '
        f'title="{html.escape(title)}" style="border:0" loading="lazy" allowfullscreen>'
        "</iframe>"
    )

    doc = {
        "version": "1.0",
        "type": "rich",
        "title": title,
        "provider_name": "diamond-risk-map",
        "provider_url": base,
        "html": code,
        "width": width,
        "height": height,
        "cache_age": 3600,
    }

    def body() -> bytes:
        if format == "xml":  # oEmbed 1.0 §2.3.4: one element per field, the html escaped
            fields = "".join(f"<{k}>{html.escape(str(v))}</{k}>" for k, v in doc.items())
            return (
                f'<?xml version="1.0" encoding="utf-8" standalone="yes"?><oembed>{fields}</oembed>'
            ).encode()
        return json.dumps(doc).encode()

    media = "text/xml; charset=utf-8" if format == "xml" else "application/json"
    return conditional(request, build.build_id, access, body, media, SHORT)


@router.get("/basemap.json", summary="Offline basemap", include_in_schema=False)
def basemap(request: Request, build: BuildDep, access: AccessDep) -> Response:
    """Countries, lakes and rivers of the build, drawn under the outside basemap's tiles."""
    meta = build.catalog.get("basemap")
    if meta is None:
        raise NotFoundError("this build has no basemap: rebuild with 'riskmap build'")
    path = build.store.path / meta["file"]
    return conditional(
        request, build.build_id, access, path.read_bytes, "application/geo+json", TILES_CACHE
    )


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
