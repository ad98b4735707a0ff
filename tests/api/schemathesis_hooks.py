"""What the API definition cannot say in JSON Schema, told to schemathesis.

Loaded by ``test_openapi.py`` (``SCHEMATHESIS_HOOKS``) against a live server on the session
build. Two kinds of knowledge, both stated in the parameters' descriptions:

- the grammar of ``datetime`` (RFC 3339 instants and intervals), as a strategy for its format;
- values that depend on the data: a feature id to page ``after``, property names, a map's
  layers, a CQL2 filter on the collection's own queryables; and the order of a box's sides.
  A valid request (schemathesis's positive mode) gets real ones, taken from the server; a
  request meant to be invalid is left alone.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import httpx
import schemathesis
from hypothesis import strategies as st

from geo_service.maps.definitions import load_maps
from geo_service.maps.layers import definitions
from tests.conftest import LAYERS

BASE = os.environ["RISKMAP_TEST_URL"].rstrip("/")

DAY = st.dates(min_value=__import__("datetime").date(1990, 1, 1)).map(lambda d: d.isoformat())
INSTANT = st.one_of(DAY, DAY.map(lambda d: f"{d}T12:00:00Z"))
schemathesis.openapi.format(
    "ogc-datetime",
    st.one_of(
        INSTANT,
        st.tuples(INSTANT, INSTANT).map(lambda p: "/".join(sorted(p))),
        INSTANT.map(lambda d: f"../{d}"),
        INSTANT.map(lambda d: f"{d}/.."),
    ),
)


@cache
def _get(path: str) -> Any:
    r = httpx.get(f"{BASE}{path}", timeout=60)
    return r.json() if r.status_code == 200 else None


@cache
def _maps() -> dict[str, Any]:
    return load_maps(LAYERS / "maps.toml", definitions(LAYERS / "maps.toml"))


def _collection(case: schemathesis.Case) -> str | None:
    name = (case.path_parameters or {}).get("collectionId")
    collections = _get("/collections") or {"collections": []}
    known = {c["id"] for c in collections["collections"]}
    return name if name in known else None


def _queryables(collection: str) -> dict[str, Any]:
    return (_get(f"/collections/{collection}/queryables") or {}).get("properties", {})


def _first(collection: str) -> dict[str, Any] | None:
    page = _get(f"/collections/{collection}/items?limit=1")
    return page["features"][0] if page and page["features"] else None


def _filter(collection: str, lang: str | None) -> str:
    """A filter on the collection's first queryable: one every feature answers."""
    name = next((k for k in _queryables(collection) if k != "geometry"), None)
    if name is None:
        return "TRUE" if lang != "cql2-json" else "true"
    if lang == "cql2-json":
        return f'{{"op": "not", "args": [{{"op": "isNull", "args": [{{"property": "{name}"}}]}}]}}'
    return f"{name} IS NULL OR NOT {name} IS NULL"


def _corners(values: Any, latitude_first: bool) -> Any:
    """A box in another CRS: its lower corner then its upper one (latitudes within ±90)."""
    if isinstance(values, str):
        try:
            values = [float(v) for v in values.split(",")]
        except ValueError:
            return values
    if not isinstance(values, list) or len(values) not in (4, 6):
        return values
    v = [float(x) for x in values]
    if len(v) == 6:
        v = [v[0], v[1], v[3], v[4]]
    if latitude_first:
        v[0], v[2] = max(min(v[0], 90.0), -90.0), max(min(v[2], 90.0), -90.0)
    v[0], v[2] = sorted((v[0], v[2]))
    v[1], v[3] = sorted((v[1], v[3]))
    return v


def _box(values: Any) -> Any:
    """A box with south not north of north, and latitudes within ±90."""
    if isinstance(values, str):  # the coverage phase hands over serialised values
        try:
            values = [float(v) for v in values.split(",")]
        except ValueError:
            return values
    if isinstance(values, list) and len(values) in (4, 6):
        v = [float(x) for x in values]
        i, j = (1, 3) if len(v) == 4 else (1, 4)
        e = 2 if len(v) == 4 else 3
        v[i], v[j] = sorted((max(min(v[i], 90.0), -90.0), max(min(v[j], 90.0), -90.0)))
        if len(v) == 6:
            v[0], v[e] = (max(min(v[0], 180.0), -180.0), max(min(v[e], 180.0), -180.0))
        return v
    return values


def _pick(generated: Any, real: list[str]) -> Any:
    """One of the real values, chosen by the generated one (so runs vary, and repeat)."""
    if not real:
        return generated
    key = sum(str(generated).encode())
    return real[key % len(real)]


def _rasters() -> dict[str, int]:
    """Raster layers by the size of their file, as the landing page links them."""
    links = (_get("/") or {"links": []})["links"]
    files = [link for link in links if link["rel"] == "enclosure"]
    return {f["href"].split("/rasters/")[1].split(".tif")[0]: f["length"] for f in files}


def _raster_query(case: schemathesis.Case, query: dict[str, Any]) -> None:
    """The current build for a file; a point inside the layer (where the value is asked)."""
    if "build" in query:
        query["build"] = (_get("/health") or {}).get("build_id")
    layer = (case.path_parameters or {}).get("layer")
    tilejson = _get(f"/tiles/{layer}/tilejson.json") if layer else None
    try:
        lon, lat = float(query["lon"]), float(query["lat"])
    except (KeyError, TypeError, ValueError):
        return
    if tilejson is not None:
        west, south, east, north = tilejson["bounds"]
        query["lon"] = west + (lon + 180) / 360 * (east - west)
        query["lat"] = south + (lat + 90) / 180 * (north - south)


def _real_path(case: schemathesis.Case) -> None:
    """Path parameters that name things that exist: a collection, a feature of it, a layer,
    a map, a tile of the world."""
    params = dict(case.path_parameters or {})
    collections = [c["id"] for c in (_get("/collections") or {"collections": []})["collections"]]
    if "collectionId" in params:
        params["collectionId"] = _pick(params["collectionId"], collections)
        if "featureId" in params:
            first = _first(params["collectionId"])
            params["featureId"] = first["id"] if first else params["featureId"]
    if "layer" in params:
        raster = ["risk_surface"] if case.operation.path.endswith(".png") else []
        tiled = raster or collections
        if case.operation.path.endswith("legend.json"):
            tiled = ["risk_surface"]
        params["layer"] = _pick(params["layer"], tiled + ["risk_surface"] * bool(not raster))
    if case.operation.path.startswith("/rasters/") and "layer" in params:
        # Every case reads what it asks for whole: files from the smallest raster only.
        files = sorted(_rasters(), key=_rasters().__getitem__)[:1]
        tif = case.operation.path.endswith(".tif")
        params["layer"] = _pick(params["layer"], files if tif else sorted(_rasters()))
    if "map_id" in params:
        params["map_id"] = _pick(params["map_id"], sorted(_maps()))
        if "layer" in params:  # a QGIS style: one of the map's layers of features
            drawn = [x for x in _maps()[params["map_id"]].layers if x in collections]
            params["layer"] = _pick(params["layer"], drawn)
    if {"z", "x", "y"} <= set(params) and isinstance(params["z"], int):
        n = 2 ** params["z"]
        # A stateful link may fill them with its own template text ('{x}'): tile 0 then.
        params["x"], params["y"] = _whole(params["x"]) % n, _whole(params["y"]) % n
    case.path_parameters = params


def _whole(value: Any) -> int:
    """A path parameter as a whole number (0 when it is none)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


@schemathesis.hook
def map_case(context: Any, case: schemathesis.Case) -> schemathesis.Case:
    """Real values where the data decides what is valid, in the valid requests only."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return case
    _real_path(case)
    if case.operation.path == "/oembed" and case.query:
        case.query = {
            **case.query,
            "url": f"{BASE}/maps/{_pick(case.query.get('url'), sorted(_maps()))}",
        }
    if not case.query:
        return case
    query = dict(case.query)
    if case.operation.path.startswith("/rasters/"):
        _raster_query(case, query)
    collection = _collection(case)
    path = case.operation.path
    crs84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
    if "bbox" in query and query.get("bbox-crs", crs84) != crs84:
        query["bbox"] = _corners(query["bbox"], str(query["bbox-crs"]).endswith("/4326"))
    elif "bbox" in query:
        query["bbox"] = _box(query["bbox"])
    if query.get("f") in ("csv", "kml", "xlsx") and query.get("crs", crs84) != crs84:
        query["crs"] = crs84  # those formats give longitude, latitude (documented)
        if path.startswith(("/maps", "/embed")) and isinstance(query["bbox"], list):
            west, south, east, north = query["bbox"][:4]
            query["bbox"] = [min(west, east), south, max(west, east) + 0.5, north + 0.5]
            if query["bbox"][3] > 90:
                query["bbox"][1], query["bbox"][3] = 89.0, 89.5
            if query["bbox"][2] > 180:
                query["bbox"][0], query["bbox"][2] = 179.0, 179.5
    if collection is not None:
        if "after" in query:
            first = _first(collection)
            query["after"] = first["id"] if first else None
        if "properties" in query:
            first = _first(collection)
            names = list(first["properties"]) if first else []
            asked = query["properties"]
            count = len(asked.split(",")) if isinstance(asked, str) else len(asked or [])
            query["properties"] = names[: max(count, 1)]
        if "filter" in query:
            query["filter"] = _filter(collection, query.get("filter-lang"))
        if "sortby" in query:
            names = [k for k in _queryables(collection) if k != "geometry"]
            query["sortby"] = [f"-{names[0]}"] if names else None
    else:
        for name in ("after", "properties", "filter", "sortby"):
            query.pop(name, None)
    if path.startswith("/tiles/") and "filter" in query:
        layer = (case.path_parameters or {}).get("layer")
        query["filter"] = _filter(layer, query.get("filter-lang")) if layer else None
    if "layers" in query and path.startswith(("/maps/", "/embed/")):
        found = _maps().get((case.path_parameters or {}).get("map_id"))
        asked = query["layers"]
        count = len(asked.split(",")) if isinstance(asked, str) and asked else len(asked or [])
        query["layers"] = list(found.layers[:count]) if found else None
    if query.get("after") is not None and (query.get("q") is not None or query.get("sortby")):
        query.pop("after")  # a search or a sort pages by offset (documented)
    # Serialised as the API reads lists (comma-separated), whichever phase made the case.
    case.query = {
        k: ",".join(_text(x) for x in v) if isinstance(v, list) else v
        for k, v in query.items()
        if v is not None
    }
    return case


def _text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)
