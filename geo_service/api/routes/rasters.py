"""Raster layers' values: the Cloud-Optimized GeoTIFF itself, and the value at a point.

The file is served as it is, with HTTP range requests, so GDAL (``/vsicurl/``), QGIS and
rasterio read the cells they need without downloading the rest; its links name the build, so
a reader never mixes two builds' bytes. A raster is made from public evidence only: both
answers are the same for every caller (``docs/api.md`` says why this, not OGC API – Coverages).
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response

from geo_service.api.caching import ITEMS, conditional, if_none_match
from geo_service.api.deps import AccessDep, Build, BuildDep
from geo_service.api.files import StoredFile
from geo_service.api.links import base_url
from geo_service.api.params import refuse_unknown
from geo_service.errors import NotFoundError

router = APIRouter(tags=["rasters"])

#: The media type of a Cloud-Optimized GeoTIFF (OGC 21-026).
COG = "image/tiff; application=geotiff; profile=cloud-optimized"
JSON = "application/json"
#: A file named by its build never changes.
IMMUTABLE = "public, max-age=31536000, immutable"

BuildParam = Annotated[
    str | None,
    Query(
        alias="build",
        description="The build the file belongs to, as the links name it: a reader that opened "
        "one build's file is answered 404 once another is served, never another file's bytes.",
    ),
]
Lon = Annotated[float, Query(ge=-180, le=180, description="Longitude in degrees (CRS84).")]
Lat = Annotated[float, Query(ge=-90, le=90, description="Latitude in degrees (CRS84).")]


def file_url(base: str, layer: str, build_id: str) -> str:
    """Where a raster layer's file of one build is served."""
    return f"{base}rasters/{layer}.tif?build={build_id}"


def raster_links(base: str, build: Build, layer: str) -> list[dict[str, Any]]:
    """A raster layer's file (``enclosure``, with its size) and its value query (templated)."""
    raster = build.store.raster(layer)
    title = raster.info.title
    return [
        {
            "href": file_url(base, layer, build.build_id),
            "rel": "enclosure",
            "type": COG,
            "title": f"{title}: the Cloud-Optimized GeoTIFF (read in place with HTTP range "
            "requests)",
            "length": raster.path.stat().st_size,
        },
        {
            "href": f"{base}rasters/{layer}/value?lon={{lon}}&lat={{lat}}",
            "rel": "related",
            "type": JSON,
            "title": f"{title}: the value at a point (lon, lat in degrees)",
            "templated": True,
        },
    ]


def every_raster_link(base: str, build: Build) -> list[dict[str, Any]]:
    """The links of every raster layer of a build (for the landing page)."""
    layers = [k for k, v in build.catalog.layers.items() if v.kind == "raster"]
    return [link for layer in layers for link in raster_links(base, build, layer)]


@router.get("/rasters/{layer}.tif", summary="Raster layer as a Cloud-Optimized GeoTIFF")
async def raster_file(
    layer: str, request: Request, build: BuildDep, access: AccessDep, pinned: BuildParam = None
) -> Response:
    """The layer's Cloud-Optimized GeoTIFF, whole or by byte ranges (``Range``: 206 with
    ``Content-Range``; 416 for a range past the end): ``gdalinfo /vsicurl/<this URL>``."""
    raster = build.store.raster(layer)
    refuse_unknown(request.query_params.keys(), ("build",))
    if pinned is not None and pinned != build.build_id:
        raise NotFoundError(
            f"parameter 'build': build {pinned} is no longer served; this layer of the current "
            f"build is {file_url(base_url(request), layer, build.build_id)}"
        )
    headers = {
        # Strong: the bytes of a build's file never change, so byte ranges may be combined.
        "ETag": f'"{build.build_id}-{layer}"',
        "Cache-Control": IMMUTABLE if pinned else ITEMS,
        "X-Build-Id": build.build_id,
    }
    if if_none_match(request, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    return StoredFile(raster.path, media_type=COG, headers=headers, filename=f"{layer}.tif")


@router.get("/rasters/{layer}/value", summary="Value of a raster layer at a point")
def raster_value(
    layer: str, lon: Lon, lat: Lat, request: Request, build: BuildDep, access: AccessDep
) -> Response:
    """The value of the cell under a point, as stored (full resolution, not interpolated);
    ``value`` is null where the layer has none, and a point outside the layer is a 404."""
    raster = build.store.raster(layer)
    refuse_unknown(request.query_params.keys(), ("lon", "lat"))
    base = base_url(request)

    def body() -> bytes:
        cell = raster.value_at(lon, lat)
        meta = raster.info.meta
        return orjson.dumps(
            {
                "layer": layer,
                "title": meta.title,
                "lon": lon,
                "lat": lat,
                "band": next(iter(meta.fields), None),
                "value": cell.value,
                "cell": {"col": cell.col, "row": cell.row, "size_m": meta.cell_m, "crs": meta.crs},
                "build_id": build.build_id,
                "links": [
                    {"href": str(request.url), "rel": "self", "type": JSON, "title": "This value"},
                    *raster_links(base, build, layer)[:1],
                ],
            }
        )

    return conditional(request, build.build_id, access, body, JSON, ITEMS)
