"""Feature formats: one encoder per format, chosen by ``f=`` or the Accept header.

GeoJSON is the page the store assembles from pre-encoded features; the download formats
(CSV, GeoPackage, GeoParquet, KML, and a spreadsheet: XLSX) are written from the selected rows
of the layer's table;
HTML is a page a person can read (``templates.py``). A new format is an encoder and one
``FORMATS`` line.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import orjson
import pandas as pd
import pyogrio
import shapely

from geo_service.errors import BadQueryError


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as the Python values orjson writes."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _flat(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Nested values (evidence id lists) as JSON text: the flat formats have no lists."""
    out = frame.copy()
    for c in out.columns:
        if c == out.geometry.name or out[c].dtype != object:
            continue
        if out[c].map(lambda v: isinstance(v, list | np.ndarray)).any():
            out[c] = out[c].map(
                lambda v: (
                    orjson.dumps(_plain(v), default=_plain).decode()
                    if isinstance(v, list | np.ndarray)
                    else v
                )
            )
    return out


def to_csv(frame: gpd.GeoDataFrame, layer: str) -> bytes:
    """CSV: the properties, longitude and latitude of points, and the geometry as WKT."""
    flat = _flat(frame)
    geoms = flat.geometry
    table = pd.DataFrame(flat.drop(columns=flat.geometry.name))
    values = geoms.to_numpy()
    points = shapely.get_type_id(values) == 0  # Point; other types have only the WKT
    table["longitude"] = np.where(points, shapely.get_x(values), np.nan)
    table["latitude"] = np.where(points, shapely.get_y(values), np.nan)
    table["wkt"] = geoms.to_wkt()
    return table.to_csv(index=False, date_format="%Y-%m-%d").encode("utf-8")


def to_xlsx(frame: gpd.GeoDataFrame, layer: str) -> bytes:
    """A spreadsheet: the properties (text stays text, so codes keep their leading zeros and
    are never read as numbers) and the longitude and latitude of points. No shapes: a cell
    holds at most 32,767 characters, fewer than many outlines; GeoPackage has them."""
    flat = _flat(frame)
    values = flat.geometry.to_numpy()
    table = pd.DataFrame(flat.drop(columns=flat.geometry.name))
    points = shapely.get_type_id(values) == 0
    table["longitude"] = np.where(points, shapely.get_x(values), np.nan)
    table["latitude"] = np.where(points, shapely.get_y(values), np.nan)
    for c in table.columns:  # the driver writes dates, not timestamps
        if pd.api.types.is_datetime64_any_dtype(table[c]):
            table[c] = table[c].dt.strftime("%Y-%m-%d")
    buffer = io.BytesIO()
    pyogrio.write_dataframe(table, buffer, driver="XLSX", layer=layer[:31])
    return buffer.getvalue()


def _ogr(driver: str) -> Callable[[gpd.GeoDataFrame, str], bytes]:
    def encode(frame: gpd.GeoDataFrame, layer: str) -> bytes:
        buffer = io.BytesIO()
        pyogrio.write_dataframe(_flat(frame), buffer, driver=driver, layer=layer)
        return buffer.getvalue()

    return encode


def to_parquet(frame: gpd.GeoDataFrame, layer: str) -> bytes:
    """GeoParquet 1.x (geometry as WKB, CRS in the metadata), lists kept as lists."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True)
class Format:
    """One output format of items."""

    key: str
    media_type: str
    extension: str
    #: Encodes the selected rows (None for formats the route writes itself: GeoJSON, HTML).
    encode: Callable[[gpd.GeoDataFrame, str], bytes] | None
    download: bool


FORMATS: dict[str, Format] = {
    f.key: f
    for f in (
        Format("json", "application/geo+json", "geojson", None, False),
        Format("html", "text/html; charset=utf-8", "html", None, False),
        Format("csv", "text/csv; charset=utf-8", "csv", to_csv, True),
        Format("gpkg", "application/geopackage+sqlite3", "gpkg", _ogr("GPKG"), True),
        Format("parquet", "application/vnd.apache.parquet", "parquet", to_parquet, True),
        Format("kml", "application/vnd.google-earth.kml+xml", "kml", _ogr("KML"), True),
        Format("xlsx", XLSX, "xlsx", to_xlsx, True),
    )
}
ALIASES = {"geojson": "json", "geoparquet": "parquet", "geopackage": "gpkg"}
#: Accept media types → format, for clients that negotiate instead of sending ``f=``.
BY_MEDIA_TYPE = {
    "application/geo+json": "json",
    "application/json": "json",
    "text/html": "html",
    "text/csv": "csv",
    "application/geopackage+sqlite3": "gpkg",
    "application/vnd.apache.parquet": "parquet",
    "application/vnd.google-earth.kml+xml": "kml",
    XLSX: "xlsx",
}


def negotiate(
    f: str | None, accept: str | None, allowed: tuple[str, ...] = tuple(FORMATS)
) -> Format:
    """``f=`` first, then the first Accept type we serve (by q order), else GeoJSON."""
    if f is not None:
        key = ALIASES.get(f.lower(), f.lower())
        if key not in allowed:
            raise BadQueryError(
                f"unsupported format {f!r}; supported: {', '.join(allowed)}", parameter="f"
            )
        return FORMATS[key]
    if accept:
        ranked = []
        for i, part in enumerate(accept.split(",")):
            media, *params = (p.strip() for p in part.split(";"))
            q = 1.0
            for p in params:
                if p.startswith("q="):
                    try:
                        q = float(p[2:])
                    except ValueError:
                        q = 0.0
            ranked.append((-q, i, media.lower()))
        for _, _, media in sorted(ranked):
            key = BY_MEDIA_TYPE.get(media)
            if key in allowed:
                return FORMATS[key]
    return FORMATS["json"]
