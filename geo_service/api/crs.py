"""Coordinate reference systems of answers and boxes (OGC API – Features Part 2).

Features are stored in CRS84 (longitude, latitude). An answer can be had in any CRS listed
here: CRS84, EPSG:4326 (latitude first, as EPSG orders it), Web Mercator, and the UTM zones
that hold the focus maps (from ``layers/maps.toml``), so an analyst measures in metres where
the maps are. Coordinates are rewritten per answer; a ``bbox`` or a filter's geometry may be
given in any of them too (``bbox-crs``, ``filter-crs``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

import numpy as np
import orjson
import shapely
from pyproj import CRS, Transformer

from geo_service.errors import BadQueryError
from geo_service.maps.definitions import load_maps
from geo_service.store.base import BBox
from geo_service.store.geojson import feature_bytes, geometries_json, properties_json

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/"
#: Decimals of a projected coordinate (metres: a millimetre).
METRE_DECIMALS = 3


@dataclass(frozen=True)
class OutputCrs:
    """One CRS answers may be given in."""

    uri: str
    code: str  # what pyproj reads: "OGC:CRS84", "EPSG:32629"

    @cached_property
    def crs(self) -> CRS:
        """The CRS itself."""
        return CRS.from_user_input(self.code)

    @property
    def is_crs84(self) -> bool:
        """Whether coordinates stay as stored."""
        return self.uri == CRS84

    @cached_property
    def decimals(self) -> int:
        """Decimals a coordinate is written with: 9 for degrees, 3 for metres."""
        return 9 if self.crs.is_geographic else METRE_DECIMALS

    @cached_property
    def forward(self) -> Transformer:
        """CRS84 → this CRS, in its own axis order."""
        return Transformer.from_crs("OGC:CRS84", self.crs)

    @cached_property
    def back(self) -> Transformer:
        """This CRS, in its own axis order → CRS84."""
        return Transformer.from_crs(self.crs, "OGC:CRS84")

    def project(self, geoms: np.ndarray) -> np.ndarray:
        """Geometries from CRS84 into this CRS."""
        return shapely.transform(geoms, lambda xy: np.column_stack(self.forward.transform(*xy.T)))

    def unproject(self, geoms: np.ndarray) -> np.ndarray:
        """Geometries from this CRS into CRS84."""
        return shapely.transform(geoms, lambda xy: np.column_stack(self.back.transform(*xy.T)))


def _utm_zones(boxes: Iterable[Sequence[float]]) -> list[int]:
    """EPSG codes of the UTM zones (WGS 84) that the boxes touch, north or south of the
    equator by each box's centre."""
    codes = set()
    for west, south, east, north in boxes:
        hemisphere = 32600 if (south + north) / 2 >= 0 else 32700
        first = int(math.floor((west + 180) / 6)) + 1
        last = int(math.floor((min(east, 179.999) + 180) / 6)) + 1
        codes.update(hemisphere + zone for zone in range(first, last + 1))
    return sorted(codes)


#: The storage CRS, what answers are in unless asked otherwise.
STORED = OutputCrs(CRS84, "OGC:CRS84")


@cache
def supported(maps_file: Path) -> dict[str, OutputCrs]:
    """Every CRS served, by its URI: CRS84 first (the storage CRS)."""
    maps = load_maps(maps_file)
    # The overview spans a continent; the UTM zones are those of the focus maps.
    focus = [m.bounds for m in maps.values() if m.bounds is not None and m.id != "overview"]
    codes = [4326, 3857, *_utm_zones(focus)]
    out = {CRS84: STORED}
    out.update({f"{EPSG}{c}": OutputCrs(f"{EPSG}{c}", f"EPSG:{c}") for c in codes})
    return out


def resolve(text: str | None, maps_file: Path, parameter: str) -> OutputCrs:
    """A ``crs``-like parameter (a URI, with or without <>, or ``EPSG:n``, ``OGC:CRS84``), or
    a 400 listing the CRSs served."""
    if text is None:
        return STORED
    known = supported(Path(maps_file))
    wanted = text.strip().strip("<>").strip().replace("https://", "http://")
    short = wanted.upper()
    if short in ("OGC:CRS84", "CRS84"):
        wanted = CRS84
    elif short.startswith("EPSG:"):
        wanted = EPSG + short.removeprefix("EPSG:")
    if wanted not in known:
        raise BadQueryError(
            f"{text!r} is not served; CRSs are {', '.join(known)}", parameter=parameter
        )
    return known[wanted]


def box_to_crs84(box: Sequence[float], crs: OutputCrs) -> BBox:
    """A ``bbox`` given in ``crs`` (its axis order) as CRS84 bounds (edges densified)."""
    if crs.is_crs84:
        return (box[0], box[1], box[2], box[3])
    west, south, east, north = crs.back.transform_bounds(*box, densify_pts=21)
    return (west, south, east, north)


def reproject(features: list[bytes], crs: OutputCrs) -> list[bytes]:
    """GeoJSON features (CRS84) with their coordinates in ``crs``."""
    if crs.is_crs84 or not features:
        return features
    parsed = [orjson.loads(f) for f in features]
    geoms = np.array(
        [shapely.geometry.shape(f["geometry"]) if f["geometry"] else None for f in parsed],
        dtype=object,
    )
    written = geometries_json(crs.project(geoms), crs.decimals)
    return [
        feature_bytes(f["id"], g, properties_json(f["properties"]))
        for f, g in zip(parsed, written, strict=True)
    ]
