"""Map pages (``/maps``, ``/maps/{id}``, ``/embed/{id}``), their pictures (``/maps/{id}.png``),
sources, oEmbed, the offline basemap, and the map libraries they load (``/assets/…``)."""

from __future__ import annotations

import gzip
import html
import json
import re
import threading
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import cachetools
import numpy as np
from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.responses import FileResponse

from geo_service.api.builds import Build
from geo_service.api.caching import SHORT, conditional
from geo_service.api.caching import TILES as TILES_CACHE
from geo_service.api.deps import AccessDep, BuildDep
from geo_service.api.drawings import layer_definitions, map_definition, map_definitions
from geo_service.api.links import base_url
from geo_service.api.params import parse_bbox, refuse_unknown
from geo_service.errors import BadQueryError, NotFoundError, UnsupportedFormatError
from geo_service.maps import picture
from geo_service.maps.assets import asset_file
from geo_service.maps.definitions import (
    LANGUAGES,
    MapDefinition,
    box_view,
    load_maps,
)
from geo_service.maps.i18n import choose_language, translator
from geo_service.maps.layers import LayerDefinition, definitions
from geo_service.maps.page import (
    Basemap,
    BuildFacts,
    Offline,
    View,
    build_page,
    country_names,
    evidence_line,
)
from geo_service.render import png, static_map
from geo_service.render.templates import environment, render
from geo_service.store.base import Access, ItemQuery

router = APIRouter(tags=["maps"])
#: Degrees a picture's box spans at least (a point or a line is widened to this, about 1 km).
MIN_SPAN = 0.01
HTML = "text/html; charset=utf-8"
Lang = Annotated[
    str | None,
    Query(
        description="Language: en, fr or pt; a regional tag (fr-CA) takes its language, any "
        "other value English. Without it, the browser's Accept-Language."
    ),
]
ViewParam = Annotated[str | None, Query(description="Share link: centre, zoom and layers.")]
YearParam = Annotated[
    str | None, Query(alias="from", description="Share link: first year of incidents shown.")
]
ToParam = Annotated[str | None, Query(description="Share link: last year of incidents shown.")]
BoxParam = Annotated[
    str | None,
    Query(
        description="The view as a box, west,south,east,north in degrees, fitted to the "
        "screen or frame (embeds: each fits its own box)."
    ),
]


def _basemap(request: Request) -> Basemap:
    cached = getattr(request.app.state, "basemap", None)
    if cached is None:
        cached = Basemap.named(request.app.state.settings.basemap)
        request.app.state.basemap = cached
    return cached


def _facts(request: Request, build: BuildDep, access: AccessDep) -> BuildFacts:
    """The facts of the build the pages need, as this caller sees it, read once per build."""
    return _facts_of(request.app.state, build, access)


def _facts_of(state: Any, build: Build, access: Access) -> BuildFacts:
    public = not access.sees_restricted
    cache = getattr(state, "map_facts", None)
    if cache is None or cache[0] != build.build_id:
        cache = (build.build_id, {})
        state.map_facts = cache
    facts = cache[1].get(public)
    if facts is None:
        raster = build.catalog.layers.get("risk_surface")
        zoom = build.store.raster("risk_surface").native_zoom if raster else 10
        facts = cache[1][public] = BuildFacts.of(build.catalog, zoom)
    return facts


def offline_page(app: FastAPI, map_id: str, lang: str, access: Access, offline: Offline) -> str:
    """A map's page for an offline bundle, as a caller of ``access`` would see it live: its
    first view, its data from the scripts ``offline`` names (``geo_service/bundle``)."""
    definition = load_maps(Path(app.state.settings.maps_file), _definitions(app))[map_id]
    build = app.state.builds.current()
    facts = _facts_of(app.state, build, access)
    if definition.bounds is not None:
        facts = facts.in_countries(_countries(build, access, definition))
    styles = _definitions(app)
    return build_page(definition, "", lang, facts, None, False, None, styles, None, offline)


def _definitions(app: FastAPI) -> dict[str, LayerDefinition]:
    return definitions(Path(app.state.settings.maps_file))


@router.get("/maps", summary="The maps")
def maps_index(request: Request, build: BuildDep, access: AccessDep, lang: Lang = None) -> Response:
    """Every map, with a picture, its title and description."""
    maps = map_definitions(request)
    base = base_url(request)
    lang = choose_language(lang, request.headers.get("accept-language"))

    def body() -> bytes:
        shown = [
            {
                "id": m.id,
                "title": m.title.get(lang),
                "description": m.description.get(lang),
            }
            for m in maps.values()
        ]
        return render("maps.html", lang=lang, base=base, here=str(request.url), maps=shown)

    return conditional(request, build.build_id, access, body, HTML, SHORT)


def _years(request: Request, facts: BuildFacts) -> tuple[int, int] | None:
    """The incidents' years of a share link (``from``, ``to``), checked, within the data's."""
    q = request.query_params
    if facts.incident_years is None or ("from" not in q and "to" not in q):
        return None
    first, last = facts.incident_years
    try:
        lo = int(q.get("from", first))
        hi = int(q.get("to", last))
    except ValueError as exc:
        raise BadQueryError("from and to are years, e.g. from=2013&to=2015") from exc
    lo, hi = sorted((min(max(lo, first), last), min(max(hi, first), last)))
    return lo, hi


def _map_box(text: str) -> tuple[float, float, float, float]:
    """A map's or a picture's box: west,south,east,north (no heights: a map is flat)."""
    if text.count(",") != 3:
        raise BadQueryError(
            f"expected 4 numbers west,south,east,north, got {text!r}", parameter="bbox"
        )
    return parse_bbox(text)


def _view(request: Request, definition: MapDefinition, facts: BuildFacts | None = None) -> View:
    """The view a share link asks for (``lat``, ``lon``, ``z``, ``layers``, ``from``, ``to``),
    checked; without a centre, the map's own box fitted to the screen."""
    q = request.query_params
    lat, lon, zoom = definition.first_view()
    fit = definition.bounds if not ({"lat", "lon", "z"} & set(q)) else None
    if "bbox" in q:  # the view as a box, fitted to whatever screen or frame shows it
        fit = _map_box(q["bbox"])
        if fit[0] > fit[2]:
            raise BadQueryError(
                "bbox is west,south,east,north: a map's view cannot cross the antimeridian",
                parameter="bbox",
            )
        lat, lon, zoom = box_view(fit)
    try:
        lat = float(q.get("lat", lat))
        lon = float(q.get("lon", lon))
        zoom = int(q.get("z", zoom))
    except ValueError as exc:
        raise BadQueryError("lat and lon must be numbers, z a whole number") from exc
    if not (-90 <= lat <= 90 and -180 <= lon <= 180 and 0 <= zoom <= 18):
        raise BadQueryError("lat must be within -90..90, lon within -180..180, z within 0..18")
    layers = tuple(x for x in definition.layers if x not in definition.hidden)
    if "layers" in q:
        layers = tuple(x for x in q["layers"].split(",") if x)
        unknown = set(layers) - set(definition.layers)
        if unknown:
            raise BadQueryError(
                f"unknown layer(s) {', '.join(sorted(unknown))}; this map has "
                f"{', '.join(definition.layers)}",
                parameter="layers",
            )
    years = _years(request, facts) if facts is not None else None
    return View(lat, lon, zoom, layers, fit=fit, years=years)


def _countries(build: BuildDep, access: AccessDep, definition: MapDefinition) -> set[str]:
    """ISO alpha-3 codes of the countries of the map's features in its box (for credits)."""
    if definition.bounds is None:
        return set()
    query = ItemQuery(bbox=definition.bounds, limit=None)
    found: set[str] = set()
    for layer in definition.layers:
        if (
            layer not in build.catalog.layers
            or build.catalog.layers[layer].kind == "raster"
            or "country" not in build.store.layer(layer, access).fields
        ):
            continue
        frame = build.store.frame(layer, replace(query, properties=("country",)), access)
        found.update(str(c) for c in frame["country"].dropna().unique())
    return found


#: The parameters of a shared view (kept in the page's oEmbed discovery link).
SHARED = ("lat", "lon", "z", "bbox", "layers", "from", "to")


def _shared_box(
    params: dict[str, str], definition: MapDefinition
) -> tuple[float, float, float, float] | None:
    """The box a shared link shows: its ``bbox``, else the 1280 × 800 screen around its
    centre and zoom, else the map's own box."""
    try:
        if "bbox" in params:
            return parse_bbox(params["bbox"])
        if {"lat", "lon", "z"} <= set(params):
            lat, lon, zoom = float(params["lat"]), float(params["lon"]), int(params["z"])
            cx, cy = static_map.mercator(np.array([lon]), np.array([lat]))
            half = static_map.WORLD / (256 * 2**zoom) * np.array([640, 400])
            west, south = static_map.lonlat(cx - half[0], cy - half[1])
            east, north = static_map.lonlat(cx + half[0], cy + half[1])
            return (
                max(float(west[0]), -180.0),
                max(float(south[0]), -85.0),
                min(float(east[0]), 180.0),
                min(float(north[0]), 85.0),
            )
    except (ValueError, BadQueryError) as exc:
        raise BadQueryError(f"the shared link's view cannot be read: {exc}") from exc
    return definition.bounds


def _page(
    map_id: str, request: Request, build: BuildDep, access: AccessDep, lang: str | None, embed: bool
) -> Response:
    definition = map_definition(request, map_id)
    facts = _facts(request, build, access)
    if definition.bounds is not None:
        facts = facts.in_countries(_countries(build, access, definition))
    view = _view(request, definition, facts)
    base = base_url(request)
    lang = choose_language(lang, request.headers.get("accept-language"))

    def body() -> bytes:
        shared = {k: v for k, v in request.query_params.items() if k in SHARED}
        page = build_page(
            definition,
            base,
            lang,
            facts,
            view,
            embed,
            _basemap(request),
            layer_definitions(request),
            shared,
        )
        return page.encode()

    return conditional(request, build.build_id, access, body, HTML, SHORT)


def _frame(
    view: View,
    bbox: str | None,
    width: int,
    height: int,
) -> static_map.Frame:
    """The picture's extent: the bbox asked for, else the map's box, else its view."""
    if bbox is not None:
        box = _map_box(bbox)
        if box[0] > box[2]:
            raise BadQueryError("a picture cannot cross the antimeridian", parameter="bbox")
        west, south, east, north = box
        if east - west < MIN_SPAN:  # a point or a line has an area drawn around it
            mid = (west + east) / 2
            west, east = max(mid - MIN_SPAN / 2, -180), min(mid + MIN_SPAN / 2, 180)
        if north - south < MIN_SPAN:
            mid = (south + north) / 2
            south, north = max(mid - MIN_SPAN / 2, -90), min(mid + MIN_SPAN / 2, 90)
        box = (west, south, east, north)
        return static_map.frame_for(box, width, height)
    if view.fit is not None:
        return static_map.frame_for(view.fit, width, height)
    cx, cy = static_map.mercator(np.array([view.lon]), np.array([view.lat]))
    res = static_map.WORLD / (256 * 2**view.zoom)
    return static_map.Frame(
        float(cx[0]) - res * width / 2,
        float(cy[0]) - res * height / 2,
        float(cx[0]) + res * width / 2,
        float(cy[0]) + res * height / 2,
        width,
        height,
    )


#: Pictures kept once rendered (per build, access, map and parameters), up to this many bytes.
PICTURE_CACHE_BYTES = 64 * 2**20
PNG_PARAMS = {"bbox", "width", "height", "layers", "lang", "from", "to", "lat", "lon", "z"}


def _picture_cache(request: Request) -> tuple[cachetools.LRUCache, threading.Lock]:
    cached = getattr(request.app.state, "pictures", None)
    if cached is None:
        cached = (cachetools.LRUCache(PICTURE_CACHE_BYTES, getsizeof=len), threading.Lock())
        request.app.state.pictures = cached
    return cached


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
    from_: YearParam = None,
    to: ToParam = None,
    lat: ViewParam = None,
    lon: ViewParam = None,
    z: ViewParam = None,
) -> Response:
    """The map drawn on the server (PNG): basemap, surface, points, title and the date of
    its evidence, a legend with a heading per layer, scale bar and attribution, for print
    and social media. Below 560 × 360 the legend is left out. Rendered once per build and
    parameters, then served from a bounded cache."""
    refuse_unknown(request.query_params.keys(), PNG_PARAMS)
    definition = map_definition(request, map_id)
    styles = layer_definitions(request)
    facts = _facts(request, build, access)
    view = _view(request, definition, facts)
    lang = choose_language(lang, request.headers.get("accept-language"))
    _ = translator(lang)
    frame = _frame(view, bbox, width, height)
    west, south, east, north = frame.lonlat_bounds()
    query = ItemQuery(
        bbox=(max(west, -180), max(south, -90), min(east, 180), min(north, 90)), limit=None
    )
    # A layer drawn from some zoom on (villages) is drawn in the picture from that zoom too.
    shown = [x for x in definition.layers if x in view.layers and styles[x].min_zoom <= frame.zoom]
    key = (build.build_id, access.value, map_id, lang, tuple(sorted(request.query_params.items())))

    def render() -> bytes:
        present = [x for x in shown if x in build.catalog.layers]
        rasters = [
            static_map.RasterLayer(
                build.store.raster(x).location,
                png.renderer(meta.fields),
                0.75 if x == "risk_surface" else 1.0,
                "bilinear" if x == "risk_surface" else "nearest",
            )
            for x in present
            if (meta := build.catalog.layers[x]).kind == "raster"
        ]
        drawn = picture.draw_layers(
            present,
            styles,
            lambda layer, asked: build.store.frame(layer, asked, access),
            query,
            facts.thresholds,
            view.years,
            lang,
            definition.where,
            # Restricted rows as their cells, for a caller who does not see the rows.
            {} if access.sees_restricted else facts.areas,
        )
        drawn_facts = facts.in_countries(drawn.countries)
        publishers = dict.fromkeys(
            p for layer in present for p in drawn_facts.publishers.get(layer, [])
        )
        data_credit = "Natural Earth; " + _("Data: {publishers}").replace(
            "{publishers}", ", ".join(publishers)
        )
        outside = _basemap(request).attribution

        def credits(outside_drawn: bool) -> str:
            return f"{outside}; {data_credit}" if outside_drawn else data_credit

        return static_map.compose(
            frame,
            _basemap(request).url,
            lambda: json.loads(build.store.resource("basemap"))["features"],
            rasters,
            drawn.marks,
            definition.title.get(lang),
            drawn.legend,
            credits,
            evidence_line(facts, lang, view.years),
            drawn.places,
        )

    def body() -> bytes:
        cache, lock = _picture_cache(request)
        with lock:
            found = cache.get(key)
        if found is None:
            found = render()
            with lock:
                cache[key] = found
        return found

    return conditional(request, build.build_id, access, body, "image/png", SHORT)


@router.get("/maps/{map_id}/sources", summary="Sources and licences of a map")
def map_sources(
    map_id: str, request: Request, build: BuildDep, access: AccessDep, lang: Lang = None
) -> Response:
    """Every dataset a map draws on: publisher, licence, attribution, date retrieved and what
    it covers, in the page's language (the publishers' own words as published)."""
    definition = map_definition(request, map_id)
    facts = _facts(request, build, access)
    base = base_url(request)
    lang = choose_language(lang, request.headers.get("accept-language"))

    def body() -> bytes:
        keys = dict.fromkeys(
            k
            for layer in definition.layers
            if layer in build.catalog.layers
            for k in build.catalog.layers[layer].sources
        )
        names = country_names(facts.countries, lang)
        sources = []
        for key in keys:
            s = build.catalog.sources[key]
            coverage = s.coverage
            sources.append(
                {
                    "title": s.title,
                    "publisher": s.publisher,
                    "licence": s.licence,
                    "licence_url": s.licence_url,
                    "attribution": s.attribution,
                    "countries": ", ".join(names.get(c, c) for c in coverage.get("countries", [])),
                    "retrieved": s.retrieved,
                    "url": s.url,
                    "note": coverage.get("note"),
                }
            )
        return render(
            "sources.html",
            lang=lang,
            base=base,
            here=str(request.url),
            map_id=definition.id,
            title=definition.title.get(lang),
            sources=sources,
            basemap=_basemap(request).attribution,
        )

    return conditional(request, build.build_id, access, body, HTML, SHORT)


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
    bbox: BoxParam = None,
    layers: ViewParam = None,
    from_: YearParam = None,
    to: ToParam = None,
) -> Response:
    """A full-page map; its data comes from this API as the view moves. The view (``lat``,
    ``lon``, ``z``, ``layers``, ``from``, ``to``) and ``lang`` in the URL reopen it as it was
    shared."""
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
    bbox: BoxParam = None,
    layers: ViewParam = None,
    from_: YearParam = None,
    to: ToParam = None,
) -> Response:
    """The map without page chrome, for ``<iframe>`` embeds (attribution kept)."""
    return _page(map_id, request, build, access, lang, embed=True)


@router.get(
    "/oembed",
    summary="oEmbed 1.0",
    responses={501: {"description": "A format other than json or xml (oEmbed 1.0 §2.3.4)."}},
)
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
    if format not in ("json", "xml"):  # oEmbed 1.0 §2.3.4: 501 Not Implemented
        raise UnsupportedFormatError(f"expected json or xml, got {format!r}", parameter="format")
    base = base_url(request)
    target = urlsplit(url)
    own = urlsplit(base)
    names = {own.netloc, *request.app.state.settings.host_names}
    match = re.fullmatch(r"/(?:maps|embed)/([^/]+)", target.path)
    definition = map_definitions(request).get(match.group(1)) if match else None
    if target.netloc not in names or definition is None:
        raise NotFoundError(f"{url!r} is not a map of this service")
    facts = _facts(request, build, access)
    params = dict(parse_qsl(target.query))
    lang = choose_language(params.get("lang"), request.headers.get("accept-language"))
    # The embed speaks the language the page was shared in, and shows its view as a box, so
    # a frame of any size fits it.
    params["lang"] = lang
    box = _shared_box(params, definition)
    for key in ("lat", "lon", "z"):
        params.pop(key, None)
    if box is not None:
        params["bbox"] = ",".join(f"{v:.4f}" for v in box)
    width = min(maxwidth or 800, 800)
    height = max(min(maxheight or round(width * 2 / 3), round(width * 2 / 3)), min(240, width))
    src = f"{base}embed/{definition.id}?{urlencode(params)}"
    title = definition.title.get(lang)
    thumb_w, thumb_h = 600, 400
    picture_params = {k: v for k, v in params.items() if k in PNG_PARAMS}
    picture_params |= {"width": str(thumb_w), "height": str(thumb_h)}
    code = (
        environment()
        .get_template("map/oembed.html")
        .render(
            src=src,
            title=title,
            width=width,
            height=height,
            ratio=f"{width} / {height}",
            evidence=evidence_line(facts, lang),
        )
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
        "thumbnail_url": f"{base}maps/{definition.id}.png?{urlencode(picture_params)}",
        "thumbnail_width": thumb_w,
        "thumbnail_height": thumb_h,
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
    """Countries, lakes and rivers of the build, drawn under the outside basemap's tiles.

    Compressed once per build (it is the largest thing a map loads), not on every request.
    """
    cached = getattr(request.app.state, "basemap_gz", None)
    if cached is None or cached[0] != build.build_id:
        data = build.store.resource("basemap")
        cached = (build.build_id, gzip.compress(data, compresslevel=6))
        request.app.state.basemap_gz = cached
    if "gzip" not in request.headers.get("accept-encoding", ""):
        return conditional(
            request,
            build.build_id,
            access,
            lambda: build.store.resource("basemap"),
            "application/geo+json",
            TILES_CACHE,
        )
    headers = {"Content-Encoding": "gzip", "Vary": "Accept, Accept-Language, Accept-Encoding"}
    return conditional(
        request,
        build.build_id,
        access,
        lambda: cached[1],
        "application/geo+json",
        TILES_CACHE,
        headers,
    )


#: A small diamond, so browsers asking for an icon get one.
FAVICON = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    b'<path d="M8 1 15 7 8 15 1 7z" fill="#1a386f"/></svg>'
)


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> Response:
    """The service's icon."""
    return Response(
        FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"}
    )


@router.get("/assets/{path:path}", summary="Map libraries", include_in_schema=False)
def assets(path: str, request: Request) -> FileResponse:
    """Leaflet and its plugins, as installed at set-up, and the pages' own script and style."""
    target, media = asset_file(Path(request.app.state.settings.assets_dir), path)
    return FileResponse(
        target, media_type=media, headers={"Cache-Control": "public, max-age=86400"}
    )


__all__ = ["router", "LANGUAGES"]
