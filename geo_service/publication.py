"""What anonymous callers may know of restricted rows, decided once per build.

People who report abuses around mines have been threatened for it, so a row marked
``restricted`` (by its source in the catalog, or per row) is known to the public only as the
H3 cell it falls in (``restricted_resolution``, 5 by default: cells of about 250 km²), and only
where a cell holds at least ``restricted_min_count`` such rows. A restricted row dated within
``publication_delay_days`` of the build is left out of everything public, scores included.

Two things follow from that rule, and both are made here so that no later step can get it
wrong:

* **the evidence the risk model reads** (:meth:`Publication.evidence`): public rows as they
  are; restricted rows at the centre of their cell (an incident's location precision becomes
  the class whose bandwidth spans a cell); delayed rows left out. Every score, the surface and
  every count is then computed from positions no finer than a cell, so no output, however it
  is combined with others, can place a restricted row better than its cell; the scores still
  reflect restricted evidence, as they must.
* **the public view of every layer** (:meth:`Publication.public_view`): its public rows, and
  evidence id lists without restricted ids. The store serves this view to every caller whose
  role does not see restricted rows: items, counts, bounds, tiles, downloads, maps and
  pictures all read it.
* **the areas of every layer that can hold restricted rows** (:meth:`Publication.areas`): one
  feature per cell of its restricted rows (the cell's outline and a count; cells under the
  minimum and delayed rows left out), a layer of its own (``incident_areas`` for
  ``incidents``, ``AREAS``). It is the same for every caller, and every build that has the
  layer has it, empty when nothing is restricted, so neither its existence nor its columns
  say whether a build holds restricted rows; and no layer mixes its rows with cells.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import shapely

from geo_service.schemas import SCHEMAS, Kind

RESTRICTED = "restricted"
#: Derived layers whose rows stand for rows of a canonical kind, by the id they share.
ROWS_OF = {
    "community_risk": (Kind.communities, "community_id"),
    "tailings_consequence": (Kind.tailings_dams, "dam_id"),
    "concession_risk": (Kind.concessions, "concession_id"),
    "mine_sites": (Kind.concessions, "concession_id"),
}
#: The layer of each layer's restricted rows as cells (``Publication.areas``): every layer
#: whose rows stand for rows of a kind a source can mark restricted has one.
AREAS = {
    "incidents": "incident_areas",
    "communities": "community_areas",
    "concessions": "concession_areas",
    "mine_sites": "concession_areas",
    "tailings_dams": "tailings_dam_areas",
    "units": "unit_areas",
    "community_risk": "community_risk_areas",
    "tailings_consequence": "tailings_consequence_areas",
    "concession_risk": "concession_risk_areas",
}
#: Titles of the areas layers (any other: the layer's title and ``AREAS_TITLE``).
AREAS_TITLES = {
    "incidents": "Restricted incidents, by area",
    "communities": "Restricted communities, by area",
    "concessions": "Restricted concessions and mine sites, by area",
    "tailings_dams": "Restricted tailings dams, by area",
    "units": "Restricted official units, by area",
    "community_risk": "Risk scores of restricted communities, by area",
    "tailings_consequence": "Run-out of restricted tailings dams, by area",
    "concession_risk": "Surroundings of restricted concessions, by area",
}
AREAS_TITLE = "{title}: restricted rows, by area"
#: The cell's mean and highest score, in the areas of a layer of scored rows.
AREA_SCORES = ("mean_score", "max_score")
#: Location precisions of incidents, finest first.
PRECISION_ORDER = ("exact", "near", "admin2", "admin1", "region", "country", "international")
#: Equal-area projection for a concession's area anywhere on Earth (EASE-Grid 2.0 Global).
EQUAL_AREA = "EPSG:6933"


@dataclass(frozen=True)
class Policy:
    """The publication rule of one build (from ``BuildSettings``), recorded in its catalog."""

    resolution: int = 5
    min_count: int = 3
    delay_days: int = 90
    as_of: dt.date = field(default_factory=lambda: dt.datetime.now(dt.UTC).date())

    def record(self) -> dict[str, Any]:
        """The rule as the build metadata keeps it."""
        return {
            "resolution": self.resolution,
            "min_count": self.min_count,
            "delay_days": self.delay_days,
            "as_of": self.as_of.isoformat(),
            "cell_edge_km": round(h3.average_hexagon_edge_length(self.resolution, "km"), 3),
        }


def cells_of(geometry: gpd.GeoSeries, resolution: int) -> np.ndarray:
    """The H3 cell of each geometry (of a point on its surface for lines and polygons).

    Places repeat (many reports name the same village), so each distinct position is indexed
    once.
    """
    geoms = geometry.to_numpy()
    if len(geoms) == 0:
        return np.array([], dtype=object)
    if shapely.is_empty(geoms).any() or shapely.is_missing(geoms).any():
        raise ValueError("a restricted row without a geometry cannot be generalised")
    is_point = shapely.get_type_id(geoms) == 0
    points = geoms.copy()
    if not is_point.all():
        points[~is_point] = shapely.point_on_surface(geoms[~is_point])
    xy = shapely.get_coordinates(points)
    inverse, unique = pd.factorize(xy[:, 0] + 1j * xy[:, 1])  # hashed: no sort
    cells = np.array([h3.latlng_to_cell(z.imag, z.real, resolution) for z in unique], dtype=object)
    return cells[inverse]


def cell_polygons(cells: Iterable[str]) -> np.ndarray:
    """The outline of each H3 cell, lon/lat (built together, by number of vertices)."""
    rings = [h3.cell_to_boundary(c) for c in cells]
    out = np.empty(len(rings), dtype=object)
    sizes = np.array([len(r) for r in rings], dtype=np.int64)
    for n in np.unique(sizes):
        at = np.flatnonzero(sizes == n)
        coords = np.array([rings[i] for i in at], dtype="float64")[:, :, ::-1]  # lat,lng → x,y
        out[at] = shapely.polygons(coords)
    return out


def cell_centres(cells: Iterable[str]) -> list[shapely.Point]:
    """The centre of each H3 cell, lon/lat."""
    return [shapely.Point(lng, lat) for lat, lng in (h3.cell_to_latlng(c) for c in cells)]


@dataclass
class _Restricted:
    """The restricted rows of one canonical kind, by id."""

    cell: dict[str, str]  # id → its cell
    delayed: set[str]  # ids held back by the delay
    shown: set[str]  # cells holding at least min_count rows that are not delayed


class Publication:
    """The publication rule applied to the canonical layers of one build."""

    def __init__(
        self,
        layers: dict[Kind, gpd.GeoDataFrame],
        policy: Policy,
        incident_bandwidth_km: dict[str, float] | None = None,
    ) -> None:
        self.policy = policy
        self.bandwidth_km = dict(incident_bandwidth_km or {})
        self.restricted: dict[Kind, _Restricted] = {}
        for kind, gdf in layers.items():
            mask = is_restricted(gdf)
            if not mask.any():
                continue
            ids = gdf[SCHEMAS[kind].id_field].astype(str).to_numpy()[mask]
            cells = cells_of(gdf.geometry[mask], policy.resolution)
            recent = self._recent(gdf, kind)[mask]
            counts = pd.Series(cells[~recent]).value_counts()
            self.restricted[kind] = _Restricted(
                cell=dict(zip(ids, cells, strict=True)),
                delayed=set(ids[recent]),
                shown=set(counts.index[counts >= policy.min_count]),
            )

    def _recent(self, gdf: gpd.GeoDataFrame, kind: Kind) -> np.ndarray:
        date_field = SCHEMAS[kind].date_field
        if not self.policy.delay_days or date_field is None or date_field not in gdf:
            return np.zeros(len(gdf), dtype=bool)
        cutoff = pd.Timestamp(self.policy.as_of) - pd.Timedelta(days=self.policy.delay_days)
        dates = pd.to_datetime(gdf[date_field])
        if dates.dt.tz is not None:
            dates = dates.dt.tz_localize(None)
        # A restricted row without a date cannot be shown to be old enough: held back.
        return (dates.isna() | (dates > cutoff)).to_numpy()

    @property
    def any(self) -> bool:
        """Whether this build holds restricted rows at all."""
        return bool(self.restricted)

    def withheld_ids(self) -> set[str]:
        """Ids of every restricted row: never named to the public."""
        return set().union(*(set(r.cell) for r in self.restricted.values()))

    def precision_for_cells(self) -> str | None:
        """The finest incident precision whose kernel spans a cell (None: none does)."""
        edge = h3.average_hexagon_edge_length(self.policy.resolution, "km")
        fitting = [p for p in PRECISION_ORDER if self.bandwidth_km.get(p, 0.0) >= edge]
        return fitting[0] if fitting else None

    # --- what the risk model reads -------------------------------------------------------

    def evidence(self, kind: Kind, gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        """The layer as the risk model may read it: restricted rows at their cell's centre."""
        r = self.restricted.get(kind)
        if r is None:
            return gdf
        ids = gdf[SCHEMAS[kind].id_field].astype(str)
        out = gdf.loc[~ids.isin(r.delayed).to_numpy()].reset_index(drop=True)
        ids = out[SCHEMAS[kind].id_field].astype(str)
        moved = ids.isin(r.cell).to_numpy()
        geoms = out.geometry.to_numpy().copy()
        if kind == Kind.concessions:
            # Known only to its cell, a concession becomes a site at the cell's centre whose
            # footprint keeps the polygon's area: its scale is public, its outline is not.
            area = out.geometry[moved].to_crs(EQUAL_AREA).area.to_numpy()
            radius = out["footprint_radius_m"].to_numpy(dtype="float64").copy()
            polygon = shapely.get_type_id(geoms[moved]) != 0
            radius[np.flatnonzero(moved)[polygon]] = np.sqrt(area[polygon] / np.pi)
            out["footprint_radius_m"] = radius
            footprint = out["footprint"].astype(object).to_numpy()
            footprint[moved] = "site"
            out["footprint"] = footprint
        geoms[moved] = cell_centres(ids[moved].map(r.cell))
        out = out.set_geometry(gpd.GeoSeries(geoms, crs=gdf.crs))
        if kind in (Kind.incidents, Kind.concessions) and "location_precision" in out:
            out["location_precision"] = self._coarsened(out["location_precision"], moved)
        return out

    def _coarsened(self, precision: pd.Series, moved: np.ndarray) -> np.ndarray:
        """Moved incidents' precision: no finer than the class whose kernel spans a cell."""
        coarse = self.precision_for_cells() or "international"  # none spans: left out
        rank = {p: i for i, p in enumerate(PRECISION_ORDER)}
        own = precision.astype(object).to_numpy().copy()
        finer = np.array([rank.get(p, -1) < rank[coarse] for p in own], dtype=bool)
        own[moved & finer] = coarse
        return own

    # --- what anonymous callers see ------------------------------------------------------

    def public_view(self, layer_id: str, gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame | None:
        """The layer as anonymous callers get it; None when that is the layer itself."""
        if not self.any:
            return None
        kind, id_field = _row_kind(layer_id)
        r = self.restricted.get(kind) if kind is not None else None
        evidence = [c for c in gdf.columns if c.endswith("_evidence")]
        if r is None and not evidence:
            return None
        out = gdf
        if r is not None:  # restricted rows are in the layer's areas (``areas``), not here
            hidden = gdf[id_field].astype(str).isin(r.cell).to_numpy()
            out = gdf.loc[~hidden].reset_index(drop=True)
        if evidence:
            out = self._without_withheld_ids(out, evidence)
        return out

    def seen_by_public(self, layer_id: str, gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        """The layer as anonymous callers get it (its public view, or itself)."""
        view = self.public_view(layer_id, gdf)
        return gdf if view is None else view

    def areas(self, layer_id: str, gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        """The layer's restricted rows as the public may know them: one feature per shown
        cell (``h3``, ``resolution``, ``count``; for scored rows the cell's mean and highest
        score, as ``risk_hex`` gives them), delayed rows left out. The same columns whether
        or not anything is restricted: empty then."""
        kind, id_field = _row_kind(layer_id)
        r = self.restricted.get(kind) if kind is not None else None
        counts = pd.Series([], dtype="int64")
        scores = pd.Series([], dtype="float64")
        if r is not None and len(gdf):
            ids = gdf[id_field].astype(str)
            mask = ids.isin(r.cell).to_numpy()
            cells = ids[mask].map(r.cell).to_numpy()
            live = ~ids[mask].isin(r.delayed).to_numpy()
            shown = live & np.isin(cells, sorted(r.shown))
            counts = pd.Series(cells[shown]).value_counts().sort_index()
            if "score" in gdf:
                scores = pd.Series(
                    gdf["score"].to_numpy(dtype="float64")[mask][shown], index=cells[shown]
                )
        table = pd.DataFrame(
            {
                "h3": pd.Series(list(counts.index), dtype=object),
                "resolution": pd.Series([self.policy.resolution] * len(counts), dtype="int64"),
                "count": pd.Series(counts.to_numpy(), dtype="int64"),
            }
        )
        if "score" in gdf:  # what a cell of restricted places scores
            grouped = scores.groupby(level=0)
            table["mean_score"] = grouped.mean().round(2).reindex(counts.index).to_numpy()
            table["max_score"] = grouped.max().round(2).reindex(counts.index).to_numpy()
            for c in AREA_SCORES:
                table[c] = table[c].astype("float64")
        return gpd.GeoDataFrame(
            table,
            geometry=gpd.GeoSeries(cell_polygons(counts.index), crs=gdf.crs or "EPSG:4326"),
        )

    def _without_withheld_ids(self, gdf: gpd.GeoDataFrame, columns: list[str]) -> gpd.GeoDataFrame:
        """Evidence lists without restricted ids, and how many each list lost."""
        withheld = self.withheld_ids()
        out = gdf.copy()
        for c in columns:
            kept: list[Any] = []
            lost = np.zeros(len(out), dtype="int64")
            for i, ids in enumerate(out[c].to_numpy()):
                if ids is None or isinstance(ids, float):
                    kept.append(ids)
                    continue
                public = [x for x in ids if x not in withheld]
                lost[i] = len(ids) - len(public)
                kept.append(public)
            out[c] = pd.Series(kept, index=out.index, dtype=object)
            out[c.removesuffix("_evidence") + "_evidence_withheld"] = lost
        return out

    def precise_geometry(
        self, layer_id: str, gdf: gpd.GeoDataFrame, layers: dict[Kind, gpd.GeoDataFrame]
    ) -> gpd.GeoDataFrame:
        """A derived layer with its restricted rows back where they are (for callers who may
        see them): the model placed them at their cell's centre."""
        kind, id_field = _row_kind(layer_id)
        if kind is None or kind not in self.restricted or layer_id not in ROWS_OF:
            return gdf
        source = layers[kind]
        where = pd.Series(
            source.geometry.to_numpy(), index=source[SCHEMAS[kind].id_field].astype(str)
        )
        ids = gdf[id_field].astype(str)
        moved = ids.isin(self.restricted[kind].cell).to_numpy()
        if not moved.any():
            return gdf
        geoms = gdf.geometry.to_numpy().copy()
        geoms[moved] = where.loc[ids[moved]].to_numpy()
        return gdf.set_geometry(gpd.GeoSeries(geoms, index=gdf.index, crs=gdf.crs))

    def record(self) -> dict[str, Any]:
        """What the build metadata says about the rule and what it withheld."""
        out = self.policy.record()
        out["precision_for_cells"] = self.precision_for_cells()
        out["kinds"] = {
            kind.value: {
                "restricted": len(r.cell),
                "delayed": len(r.delayed),
                "cells": len({c for i, c in r.cell.items() if i not in r.delayed}),
                "cells_shown": len(r.shown),
                "rows_in_cells_shown": sum(
                    1 for i, c in r.cell.items() if i not in r.delayed and c in r.shown
                ),
            }
            for kind, r in self.restricted.items()
        }
        return out


def is_restricted(gdf: gpd.GeoDataFrame) -> np.ndarray:
    """Rows whose sensitivity is ``restricted``."""
    if "sensitivity" not in gdf:
        return np.zeros(len(gdf), dtype=bool)
    return (gdf["sensitivity"].astype(str) == RESTRICTED).to_numpy()


def areas_of(layer_id: str) -> str | None:
    """The id of a layer's areas layer, for a layer whose rows a source can mark restricted
    (a kind of source, or a layer whose rows stand for a kind's, ``ROWS_OF``); else None.
    The rule is the layer's kind, never whether this build holds restricted rows."""
    if _row_kind(layer_id)[0] is None:
        return None
    return AREAS.get(layer_id, f"{layer_id}_areas")


def areas_title(layer_id: str, title: str) -> str:
    """The title of a layer's areas layer."""
    return AREAS_TITLES.get(layer_id) or AREAS_TITLE.format(title=title)


def areas_description(layer_id: str, policy: Policy, scored: bool) -> str:
    """What an areas layer is and why, for its collection's description."""
    km2 = h3.average_hexagon_area(policy.resolution, "km^2")
    areas = areas_of(layer_id)
    layers = [f"'{x}'" for x in AREAS if AREAS[x] == areas] or [f"'{layer_id}'"]
    names, either = " and ".join(layers), " or ".join(layers)
    text = (
        f"The rows of {names} that a source marks restricted (a witness's report, a "
        "monitor's village) could point to the people behind them, so the public knows each "
        f"only by the H3 cell it falls in (resolution {policy.resolution}, about "
        f"{km2:,.0f} km²): one feature per cell holding at least {policy.min_count} of them, "
        "with how many it holds (count)"
    )
    if policy.delay_days:
        text += f"; rows dated within {policy.delay_days} days of the build are left out"
    text += "."
    if scored:
        text += " mean_score and max_score are the mean and highest score of its rows."
    return text + (
        " The same for every caller: those whose role may see restricted rows find the rows "
        f"themselves in {names}, where no one else finds them. Every build that has "
        f"{either} has this collection, empty when nothing is restricted, so its "
        "existence says nothing of what a build holds."
    )


def _row_kind(layer_id: str) -> tuple[Kind | None, str]:
    if layer_id in ROWS_OF:
        return ROWS_OF[layer_id]
    try:
        kind = Kind(layer_id)
    except ValueError:
        return None, ""
    return kind, SCHEMAS[kind].id_field
