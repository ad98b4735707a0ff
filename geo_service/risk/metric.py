"""Distances in metres between features in EPSG:4326, never in degrees.

Points are grouped by UTM zone (a zone is 6° wide; inside it distances are within 0.1 % of
the ellipsoidal ones) and each group is measured together with the targets near it, in that
zone's projection, through one STRtree query. Targets are lines, polygons or points; distances
to polygons are 0 inside them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS, Transformer

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
    lon, lat = shapely.get_x(pts), shapely.get_y(pts)
    tbounds = shapely.bounds(tgs)
    sources, targets_out, metres = [], [], []
    for zone, south, idx in utm_zones(np.nan_to_num(lon), np.nan_to_num(lat)):
        idx = idx[~np.isnan(lon[idx])]
        if idx.size == 0:
            continue
        dx, dy = _margin_degrees(reach, lat[idx])
        x0, x1 = lon[idx].min() - dx, lon[idx].max() + dx
        y0, y1 = lat[idx].min() - dy, lat[idx].max() + dy
        near = np.flatnonzero(
            (tbounds[:, 2] >= x0)
            & (tbounds[:, 0] <= x1)
            & (tbounds[:, 3] >= y0)
            & (tbounds[:, 1] <= y1)
        )
        if near.size == 0:
            continue
        p_proj = project(pts[idx], zone, south)
        t_proj = project(tgs[near], zone, south)
        # The tree holds the points and each target searches its own radius, so one large
        # radius does not make every other target search as far.
        tree = shapely.STRtree(p_proj)
        j, i = tree.query(t_proj, predicate="dwithin", distance=limit[near])
        if i.size == 0:
            continue
        d = shapely.distance(p_proj[i], t_proj[j])
        ok = d <= limit[near[j]]
        sources.append(idx[i[ok]])
        targets_out.append(near[j[ok]])
        metres.append(d[ok])
    if not sources:
        empty = np.empty(0, dtype=np.int64)
        return Pairs(empty, empty, np.empty(0))
    s, t, m = np.concatenate(sources), np.concatenate(targets_out), np.concatenate(metres)
    order = np.lexsort((t, s))
    return Pairs(s[order], t[order], m[order])


def nearest(
    points: gpd.GeoSeries | np.ndarray, targets: gpd.GeoSeries | np.ndarray, max_metres: float
) -> tuple[np.ndarray, np.ndarray]:
    """For each point, the nearest target (-1 if none within ``max_metres``) and its distance."""
    pairs = pairs_within(points, targets, max_metres)
    n = len(np.asarray(points, dtype=object))
    best = np.full(n, -1, dtype=np.int64)
    dist = np.full(n, np.nan)
    if len(pairs):
        order = np.lexsort((pairs.metres, pairs.source))
        s, first = np.unique(pairs.source[order], return_index=True)
        best[s] = pairs.target[order][first]
        dist[s] = pairs.metres[order][first]
    return best, dist


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
