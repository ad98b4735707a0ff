"""Edge distances in metres (``sums_within``, ``neighbourhood``), by hand and against pairs."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from pyproj import Geod

from geo_service.risk import metric
from geo_service.risk.base import top_ids
from geo_service.risk.metric import neighbourhood, pairs_within, sums_within

GEOD = Geod(ellps="WGS84")
#: On the central meridian of UTM zone 33S, where a projected metre is 0.9996 of a true one.
HOME = (15.0, -5.0)


def _at(bearing: float, metres: float) -> tuple[float, float]:
    lon, lat, _ = GEOD.fwd(*HOME, bearing, metres)
    return lon, lat


def _square_around(lon: float, lat: float, half_deg: float) -> shapely.Polygon:
    return shapely.box(lon - half_deg, lat - half_deg, lon + half_deg, lat + half_deg)


def _targets() -> tuple[np.ndarray, np.ndarray]:
    """Around HOME: a square it lies in, a site 3 km north with a 1 km footprint, a site 12 km
    east, a 2 km square whose west edge is 6 km east (6.0–8.0 km), and a site 30 km south."""
    west_edge = _at(90, 6000)[0]
    east_edge = _at(90, 8000)[0]
    geoms = np.array(
        [
            _square_around(*HOME, 0.01),
            shapely.Point(_at(0, 3000)),
            shapely.Point(_at(90, 12_000)),
            shapely.box(west_edge, HOME[1] - 0.01, east_edge, HOME[1] + 0.01),
            shapely.Point(_at(180, 30_000)),
        ]
    )
    grow = np.array([0.0, 1000.0, 0.0, 0.0, 0.0])
    return geoms, grow


def test_sums_per_target_and_radius_by_hand() -> None:
    geoms, grow = _targets()
    points = np.array([shapely.Point(HOME), shapely.Point(_at(90, 4000))])
    weights = np.array([[1.0, 100.0], [1.0, 7.0]])
    sums = sums_within(points, geoms, [0.0, 2500.0, 15_000.0], weights, grow)
    assert sums.shape == (5, 3, 2)
    # HOME: inside the square (0), site edge 3000 − 1000 = 2000 m, east square 6 km, east site
    # 12 km, south site 30 km (too far). 4 km east: square 2.9 km, site edge √(4² + 3²) − 1 =
    # 4 km, east square 2 km, east site 8 km.
    assert sums[:, :, 0].tolist() == [[1, 1, 2], [0, 1, 2], [0, 0, 2], [0, 1, 2], [0, 0, 0]]
    assert sums[:, 2, 1].tolist() == [107, 107, 107, 107, 0]
    assert sums[1, 1, 1] == 100 and sums[3, 1, 1] == 7
    assert (sums_within(points, geoms, 15_000.0, grow=grow)[:, 0, 0] == sums[:, 2, 0]).all()


def test_radius_zero_is_touching_or_inside() -> None:
    square = np.array([_square_around(*HOME, 0.01)])
    # 10 m north of the square's northern edge, as measured along the meridian.
    outside = shapely.Point(GEOD.fwd(HOME[0], HOME[1] + 0.01, 0, 10)[:2])
    points = np.array([shapely.Point(HOME), outside, None])
    assert sums_within(points, square, 0.0).tolist() == [[[1.0]]]
    assert sums_within(points, square, [0.0, 20.0]).tolist() == [[[1.0], [2.0]]]
    assert sums_within(points, square, 20.0, [0.0, 1.0, 1.0]).tolist() == [[[1.0]]]


def test_neighbourhood_counts_nearest_and_order_by_hand() -> None:
    geoms, grow = _targets()
    east = shapely.Point(_at(90, 4000))  # 2 km from the east square, 2.9 km from HOME's
    far = [shapely.Point(40.0, 10.0), shapely.Point(_at(270, 100_000))]  # other zone; same
    points = np.array([shapely.Point(HOME), east, *far])
    near = neighbourhood(points, geoms, [5000.0, 10_000.0, 20_000.0], k=3, grow=grow)
    assert near.counts.tolist() == [[2, 3, 4], [3, 4, 4], [0, 0, 0], [0, 0, 0]]
    assert near.nearest.tolist() == [0, 3, -1, -1]
    assert near.metres[0] == 0.0
    assert near.metres[1] == pytest.approx(2000.0, rel=1e-3)
    assert np.isnan(near.metres[2:]).all()
    # 1.2 km east of HOME's square: the square is searched, but nothing is within 500 m.
    lonely = np.array([shapely.Point(_at(90, 2300))])
    alone = neighbourhood(lonely, geoms, 500.0, k=3, grow=grow)
    assert alone.counts.tolist() == [[0]] and alone.nearest.tolist() == [-1]
    assert len(alone.ranked_source) == 0 and not sums_within(lonely, geoms, 500.0).any()
    ranked = list(zip(near.ranked_source.tolist(), near.ranked_target.tolist(), strict=True))
    # HOME: its square (0 m), the site's edge (2 km), the east square (6 km). East: the east
    # square (2 km), HOME's square (4 km − 1.1 km), the site's edge (√(4² + 3²) − 1 = 4 km).
    assert ranked == [(0, 0), (0, 1), (0, 3), (1, 3), (1, 0), (1, 1)]


def test_site_edge_metres_and_ties_go_to_the_earlier_target() -> None:
    site = shapely.Point(_at(0, 3000))
    geoms = np.array([site, _square_around(*HOME, 0.01), site, _square_around(*HOME, 0.01)])
    grow = np.array([1000.0, 0.0, 1000.0, 0.0])
    near = neighbourhood(np.array([shapely.Point(HOME)]), geoms, 50_000.0, k=10, grow=grow)
    assert near.ranked_target.tolist() == [1, 3, 0, 2]
    alone = neighbourhood(np.array([shapely.Point(HOME)]), geoms[[0]], 50_000.0, 1, grow[0])
    assert alone.metres[0] == pytest.approx(2000.0, rel=1e-3)


def _mixed(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points and targets of every kind across the 18° E zone boundary and the equator."""
    rng = np.random.default_rng(seed)
    n, m = 600, 300
    pts = shapely.points(rng.uniform(17, 19, n), rng.uniform(-0.6, 0.6, n))
    x, y, r = rng.uniform(17, 19, m), rng.uniform(-0.6, 0.6, m), rng.uniform(0.005, 0.05, m)
    kind = rng.integers(0, 5, m)
    notched = shapely.difference(
        shapely.box(x - r, y - r, x + r, y + r), shapely.box(x - r / 2, y - r / 2, x + r / 2, y + r)
    )
    line = shapely.linestrings(np.stack([np.c_[x - r, y], np.c_[x + r, y + r]], axis=1))
    geoms = np.choose(
        kind,
        [
            shapely.points(x, y),
            shapely.buffer(shapely.points(x, y), r, quad_segs=16),
            shapely.box(x - r, y - r / 3, x + r, y + r / 3),
            notched,
            line,
        ],
    )
    grow = np.where(kind == 0, rng.choice([0.0, 2000.0], m), 0.0)
    geoms[-10:], grow[-10:] = geoms[:10], grow[:10]  # exact ties
    pts[:10] = shapely.points(x[:10], y[:10])  # points on target centres
    corners = shapely.get_coordinates(shapely.get_exterior_ring(geoms[kind == 2][:10]))[::5]
    pts[11 : 11 + len(corners)] = shapely.points(corners)  # on edges: distance 0, not inside
    pts[10] = None
    return pts, geoms, grow


@pytest.mark.parametrize("seed, small", [(0, False), (1, False), (2, True)])
def test_same_as_measuring_every_pair(seed: int, small: bool, monkeypatch) -> None:
    if small:  # many chunks of points and of targets, cells found by binary search
        monkeypatch.setattr(metric, "CHUNK_POINTS", 7)
        monkeypatch.setattr(metric, "ROWS_PER_CHUNK", 50)
        monkeypatch.setattr(metric, "CELL_TABLE_MAX", 0)
    pts, geoms, grow = _mixed(seed)
    radii = np.array([0.0, 1500.0, 4000.0, 8000.0])
    every = pairs_within(pts, geoms, radii[-1] + grow)
    edge = np.maximum(every.metres - grow[every.target], 0.0)
    ok = edge <= radii[-1]
    s, t, e = every.source[ok], every.target[ok], edge[ok]

    weight = np.arange(len(pts), dtype=float) % 7
    sums = sums_within(pts, geoms, radii, np.column_stack([np.ones(len(pts)), weight]), grow)
    for i, r in enumerate(radii):
        within = e <= r
        assert np.array_equal(sums[:, i, 0], np.bincount(t[within], minlength=len(geoms)))
        expected = np.bincount(t[within], weight[s[within]], minlength=len(geoms))
        assert np.array_equal(sums[:, i, 1], expected)

    n = len(pts)
    for k in (1, 4):
        near = neighbourhood(pts, geoms, radii, k, grow)
        for i, r in enumerate(radii):
            assert np.array_equal(near.counts[:, i], np.bincount(s[e <= r], minlength=n))
        order = np.lexsort((t, e, s))
        first = np.unique(s[order], return_index=True)[1]
        assert np.array_equal(near.nearest[s[order][first]], t[order][first])
        assert np.array_equal(near.metres[s[order][first]], e[order][first])
        assert (near.nearest >= 0).sum() == len(first)
        strength = -np.arange(len(near.ranked_source), dtype=float)
        assert top_ids(near.ranked_source, near.ranked_target, strength, n, k).equals(
            top_ids(s, t, -e, n, k)
        )


def test_radii_and_grow_must_not_be_negative() -> None:
    point = np.array([shapely.Point(HOME)])
    with pytest.raises(ValueError):
        sums_within(point, point, -1.0)
    with pytest.raises(ValueError):
        neighbourhood(point, point, 10.0, 1, grow=-5.0)


@pytest.mark.parametrize("seed", [3, 4])
def test_nearest_point_target_same_as_measuring_every_pair(seed: int) -> None:
    pts, geoms, _ = _mixed(seed)
    sites = shapely.points(shapely.get_coordinates(shapely.centroid(geoms)))
    sites[5] = None  # a missing target never wins
    reach = 6000.0
    best, dist = metric.nearest(pts, sites, reach)
    every = pairs_within(pts, sites, reach)
    order = np.lexsort((every.target, every.metres, every.source))
    s, first = np.unique(every.source[order], return_index=True)
    assert np.array_equal(np.flatnonzero(best >= 0), s)
    assert np.allclose(dist[s], every.metres[order][first], rtol=0, atol=1e-6)
    # Ties (the last ten sites repeat the first ten) go to the earlier site.
    assert np.array_equal(best[s], every.target[order][first])
    assert np.isnan(dist[best < 0]).all()


@pytest.mark.parametrize("seed", [5, 6])
def test_point_targets_pair_as_every_geometry_does(seed: int) -> None:
    """Point targets take the k-d tree path; as one-point MultiPoints they take the STRtree
    path, which measures each pair: the same pairs, in the same order, the same metres."""
    pts, geoms, _ = _mixed(seed)
    sites = shapely.points(shapely.get_coordinates(shapely.centroid(geoms)))
    limit = np.random.default_rng(seed).uniform(500.0, 8000.0, len(sites))  # one per target
    fast = pairs_within(pts, sites, limit)
    slow = pairs_within(pts, shapely.multipoints(sites[:, None]), limit)
    assert len(fast) > 100
    assert np.array_equal(fast.source, slow.source)
    assert np.array_equal(fast.target, slow.target)
    assert np.allclose(fast.metres, slow.metres, rtol=0, atol=1e-6)
    assert (fast.metres <= limit[fast.target]).all()


@pytest.mark.parametrize("seed", [7, 8])
def test_nearest_shape_same_as_measuring_every_pair(seed: int) -> None:
    """Lines and polygons take GEOS's nearest search: the target and the metres of measuring
    every pair within reach, ties to the earlier target, missing and empty ones never."""
    pts, geoms, _ = _mixed(seed)
    geoms = geoms.copy()
    geoms[3] = None
    geoms[4] = shapely.Polygon()
    geoms[-5:] = geoms[:5]  # ties: the same shapes again, later
    reach = 6000.0
    best, dist = metric.nearest(pts, geoms, reach)
    every = pairs_within(pts, geoms, reach)
    order = np.lexsort((every.target, every.metres, every.source))
    s, first = np.unique(every.source[order], return_index=True)
    assert len(s) > 20 and (best < 0).any()
    assert np.array_equal(np.flatnonzero(best >= 0), s)
    assert np.array_equal(dist[s], every.metres[order][first])  # the same metres, exactly
    assert np.array_equal(best[s], every.target[order][first])
    assert not np.isin(best, [3, 4]).any()
    assert np.isnan(dist[best < 0]).all()
