"""OGC API – Features Part 1 (Core, GeoJSON, OpenAPI 3.0) and Part 3 queryables.

Handlers stay thin: the store filters and pages (``store/memory.py``), ``params.py`` parses,
``links.py`` writes links, ``caching.py`` answers 304 before any work. Each resource is JSON,
or a page a person reads (``f=html`` or ``Accept: text/html``) from ``geo_service/templates``
in the language of ``lang`` or Accept-Language; the JSON is the same in every language.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import orjson
from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as InPath
from starlette.concurrency import run_in_threadpool

from geo_service.api import schemas
from geo_service.api.builds import Build
from geo_service.api.caching import ITEMS, SHORT, conditional
from geo_service.api.crs import reproject, resolve, supported
from geo_service.api.deps import AccessDep, BuildDep, access_of, build_of
from geo_service.api.links import ParamsUrl, base_url, collection_links, items_links, link
from geo_service.api.params import (
    CRS_HELP,
    LANG_HELP,
    ItemsParams,
    items_query,
    refuse_unknown,
)
from geo_service.api.routes.rasters import every_raster_link
from geo_service.errors import BadQueryError
from geo_service.maps.i18n import choose_language, translator
from geo_service.maps.layers import LayerDefinition, definitions
from geo_service.render.features import FORMATS, Format, negotiate
from geo_service.render.record import Formatter, cell, day, number
from geo_service.render.templates import render
from geo_service.store.base import Access, FeaturePage, ItemQuery, LayerInfo
from geo_service.store.catalog import BuildCatalog, CatalogLayer

router = APIRouter(tags=["features"])

GEOJSON = "application/geo+json"
JSON = "application/json"
SCHEMA_JSON = "application/schema+json"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/case-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
]


def _dumps(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc)


def temporal_extent(layer: CatalogLayer) -> list[str] | None:
    """The dates a layer's features carry, first and last; None for a layer whose features
    carry no date (its collection advertises no temporal extent)."""
    return list(layer.time_extent) if layer.time_extent else None


def time_note(layer: CatalogLayer, build: BuildCatalog, incidents: CatalogLayer | None) -> str:
    """For a layer whose features carry no date, the time it describes, and what ``datetime``
    selects in it: the evidence period for the risk layers, else the day its sources were
    retrieved."""
    if layer.time_extent:
        return ""
    if layer.areas_of:  # cells counting the restricted rows of every date published
        return " Its features carry no date, so datetime selects every one of them."
    retrieved = sorted(build.sources[k].retrieved for k in layer.sources if k in build.sources)
    dates = incidents.time_extent if incidents is not None else None
    reference = build.risk.get("factors", {}).get("incident_intensity", {}).get("reference_date")
    note = " Its features carry no date, so datetime selects every one of them"
    if layer.kind == "derived" and dates:
        end = str(reference or dates[1])[:10]
        return f"{note}; the scores weigh the evidence of {dates[0]} to {end}."
    if retrieved:
        days = (
            retrieved[0] if retrieved[0] == retrieved[-1] else f"{retrieved[0]} to {retrieved[-1]}"
        )
        return f"{note}; they stand as their sources did when retrieved, {days}."
    return f"{note}."


def collection_document(
    layer: CatalogLayer,
    build: BuildCatalog,
    base: str,
    incidents: CatalogLayer | None = None,
    crs: tuple[str, ...] = (CRS84,),
) -> dict[str, Any]:
    """One layer as an OGC API – Features collection, with licence and provenance; ``crs``:
    the CRSs its features are served in (the first, CRS84, is the storage CRS).

    ``layer`` and ``incidents`` are the metadata as the caller sees them (``BuildStore``).
    """
    sources = [build.sources[key] for key in layer.sources]
    extent: dict[str, Any] = {}
    if layer.bounds:
        extent["spatial"] = {"bbox": [list(layer.bounds)], "crs": CRS84}
    interval = temporal_extent(layer)
    if interval:
        extent["temporal"] = {
            "interval": [[f"{interval[0]}T00:00:00Z", f"{interval[1]}T00:00:00Z"]],
            "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian",
        }
    licences = list(dict.fromkeys(s.licence for s in sources))
    links = collection_links(base, layer.id, layer.title, sources)
    if layer.areas_of:  # every layer whose restricted rows it holds (concessions, mine sites)
        holders = [k for k, v in build.layers.items() if v.areas == layer.id]
        links.extend(related(base, k, build) for k in holders or [layer.areas_of])
    if layer.areas:
        links.append(related(base, layer.areas, build))
    return {
        "id": layer.id,
        "title": layer.title,
        "description": f"{layer.title}: {layer.count} features from "
        + "; ".join(s.title for s in sources)
        + "."
        + (f" {layer.description}" if layer.description else "")
        + areas_note(layer)
        + time_note(layer, build, incidents),
        "itemType": "feature",
        "extent": extent,
        "crs": list(crs),
        "storageCrs": CRS84,
        "count": layer.count,
        "geometryTypes": list(layer.geometry_types),
        "license": "; ".join(licences),
        "attribution": "; ".join(dict.fromkeys(s.attribution for s in sources)),
        "sources": [
            {
                "title": s.title,
                "publisher": s.publisher,
                "licence": s.licence,
                "licence_url": s.licence_url,
                "attribution": s.attribution,
                "retrieved": s.retrieved,
                "coverage": s.coverage,
            }
            for s in sources
        ],
        "build_id": build.build_id,
        "links": links,
    }


def areas_note(layer: CatalogLayer) -> str:
    """For a layer whose rows a source can mark restricted, where those rows are: the same
    words for every caller and every build, whether or not any row is restricted."""
    if not layer.areas:
        return ""
    return (
        " Rows a source marks restricted are here only for callers whose role may see them;"
        f" everyone finds them counted by H3 cell in the collection '{layer.areas}'."
    )


def related(base: str, layer_id: str, build: BuildCatalog) -> dict[str, str]:
    """A link to another collection of the build (a layer and its areas)."""
    meta = build.layers.get(layer_id)
    title = meta.title if meta is not None else layer_id
    return link(f"{base}collections/{layer_id}", "related", JSON, title)


CollectionId = Annotated[
    str, InPath(alias="collectionId", description="A collection's id (see /collections).")
]
CrsParam = Annotated[str | None, Query(description=CRS_HELP)]
FormatParam = Annotated[str | None, Query(description="Format: json (default) or html.")]
LangParam = Annotated[str | None, Query(description=LANG_HELP)]
#: The largest GeoJSON page of items answered on the event loop when the store has the layer
#: in memory (larger pages, other formats and other stores are answered in a worker thread).
AT_ONCE_LIMIT = 1000
#: Parameters of the resources that are a document or a page.
DOCUMENT_PARAMETERS = {"f", "lang"}
#: Download formats by the words a page links them with.
DOWNLOADS = {
    "json": "GeoJSON",
    "csv": "CSV",
    "gpkg": "GeoPackage",
    "parquet": "GeoParquet",
    "kml": "KML",
    "xlsx": "XLSX",
}


def _schema_media(accept: str | None) -> str:
    """A JSON Schema's media type: ``application/schema+json``, or ``application/json`` for a
    client that asks for JSON and not for JSON Schema (GDAL's OAPIF driver refuses a
    queryables document of any other type)."""
    wanted = (accept or "").lower()
    if SCHEMA_JSON not in wanted and (JSON in wanted or GEOJSON in wanted):
        return JSON
    return SCHEMA_JSON


def _crs(request: Request) -> tuple[str, ...]:
    """The CRSs features are served in (``api/crs.py``)."""
    return tuple(supported(Path(request.app.state.settings.maps_file)))


def _language(request: Request, lang: str | None) -> str:
    return choose_language(lang, request.headers.get("accept-language"))


def _page(request: Request, lang: str | None, name: str, **context: Any) -> bytes:
    """A page of ours in the request's language, with the service's URL and its own."""
    return render(
        name,
        lang=_language(request, lang),
        base=base_url(request),
        here=str(request.url),
        **context,
    )


def _styles(request: Request) -> dict[str, LayerDefinition]:
    """The layer definitions of the maps (their labels and words name the fields)."""
    return definitions(Path(request.app.state.settings.maps_file))


def _document(
    request: Request,
    build: BuildDep,
    access: AccessDep,
    f: str | None,
    doc: Callable[[], dict[str, Any]],
    page: Callable[[dict[str, Any]], bytes],
) -> Response:
    """A JSON document, or a page made from it (``f=html`` or ``Accept: text/html``)."""
    refuse_unknown(request.query_params.keys(), DOCUMENT_PARAMETERS)
    fmt = negotiate(f, request.headers.get("accept"), allowed=("json", "html"))

    def body() -> bytes:
        d = doc()
        return page(d) if fmt.key == "html" else _dumps(d)

    media = JSON if fmt.key == "json" else fmt.media_type
    return conditional(request, build.build_id, access, body, media, SHORT)


@router.get("/", summary="Landing page")
def landing(
    request: Request,
    build: BuildDep,
    access: AccessDep,
    f: FormatParam = None,
    lang: LangParam = None,
) -> Response:
    """What this service offers and where: the API definition, conformance, the collections."""
    base = base_url(request)

    def doc() -> dict[str, Any]:
        return {
            "title": "diamond-risk-map",
            "description": "Risk layers for communities affected by diamond mining: "
            "concessions, tailings dams, incidents, communities and their risk scores, "
            "with sources, licences and the build they come from.",
            "build_id": build.build_id,
            "links": [
                link(base, "self", JSON, "This document"),
                link(f"{base}?f=html", "alternate", "text/html", "This document as HTML"),
                link(
                    f"{base}openapi.json",
                    "service-desc",
                    "application/vnd.oai.openapi+json;version=3.0",
                    "The API definition",
                ),
                link(f"{base}docs", "service-doc", "text/html", "The API documentation"),
                link(f"{base}conformance", "conformance", JSON, "Conformance classes"),
                link(f"{base}collections", "data", JSON, "The collections"),
                link(f"{base}collections?f=html", "data", "text/html", "The collections (HTML)"),
                *every_raster_link(base, build),
            ],
        }

    return _document(
        request,
        build,
        access,
        f,
        doc,
        lambda d: _page(request, lang, "landing.html", build_id=d["build_id"]),
    )


@router.get("/conformance", summary="Conformance classes")
def conformance(
    request: Request,
    build: BuildDep,
    access: AccessDep,
    f: FormatParam = None,
    lang: LangParam = None,
) -> Response:
    """The OGC conformance classes this service implements."""
    return _document(
        request,
        build,
        access,
        f,
        lambda: {"title": "Conformance", "conformsTo": CONFORMANCE, "links": []},
        lambda d: _page(request, lang, "conformance.html", classes=d["conformsTo"]),
    )


def _shown(doc: dict[str, Any], lang: str) -> dict[str, Any]:
    """A collection document as a page shows it: its title and count in the page's language."""
    return {
        **doc,
        "title": translator(lang)(doc["title"]),
        "count": number(doc["count"], lang),
        "licence": doc["license"],
    }


def _incidents(build: BuildDep, access: AccessDep) -> CatalogLayer | None:
    """The incidents layer's catalog entry as this caller sees it (its dates are the
    reference of the other layers' temporal extents), if the build has one."""
    layers = build.store.layers(access)
    return layers["incidents"].meta if "incidents" in layers else None


@router.get("/collections", summary="The collections")
def collections(
    request: Request,
    build: BuildDep,
    access: AccessDep,
    f: FormatParam = None,
    lang: LangParam = None,
) -> Response:
    """Every layer of the current build with its extent, licence, attribution and build id."""
    base = base_url(request)

    def doc() -> dict[str, Any]:
        layers = {k: v.meta for k, v in build.store.layers(access).items()}
        docs = [
            collection_document(v, build.catalog, base, layers.get("incidents"), _crs(request))
            for v in layers.values()
        ]
        return {
            "title": "Collections",
            "description": f"The layers of build {build.build_id}.",
            "collections": docs,
            "build_id": build.build_id,
            "links": [
                link(f"{base}collections", "self", JSON, "The collections"),
                link(f"{base}collections?f=html", "alternate", "text/html", "As HTML"),
            ]
            + [
                link(f"{base}collections/{c['id']}/items?f=html", "item", "text/html", c["title"])
                for c in docs
            ],
        }

    def page(d: dict[str, Any]) -> bytes:
        language = _language(request, lang)
        shown = [_shown(c, language) for c in d["collections"]]
        return _page(request, lang, "collections.html", build_id=d["build_id"], collections=shown)

    return _document(request, build, access, f, doc, page)


@router.get("/collections/{collectionId}", summary="One collection")
def collection(
    collection_id: CollectionId,
    request: Request,
    build: BuildDep,
    access: AccessDep,
    f: FormatParam = None,
    lang: LangParam = None,
) -> Response:
    """One layer: extent, licence, attribution, build id and links to its items."""
    meta = build.store.layer(collection_id, access).meta
    incidents = _incidents(build, access)
    base = base_url(request)

    def page(d: dict[str, Any]) -> bytes:
        language = _language(request, lang)
        bbox = d["extent"].get("spatial", {}).get("bbox", [None])[0]
        interval = temporal_extent(meta)
        sources = [{**s, "retrieved": day(s["retrieved"], language)} for s in d["sources"]]
        return _page(
            request,
            lang,
            "collection.html",
            **{**_shown(d, language), "sources": sources},
            bbox=[number(round(v, 2), language) for v in bbox] if bbox else None,
            interval=[day(v, language) for v in interval] if interval else None,
        )

    return _document(
        request,
        build,
        access,
        f,
        lambda: collection_document(meta, build.catalog, base, incidents, _crs(request)),
        page,
    )


@router.get("/collections/{collectionId}/queryables", summary="Queryable properties")
def queryables(
    collection_id: CollectionId,
    request: Request,
    build: BuildDep,
    access: AccessDep,
    f: FormatParam = None,
    lang: LangParam = None,
) -> Response:
    """The properties items can be filtered on (``?name=value``), as a JSON Schema."""
    info = build.store.layer(collection_id, access)
    base = base_url(request)
    refuse_unknown(request.query_params.keys(), DOCUMENT_PARAMETERS)
    fmt = negotiate(f, request.headers.get("accept"), allowed=("json", "html"))
    here = f"{base}collections/{collection_id}/queryables"

    def body() -> bytes:
        doc = schemas.queryables_document(info, _described(request, build, access, info), here)
        props = doc["properties"]
        if fmt.key == "html":
            language = _language(request, lang)
            words = Formatter(language, base, styles=_styles(request))
            example = next((k for k in ("country", *info.queryables) if k in info.queryables), None)
            value = None
            if example:
                first = ItemQuery(limit=1, properties=(example,))
                records = build.store.query(collection_id, first, access).records
                value = records[0].get(example) if records else None
            return _page(
                request,
                lang,
                "queryables.html",
                id=collection_id,
                title=translator(language)(info.title),
                properties=[
                    (k, words.label(k) if k != "geometry" else "", v.get("type", "geometry"))
                    for k, v in props.items()
                ],
                example=f"{base}collections/{collection_id}/items?"
                + urlencode({example: value, "f": "html"})
                if value is not None
                else f"{base}collections/{collection_id}/items?f=html",
            )
        return _dumps(doc)

    media = fmt.media_type if fmt.key == "html" else _schema_media(request.headers.get("accept"))
    return conditional(request, build.build_id, access, body, media, SHORT)


def _described(
    request: Request, build: BuildDep, access: AccessDep, info: LayerInfo
) -> dict[str, Any]:
    """Every property of a layer described (``api/schemas.py``), from its rows."""
    frame = build.store.frame(info.id, ItemQuery(limit=None), access)
    return schemas.properties(info, frame, Formatter("en", base_url(request), _styles(request)))


@router.get("/collections/{collectionId}/schema", summary="Schema of a collection's features")
def schema(
    collection_id: CollectionId,
    request: Request,
    build: BuildDep,
    access: AccessDep,
) -> Response:
    """A JSON Schema of the collection's GeoJSON features: each property's type, title,
    description, unit and values (what ``describedby`` links to; GDAL reads its types)."""
    info = build.store.layer(collection_id, access)
    refuse_unknown(request.query_params.keys(), ())
    here = f"{base_url(request)}collections/{collection_id}/schema"

    def body() -> bytes:
        described = _described(request, build, access, info)
        return _dumps(schemas.feature_schema(info, described, here))

    media = _schema_media(request.headers.get("accept"))
    return conditional(request, build.build_id, access, body, media, SHORT)


@router.get(
    "/collections/{collectionId}/items",
    summary="Features of a collection",
    openapi_extra={"parameters": ItemsParams.document()},
)
async def items(collection_id: CollectionId, request: Request) -> Response:
    """A page of features, filtered by ``bbox``, ``datetime``, queryable properties
    (``?type=one-sided&country=CAF``), a CQL2 ``filter`` and names (``q``); ``next``/``prev``
    links page through the rest.

    Downloads (csv, gpkg, parquet, kml, xlsx) hold every matching feature unless ``limit`` is
    given.
    """
    # The build and the caller as the other routes' dependencies find them, without
    # FastAPI's resolution of two dependencies: a tenth of a small page's time.
    build, access = build_of(request), access_of(request)
    given = ItemsParams.of(request.query_params)
    limit, offset, lang = given.limit, given.offset, given.lang
    fmt = negotiate(given.f, request.headers.get("accept"))
    answer = partial(_items, collection_id, request, build, access, limit, offset, fmt, lang)
    at_once = (
        fmt.key == "json"
        and limit <= AT_ONCE_LIMIT
        and "q" not in request.query_params
        and build.store.answers_at_once(collection_id, access)
    )
    # A small page from memory costs about a millisecond: a worker thread would add a
    # fifth to it. A database, a download or a layer still loading goes to a thread.
    return answer() if at_once else await run_in_threadpool(answer)


def _items(
    collection_id: str,
    request: Request,
    build: Build,
    access: Access,
    limit: int,
    offset: int,
    fmt: Format,
    lang: str | None,
) -> Response:
    """The answer of ``items`` (every parameter but these is read from the query string)."""
    info = build.store.layer(collection_id, access)
    maps_file = Path(request.app.state.settings.maps_file)
    query = items_query(request.query_params, info.queryables, limit, offset, maps_file)
    out = resolve(request.query_params.get("crs"), maps_file, "crs")
    if fmt.key in ("csv", "kml", "xlsx") and not out.crs.is_geographic:
        raise BadQueryError(
            f"f={fmt.key} gives longitude and latitude; {out.uri} is given by GeoJSON, "
            "GeoPackage and GeoParquet",
            parameter="crs",
        )
    if fmt.download and "limit" not in request.query_params:
        query = replace(query, limit=None)
    headers = {"Content-Crs": f"<{out.uri}>"}
    if fmt.download:
        headers["Content-Disposition"] = f'attachment; filename="{collection_id}.{fmt.extension}"'

    def body() -> bytes:
        if fmt.encode is not None:
            frame = build.store.frame(collection_id, query, access)
            return fmt.encode(frame if out.is_crs84 else frame.to_crs(out.crs), collection_id)
        page = build.store.query(collection_id, query, access)
        links = items_links(request, collection_id, page, query, fmt.key)
        if fmt.key == "html":
            return _items_page(request, lang, build, info, page, query, links)
        # No timeStamp (optional in OGC API – Features, and it would have to be the time of
        # the answer): every replica answers the same URL of one build with the same bytes.
        head = {
            "type": "FeatureCollection",
            "numberMatched": page.number_matched,
            "numberReturned": len(page.features),
            "build_id": build.build_id,
            "links": links,
        }
        features = reproject(page.features, out)
        return _dumps(head)[:-1] + b',"features":[' + b",".join(features) + b"]}"

    return conditional(request, build.build_id, access, body, fmt.media_type, ITEMS, headers)


def _items_page(
    request: Request,
    lang: str | None,
    build: BuildDep,
    info: LayerInfo,
    page: FeaturePage,
    query: ItemQuery,
    links: list[dict[str, str]],
) -> bytes:
    """A page of items as a table (scrolled sideways on a narrow screen), with links to each
    feature's full record, to the other pages and to the downloads."""
    language = _language(request, lang)
    base = base_url(request)
    words = Formatter.of_build(language, base, build.catalog, _styles(request))
    records = page.records
    names = list(dict.fromkeys(k for r in records for k in r if k != info.id_field))
    _ = translator(language)
    rows = [
        (
            f"{base}collections/{info.id}/items/{quote(fid, safe=':')}?f=html&lang={language}",
            fid,
            [cell(words.show(n, r.get(n), r)) for n in names],
        )
        for fid, r in zip(page.ids, records, strict=True)
    ]
    pages = [
        {"href": x["href"], "text": text, "rel": rel}
        for rel, text in (("prev", _("Previous page")), ("next", _("Next page")))
        for x in links
        if x["rel"] == rel
    ]
    downloads = [
        {"href": x["href"], "type": x["type"], "text": DOWNLOADS[key]}
        for key in DOWNLOADS
        for x in links
        if x["rel"] == "alternate" and x["type"] == FORMATS[key].media_type
    ]
    first = query.offset + 1
    return _page(
        request,
        lang,
        "items.html",
        layer_title=_(info.title),
        matched=page.number_matched,
        matched_text=number(page.number_matched, language),
        shown=len(rows),
        first=number(first, language),
        last=number(query.offset + len(rows), language),
        pages=pages,
        downloads=downloads,
        columns=[("id", _("Identifier")), *((n, words.label(n)) for n in names)],
        rows=rows,
        build_id=build.build_id,
    )


@router.get("/collections/{collectionId}/items/{featureId}", summary="One feature")
def item(
    collection_id: CollectionId,
    feature_id: Annotated[str, InPath(alias="featureId", description="A feature's id.")],
    request: Request,
    build: BuildDep,
    access: AccessDep,
    f: Annotated[str | None, Query(description="Format: json (GeoJSON, default), html.")] = None,
    crs: CrsParam = None,
    lang: LangParam = None,
) -> Response:
    """One feature by its id, with links to itself and its collection; as a page, its full
    record, each field labelled in the page's language."""
    info = build.store.layer(collection_id, access)
    refuse_unknown(request.query_params.keys(), {*DOCUMENT_PARAMETERS, "crs"})
    fmt = negotiate(f, request.headers.get("accept"), allowed=("json", "html"))
    out = resolve(
        request.query_params.get("crs"), Path(request.app.state.settings.maps_file), "crs"
    )
    feature = build.store.get(collection_id, feature_id, access)
    base = base_url(request)
    other = "html" if fmt.key == "json" else "json"
    links = [
        link(str(request.url), "self", fmt.media_type, "This feature"),
        link(
            ParamsUrl(request)(f=other),
            "alternate",
            FORMATS[other].media_type,
            f"This feature as {other}",
        ),
        link(f"{base}collections/{collection_id}", "collection", JSON, "The collection"),
    ]

    def body() -> bytes:
        if fmt.key == "html":
            record = feature.properties
            language = _language(request, lang)
            name = record.get("name")
            return _page(
                request,
                lang,
                "record.html",
                collection_id=collection_id,
                feature_id=feature_id,
                heading=name if isinstance(name, str) and name else feature_id,
                layer_title=translator(language)(info.title),
                rows=Formatter.of_build(language, base, build.catalog, _styles(request)).rows(
                    record
                ),
                json_url=links[1]["href"],
            )
        return reproject([feature.body], out)[0][:-1] + b',"links":' + _dumps(links) + b"}"

    headers = {"Content-Crs": f"<{out.uri}>"}
    return conditional(request, build.build_id, access, body, fmt.media_type, ITEMS, headers)
