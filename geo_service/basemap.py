"""The maps' offline basemap: Natural Earth countries, lakes and rivers, simplified.

Map pages draw it beneath the outside basemap's tiles, so when those fail (no internet, a
blocked tile server) the data still sits on recognisable land and water. It is written once
per build, generalised for regional zooms (about 2 km), and is small enough to fetch on a slow
connection (a few hundred kilobytes, a third of that gzipped).
"""

from __future__ import annotations

import json

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely

from geo_service.catalog import Reference

#: Simplification in degrees (≈ 2 km at the equator): finer is invisible below zoom 8.
TOLERANCE = 0.02
#: Rivers of Natural Earth scale rank up to this (the larger rivers) are drawn.
MAX_RIVER_RANK = 7
#: Decimals kept in coordinates (≈ 100 m).
DECIMALS = 3
ATTRIBUTION = "Natural Earth (public domain)"


def _read(paths: list, columns: list[str] | None = None) -> gpd.GeoDataFrame:
    frames = [pyogrio.read_dataframe(p, columns=columns) for p in paths]
    if not frames:
        return gpd.GeoDataFrame(geometry=[], crs="EPSG:4326")
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs="EPSG:4326")


def build_basemap(reference: Reference) -> bytes:
    """GeoJSON of land (countries), lakes and the larger rivers, each feature with a ``kind``."""
    parts = []
    land = _read(reference.countries, columns=[])
    lakes = _read(reference.lakes, columns=["scalerank"])
    rivers = _read(reference.rivers, columns=["scalerank"])
    if "scalerank" in rivers:
        rivers = rivers[pd.to_numeric(rivers["scalerank"], errors="coerce") <= MAX_RIVER_RANK]
    for kind, frame in (("land", land), ("lake", lakes), ("river", rivers)):
        geoms = shapely.simplify(frame.geometry.to_numpy(), TOLERANCE, preserve_topology=True)
        geoms = shapely.set_precision(geoms, 10.0**-DECIMALS)
        geoms = geoms[~shapely.is_empty(geoms) & ~shapely.is_missing(geoms)]
        parts += [(kind, g) for g in geoms]
    features = [
        {"type": "Feature", "properties": {"kind": kind}, "geometry": json.loads(text)}
        for (kind, _), text in zip(parts, shapely.to_geojson([g for _, g in parts]), strict=True)
    ]
    doc = {"type": "FeatureCollection", "attribution": ATTRIBUTION, "features": features}
    return json.dumps(doc, separators=(",", ":")).encode()
