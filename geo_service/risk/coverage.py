"""``coverage``: where each factor has evidence, as country outlines.

Absence of evidence is not absence of risk: maps draw this layer so that a blank is read as
"not looked for" rather than "safe".
"""

from __future__ import annotations

import geopandas as gpd
import shapely

from geo_service.risk import FACTORS
from geo_service.schemas import Kind


def coverage_layer(
    coverage: dict[Kind, set[str]],
    notes: dict[Kind, list[str]],
    countries: gpd.GeoDataFrame,
) -> gpd.GeoDataFrame:
    """One row per factor: the union of the outlines of the countries its evidence covers."""
    rows = []
    for name, factor in FACTORS.items():
        codes = sorted(coverage.get(factor.evidence_kind, set()))
        shapes = countries[countries["iso3"].isin(codes)].geometry
        rows.append(
            {
                "factor": name,
                "evidence_kind": factor.evidence_kind.value,
                "countries": codes,
                "countries_without_outline": sorted(set(codes) - set(countries["iso3"])),
                "note": " ".join(notes.get(factor.evidence_kind, [])),
                "geometry": shapely.union_all(shapes.to_numpy()) if len(shapes) else None,
            }
        )
    return gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")
