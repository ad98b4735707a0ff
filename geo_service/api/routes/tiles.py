"""XYZ tiles: PNG for raster layers, Mapbox Vector Tiles for vector ones, and TileJSON 3.0.

Tiles of a build never change: they are cached in memory after the first request, carry a
long Cache-Control and an ETag, and z/x/y outside the tile matrix answer 404, never 500.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import orjson
import shapely
from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from geo_service.api.caching import SHORT, TILES, client_has, conditional
from geo_service.api.deps import AccessDep, BuildDep
from geo_service.api.drawings import layer_definitions, map_definitions
from geo_service.api.links import base_url
from geo_service.api.params import FilterLangParam, FilterParam, parse_filter, refuse_unknown
from geo_service.api.routes.rasters import raster_links
from geo_service.errors import NotFoundError
from geo_service.publication import AREAS
from geo_service.render import png
from geo_service.store.base import ItemQuery, LayerInfo, RasterSource
from geo_service.store.catalog import BuildCatalog, CatalogLayer
from geo_service.store.raster import MAX_ZOOM
from geo_service.styles import rules

router = APIRouter(tags=["tiles"])

PNG = "image/png"
MVT = "application/vnd.mapbox-vector-tile"
#: What a group of points carries besides the properties of the point it shows.
GROUP_FIELDS = {"cluster": "Boolean", "point_count": "Number", "point_count_abbreviated": "String"}
#: Vector tiles are served up to this zoom (beyond it a client overzooms the last level).
VECTOR_MAX_ZOOM = 16


def _check_tile(z: int, x: int, y: int, max_zoom: int) -> None:
    if not 0 <= z <= max_zoom:
        raise NotFoundError(f"zoom {z} is outside 0..{max_zoom}")
    n = 2**z
    if not (0 <= x < n and 0 <= y < n):
        raise NotFoundError(f"tile {z}/{x}/{y} does not exist: x and y run 0..{n - 1} at zoom {z}")


def _attribution(build: BuildCatalog, layer: CatalogLayer) -> str:
    sources = [build.sources[key] for key in layer.sources]
    return "; ".join(dict.fromkeys(s.attribution for s in sources))


@router.get("/tiles/{layer}/{z}/{x}/{y}.png", summary="Raster tile (PNG)")
async def raster_tile(
    layer: str, z: int, x: int, y: int, request: Request, build: BuildDep, access: AccessDep
) -> Response:
    """A 256-pixel tile of a raster layer, cividis colours, transparent where there is no data.

    A tile already rendered is answered on the event loop; only rendering goes to a thread.
    """
    raster = build.store.raster(layer)
    _check_tile(z, x, y, MAX_ZOOM)
    key = (layer, z, x, y)
    data = build.raster_tiles.get(key)
    if data is None and not client_has(request, build.build_id, access):
        data = await run_in_threadpool(render_tile, raster, z, x, y)
        build.raster_tiles.put(key, data)
    return conditional(request, build.build_id, access, lambda: data or b"", PNG, TILES)


def render_tile(raster: RasterSource, z: int, x: int, y: int) -> bytes:
    """The PNG of one tile: scores in cividis, people per cell in their own scale;
    transparent where the layer has no value."""
    image = raster.tile_data(z, x, y)
    if image is None:
        return png.empty_tile()
    return png.renderer(raster.info.meta.fields)(image)


PropertiesParam = Annotated[
    str | None,
    Query(
        description="Properties each feature carries besides those the maps' styles draw "
        "with (the id, name and classes), comma-separated.",
        examples=["population,admin1"],
    ),
]


def tile_fields(request: Request, info: LayerInfo, properties: str | None) -> tuple[str, ...]:
    """The properties a vector tile carries: the id, what the styles draw the layer with
    (its definition and the maps' ``where`` filters), and those asked for."""
    asked = [p for p in (properties or "").split(",") if p]  # the store checks them
    if info.id in AREAS.values():  # a few fields each, all drawn or shown
        return tuple(dict.fromkeys([*info.fields, *asked]))
    style = layer_definitions(request).get(info.id)
    wanted = [info.id_field, "name", *(rules.tile_fields(style) if style else [])]
    wanted += [k for m in map_definitions(request).values() for k in m.where.get(info.id, {})]
    kept = [f for f in dict.fromkeys(wanted) if f in info.fields]
    return tuple(dict.fromkeys([*kept, *asked]))


@router.get("/tiles/{layer}/{z}/{x}/{y}.mvt", summary="Vector tile (MVT)")
def vector_tile(
    layer: str,
    z: int,
    x: int,
    y: int,
    request: Request,
    build: BuildDep,
    access: AccessDep,
    filter: FilterParam = None,
    filter_lang: FilterLangParam = None,
    properties: PropertiesParam = None,
) -> Response:
    """A Mapbox Vector Tile of a vector layer: geometry simplified per zoom, points grouped
    below the layer's detail zoom as the map pages group them (a group: ``cluster``,
    ``point_count`` and the properties of its highest-scoring point), the properties the
    styles draw with and those ``properties`` names; only the features a CQL2 ``filter``
    matches, if one is given."""
    info = build.store.layer(layer, access)
    _check_tile(z, x, y, MAX_ZOOM)
    refuse_unknown(request.query_params.keys(), ("filter", "filter-lang", "properties"))
    flt = parse_filter(request.query_params)
    fields = tile_fields(request, info, properties)
    return conditional(
        request,
        build.build_id,
        access,
        lambda: build.store.vector_tile(layer, z, x, y, access, flt, fields),
        MVT,
        TILES,
    )


@router.get("/tiles/{layer}/legend.json", summary="Legend of a raster layer")
def legend(layer: str, request: Request, build: BuildDep, access: AccessDep) -> Response:
    """The colours of a raster layer's values, for a legend."""
    build.store.raster(layer)

    def body() -> bytes:
        return orjson.dumps(
            {
                "layer": layer,
                "title": "Risk score (0 = none, 1 = highest)",
                "colormap": png.COLORMAP_NAME,
                "stops": png.legend(),
                "nodata": "transparent: no evidence within reach, or outside coverage",
            }
        )

    return conditional(request, build.build_id, access, body, "application/json", SHORT)


def _middle(bounds: tuple[float, float, float, float] | None) -> tuple[float, float]:
    west, south, east, north = bounds or (-180.0, -85.0511, 180.0, 85.0511)
    return (west + east) / 2, (south + north) / 2


def _centre(build: BuildDep, layer: str, access: AccessDep) -> tuple[float, float]:
    """Where most of a vector layer's features are: the median of their longitudes and of
    their latitudes (the middle of its bounds can lie in an empty ocean when a few features
    are far from the rest)."""
    frame = build.store.frame(layer, ItemQuery(limit=None, properties=()), access)
    points = shapely.point_on_surface(frame.geometry.dropna().to_numpy())
    if not len(points):
        return _middle(None)
    return (
        round(float(np.median(shapely.get_x(points))), 5),
        round(float(np.median(shapely.get_y(points))), 5),
    )


@router.get("/tiles/{layer}/tilejson.json", summary="TileJSON 3.0")
def tilejson(layer: str, request: Request, build: BuildDep, access: AccessDep) -> Response:
    """Where a layer's tiles are, their zooms, bounds, attribution and (vector) fields."""
    meta = build.catalog.layers.get(layer)
    if meta is None:
        raise NotFoundError(f"no layer '{layer}'; layers are {', '.join(build.catalog.layers)}")
    base = base_url(request)
    raster = meta.kind == "raster"
    if raster:
        maxzoom = build.store.raster(layer).native_zoom
    else:
        info = build.store.layer(layer, access)  # bounds of what this caller may see
        meta = info.meta
        maxzoom = VECTOR_MAX_ZOOM

    def body() -> bytes:
        west, south, east, north = meta.bounds or (-180.0, -85.0511, 180.0, 85.0511)
        doc: dict[str, Any] = {
            "tilejson": "3.0.0",
            "name": meta.title,
            "description": meta.title,
            "version": "1.0.0",
            "attribution": _attribution(build.catalog, meta),
            "scheme": "xyz",
            "tiles": [f"{base}tiles/{layer}/{{z}}/{{x}}/{{y}}.{'png' if raster else 'mvt'}"],
            "minzoom": 0,
            "maxzoom": maxzoom,
            "bounds": [west, south, east, north],
            "center": [
                *(
                    _centre(build, layer, access)
                    if not raster
                    else build.store.raster(layer).centre
                ),
                min(4, maxzoom),
            ],
            "build_id": build.build_id,
        }
        if raster:
            doc["legend"] = f"{base}tiles/{layer}/legend.json"
            # The values behind the colours: the file itself, and the value at a point.
            doc["links"] = raster_links(base, build, layer)
        else:
            types = {
                "string": "String",
                "integer": "Number",
                "number": "Number",
                "boolean": "Boolean",
            }
            doc["vector_layers"] = [
                {
                    "id": layer,
                    "description": meta.title,
                    "minzoom": 0,
                    "maxzoom": maxzoom,
                    # The properties a tile carries unless ``properties`` asks for more:
                    # lists (evidence ids) and dates as text; a group of points also has
                    # its count.
                    "fields": {
                        **{
                            c: types.get(info.queryables.get(c, ""), "String")
                            for c in tile_fields(request, info, None)
                        },
                        **GROUP_FIELDS,
                    },
                }
            ]

        return orjson.dumps(doc)

    return conditional(request, build.build_id, access, body, "application/json", SHORT)
