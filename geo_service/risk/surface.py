"""Risk surface (``risk_surface``): the community risk model evaluated on a regular grid.

Communities are where people are known to live; a map of scores at their points is blank in
between, where villages the registers miss also lie. The surface evaluates the same three factor
formulas at the centre of every cell of a Web Mercator grid (EPSG:3857, so web maps draw it
without resampling), combines them as ``combine.py`` does, and is written as a Cloud-Optimized
GeoTIFF: float32, 0–1 (the community score divided by 100), NaN where no factor has evidence
coverage. Each factor is computed for the whole grid at once — rasterise the evidence, then one
distance transform or convolution — never cell by cell:

* concession pressure: footprints (polygons; site points grown by ``footprint_radius_m`` with
  ``metric.buffer_metres``) are burnt into a mask, every cell they touch counting as inside; a
  Euclidean distance transform gives the distance to the nearest footprint cell; exp(−d/λ),
  0 beyond ``max_km``;
* incident intensity: the vector factor's own per-incident weights (``incident_weights``: type,
  deaths and age decay) are summed into the cell holding each incident, one grid per bandwidth,
  and convolved with the factor's peak-1 Gaussian ``kernel`` cut at ``cutoff_bandwidths``;
  1 − exp(−raw/κ);
* tailings exposure: per dam, the run-out cone (1 − d/Dmax)·w within min(Dmax, overland_max_km),
  rendered on the dam's window and summed over dams, with Dmax and w taken from the factor's own
  ``tailings_consequence`` table; the river pathway at the centres of the cells within
  ``river_corridor_km`` of a reach below a dam, through the same ``RiverNetwork`` calls as the
  vector factor, each (cell, dam) keeping the stronger pathway; 1 − exp(−raw/κ).

Ground distances. Web Mercator stretches lengths by about 1/cos φ. The local scale of each row is
exact for WGS84 (``ground_scale``; EPSG:3857 is not conformal on the ellipsoid: its north–south
scale is up to 0.67 % below its east–west one, at the equator, so the two are kept apart), but a
distance that spans rows is scaled at one latitude: the cell's own row for the concession
distance transform (an anisotropic EDT cannot change its sampling from row to row, so the EDT
runs in Mercator metres and each row is multiplied by its scale), the band of rows for the
incident kernel, the midpoint for the tailings cone. That error is about tan|φ|·Δφ/2 of the
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
  the bandwidth, as for village-level events on the bundled 1.8 km surface (the metadata gives
  every bandwidth in cells); the kernel is cut on a square of ±c·h rather than a circle, which
  adds at most exp(−c²/2) (1.1 % at c = 3) of an incident's weight in the square's corners;
* a dam keeps its exact position; its cone is sampled at the cell centres, so a run-out shorter
  than half a cell can miss every centre and vanish from a coarse surface, as it misses a
  community that far away.

Extent and cell size. The grid spans the evidence layers (concessions, dams, incidents) plus
``margin_km``. A cell is ``cell_m`` Web Mercator metres (cell·cos φ on the ground); an extent that
would need more than ``max_cells`` cells grows the cell to fit, and the metadata records the size
used. The bundled evidence spans Brazil to East Africa, about 10,800 × 4,900 km, so its surface
at the defaults has 1.83 km cells, not 250 m. Nothing is computed beyond the margin: a district
kernel (25 km bandwidth, 75 km reach) is cut at a grid edge 50 km away.

Coverage. A factor is NaN outside the outlines of its coverage countries (every cell an outline
touches counts as inside, so coastal and border cells keep their values). The vector model uses
each community's country attribute instead, so a community in a border cell can differ.

Not carried: the ids of the evidence behind a value (the community layers keep them), and any
factor besides these three (the metadata lists such factors as ``factors_not_rasterised``; the
score then combines the three only).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
import rasterio.features
import rasterio.shutil
import shapely
from pyproj import Transformer
from rasterio.enums import Resampling
from rasterio.io import MemoryFile
from rasterio.transform import Affine
from scipy import ndimage, signal

from geo_service.risk.base import RiskInputs
from geo_service.risk.concession_pressure import ConcessionPressure, ConcessionPressureParams
from geo_service.risk.incident_intensity import (
    IncidentIntensity,
    IncidentIntensityParams,
    incident_weights,
    resolve_reference_date,
)
from geo_service.risk.metric import EARTH_RADIUS_M, buffer_metres
from geo_service.risk.params import RiskParams, SurfaceParams
from geo_service.risk.rivers import RiverNetwork
from geo_service.risk.tailings_exposure import TailingsExposure, TailingsExposureParams

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
#: Cells measured per ``RiverNetwork.along`` call: bounds the memory of its pairs, which grow
#: with the dams whose reaches share a river.
RIVER_CHUNK = 100_000

SURFACE_FACTORS = (ConcessionPressure.name, TailingsExposure.name, IncidentIntensity.name)


@dataclass
class Surface:
    """A computed risk surface: the score, each factor, and where the grid lies."""

    #: Combined score 0–1 (community score / 100), float32, NaN where no factor has coverage.
    score: np.ndarray
    #: Per factor, its normalised value 0–1 (float32, NaN outside the factor's coverage).
    factors: dict[str, np.ndarray]
    #: Cell → EPSG:3857 coordinates (north-up: rasterio/GDAL order).
    transform: Affine
    crs: str
    #: Cell size actually used, in Web Mercator metres (may exceed ``SurfaceParams.cell_m``).
    cell_m: float
    #: (west, south, east, north) in EPSG:3857 metres.
    extent: tuple[float, float, float, float]
    #: Overview decimation factors ``write_cog`` builds.
    overview_levels: tuple[int, ...] = (2,)
    #: JSON-ready: grid, parameters, evidence counts and the approximations made.
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns)."""
        return int(self.score.shape[0]), int(self.score.shape[1])


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


def make_grid(
    lonlat_bounds: tuple[float, float, float, float], surface: SurfaceParams
) -> tuple[Grid, dict[str, Any]]:
    """The grid over ``lonlat_bounds`` plus the margin, and how its cell size was chosen.

    Edges snap to multiples of the cell, so two builds with the same cell share their lattice.
    When the extent needs more than ``max_cells`` cells the cell grows (to whole metres) until
    it fits: one large-scale surface is more use than a refusal, and the metadata says so.
    """
    lon0, lat0, lon1, lat1 = lonlat_bounds
    lat0 = max(lat0, -MAX_LATITUDE)
    lat1 = min(lat1, MAX_LATITUDE)
    margin_m = surface.margin_km * 1000.0
    far = min(max(abs(lat0), abs(lat1)) + math.degrees(margin_m / EARTH_RADIUS_M), 89.0)
    pad = margin_m / min(float(s) for s in ground_scale(far))
    (x0, x1), (y0, y1) = to_mercator(np.array([lon0, lon1]), np.array([lat0, lat1]))
    world = float(to_mercator(np.array([0.0]), np.array([MAX_LATITUDE]))[1][0])
    x0, x1 = x0 - pad, x1 + pad
    y0, y1 = max(y0 - pad, -world), min(y1 + pad, world)

    def fit(cell: float) -> tuple[float, float, int, int]:
        west, north = math.floor(x0 / cell) * cell, math.ceil(y1 / cell) * cell
        width = max(math.ceil((x1 - west) / cell), 1)
        height = max(math.ceil((north - y0) / cell), 1)
        return west, north, width, height

    cell = float(surface.cell_m)
    west, north, width, height = fit(cell)
    needed = width * height
    while width * height > surface.max_cells:
        grown = math.ceil(cell * math.sqrt(width * height / surface.max_cells))
        cell = float(max(grown, math.floor(cell) + 1))
        west, north, width, height = fit(cell)
    grid = Grid(west=west, north=north, cell=cell, width=width, height=height)
    kx = ground_scale(grid.row_lat)[0]
    south = north - height * cell
    (lon_w, lon_e), (lat_s, lat_n) = to_lonlat(
        np.array([west, west + width * cell]), np.array([south, north])
    )
    meta = {
        "crs": CRS,
        "cell_m": cell,
        "cell_m_requested": surface.cell_m,
        "cell_grown": cell != surface.cell_m,
        "cells_needed_at_requested_size": int(needed),
        "max_cells": surface.max_cells,
        "width": width,
        "height": height,
        "extent": list(grid.extent),
        "extent_lonlat": [float(lon_w), float(lat_s), float(lon_e), float(lat_n)],
        "ground_cell_m": {
            "min": round(float(cell * kx.min()), 1),
            "max": round(float(cell * kx.max()), 1),
        },
        "margin_km": surface.margin_km,
    }
    if cell != surface.cell_m:
        meta["cell_note"] = (
            f"the evidence extent needs {needed:,} cells of {surface.cell_m:g} m, more than "
            f"max_cells ({surface.max_cells:,}): cells grown to {cell:g} m"
        )
    return grid, meta


def default_overviews(width: int, height: int) -> tuple[int, ...]:
    """Factors 2, 4, 8, … until the overview fits in one tile (always at least one level)."""
    levels = [2]
    while math.ceil(max(width, height) / levels[-1]) > BLOCKSIZE:
        levels.append(levels[-1] * 2)
    return tuple(levels)


# --- rasterising -----------------------------------------------------------------------------


def _burn(geoms: np.ndarray, grid: Grid, rows: slice, cols: slice) -> np.ndarray:
    """Cells of a window touched by any of the (EPSG:3857) geometries."""
    shape = (rows.stop - rows.start, cols.stop - cols.start)
    if len(geoms) == 0 or 0 in shape:
        return np.zeros(shape, dtype=bool)
    burnt = rasterio.features.rasterize(
        ((g, 1) for g in geoms),
        out_shape=shape,
        transform=grid.window_transform(rows, cols),
        fill=0,
        all_touched=True,
        dtype="uint8",
    )
    return burnt.astype(bool)


def _bounds(geoms: np.ndarray) -> tuple[float, float, float, float]:
    b = shapely.bounds(geoms)
    return float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())


def _coverage(
    grid: Grid, countries: gpd.GeoDataFrame, iso3: set[str]
) -> tuple[np.ndarray, list[str]]:
    """Cells touched by the outlines of these countries, and the countries with no outline."""
    if not iso3:
        return np.zeros(grid.shape, dtype=bool), []
    if countries.crs is not None and not countries.crs.equals("EPSG:4326"):
        countries = countries.to_crs("EPSG:4326")
    chosen = countries[countries["iso3"].isin(sorted(iso3))]
    missing = sorted(iso3 - set(chosen["iso3"]))
    geoms = _geoms_to_mercator(_valid(chosen.geometry.to_numpy()))
    return _burn(geoms, grid, slice(0, grid.height), slice(0, grid.width)), missing


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


def _footprints(concessions: gpd.GeoDataFrame | None) -> np.ndarray:
    """Concession footprints in EPSG:4326: polygons, and site points grown to their radius."""
    if concessions is None or len(concessions) == 0:
        return np.empty(0, dtype=object)
    radius = (
        concessions["footprint_radius_m"].to_numpy(dtype="float64")
        if "footprint_radius_m" in concessions
        else np.zeros(len(concessions))
    )
    return _valid(buffer_metres(concessions.geometry, radius))


def _concession_pressure(
    grid: Grid, footprints: np.ndarray, params: ConcessionPressureParams
) -> tuple[np.ndarray, dict[str, Any]]:
    """exp(−d/λ) to the nearest footprint cell, 0 beyond ``max_km`` (float32 grid)."""
    raw = np.zeros(grid.shape, dtype=np.float32)
    meta: dict[str, Any] = {"footprints": len(footprints)}
    if len(footprints) == 0:
        return raw, meta
    geoms = _geoms_to_mercator(footprints)
    reach = params.max_km * 1000.0
    rows, cols = grid.window(_bounds(geoms), reach)
    mask = _burn(geoms, grid, rows, cols)
    if not mask.any():
        return raw, meta
    d = _distance(mask, grid, rows)
    beyond = d > reach
    d *= -1.0 / (params.decay_km * 1000.0)
    np.exp(d, out=d)
    d[beyond] = 0.0
    raw[rows, cols] = d
    meta["footprint_cells"] = int(mask.sum())
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


def _incident_intensity(
    grid: Grid, incidents: gpd.GeoDataFrame | None, params: IncidentIntensityParams
) -> tuple[np.ndarray, dict[str, Any]]:
    """Σ_i w_i · kernel(d_i, h_i) on the grid (float32), one convolution per bandwidth."""
    raw = np.zeros(grid.shape, dtype=np.float32)
    ref = resolve_reference_date(incidents, params) if incidents is not None else None
    meta: dict[str, Any] = {
        "reference_date": ref.isoformat() if ref is not None else None,
        "incidents_total": 0 if incidents is None else len(incidents),
        "incidents_used": 0,
    }
    if incidents is None or len(incidents) == 0 or ref is None:
        return raw, meta
    w = incident_weights(incidents, params, ref)
    kept = np.flatnonzero(w.keep & (w.weights > 0))
    geoms = incidents.geometry.to_numpy()[kept]
    x, y = to_mercator(shapely.get_x(geoms), shapely.get_y(geoms))
    inside = grid.locate(x, y)[2]
    meta["incidents_used"] = int(inside.sum())
    meta["incidents_off_grid"] = int((~inside).sum())
    classes: dict[str, Any] = {}
    for h in np.unique(w.bandwidth_m[kept]):
        sel = inside & (w.bandwidth_m[kept] == h)
        if not sel.any():
            continue
        reach = params.cutoff_bandwidths * float(h)
        rows, cols = grid.window((x[sel].min(), y[sel].min(), x[sel].max(), y[sel].max()), reach)
        acc = _splat(x[sel], y[sel], w.weights[kept][sel], grid, rows, cols)
        summed, bands = _kernel_sum(acc, grid, rows, float(h), params.cutoff_bandwidths)
        raw[rows, cols] += summed.astype(np.float32)
        sigma = min(min(b["sigma_cells_ns"], b["sigma_cells_ew"]) for b in bands)
        classes[f"{h / 1000.0:g}km"] = {
            "incidents": int(sel.sum()),
            "sigma_cells_min": sigma,
            "latitude_bands": len(bands),
            # Bilinear interpolation of the kernel: ≤ (cell/h)²/4 of an incident's weight.
            "kernel_error_max": round(min(0.25 / sigma**2, 1.0), 4),
        }
    meta["bandwidth_classes"] = classes
    return raw, meta


def _cone(
    dx: np.ndarray,
    dy: np.ndarray,
    lat_mid: np.ndarray,
    dmax_m: np.ndarray | float,
    limit_m: np.ndarray | float,
    weight: np.ndarray | float,
) -> np.ndarray:
    """Run-out weight (1 − d/Dmax)·w within ``limit_m``, for Mercator offsets from the dam.

    Ground distance from the offsets scaled at the mid latitude of cell and dam.
    """
    kx, ky = ground_scale(lat_mid)
    d = np.hypot(dx * kx, dy * ky)
    return np.where(d <= limit_m, np.clip(1.0 - d / dmax_m, 0.0, 1.0) * weight, 0.0)


def _dam_table(dams: gpd.GeoDataFrame, params: TailingsExposureParams) -> gpd.GeoDataFrame:
    """Per dam, the factor's own weight and Dmax used (its ``tailings_consequence`` layer).

    The factor computes them inside ``compute``; asking it for no community returns them
    without re-deriving a formula here.
    """
    nobody = gpd.GeoDataFrame({"country": []}, geometry=[], crs="EPSG:4326")
    result = TailingsExposure().compute(RiskInputs(communities=nobody, tailings_dams=dams), params)
    return result.layers["tailings_consequence"]


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


def _near_lines(
    grid: Grid, lines: np.ndarray, corridor_m: float, covered: np.ndarray
) -> np.ndarray:
    """Flat indices of covered cells whose centre may lie within ``corridor_m`` of the lines.

    A superset: each line is buffered in Mercator metres by the corridor over the smallest
    ground scale it reaches, and every cell the buffer touches is kept; ``RiverNetwork.along``
    then measures each centre exactly.
    """
    b = shapely.bounds(lines)
    far = np.minimum(
        np.maximum(np.abs(b[:, 1]), np.abs(b[:, 3])) + math.degrees(corridor_m / EARTH_RADIUS_M),
        89.0,
    )
    k = np.minimum(*ground_scale(far))
    zones = shapely.buffer(_geoms_to_mercator(lines), corridor_m / k, quad_segs=4)
    rows, cols = grid.window(_bounds(zones), 0.0)
    near = _burn(zones, grid, rows, cols) & covered[rows, cols]
    r, c = np.nonzero(near)
    return (r + rows.start) * grid.width + (c + cols.start)


def _tailings_exposure(
    grid: Grid,
    dams: gpd.GeoDataFrame | None,
    rivers: gpd.GeoDataFrame | None,
    params: TailingsExposureParams,
    covered: np.ndarray,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Σ_dams max(run-out, river) on the grid (float32): cones per dam window, rivers per cell."""
    meta: dict[str, Any] = {"dams": 0}
    raw = np.zeros(grid.shape, dtype=np.float64)
    if dams is None or len(dams) == 0:
        meta["river_pathway"] = "no dams"
        return raw.astype(np.float32), meta
    geoms = dams.geometry.to_numpy()
    dams = dams[~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)].reset_index(drop=True)
    table = _dam_table(dams, params)
    weight = table["dam_weight"].to_numpy(dtype="float64")
    dmax = table["dmax_used_km"].to_numpy(dtype="float64") * 1000.0
    overland = params.overland_max_km * 1000.0 if params.overland_max_km is not None else np.inf
    limit = np.minimum(dmax, overland)
    lon, lat = shapely.get_x(dams.geometry.to_numpy()), shapely.get_y(dams.geometry.to_numpy())
    x, y = to_mercator(lon, lat)
    meta["dams"] = len(dams)

    # Run-out: one cone per dam on the window it can reach.
    for i in np.flatnonzero((limit > 0) & (weight > 0)):
        rows, cols = grid.window((x[i], y[i], x[i], y[i]), float(limit[i]))
        if rows.stop <= rows.start or cols.stop <= cols.start:
            continue
        raw[rows, cols] += _cone(
            grid.x(cols)[None, :] - x[i],
            grid.y(rows)[:, None] - y[i],
            (grid.row_lat[rows][:, None] + lat[i]) / 2.0,
            dmax[i],
            limit[i],
            weight[i],
        )

    # River: the same snap → reaches → along as the vector factor, at candidate cell centres.
    if rivers is None or len(rivers) == 0:
        meta["river_pathway"] = "not rasterised: no river centrelines given"
        return raw.astype(np.float32), meta
    network = RiverNetwork.from_frame(rivers)
    reach_m = np.maximum(dmax, params.river_reach_km * 1000.0)
    edge, pos, snap_m = network.snap(dams.geometry.to_numpy(), params.river_snap_km * 1000.0)
    reaches = network.reaches(edge, pos, reach_m, np.nan_to_num(snap_m))
    meta["dams_on_river"] = int((edge >= 0).sum())
    corridor = params.river_corridor_km * 1000.0
    cells = np.empty(0, dtype=np.int64)
    if len(reaches):
        cells = _near_lines(grid, _reach_lines(network, reaches), corridor, covered)
    flat = raw.reshape(-1)
    for start in range(0, len(cells), RIVER_CHUNK):
        chunk = cells[start : start + RIVER_CHUNK]
        r, c = np.divmod(chunk, grid.width)
        cx, cy = grid.x(c), grid.y(r)
        pts = shapely.points(*to_lonlat(cx, cy))
        rp = network.along(reaches, pts, corridor)
        if len(rp) == 0:
            continue
        s = rp.source
        river = np.clip(1.0 - rp.along_m / reach_m[s], 0.0, 1.0) * weight[s]
        runout = _cone(
            cx[rp.point] - x[s],
            cy[rp.point] - y[s],
            (grid.row_lat[r[rp.point]] + lat[s]) / 2.0,
            dmax[s],
            limit[s],
            weight[s],
        )
        # Per (cell, dam) the stronger pathway: the cone is already summed, add the excess.
        flat[chunk] += np.bincount(rp.point, np.maximum(river - runout, 0.0), len(chunk))
    meta["river_pathway"] = (
        f"rasterised: RiverNetwork.along evaluated at the centres of {len(cells):,} cells "
        f"near the reaches below {meta['dams_on_river']} dams"
    )
    return raw.astype(np.float32), meta


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


def _evidence_bounds(layers: list[np.ndarray]) -> tuple[float, float, float, float] | None:
    """Lon/lat box of every located piece of evidence (None if there is none)."""
    boxes = [_bounds(g) for g in layers if len(g)]
    if not boxes:
        return None
    b = np.array(boxes)
    return float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())


def _normalise(raw: np.ndarray, saturation: float) -> np.ndarray:
    """1 − exp(−raw/κ) in place (float32), as the vector factors normalise."""
    raw *= np.float32(-1.0 / saturation)
    np.exp(raw, out=raw)
    np.subtract(np.float32(1.0), raw, out=raw)
    return raw


APPROXIMATIONS = [
    "values are sampled at cell centres",
    "ground scale per row from WGS84 (east-west and north-south apart); a distance spanning "
    "rows is scaled at one latitude: ~tan|lat|*dlat/2 of it (0.2 % for 50 km at 30 deg)",
    "concession distance: footprints cover every cell they touch; distance exact to half a cell",
    "incident weights shared bilinearly among the 4 nearest cell centres: kernel off by at "
    "most (cell/h)^2/4 of a weight (kernel_error_max per bandwidth); kernel cut on a square of "
    "+-cutoff*h, adding at most exp(-cutoff^2/2) of a weight in its corners; kernel width per "
    "band of rows within 1 % of scale",
    "coverage from country outlines (cells touched by an outline), not a community's country",
]


def compute_surface(
    inputs: RiskInputs,
    params: RiskParams,
    surface: SurfaceParams,
    countries: gpd.GeoDataFrame,
) -> Surface:
    """Every factor and the combined score on a grid over the evidence (see the module doc).

    ``countries`` are outlines with an ``iso3`` column (``model.read_countries``); a factor is
    NaN outside the outlines of its ``inputs.coverage`` countries, and the score is
    Σ w·n / Σ w over the factors with coverage, NaN where none has.
    """
    fp = _factor_params(params)
    footprints = _footprints(inputs.concessions)
    dams = inputs.tailings_dams
    incidents = inputs.incidents
    bounds = _evidence_bounds(
        [
            footprints,
            _valid(dams.geometry.to_numpy()) if dams is not None else np.empty(0),
            _valid(incidents.geometry.to_numpy()) if incidents is not None else np.empty(0),
        ]
    )
    if bounds is None:
        raise ValueError("no concession, dam or incident has a location: nothing to map")
    grid, grid_meta = make_grid(bounds, surface)

    kinds = {
        ConcessionPressure.name: ConcessionPressure.evidence_kind,
        TailingsExposure.name: TailingsExposure.evidence_kind,
        IncidentIntensity.name: IncidentIntensity.evidence_kind,
    }
    covered, factor_meta = {}, {}
    for name, kind in kinds.items():
        iso3 = set(inputs.coverage.get(kind, set()))
        covered[name], missing = _coverage(grid, countries, iso3)
        factor_meta[name] = {
            "weight": fp[name].weight,
            "coverage": sorted(iso3),
            "coverage_without_outline": missing,
            "covered_cells": int(covered[name].sum()),
        }

    values: dict[str, np.ndarray] = {}
    raw, meta = _concession_pressure(grid, footprints, fp[ConcessionPressure.name])
    values[ConcessionPressure.name] = raw
    factor_meta[ConcessionPressure.name].update(meta)
    raw, meta = _tailings_exposure(
        grid, dams, inputs.rivers, fp[TailingsExposure.name], covered[TailingsExposure.name]
    )
    values[TailingsExposure.name] = _normalise(raw, fp[TailingsExposure.name].saturation)
    factor_meta[TailingsExposure.name].update(meta)
    raw, meta = _incident_intensity(grid, incidents, fp[IncidentIntensity.name])
    values[IncidentIntensity.name] = _normalise(raw, fp[IncidentIntensity.name].saturation)
    factor_meta[IncidentIntensity.name].update(meta)

    numerator = np.zeros(grid.shape, dtype=np.float32)
    denominator = np.zeros(grid.shape, dtype=np.float32)
    for name in SURFACE_FACTORS:
        n, cov, w = values[name], covered[name], np.float32(fp[name].weight)
        np.clip(n, 0.0, 1.0, out=n)
        n[~cov] = np.nan
        numerator += np.where(cov, w * n, np.float32(0.0))
        denominator += np.where(cov, w, np.float32(0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(denominator > 0, numerator / denominator, np.float32(np.nan))
    score = score.astype(np.float32, copy=False)
    del numerator, denominator

    levels = surface.overview_levels or default_overviews(grid.width, grid.height)
    metadata = {
        **grid_meta,
        "value": "combined risk score 0-1 (the community score / 100): sum(w*n)/sum(w) over "
        "the factors with coverage; NaN where no factor has coverage",
        "factors": factor_meta,
        "factors_not_rasterised": sorted(set(params.factors) - set(SURFACE_FACTORS)),
        "approximations": APPROXIMATIONS,
        "overview_levels": list(levels),
        "surface_params": surface.model_dump(mode="json"),
        "risk_parameter_hash": params.digest(),
        "nan_cells": int(np.isnan(score).sum()),
    }
    return Surface(
        score=score,
        factors=values,
        transform=grid.transform,
        crs=CRS,
        cell_m=grid.cell,
        extent=grid.extent,
        overview_levels=tuple(levels),
        metadata=metadata,
    )


def surface_for_build(
    inputs: RiskInputs,
    params: RiskParams,
    countries: gpd.GeoDataFrame,
    surface_params: SurfaceParams | None = None,
) -> Surface:
    """The build's surface: ``compute_surface`` with the default resolution unless given."""
    return compute_surface(inputs, params, surface_params or SurfaceParams(), countries)


def write_cog(surface: Surface, path: Path) -> None:
    """Write the score as a Cloud-Optimized GeoTIFF, atomically.

    float32, NaN nodata, EPSG:3857, 512 × 512 tiles, DEFLATE with the floating-point predictor
    (3), average overviews at ``surface.overview_levels``, metadata as a JSON tag. Overviews are
    built on an uncompressed in-memory GeoTIFF and GDAL's COG driver then lays out the file
    (IFDs first, overviews before full resolution), so a client reads a view with a few ranged
    requests. The file appears under ``path`` only once complete.
    """
    path = Path(path)
    height, width = surface.score.shape
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
    }
    part = path.with_name(path.name + ".part")
    with MemoryFile() as memory:
        with memory.open(**profile) as dst:
            dst.write(surface.score.astype(np.float32, copy=False), 1)
            dst.set_band_description(1, "risk score 0-1 (community score / 100)")
            dst.update_tags(risk_surface=json.dumps(surface.metadata, sort_keys=True))
            dst.build_overviews(list(surface.overview_levels), Resampling.average)
        with memory.open() as src:
            rasterio.shutil.copy(
                src,
                part,
                driver="COG",
                BLOCKSIZE=BLOCKSIZE,
                COMPRESS="DEFLATE",
                PREDICTOR="YES",
                OVERVIEWS="FORCE_USE_EXISTING",
                BIGTIFF="IF_SAFER",
                NUM_THREADS="ALL_CPUS",
            )
    os.replace(part, path)
