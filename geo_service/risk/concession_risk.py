"""``concession_risk``: what surrounds each concession — incidents, people, tailings dams.

Per concession footprint (a mapped polygon, or a site point grown to its documented radius):
incidents inside it or within ``within_km`` over the last 1, 3 and 5 years before the
reference date, communities and their known population within ``within_km``, and the tailings
dams inside the footprint. Distances in metres (``metric.py``). A count is null, never 0, where
no source of its kind covers the concession (its country, or a declared area at its centre).
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pydantic import BaseModel, ConfigDict, Field

from geo_service.risk.base import CoverageArea
from geo_service.risk.metric import buffer_metres, sums_within
from geo_service.schemas import Kind


class ConcessionRiskParams(BaseModel):
    """How far around a concession to look, and over which periods."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    within_km: float = Field(10.0, gt=0, description="Neighbourhood of a concession footprint.")
    years: tuple[int, ...] = Field((1, 3, 5), description="Look-back periods for incident counts.")


def concession_risk(
    concessions: gpd.GeoDataFrame | None,
    incidents: gpd.GeoDataFrame | None,
    communities: gpd.GeoDataFrame,
    dams: gpd.GeoDataFrame | None,
    reference_date: pd.Timestamp | None,
    params: ConcessionRiskParams,
    coverage: dict[Kind, CoverageArea] | None = None,
) -> gpd.GeoDataFrame:
    """One row per concession with its footprint geometry and the counts around it."""
    columns = [
        "concession_id",
        "name",
        "holder",
        "commodity",
        "status",
        "country",
        "footprint",
        "footprint_radius_m",
        "source",
        "source_id",
        "sensitivity",
    ]
    if concessions is None or len(concessions) == 0:
        return gpd.GeoDataFrame({c: [] for c in columns}, geometry=[], crs="EPSG:4326")
    out = concessions[columns].copy()
    footprint = buffer_metres(concessions.geometry, concessions["footprint_radius_m"].fillna(0.0))
    reach = params.within_km * 1000.0
    centres = shapely.point_on_surface(concessions.geometry.to_numpy())
    country = concessions["country"].to_numpy(dtype=object)
    covers = {
        kind: (coverage or {}).get(kind, CoverageArea()).contains(country, centres)
        for kind in (Kind.incidents, Kind.communities, Kind.tailings_dams)
    }

    if incidents is not None and len(incidents):
        dates = incidents["date"].to_numpy()
        ref = reference_date if reference_date is not None else incidents["date"].max()
        recent = np.column_stack(
            [
                (dates > np.datetime64(ref - pd.DateOffset(years=years)))
                & (dates <= np.datetime64(ref))
                for years in params.years
            ]
        )
        # Radius 0: inside the footprint (distance 0); ``reach``: within ``within_km`` of it.
        counts = sums_within(incidents.geometry, footprint, [0.0, reach], recent).astype("int64")
        for i, years in enumerate(params.years):
            out[f"incidents_{years}y"] = _where(covers[Kind.incidents], counts[:, 1, i])
            out[f"incidents_inside_{years}y"] = _where(covers[Kind.incidents], counts[:, 0, i])
        out["reference_date"] = pd.Timestamp(ref).date().isoformat()
    else:
        zero = np.zeros(len(out), dtype="int64")
        for years in params.years:
            out[f"incidents_{years}y"] = _where(covers[Kind.incidents], zero)
            out[f"incidents_inside_{years}y"] = _where(covers[Kind.incidents], zero)
        out["reference_date"] = None

    population = communities["population"].to_numpy(dtype="float64", na_value=np.nan)
    unknown = np.isnan(population)
    weights = np.column_stack([np.ones(len(population)), np.nan_to_num(population), unknown])
    # Populations are whole numbers, so their sums are exact in any order.
    around = sums_within(communities.geometry, footprint, reach, weights)[:, 0].astype("int64")
    places = covers[Kind.communities]
    out["communities_within"] = _where(places, around[:, 0])
    out["population_within"] = _where(places, around[:, 1])
    out["communities_unknown_population"] = _where(places, around[:, 2])

    if dams is not None and len(dams):
        inside = sums_within(dams.geometry, footprint, 0.0)[:, 0, 0].astype("int64")
    else:
        inside = np.zeros(len(out), dtype="int64")
    out["dams_inside"] = _where(covers[Kind.tailings_dams], inside)
    return gpd.GeoDataFrame(out, geometry=footprint, crs="EPSG:4326")


def _where(covered: np.ndarray, counts: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """Counts where the kind is covered, null elsewhere (whole numbers, nullable)."""
    out = pd.array(np.where(covered, counts, 0), dtype="Int64")
    out[~np.asarray(covered, dtype=bool)] = pd.NA
    return out
