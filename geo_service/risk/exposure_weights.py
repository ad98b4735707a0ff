"""The share of a place's people each kind of evidence reaches: inside a ring of a mine site,
in a dam's run-out (a chance), on the river below a dam, in an incident's reach.

``weights`` measures places (communities, the centres of populated cells) against the same
evidence as the factors; ``ExposureWeights`` does it a partition of the communities at a
time, with the sites and incidents within reach of each. Derivations: docs/methodology.md §7.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import geopandas as gpd
import numpy as np
import shapely

from geo_service.risk.base import Box, FactorResult, Prepared, RiskInputs
from geo_service.risk.boxes import near, subset
from geo_service.risk.concession_pressure import ConcessionPressureParams, concession_precision
from geo_service.risk.incident_intensity import (
    IncidentIntensityParams,
    incident_weights,
    resolve_reference_date,
)
from geo_service.risk.metric import disc_distance, nearest
from geo_service.risk.params import RiskParams
from geo_service.risk.tailings_exposure import (
    DamRivers,
    DamTable,
    TailingsExposureParams,
    dam_rivers,
    dam_table,
    pathways,
)
from geo_service.schemas import Kind


@dataclass(frozen=True)
class Factor:
    """One people-exposed column: its name, the evidence kind behind it, and its words."""

    column: str
    kind: Kind
    text: str


def factors(params: RiskParams) -> list[Factor]:
    """The exposure columns, in order: rings, run-out, downstream, incident reach."""
    cp = params.factors["concession_pressure"]
    assert isinstance(cp, ConcessionPressureParams)
    rings = [
        Factor(f"people_mine_{r:g}km", Kind.concessions, f"within {r:g} km of a mine site")
        for r in cp.rings_km
    ]
    return [
        *rings,
        Factor(
            "people_runout",
            Kind.tailings_dams,
            "expected in a dam's run-out (people × chance of being reached)",
        ),
        Factor("people_downstream", Kind.tailings_dams, "on a river below a dam"),
        Factor("people_incident_reach", Kind.incidents, "within an incident's reach"),
    ]


def weights(points: np.ndarray, inputs: RiskInputs, params: RiskParams) -> dict[str, np.ndarray]:
    """Per place (Points) and factor, the share of its people exposed (0–1; a chance for the
    run-out), against all of the evidence."""
    prepared = ExposureWeights().prepare(inputs, params)
    return weights_near(points, prepared.shared, prepared.select(None))


@dataclass(frozen=True)
class Reach:
    """What every partition's weights read: the parameters, the dams and their rivers."""

    params: RiskParams
    table: DamTable | None
    rivers: DamRivers | None


@dataclass(frozen=True)
class Nearby:
    """The evidence near a partition: mine sites of the ring precisions (with their footprint
    radius), and the incidents that count (with their reach, metres)."""

    sites: gpd.GeoDataFrame | None
    incidents: gpd.GeoDataFrame | None


class ExposureWeights:
    """Per community, the share of its people each exposure factor reaches (``weights``), a
    partition of the communities at a time: the sites and incidents within reach of it, the
    dams and their rivers shared."""

    name: ClassVar[str] = "exposure_weights"
    per: ClassVar[str] = "community"

    def prepare(self, inputs: RiskInputs, params: RiskParams) -> Prepared:
        """The dams and rivers (shared); the sites and incidents near a box (selected)."""
        cp = params.factors["concession_pressure"]
        assert isinstance(cp, ConcessionPressureParams)
        tp = params.factors["tailings_exposure"]
        assert isinstance(tp, TailingsExposureParams)
        ip = params.factors["incident_intensity"]
        assert isinstance(ip, IncidentIntensityParams)
        table = dam_table(inputs.tailings_dams, inputs.incidents, tp)
        rivers = dam_rivers(table, inputs.rivers, tp) if table is not None and len(table) else None

        sites = None
        conc = inputs.concessions
        if conc is not None and len(conc):
            keep = np.isin(concession_precision(conc), params.exposure.ring_precisions)
            if keep.any():
                sites = conc.loc[keep, ["footprint_radius_m", conc.geometry.name]]
                sites = sites.reset_index(drop=True)
        incidents = None
        found = inputs.incidents
        reference = resolve_reference_date(found, ip) if found is not None else None
        if found is not None and len(found) and reference is not None:
            w = incident_weights(found, ip, reference)
            radius = ip.cutoff_bandwidths * w.bandwidth_m
            incidents = gpd.GeoDataFrame(
                {"reach_m": radius[w.keep]}, geometry=found.geometry.to_numpy()[w.keep]
            )
        near_sites = _nearby(sites, max(cp.rings_km) * 1000.0, "footprint_radius_m")
        near_incidents = _nearby(incidents, 0.0, "reach_m")

        def select(box: Box | None) -> Nearby:
            return Nearby(near_sites(box), near_incidents(box))

        return Prepared(Reach(params, table, rivers), select)

    def evaluate(
        self, shared: Reach, selected: Nearby, inputs: RiskInputs, results: list[FactorResult]
    ) -> dict[str, np.ndarray]:
        """The weights of this partition's communities."""
        return weights_near(inputs.communities.geometry.to_numpy(), shared, selected)


def _nearby(
    frame: gpd.GeoDataFrame | None, metres: float, grown_by: str
) -> Callable[[Box | None], gpd.GeoDataFrame | None]:
    """The rows of ``frame`` within ``metres`` plus the largest ``grown_by`` of a box."""
    if frame is None:
        return lambda box: None
    bounds = shapely.bounds(frame.geometry.to_numpy())
    reach = metres + float(np.nan_to_num(frame[grown_by].to_numpy(dtype="float64")).max())
    return lambda box: frame if box is None else subset(frame, near(bounds, box, reach))


def weights_near(points: np.ndarray, reach: Reach, evidence: Nearby) -> dict[str, np.ndarray]:
    """Per place and factor, the share of its people exposed, against ``evidence``."""
    params = reach.params
    n = len(points)
    out: dict[str, np.ndarray] = {}
    cp = params.factors["concession_pressure"]
    assert isinstance(cp, ConcessionPressureParams)
    distance = np.full(n, np.inf)
    if evidence.sites is not None and len(evidence.sites):
        distance = _footprint_distance(points, evidence.sites, max(cp.rings_km) * 1000.0)
    for r in cp.rings_km:
        out[f"people_mine_{r:g}km"] = (distance <= r * 1000.0).astype(np.float64)

    tp = params.factors["tailings_exposure"]
    assert isinstance(tp, TailingsExposureParams)
    runout = np.zeros(n)
    downstream = np.zeros(n)
    if reach.table is not None and reach.rivers is not None:
        paths = pathways(points, reach.table, reach.rivers, tp)
        p = np.clip(paths.probability, 0.0, 1.0 - 1e-12)
        # Reached by at least one dam: 1 − Π(1 − pᵢ), the dams failing independently.
        runout = 1.0 - np.exp(np.bincount(paths.community, np.log1p(-p), minlength=n))
        downstream = (np.bincount(paths.community[paths.on_river], minlength=n) > 0).astype(float)
    out["people_runout"] = runout
    out["people_downstream"] = downstream

    reach_of = np.zeros(n)
    incidents = evidence.incidents
    if incidents is not None and len(incidents):
        radius = incidents["reach_m"].to_numpy(dtype="float64")
        d = disc_distance(points, incidents.geometry.to_numpy(), radius, 0.0)
        reach_of = (np.nan_to_num(d, nan=np.inf) <= 0.0).astype(np.float64)
    out["people_incident_reach"] = reach_of
    return out


def _footprint_distance(points: np.ndarray, sites: gpd.GeoDataFrame, reach_m: float) -> np.ndarray:
    """Metres from each point to the nearest footprint edge (0 inside; inf beyond ``reach_m``).

    A site point stands for a disc of its footprint radius (``metric.disc_distance``); mapped
    polygons are measured to their edges (``metric.nearest``).
    """
    out = np.full(len(points), np.inf)
    geoms = sites.geometry.to_numpy()
    radius = sites["footprint_radius_m"].to_numpy(dtype="float64", na_value=np.nan)
    is_site = (shapely.get_type_id(geoms) == 0) & np.isfinite(radius)
    if is_site.any():
        d = disc_distance(points, geoms[is_site], radius[is_site], reach_m)
        out = np.fmin(out, np.where(np.isnan(d), np.inf, d))
    if (~is_site).any():
        _, d = nearest(points, geoms[~is_site], reach_m)
        out = np.fmin(out, np.where(np.isnan(d), np.inf, d))
    return out
