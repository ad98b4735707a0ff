"""``concession_risk``: what surrounds each concession — incidents, people, tailings dams.

Per concession footprint (a mapped polygon, or a site point grown to its documented radius):
incidents inside it or within ``within_km`` over the last 1, 3 and 5 years before the
reference date, communities and their known population within ``within_km``, and the tailings
dams inside the footprint. Distances in metres (``metric.py``).
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from geo_service.risk.metric import buffer_metres, pairs_within


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
    n = len(out)
    reach = params.within_km * 1000.0

    if incidents is not None and len(incidents):
        pairs = pairs_within(incidents.geometry, footprint, reach)
        dates = incidents["date"].to_numpy()[pairs.source]
        ref = reference_date if reference_date is not None else incidents["date"].max()
        for years in params.years:
            since = np.datetime64(ref - pd.DateOffset(years=years))
            recent = (dates > since) & (dates <= np.datetime64(ref))
            out[f"incidents_{years}y"] = np.bincount(pairs.target[recent], minlength=n)
            inside = recent & (pairs.metres == 0)
            out[f"incidents_inside_{years}y"] = np.bincount(pairs.target[inside], minlength=n)
        out["reference_date"] = pd.Timestamp(ref).date().isoformat()
    else:
        for years in params.years:
            out[f"incidents_{years}y"] = 0
            out[f"incidents_inside_{years}y"] = 0
        out["reference_date"] = None

    pairs = pairs_within(communities.geometry, footprint, reach)
    out["communities_within"] = np.bincount(pairs.target, minlength=n)
    population = communities["population"].to_numpy(dtype="float64", na_value=np.nan)[pairs.source]
    out["population_within"] = np.bincount(
        pairs.target, weights=np.nan_to_num(population), minlength=n
    ).astype("int64")
    out["communities_unknown_population"] = np.bincount(
        pairs.target[np.isnan(population)], minlength=n
    )

    if dams is not None and len(dams):
        inside = pairs_within(dams.geometry, footprint, 0.0)
        out["dams_inside"] = np.bincount(inside.target, minlength=n)
    else:
        out["dams_inside"] = 0
    return gpd.GeoDataFrame(out, geometry=footprint, crs="EPSG:4326")
