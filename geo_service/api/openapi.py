"""The API definition as OpenAPI 3.0, which OGC API – Features names (``oas30``).

FastAPI writes the paths and parameters from the routes; this module says the rest, in one
table (``OPERATIONS``): what each operation answers — every status, with the error schema, and
every media type its ``f`` values and Accept give — and the parameters whose form a route's
types cannot tell (comma lists, CQL2, the OGC components GDAL looks up by ``$ref``). FastAPI's
3.1 forms are rewritten in 3.0 terms; a route missing from the table stops the document.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from geo_service.api.crs import supported
from geo_service.api.params import MAX_LIMIT, MAX_OFFSET
from geo_service.render.features import FORMATS
from geo_service.store.cql import LANGUAGES
from geo_service.store.raster import MAX_ZOOM

VERSION = "3.0.3"
HTML = "text/html"
JSON = "application/json"
GEOJSON = "application/geo+json"


def _ref(name: str, kind: str = "schemas") -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


STRING = {"type": "string"}
LINKS = {"type": "array", "items": _ref("Link")}
SCHEMAS: dict[str, Any] = {
    "Exception": {
        "type": "object",
        "description": "Every error: a short code and what to fix.",
        "required": ["code", "description"],
        "properties": {"code": STRING, "description": STRING},
        "example": {
            "code": "BadQuery",
            "description": "parameter 'bbox': south (9) is north of north (8)",
        },
    },
    "Link": {
        "type": "object",
        "required": ["href", "rel"],
        "properties": {"href": STRING, "rel": STRING, "type": STRING, "title": STRING},
    },
    "LandingPage": {
        "type": "object",
        "required": ["links"],
        "properties": {"title": STRING, "description": STRING, "build_id": STRING, "links": LINKS},
    },
    "ConfClasses": {
        "type": "object",
        "required": ["conformsTo"],
        "properties": {"conformsTo": {"type": "array", "items": STRING}},
    },
    "Collection": {
        "type": "object",
        "required": ["id", "links"],
        "properties": {
            "id": STRING,
            "title": STRING,
            "description": STRING,
            "itemType": STRING,
            "extent": {"type": "object"},
            "crs": {"type": "array", "items": STRING},
            "storageCrs": STRING,
            "count": {"type": "integer", "minimum": 0},
            "links": LINKS,
        },
    },
    "Collections": {
        "type": "object",
        "required": ["collections", "links"],
        "properties": {
            "collections": {"type": "array", "items": _ref("Collection")},
            "links": LINKS,
        },
    },
    "FeatureGeoJSON": {
        "type": "object",
        "required": ["type", "geometry", "properties"],
        "properties": {
            "type": {"type": "string", "enum": ["Feature"]},
            "id": {"oneOf": [STRING, {"type": "integer"}]},
            "geometry": {"type": "object", "nullable": True},
            "properties": {"type": "object", "nullable": True},
            "links": LINKS,
        },
    },
    "FeatureCollectionGeoJSON": {
        "type": "object",
        "required": ["type", "features"],
        "properties": {
            "type": {"type": "string", "enum": ["FeatureCollection"]},
            "features": {"type": "array", "items": _ref("FeatureGeoJSON")},
            "numberMatched": {"type": "integer", "minimum": 0},
            "numberReturned": {"type": "integer", "minimum": 0},
            "build_id": STRING,
            "links": LINKS,
        },
    },
    "Queryables": {
        "type": "object",
        "description": "A JSON Schema of the properties a filter may name.",
        "required": ["type", "properties"],
        "properties": {"type": STRING, "title": STRING, "properties": {"type": "object"}},
    },
    "TileJSON": {
        "type": "object",
        "required": ["tilejson", "tiles"],
        "properties": {
            "tilejson": STRING,
            "tiles": {"type": "array", "items": STRING},
            "minzoom": {"type": "integer"},
            "maxzoom": {"type": "integer"},
            "bounds": {"type": "array", "items": {"type": "number"}},
            "center": {"type": "array", "items": {"type": "number"}},
        },
    },
    "Legend": {
        "type": "object",
        "required": ["stops"],
        "properties": {"title": STRING, "stops": {"type": "array"}},
    },
    "RasterValue": {
        "type": "object",
        "description": "The value of a raster's cell under a point (null: no value there).",
        "required": ["layer", "lon", "lat", "value", "build_id"],
        "properties": {
            "layer": STRING,
            "title": STRING,
            "lon": {"type": "number", "minimum": -180, "maximum": 180},
            "lat": {"type": "number", "minimum": -90, "maximum": 90},
            "band": {"type": "string", "nullable": True},
            "value": {"type": "number", "nullable": True},
            "cell": {
                "type": "object",
                "properties": {
                    "col": {"type": "integer", "minimum": 0},
                    "row": {"type": "integer", "minimum": 0},
                    "size_m": {"type": "number", "nullable": True},
                    "crs": {"type": "string", "nullable": True},
                },
            },
            "build_id": STRING,
            "links": LINKS,
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "build_id"],
        "properties": {"status": STRING, "build_id": STRING, "version": STRING},
    },
    "OEmbed": {
        "type": "object",
        "required": ["type", "version", "html"],
        "properties": {
            "type": STRING,
            "version": STRING,
            "html": STRING,
            "width": {"type": "integer"},
            "height": {"type": "integer"},
        },
    },
}

#: Errors every operation may answer, and the one status for each.
ERRORS = {
    "400": "A parameter that cannot be understood; the description names it and says why.",
    "401": "A token was sent and is not valid (a request without one is answered as public).",
    "404": "No such collection, feature, layer, map or tile.",
    "413": "A request with a body (this API only reads).",
    "414": "A URL longer than the service reads.",
    "503": "No build has been published yet.",
}
NOT_MODIFIED = {"description": "Not Modified: the ETag sent is still the answer's."}
#: Errors every operation may answer, whatever it is.
EVERYWHERE = ("401", "413", "414", "503")


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            JSON: {"schema": _ref("Exception")},
            HTML: {"schema": {"type": "string"}},
        },
    }


def _content(*pairs: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {media: {"schema": schema} for media, schema in pairs}


BYTES = {"type": "string", "format": "binary"}
TEXT = {"type": "string"}


def _items_content() -> dict[str, Any]:
    """Every items format by its media type (``f=`` or Accept)."""
    schemas = {"json": _ref("FeatureCollectionGeoJSON"), "html": TEXT, "csv": TEXT}
    return {
        f.media_type.split(";")[0]: {"schema": schemas.get(f.key, BYTES)} for f in FORMATS.values()
    }


def _document(schema: str) -> dict[str, Any]:
    return _content((JSON, _ref(schema)), (HTML, TEXT))


@dataclass(frozen=True)
class Operation:
    """What one operation answers beyond its route's signature."""

    #: Media type → schema of its 200 answer.
    ok: dict[str, Any]
    #: Error statuses besides ``EVERYWHERE``.
    errors: tuple[str, ...] = ("400", "404")
    #: Whether it answers 304 to a matching If-None-Match.
    conditional: bool = True
    #: Query parameters as the document declares them (a components name, or a schema).
    params: dict[str, str | dict[str, Any]] = field(default_factory=dict)
    #: Other statuses and their description.
    others: dict[str, str] = field(default_factory=dict)
    #: Statuses answered with more than the error body (ranges of a file): whole responses.
    responses: dict[str, dict[str, Any]] = field(default_factory=dict)


def _formats(*keys: str) -> dict[str, Any]:
    return {"schema": {"type": "string", "enum": list(keys)}}


DOCUMENT_F = {"f": _formats("json", "html")}
ITEMS_F = {"f": _formats(*FORMATS)}
COMMA_LIST = {"style": "form", "explode": False}
#: The OGC components (GDAL reads ``limit`` through its ``$ref``).
PARAMETERS: dict[str, Any] = {
    "limit": {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": "Features per page (downloads: every match unless limit is given).",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100},
        "style": "form",
        "explode": False,
    },
    "bbox": {
        "name": "bbox",
        "in": "query",
        "required": False,
        "description": "west,south,east,north (or with heights: west,south,min,east,north,max) "
        "in degrees (CRS84); longitudes -180..180, latitudes -90..90, south not north of "
        "north; west greater than east crosses 180°.",
        "schema": {  # as OGC API – Features Part 1 declares it
            "type": "array",
            "oneOf": [{"minItems": 4, "maxItems": 4}, {"minItems": 6, "maxItems": 6}],
            "items": {"type": "number", "minimum": -180, "maximum": 180},
        },
        **COMMA_LIST,
    },
    "datetime": {
        "name": "datetime",
        "in": "query",
        "required": False,
        "description": "An RFC 3339 date or date-time, or an interval (start/end, ../end, "
        "start/..): the features dated then, and those with no date (on a collection whose "
        "features carry no date, every feature). A bare date is the whole day.",
        "schema": {"type": "string", "format": "ogc-datetime"},
        "style": "form",
        "explode": False,
    },
    "filter": {
        "name": "filter",
        "in": "query",
        "required": False,
        "description": "A CQL2 filter on the collection's queryables, its date and its geometry "
        "(OGC API – Features Part 3): score > 50 AND country = 'SLE', name LIKE 'Ko%', "
        "S_INTERSECTS(geometry, POLYGON((…))), T_INTERSECTS(date, INTERVAL('2020-01-01', "
        "'2020-12-31')).",
        "schema": {"type": "string", "format": "cql2"},
    },
    "filter-lang": {
        "name": "filter-lang",
        "in": "query",
        "required": False,
        "description": "The filter's language.",
        "schema": {"type": "string", "enum": list(LANGUAGES), "default": "cql2-text"},
    },
}
ITEMS_PARAMS: dict[str, str | dict[str, Any]] = {
    "limit": "limit",
    "bbox": "bbox",
    "datetime": "datetime",
    "filter": "filter",
    "filter-lang": "filter-lang",
    "offset": {"schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0}},
    "after": {"schema": {"type": "string", "format": "feature-id"}},
    "sortby": {
        "schema": {"type": "array", "items": {"type": "string", "format": "sort-key"}},
        **COMMA_LIST,
    },
    "properties": {
        "schema": {"type": "array", "items": {"type": "string", "format": "property-name"}},
        **COMMA_LIST,
    },
    **ITEMS_F,
}
TILE = {
    "z": {"schema": {"type": "integer", "minimum": 0, "maximum": MAX_ZOOM}},
    "x": {"schema": {"type": "integer", "minimum": 0}},
    "y": {"schema": {"type": "integer", "minimum": 0}},
}
VIEW = {
    "lat": {"schema": {"type": "number", "minimum": -90, "maximum": 90}},
    "lon": {"schema": {"type": "number", "minimum": -180, "maximum": 180}},
    "z": {"schema": {"type": "integer", "minimum": 0, "maximum": 18}},
    "bbox": {
        "schema": {
            "type": "array",
            "minItems": 4,
            "maxItems": 4,
            "items": {"type": "number", "minimum": -180, "maximum": 180},
        },
        **COMMA_LIST,
    },
    "layers": {
        "schema": {"type": "array", "items": {"type": "string", "format": "map-layer"}},
        **COMMA_LIST,
    },
    "from": {"schema": {"type": "integer"}},
    "to": {"schema": {"type": "integer"}},
}
PNG = {"image/png": {"schema": BYTES}}
COG = "image/tiff; application=geotiff; profile=cloud-optimized"
CONTENT_RANGE = {"Content-Range": {"schema": {"type": "string"}}}
#: A file's byte ranges (RFC 9110 §14), as Starlette's FileResponse answers them.
RANGES: dict[str, dict[str, Any]] = {
    "206": {
        "description": "Partial Content: the byte range asked for (Range), with Content-Range; "
        "several ranges as multipart/byteranges.",
        "headers": CONTENT_RANGE,
        "content": {COG: {"schema": BYTES}, "multipart/byteranges": {"schema": BYTES}},
    },
    "400": {
        "description": "A parameter that cannot be understood, or a Range header that is not "
        "a byte range (answered in plain text).",
        "content": {
            JSON: {"schema": _ref("Exception")},
            HTML: {"schema": {"type": "string"}},
            "text/plain": {"schema": TEXT},
        },
    },
    "416": {
        "description": "Range Not Satisfiable: the range starts past the end of the file; "
        "Content-Range gives the file's length (bytes */length).",
        "headers": CONTENT_RANGE,
        "content": {"text/plain": {"schema": TEXT}},
    },
}
POINT = {
    "lon": {"schema": {"type": "number", "minimum": -180, "maximum": 180}},
    "lat": {"schema": {"type": "number", "minimum": -90, "maximum": 90}},
}

OPERATIONS: dict[str, Operation] = {
    "/health": Operation(_content((JSON, _ref("Health"))), errors=(), conditional=False),
    "/": Operation(_document("LandingPage"), errors=("400",), params=DOCUMENT_F),
    "/conformance": Operation(_document("ConfClasses"), errors=("400",), params=DOCUMENT_F),
    "/collections": Operation(_document("Collections"), errors=("400",), params=DOCUMENT_F),
    "/collections/{collectionId}": Operation(_document("Collection"), params=DOCUMENT_F),
    "/collections/{collectionId}/queryables": Operation(
        _content(
            ("application/schema+json", _ref("Queryables")),
            (JSON, _ref("Queryables")),
            (HTML, TEXT),
        ),
        params=DOCUMENT_F,
    ),
    "/collections/{collectionId}/schema": Operation(
        _content(("application/schema+json", _ref("Queryables")), (JSON, _ref("Queryables")))
    ),
    "/collections/{collectionId}/items": Operation(_items_content(), params=ITEMS_PARAMS),
    "/collections/{collectionId}/items/{featureId}": Operation(
        _content((GEOJSON, _ref("FeatureGeoJSON")), (HTML, TEXT)), params=DOCUMENT_F
    ),
    "/tiles/{layer}/{z}/{x}/{y}.png": Operation(PNG, params=TILE),
    "/tiles/{layer}/{z}/{x}/{y}.mvt": Operation(
        {"application/vnd.mapbox-vector-tile": {"schema": BYTES}},
        params={**TILE, "filter": "filter", "filter-lang": "filter-lang"},
    ),
    "/tiles/{layer}/legend.json": Operation(_content((JSON, _ref("Legend")))),
    "/tiles/{layer}/tilejson.json": Operation(_content((JSON, _ref("TileJSON")))),
    "/rasters/{layer}.tif": Operation(
        {COG: {"schema": BYTES}},
        params={"build": {"schema": {"type": "string", "format": "build-id"}}},
        responses=RANGES,
    ),
    "/rasters/{layer}/value": Operation(_content((JSON, _ref("RasterValue"))), params=POINT),
    "/maps": Operation(_content((HTML, TEXT)), errors=("400",)),
    "/maps/{map_id}.png": Operation(
        PNG,
        params={
            **VIEW,
            "width": {"schema": {"type": "integer", "minimum": 100, "maximum": 3000}},
            "height": {"schema": {"type": "integer", "minimum": 100, "maximum": 3000}},
        },
    ),
    "/maps/{map_id}/sources": Operation(_content((HTML, TEXT))),
    "/maps/{map_id}": Operation(_content((HTML, TEXT)), params=VIEW),
    "/embed/{map_id}": Operation(_content((HTML, TEXT)), params=VIEW),
    "/oembed": Operation(
        _content((JSON, _ref("OEmbed")), ("text/xml", TEXT)),
        params={"format": _formats("json", "xml")},
        others={"501": "A format other than json or xml (oEmbed 1.0 §2.3.4)."},
    ),
    # Map styles (routes/styles.py): a MapLibre style per map, a QGIS style per layer.
    "/styles": Operation(
        _content((JSON, {"type": "object", "required": ["styles", "links"]})), errors=("400",)
    ),
    "/styles/{map_id}": Operation(
        _content(
            (
                "application/vnd.mapbox.style+json",
                {"type": "object", "required": ["version", "sources", "layers"]},
            ),
            (HTML, TEXT),
        ),
        params=DOCUMENT_F,
    ),
    "/styles/{map_id}/{layer}.qml": Operation({"application/vnd.qgis.qml": {"schema": TEXT}}),
    **{
        f"/styles/sprite{ratio}.{ext}": Operation(
            PNG if ext == "png" else _content((JSON, {"type": "object"})), errors=("400",)
        )
        for ratio in ("", "@2x")
        for ext in ("json", "png")
    },
}


def to_oas30(node: Any) -> Any:
    """A 3.1 schema tree rewritten in 3.0 terms: ``nullable`` for ``{"type": "null"}``
    options, ``enum`` for ``const``, one ``example`` for ``examples``."""
    if isinstance(node, list):
        return [to_oas30(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_oas30(v) for k, v in node.items()}
    for key in ("anyOf", "oneOf"):
        options = out.get(key)
        if isinstance(options, list) and {"type": "null"} in options:
            rest = [o for o in options if o != {"type": "null"}]
            out.pop(key)
            if len(rest) == 1:
                out.update(rest[0])
            else:
                out[key] = rest
            out["nullable"] = True
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if isinstance(out.get("examples"), list) and "schema" not in out:
        examples = out.pop("examples")
        if examples:
            out["example"] = examples[0]
    if isinstance(out.get("type"), list):  # ["string", "null"]
        types = [t for t in out["type"] if t != "null"]
        if len(types) < len(out["type"]):
            out["nullable"] = True
        out["type"] = types[0] if len(types) == 1 else types
    return out


def _parameters(found: list[dict[str, Any]], declared: Operation) -> list[dict[str, Any]]:
    """The route's parameters with the table's forms (a component by ``$ref``, or a schema
    and style); optional values are simply not sent, so none is ``nullable``."""
    out = []
    for p in found:
        p.get("schema", {}).pop("nullable", None)
        p.get("schema", {}).pop("title", None)
        form = declared.params.get(p["name"]) if p["in"] == "query" else None
        if p["in"] == "path":
            form = declared.params.get(p["name"]) if p["name"] in TILE else None
        if isinstance(form, str):
            out.append(_ref(form, "parameters"))
            continue
        if form is not None:
            p = {**p, **copy.deepcopy(form)}
        p.get("schema", {}).pop("description", None)
        out.append(p)
    return out


def _responses(declared: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {"200": {"description": "OK", "content": declared.ok}}
    if declared.conditional:
        out["304"] = NOT_MODIFIED
    for status in sorted({*declared.errors, *EVERYWHERE}):
        out[status] = _ref(status, "responses")
    for status, text in declared.others.items():
        out[status] = _error(text)
    out.update(copy.deepcopy(declared.responses))
    return dict(sorted(out.items()))


def document(app: FastAPI) -> dict[str, Any]:
    """The whole API definition."""
    doc = to_oas30(
        get_openapi(
            title=app.title,
            version=app.version,
            openapi_version=VERSION,
            description=app.description,
            routes=app.routes,
        )
    )
    paths = {r.path for r in app.routes if isinstance(r, APIRoute) and r.include_in_schema}
    missing = paths - set(OPERATIONS)
    if missing:
        raise KeyError(f"operations not described in api/openapi.py: {sorted(missing)}")
    served = list(supported(Path(app.state.settings.maps_file)))
    for path, methods in doc["paths"].items():
        declared = OPERATIONS[path]
        for op in methods.values():
            op["parameters"] = _parameters(op.get("parameters", []), declared)
            op["responses"] = _responses(declared)
            for p in op["parameters"]:
                if p.get("name") in ("crs", "bbox-crs", "filter-crs"):
                    p["schema"] = {"type": "string", "enum": served, "default": served[0]}
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas.update(copy.deepcopy(SCHEMAS))
    components["parameters"] = copy.deepcopy(PARAMETERS)
    components["responses"] = {status: _error(text) for status, text in ERRORS.items()}
    return doc


def install(app: FastAPI) -> None:
    """Serve the definition at ``/openapi.json`` (written once, when first asked for)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
