"""``coverage``: where each factor has evidence, as country outlines and declared areas.

Absence of evidence is not absence of risk: maps draw this layer so that a blank is read as
"not looked for" rather than "safe".
"""

from __future__ import annotations

import geopandas as gpd
import shapely

from geo_service.risk import FACTORS
from geo_service.risk.base import CoverageArea
from geo_service.schemas import Kind


def coverage_layer(
    coverage: dict[Kind, CoverageArea],
    notes: dict[Kind, list[str]],
    countries: gpd.GeoDataFrame,
) -> gpd.GeoDataFrame:
    """One row per factor: the union of its covered countries' outlines and its sources' areas.

    This is the same area the factors test communities against, except that a community counts
    for a country by its ``country`` code, not by falling inside the generalised outline.
    """
    rows = []
    for name, factor in FACTORS.items():
        cov = coverage.get(factor.evidence_kind) or CoverageArea()
        codes = sorted(cov.countries)
        shapes = list(countries[countries["iso3"].isin(codes)].geometry.to_numpy())
        if cov.area is not None:
            shapes.append(cov.area)
        rows.append(
            {
                "factor": name,
                "evidence_kind": factor.evidence_kind.value,
                "countries": codes,
                "countries_without_outline": sorted(set(codes) - set(countries["iso3"])),
                "areas_from": list(cov.area_sources),
                "note": " ".join(notes.get(factor.evidence_kind, [])),
                "geometry": shapely.union_all(shapes) if shapes else None,
            }
        )
    return gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")
