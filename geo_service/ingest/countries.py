"""Countries: publisher spellings to ISO 3166-1 alpha-3, and the outlines used to check points.

Natural Earth's outlines are generalised (1:50m, borders off by about a kilometre), so a point
is tested against its country grown by a tolerance measured in metres in a projection centred
on that country, never in degrees.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pycountry
import pyogrio
import shapely
from pyproj import CRS, Transformer

#: Spellings publishers use that pycountry's names do not cover.
ALIASES = {
    "congo (kinshasa)": "COD",
    "congo, dem. rep.": "COD",
    "dr congo": "COD",
    "drc": "COD",
    "democratic republic of congo": "COD",
    "democratic republic of the congo": "COD",
    "congo (brazzaville)": "COG",
    "congo, rep.": "COG",
    "republic of congo": "COG",
    "ivory coast": "CIV",
    "cote d'ivoire": "CIV",
    "russia": "RUS",
    "tanzania": "TZA",
    "kosovo": "XKX",
}


@cache
def resolve_country(value: str) -> str | None:
    """ISO alpha-3 for a code or an English name, or ``None`` when it is not a country."""
    text = value.strip()
    if not text:
        return None
    if text.lower() in ALIASES:
        return ALIASES[text.lower()]
    if len(text) == 3 and text.isalpha():
        hit = pycountry.countries.get(alpha_3=text.upper())
        return hit.alpha_3 if hit else ("XKX" if text.upper() == "XKX" else None)
    if len(text) == 2 and text.isalpha():
        hit = pycountry.countries.get(alpha_2=text.upper())
        return hit.alpha_3 if hit else None
    try:
        return pycountry.countries.lookup(text).alpha_3
    except LookupError:
        return None


def resolve_countries(values: pd.Series) -> pd.Series:
    """Vectorised :func:`resolve_country`: each distinct spelling is looked up once."""
    codes, uniques = pd.factorize(values)
    iso = pd.array([resolve_country(str(u)) for u in uniques], dtype="str")
    return pd.Series(iso.take(codes, allow_fill=True), index=values.index)


class CountryShapes:
    """Country outlines keyed by ISO alpha-3, each also grown by the tolerance."""

    def __init__(self, paths: Sequence[Path], key_field: str, tolerance_km: float) -> None:
        self.tolerance_km = tolerance_km
        self.shapes: dict[str, shapely.Geometry] = {}
        self.grown: dict[str, shapely.Geometry] = {}
        for path in paths:
            gdf = pyogrio.read_dataframe(path, columns=[key_field, "ISO_A3"])
            for iso_a3, key, geom in zip(gdf["ISO_A3"], gdf[key_field], gdf.geometry, strict=True):
                code = iso_a3 if isinstance(iso_a3, str) and iso_a3 != "-99" else key
                if not isinstance(code, str) or geom is None:
                    continue
                self.shapes[code] = geom

    def __contains__(self, code: object) -> bool:
        return code in self.shapes

    def inside(self, code: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Which points lie in the country grown by the tolerance."""
        if code not in self.grown:
            self.grown[code] = _grow(self.shapes[code], self.tolerance_km * 1000.0)
            shapely.prepare(self.grown[code])
        return shapely.contains_xy(self.grown[code], x, y)


def _grow(geom: shapely.Geometry, metres: float) -> shapely.Geometry:
    """Buffer the outline in an equidistant projection centred on the country.

    A part that would wrap over the antimeridian once grown keeps its own outline instead.
    """
    c = geom.centroid
    local = CRS.from_proj4(f"+proj=aeqd +lat_0={c.y} +lon_0={c.x} +datum=WGS84 +units=m")
    fwd = Transformer.from_crs("EPSG:4326", local, always_xy=True)
    back = Transformer.from_crs(local, "EPSG:4326", always_xy=True)
    parts = []
    for part in shapely.get_parts(geom):
        projected = shapely.transform(
            part, lambda xy: np.column_stack(fwd.transform(xy[:, 0], xy[:, 1]))
        )
        grown = shapely.transform(
            projected.buffer(metres, quad_segs=4),
            lambda xy: np.column_stack(back.transform(xy[:, 0], xy[:, 1])),
        )
        minx, _, maxx, _ = grown.bounds
        parts.append(grown if maxx - minx < 180 and grown.is_valid else part)
    return shapely.union_all(parts)


@cache
def country_shapes(paths: tuple[Path, ...], key_field: str, tolerance_km: float) -> CountryShapes:
    """Shapes loaded once per process for a given reference set."""
    return CountryShapes(paths, key_field, tolerance_km)
