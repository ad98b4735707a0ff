"""Vector tiles (Mapbox Vector Tile 2.1) of a layer: the properties asked for, geometry per
zoom, points grouped below the layer's detail zoom (``groups.py``).

Geometries are projected to Web Mercator once per layer, then per tile: the rows whose box
meets the tile grown by a buffer, clipped to it (so lines and polygons continue seamlessly
across tile edges), simplified to a pixel of that zoom, and quantised to the tile's 4096
units. Properties that are lists (evidence ids) travel as JSON text; nulls are left out.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import mapbox_vector_tile
import numpy as np
import orjson
import shapely

from geo_service.store.groups import Level

EXTENT = 4096
#: Buffer around a tile, in tile units (64/4096 of a tile: line joins and labels at the edge).
BUFFER = 64
WORLD = 2 * math.pi * 6378137.0
HALF = WORLD / 2


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """(west, south, east, north) of an XYZ tile in EPSG:3857 metres."""
    size = WORLD / 2**z
    west = -HALF + x * size
    north = HALF - y * size
    return west, north - size, west + size, north


def lonlat_box(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """West, south, east, north in degrees of an XYZ tile grown by its buffer: the box whose
    rows a tile holds."""
    west, south, east, north = tile_bounds(z, x, y)
    pad = (east - west) * BUFFER / EXTENT
    lon = np.degrees(np.array([west - pad, east + pad]) / 6378137.0)
    lat = np.degrees(np.arctan(np.sinh(np.array([south - pad, north + pad]) / 6378137.0)))
    return (
        max(float(lon[0]), -180.0),
        max(float(lat[0]), -90.0),
        min(float(lon[1]), 180.0),
        min(float(lat[1]), 90.0),
    )


def mvt_properties(record: dict[str, Any]) -> dict[str, Any]:
    """Properties as MVT values: nulls dropped, lists and dicts as JSON text."""
    out = {}
    for k, v in record.items():
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        if isinstance(v, list | dict):
            out[k] = orjson.dumps(v).decode()
        elif isinstance(v, bool | int | float | str):
            out[k] = v
        else:
            out[k] = str(v)
    return out


def abbreviated(count: int) -> str | int:
    """A group's count as supercluster abbreviates it (``point_count_abbreviated``)."""
    if count >= 10_000:
        return f"{math.floor(count / 1000 + 0.5)}k"
    if count >= 1000:
        return f"{math.floor(count / 100 + 0.5) / 10:g}k"
    return count


def _trimmed(record: dict[str, Any], fields: Collection[str] | None) -> dict[str, Any]:
    if fields is None:
        return mvt_properties(record)
    return mvt_properties({k: record[k] for k in fields if k in record})


def encode_tile(
    layer: str,
    geoms: np.ndarray,
    props: list[dict[str, Any]],
    rows: np.ndarray,
    z: int,
    x: int,
    y: int,
    fields: Collection[str] | None = None,
    groups: Level | None = None,
) -> bytes:
    """One tile of the given rows (``geoms``: EPSG:3857, one per row of the layer) with only
    the properties in ``fields`` (None: all), and the points and groups of ``groups``."""
    features = _rows(geoms, props, rows, z, x, y, fields)
    if groups is not None:
        features += _groups(groups, props, z, x, y, fields)
    if not features:
        return b""
    return mapbox_vector_tile.encode(
        [{"name": layer, "features": features}],
        default_options={"extents": EXTENT, "y_coord_down": False},
    )


def _rows(
    geoms: np.ndarray,
    props: list[dict[str, Any]],
    rows: np.ndarray,
    z: int,
    x: int,
    y: int,
    fields: Collection[str] | None,
) -> list[dict[str, Any]]:
    west, south, east, north = tile_bounds(z, x, y)
    scale = EXTENT / (east - west)
    pad = BUFFER / scale
    if len(rows) == 0:
        return []
    clipped = shapely.clip_by_rect(geoms[rows], west - pad, south - pad, east + pad, north + pad)
    # Half a screen pixel (16 tile units of a 256-pixel tile) at this zoom: finer detail
    # cannot be drawn.
    simplified = shapely.simplify(clipped, 8.0 / scale, preserve_topology=True)
    keep = ~shapely.is_empty(simplified) & ~shapely.is_missing(simplified)

    def to_tile(xy: np.ndarray) -> np.ndarray:
        return np.column_stack([(xy[:, 0] - west) * scale, (xy[:, 1] - south) * scale])

    # Snapped to whole tile units, as the encoder will: what collapses (a cell far smaller
    # than a pixel at this zoom) is left out rather than sent as an empty geometry.
    local = shapely.set_precision(shapely.transform(simplified[keep], to_tile), 1.0)
    drawn = ~shapely.is_empty(local)
    return [
        {"geometry": g, "properties": _trimmed(props[i], fields)}
        for g, i in zip(local[drawn], rows[keep][drawn], strict=True)
    ]


def _groups(
    level: Level,
    props: list[dict[str, Any]],
    z: int,
    x: int,
    y: int,
    fields: Collection[str] | None,
) -> list[dict[str, Any]]:
    """The points and groups of a zoom inside the tile (and its buffer): a group is a point
    with ``cluster``, ``point_count`` and the properties of the point it shows."""
    west, south, east, north = tile_bounds(z, x, y)
    scale = EXTENT / (east - west)
    pad = BUFFER / scale
    inside = level.within(west - pad, south - pad, east + pad, north + pad)
    tx = np.rint((level.x[inside] - west) * scale)
    ty = np.rint((level.y[inside] - south) * scale)
    out = []
    for i, px, py in zip(inside.tolist(), tx.tolist(), ty.tolist(), strict=True):
        properties = _trimmed(props[level.row[i]], fields)
        count = int(level.count[i])
        if count > 1:
            properties |= {
                "cluster": True,
                "point_count": count,
                "point_count_abbreviated": abbreviated(count),
            }
        out.append({"geometry": shapely.Point(px, py), "properties": properties})
    return out
