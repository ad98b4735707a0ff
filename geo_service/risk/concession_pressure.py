"""Concession pressure: how close a community is to mining concessions, and how many surround it.

Weight exp(−d/λ), d the distance in metres from the community to the nearest concession
boundary (0 inside), λ = 10 km by default; counts of concessions within 5, 10, 20 and 50 km.
Kotsadam & Tolonen (2016) measure local effects of mines within about 20 km and find them near
zero at 50 km, so nothing further than ``max_km`` counts. Where a source gives a mine as a point,
the point stands for a footprint of ``footprint_radius_m`` (from the source catalog): the
distance is to that circle's edge, and the community row says the nearest concession is a site.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import Field

from geo_service.risk.base import FactorParams, FactorResult, RiskInputs, no_evidence
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


class ConcessionPressure:
    """Exposure of communities to mining concessions (polygons, or sites with a footprint)."""

    name: ClassVar[str] = "concession_pressure"
    evidence_kind: ClassVar[Kind] = Kind.concessions
    Params: ClassVar[type[FactorParams]] = ConcessionPressureParams

    def compute(self, inputs: RiskInputs, params: FactorParams) -> FactorResult:
        """Nearest-boundary distance, decay weight and ring counts for every community."""
        assert isinstance(params, ConcessionPressureParams)
        communities = inputs.communities
        n = len(communities)
        covered = inputs.covered(self.evidence_kind)
        raw = np.where(covered, 0.0, np.nan)
        nearest_km = np.full(n, np.nan)
        nearest_is_site = np.zeros(n, dtype=bool)
        rings = {f"within_{r:g}km": np.where(covered, 0, -1) for r in params.rings_km}
        concessions = inputs.concessions
        evidence = no_evidence(n)
        if concessions is not None and len(concessions):
            rows = np.flatnonzero(covered)
            reach = params.max_km * 1000.0
            # Rings beyond max_km count what lies within max_km, as nothing further counts.
            ring_m = np.minimum(np.asarray(params.rings_km, dtype="float64") * 1000.0, reach)
            radii = np.unique(np.r_[ring_m, reach])
            near = neighbourhood(
                communities.geometry.to_numpy()[rows],
                concessions.geometry,
                radii,
                params.evidence_max,
                grow=np.nan_to_num(concessions["footprint_radius_m"].to_numpy(dtype="float64")),
            )
            found = near.nearest >= 0
            s, best = rows[found], near.metres[found]
            nearest_km[s] = best / 1000.0
            raw[s] = np.exp(-best / (params.decay_km * 1000.0))
            nearest_is_site[s] = concessions["footprint"].to_numpy()[near.nearest[found]] == "site"
            for r, m in zip(params.rings_km, ring_m, strict=True):
                rings[f"within_{r:g}km"][rows] += near.counts[:, np.searchsorted(radii, m)]
            evidence = _ranked_ids(
                rows[near.ranked_source], concessions["concession_id"], near.ranked_target, n
            )
        columns: dict[str, np.ndarray] = {
            "nearest_km": nearest_km,
            "nearest_is_site": nearest_is_site,
            **{k: np.where(v < 0, np.nan, v) for k, v in rings.items()},
        }
        return FactorResult(
            name=self.name,
            raw=raw,
            normalised=raw.copy(),
            evidence=evidence,
            columns=columns,
            metadata={
                "formula": "exp(-d/λ), d = metres to the nearest concession boundary (0 inside; "
                "edge of the footprint circle for site points), nothing beyond max_km",
                "reference": "Kotsadam & Tolonen 2016, World Development 83:325-339",
            },
        )


def _ranked_ids(source: np.ndarray, ids: pd.Series, taken: np.ndarray, n: int) -> pa.ListArray:
    """Per row (0..n-1), ``ids[taken]`` of its pairs, which come in order (by source, best first).

    What ``top_ids`` gives for pairs already ranked, without its sort, and with each id turned
    into text once rather than once per community (a second for the 2 M ids of 200,000
    communities).
    """
    text = pa.array(ids.to_numpy(dtype=object).astype(str), pa.string())
    offsets = np.r_[0, np.cumsum(np.bincount(source, minlength=n))].astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), text.take(pa.array(taken)))
