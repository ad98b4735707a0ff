"""The populated cells of the population grids a partition at a time: each cell's exposure
weights (``exposure_weights``), the community it counts for (the nearest within
``catchment_km``) and the unit of each level that holds its centre, added up per community and
per unit.

Cells are partitioned by position as the communities are (``partition.py``); a partition's
task carries its cells, the evidence within reach of them, the communities within the
catchment of their box and the units that come near it, and the grids' frames (CRS and
transform), not their counts. Per community and per unit the partitions' sums are added in
partition order: the same bytes whatever ran them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from geo_service.ingest.population import PopulationGrid
from geo_service.risk import partition
from geo_service.risk.base import RiskInputs
from geo_service.risk.boxes import near, subset
from geo_service.risk.exposure_weights import (
    ExposureWeights,
    Nearby,
    Reach,
    factors,
    weights_near,
)
from geo_service.risk.metric import nearest
from geo_service.risk.params import RiskParams
from geo_service.risk.runner import Runner, run_here


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
            taken.append(shapely.box(*lonlat_bounds(grid)))
            parts.append((np.full(len(rows), g), rows, cols, lon, lat, people))
        if not parts:
            empty = np.empty(0)
            return cls(empty.astype(int), empty.astype(int), empty.astype(int), empty, empty, empty)
        return cls(*(np.concatenate(x) for x in zip(*parts, strict=True)))

    def __len__(self) -> int:
        return len(self.people)

    def take(self, rows: np.ndarray) -> Cells:
        """The cells of ``rows``, in their order."""
        return Cells(*(getattr(self, f.name)[rows] for f in fields(self)))

    def points(self) -> np.ndarray:
        """The cells' centres (EPSG:4326 Points)."""
        return shapely.points(self.lon, self.lat)


def lonlat_bounds(grid: PopulationGrid) -> tuple[float, float, float, float]:
    """The grid's extent in longitude and latitude (the corners of its outer cells)."""
    rows, cols = grid.shape
    lon, lat = grid.centres_lonlat(
        np.array([-0.5, -0.5, rows - 0.5, rows - 0.5]),
        np.array([-0.5, cols - 0.5, -0.5, cols - 0.5]),
    )
    return float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())


def cell_units(
    units: gpd.GeoDataFrame, levels: list[Any], cells: Cells, grids: list[PopulationGrid]
) -> np.ndarray:
    """Per level of ``levels`` and populated cell, the unit (its row in ``units``) whose
    polygon holds the cell's centre (-1: none),
    tested in the grid's CRS (the cell-centre rule of rasterising, without the full-size label
    raster): each unit tests only the populated cells in its rows and columns. A centre on a
    border between two units of a level, or in two that overlap, goes to the first."""
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


@dataclass
class CellWork:
    """What every partition of the cells reads."""

    reach: Reach
    #: The grids without their counts: where a cell is, in the grid's CRS.
    grids: list[PopulationGrid]
    levels: list[Any]
    columns: list[str]
    catchment_m: float
    #: How many communities and units there are.
    communities: int
    units: int


@dataclass
class CellTask:
    """One partition of the cells, and what lies within reach of it."""

    cells: Cells
    nearby: Nearby
    #: The communities within the catchment of the cells' box, and their rows.
    communities: np.ndarray
    community_rows: np.ndarray
    #: The units that come near the box (``level`` and outline), and their rows.
    units: gpd.GeoDataFrame | None
    unit_rows: np.ndarray


@dataclass
class CellSums:
    """What the populated cells add up to: per community (the cells it counts) and per unit
    (the cells whose centre it holds, at every level), the people and the people each factor
    reaches; and the people in some community's catchment."""

    community_people: np.ndarray
    community_exposed: dict[str, np.ndarray]
    unit_people: np.ndarray
    unit_exposed: dict[str, np.ndarray]
    in_catchment: float
    #: The communities' rows the per-community arrays are of (None: every community).
    community_rows: np.ndarray | None = None

    @classmethod
    def zeros(cls, n: int, m: int, columns: Sequence[str]) -> CellSums:
        """Nothing yet, for ``n`` communities and ``m`` units."""
        return cls(
            np.zeros(n),
            {c: np.zeros(n) for c in columns},
            np.zeros(m),
            {c: np.zeros(m) for c in columns},
            0.0,
        )

    def add(self, part: CellSums) -> None:
        """Add a partition's sums (its communities' rows) to these (every community's)."""
        rows = part.community_rows if part.community_rows is not None else slice(None)
        self.community_people[rows] += part.community_people
        self.unit_people += part.unit_people
        for c in self.community_exposed:
            self.community_exposed[c][rows] += part.community_exposed[c]
            self.unit_exposed[c] += part.unit_exposed[c]
        self.in_catchment += part.in_catchment


def evaluate_cells(work: CellWork, task: CellTask) -> CellSums:
    """One partition's cells; per community only the rows it counts for (``community_rows``
    of the result: the communities' rows, ascending), per unit every unit."""
    cells = task.cells
    points = cells.points()
    w = weights_near(points, work.reach, task.nearby)
    owner = np.full(len(cells), -1, dtype=np.int64)
    if len(task.communities):
        found, _ = nearest(points, task.communities, work.catchment_m)
        owner = np.where(found >= 0, task.community_rows[np.maximum(found, 0)], -1)
    mine = owner >= 0
    rows, inverse = np.unique(owner[mine], return_inverse=True)
    k = len(rows)
    people = cells.people[mine]
    part = CellSums(
        np.bincount(inverse, people, minlength=k),
        {c: np.bincount(inverse, people * w[c][mine], minlength=k) for c in work.columns},
        np.zeros(work.units),
        {c: np.zeros(work.units) for c in work.columns},
        float(people.sum()),
        rows,
    )
    if task.units is not None and len(task.units):
        label = cell_units(task.units, work.levels, cells, work.grids)
        for lab in label:
            inside = lab >= 0
            unit = task.unit_rows[lab[inside]]
            part.unit_people += np.bincount(unit, cells.people[inside], minlength=work.units)
            for c in work.columns:
                part.unit_exposed[c] += np.bincount(
                    unit, cells.people[inside] * w[c][inside], minlength=work.units
                )
    return part


class _Tasks:
    """The partitions of the cells, each task made when asked for."""

    def __init__(
        self,
        cells: Cells,
        parts: list[Any],
        weights: Any,
        communities: np.ndarray,
        catchment_m: float,
        units: gpd.GeoDataFrame | None,
    ) -> None:
        self.cells, self.parts, self.weights = cells, parts, weights
        self.communities, self.catchment_m, self.units = communities, catchment_m, units
        self.community_bounds = shapely.bounds(communities)  # NaN where none: never near
        self.unit_bounds = (
            shapely.bounds(units.geometry.to_numpy()) if units is not None else np.zeros((0, 4))
        )

    def __len__(self) -> int:
        return len(self.parts)

    def __getitem__(self, i: int) -> CellTask:
        part = self.parts[i]
        rows = np.flatnonzero(near(self.community_bounds, part.box, self.catchment_m))
        touching = near(self.unit_bounds, part.box, 0.0)
        return CellTask(
            self.cells.take(part.rows),
            self.weights.select(part.box),
            self.communities[rows],
            rows,
            subset(self.units, touching),
            np.flatnonzero(touching),
        )


def cell_sums(
    cells: Cells,
    grids: list[PopulationGrid],
    inputs: RiskInputs,
    units: gpd.GeoDataFrame | None,
    params: RiskParams,
    runner: Runner | None = None,
) -> CellSums:
    """Every populated cell's people, per community and per unit (``units`` in their order,
    levels ascending), a partition of the cells at a time (``runner``: here by default)."""
    columns = [f.column for f in factors(params)]
    n = len(inputs.communities)
    m = len(units) if units is not None else 0
    total = CellSums.zeros(n, m, columns)
    points = cells.points()
    parts = [p for p in partition.partitions(points, partition.PARTITION_DEG) if p.box]
    if not parts:
        return total
    prepared = ExposureWeights().prepare(inputs, params)
    catchment_m = params.exposure.catchment_km * 1000.0
    work = CellWork(
        prepared.shared,
        [g.frame() for g in grids],
        sorted(units["level"].dropna().unique()) if units is not None else [],
        columns,
        catchment_m,
        n,
        m,
    )
    outlines = units[["level", units.geometry.name]] if units is not None else None
    communities = inputs.communities.geometry.to_numpy()
    tasks = _Tasks(cells, parts, prepared, communities, catchment_m, outlines)
    done: list[CellSums | None] = [None] * len(parts)
    for i, part in (runner or run_here)(evaluate_cells, work, tasks, "population cells", _size):
        done[i] = part
    for part in done:  # in partition order
        if part is None:
            raise RuntimeError("a partition of the population cells gave no result")
        total.add(part)
    return total


def _size(task: CellTask) -> int:
    return len(task.cells)
