"""The grid sum of Gaussian kernels against the exact sum, on real event positions."""

from __future__ import annotations

import numpy as np
from pyproj import Transformer
from scipy.spatial import cKDTree

from geo_service.risk.kernel_grid import gaussian_sums
from tests.helpers import UCDP_CSV, read_text_csv

UTM34 = Transformer.from_crs("EPSG:4326", "EPSG:32634", always_xy=True)


def _exact(points: np.ndarray, sources: np.ndarray, w: np.ndarray, h: float, c: float):
    tree = cKDTree(sources)
    out = np.zeros(len(points))
    for i, near in enumerate(tree.query_ball_point(points, c * h)):
        d = np.hypot(*(sources[near] - points[i]).T)
        out[i] = (w[near] * np.exp(-0.5 * (d / h) ** 2)).sum()
    return out


def test_one_source_is_within_0_7_percent_of_its_weight() -> None:
    rng = np.random.default_rng(3)
    h = 2000.0
    # Sources scattered over several tiles (512 cells of 333 m = 171 km) and points around
    # them at every angle and distance up to 2.5 bandwidths.
    sources = rng.uniform(-4e5, 4e5, (400, 2))
    angle, d = rng.uniform(0, 2 * np.pi, 400), rng.uniform(0, 2.5 * h, 400)
    points = sources + np.column_stack([d * np.cos(angle), d * np.sin(angle)])
    got = np.array(
        [gaussian_sums(points[i : i + 1], sources[i : i + 1], [2.0], h, 3.0)[0] for i in range(400)]
    )
    np.testing.assert_allclose(got, 2.0 * np.exp(-0.5 * (d / h) ** 2), rtol=0, atol=2.0 * 0.007)


def test_sums_over_real_event_positions_are_within_the_stated_error() -> None:
    ucdp = read_text_csv(UCDP_CSV)
    lon, lat = ucdp["longitude"].astype(float), ucdp["latitude"].astype(float)
    x, y = UTM34.transform(lon.to_numpy(), lat.to_numpy())
    sources = np.column_stack([x, y])
    weights = 1.0 + np.log1p(ucdp["best"].astype(float).to_numpy())
    # Points at the events and 1 km to their east, where sums are large and uneven (UCDP
    # places hundreds of events at some towns, all at one position).
    points = np.vstack([sources[::3], sources[::3] + (1000.0, 0.0)])
    for h in (2000.0, 10000.0):
        cell, c = h / 6, 3.0
        exact = _exact(points, sources, weights, h, c)
        got = gaussian_sums(points, sources, weights, h, c)
        # 1 % of the weight in reach, and up to the kernel at the cut (1.1 %, 1.5 % with
        # the grid's slope) of the weight within 1.5 cells of the cut, which the grid blurs.
        d = np.hypot(*(sources[None, :, :] - points[:, None, :]).transpose(2, 0, 1))
        in_reach = (weights * (d <= c * h + 1.5 * cell)).sum(axis=1)
        at_cut = (weights * (np.abs(d - c * h) <= 1.5 * cell)).sum(axis=1)
        assert (exact > 1.0).sum() > 300
        assert (np.abs(got - exact) <= 0.01 * in_reach + 0.015 * at_cut + 1e-9).all()
        big = exact > 1.0
        assert np.median(np.abs(got[big] - exact[big]) / exact[big]) < 0.005


def test_nothing_in_reach_is_zero_and_zero_weights_are_ignored() -> None:
    points = np.array([[0.0, 0.0], [1e6, 1e6]])
    sources = np.array([[100.0, 0.0], [1e6 + 50.0, 1e6]])
    got = gaussian_sums(points, sources, np.array([1.0, 0.0]), 1000.0, 3.0)
    assert got[1] == 0.0 and abs(got[0] - np.exp(-0.5 * 0.1**2)) < 0.007
    assert gaussian_sums(points, sources[:0], np.array([]), 1000.0, 3.0).tolist() == [0.0, 0.0]
    far = gaussian_sums(points[:1], np.array([[3500.0, 0.0]]), np.array([1.0]), 1000.0, 3.0)
    assert far[0] < 1e-3  # beyond 3 bandwidths along an axis: cut
