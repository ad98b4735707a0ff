"""Sums of peak-1 Gaussian kernels at many points, through a grid, in time linear in the data.

Summing ``Σ_i w_i · exp(−d_i² / (2 h²))`` pair by pair costs one term per (point, source) pair
within reach, and pairs grow with the square of the density: a million incidents around two
hundred thousand communities in one basin make half a billion. The grid costs one term per
cell instead (particle–mesh, as in N-body codes):

1. each source's weight is shared bilinearly among the four cell centres around it (cells of
   h / ``cells_per_bandwidth`` metres);
2. the grid is convolved with a separable Gaussian (``scipy.ndimage.gaussian_filter``) cut at
   ``cutoff`` bandwidths;
3. each point reads the grid bilinearly.

Steps 1 and 3 each blur by a triangle of variance 1/6 cell² per axis, so the filter's own
variance is h² − 1/3 cell², and the three together have the kernel's variance h²; the filter is
normalised over its cut support, so the result is rescaled by the kernel's mass 2πh² times the
share of a Gaussian within ±cutoff per axis. What remains is the grid's interpolation error,
below 0.5 % of a source's weight at 6 cells per bandwidth (``tests/risk/test_kernel_grid.py``
measures it against the exact sum), and the cut being a square of ±cutoff·h rather than a
circle, which keeps up to exp(−cutoff²/2) (1.1 % at 3) of a source's weight in the corners.

The plane is cut into square tiles of ``tile_cells`` cells; only tiles holding a point are
computed, each with a margin as wide as the kernel, so memory is bounded by one tile and time
grows with the area the points cover, not with the area of the bounding box.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import map_coordinates
from scipy.signal import oaconvolve


def _tile_keys(tx: np.ndarray, ty: np.ndarray) -> np.ndarray:
    return (tx.astype(np.int64) + (1 << 30)) << 31 | (ty.astype(np.int64) + (1 << 30))


def _stencil(cells_per_bandwidth: int, cutoff: float, radius: int) -> np.ndarray:
    """The kernel on the grid: peak-1 Gaussian of variance h² − 1/3 cell², cut on a circle.

    Depositing and reading bilinearly each add a triangle's variance (1/6 cell² per axis), so
    the narrower stencil gives the kernel's own width; the factor cpb²/σ² restores its peak.
    """
    sigma2 = cells_per_bandwidth**2 - 1.0 / 3.0
    a = np.arange(-radius, radius + 1, dtype="float64")
    r2 = a[:, None] ** 2 + a[None, :] ** 2
    k = np.exp(-0.5 * r2 / sigma2) * (cells_per_bandwidth**2 / sigma2)
    return np.where(r2 <= (cutoff * cells_per_bandwidth) ** 2, k, 0.0)


def gaussian_sums(
    points_xy: np.ndarray,
    sources_xy: np.ndarray,
    weights: np.ndarray,
    bandwidth_m: float,
    cutoff: float,
    cells_per_bandwidth: int = 6,
    tile_cells: int = 512,
) -> np.ndarray:
    """At each point, Σ weights · exp(−d² / (2 h²)) over sources within the cut, in metres.

    ``points_xy`` (n, 2) and ``sources_xy`` (m, 2) are in one planar projection in metres.
    """
    points_xy = np.asarray(points_xy, dtype="float64").reshape(-1, 2)
    sources_xy = np.asarray(sources_xy, dtype="float64").reshape(-1, 2)
    weights = np.asarray(weights, dtype="float64")
    out = np.zeros(len(points_xy))
    live = weights != 0
    sources_xy, weights = sources_xy[live], weights[live]
    if len(points_xy) == 0 or len(sources_xy) == 0:
        return out
    cell = bandwidth_m / cells_per_bandwidth
    radius = math.ceil(cutoff * cells_per_bandwidth)
    stencil = _stencil(cells_per_bandwidth, cutoff, radius)
    margin = radius + 1  # the filter's reach, and one more cell for the bilinear corners
    tile = max(tile_cells, 2 * margin)
    size = tile + 2 * margin + 1

    pu, pv = points_xy[:, 0] / cell, points_xy[:, 1] / cell
    su, sv = sources_xy[:, 0] / cell, sources_xy[:, 1] / cell
    p_key = _tile_keys(np.floor(pu / tile), np.floor(pv / tile))
    s_key = _tile_keys(np.floor(su / tile), np.floor(sv / tile))
    s_order = np.argsort(s_key, kind="stable")
    s_sorted = s_key[s_order]
    p_order = np.argsort(p_key, kind="stable")
    tiles, starts = np.unique(p_key[p_order], return_index=True)
    ends = np.r_[starts[1:], len(p_order)]
    for key, start, end in zip(tiles, starts, ends, strict=True):
        tx, ty = (int(key) >> 31) - (1 << 30), (int(key) & ((1 << 31) - 1)) - (1 << 30)
        neighbours = [
            _tile_keys(np.array([tx + dx]), np.array([ty + dy]))[0]
            for dx in (-1, 0, 1)
            for dy in (-1, 0, 1)
        ]
        lo = np.searchsorted(s_sorted, neighbours, side="left")
        hi = np.searchsorted(s_sorted, neighbours, side="right")
        near = np.concatenate([s_order[a:b] for a, b in zip(lo, hi, strict=True)])
        if near.size == 0:
            continue
        ox, oy = tx * tile - margin, ty * tile - margin
        u, v = su[near] - ox, sv[near] - oy
        inside = (u >= 0) & (u < size - 1) & (v >= 0) & (v < size - 1)
        if not inside.any():
            continue
        u, v, w = u[inside], v[inside], weights[near[inside]]
        i0, j0 = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
        fu, fv = u - i0, v - j0
        flat = j0 * size + i0
        grid = np.bincount(flat, w * (1 - fu) * (1 - fv), minlength=size * size)
        grid += np.bincount(flat + 1, w * fu * (1 - fv), minlength=size * size)
        grid += np.bincount(flat + size, w * (1 - fu) * fv, minlength=size * size)
        grid += np.bincount(flat + size + 1, w * fu * fv, minlength=size * size)
        smooth = oaconvolve(grid.reshape(size, size), stencil, mode="same")
        rows = p_order[start:end]
        out[rows] = map_coordinates(
            smooth, [pv[rows] - oy, pu[rows] - ox], order=1, mode="constant", cval=0.0
        )
    return out
