"""People exposed, per factor: counted on the population grid, summed per community and unit.

Every populated cell of a ``population`` source is a place where people live: its centre is
measured against the same evidence as a community (``weights``: within each concession ring of
a located mine site, the chance a dam's run-out reaches it, on the river below a dam, within an
incident's reach). A cell counts for the nearest community within ``catchment_km`` and for the
unit of each level its centre lies in. Where no grid covers a place, the community's own
population stands in, and the rows say which was used. Derivations: docs/methodology.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_service.ingest.population import PopulationGrid
from geo_service.ingest.units import equal_area
from geo_service.risk.base import Box, FactorResult, Prepared, RiskInputs
from geo_service.risk.boxes import near, subset
from geo_service.risk.concession_pressure import ConcessionPressureParams, concession_precision
from geo_service.risk.incident_intensity import (
    IncidentIntensityParams,
    incident_weights,
    resolve_reference_date,
)
from geo_service.risk.metric import disc_distance, nearest
from geo_service.risk.params import CLASS_NAMES, NO_DATA, RiskParams
from geo_service.risk.tailings_exposure import (
    DamRivers,
    DamTable,
    TailingsExposureParams,
    dam_rivers,
    dam_table,
    pathways,
)
from geo_service.schemas import Kind

#: A unit is counted on a grid when this share of its area lies inside the grid.
GRID_COVER_SHARE = 0.95


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
    return _weights(points, prepared.shared, prepared.select(None))


@dataclass(frozen=True)
class _Reach:
    """What every partition's weights read: the parameters, the dams and their rivers."""

    params: RiskParams
    table: DamTable | None
    rivers: DamRivers | None


@dataclass(frozen=True)
class _Near:
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

        def select(box: Box | None) -> _Near:
            return _Near(near_sites(box), near_incidents(box))

        return Prepared(_Reach(params, table, rivers), select)

    def evaluate(
        self, shared: _Reach, selected: _Near, inputs: RiskInputs, results: list[FactorResult]
    ) -> dict[str, np.ndarray]:
        """The weights of this partition's communities."""
        return _weights(inputs.communities.geometry.to_numpy(), shared, selected)


def _nearby(
    frame: gpd.GeoDataFrame | None, metres: float, grown_by: str
) -> Callable[[Box | None], gpd.GeoDataFrame | None]:
    """The rows of ``frame`` within ``metres`` plus the largest ``grown_by`` of a box."""
    if frame is None:
        return lambda box: None
    bounds = shapely.bounds(frame.geometry.to_numpy())
    reach = metres + float(np.nan_to_num(frame[grown_by].to_numpy(dtype="float64")).max())
    return lambda box: frame if box is None else subset(frame, near(bounds, box, reach))


def _weights(points: np.ndarray, reach: _Reach, evidence: _Near) -> dict[str, np.ndarray]:
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


@dataclass(frozen=True)
class Cells:
    """The populated cells of every grid, one row each."""

    grid: np.ndarray
    row: np.ndarray
    col: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    people: np.ndarray

    @classmethod
    def of(cls, grids: list[PopulationGrid]) -> Cells:
        """Every populated cell of the grids, in catalog order."""
        parts = []
        taken: list[shapely.Geometry] = []
        for g, grid in enumerate(grids):
            rows, cols, people = grid.populated()
            lon, lat = grid.centres_lonlat(rows, cols)
            # Grids should not overlap; where they do, the first in the catalog counts.
            if taken:
                outside = ~shapely.intersects_xy(shapely.union_all(taken), lon, lat)
                rows, cols, people = rows[outside], cols[outside], people[outside]
                lon, lat = lon[outside], lat[outside]
            taken.append(shapely.box(*_lonlat_bounds(grid)))
            parts.append((np.full(len(rows), g), rows, cols, lon, lat, people))
        if not parts:
            empty = np.empty(0)
            return cls(empty.astype(int), empty.astype(int), empty.astype(int), empty, empty, empty)
        return cls(*(np.concatenate(x) for x in zip(*parts, strict=True)))


def _lonlat_bounds(grid: PopulationGrid) -> tuple[float, float, float, float]:
    rows, cols = grid.shape
    lon, lat = grid.centres_lonlat(
        np.array([-0.5, -0.5, rows - 0.5, rows - 0.5]),
        np.array([-0.5, cols - 0.5, -0.5, cols - 0.5]),
    )
    return float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())


@dataclass
class Exposure:
    """What ``people_exposed`` adds: columns for ``community_risk``, the ``risk_units`` layer,
    and the metadata of the counting."""

    community_columns: dict[str, np.ndarray]
    units: gpd.GeoDataFrame | None
    metadata: dict[str, Any]


def people_exposed(
    inputs: RiskInputs,
    community_risk: gpd.GeoDataFrame,
    units: gpd.GeoDataFrame | None,
    grids: list[PopulationGrid],
    params: RiskParams,
    public_incidents: gpd.GeoDataFrame | None = None,
    point_w: dict[str, np.ndarray] | None = None,
) -> Exposure:
    """People per factor for every community, and the ``risk_units`` layer when units exist.

    ``point_w`` is the communities' ``weights``, if the partitions of the communities have
    computed them already (``ExposureWeights``)."""
    cols = factors(params)
    cells = Cells.of(grids)
    communities = inputs.communities
    k = len(cells.lon)
    places = shapely.points(cells.lon, cells.lat)
    if point_w is None:
        places = np.r_[places, communities.geometry.to_numpy()]
    none = {f.column: np.zeros(0) for f in cols}
    w = weights(places, inputs, params) if len(places) else none
    cell_w = {f.column: w[f.column][:k] for f in cols}
    if point_w is None:
        point_w = {f.column: w[f.column][k:] for f in cols}

    # Each populated cell counts for its nearest community within the catchment.
    n = len(communities)
    owner = np.full(k, -1)
    if k and n:
        owner, _ = nearest(
            places[:k],
            communities.geometry.to_numpy(),
            params.exposure.catchment_km * 1000.0,
        )
    mine = owner >= 0
    grid_people = np.bincount(owner[mine], cells.people[mine], minlength=n)
    point_people = communities["population"].to_numpy(dtype="float64", na_value=np.nan)
    use_grid = grid_people > 0
    people = np.where(use_grid, grid_people, point_people)
    source = np.where(use_grid, "grid", np.where(np.isfinite(point_people), "point", None))
    covered = {kind: inputs.covered(kind) for kind in {f.kind for f in cols}}
    columns: dict[str, np.ndarray] = {
        "people": np.round(people),
        "people_source": source.astype(object),
    }
    for f in cols:
        from_grid = np.bincount(owner[mine], cells.people[mine] * cell_w[f.column][mine], n)
        value = np.where(use_grid, from_grid, point_people * point_w[f.column])
        known = covered[f.kind] | (value > 0)
        columns[f.column] = np.where(known & np.isfinite(people), np.round(value), np.nan)

    metadata: dict[str, Any] = {
        "catchment_km": params.exposure.catchment_km,
        "grids": {
            g.key: {"year": g.year, "people": round(g.total), "cells": int((g.people > 0).sum())}
            for g in grids
        },
        "communities_counted_on_a_grid": int(use_grid.sum()),
        "people_in_a_community_catchment": round(float(cells.people[mine].sum())),
        "factors": {f.column: f.text for f in cols},
    }
    layer = None
    if units is not None and len(units):
        layer = _unit_layer(
            units,
            cells,
            cell_w,
            grids,
            communities,
            community_risk,
            columns,
            point_w,
            inputs,
            params,
            public_incidents,
            metadata,
        )
    return Exposure(columns, layer, metadata)


def _unit_layer(
    units: gpd.GeoDataFrame,
    cells: Cells,
    cell_w: dict[str, np.ndarray],
    grids: list[PopulationGrid],
    communities: gpd.GeoDataFrame,
    community_risk: gpd.GeoDataFrame,
    community_columns: dict[str, np.ndarray],
    point_w: dict[str, np.ndarray],
    inputs: RiskInputs,
    params: RiskParams,
    public_incidents: gpd.GeoDataFrame | None,
    metadata: dict[str, Any],
) -> gpd.GeoDataFrame:
    units = units.reset_index(drop=True)
    m = len(units)
    cols = factors(params)
    geoms = units.geometry.to_numpy()
    label = _cell_units(units, cells, grids)  # (levels, cells): unit index or -1
    on_grid = _grid_share(geoms, grids) >= GRID_COVER_SHARE

    # Communities in each unit (any level), for the classes, scores and point populations.
    tree = shapely.STRtree(geoms)
    # The units (prepared) search a tree of the points: many points, few polygons.
    shapely.prepare(geoms)
    u_idx, c_idx = shapely.STRtree(communities.geometry.to_numpy()).query(
        geoms, predicate="intersects"
    )
    # Only what the public may see is counted by unit: a restricted community (a monitor's
    # village) adds nothing to a unit's counts, classes or scores.
    if "sensitivity" in community_risk:
        public = community_risk["sensitivity"].astype(object).ne("restricted").to_numpy()
        u_idx, c_idx = u_idx[public[c_idx]], c_idx[public[c_idx]]

    population = np.zeros(m)
    exposed = {f.column: np.zeros(m) for f in cols}
    for lv in range(label.shape[0]):
        lab = label[lv]
        inside = lab >= 0
        population += np.bincount(lab[inside], cells.people[inside], minlength=m)
        for f in cols:
            exposed[f.column] += np.bincount(
                lab[inside], cells.people[inside] * cell_w[f.column][inside], minlength=m
            )
    point_people = communities["population"].to_numpy(dtype="float64", na_value=np.nan)
    known = np.isfinite(point_people)
    pick = known[c_idx]
    pop_points = np.bincount(u_idx[pick], point_people[c_idx[pick]], minlength=m)
    population = np.where(on_grid, population, pop_points)
    for f in cols:
        from_points = np.bincount(
            u_idx[pick], point_people[c_idx[pick]] * point_w[f.column][c_idx[pick]], minlength=m
        )
        exposed[f.column] = np.where(on_grid, exposed[f.column], from_points)

    years = {g.year for g in grids}
    out = pd.DataFrame(
        {
            "code": units["code"].astype(str),
            "name": units["name"],
            "level": units["level"],
            "parent_code": units["parent_code"],
            "parent_name": units["parent_code"].map(
                dict(zip(units["code"].astype(str), units["name"], strict=True))
            ),
            "country": units["country"],
            "people": np.round(population),
            # "grid": counted on the population grid; "communities": the sum of the known
            # populations of its communities. Both are lower bounds (methodology).
            "people_source": np.where(on_grid, "grid", "communities"),
            "people_year": np.where(on_grid, max(years) if years else np.nan, np.nan),
        }
    )
    country = units["country"].to_numpy(dtype=object)
    for f in cols:
        cover = inputs.coverage_for(f.kind).contains(country, shapely.point_on_surface(geoms))
        value = exposed[f.column]
        out[f.column] = np.where(cover | (value > 0), np.round(value), np.nan)

    # Communities by class, the highest and the population-weighted score.
    classes = community_risk["risk_class"].to_numpy(dtype=object)
    out["communities"] = np.bincount(u_idx, minlength=m)
    for name in [*reversed(CLASS_NAMES), NO_DATA]:
        hit = classes[c_idx] == name
        out[f"communities_{name.replace(' ', '_')}"] = np.bincount(u_idx[hit], minlength=m)
    score = community_risk["score"].to_numpy(dtype="float64", na_value=np.nan)
    scored = np.isfinite(score[c_idx])
    best = np.full(m, np.nan)
    np.fmax.at(best, u_idx[scored], score[c_idx[scored]])
    out["score_max"] = best
    out["risk_class"] = params.classes.of(best)
    weight = np.nan_to_num(community_columns["people"].astype("float64"))[c_idx]
    wsum = np.bincount(u_idx[scored], weight[scored], minlength=m)
    wscore = np.bincount(u_idx[scored], (weight * np.nan_to_num(score[c_idx]))[scored], minlength=m)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["score_weighted"] = np.where(wsum > 0, np.round(wscore / wsum, 1), np.nan)
    out["score_max_confidence"] = _top_confidence(u_idx, c_idx, score, community_risk, m)
    out["factors_without_data"] = _missing(community_risk, u_idx, c_idx, m)

    # Evidence counts, of what the public may see.
    out["concessions"] = _count(tree, inputs.concessions, m)
    out["footprint_ha"], out["footprint_ha_by_year"] = footprint_by_unit(
        tree, inputs.concessions, m
    )
    out["tailings_dams"] = _count(tree, inputs.tailings_dams, m)
    out["incidents_public"] = _count(tree, _points(public_incidents), m)
    layer = gpd.GeoDataFrame(out, geometry=geoms, crs="EPSG:4326")

    levels = {}
    for lv in sorted(units["level"].dropna().unique()):
        sel = (units["level"] == lv).to_numpy()
        levels[str(int(lv))] = {
            "units": int(sel.sum()),
            "people_on_grid": round(float(population[sel & on_grid].sum())),
        }
    metadata["units"] = {"levels": levels, "on_grid": int(on_grid.sum())}
    return layer


def _cell_units(units: gpd.GeoDataFrame, cells: Cells, grids: list[PopulationGrid]) -> np.ndarray:
    """Per level and populated cell, the unit whose polygon holds the cell's centre (-1: none),
    tested in the grid's CRS (the cell-centre rule of rasterising, without the full-size label
    raster): each unit tests only the populated cells in its rows and columns. A centre on a
    border between two units of a level, or in two that overlap, goes to the first."""
    levels = sorted(units["level"].dropna().unique())
    level = units["level"].to_numpy()
    out = np.full((len(levels), len(cells.people)), -1, dtype=np.int64)
    for g, grid in enumerate(grids):
        on = np.flatnonzero(cells.grid == g)
        if on.size == 0:
            continue
        on = on[np.argsort(cells.row[on], kind="stable")]
        rows, cols = cells.row[on], cells.col[on]
        x, y = grid.transform @ (cols + 0.5, rows + 0.5)
        geoms = grid.to_grid_crs(units).geometry.to_numpy()
        inverse = ~grid.transform
        usable = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms)) & np.isin(level, levels)
        for j in np.flatnonzero(usable):
            west, south, east, north = shapely.bounds(geoms[j])
            c, r = inverse @ (
                np.array([west, east, west, east]),
                np.array([south, north, north, south]),
            )
            first, last = np.floor(r.min()) - 1, np.ceil(r.max()) + 1
            lo, hi = np.searchsorted(rows, np.array([first, last]).astype(rows.dtype))
            near = cols[lo:hi]
            band = lo + np.flatnonzero(
                (near >= np.floor(c.min()) - 1) & (near <= np.ceil(c.max()) + 1)
            )
            if not band.size:
                continue
            shapely.prepare(geoms[j])
            i = levels.index(level[j])
            hit = band[shapely.intersects_xy(geoms[j], x[band], y[band])]
            hit = hit[out[i, on[hit]] < 0]
            out[i, on[hit]] = j
    return out


def _grid_share(geoms: np.ndarray, grids: list[PopulationGrid]) -> np.ndarray:
    """Share of each unit's area inside some grid's extent."""
    if not grids:
        return np.zeros(len(geoms))
    extent = shapely.union_all([shapely.box(*_lonlat_bounds(g)) for g in grids])
    area = shapely.area(equal_area(geoms))
    inside = shapely.area(equal_area(shapely.intersection(geoms, extent)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(area > 0, inside / area, 0.0)


def _top_confidence(
    u_idx: np.ndarray,
    c_idx: np.ndarray,
    score: np.ndarray,
    community_risk: gpd.GeoDataFrame,
    m: int,
) -> np.ndarray:
    """The confidence of the community that holds each unit's highest score."""
    conf = community_risk["confidence"].to_numpy(dtype=object)
    out = np.full(m, None, dtype=object)
    s = score[c_idx]
    ok = np.isfinite(s)
    order = np.lexsort((-s[ok], u_idx[ok]))
    u, first = np.unique(u_idx[ok][order], return_index=True)
    out[u] = conf[c_idx[ok][order][first]]
    return out


def _missing(
    community_risk: gpd.GeoDataFrame, u_idx: np.ndarray, c_idx: np.ndarray, m: int
) -> np.ndarray:
    """Factors no community of the unit has data for ("; "-joined; empty when none)."""
    missing = community_risk["factors_missing"].to_numpy(dtype=object)
    seen: list[set[str] | None] = [None] * m
    for u, c in zip(u_idx, c_idx, strict=True):
        words = set(missing[c]) if missing[c] is not None else set()
        seen[u] = words if seen[u] is None else seen[u] & words
    return np.array(["; ".join(sorted(s)) if s else "" for s in seen], dtype=object)


def _points(layer: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame | None:
    if layer is None:
        return None
    return layer[layer.geom_type == "Point"]


def footprint_by_unit(
    tree: shapely.STRtree, concessions: gpd.GeoDataFrame | None, m: int
) -> tuple[np.ndarray, np.ndarray]:
    """The mapped footprint of each unit (hectares, as published) and the hectares added per
    year ("2018: 1107.4; 2019: 155.2"), from footprints mapped by period (``period_year``,
    ``area_ha``); a footprint counts in the unit holding its representative point, as in the
    catalog's growth areas. Null where no such footprint lies."""
    total = np.full(m, np.nan)
    by_year = np.full(m, None, dtype=object)
    if concessions is None or not len(concessions) or "period_year" not in concessions:
        return total, by_year
    year = concessions["period_year"].to_numpy(dtype="float64", na_value=np.nan)
    area = concessions["area_ha"].to_numpy(dtype="float64", na_value=np.nan)
    dated = np.flatnonzero(np.isfinite(year) & np.isfinite(area))
    points = shapely.point_on_surface(concessions.geometry.to_numpy()[dated])
    f, u = tree.query(points, predicate="within")
    if not len(f):
        return total, by_year
    rows = pd.DataFrame({"unit": u, "year": year[dated][f].astype(int), "ha": area[dated][f]})
    sums = rows.groupby(["unit", "year"])["ha"].sum()
    for unit, part in sums.groupby(level="unit"):
        total[unit] = round(float(part.sum()), 2)
        by_year[unit] = "; ".join(f"{y}: {ha:.1f}" for (_, y), ha in part.items())
    return total, by_year


def _count(tree: shapely.STRtree, layer: gpd.GeoDataFrame | None, m: int) -> np.ndarray:
    """How many features of a layer touch each unit (null where there is no such layer)."""
    if layer is None:
        return np.full(m, np.nan)
    _, u = tree.query(layer.geometry.to_numpy(), predicate="intersects")
    return np.bincount(u, minlength=m).astype(np.float64)
