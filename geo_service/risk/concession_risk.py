"""``concession_risk``: what surrounds each concession — incidents, people, tailings dams.

Per concession footprint (a mapped polygon, or a site point grown to its documented radius):
incidents inside it or within ``within_km`` over the last 1, 3 and 5 years before the
reference date, communities and their known population within ``within_km``, and the tailings
dams inside the footprint. Distances in metres (``metric.py``). A count is null, never 0, where
no source of its kind covers the concession (its country, or a declared area at its centre).

Footprint growth (``footprint_growth``): for sources that map footprints period by period (each
row the area new in its ``period_year``), the area added per year, for the whole source and for
the named boxes of ``growth_areas``; the build records it in ``catalog.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pydantic import BaseModel, ConfigDict, Field, field_validator

from geo_service.risk.base import Box, CoverageArea, FactorResult, Prepared, RiskInputs
from geo_service.risk.boxes import near
from geo_service.risk.metric import buffer_metres, sums_within
from geo_service.schemas import Kind


class ConcessionRiskParams(BaseModel):
    """How far around a concession to look, and over which periods."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    within_km: float = Field(10.0, gt=0, description="Neighbourhood of a concession footprint.")
    years: tuple[int, ...] = Field((1, 3, 5), description="Look-back periods for incident counts.")
    growth_areas: dict[str, tuple[float, float, float, float]] = Field(
        default_factory=dict,
        description="Named boxes (west, south, east, north, degrees) for which footprint "
        "growth per period is also summed: a footprint counts where its representative point "
        "lies.",
    )

    @field_validator("growth_areas")
    @classmethod
    def _boxes(
        cls, v: dict[str, tuple[float, float, float, float]]
    ) -> dict[str, tuple[float, float, float, float]]:
        if "all" in v:
            raise ValueError("growth_areas: 'all' names each source's whole extent already")
        for name, (west, south, east, north) in v.items():
            if not (-180.0 <= west < east <= 180.0 and -90.0 <= south < north <= 90.0):
                raise ValueError(f"growth_areas.{name}: need west < east, south < north")
        return v


def concession_risk(
    concessions: gpd.GeoDataFrame | None,
    incidents: gpd.GeoDataFrame | None,
    communities: gpd.GeoDataFrame,
    dams: gpd.GeoDataFrame | None,
    reference_date: pd.Timestamp | None,
    params: ConcessionRiskParams,
    coverage: dict[Kind, CoverageArea] | None = None,
    around: np.ndarray | None = None,
) -> gpd.GeoDataFrame:
    """One row per concession with its footprint geometry and the counts around it.

    ``around`` is ``communities_around`` for every concession, if the partitions of the
    communities have added it up already (``CommunitiesAround``).
    """
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
    # A footprint mapped period by period keeps its period and the area the publisher gives.
    columns += [c for c in ("period_year", "area_ha") if c in concessions]
    out = concessions[columns].copy()
    footprint = footprints(concessions)
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

    if around is None:
        around = communities_around(communities, footprint, reach)
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


def footprints(concessions: gpd.GeoDataFrame) -> np.ndarray:
    """Each concession's footprint: its outline, or its site grown to its radius."""
    radius = concessions["footprint_radius_m"].fillna(0.0)
    return np.asarray(buffer_metres(concessions.geometry, radius), dtype=object)


def communities_around(
    communities: gpd.GeoDataFrame, footprint: np.ndarray, reach_m: float
) -> np.ndarray:
    """Per footprint (rows), the communities within ``reach_m``, their known population and
    how many have none given (columns; whole numbers, so the sums are exact in any order)."""
    population = communities["population"].to_numpy(dtype="float64", na_value=np.nan)
    unknown = np.isnan(population)
    weights = np.column_stack([np.ones(len(population)), np.nan_to_num(population), unknown])
    return sums_within(communities.geometry, footprint, reach_m, weights)[:, 0].astype("int64")


@dataclass(frozen=True)
class _Around:
    features: int
    reach_m: float


class CommunitiesAround:
    """``communities_around`` every concession, a partition of the communities at a time:
    each partition counts its own communities around the footprints within reach of it."""

    name: ClassVar[str] = "concession_risk"
    per: ClassVar[str] = "feature"

    def prepare(self, inputs: RiskInputs, params: ConcessionRiskParams) -> Prepared:
        """The footprints (shared: their number and the reach), those near a box (selected)."""
        reach = params.within_km * 1000.0
        concessions = inputs.concessions
        if concessions is None or not len(concessions):
            nothing = (np.empty(0, dtype=np.int64), np.empty(0, dtype=object))
            return Prepared(_Around(0, reach), lambda box: nothing)
        footprint = footprints(concessions)
        bounds = shapely.bounds(footprint)

        def select(box: Box | None) -> tuple[np.ndarray, np.ndarray]:
            rows = (
                np.arange(len(footprint))
                if box is None
                else np.flatnonzero(near(bounds, box, reach))
            )
            return rows, footprint[rows]

        return Prepared(_Around(len(footprint), reach), select)

    def evaluate(
        self,
        shared: _Around,
        selected: tuple[np.ndarray, np.ndarray],
        inputs: RiskInputs,
        results: list[FactorResult],
    ) -> np.ndarray:
        """What this partition's communities add around each footprint (every footprint)."""
        rows, footprint = selected
        out = np.zeros((shared.features, 3), dtype=np.int64)
        if len(rows) and len(inputs.communities):
            out[rows] = communities_around(inputs.communities, footprint, shared.reach_m)
        return out


def _where(covered: np.ndarray, counts: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """Counts where the kind is covered, null elsewhere (whole numbers, nullable)."""
    out = pd.array(np.where(covered, counts, 0), dtype="Int64")
    out[~np.asarray(covered, dtype=bool)] = pd.NA
    return out


def footprint_growth(
    concessions: gpd.GeoDataFrame | None, params: ConcessionRiskParams
) -> dict[str, Any]:
    """Per source with footprints mapped by period: hectares and footprints added per year.

    Grouped by ``period_year`` (the canonical field a source's mapping declares), for the whole
    source and for each of ``growth_areas`` (a footprint counts in the box holding its
    representative point). Footprints of the source without a year are counted apart
    (``no_period``), so the years and it add up to the source's total. Areas are the
    publisher's ``area_ha`` (unknown areas count as footprints, not hectares).
    """
    if concessions is None or not len(concessions) or "period_year" not in concessions:
        return {}
    years = concessions["period_year"]
    sources = sorted(concessions.loc[years.notna(), "source"].unique())
    if not sources:
        return {}
    area = (
        concessions["area_ha"].to_numpy(dtype="float64", na_value=np.nan)
        if "area_ha" in concessions
        else np.full(len(concessions), np.nan)
    )
    points = shapely.point_on_surface(concessions.geometry.to_numpy())
    x, y = shapely.get_x(points), shapely.get_y(points)
    regions = {"all": np.ones(len(concessions), dtype=bool)} | {
        name: (x >= w) & (x <= e) & (y >= s) & (y <= n)
        for name, (w, s, e, n) in params.growth_areas.items()
    }
    frame = pd.DataFrame(
        {
            "source": concessions["source"].to_numpy(),
            "year": years.to_numpy(dtype="float64", na_value=np.nan),
            "area": area,
        }
    )
    out: dict[str, Any] = {}
    for source in sources:
        mine = frame["source"].to_numpy() == source
        record: dict[str, Any] = {"field": "period_year", "area_field": "area_ha", "areas": {}}
        for name, inside in regions.items():
            part = frame[mine & inside]
            dated = part[part["year"].notna()]
            by_year = dated.groupby(dated["year"].astype("int64"))["area"].agg(["sum", "size"])
            record["areas"][name] = {
                "box": list(params.growth_areas[name]) if name != "all" else None,
                "footprints": int(len(part)),
                "area_ha": round(float(np.nansum(part["area"])), 4),
                "by_year": {
                    str(year): {
                        "area_ha": round(float(row["sum"]), 4),
                        "footprints": int(row["size"]),
                    }
                    for year, row in by_year.iterrows()
                },
                "no_period": {
                    "area_ha": round(float(np.nansum(part.loc[part["year"].isna(), "area"])), 4),
                    "footprints": int(part["year"].isna().sum()),
                },
            }
        out[source] = record
    return out
