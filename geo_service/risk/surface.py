"""Risk surface (``risk_surface``): the community risk model evaluated on a regular grid.

Communities are where people are known to live; a map of scores at their points is blank in
between, where villages the registers miss also lie. The surface evaluates the same three factor
formulas at the centre of every cell of a Web Mercator grid (EPSG:3857, so web maps draw it
without resampling), combines them with ``combine.aggregate`` (the community score's own
function), and is written as a Cloud-Optimized GeoTIFF: float32, 0–1 (the community score
divided by 100), NaN exactly where a community would have no score: no factor has coverage and
no evidence reaches. Each factor is computed for the whole grid at once — rasterise the
evidence, then one distance transform or convolution — never cell by cell:

* concession pressure: footprints (polygons; site points grown by ``footprint_radius_m`` with
  ``metric.buffer_metres``) are burnt into a mask, every cell they touch counting as inside; a
  Euclidean distance transform gives the distance to the nearest footprint cell; exp(−d/λ),
  0 beyond ``max_km``, stand-ins for a province capped at ``stand_in_cap`` (their own
  transform);
* incident intensity: the vector factor's own per-incident weights (``incident_weights``: type,
  deaths and age decay) are summed into the cell holding each incident, one grid per bandwidth,
  and convolved with the factor's peak-1 Gaussian ``kernel`` cut at ``cutoff_bandwidths``;
  1 − exp(−raw/κ);
* tailings exposure: per dam, w·P(run-out ≥ d) within the overland limit, rendered on the dam's
  window and summed over dams, with the factor's own ``DamTable`` (failures marked, run-out
  distribution, weight); the river pathway at the centres of the cells within
  ``river_corridor_km`` of a reach below a dam, through the same ``RiverNetwork`` calls as the
  vector factor, each (cell, dam) keeping the stronger pathway; 1 − exp(−raw/κ), and 1 where a
  recorded failure reaches.

Ground distances. Web Mercator stretches lengths by about 1/cos φ. The local scale of each row is
exact for WGS84 (``ground_scale``; EPSG:3857 is not conformal on the ellipsoid: its north–south
scale is up to 0.67 % below its east–west one, at the equator, so the two are kept apart), but a
distance that spans rows is scaled at one latitude: the cell's own row for the concession
distance transform (an anisotropic EDT cannot change its sampling from row to row, so the EDT
runs in Mercator metres and each row is multiplied by its scale), the band of rows for the
incident kernel, the midpoint for the tailings run-out. That error is about tan|φ|·Δφ/2 of the
distance (Δφ the latitude it spans): 0.2 % for 50 km at 30°, 0.7 % at 60°. The distance
transform also takes one north–south/east–west ratio, that of its window's middle row, which
errs on the north–south part by e²·|Δ sin²φ| at most: 0.16 % over the bundled extent (31° S to
11° N), 0.34 % within 45° of the equator. Against the vector factors (UTM metres, within 0.1 %),
the grid itself adds more:

* a cell holds the value at its centre, as a community there would get it; footprints cover
  every cell they touch, so a distance to them is exact to half a cell, and a cell that touches
  a footprint has pressure 1;
* an incident's weight is shared bilinearly among the four cell centres around it, so the
  grid interpolates the kernel between centres: off by at most (cell/h)²/4 of the weight —
  0.4 % at 8 cells per bandwidth (2 km at 250 m), 6 % at 2, 25 % when the cell is as wide as
  the bandwidth, when cells are grown to fit ``max_cells`` (the metadata gives
  every bandwidth in cells); the kernel is cut on a square of ±c·h rather than a circle, which
  adds at most exp(−c²/2) (1.1 % at c = 3) of an incident's weight in the square's corners;
* a dam keeps its exact position; its run-out chance is sampled at the cell centres
  (interpolated in log distance between exact samples, within 1e-5).

Extent and cell size. The lattice spans the evidence layers (concessions, dams, incidents, and
the river reaches below dams) plus ``margin_km`` (at least the longest reach of any factor),
and every covered country; a cell is ``cell_m`` Web Mercator metres (cell·cos φ on the
ground). Only the blocks of 128 × 128 cells within that margin of some evidence are computed,
in regions far enough apart that none sees another's evidence, and a large region in tiles
with a halo of that reach (``surface_regions.py``, ``_tiles``): every computed cell gets the
value one grid over everything would give it. Beyond the regions nothing reaches: 0 inside the
coverage outlines, nodata outside (``Surface.window``). When the computed cells would exceed
``max_cells`` the cell grows to fit, and the metadata records the size used.

Coverage. A factor has a value inside the outlines of its coverage countries and of the areas
its sources declare (``polygon``, ``bbox``; every cell an outline touches counts as inside, so
coastal and border cells keep their values), and wherever its evidence reaches (within the
reach circle of an incident, ``max_km`` of a footprint, a dam's run-out or river corridor), as
the vector factors do. For countries the vector model uses each community's country
attribute instead, so a community in a border cell can differ; for declared areas both test
the position.

Not carried: the ids of the evidence behind a value (the community layers keep them), and any
factor besides these three (the metadata lists such factors as ``factors_not_rasterised``; the
score then combines the three only).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
import rasterio.enums
import rasterio.features
import rasterio.shutil
import shapely
from pyproj import Transformer
from rasterio.enums import Resampling
from rasterio.transform import Affine
from rasterio.windows import Window
from scipy import ndimage, signal
from scipy.spatial import cKDTree

from geo_service.risk.base import CoverageArea, RiskInputs
from geo_service.risk.collector import frozen
from geo_service.risk.combine import aggregate
from geo_service.risk.concession_pressure import (
    ConcessionPressure,
    ConcessionPressureParams,
    concession_precision,
)
from geo_service.risk.incident_intensity import (
    IncidentIntensity,
    IncidentIntensityParams,
    incident_weights,
    resolve_reference_date,
)
from geo_service.risk.metric import EARTH_RADIUS_M, buffer_metres
from geo_service.risk.params import RiskParams, SurfaceParams
from geo_service.risk.rivers import RiverNetwork
from geo_service.risk.runner import Runner, run_here
from geo_service.risk.surface_regions import BLOCK_CELLS, Region, group_regions, occupied_blocks
from geo_service.risk.tailings_exposure import (
    DamTable,
    TailingsExposure,
    TailingsExposureParams,
    dam_rivers,
    dam_table,
)

CRS = "EPSG:3857"
#: WGS84 first eccentricity squared: Web Mercator puts geodetic latitudes on a sphere.
WGS84_E2 = 0.0066943799901413165
#: Latitude at which EPSG:3857 ends (its world is a square).
MAX_LATITUDE = 85.05112877980659
#: Internal tile size of the COG, and the size overviews shrink to by default.
BLOCKSIZE = 512
#: Rows whose ground scale differs by less than this share one kernel width (σ within 0.5 %).
BAND_TOLERANCE = 0.01
#: Kernels reaching further than this many cells are applied by FFT (overlap-add): a direct
#: correlation costs its width per cell, 600 taps for a 25 km bandwidth at 250 m.
FFT_RADIUS = 32
#: Raw intensities below this are 0: FFT round-off leaves ~1e-16 where no incident reaches.
NEGLIGIBLE = 1e-9
#: Most cells computed at once: a larger region is cut into tiles with a halo (``_tiles``).
#: About 60 bytes a cell at the peak (distance transform, FFT buffers, the three factors).
TILE_CELLS = 8_000_000
#: GDAL's block cache while the COG is written (MB): its default, 5 % of the machine's memory,
#: fills with the tiles of a continent's coverage and adds a gigabyte to the build's peak.
CACHE_MB = 256
#: Cells measured per ``RiverNetwork.along`` call: bounds the memory of its pairs, which grow
#: with the dams whose reaches share a river.
RIVER_CHUNK = 100_000

SURFACE_FACTORS = (ConcessionPressure.name, TailingsExposure.name, IncidentIntensity.name)


# --- geometry --------------------------------------------------------------------------------


@cache
def _forward() -> Transformer:
    return Transformer.from_crs("EPSG:4326", CRS, always_xy=True)


@cache
def _inverse() -> Transformer:
    return Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)


def to_mercator(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """EPSG:4326 → EPSG:3857, latitudes clamped to the projection's square world."""
    x, y = _forward().transform(
        np.asarray(lon, dtype="float64"),
        np.clip(np.asarray(lat, dtype="float64"), -MAX_LATITUDE, MAX_LATITUDE),
    )
    return np.asarray(x), np.asarray(y)


def to_lonlat(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """EPSG:3857 → EPSG:4326."""
    lon, lat = _inverse().transform(np.asarray(x, "float64"), np.asarray(y, "float64"))
    return np.asarray(lon), np.asarray(lat)


def _geoms_to_mercator(geoms: np.ndarray) -> np.ndarray:
    """Geometries into EPSG:3857 (for rasterising)."""

    def fn(xy: np.ndarray) -> np.ndarray:
        return np.column_stack(to_mercator(xy[:, 0], xy[:, 1]))

    return shapely.transform(np.asarray(geoms, dtype=object), fn)


def ground_scale(lat_deg: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Ground metres per Web Mercator metre at a geodetic latitude: (east–west, north–south).

    EPSG:3857 applies the spherical Mercator formulas to WGS84 latitudes, so along a parallel a
    Mercator metre is cos φ / √(1 − e² sin² φ) ground metres and along a meridian
    cos φ (1 − e²) / (1 − e² sin² φ)^1.5: the two differ by 0.67 % at the equator.
    """
    phi = np.radians(np.asarray(lat_deg, dtype="float64"))
    w = 1.0 - WGS84_E2 * np.sin(phi) ** 2
    c = np.cos(phi)
    return c / np.sqrt(w), c * (1.0 - WGS84_E2) / w**1.5


def _valid(geoms: np.ndarray) -> np.ndarray:
    """The geometries that are present and not empty."""
    g = np.asarray(geoms, dtype=object)
    return g[~shapely.is_missing(g) & ~shapely.is_empty(g)]


# --- the grid --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grid:
    """A north-up EPSG:3857 grid: north-west corner, square cell, shape."""

    west: float
    north: float
    cell: float
    width: int
    height: int

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns)."""
        return self.height, self.width

    @property
    def transform(self) -> Affine:
        """Cell → EPSG:3857 (rasterio's ``from_origin``)."""
        return Affine(self.cell, 0.0, self.west, 0.0, -self.cell, self.north)

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in EPSG:3857 metres."""
        return (
            self.west,
            self.north - self.height * self.cell,
            self.west + self.width * self.cell,
            self.north,
        )

    def x(self, cols: np.ndarray | slice) -> np.ndarray:
        """Easting of column centres."""
        c = np.arange(self.width)[cols] if isinstance(cols, slice) else np.asarray(cols)
        return self.west + (c + 0.5) * self.cell

    def y(self, rows: np.ndarray | slice) -> np.ndarray:
        """Northing of row centres."""
        r = np.arange(self.height)[rows] if isinstance(rows, slice) else np.asarray(rows)
        return self.north - (r + 0.5) * self.cell

    @cached_property
    def row_lat(self) -> np.ndarray:
        """Geodetic latitude of every row centre, degrees."""
        return to_lonlat(np.zeros(self.height), self.y(slice(None)))[1]

    def locate(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row, column and whether the point is on the grid, for EPSG:3857 points."""
        col = np.floor((np.asarray(x) - self.west) / self.cell).astype(np.int64)
        row = np.floor((self.north - np.asarray(y)) / self.cell).astype(np.int64)
        inside = (row >= 0) & (row < self.height) & (col >= 0) & (col < self.width)
        return row, col, inside

    def window(
        self, bounds: tuple[float, float, float, float], reach_m: float
    ) -> tuple[slice, slice]:
        """Rows and columns of ``bounds`` (EPSG:3857) grown by ``reach_m`` on the ground.

        The Mercator margin uses the smallest ground scale the grown box can reach (its most
        poleward latitude), so the window never falls short; one cell more covers rounding.
        """
        minx, miny, maxx, maxy = bounds
        lats = to_lonlat(np.zeros(2), np.array([miny, maxy]))[1]
        far = min(float(np.abs(lats).max()) + math.degrees(reach_m / EARTH_RADIUS_M), 89.0)
        k = min(float(s) for s in ground_scale(far))
        pad = reach_m / max(k, 1e-6) + self.cell
        c0 = max(int(math.floor((minx - pad - self.west) / self.cell)), 0)
        c1 = min(int(math.ceil((maxx + pad - self.west) / self.cell)), self.width)
        r0 = max(int(math.floor((self.north - maxy - pad) / self.cell)), 0)
        r1 = min(int(math.ceil((self.north - miny + pad) / self.cell)), self.height)
        return slice(r0, max(r0, r1)), slice(c0, max(c0, c1))

    def sub(self, rows: slice, cols: slice) -> Grid:
        """The window as a grid of its own, on the same lattice."""
        return Grid(
            west=self.west + cols.start * self.cell,
            north=self.north - rows.start * self.cell,
            cell=self.cell,
            width=cols.stop - cols.start,
            height=rows.stop - rows.start,
        )

    def window_transform(self, rows: slice, cols: slice) -> Affine:
        """The transform of a window."""
        return Affine(
            self.cell,
            0.0,
            self.west + cols.start * self.cell,
            0.0,
            -self.cell,
            self.north - rows.start * self.cell,
        )


@dataclass
class SurfaceRegion:
    """One computed rectangle of the surface's lattice (``surface_regions``)."""

    #: Rows and columns of the surface's lattice.
    rows: slice
    cols: slice
    #: Combined score 0–1, float32, NaN where no factor has coverage or evidence.
    score: np.ndarray
    #: Per factor, its normalised value 0–1 (float32, NaN as the score).
    factors: dict[str, np.ndarray]


@dataclass
class Surface:
    """A computed risk surface: regions of one lattice, and where the lattice lies."""

    grid: Grid
    regions: list[SurfaceRegion]
    crs: str = CRS
    #: Overview decimation factors ``write_cog`` builds.
    overview_levels: tuple[int, ...] = (2,)
    #: JSON-ready: grid, parameters, evidence counts and the approximations made.
    metadata: dict[str, Any] = field(default_factory=dict)
    #: Where some factor has coverage (EPSG:3857): 0 there beyond the regions, else nodata.
    outline: shapely.Geometry | None = None

    def __post_init__(self) -> None:
        if self.outline is not None:
            shapely.prepare(self.outline)

    def window(self, rows: slice, cols: slice) -> np.ndarray:
        """The score over a window of the lattice (float32): the regions where they lie, 0
        elsewhere inside the coverage outline (cells it touches), NaN outside it."""
        shape = (rows.stop - rows.start, cols.stop - cols.start)
        out = np.full(shape, np.nan, dtype=np.float32)
        if self.outline is not None:
            x0, y1 = (
                self.grid.west + cols.start * self.grid.cell,
                self.grid.north - rows.start * self.grid.cell,
            )
            x1, y0 = x0 + shape[1] * self.grid.cell, y1 - shape[0] * self.grid.cell
            box = shapely.box(x0, y0, x1, y1)
            if self.outline.contains(box):
                out[:] = 0.0
            elif self.outline.intersects(box):
                pad = self.grid.cell
                part = shapely.clip_by_rect(self.outline, x0 - pad, y0 - pad, x1 + pad, y1 + pad)
                out[_burn(np.array([part], dtype=object), self.grid, rows, cols)] = 0.0
        for r in self.regions:
            r0, r1 = max(rows.start, r.rows.start), min(rows.stop, r.rows.stop)
            c0, c1 = max(cols.start, r.cols.start), min(cols.stop, r.cols.stop)
            if r0 >= r1 or c0 >= c1:
                continue
            out[r0 - rows.start : r1 - rows.start, c0 - cols.start : c1 - cols.start] = r.score[
                r0 - r.rows.start : r1 - r.rows.start, c0 - r.cols.start : c1 - r.cols.start
            ]
        return out

    @property
    def transform(self) -> Affine:
        """Cell → EPSG:3857 coordinates (north-up: rasterio/GDAL order)."""
        return self.grid.transform

    @property
    def cell_m(self) -> float:
        """Cell size actually used, in Web Mercator metres (may exceed ``SurfaceParams.cell_m``)."""
        return self.grid.cell

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) of the lattice in EPSG:3857 metres."""
        return self.grid.extent

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the lattice."""
        return self.grid.shape

    @property
    def valid_cells(self) -> int:
        """Computed cells with a score (the regions only)."""
        return int(sum(np.isfinite(r.score).sum() for r in self.regions))

    def mosaic(self, factor: str | None = None) -> np.ndarray:
        """The score (``window`` of the whole lattice), or one factor (NaN outside the regions).

        The lattice of a continent-wide surface at 250 m is close to a billion cells: this is
        for small surfaces and checks; ``write_cog`` writes it tile by tile.
        """
        if factor is None:
            return self.window(slice(0, self.shape[0]), slice(0, self.shape[1]))
        out = np.full(self.shape, np.nan, dtype=np.float32)
        for r in self.regions:
            out[r.rows, r.cols] = r.factors[factor]
        return out

    @cached_property
    def score(self) -> np.ndarray:
        """``mosaic()`` of the score."""
        return self.mosaic()

    @cached_property
    def factors(self) -> dict[str, np.ndarray]:
        """``mosaic()`` of every factor."""
        names = self.regions[0].factors if self.regions else {}
        return {name: self.mosaic(name) for name in names}


def make_grid(
    lonlat_bounds: tuple[float, float, float, float], cell: float, margin_km: float
) -> Grid:
    """The lattice over ``lonlat_bounds`` plus the margin, edges on multiples of the cell.

    Snapping the edges means two builds with the same cell share their lattice.
    """
    lon0, lat0, lon1, lat1 = lonlat_bounds
    lat0 = max(lat0, -MAX_LATITUDE)
    lat1 = min(lat1, MAX_LATITUDE)
    margin_m = margin_km * 1000.0
    far = min(max(abs(lat0), abs(lat1)) + math.degrees(margin_m / EARTH_RADIUS_M), 89.0)
    pad = margin_m / min(float(s) for s in ground_scale(far))
    (x0, x1), (y0, y1) = to_mercator(np.array([lon0, lon1]), np.array([lat0, lat1]))
    world = float(to_mercator(np.array([0.0]), np.array([MAX_LATITUDE]))[1][0])
    x0, x1 = x0 - pad, x1 + pad
    y0, y1 = max(y0 - pad, -world), min(y1 + pad, world)
    west, north = math.floor(x0 / cell) * cell, math.ceil(y1 / cell) * cell
    width = max(math.ceil((x1 - west) / cell), 1)
    height = max(math.ceil((north - y0) / cell), 1)
    return Grid(west=west, north=north, cell=cell, width=width, height=height)


def _mercator_boxes(boxes: np.ndarray) -> np.ndarray:
    """Lon/lat boxes (n, 4) → Mercator boxes with the most poleward latitude as column 4."""
    x0, y0 = to_mercator(boxes[:, 0], boxes[:, 1])
    x1, y1 = to_mercator(boxes[:, 2], boxes[:, 3])
    poleward = np.maximum(np.abs(boxes[:, 1]), np.abs(boxes[:, 3]))
    return np.column_stack([x0, y0, x1, y1, poleward])


def plan_surface(
    boxes: np.ndarray,
    surface: SurfaceParams,
    reach_m: float,
    extent: tuple[float, float, float, float] | None = None,
    box_reach_m: np.ndarray | None = None,
) -> tuple[Grid, list[Region], dict[str, Any]]:
    """The lattice, the regions computed on it, and how the cell size was chosen.

    ``boxes`` are the lon/lat bounds (n, 4) of every piece of evidence. Only blocks within the
    margin of one are computed (``surface_regions``): ``margin_km``, or the box's own reach
    where it is longer (``box_reach_m``, one per box; ``reach_m``, the longest of all, when
    not given). Regions stay ``reach_m`` apart. When they need more than ``max_cells``
    cells the cell grows (to whole metres) until they fit: one coarser surface is more use than
    a refusal, and the metadata says so. ``extent`` (lon/lat) widens the lattice, not what is
    computed: the coverage the surface fills with zeros.
    """
    b = np.asarray(boxes, dtype="float64").reshape(-1, 4)
    if extent is not None:
        b_all = np.vstack([b, np.asarray(extent, dtype="float64").reshape(1, 4)])
    else:
        b_all = b
    bounds = (b_all[:, 0].min(), b_all[:, 1].min(), b_all[:, 2].max(), b_all[:, 3].max())
    merc = _mercator_boxes(b)
    # Every cell any evidence reaches is computed, whatever the margin asked for: each box is
    # grown by the margin or its own reach, the longer.
    margin_m = max(surface.margin_km * 1000.0, reach_m)
    own = np.full(len(b), reach_m) if box_reach_m is None else np.asarray(box_reach_m, "float64")
    box_margin_m = np.maximum(own, surface.margin_km * 1000.0)

    def layout(cell: float) -> tuple[Grid, list[Region], int]:
        grid = make_grid(bounds, cell, margin_m / 1000.0)
        occupied = occupied_blocks(
            merc, grid.west, grid.north, cell, grid.shape, box_margin_m, BLOCK_CELLS
        )
        poleward = float(np.abs(grid.row_lat).max())
        regions = group_regions(occupied, cell, grid.shape, reach_m, poleward, BLOCK_CELLS)
        return grid, regions, sum(r.cells for r in regions)

    cell = float(surface.cell_m)
    grid, regions, cells = layout(cell)
    needed = cells
    while cells > surface.max_cells:
        grown = math.ceil(cell * math.sqrt(cells / surface.max_cells))
        cell = float(max(grown, math.floor(cell) + 1))
        grid, regions, cells = layout(cell)
    kx = ground_scale(grid.row_lat)[0]
    south = grid.north - grid.height * cell
    (lon_w, lon_e), (lat_s, lat_n) = to_lonlat(
        np.array([grid.west, grid.west + grid.width * cell]), np.array([south, grid.north])
    )
    meta: dict[str, Any] = {
        "crs": CRS,
        "cell_m": cell,
        "cell_m_requested": surface.cell_m,
        "cell_grown": cell != surface.cell_m,
        "cells_needed_at_requested_size": int(needed),
        "max_cells": surface.max_cells,
        "width": grid.width,
        "height": grid.height,
        "extent": list(grid.extent),
        "extent_lonlat": [float(lon_w), float(lat_s), float(lon_e), float(lat_n)],
        "ground_cell_m": {
            "min": round(float(cell * kx.min()), 1),
            "max": round(float(cell * kx.max()), 1),
        },
        "margin_km": round(margin_m / 1000.0, 3),
        "box_margin_km": {
            "min": round(float(box_margin_m.min()) / 1000.0, 3) if len(b) else None,
            "max": round(float(box_margin_m.max()) / 1000.0, 3) if len(b) else None,
        },
        "block_cells": BLOCK_CELLS,
        "regions": len(regions),
        "computed_cells": int(cells),
        "computed_share": round(cells / (grid.width * grid.height), 4),
        "region_separation_km": round(reach_m / 1000.0, 1),
    }
    if cell != surface.cell_m:
        meta["cell_note"] = (
            f"the evidence needs {needed:,} cells of {surface.cell_m:g} m, more than "
            f"max_cells ({surface.max_cells:,}): cells grown to {cell:g} m"
        )
    return grid, regions, meta


def default_overviews(width: int, height: int) -> tuple[int, ...]:
    """Factors 2, 4, 8, … until the overview fits in one tile (always at least one level)."""
    levels = [2]
    while math.ceil(max(width, height) / levels[-1]) > BLOCKSIZE:
        levels.append(levels[-1] * 2)
    return tuple(levels)


# --- rasterising -----------------------------------------------------------------------------


def _burn(geoms: np.ndarray, grid: Grid, rows: slice, cols: slice) -> np.ndarray:
    """Cells of a window touched by any of the (EPSG:3857) geometries.

    Geometries are first cut to the window and a cell around it: a country's outline has
    thousands of vertices, and rasterio reads each of them in Python.
    """
    shape = (rows.stop - rows.start, cols.stop - cols.start)
    if len(geoms) == 0 or 0 in shape:
        return np.zeros(shape, dtype=bool)
    transform = grid.window_transform(rows, cols)
    x0, y1 = transform.c, transform.f
    x1, y0 = x0 + shape[1] * transform.a, y1 + shape[0] * transform.e
    pad = 2.0 * abs(transform.a)
    cut = shapely.clip_by_rect(geoms, x0 - pad, y0 - pad, x1 + pad, y1 + pad)
    cut = cut[~shapely.is_empty(cut)]
    if len(cut) == 0:
        return np.zeros(shape, dtype=bool)
    burnt = rasterio.features.rasterize(
        ((g, 1) for g in cut),
        out_shape=shape,
        transform=transform,
        fill=0,
        all_touched=True,
        dtype="uint8",
    )
    return burnt.astype(bool)


def _bounds(geoms: np.ndarray) -> tuple[float, float, float, float]:
    b = shapely.bounds(geoms)
    return float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())


def _outlines(countries: gpd.GeoDataFrame, coverage: CoverageArea) -> tuple[np.ndarray, list[str]]:
    """Mercator outlines of a factor's coverage (its countries and declared area), and the
    countries with no outline."""
    iso3 = set(coverage.countries)
    shapes = np.empty(0, dtype=object)
    missing: list[str] = []
    if iso3:
        if countries.crs is not None and not countries.crs.equals("EPSG:4326"):
            countries = countries.to_crs("EPSG:4326")
        chosen = countries[countries["iso3"].isin(sorted(iso3))]
        missing = sorted(iso3 - set(chosen["iso3"]))
        shapes = chosen.geometry.to_numpy()
    if coverage.area is not None:
        # Web Mercator ends at ±85.05°: a box declared to the pole is cut there.
        area = shapely.clip_by_rect(coverage.area, -180.0, -MAX_LATITUDE, 180.0, MAX_LATITUDE)
        shapes = np.append(shapes, np.array([area], dtype=object))
    return _geoms_to_mercator(_valid(shapes)), missing


def _first_equal(outlines: dict[str, np.ndarray], name: str) -> str:
    """The first name whose outlines are the same geometries as ``name``'s."""
    mine = outlines[name]
    for other, theirs in outlines.items():
        if len(theirs) == len(mine) and bool(shapely.equals_exact(theirs, mine, 0.0).all()):
            return other
    return name


def _union(geoms: np.ndarray) -> shapely.Geometry | None:
    """One geometry of them all (None for none)."""
    geoms = _valid(geoms)
    return shapely.union_all(geoms) if len(geoms) else None


def _lonlat_bounds(geom: shapely.Geometry | None) -> tuple[float, float, float, float] | None:
    """Lon/lat bounds of an EPSG:3857 geometry."""
    if geom is None:
        return None
    x0, y0, x1, y1 = shapely.bounds(geom)
    (w, e), (s, n) = to_lonlat(np.array([x0, x1]), np.array([y0, y1]))
    return float(w), float(s), float(e), float(n)


def _near(bounds: np.ndarray, grid: Grid, reach_m: float) -> np.ndarray:
    """Indices of the Mercator boxes (n, 4) that come within ``reach_m`` of the grid."""
    west, south, east, north = grid.extent
    lat = float(np.abs(grid.row_lat[[0, grid.height - 1]]).max())
    far = min(lat + math.degrees(reach_m / EARTH_RADIUS_M), 89.0)
    pad = reach_m / min(float(k) for k in ground_scale(far)) + grid.cell
    b = np.asarray(bounds).reshape(-1, 4)
    return np.flatnonzero(
        (b[:, 2] >= west - pad)
        & (b[:, 0] <= east + pad)
        & (b[:, 3] >= south - pad)
        & (b[:, 1] <= north + pad)
    )


def _distance(mask: np.ndarray, grid: Grid, rows: slice) -> np.ndarray:
    """Ground metres from every cell of a window to the nearest ``True`` cell (float64).

    The EDT runs in Mercator metres, with the north–south/east–west scale ratio of the window's
    middle row, and each row is then multiplied by its own east–west scale.
    """
    kx, ky = ground_scale(grid.row_lat[rows])
    mid = len(kx) // 2
    d = ndimage.distance_transform_edt(
        ~mask, sampling=(grid.cell * ky[mid] / kx[mid], grid.cell)
    ).astype("float64", copy=False)
    d *= kx[:, None]
    return d


# --- the factors -----------------------------------------------------------------------------


def _footprints(concessions: gpd.GeoDataFrame | None) -> tuple[np.ndarray, np.ndarray]:
    """Concession footprints in EPSG:4326 (polygons, and site points grown to their radius),
    and whether each is a stand-in for a province or country (``concession_precision``)."""
    if concessions is None or len(concessions) == 0:
        return np.empty(0, dtype=object), np.empty(0, dtype=bool)
    radius = (
        concessions["footprint_radius_m"].to_numpy(dtype="float64")
        if "footprint_radius_m" in concessions
        else np.zeros(len(concessions))
    )
    geoms = np.asarray(buffer_metres(concessions.geometry, radius), dtype=object)
    ok = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
    stand_in = concession_precision(concessions) == "stand_in"
    return geoms[ok], stand_in[ok]


_STAND_IN = 1 << 16  # a stand-in's weight when footprints are burnt and added up


def _concession_pressure(
    grid: Grid, geoms: np.ndarray, stand_in: np.ndarray, params: ConcessionPressureParams
) -> tuple[np.ndarray, dict[str, Any]]:
    """max(exp(−d/λ) to the nearest located footprint cell, min(the same to the nearest
    stand-in's, ``stand_in_cap``)), 0 beyond ``max_km`` (float32 grid), as the vector factor.

    ``geoms`` are the footprints in EPSG:3857. Both kinds are burnt in one pass (located 1,
    stand-ins 2¹⁶, added up), then one distance transform per kind present.
    """
    raw = np.zeros(grid.shape, dtype=np.float32)
    meta: dict[str, Any] = {"footprint_cells": 0}
    if len(geoms) == 0:
        return raw, meta
    reach = params.max_km * 1000.0
    rows, cols = grid.window(_bounds(geoms), reach)
    shape = (rows.stop - rows.start, cols.stop - cols.start)
    if 0 in shape:
        return raw, meta
    burnt = rasterio.features.rasterize(
        ((g, _STAND_IN if s else 1) for g, s in zip(geoms, stand_in, strict=True)),
        out_shape=shape,
        transform=grid.window_transform(rows, cols),
        fill=0,
        all_touched=True,
        dtype="int32",
        merge_alg=rasterio.enums.MergeAlg.add,
    )
    out = np.zeros(shape, dtype="float64")
    for mask, cap in ((burnt % _STAND_IN > 0, 1.0), (burnt >= _STAND_IN, params.stand_in_cap)):
        if not mask.any():
            continue
        d = _distance(mask, grid, rows)
        beyond = d > reach
        d *= -1.0 / (params.decay_km * 1000.0)
        np.exp(d, out=d)
        d[beyond] = 0.0
        np.minimum(d, cap, out=d)
        np.maximum(out, d, out=out)
    meta["footprint_cells"] = int((burnt > 0).sum())
    raw[rows, cols] = out
    return raw, meta


def _bands(scale: np.ndarray, tolerance: float = BAND_TOLERANCE) -> list[tuple[int, int]]:
    """Runs of rows whose scale stays within ``tolerance`` of one another."""
    if len(scale) == 0:
        return []
    key = np.floor(np.log(scale) / math.log1p(tolerance)).astype(np.int64)
    edges = np.r_[0, np.flatnonzero(np.diff(key)) + 1, len(scale)]
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _smooth(values: np.ndarray, sigma: float, radius: int, axis: int) -> np.ndarray:
    """Correlate along one axis with exp(−k²/2σ²), |k| ≤ radius: peak 1, zero outside.

    The taps are not normalised: the factor's kernel is 1 at the incident whatever its width,
    and ``gaussian_filter`` would divide by the taps' sum (about √(2π)·σ per axis). Wide
    kernels go through an FFT, whose cost does not grow with the width.
    """
    if radius == 0:
        return values.copy()
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    if radius <= FFT_RADIUS:
        return ndimage.correlate1d(values, taps, axis=axis, mode="constant", cval=0.0)
    shape = [1, 1]
    shape[axis] = taps.size
    out = signal.oaconvolve(values, taps.reshape(shape), mode="same", axes=axis)
    out[out < NEGLIGIBLE] = 0.0
    return out


def _kernel_sum(
    weights: np.ndarray, grid: Grid, rows: slice, bandwidth_m: float, cutoff: float
) -> tuple[np.ndarray, list[dict[str, float]]]:
    """Σ weight · exp(−d²/2h²) over the cells of a window, h in ground metres.

    Separable: a north–south pass, then an east–west pass, each with the width in cells of the
    *target* row's band (``BAND_TOLERANCE``), so a tall extent does not smooth the south with
    the north's scale. The north–south pass reads ``radius`` rows beyond its band.
    """
    kx, ky = ground_scale(grid.row_lat[rows])
    out = np.zeros_like(weights)
    bands = []
    for b0, b1 in _bands(kx):
        mid = (b0 + b1 - 1) // 2
        sy, sx = bandwidth_m / (grid.cell * ky[mid]), bandwidth_m / (grid.cell * kx[mid])
        ry, rx = math.floor(cutoff * sy), math.floor(cutoff * sx)
        bands.append(
            {"rows": b1 - b0, "sigma_cells_ns": round(sy, 2), "sigma_cells_ew": round(sx, 2)}
        )
        lo, hi = max(b0 - ry, 0), min(b1 + ry, len(kx))
        if not weights[lo:hi].any():
            continue
        part = _smooth(weights[lo:hi], sy, ry, axis=0)[b0 - lo : b1 - lo]
        out[b0:b1] = _smooth(part, sx, rx, axis=1)
    return out, bands


def _splat(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray, grid: Grid, rows: slice, cols: slice
) -> np.ndarray:
    """Weights shared bilinearly among the four cell centres around each point (float64).

    A point is then seen by the kernel at its own position to second order: the convolution
    interpolates the kernel between centres instead of moving the incident up to half a cell
    (a first-order error, over ten times larger at eight cells per bandwidth). Shares falling off
    the window are dropped; the window's margin leaves none but at the edge of the grid.
    """
    shape = (rows.stop - rows.start, cols.stop - cols.start)
    fx = (x - grid.west) / grid.cell - 0.5 - cols.start
    fy = (grid.north - y) / grid.cell - 0.5 - rows.start
    c0, r0 = np.floor(fx).astype(np.int64), np.floor(fy).astype(np.int64)
    tx, ty = fx - c0, fy - r0
    r = np.concatenate([r0, r0, r0 + 1, r0 + 1])
    c = np.concatenate([c0, c0 + 1, c0, c0 + 1])
    share = np.concatenate([(1 - ty) * (1 - tx), (1 - ty) * tx, ty * (1 - tx), ty * tx])
    on = (r >= 0) & (r < shape[0]) & (c >= 0) & (c < shape[1])
    acc = np.bincount(
        r[on] * shape[1] + c[on], (np.tile(weights, 4) * share)[on], shape[0] * shape[1]
    )
    return acc.reshape(shape)


@dataclass(frozen=True)
class _Incidents:
    """The incidents the factor keeps, once for every region: Mercator position and weight.

    Weights (and the reference date behind their age decay) come from all incidents at once,
    so a region's values do not depend on which incidents fall in it.
    """

    x: np.ndarray
    y: np.ndarray
    weight: np.ndarray
    bandwidth_m: np.ndarray
    meta: dict[str, Any]

    @classmethod
    def prepare(
        cls, incidents: gpd.GeoDataFrame | None, params: IncidentIntensityParams
    ) -> _Incidents:
        ref = resolve_reference_date(incidents, params) if incidents is not None else None
        meta: dict[str, Any] = {
            "reference_date": ref.isoformat() if ref is not None else None,
            "incidents_total": 0 if incidents is None else len(incidents),
        }
        if incidents is None or len(incidents) == 0 or ref is None:
            empty = np.empty(0)
            return cls(empty, empty, empty, empty, meta)
        w = incident_weights(incidents, params, ref)
        kept = np.flatnonzero(w.keep & (w.weights > 0))
        geoms = incidents.geometry.to_numpy()[kept]
        x, y = to_mercator(shapely.get_x(geoms), shapely.get_y(geoms))
        return cls(x, y, w.weights[kept], w.bandwidth_m[kept], meta)

    def boxes(self) -> np.ndarray:
        """Lon/lat boxes (n, 4) of the kept incidents."""
        lon, lat = to_lonlat(self.x, self.y)
        return np.column_stack([lon, lat, lon, lat])

    @cached_property
    def trees(self) -> list[tuple[float, cKDTree]]:
        """Per bandwidth, a k-d tree of the incidents' Mercator positions."""
        return [
            (float(h), cKDTree(np.column_stack([self.x, self.y])[self.bandwidth_m == h]))
            for h in np.unique(self.bandwidth_m)
        ]

    def reach(self, grid: Grid, rows: np.ndarray, cols: np.ndarray, cutoff: float) -> np.ndarray:
        """Which of the cells (rows, cols of ``grid``) lie within ``cutoff`` bandwidths of an
        incident: the circle the vector factor counts as "in reach" (the grid's kernel is cut
        on a square, whose corners must not give a place beyond its coverage a value)."""
        out = np.zeros(len(rows), dtype=bool)
        if not len(rows):
            return out
        xy = np.column_stack([grid.x(cols), grid.y(rows)])
        scale = ground_scale(grid.row_lat[rows])[1]  # the smaller (north–south) ground scale
        for h, tree in self.trees:
            d, _ = tree.query(
                xy, k=1, distance_upper_bound=cutoff * h / float(scale.min()), workers=-1
            )
            out |= d * scale <= cutoff * h
        return out


def _incident_intensity(
    grid: Grid, ev: _Incidents, params: IncidentIntensityParams
) -> tuple[np.ndarray, dict[str, Any]]:
    """Σ_i w_i · kernel(d_i, h_i) on the grid (float32), one convolution per bandwidth."""
    raw = np.zeros(grid.shape, dtype=np.float32)
    inside = grid.locate(ev.x, ev.y)[2]
    meta: dict[str, Any] = {"incidents_used": int(inside.sum()), "bandwidth_classes": {}}
    for h in np.unique(ev.bandwidth_m[inside]):
        sel = inside & (ev.bandwidth_m == h)
        x, y = ev.x[sel], ev.y[sel]
        reach = params.cutoff_bandwidths * float(h)
        rows, cols = grid.window((x.min(), y.min(), x.max(), y.max()), reach)
        acc = _splat(x, y, ev.weight[sel], grid, rows, cols)
        summed, bands = _kernel_sum(acc, grid, rows, float(h), params.cutoff_bandwidths)
        raw[rows, cols] += summed.astype(np.float32)
        sigma = min(min(b["sigma_cells_ns"], b["sigma_cells_ew"]) for b in bands)
        meta["bandwidth_classes"][f"{h / 1000.0:g}km"] = {
            "incidents": int(sel.sum()),
            "sigma_cells_min": sigma,
            "latitude_bands": len(bands),
            # Bilinear interpolation of the kernel: ≤ (cell/h)²/4 of an incident's weight.
            "kernel_error_max": round(min(0.25 / sigma**2, 1.0), 4),
        }
    return raw, meta


#: Samples of a dam's run-out chance per decade of distance, for the grid (``_runout``).
RUNOUT_SAMPLES_PER_DECADE = 256


def _runout(
    dx: np.ndarray,
    dy: np.ndarray,
    lat_mid: np.ndarray,
    table: DamTable,
    dam: int | np.ndarray,
    limit_m: np.ndarray | float,
) -> np.ndarray:
    """Run-out weight w·P(run-out ≥ d) within ``limit_m``, for Mercator offsets from the dam
    (``DamTable.exposure``, the vector factor's own). Ground distance from the offsets scaled
    at the mid latitude of cell and dam.

    For one dam's window the chance is interpolated in log distance between exact samples
    (``RUNOUT_SAMPLES_PER_DECADE``; P is a smooth function of log d: within 1e-5 of it), so a
    window of 40,000 cells costs a few hundred evaluations of the formula.
    """
    kx, ky = ground_scale(lat_mid)
    d = np.hypot(dx * kx, dy * ky)
    if np.ndim(dam) == 0:
        top = max(float(np.max(d, initial=1.0)), 1.0)
        n = int(math.ceil(math.log10(top) * RUNOUT_SAMPLES_PER_DECADE)) + 2
        logs = np.linspace(0.0, math.log10(top), max(n, 2))
        values = table.exposure(10.0**logs, np.full(len(logs), int(dam)))
        at_door = float(table.exposure(np.array([0.0]), np.array([int(dam)]))[0])
        w = np.where(d <= 1.0, at_door, np.interp(np.log10(np.maximum(d, 1.0)), logs, values))
    else:
        shape = d.shape
        which = np.broadcast_to(np.asarray(dam), shape).ravel()
        w = table.exposure(d.ravel(), which).reshape(shape)
    return np.where(d <= limit_m, w, 0.0)


def _reach_lines(network: RiverNetwork, reaches: Any) -> np.ndarray:
    """The stretch of every line that reaches use, from its lowest start to its highest end.

    Lines run for hundreds of kilometres; measuring cells along all of them would spend most of
    the river pathway's time on cells no reach passes. Segments overlapping the stretch are
    kept whole, so the lines cover the reaches (EPSG:4326, one LineString per line).
    """
    lines = len(network.edge_up)
    lo = np.full(lines, np.inf)
    hi = np.full(lines, -np.inf)
    np.minimum.at(lo, reaches.edge, reaches.lo_m)
    np.maximum.at(hi, reaches.edge, reaches.hi_m)
    line_of = np.repeat(np.arange(lines), np.diff(network.edge_start))
    m = network.vertex_m
    first = line_of[:-1]
    used = (first == line_of[1:]) & (m[1:] >= lo[first]) & (m[:-1] <= hi[first])
    keep = np.zeros(len(m), dtype=bool)
    keep[:-1] |= used
    keep[1:] |= used
    dense = np.unique(line_of[keep], return_inverse=True)[1]
    return shapely.linestrings(network.vertex_xy[keep], indices=dense)


def _corridors(lines: np.ndarray, corridor_m: float) -> np.ndarray:
    """Mercator zones holding every point within ``corridor_m`` of the lines (a superset).

    Each line is buffered in Mercator metres by the corridor over the smallest ground scale it
    reaches; ``RiverNetwork.along`` then measures each cell centre inside exactly.
    """
    if len(lines) == 0:
        return np.empty(0, dtype=object)
    b = shapely.bounds(lines)
    far = np.minimum(
        np.maximum(np.abs(b[:, 1]), np.abs(b[:, 3])) + math.degrees(corridor_m / EARTH_RADIUS_M),
        89.0,
    )
    k = np.minimum(*ground_scale(far))
    return shapely.buffer(_geoms_to_mercator(lines), corridor_m / k, quad_segs=4)


@dataclass(frozen=True)
class _Dams:
    """Per dam, what the surface needs, once for every region: the factor's own table
    (``dam_table``: failures marked, run-out distribution, weight), position, and the reaches
    below it."""

    table: DamTable | None
    x: np.ndarray
    y: np.ndarray
    lat: np.ndarray
    network: RiverNetwork | None
    reaches: Any
    #: The stretch of river the reaches use (EPSG:4326) and its corridor (EPSG:3857).
    lines: np.ndarray
    zones: np.ndarray
    meta: dict[str, Any]

    @classmethod
    def prepare(
        cls,
        dams: gpd.GeoDataFrame | None,
        incidents: gpd.GeoDataFrame | None,
        rivers: gpd.GeoDataFrame | None,
        params: TailingsExposureParams,
    ) -> _Dams:
        empty = np.empty(0)
        none = np.empty(0, dtype=object)
        table = dam_table(dams, incidents, params)
        if table is None:
            return cls(None, empty, empty, empty, None, None, none, none, {"dams": 0})
        geoms = table.dams.geometry.to_numpy()
        lon, lat = shapely.get_x(geoms), shapely.get_y(geoms)
        x, y = to_mercator(lon, lat)
        meta: dict[str, Any] = {"dams": len(table), "dams_failed": int(table.failed.sum())}
        river = dam_rivers(table, rivers, params)
        network, reaches, lines = river.network, river.reaches, none
        if network is not None and reaches is not None:
            meta["dams_on_river"] = river.meta["dams_on_river"]
            if len(reaches):
                lines = _reach_lines(network, reaches)
        zones = _corridors(lines, params.river_corridor_km * 1000.0)
        return cls(table, x, y, lat, network, reaches, lines, zones, meta)

    @property
    def limit_m(self) -> np.ndarray:
        """How far each dam's run-out pathway is evaluated (m)."""
        return self.table.search_m if self.table is not None else np.empty(0)

    def boxes(self) -> np.ndarray:
        """Lon/lat boxes (n, 4): every dam, and every segment of the reaches below them."""
        lon, lat = to_lonlat(self.x, self.y)
        out = [np.column_stack([lon, lat, lon, lat])]
        if len(self.lines):
            xy, line = shapely.get_coordinates(self.lines, return_index=True)
            same = line[1:] == line[:-1]
            a, b = xy[:-1][same], xy[1:][same]
            out.append(np.column_stack([np.minimum(a, b), np.maximum(a, b)]))
        return np.concatenate(out)


def _tailings_exposure(
    grid: Grid, dams: _Dams, params: TailingsExposureParams
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Σ_dams max(run-out, river) on the grid (float32), and the cells a recorded failure
    reached (within its p90 run-out overland, or on the river below it)."""
    raw = np.zeros(grid.shape, dtype=np.float64)
    reached = np.zeros(grid.shape, dtype=bool)
    meta: dict[str, Any] = {"river_cells": 0}
    table = dams.table
    if table is None:
        return raw.astype(np.float32), reached, meta
    x, y, lat, limit = dams.x, dams.y, dams.lat, table.search_m

    # Run-out: one window per dam. The loop is over dams, each a vectorised window; its own
    # cost is small beside the window arithmetic, which a single pass over every (cell, dam)
    # pair would still do while holding all the pairs at once (tens of millions at 250 m).
    for i in np.flatnonzero((limit > 0) & (table.weight > 0)):
        rows, cols = grid.window((x[i], y[i], x[i], y[i]), float(limit[i]))
        if rows.stop <= rows.start or cols.stop <= cols.start:
            continue
        dx = grid.x(cols)[None, :] - x[i]
        dy = grid.y(rows)[:, None] - y[i]
        mid = (grid.row_lat[rows][:, None] + lat[i]) / 2.0
        raw[rows, cols] += _runout(dx, dy, mid, table, i, limit[i])
        if table.failed[i]:
            kx, ky = ground_scale(mid)
            reached[rows, cols] |= np.hypot(dx * kx, dy * ky) <= table.reached_m[i]

    # River: the same snap → reaches → along as the vector factor, at candidate cell centres.
    if dams.network is None or len(dams.zones) == 0:
        return raw.astype(np.float32), reached, meta
    near = _near(shapely.bounds(dams.zones), grid, 0.0)
    rows, cols = slice(0, grid.height), slice(0, grid.width)
    r, c = np.nonzero(_burn(dams.zones[near], grid, rows, cols))
    cells = r * grid.width + c
    meta["river_cells"] = len(cells)
    corridor = params.river_corridor_km * 1000.0
    flat = raw.reshape(-1)
    flat_reached = reached.reshape(-1)
    for start in range(0, len(cells), RIVER_CHUNK):
        chunk = cells[start : start + RIVER_CHUNK]
        r, c = np.divmod(chunk, grid.width)
        cx, cy = grid.x(c), grid.y(r)
        pts = shapely.points(*to_lonlat(cx, cy))
        rp = dams.network.along(dams.reaches, pts, corridor)
        if len(rp) == 0:
            continue
        s = rp.source
        river = table.river(rp.along_m, s)
        runout = _runout(
            cx[rp.point] - x[s],
            cy[rp.point] - y[s],
            (grid.row_lat[r[rp.point]] + lat[s]) / 2.0,
            table,
            s,
            limit[s],
        )
        # Per (cell, dam) the stronger pathway: the run-out is already summed, add the excess.
        flat[chunk] += np.bincount(rp.point, np.maximum(river - runout, 0.0), len(chunk))
        flat_reached[chunk[rp.point[table.failed[s]]]] = True
    return raw.astype(np.float32), reached, meta


# --- the surface -----------------------------------------------------------------------------


def _factor_params(params: RiskParams) -> dict[str, Any]:
    """The three factors' parameter models, checked."""
    expected = {
        ConcessionPressure.name: ConcessionPressureParams,
        TailingsExposure.name: TailingsExposureParams,
        IncidentIntensity.name: IncidentIntensityParams,
    }
    out = {}
    for name, model in expected.items():
        p = params.factors.get(name)
        if not isinstance(p, model):
            raise TypeError(f"risk parameters need [{name}] as {model.__name__}")
        out[name] = p
    return out


def _normalise(raw: np.ndarray, saturation: float) -> np.ndarray:
    """1 − exp(−raw/κ) in place (float32), as the vector factors normalise."""
    raw *= np.float32(-1.0 / saturation)
    np.exp(raw, out=raw)
    np.subtract(np.float32(1.0), raw, out=raw)
    return raw


APPROXIMATIONS = [
    "values are sampled at cell centres",
    "run-out chance per dam interpolated in log distance between exact samples (256 a decade; "
    "within 1e-5)",
    "ground scale per row from WGS84 (east-west and north-south apart); a distance spanning "
    "rows is scaled at one latitude: ~tan|lat|*dlat/2 of it (0.2 % for 50 km at 30 deg)",
    "concession distance: footprints cover every cell they touch; distance exact to half a cell",
    "incident weights shared bilinearly among the 4 nearest cell centres: kernel off by at "
    "most (cell/h)^2/4 of a weight (kernel_error_max per bandwidth); kernel cut on a square of "
    "+-cutoff*h, adding at most exp(-cutoff^2/2) of a weight in its corners; kernel width per "
    "band of rows within 1 % of scale",
    "coverage from country outlines and declared areas (cells touched by an outline), not a "
    "community's country",
]


def _reach(
    fp: dict[str, Any], incidents: _Incidents, dams: _Dams, only: str | None = None
) -> float:
    """The furthest any evidence acts on the grid (m): regions are kept at least this far apart.

    ``only`` names one factor: the furthest its own evidence acts (the margin its boxes are
    grown by). The river pathway is not in it: its reach lines are evidence of their own.
    """
    p_inc = fp[IncidentIntensity.name]
    p_con = fp[ConcessionPressure.name]
    p_tai = fp[TailingsExposure.name]
    out = {
        ConcessionPressure.name: [p_con.max_km * 1000.0],
        TailingsExposure.name: [p_tai.river_corridor_km * 1000.0],
        IncidentIntensity.name: [0.0],
    }
    if len(incidents.bandwidth_m):
        out[IncidentIntensity.name].append(
            p_inc.cutoff_bandwidths * float(incidents.bandwidth_m.max())
        )
    if len(dams.limit_m):
        out[TailingsExposure.name].append(float(np.max(dams.limit_m)))
    if only is not None:
        return max(out[only])
    return max(max(v) for v in out.values())


def _tiles(
    lattice: Grid, region: Region, reach_m: float, tile_cells: int
) -> Iterator[tuple[slice, slice, tuple[slice, slice]]]:
    """A region cut into tiles of at most ``tile_cells`` cells, each with a halo of ``reach_m``.

    Yields the rows and columns to compute (lattice frame) and the core to keep (the tile's
    frame). Evidence acts no further than the reach, so a core computed with its halo has the
    values the whole region would give it; the halo bounds memory at the cost of computing
    some cells twice. A region that fits is one tile with no halo.
    """
    h, w = region.rows.stop - region.rows.start, region.cols.stop - region.cols.start
    if h * w <= tile_cells:
        yield region.rows, region.cols, (slice(0, h), slice(0, w))
        return
    rows_lat = lattice.row_lat[[region.rows.start, region.rows.stop - 1]]
    far = min(float(np.abs(rows_lat).max()) + math.degrees(reach_m / EARTH_RADIUS_M), 89.0)
    halo = math.ceil(reach_m / (lattice.cell * min(float(k) for k in ground_scale(far)))) + 2
    side = _tile_side(region, h, w, halo, max(math.isqrt(tile_cells) // BLOCK_CELLS, 1))
    for r0 in range(0, h, side):
        for c0 in range(0, w, side):
            r1, c1 = min(r0 + side, h), min(c0 + side, w)
            a0, a1 = max(r0 - halo, 0), min(r1 + halo, h)
            b0, b1 = max(c0 - halo, 0), min(c1 + halo, w)
            yield (
                slice(region.rows.start + a0, region.rows.start + a1),
                slice(region.cols.start + b0, region.cols.start + b1),
                (slice(r0 - a0, r1 - a0), slice(c0 - b0, c1 - b0)),
            )


def _tile_side(region: Region, h: int, w: int, halo: int, most: int) -> int:
    """The tile side (whole blocks, at most ``most``) that computes the fewest cells.

    Only tiles holding a block within reach of evidence are computed (``_holds_kept_block``),
    each with its halo. Over a wide scatter of evidence (the Amazon's mining scars, a
    region's rectangle three times its kept blocks) large tiles compute the empty land between
    the scatter; small ones compute their halos many times. The count of each side is exact
    (the blocks of each tile are looked up), and cheap: a few thousand blocks.
    """
    blocks = region.blocks
    best, best_side = None, most * BLOCK_CELLS
    for k in range(max(1, min(4, most)), most + 1):
        side = k * BLOCK_CELLS
        work = 0
        for r0 in range(0, h, side):
            for c0 in range(0, w, side):
                if not blocks[
                    r0 // BLOCK_CELLS : r0 // BLOCK_CELLS + k,
                    c0 // BLOCK_CELLS : c0 // BLOCK_CELLS + k,
                ].any():
                    continue
                r1, c1 = min(r0 + side, h), min(c0 + side, w)
                work += (min(r1 + halo, h) - max(r0 - halo, 0)) * (
                    min(c1 + halo, w) - max(c0 - halo, 0)
                )
        if best is None or work < best:
            best, best_side = work, side
    return best_side


def _core_cells(
    region: Region, rows: slice, cols: slice, core: tuple[slice, slice]
) -> tuple[slice, slice]:
    """A tile's core in the region's frame."""
    r0 = rows.start - region.rows.start + core[0].start
    c0 = cols.start - region.cols.start + core[1].start
    return (
        slice(r0, r0 + core[0].stop - core[0].start),
        slice(c0, c0 + core[1].stop - core[1].start),
    )


def _holds_kept_block(region: Region, rows: slice, cols: slice, core: tuple[slice, slice]) -> bool:
    """Whether some block of the tile's core lies within reach of evidence (``Region.blocks``).

    A region's rectangle spans all its blocks, and over a wide scatter of evidence (the
    Amazon's mining scars) most of it may be blocks no evidence reaches.
    """
    r, c = _core_cells(region, rows, cols, core)
    b = BLOCK_CELLS
    return bool(region.blocks[r.start // b : -(-r.stop // b), c.start // b : -(-c.stop // b)].any())


def _fill_unreached(
    region: Region,
    rows: slice,
    cols: slice,
    core: tuple[slice, slice],
    lattice: Grid,
    outline: shapely.Geometry | None,
    outlines: dict[str, np.ndarray],
    score: np.ndarray,
    factors: dict[str, np.ndarray],
) -> None:
    """A core no evidence reaches: 0 where a factor has coverage (cells its outline touches),
    NaN elsewhere — the score, and each kept factor by its own outline."""
    r, c = _core_cells(region, rows, cols, core)
    at = slice(region.rows.start + r.start, region.rows.start + r.stop)
    ac = slice(region.cols.start + c.start, region.cols.start + c.stop)
    shapes = np.array([outline], dtype=object) if outline is not None else np.empty(0, object)
    score[r, c] = np.where(_burn(shapes, lattice, at, ac), np.float32(0.0), np.float32(np.nan))
    for name, values in factors.items():
        inside = _burn(outlines[name], lattice, at, ac)
        values[r, c] = np.where(inside, np.float32(0.0), np.float32(np.nan))


def _region_array(shape: tuple[int, int], scratch: Path | None, name: str) -> np.ndarray:
    """A region's values, NaN until computed: in memory, or memory-mapped in ``scratch``."""
    if scratch is None:
        return np.full(shape, np.nan, dtype=np.float32)
    out = np.lib.format.open_memmap(scratch / f"{name}.npy", "w+", np.float32, shape)
    out[:] = np.nan
    return out


def _merge_meta(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-region factor metadata summed: counts add up, the worst kernel figures are kept."""
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key == "bandwidth_classes":
                classes = out.setdefault(key, {})
                for h, c in value.items():
                    if h not in classes:
                        classes[h] = dict(c)
                        continue
                    k = classes[h]
                    k["incidents"] += c["incidents"]
                    k["latitude_bands"] = max(k["latitude_bands"], c["latitude_bands"])
                    k["sigma_cells_min"] = min(k["sigma_cells_min"], c["sigma_cells_min"])
                    k["kernel_error_max"] = max(k["kernel_error_max"], c["kernel_error_max"])
            else:
                out[key] = out.get(key, 0) + value
    return out


@dataclass
class TileWork:
    """What every tile of a surface needs, sent once to each worker of a cluster."""

    lattice: Grid
    fp: dict[str, Any]
    footprints: np.ndarray
    stand_in: np.ndarray
    foot_bounds: np.ndarray
    con_reach: float
    incidents: _Incidents
    dams: _Dams
    outlines: dict[str, np.ndarray]
    same: dict[str, str]
    keep_factors: bool


@dataclass
class TileResult:
    """One tile's core: its score, each factor's values if kept, each factor's metadata."""

    score: np.ndarray
    factors: dict[str, np.ndarray]
    meta: dict[str, dict[str, Any]]


def _cells(task: tuple[slice, slice, Any]) -> int:
    """Cells a tile computes (with its halo): its weight when tasks are ordered."""
    rows, cols, _ = task
    return (rows.stop - rows.start) * (cols.stop - cols.start)


def compute_tile(work: TileWork, task: tuple[slice, slice, tuple[slice, slice]]) -> TileResult:
    """The factors and score of one tile (rows and columns of the lattice, with its halo), kept
    on its core: a task of its own, independent of every other tile."""
    rows, cols, core = task
    fp = work.fp
    grid = work.lattice.sub(rows, cols)
    whole = slice(0, grid.height), slice(0, grid.width)
    burnt = {name: _burn(work.outlines[name], grid, *whole) for name in set(work.same.values())}
    covered = {name: burnt[work.same[name]] for name in work.same}
    values: dict[str, np.ndarray] = {}
    meta: dict[str, dict[str, Any]] = {}
    near = _near(work.foot_bounds, grid, work.con_reach)
    name = ConcessionPressure.name
    values[name], meta[name] = _concession_pressure(
        grid, work.footprints[near], work.stand_in[near], fp[name]
    )
    name = TailingsExposure.name
    raw, reached, meta[name] = _tailings_exposure(grid, work.dams, fp[name])
    values[name] = _normalise(raw, fp[name].saturation)
    values[name][reached] = 1.0
    name = IncidentIntensity.name
    raw, meta[name] = _incident_intensity(grid, work.incidents, fp[name])
    values[name] = _normalise(raw, fp[name].saturation)
    outside = np.nonzero(~covered[name] & (values[name] > 0))
    if len(outside[0]):
        beyond = ~work.incidents.reach(grid, *outside, fp[name].cutoff_bandwidths)
        values[name][outside[0][beyond], outside[1][beyond]] = 0.0
    factor_values, kept = [], {}
    for name in SURFACE_FACTORS:
        n = values[name][core]
        np.clip(n, 0.0, 1.0, out=n)
        # Where the factor has coverage, or evidence reaches: as the vector factors.
        cov = covered[name][core] | (n > 0)
        n[~cov] = np.nan
        factor_values.append(n)
        meta[name]["covered_cells"] = int(cov.sum())
        if work.keep_factors:
            kept[name] = n
    score = aggregate(factor_values, [fp[name].weight for name in SURFACE_FACTORS])
    return TileResult(score, kept, meta)


def compute_surface(
    inputs: RiskInputs,
    params: RiskParams,
    surface: SurfaceParams,
    countries: gpd.GeoDataFrame,
    keep_factors: bool = False,
    runner: Runner | None = None,
    scratch: Path | None = None,
) -> Surface:
    """Every factor and the combined score near the evidence (see the module doc).

    The score is all a build writes; ``keep_factors`` also keeps each factor's grid (for checks
    and analysis: four times the memory). ``runner`` computes the tiles (``run_here``, in this
    process, by default; ``geo_service.cluster`` on a Dask cluster): the same values either way.
    With ``scratch`` (a folder), the regions are arrays on disk there (memory-mapped), not in
    memory: a continent's surface is larger than a machine's memory.

    ``countries`` are outlines with an ``iso3`` column (``model.read_countries``); a factor is
    NaN outside the outlines of its ``inputs.coverage`` (countries and areas), and the score is
    Σ w·n / Σ w over the factors with coverage, NaN where none has. Cells in blocks beyond the
    margin of every piece of evidence are not computed (NaN; ``surface_regions``).
    """
    with frozen():  # the evidence is loaded: no full collection walks it again
        return _compute_surface(
            inputs, params, surface, countries, keep_factors, runner or run_here, scratch
        )


def _compute_surface(
    inputs: RiskInputs,
    params: RiskParams,
    surface: SurfaceParams,
    countries: gpd.GeoDataFrame,
    keep_factors: bool,
    runner: Runner,
    scratch: Path | None,
) -> Surface:
    fp = _factor_params(params)
    lonlat_footprints, stand_in = _footprints(inputs.concessions)
    footprints = _geoms_to_mercator(lonlat_footprints)
    incidents = _Incidents.prepare(inputs.incidents, fp[IncidentIntensity.name])
    dams = _Dams.prepare(
        inputs.tailings_dams, inputs.incidents, inputs.rivers, fp[TailingsExposure.name]
    )
    reach = _reach(fp, incidents, dams)
    # Each piece of evidence is grown by its own kind's reach (``_reach`` of that kind alone):
    # thousands of mine footprints need their 50 km, not the 75 km of a district's incident.
    parts = [
        (incidents.boxes(), _reach(fp, incidents, dams, only=IncidentIntensity.name)),
        (dams.boxes(), _reach(fp, incidents, dams, only=TailingsExposure.name)),
    ]
    if len(lonlat_footprints):
        parts.append(
            (
                shapely.bounds(lonlat_footprints),
                _reach(fp, incidents, dams, only=ConcessionPressure.name),
            )
        )
    boxes = np.concatenate([b for b, _ in parts])
    box_reach = np.concatenate([np.full(len(b), r) for b, r in parts])
    if len(boxes) == 0:
        raise ValueError("no concession, dam or incident has a location: nothing to map")

    kinds = {
        ConcessionPressure.name: ConcessionPressure.evidence_kind,
        TailingsExposure.name: TailingsExposure.evidence_kind,
        IncidentIntensity.name: IncidentIntensity.evidence_kind,
    }
    outlines, factor_meta = {}, {}
    for name, kind in kinds.items():
        coverage = inputs.coverage_for(kind)
        outlines[name], missing = _outlines(countries, coverage)
        factor_meta[name] = {
            "weight": fp[name].weight,
            "coverage": sorted(coverage.countries),
            "coverage_without_outline": missing,
            "coverage_areas_from": list(coverage.area_sources),
        }
    # Beyond the computed regions nothing acts: 0 where a factor has coverage, else nodata.
    outline = _union(np.concatenate(list(outlines.values())))
    extent = _lonlat_bounds(outline)
    lattice, plan, grid_meta = plan_surface(boxes, surface, reach, extent, box_reach)
    factor_meta[ConcessionPressure.name]["footprints"] = len(footprints)
    factor_meta[ConcessionPressure.name]["stand_in_footprints"] = int(stand_in.sum())
    factor_meta[IncidentIntensity.name].update(incidents.meta)
    factor_meta[TailingsExposure.name].update(dams.meta)

    # Factors of the same coverage share its burnt outline.
    same = {name: _first_equal(outlines, name) for name in kinds}
    work = TileWork(
        lattice=lattice,
        fp=fp,
        footprints=footprints,
        stand_in=stand_in,
        foot_bounds=shapely.bounds(footprints) if len(footprints) else np.empty((0, 4)),
        con_reach=fp[ConcessionPressure.name].max_km * 1000.0,
        incidents=incidents,
        dams=dams,
        outlines=outlines,
        same=same,
        keep_factors=keep_factors,
    )
    regions: list[SurfaceRegion] = []
    scores, kept, todo = [], [], []
    skipped = 0
    for i, region in enumerate(plan):
        shape = (region.rows.stop - region.rows.start, region.cols.stop - region.cols.start)
        score = _region_array(shape, scratch, f"region{i}-score")
        kept_factors = (
            {name: _region_array(shape, scratch, f"region{i}-{name}") for name in kinds}
            if keep_factors
            else {}
        )
        scores.append(score)
        kept.append(kept_factors)
        for rows, cols, core in _tiles(lattice, region, reach, TILE_CELLS):
            if not _holds_kept_block(region, rows, cols, core):
                # No evidence reaches the tile's core: what ``Surface.window`` gives beyond the
                # regions (0 where a factor has coverage, else NaN), without computing it.
                _fill_unreached(
                    region, rows, cols, core, lattice, outline, outlines, score, kept_factors
                )
                skipped += 1
                continue
            todo.append((i, rows, cols, core))
    # Every tile computed (here, or as tasks of a cluster: ``runner``) and placed as it comes;
    # the metadata is merged in plan order whatever the order the tiles finished in.
    metas: list[dict[str, dict[str, Any]]] = [{} for _ in todo]
    tasks = [(rows, cols, core) for _, rows, cols, core in todo]
    for n, tile in runner(compute_tile, work, tasks, "surface tiles", _cells):
        i, rows, cols, core = todo[n]
        r, c = _core_cells(plan[i], rows, cols, core)
        scores[i][r, c] = tile.score
        for name, values in tile.factors.items():
            kept[i][name][r, c] = values
        metas[n] = tile.meta
    computed = len(todo)
    for region, score, kept_factors in zip(plan, scores, kept, strict=True):
        regions.append(SurfaceRegion(region.rows, region.cols, score, kept_factors))
    for name in kinds:
        factor_meta[name].update(_merge_meta([m[name] for m in metas]))
    if dams.network is None:
        river = "not rasterised: no dams or no river centrelines given"
    else:
        river = (
            f"rasterised: RiverNetwork.along evaluated at the centres of "
            f"{factor_meta[TailingsExposure.name]['river_cells']:,} cells near the reaches "
            f"below {dams.meta.get('dams_on_river', 0)} dams"
        )
    factor_meta[TailingsExposure.name]["river_pathway"] = river
    classes = factor_meta[IncidentIntensity.name].get("bandwidth_classes", {})
    for h, count in zip(*np.unique(incidents.bandwidth_m, return_counts=True), strict=True):
        classes[f"{h / 1000.0:g}km"]["incidents"] = int(count)
    factor_meta[IncidentIntensity.name]["incidents_used"] = len(incidents.x)

    levels = surface.overview_levels or default_overviews(lattice.width, lattice.height)
    result = Surface(grid=lattice, regions=regions, overview_levels=tuple(levels), outline=outline)
    result.metadata = {
        **grid_meta,
        "value": "combined risk score 0-1 (the community score / 100): 1 - prod((1-n)^w) over "
        "the factors with coverage or evidence reaching the cell (combine.aggregate); 0 beyond "
        "the reach of all evidence where a factor has coverage; NaN (transparent) where no "
        "factor has coverage and no evidence reaches",
        "factors": factor_meta,
        "factors_not_rasterised": sorted(set(params.factors) - set(SURFACE_FACTORS)),
        "approximations": APPROXIMATIONS,
        "overview_levels": list(levels),
        "surface_params": surface.model_dump(mode="json"),
        "risk_parameter_hash": params.digest(),
        "computed_valid_cells": result.valid_cells,
        # Tiles of a region's rectangle that no evidence reaches are filled, not computed.
        "tiles": {"computed": computed, "skipped_unreached": skipped},
    }
    return result


def surface_for_build(
    inputs: RiskInputs,
    params: RiskParams,
    countries: gpd.GeoDataFrame,
    surface_params: SurfaceParams | None = None,
    keep_factors: bool = False,
) -> Surface:
    """The build's surface: ``compute_surface`` with the default resolution unless given."""
    return compute_surface(
        inputs, params, surface_params or SurfaceParams(), countries, keep_factors
    )


def write_cog(surface: Surface, path: Path) -> None:
    """Write the score as a Cloud-Optimized GeoTIFF, atomically.

    float32, NaN nodata, EPSG:3857, 512 × 512 tiles, DEFLATE with the floating-point predictor
    (3), average overviews at ``surface.overview_levels``, metadata as a JSON tag. The lattice
    is written tile by tile (``Surface.window``: the regions, 0 elsewhere in the coverage) into
    a sparse tiled GeoTIFF next to ``path`` (tiles of nodata only are never written, so an
    ocean costs nothing), overviews are built on it, and
    GDAL's COG driver then lays out the file (IFDs first, overviews before full resolution,
    empty tiles left out), so a client reads a view with a few ranged requests. The file
    appears under ``path`` only once complete.
    """
    path = Path(path)
    height, width = surface.shape
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 1,
        "dtype": "float32",
        "crs": surface.crs,
        "transform": surface.transform,
        "nodata": float("nan"),
        "tiled": True,
        "blockxsize": BLOCKSIZE,
        "blockysize": BLOCKSIZE,
        "sparse_ok": True,
        # The staging file is read back twice (overviews, COG layout): ZSTD level 1 writes a
        # tile of zeros ten times faster than DEFLATE. The COG itself is DEFLATE, which every
        # client reads.
        "compress": "zstd",
        "zstd_level": 1,
        "num_threads": "all_cpus",
        "bigtiff": "if_safer",
    }
    part = path.with_name(path.name + ".part")
    staging = path.with_name(path.name + ".staging.tif")
    try:
        with rasterio.open(staging, "w", **profile) as dst:
            for row in range(0, height, BLOCKSIZE):
                for col in range(0, width, BLOCKSIZE):
                    rows = slice(row, min(row + BLOCKSIZE, height))
                    cols = slice(col, min(col + BLOCKSIZE, width))
                    block = surface.window(rows, cols)
                    if np.isnan(block).all():
                        continue  # never written: a sparse tile, nodata
                    window = Window(col, row, block.shape[1], block.shape[0])
                    dst.write(block, 1, window=window)
            dst.set_band_description(1, "risk score 0-1 (community score / 100)")
            dst.update_tags(risk_surface=json.dumps(surface.metadata, sort_keys=True))
        with rasterio.Env(
            GDAL_TIFF_OVR_BLOCKSIZE=BLOCKSIZE,
            SPARSE_OK_OVERVIEW="ON",
            GDAL_NUM_THREADS="ALL_CPUS",
            GDAL_CACHEMAX=CACHE_MB,
        ):
            with rasterio.open(staging, "r+") as dst:
                dst.build_overviews(list(surface.overview_levels), Resampling.average)
            with rasterio.open(staging) as src:
                rasterio.shutil.copy(
                    src,
                    part,
                    driver="COG",
                    BLOCKSIZE=BLOCKSIZE,
                    COMPRESS="DEFLATE",
                    PREDICTOR="YES",
                    OVERVIEWS="FORCE_USE_EXISTING",
                    BIGTIFF="IF_SAFER",
                    SPARSE_OK="TRUE",
                    NUM_THREADS="ALL_CPUS",
                )
        os.replace(part, path)
    finally:
        staging.unlink(missing_ok=True)
        part.unlink(missing_ok=True)
