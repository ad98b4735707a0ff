"""Distances in metres between features in EPSG:4326, never in degrees.

Points are grouped by UTM zone (a zone is 6° wide; inside it distances are within 0.1 % of
the ellipsoidal ones) and each group is measured together with the targets near it, in that
zone's projection: k-d trees of coordinates find the candidates, and only those are measured.
Targets are lines, polygons or points; distances to polygons are 0 inside them. Where the pairs are too many to measure one by one (tens of
millions of points near polygons), ``sums_within`` and ``neighbourhood`` give the same answers
from bounds and measure only the pairs the bounds leave open (see their section below).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS, Transformer
from scipy.spatial import cKDTree

EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True)
class Pairs:
    """Source–target pairs within a distance: parallel arrays, sorted by source then target."""

    source: np.ndarray
    target: np.ndarray
    metres: np.ndarray

    def __len__(self) -> int:
        return len(self.source)

    def where(self, mask: np.ndarray) -> Pairs:
        """The pairs where ``mask`` holds."""
        return Pairs(self.source[mask], self.target[mask], self.metres[mask])


@cache
def _utm(zone: int, south: bool) -> CRS:
    return CRS.from_epsg((32700 if south else 32600) + zone)


@cache
def _to_utm(zone: int, south: bool) -> Transformer:
    return Transformer.from_crs("EPSG:4326", _utm(zone, south), always_xy=True)


def utm_zones(lon: np.ndarray, lat: np.ndarray) -> Iterator[tuple[int, bool, np.ndarray]]:
    """(zone, southern hemisphere, positional indices) for every zone the points fall in."""
    zone = np.clip(np.floor((np.asarray(lon) + 180.0) / 6.0).astype(int) + 1, 1, 60)
    south = np.asarray(lat) < 0
    key = zone * 2 + south
    for k in np.unique(key):
        idx = np.flatnonzero(key == k)
        yield int(k // 2), bool(k % 2), idx


def project(geoms: np.ndarray, zone: int, south: bool) -> np.ndarray:
    """Geometries into a UTM zone (lon/lat order in, metres out)."""
    tr = _to_utm(zone, south)

    def fn(xy: np.ndarray) -> np.ndarray:
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, fn)


def _margin_degrees(metres: float, lat: np.ndarray) -> tuple[float, float]:
    """A box margin in degrees that surely covers ``metres`` around these latitudes."""
    dlat = np.degrees(metres / EARTH_RADIUS_M) * 1.01
    coslat = max(np.cos(np.radians(min(np.abs(lat).max() + dlat, 89.0))), 0.01)
    return dlat / coslat, dlat


@dataclass(frozen=True)
class ZoneSlice:
    """Points of one UTM zone and the targets that can lie within reach of them."""

    zone: int
    south: bool
    points: np.ndarray
    targets: np.ndarray

    def metres(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Longitudes and latitudes as an (n, 2) array of this zone's easting and northing."""
        x, y = _to_utm(self.zone, self.south).transform(lon, lat)
        return np.column_stack([x, y])


def zone_slices(
    lon: np.ndarray, lat: np.ndarray, target_bounds: np.ndarray, reach: float
) -> Iterator[ZoneSlice]:
    """Points grouped by UTM zone, each group with the targets whose box comes within ``reach``.

    Points with a NaN coordinate are left out; zones with no target near them are skipped.
    """
    lon, lat = np.asarray(lon, dtype="float64"), np.asarray(lat, dtype="float64")
    tb = np.asarray(target_bounds, dtype="float64").reshape(-1, 4)
    for zone, south, idx in utm_zones(np.nan_to_num(lon), np.nan_to_num(lat)):
        idx = idx[~(np.isnan(lon[idx]) | np.isnan(lat[idx]))]
        if idx.size == 0:
            continue
        dx, dy = _margin_degrees(reach, lat[idx])
        x0, x1 = lon[idx].min() - dx, lon[idx].max() + dx
        y0, y1 = lat[idx].min() - dy, lat[idx].max() + dy
        near = np.flatnonzero(
            (tb[:, 2] >= x0) & (tb[:, 0] <= x1) & (tb[:, 3] >= y0) & (tb[:, 1] <= y1)
        )
        if near.size:
            yield ZoneSlice(zone, south, idx, near)


def pairs_within(
    points: gpd.GeoSeries | np.ndarray,
    targets: gpd.GeoSeries | np.ndarray,
    max_metres: float | np.ndarray,
) -> Pairs:
    """Every (point, target) pair closer than ``max_metres`` (a scalar, or one per target).

    Points must be Points; targets any geometry. Missing geometries never pair.
    """
    pts = np.asarray(points, dtype=object)
    tgs = np.asarray(targets, dtype=object)
    limit = np.broadcast_to(np.asarray(max_metres, dtype="float64"), (len(tgs),))
    if len(pts) == 0 or len(tgs) == 0:
        empty = np.empty(0, dtype=np.int64)
        return Pairs(empty, empty, np.empty(0))
    reach = float(np.nanmax(limit))
    sources, targets_out, metres = [], [], []
    point_targets = bool(((shapely.get_type_id(tgs) == 0) & ~shapely.is_empty(tgs)).all())
    measure = _point_pairs if point_targets else _shape_pairs
    for zs in zone_slices(shapely.get_x(pts), shapely.get_y(pts), shapely.bounds(tgs), reach):
        idx, near = zs.points, zs.targets
        i, j, d = measure(zs, pts[idx], tgs[near], limit[near])
        sources.append(idx[i])
        targets_out.append(near[j])
        metres.append(d)
    if not sources:
        empty = np.empty(0, dtype=np.int64)
        return Pairs(empty, empty, np.empty(0))
    s, t, m = np.concatenate(sources), np.concatenate(targets_out), np.concatenate(metres)
    order = np.argsort(s.astype(np.int64) * len(tgs) + t)  # by source, then target
    return Pairs(s[order], t[order], m[order])


def _point_pairs(
    zs: ZoneSlice, points: np.ndarray, targets: np.ndarray, limit: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``pairs_within`` of one zone for Point targets, from two k-d trees of projected
    coordinates (the same metres as measuring the projected points, without building them)."""
    p = shapely.get_coordinates(points)
    t = shapely.get_coordinates(targets)
    p_xy, t_xy = zs.metres(p[:, 0], p[:, 1]), zs.metres(t[:, 0], t[:, 1])
    found = cKDTree(t_xy).sparse_distance_matrix(
        cKDTree(p_xy), float(limit.max()), output_type="ndarray"
    )
    ok = found["v"] <= limit[found["i"]]
    return found["j"][ok], found["i"][ok], found["v"][ok]


def _shape_pairs(
    zs: ZoneSlice, points: np.ndarray, targets: np.ndarray, limit: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``pairs_within`` of one zone for lines and polygons: a k-d tree of the projected point
    coordinates gives each target the points within its bounding circle plus its limit, and
    only those are built as geometries and measured."""
    p = shapely.get_coordinates(points)
    xy = zs.metres(p[:, 0], p[:, 1])
    shapes = project(targets, zs.zone, zs.south)
    box = shapely.bounds(shapes)
    centre = (box[:, :2] + box[:, 2:]) / 2.0
    radius = np.hypot(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]) / 2.0 + limit
    use = np.flatnonzero(np.isfinite(radius))
    tree = cKDTree(xy, balanced_tree=False, compact_nodes=False)
    found = tree.query_ball_point(centre[use], radius[use], workers=-1, return_sorted=False)
    sizes = np.fromiter((len(f) for f in found), dtype=np.int64, count=len(found))
    if not sizes.sum():
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0)
    i = np.concatenate([np.asarray(f, dtype=np.int64) for f in found])
    j = np.repeat(use, sizes)
    d = shapely.distance(shapely.points(xy[i]), shapes[j])
    ok = d <= limit[j]
    return i[ok], j[ok], d[ok]


def nearest(
    points: gpd.GeoSeries | np.ndarray, targets: gpd.GeoSeries | np.ndarray, max_metres: float
) -> tuple[np.ndarray, np.ndarray]:
    """For each point, the nearest target (-1 if none within ``max_metres``) and its distance.

    Point targets are searched with a k-d tree per UTM zone: listing every pair within reach
    first grows with the square of the density (200,000 communities and 5,000 dams within
    50 km are millions of pairs).
    """
    pts = np.asarray(points, dtype=object)
    tgs = np.asarray(targets, dtype=object)
    present = np.flatnonzero(~shapely.is_missing(tgs))
    if len(present) and (shapely.get_type_id(tgs[present]) == 0).all():
        return _nearest_point(pts, tgs, present, max_metres)
    return _nearest_shape(pts, tgs, present, max_metres)


def _nearest_shape(
    pts: np.ndarray, tgs: np.ndarray, present: np.ndarray, max_metres: float
) -> tuple[np.ndarray, np.ndarray]:
    """``nearest`` for lines and polygons: per UTM zone, GEOS's nearest search in an STRtree
    of the projected targets — the metres of measuring every pair within reach, without
    listing them (20,000 mine footprints within 50 km of 200,000 places are tens of millions).

    Among equally near targets the first in order wins.
    """
    n = len(pts)
    best = np.full(n, -1, dtype=np.int64)
    dist = np.full(n, np.nan)
    shown = present[~shapely.is_empty(tgs[present])]
    if not len(shown):
        return best, dist
    bounds = shapely.bounds(tgs[shown])
    for zs in zone_slices(shapely.get_x(pts), shapely.get_y(pts), bounds, max_metres):
        near = shown[zs.targets]
        tree = shapely.STRtree(project(tgs[near], zs.zone, zs.south))
        p = shapely.get_coordinates(pts[zs.points])
        (i, j), d = tree.query_nearest(
            shapely.points(zs.metres(p[:, 0], p[:, 1])),
            max_distance=max_metres,
            return_distance=True,
            all_matches=True,
        )
        ok = d <= max_metres
        i, j, d = i[ok], j[ok], d[ok]
        order = np.lexsort((j, i))  # by point, then target: the first of a tie wins
        i, j, d = i[order], j[order], d[order]
        first = np.r_[True, i[1:] != i[:-1]] if len(i) else np.empty(0, dtype=bool)
        rows = zs.points[i[first]]
        best[rows] = near[j[first]]
        dist[rows] = d[first]
    return best, dist


def _nearest_point(
    pts: np.ndarray, tgs: np.ndarray, present: np.ndarray, max_metres: float
) -> tuple[np.ndarray, np.ndarray]:
    """``nearest`` for Point targets (``present``: the targets that are not missing).

    Among equally near targets the first in order wins, as in the pair-listing path.
    """
    n = len(pts)
    best = np.full(n, -1, dtype=np.int64)
    dist = np.full(n, np.nan)
    tx, ty = shapely.get_x(tgs[present]), shapely.get_y(tgs[present])
    bounds = np.column_stack([tx, ty, tx, ty])
    for zs in zone_slices(shapely.get_x(pts), shapely.get_y(pts), bounds, max_metres):
        near = zs.targets
        tree = cKDTree(zs.metres(tx[near], ty[near]))
        p = shapely.get_coordinates(pts[zs.points])
        # A few neighbours, so that a tie is settled by target order, not by the tree.
        k = min(4, len(near))
        d, j = tree.query(
            zs.metres(p[:, 0], p[:, 1]), k=k, distance_upper_bound=max_metres, workers=-1
        )
        d, j = d.reshape(len(p), k), j.reshape(len(p), k)
        ok = np.isfinite(d[:, 0]) & (d[:, 0] <= max_metres)
        tie = d == d[:, :1]
        order = np.where(tie, j, np.iinfo(np.int64).max).min(axis=1)
        rows = zs.points[ok]
        best[rows] = present[near[order[ok]]]
        dist[rows] = d[ok, 0]
    return best, dist


def disc_distance(
    points: gpd.GeoSeries | np.ndarray,
    centres: gpd.GeoSeries | np.ndarray,
    radius: float | np.ndarray,
    max_metres: float,
) -> np.ndarray:
    """Metres from each point to the edge of the nearest disc (Point centres, a radius each):
    0 inside one, NaN where no disc's edge is within ``max_metres``.

    Among discs of one radius the nearest centre is the nearest disc, so each radius is one
    k-d tree of centres, and the points are projected once per UTM zone for all of them.
    """
    pts = np.asarray(points, dtype=object)
    cs = np.asarray(centres, dtype=object)
    r_all = np.broadcast_to(np.asarray(radius, dtype="float64"), (len(cs),))
    out = np.full(len(pts), np.inf)
    usable = ~(shapely.is_missing(cs) | shapely.is_empty(cs)) & np.isfinite(r_all)
    if not usable.any() or not len(pts):
        return np.full(len(pts), np.nan)
    cs, r_all = cs[usable], r_all[usable]
    cx, cy = shapely.get_x(cs), shapely.get_y(cs)
    bounds = np.column_stack([cx, cy, cx, cy])
    px, py = shapely.get_x(pts), shapely.get_y(pts)
    for zs in zone_slices(px, py, bounds, max_metres + float(r_all.max())):
        xy = zs.metres(px[zs.points], py[zs.points])
        near = zs.targets
        best = np.full(len(xy), np.inf)
        for r in np.unique(r_all[near]):
            sel = near[r_all[near] == r]
            tree = cKDTree(zs.metres(cx[sel], cy[sel]))
            d, _ = tree.query(xy, k=1, distance_upper_bound=max_metres + r, workers=-1)
            best = np.fmin(best, np.where(d <= max_metres + r, np.maximum(d - r, 0.0), np.inf))
        out[zs.points] = np.fmin(out[zs.points], best)
    return np.where(np.isinf(out), np.nan, out)


@cache
def _from_utm(zone: int, south: bool) -> Transformer:
    return Transformer.from_crs(_utm(zone, south), "EPSG:4326", always_xy=True)


def buffer_metres(geoms: gpd.GeoSeries | np.ndarray, metres: float | np.ndarray) -> np.ndarray:
    """Each geometry grown by ``metres`` (scalar or one per geometry), in its own UTM zone.

    A zero or missing radius leaves the geometry as it is.
    """
    gs = np.asarray(geoms, dtype=object)
    radius = np.nan_to_num(np.broadcast_to(np.asarray(metres, dtype="float64"), (len(gs),)))
    out = gs.copy()
    grow = np.flatnonzero((radius > 0) & ~shapely.is_missing(gs))
    if grow.size == 0:
        return out
    centre = shapely.centroid(gs[grow])
    for zone, south, idx in utm_zones(shapely.get_x(centre), shapely.get_y(centre)):
        rows = grow[idx]
        back = _from_utm(zone, south)
        projected = shapely.buffer(project(gs[rows], zone, south), radius[rows], quad_segs=16)
        out[rows] = shapely.transform(
            projected, lambda xy, back=back: np.column_stack(back.transform(xy[:, 0], xy[:, 1]))
        )
    return out


# --- Distances to target edges, without measuring every pair ---------------------------------
#
# ``sums_within`` and ``neighbourhood`` answer "what lies within r of each target" and "what
# surrounds each point, and which targets are nearest" where there are tens of millions of
# pairs: measuring each with ``shapely.distance`` (as ``pairs_within`` does) costs about 2 µs a
# point–polygon pair, and even listing them all grows with the square of the density.
#
# Bounds. In the points' UTM zone each target gets a centre c, an inner radius a (the disc of
# radius a about c lies inside the target; a = −distance(c, target) when c is outside it) and an
# outer radius b (the target lies inside the disc of radius b about c). With d_c the metres from
# a point to c, the point's distance d to the target obeys d_c − b ≤ d ≤ max(d_c − a, 0). The
# *edge distance* to a target grown by ``grow`` metres is max(d − grow, 0): 0 inside it, and for
# a point with a footprint radius, the metres to the circle's edge. So a point is surely within
# r of a target's edge when d_c ≤ r + a + grow, surely not when d_c > r + b + grow.
#
# Cover. Points are binned in square cells. For each target and row of cells, the cells wholly
# inside the first disc are counted (or their points' weights summed) as ranges of the points
# sorted by cell, without visiting the points; only the points of the cells the boundary between
# the two discs crosses are visited, and measured if the bounds leave them open. Cells hold
# about one point each, so the work grows with the perimeter of the discs, not their area.
#
# Pairs that are measured are measured with the same ``shapely.distance`` on the same projected
# coordinates as ``pairs_within``: every answer is the one measuring every pair would give.

#: Slack (metres) on every bound: far above float rounding at continental scale (about 1e-9 m),
#: far below anything measured. A pair within it of a radius is measured.
BOUND_SLACK_M = 1e-3
#: Rows of cells (one target's, one row) covered together: bounds their memory (~100 B each).
ROWS_PER_CHUNK = 1 << 19
#: Cells up to which the points before each cell are looked up in a table (32 MB) rather than
#: found by binary search.
CELL_TABLE_MAX = 1 << 22
#: Points whose nearest targets are found together (bounds the memory of their candidate pairs).
#: At most 2**16, so a point's row in its chunk sorts as a 16-bit integer (NumPy's radix sort).
CHUNK_POINTS = 8192
#: Cells hold about this many points near the targets: fewer means more rows of cells per
#: target, more means more points visited at the boundaries (2/π balances the two).
POINTS_PER_CELL = 2.0 / np.pi
#: Targets sampled to estimate how many points lie within reach of one.
SAMPLE_TARGETS = 256
#: Targets are grouped by outer radius (b + grow), each group's k-d tree searched at its largest;
#: within a group the largest is at most this many times the smallest (plus 1 m).
GROUP_RATIO = 1.25
#: Ratio between the thresholds tried when bounding each point's k-th nearest edge.
LADDER_RATIO = 2.0**0.25


@dataclass(frozen=True)
class Neighbourhood:
    """What surrounds each point, measured to target edges (see ``neighbourhood``)."""

    #: (points, radii): how many targets have their edge within each radius of the point.
    counts: np.ndarray
    #: Per point, the nearest target (-1 if none within the largest radius) and its edge metres.
    nearest: np.ndarray
    metres: np.ndarray
    #: Up to k nearest targets per point, nearest first (ties: target order), sorted by source.
    ranked_source: np.ndarray
    ranked_target: np.ndarray


@dataclass(frozen=True)
class _Zone:
    """One UTM zone's points (coordinates) and the targets near them, projected, with bounds."""

    source: np.ndarray  # the points' positions in the caller's array
    xy: np.ndarray  # their projected coordinates
    target: np.ndarray  # the targets' positions in the caller's array
    geometry: np.ndarray  # their projected geometries
    grow: np.ndarray
    centre: np.ndarray  # (x, y) of c
    above: np.ndarray  # a + grow − slack: d_c ≤ r + above means the edge is within r
    below: np.ndarray  # b + grow + slack: d_c > r + below means it is not

    def bounds(self, point: np.ndarray, local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds on the edge distances of pairs (the edge is ≥ 0 regardless)."""
        d_c = np.hypot(*(self.xy[point] - self.centre[local]).T)
        return d_c - self.below[local], d_c - self.above[local]

    def measure(self, point: np.ndarray, local: np.ndarray) -> np.ndarray:
        """Edge metres of pairs, measured as ``pairs_within`` measures them."""
        # The coordinates ``project`` gives these points, hence the same GEOS distance.
        d = shapely.distance(shapely.points(self.xy[point]), self.geometry[local])
        return np.maximum(d - self.grow[local], 0.0)

    def within(
        self, point: np.ndarray, local: np.ndarray, lower: np.ndarray, upper: np.ndarray, r: float
    ) -> np.ndarray:
        """Whether each pair's edge is within r: from its bounds, measured where they straddle r."""
        inside = upper <= r
        unsure = ~inside & (lower <= r)
        if unsure.any():
            inside[unsure] = self.measure(point[unsure], local[unsure]) <= r
        return inside


def _target_discs(targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre (x, y), inner radius a and outer radius b of each projected target (see above)."""
    centre = shapely.centroid(targets)
    cxy = shapely.get_coordinates(centre)
    polygonal = np.isin(shapely.get_type_id(targets), (3, 6))
    inside = polygonal & shapely.intersects_xy(targets, cxy[:, 0], cxy[:, 1])
    inner = -shapely.distance(centre, targets)
    if inside.any():
        inner[inside] = shapely.distance(centre[inside], shapely.boundary(targets[inside]))
    coords = shapely.get_coordinates(targets)
    counts = shapely.get_num_coordinates(targets)
    owner = np.repeat(np.arange(len(targets)), counts)
    spoke = np.hypot(coords[:, 0] - cxy[owner, 0], coords[:, 1] - cxy[owner, 1])
    outer = np.maximum.reduceat(spoke, np.r_[0, np.cumsum(counts)[:-1]])
    return cxy, inner, outer


def _zones(
    points: np.ndarray, targets: np.ndarray, reach: float, grow: np.ndarray
) -> Iterator[_Zone]:
    """The points by UTM zone, each with the targets that may be within ``reach`` of them.

    Zones, projections and the targets each zone needs are those of ``pairs_within``.
    """
    lon, lat = shapely.get_x(points), shapely.get_y(points)
    margin = reach + (float(grow.max()) if len(grow) else 0.0)
    for zs in zone_slices(lon, lat, shapely.bounds(targets), margin):
        # Points need only their coordinates; ``measure`` rebuilds the few it measures.
        xy = zs.metres(lon[zs.points], lat[zs.points])
        geometry = project(targets[zs.targets], zs.zone, zs.south)
        centre, inner, outer = _target_discs(geometry)
        g = grow[zs.targets]
        yield _Zone(
            zs.points,
            xy,
            zs.targets,
            geometry,
            g,
            centre,
            inner + g - BOUND_SLACK_M,
            outer + g + BOUND_SLACK_M,
        )


def _prepare(
    points: gpd.GeoSeries | np.ndarray,
    targets: gpd.GeoSeries | np.ndarray,
    radii: float | np.ndarray,
    grow: float | np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Points, targets, ascending distinct radii and one grow per target, checked."""
    pts = np.asarray(points, dtype=object)
    tgs = np.asarray(targets, dtype=object)
    r = np.unique(np.atleast_1d(np.asarray(radii, dtype="float64")))
    g = np.nan_to_num(np.broadcast_to(np.asarray(grow, dtype="float64"), (len(tgs),)))
    if r.size == 0 or not np.isfinite(r).all() or r[0] < 0 or (g < 0).any():
        raise ValueError("radii must be finite and ≥ 0, grow ≥ 0")
    return pts, tgs, r, g


# Cover: points binned in cells, and for each target the cells it surely holds or may touch.


@dataclass(frozen=True)
class _Cells:
    """A zone's points binned in square cells (key row · cols + col), sorted by cell."""

    x0: float
    y0: float
    size: float
    cols: int
    order: np.ndarray  # the points, sorted by cell
    keys: np.ndarray  # their cells' keys, ascending
    #: Per key, how many points lie in cells of smaller keys (when the cells are few enough).
    before: np.ndarray | None

    @classmethod
    def of(cls, xy: np.ndarray, size: float) -> _Cells:
        """The points binned in cells of ``size`` metres from the lower left of their box."""
        x0, y0 = xy.min(axis=0)
        cols = int(np.floor((xy[:, 0].max() - x0) / size)) + 1
        key = np.floor((xy[:, 1] - y0) / size).astype(np.int64) * cols + np.floor(
            (xy[:, 0] - x0) / size
        ).astype(np.int64)
        order = np.argsort(key)
        keys = key[order]
        before = None
        if keys[-1] < CELL_TABLE_MAX:
            before = np.r_[0, np.cumsum(np.bincount(keys, minlength=keys[-1] + 1))]
        return cls(float(x0), float(y0), size, cols, order, keys, before)

    @property
    def rows(self) -> int:
        """Rows of cells up to the last point's."""
        return int(self.keys[-1] // self.cols) + 1

    def column(self, x: np.ndarray, rounding: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """The column of each x (``np.floor``), or of the first cell starting at or after it."""
        return rounding((x - self.x0) / self.size).astype(np.int64)

    def span(self, start: np.ndarray, stop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions [lo, hi) in ``order`` of the points whose cells' keys are in [start, stop].

        Empty where start > stop; keys past either end are fine.
        """
        if self.before is None:
            lo = np.searchsorted(self.keys, start, side="left")
            hi = np.searchsorted(self.keys, stop, side="right")
        else:
            last = len(self.before) - 1
            lo = self.before[np.clip(start, 0, last)]
            hi = self.before[np.clip(stop + 1, 0, last)]
        return lo, np.maximum(hi, lo)


def _cell_size(zone: _Zone, outer: np.ndarray) -> float:
    """Cells holding about ``POINTS_PER_CELL`` points near the targets, for discs of ``outer``.

    From the points within reach of a sample of targets; between 1/256 of a typical reach (the
    rows per target stay few) and one reach (sparse points: visiting them all costs little).
    """
    step = max(len(outer) // SAMPLE_TARGETS, 1)
    sample = np.arange(0, len(outer), step)
    thin = max(len(zone.xy) // 20_000, 1)
    near = cKDTree(zone.xy[::thin]).query_ball_point(
        zone.centre[sample], outer[sample], return_length=True
    )
    typical = float(np.median(outer[sample]))
    density = max(float(np.median(near)) * thin, 1.0) / (np.pi * max(typical, 1.0) ** 2)
    size = np.sqrt(POINTS_PER_CELL / density)
    return float(np.clip(size, max(typical / 256, 1.0), max(typical, 1.0)))


def _cover(
    cells: _Cells, centre: np.ndarray, inner: np.ndarray, outer: np.ndarray
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Which points each disc surely holds, as ranges, and which it may: (disc, point) pairs.

    Per disc and row of cells: the cells wholly inside radius ``inner`` hold their points
    surely, returned as (disc, lo, hi) ranges of ``cells.order``; the other cells touching radius
    ``outer`` hold points that must be checked, returned one by one. Points in no cell touching
    ``outer`` are beyond it.
    """
    s, cx, cy = cells.size, centre[:, 0], centre[:, 1]
    first = np.maximum(np.floor((cy - outer - cells.y0) / s).astype(np.int64), 0)
    last = np.minimum(np.floor((cy + outer - cells.y0) / s).astype(np.int64), cells.rows - 1)
    n = np.maximum(last - first + 1, 0)
    disc = np.repeat(np.arange(len(cx)), n)
    row = first[disc] + np.arange(len(disc)) - np.repeat(np.cumsum(n) - n, n)
    # The row's band of y relative to the centre: nearest and farthest |dy| in it.
    lo_y = cells.y0 + row * s - cy[disc]
    hi_y = lo_y + s
    near = np.maximum(np.maximum(lo_y, -hi_y), 0.0)
    far = np.maximum(-lo_y, hi_y)
    x = cx[disc]
    touch = np.sqrt(np.maximum(outer[disc] ** 2 - near**2, 0.0))
    t0 = np.maximum(cells.column(x - touch, np.floor), 0)
    t1 = np.minimum(cells.column(x + touch, np.floor), cells.cols - 1)
    r_in = inner[disc]
    hold = np.sqrt(np.maximum(r_in**2 - far**2, 0.0))
    h0 = np.maximum(cells.column(x - hold, np.ceil), t0)
    h1 = np.minimum(cells.column(x + hold, np.floor) - 1, t1)
    holds = (r_in > far) & (h0 <= h1)
    base = row * cells.cols
    lo, hi = cells.span(base + h0, base + h1)
    full = holds & (hi > lo)
    held = (disc[full], lo[full], hi[full])
    # The touched cells left and right of the held ones (all of them when none is held).
    left_end = np.where(holds, h0 - 1, t1)
    right_start = np.where(holds, h1 + 1, t1 + 1)
    spans = [cells.span(base + t0, base + left_end), cells.span(base + right_start, base + t1)]
    d = np.concatenate([disc, disc])
    lo, hi = np.concatenate([spans[0][0], spans[1][0]]), np.concatenate([spans[0][1], spans[1][1]])
    count = hi - lo
    pos = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count) + np.repeat(lo, count)
    return held, (np.repeat(d, count), cells.order[pos])


def _covered(
    zone: _Zone, r: float, cells: _Cells, discs: np.ndarray
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Points within r of the edges of some of a zone's targets: held ranges, checked pairs.

    As ``_cover``, with discs as zone-local target positions; the pairs are those found within.
    """
    held, (d, point) = _cover(
        cells, zone.centre[discs], r + zone.above[discs], r + zone.below[discs]
    )
    local = discs[d]
    lower, upper = zone.bounds(point, local)
    inside = zone.within(point, local, lower, upper, r)
    return (discs[held[0]], held[1], held[2]), (point[inside], local[inside])


def _chunks(n: int, size: int) -> Iterator[np.ndarray]:
    """Positions 0..n-1 in runs of ``size``."""
    for start in range(0, n, size):
        yield np.arange(start, min(start + size, n))


def _disc_chunks(cells: _Cells, zone: _Zone, r: float) -> list[np.ndarray]:
    """A zone's targets in runs of about ``ROWS_PER_CHUNK`` rows of cells within r of them."""
    y, reach = zone.centre[:, 1], r + zone.below
    first = np.maximum(np.floor((y - reach - cells.y0) / cells.size), 0)
    last = np.minimum(np.floor((y + reach - cells.y0) / cells.size), cells.rows - 1)
    rows = np.maximum(last - first + 1, 1)
    run = (np.cumsum(rows) - rows) // ROWS_PER_CHUNK
    return np.split(np.arange(len(rows)), np.flatnonzero(np.diff(run)) + 1)


def sums_within(
    points: gpd.GeoSeries | np.ndarray,
    targets: gpd.GeoSeries | np.ndarray,
    radii: float | np.ndarray,
    weights: np.ndarray | None = None,
    grow: float | np.ndarray = 0.0,
) -> np.ndarray:
    """Per target and radius, the sum of each weight over the points within that radius of it.

    An array (targets, radii, weight columns), radii ascending. ``weights`` is one row per point
    (a column, or a 2-D array; default one column of ones: counts). "Within r" is an edge
    distance ≤ r, as ``pairs_within`` measures it; a radius of 0 means touching or inside.
    ``grow`` (scalar or one per target, ≥ 0) grows each target by that many metres. Points with
    missing geometry, or with every weight 0, are not searched. Sums are exact for whole-number
    weights (below 2**53); others may differ in the last bits from adding pair by pair.
    """
    pts, tgs, r, g = _prepare(points, targets, radii, grow)
    w = np.ones((len(pts), 1)) if weights is None else np.asarray(weights, dtype="float64")
    w = w.reshape(len(pts), -1)
    sums = np.zeros((len(tgs), len(r), w.shape[1]))
    active = np.flatnonzero(w.any(axis=1))
    if active.size == 0 or len(tgs) == 0:
        return sums
    for zone in _zones(pts[active], tgs, float(r[-1]), g):
        zw = w[active[zone.source]]
        for i, radius in enumerate(r):
            cells = _Cells.of(zone.xy, _cell_size(zone, radius + zone.below))
            prefix = np.vstack([np.zeros(w.shape[1]), np.cumsum(zw[cells.order], axis=0)])
            for discs in _disc_chunks(cells, zone, radius):
                (disc, lo, hi), (point, local) = _covered(zone, radius, cells, discs)
                held = prefix[hi] - prefix[lo]
                for col in range(w.shape[1]):
                    sums[zone.target, i, col] += np.bincount(
                        disc, held[:, col], minlength=len(zone.target)
                    ) + np.bincount(local, zw[point, col], minlength=len(zone.target))
    return sums


# Neighbourhood: counts by cover, nearest targets from candidate pairs.


class _Candidates:
    """Pairs of a chunk of a zone's points that may be among their nearest, with edge bounds.

    ``row`` is the point's position in the chunk (which starts at ``offset`` in the zone),
    ``local`` the target's in the zone. The edge e of a pair obeys max(lower, 0) ≤ e ≤
    max(upper, 0), and upper ≤ 0 means e is exactly 0.
    """

    def __init__(
        self,
        zone: _Zone,
        offset: int,
        row: np.ndarray,
        local: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
    ) -> None:
        self.zone, self.offset, self.row, self.local = zone, offset, row, local
        self.lower, self.upper = lower, upper

    def __len__(self) -> int:
        return len(self.row)

    @property
    def source(self) -> np.ndarray:
        """The points' positions in the caller's array."""
        return self.zone.source[self.offset + self.row]

    @property
    def target(self) -> np.ndarray:
        """The targets' positions in the caller's array."""
        return self.zone.target[self.local]

    def where(self, select: np.ndarray) -> _Candidates:
        """The pairs ``select`` picks (a mask, or positions in any order)."""
        return _Candidates(
            self.zone,
            self.offset,
            self.row[select],
            self.local[select],
            self.lower[select],
            self.upper[select],
        )

    def measure(self, mask: np.ndarray) -> np.ndarray:
        """Edge metres of the pairs where ``mask`` holds."""
        return self.zone.measure(self.offset + self.row[mask], self.local[mask])


def _ladder(reach: float) -> np.ndarray:
    """Ascending thresholds from 0 to ``reach``, each ``LADDER_RATIO`` times the one before."""
    if reach <= 1.0:
        return np.unique([0.0, reach])
    steps = int(np.ceil(np.log(reach) / np.log(LADDER_RATIO)))
    return np.r_[0.0, reach * LADDER_RATIO ** -np.arange(steps, -1, -1.0)]


def _first_reaching(totals: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of running totals, the first column that reaches k, and whether any does."""
    enough = totals >= k
    return np.argmax(enough, axis=1), enough.any(axis=1)


def _kth_bound(pairs: _Candidates, rows: int, k: int, reach: float) -> np.ndarray:
    """Per row, a distance its k-th nearest edge surely does not pass (``reach`` if < k pairs).

    The smallest threshold of ``_ladder`` that at least k upper bounds reach.
    """
    ladder = _ladder(reach)
    step = np.searchsorted(ladder, np.maximum(pairs.upper, 0.0), side="left")
    per_step = np.bincount(
        pairs.row * (len(ladder) + 1) + step, minlength=rows * (len(ladder) + 1)
    ).reshape(rows, len(ladder) + 1)[:, : len(ladder)]
    first, found = _first_reaching(np.cumsum(per_step, axis=1), k)
    return np.where(found, ladder[first], reach)


def _overlapping(row: np.ndarray, lo: np.ndarray, hi: np.ndarray, cap: float) -> np.ndarray:
    """Which intervals [lo, hi] (sorted by row, then lo) overlap another of the same row.

    A running maximum of hi per row, in one pass by adding row · span (span a power of two above
    every value, hi capped past ``cap`` ≥ every lo): rounding is monotone, so it may report an
    overlap that is not there, never miss one.
    """
    span = 2.0 ** np.ceil(np.log2(cap + 2.0))
    offset = row * span
    running = np.maximum.accumulate(offset + np.minimum(hi, cap + 1.0))
    same = row[1:] == row[:-1]
    after = np.r_[False, same & (offset[1:] + lo[1:] <= running[:-1])]
    before = np.r_[same & (hi[:-1] >= lo[1:]), False]
    return after | before


def _by_edge(row: np.ndarray, lo: np.ndarray, target: np.ndarray | None = None) -> np.ndarray:
    """Order by row, then lo, then target (if given): two cheap sorts, a full one for ties."""
    order = np.argsort(lo)
    order = order[np.argsort(row[order].astype(np.uint16), kind="stable")]
    if target is None:
        return order
    r, v = row[order], lo[order]
    tied = np.r_[False, (r[1:] == r[:-1]) & (v[1:] == v[:-1])]
    tied[:-1] |= tied[1:]
    if tied.any():
        sub = order[tied]
        order[tied] = sub[np.lexsort((target[sub], lo[sub], row[sub]))]
    return order


def _k_nearest(
    pairs: _Candidates, rows: int, k: int, reach: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The k nearest of pairs (all within ``reach``) per row: source, target, edge metres.

    Sorted by row, then edge, then target. A pair is measured only where its bounds overlap
    another candidate's of the same row; each row's first is always measured, the metres of
    the others may be NaN.
    """
    if len(pairs) == 0:
        return pairs.source, pairs.target, pairs.lower
    pairs = pairs.where(pairs.lower <= _kth_bound(pairs, rows, k, reach)[pairs.row])
    lo, hi = np.maximum(pairs.lower, 0.0), np.maximum(pairs.upper, 0.0)
    order = _by_edge(pairs.row, lo)
    pairs, lo, hi = pairs.where(order), lo[order], hi[order]
    unsettled = _overlapping(pairs.row, lo, hi, reach) & (lo < hi)
    if unsettled.any():
        lo[unsettled] = hi[unsettled] = pairs.measure(unsettled)
    # Settled: any two of a row are measured, or their bounds do not overlap, so this is the order
    # of their edges; equal edges go by target (a zone's targets are in the caller's order).
    # Edges of exactly 0 (inside: often many a point) get distinct negative keys in target
    # order, sparing the sort of their ties.
    key = np.where(hi == 0.0, pairs.local - float(len(pairs.zone.target)), lo)
    order = _by_edge(pairs.row, key, pairs.local)
    pairs, lo, hi = pairs.where(order), lo[order], hi[order]
    first = np.r_[True, pairs.row[1:] != pairs.row[:-1]]
    start = np.flatnonzero(first)
    rank = np.arange(len(first)) - np.repeat(start, np.diff(np.r_[start, len(first)]))
    keep = rank < k
    pairs, lo, hi, first = pairs.where(keep), lo[keep], hi[keep], first[keep]
    metres = np.where(lo == hi, lo, np.nan)
    if (first & (lo < hi)).any():
        metres[first & (lo < hi)] = pairs.measure(first & (lo < hi))
    return pairs.source, pairs.target, metres


def _zone_counts(zone: _Zone, radii: np.ndarray) -> np.ndarray:
    """(zone points, radii): how many of the zone's targets have their edge within each radius."""
    counts = np.zeros((len(zone.xy), len(radii)), dtype=np.int64)
    for i, r in enumerate(radii):
        cells = _Cells.of(zone.xy, _cell_size(zone, r + zone.below))
        for discs in _disc_chunks(cells, zone, r):
            (_, lo, hi), (point, _) = _covered(zone, r, cells, discs)
            # +1 from each held range's first position to its end, summed along ``order``.
            step = np.bincount(lo, minlength=len(zone.xy) + 1)
            step -= np.bincount(hi, minlength=len(zone.xy) + 1)
            counts[cells.order, i] += np.cumsum(step)[:-1]
            counts[:, i] += np.bincount(point, minlength=len(zone.xy))
    return counts


def _target_trees(zone: _Zone) -> list[tuple[np.ndarray, cKDTree, float]]:
    """A zone's targets in groups of similar outer radius: members, k-d tree of centres, largest.

    A tree is searched at its group's largest reach; grouping keeps small targets from being
    searched as far as the largest (``GROUP_RATIO``).
    """
    group = np.floor(np.log1p(zone.below) / np.log(GROUP_RATIO))
    members = [np.flatnonzero(group == v) for v in np.unique(group)]
    return [(m, cKDTree(zone.centre[m]), float(zone.below[m].max())) for m in members]


def _candidates(
    zone: _Zone,
    offset: int,
    rows: np.ndarray,
    bound: np.ndarray,
    trees: list[tuple[np.ndarray, cKDTree, float]],
) -> _Candidates:
    """The pairs of some of a zone's points whose edge may be within each point's ``bound``."""
    row, local, lower, upper = [], [], [], []
    for b in np.unique(bound):
        mine = np.flatnonzero(bound == b)
        tree = cKDTree(zone.xy[offset + rows[mine]])
        for members, centres, largest in trees:
            found = centres.sparse_distance_matrix(tree, b + largest, output_type="ndarray")
            j = members[found["i"]]
            lo = found["v"] - zone.below[j]
            keep = lo <= b
            row.append(rows[mine[found["j"][keep]]])
            local.append(j[keep])
            lower.append(lo[keep])
            upper.append(found["v"][keep] - zone.above[j[keep]])
    return _Candidates(
        zone,
        offset,
        np.concatenate(row),
        np.concatenate(local),
        np.concatenate(lower),
        np.concatenate(upper),
    )


def neighbourhood(
    points: gpd.GeoSeries | np.ndarray,
    targets: gpd.GeoSeries | np.ndarray,
    radii: float | np.ndarray,
    k: int,
    grow: float | np.ndarray = 0.0,
) -> Neighbourhood:
    """Per point: targets within each radius, the nearest target edge, the ``k`` nearest.

    Everything is measured to target edges (``grow`` as in ``sums_within``) and limited to the
    largest radius. Counts, order and the nearest metres are those of measuring every pair with
    ``pairs_within`` (ties go to the earlier target). Only the pairs that may be among a point's
    k nearest are listed: the smallest radius already holding k targets bounds them.
    """
    pts, tgs, r, g = _prepare(points, targets, radii, grow)
    n, reach = len(pts), float(r[-1])
    counts = np.zeros((n, len(r)), dtype=np.int64)
    nearest = np.full(n, -1, dtype=np.int64)
    metres = np.full(n, np.nan)
    ranked: list[tuple[np.ndarray, np.ndarray]] = []
    if n == 0 or len(tgs) == 0 or k <= 0:
        return Neighbourhood(counts, nearest, metres, *(np.empty(0, dtype=np.int64),) * 2)
    for zone in _zones(pts, tgs, reach, g):
        within = _zone_counts(zone, r)
        counts[zone.source] = within
        first, found = _first_reaching(within, k)
        bound = np.where(found, r[first], reach)
        trees = _target_trees(zone)
        for chunk in _chunks(len(zone.xy), CHUNK_POINTS):
            has = np.flatnonzero(within[chunk, -1] > 0)
            if has.size == 0:
                continue
            pairs = _candidates(zone, int(chunk[0]), has, bound[chunk[has]], trees)
            lower, upper = pairs.lower, pairs.upper
            point = pairs.offset + pairs.row
            pairs = pairs.where(zone.within(point, pairs.local, lower, upper, reach))
            source, target, edge = _k_nearest(pairs, len(chunk), k, reach)
            head = np.r_[True, source[1:] != source[:-1]][: len(source)]
            nearest[source[head]] = target[head]
            metres[source[head]] = edge[head]
            ranked.append((source, target))
    empty = (np.empty(0, dtype=np.int64),)
    src = np.concatenate([s for s, _ in ranked] or empty).astype(np.int64, copy=False)
    tgt = np.concatenate([t for _, t in ranked] or empty).astype(np.int64, copy=False)
    order = np.argsort(src, kind="stable")
    return Neighbourhood(counts, nearest, metres, src[order], tgt[order])
