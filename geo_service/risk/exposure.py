"""People exposed, per factor: counted on the population grid, summed per community and unit.

Every populated cell of a ``population`` source is a place where people live: its centre is
measured against the same evidence as a community (``exposure_weights.py``: within each
concession ring of a located mine site, the chance a dam's run-out reaches it, on the river
below a dam, within an incident's reach). A cell counts for the nearest community within
``catchment_km`` and for the unit of each level its centre lies in (``exposure_cells.py``, a
partition of the cells at a time). Where no grid covers a place, the community's own
population stands in, and the rows say which was used. Derivations: docs/methodology.md.
"""

from __future__ import annotations

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
from geo_service.risk.exposure_cells import Cells, CellSums, cell_sums, lonlat_bounds
from geo_service.risk.exposure_weights import factors, weights
from geo_service.risk.params import CLASS_NAMES, NO_DATA, RiskParams
from geo_service.risk.runner import Runner

#: A unit is counted on a grid when this share of its area lies inside the grid.
GRID_COVER_SHARE = 0.95


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
    runner: Runner | None = None,
    members: tuple[np.ndarray, np.ndarray] | None = None,
) -> Exposure:
    """People per factor for every community, and the ``risk_units`` layer when units exist.

    ``point_w`` is the communities' ``weights`` and ``members`` the units' public
    communities (``members_of``), if the partitions of the communities have found them already
    (``ExposureWeights``, ``UnitMembers``); the populated cells are counted a partition at a
    time by ``runner`` (``exposure_cells.py``; in this process by default)."""
    cols = factors(params)
    communities = inputs.communities
    if point_w is None:
        point_w = weights(communities.geometry.to_numpy(), inputs, params)
    units = units.reset_index(drop=True) if units is not None and len(units) else None
    # Each populated cell counts for its nearest community within the catchment.
    sums = cell_sums(Cells.of(grids), grids, inputs, units, params, runner)
    grid_people = sums.community_people
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
        from_grid = sums.community_exposed[f.column]
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
        "people_in_a_community_catchment": round(sums.in_catchment),
        "factors": {f.column: f.text for f in cols},
    }
    layer = None
    if units is not None:
        layer = _unit_layer(
            units,
            sums,
            grids,
            communities,
            community_risk,
            columns,
            point_w,
            inputs,
            params,
            public_incidents,
            metadata,
            members,
        )
    return Exposure(columns, layer, metadata)


def members_of(
    units: gpd.GeoDataFrame, communities: gpd.GeoDataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """The public communities in each unit (any level): pairs of unit and community rows,
    by unit then community. Only what the public may see is counted by unit: a restricted
    community (a monitor's village) adds nothing to a unit's counts, classes or scores."""
    geoms = units.geometry.to_numpy()
    # The units (prepared) search a tree of the points: many points, few polygons.
    shapely.prepare(geoms)
    u_idx, c_idx = shapely.STRtree(communities.geometry.to_numpy()).query(
        geoms, predicate="intersects"
    )
    if "sensitivity" in communities:
        public = communities["sensitivity"].astype(object).ne("restricted").to_numpy()
        u_idx, c_idx = u_idx[public[c_idx]], c_idx[public[c_idx]]
    order = np.lexsort((c_idx, u_idx))
    return u_idx[order], c_idx[order]


class UnitMembers:
    """``members_of`` a partition of the communities at a time, against the units that come
    near it; the pairs of all partitions, in community rows, by unit then community."""

    name: ClassVar[str] = "unit_members"
    per: ClassVar[str] = "table"

    def __init__(self, units: gpd.GeoDataFrame | None) -> None:
        self.units = units.reset_index(drop=True) if units is not None else None

    def prepare(self, inputs: RiskInputs, params: Any) -> Prepared:
        """The units whose outline comes near a box (selected), with their rows."""
        units = self.units
        if units is None or not len(units):
            return Prepared(None, lambda box: None)
        outlines = units[[units.geometry.name]]
        bounds = shapely.bounds(outlines.geometry.to_numpy())

        def select(box: Box | None) -> tuple[np.ndarray, gpd.GeoDataFrame]:
            touching = near(bounds, box, 0.0) if box is not None else np.ones(len(bounds), bool)
            return np.flatnonzero(touching), subset(outlines, touching)

        return Prepared(None, select)

    def evaluate(
        self,
        shared: None,
        selected: tuple[np.ndarray, gpd.GeoDataFrame] | None,
        inputs: RiskInputs,
        results: list[FactorResult],
    ) -> tuple[np.ndarray, np.ndarray]:
        """This partition's pairs: units' rows, and its communities' rows within it."""
        if selected is None or not len(selected[0]):
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        rows, outlines = selected
        u, c = members_of(outlines, inputs.communities)
        return rows[u], c

    def add_up(
        self, parts: list[tuple[np.ndarray, np.ndarray]], rows: list[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every partition's pairs, in community rows, by unit then community."""
        u = np.concatenate([p[0] for p in parts])
        c = np.concatenate([r[p[1]] for p, r in zip(parts, rows, strict=True)])
        order = np.lexsort((c, u))
        return u[order].astype(np.int64), c[order].astype(np.int64)


def _unit_layer(
    units: gpd.GeoDataFrame,
    sums: CellSums,
    grids: list[PopulationGrid],
    communities: gpd.GeoDataFrame,
    community_risk: gpd.GeoDataFrame,
    community_columns: dict[str, np.ndarray],
    point_w: dict[str, np.ndarray],
    inputs: RiskInputs,
    params: RiskParams,
    public_incidents: gpd.GeoDataFrame | None,
    metadata: dict[str, Any],
    members: tuple[np.ndarray, np.ndarray] | None,
) -> gpd.GeoDataFrame:
    m = len(units)
    cols = factors(params)
    geoms = units.geometry.to_numpy()
    on_grid = _grid_share(geoms, grids) >= GRID_COVER_SHARE

    # Communities in each unit (any level), for the classes, scores and point populations.
    tree = shapely.STRtree(geoms)
    if members is None:
        members = members_of(units, communities)
    u_idx, c_idx = members

    population = sums.unit_people
    exposed = dict(sums.unit_exposed)
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


def _grid_share(geoms: np.ndarray, grids: list[PopulationGrid]) -> np.ndarray:
    """Share of each unit's area inside some grid's extent."""
    if not grids:
        return np.zeros(len(geoms))
    extent = shapely.union_all([shapely.box(*lonlat_bounds(g)) for g in grids])
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
    names = sorted(
        c.removesuffix("_normalised") for c in community_risk if c.endswith("_normalised")
    )
    if not names:
        return np.full(m, "", dtype=object)
    bits = 1 << np.arange(len(names), dtype=np.int64)
    lacking = np.zeros(len(community_risk), dtype=np.int64)
    for name, bit in zip(names, bits, strict=True):
        lacking |= np.where(community_risk[f"{name}_normalised"].isna().to_numpy(), bit, 0)
    acc = np.full(m, bits.sum(), dtype=np.int64)
    np.bitwise_and.at(acc, u_idx, lacking[c_idx])
    acc[np.bincount(u_idx, minlength=m) == 0] = 0
    words = {
        k: "; ".join(n for n, b in zip(names, bits, strict=True) if k & b) for k in np.unique(acc)
    }
    return np.array([words[k] for k in acc], dtype=object)


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
