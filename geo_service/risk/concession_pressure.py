"""Concession pressure: how close a community is to mining concessions, and how many surround it.

Weight exp(−d/λ), d the distance in metres from the community to the nearest concession
boundary (0 inside), λ = 10 km by default; counts of concessions within 5, 10, 20 and 50 km.
Kotsadam & Tolonen (2016) measure local effects of mines within about 20 km and find them near
zero at 50 km, so nothing further than ``max_km`` counts. Where a source gives a mine as a point,
the point stands for a footprint of ``footprint_radius_m`` (from the source catalog): the
distance is to that circle's edge, and the community row says the nearest concession is a site.
A point that stands for a whole province or country (``location_precision`` admin1 or coarser)
can lift the normalised value to ``stand_in_cap`` at most (class "medium" by itself): it says
mining happens somewhere in the province, not next to this town.
"""

from __future__ import annotations

from typing import Any, ClassVar

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import shapely
from pydantic import Field

from geo_service.risk.base import (
    Box,
    FactorParams,
    FactorResult,
    Prepared,
    RiskInputs,
    compute_all,
    no_evidence,
)
from geo_service.risk.boxes import near, only, subset
from geo_service.risk.metric import neighbourhood
from geo_service.schemas import Kind


class ConcessionPressureParams(FactorParams):
    """Distance decay and reach of concession pressure."""

    decay_km: float = Field(10.0, gt=0, description="λ of exp(−d/λ): pressure falls to 37 % at λ.")
    rings_km: tuple[float, ...] = Field(
        (5.0, 10.0, 20.0, 50.0),
        description="Radii for the counts of concessions around a community.",
    )
    max_km: float = Field(
        50.0,
        gt=0,
        description="Concessions further than this exert no pressure (Kotsadam & Tolonen 2016).",
    )
    evidence_max: int = Field(
        10, ge=1, description="Concession ids kept per community, nearest first."
    )
    stand_in_cap: float = Field(
        0.45,
        ge=0.0,
        le=1.0,
        description="Most a concession located only to a province or country (a stand-in "
        "point, location_precision admin1 or coarser) can give: 0.45, a score of 45 "
        "(medium) by itself.",
    )


#: The columns of the concessions the factor reads.
READS = ("concession_id", "footprint", "footprint_radius_m", "location_precision")

#: Concession location precisions → the confidence word of evidence so located.
STAND_IN = ("admin1", "region", "country", "international")


def concession_precision(concessions: pd.DataFrame) -> np.ndarray:
    """Per concession: "precise" (a boundary, or a site located exactly), "approximate" (a site
    placed near, or to a district; a site of unknown precision) or "stand_in" (a point for a
    province or a country)."""
    footprint = (
        concessions["footprint"].astype(object).to_numpy()
        if "footprint" in concessions
        else np.full(len(concessions), "polygon", dtype=object)
    )
    given = (
        concessions["location_precision"].astype(object).to_numpy()
        if "location_precision" in concessions
        else np.full(len(concessions), None, dtype=object)
    )
    given = np.where(pd.isna(given), None, given)
    out = np.where(footprint == "site", "approximate", "precise").astype(object)
    out[given == "exact"] = "precise"
    out[np.isin(given, ["near", "admin2"])] = "approximate"
    out[np.isin(given, STAND_IN)] = "stand_in"
    return out


class ConcessionPressure:
    """Exposure of communities to mining concessions (polygons, or sites with a footprint)."""

    name: ClassVar[str] = "concession_pressure"
    evidence_kind: ClassVar[Kind] = Kind.concessions
    Params: ClassVar[type[FactorParams]] = ConcessionPressureParams

    def compute(self, inputs: RiskInputs, params: FactorParams) -> FactorResult:
        """Nearest-boundary distance, decay weight and ring counts for every community."""
        return compute_all(self, inputs, params)

    def prepare(self, inputs: RiskInputs, params: FactorParams) -> Prepared:
        """Nothing shared; the concessions whose outline or footprint comes near a box."""
        assert isinstance(params, ConcessionPressureParams)
        if inputs.concessions is None or not len(inputs.concessions):
            return Prepared(None, lambda box: None)
        concessions = only(inputs.concessions, READS)
        bounds = shapely.bounds(concessions.geometry.to_numpy())
        grown = np.nan_to_num(concessions["footprint_radius_m"].to_numpy(dtype="float64"))
        reach = params.max_km * 1000.0 + float(grown.max(initial=0.0))

        def select(box: Box | None) -> gpd.GeoDataFrame | None:
            return concessions if box is None else subset(concessions, near(bounds, box, reach))

        return Prepared(None, select)

    def finish(
        self, shared: None, merged: FactorResult, inputs: RiskInputs, params: FactorParams
    ) -> FactorResult:
        """The partitions as they are, with the formula and its reference."""
        merged.metadata = {
            "formula": "raw = exp(-d/λ), d = metres to the nearest concession boundary (0 "
            "inside; edge of the footprint circle for site points), nothing beyond max_km; "
            "normalised = max(raw to the nearest located concession, min(raw to the nearest "
            "province or country stand-in, stand_in_cap))",
            "reference": "Kotsadam & Tolonen 2016, World Development 83:325-339",
        }
        return merged

    def evaluate(
        self,
        shared: None,
        selected: gpd.GeoDataFrame | None,
        inputs: RiskInputs,
        params: FactorParams,
    ) -> FactorResult:
        """The communities of ``inputs`` against the concessions near them."""
        assert isinstance(params, ConcessionPressureParams)
        communities = inputs.communities
        n = len(communities)
        covered = inputs.covered(self.evidence_kind)
        raw = np.where(covered, 0.0, np.nan)
        normalised = raw.copy()
        precision = np.full(n, None, dtype=object)
        nearest_km = np.full(n, np.nan)
        nearest_is_site = np.zeros(n, dtype=bool)
        rings = {f"within_{r:g}km": np.where(covered, 0, -1) for r in params.rings_km}
        concessions = selected
        evidence = no_evidence(n)
        if concessions is not None and len(concessions):
            # Every community: one beyond the declared coverage with a concession in reach has
            # evidence all the same (only "nothing found" needs coverage to mean 0).
            rows = np.arange(n)
            reach = params.max_km * 1000.0
            # Rings beyond max_km count what lies within max_km, as nothing further counts.
            ring_m = np.minimum(np.asarray(params.rings_km, dtype="float64") * 1000.0, reach)
            radii = np.unique(np.r_[ring_m, reach])
            hood = neighbourhood(
                communities.geometry.to_numpy()[rows],
                concessions.geometry,
                radii,
                params.evidence_max,
                grow=np.nan_to_num(concessions["footprint_radius_m"].to_numpy(dtype="float64")),
            )
            found = hood.nearest >= 0
            s, best = rows[found], hood.metres[found]
            nearest_km[s] = best / 1000.0
            raw[s] = np.exp(-best / (params.decay_km * 1000.0))
            nearest_is_site[s] = concessions["footprint"].to_numpy()[hood.nearest[found]] == "site"
            has = covered | (hood.nearest >= 0)
            for r, m in zip(params.rings_km, ring_m, strict=True):
                counts = hood.counts[:, np.searchsorted(radii, m)]
                rings[f"within_{r:g}km"] = np.where(has, counts, -1)
            evidence = _ranked_ids(
                rows[hood.ranked_source], concessions["concession_id"], hood.ranked_target, n
            )
            normalised[s], precision[s] = self._capped(
                communities.geometry.to_numpy()[s], concessions, hood, found, params
            )
        columns: dict[str, np.ndarray] = {
            "nearest_km": nearest_km,
            "nearest_is_site": nearest_is_site,
            **{k: np.where(v < 0, np.nan, v) for k, v in rings.items()},
        }
        return FactorResult(
            name=self.name,
            raw=raw,
            normalised=normalised,
            evidence=evidence,
            columns=columns,
            precision=precision,
        )

    @staticmethod
    def _capped(
        points: np.ndarray,
        concessions: pd.DataFrame,
        near: Any,
        found: np.ndarray,
        params: ConcessionPressureParams,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Normalised values with stand-ins capped, and the precision of the evidence behind.

        ``points`` are the communities with a concession in reach (``found``). Where the
        nearest concession is located, it settles the value (a farther stand-in gives less);
        only where it is a stand-in are the located ones searched apart.
        """
        words = concession_precision(concessions)
        stand_in = words == "stand_in"
        value = np.exp(-near.metres[found] / (params.decay_km * 1000.0))
        nearest = near.nearest[found]
        word = words[nearest].astype(object)
        if not stand_in.any():
            return value, word
        behind = stand_in[nearest]
        value[behind] = np.minimum(value[behind], params.stand_in_cap)
        located = np.flatnonzero(~stand_in)
        rows = np.flatnonzero(behind)
        if located.size and rows.size:
            grow = np.nan_to_num(concessions["footprint_radius_m"].to_numpy(dtype="float64"))
            # Steps below the reach let the search stop near the nearest located one.
            reach = params.max_km * 1000.0
            steps = np.array([params.decay_km * 250.0, params.decay_km * 1000.0, reach])
            sub = neighbourhood(
                points[rows],
                concessions.geometry.to_numpy()[located],
                np.unique(np.minimum(steps, reach)),
                1,
                grow=grow[located],
            )
            hit = sub.nearest >= 0
            better = np.zeros(len(rows), dtype=bool)
            v = np.exp(-sub.metres[hit] / (params.decay_km * 1000.0))
            better[hit] = v >= value[rows[hit]]
            value[rows[better]] = np.exp(-sub.metres[better] / (params.decay_km * 1000.0))
            word[rows[better]] = words[located[sub.nearest[better]]]
        return value, word


def _ranked_ids(source: np.ndarray, ids: pd.Series, taken: np.ndarray, n: int) -> pa.ListArray:
    """Per row (0..n-1), ``ids[taken]`` of its pairs, which come in order (by source, best first).

    What ``top_ids`` gives for pairs already ranked, without its sort, and with each id turned
    into text once rather than once per community (a second for the 2 M ids of 200,000
    communities).
    """
    text = pa.array(ids.to_numpy(dtype=object).astype(str), pa.string())
    offsets = np.r_[0, np.cumsum(np.bincount(source, minlength=n))].astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), text.take(pa.array(taken)))
