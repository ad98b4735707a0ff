"""Points grouped per zoom as the map pages group incidents, so a vector tile stays light.

The grouping is supercluster's (the pages' ``static/js/incidents.js``), with its radius, tile
extent and top zoom: from the points themselves at ``TOP_ZOOM + 1`` down to zoom 0, each
zoom's points (or groups) are taken in order; one not yet taken gathers every one not yet
taken within ``RADIUS`` pixels of an ``EXTENT``-pixel tile at that zoom, at their weighted
centre; one with none stays itself. A group stands for its points by their count and by the
properties of its first by priority (the highest score: a group of communities looks like
its most at-risk one). Tiles at a layer's detail zoom and above carry every point; the detail
zoom is the first at which no tile holds more than ``MAX_TILE_POINTS`` of them.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
import shapely
from scipy.spatial import cKDTree

#: supercluster's options on the pages: ``radius`` in pixels of an ``extent``-pixel tile,
#: groups made up to ``maxZoom`` (points alone above it), ``minPoints`` 2.
RADIUS = 90
EXTENT = 512
TOP_ZOOM = 18
#: The most points a tile at a layer's detail zoom may hold (a few bytes each in MVT).
MAX_TILE_POINTS = 4096
#: Tiles are made up to this zoom; a layer denser than the limit there is shown whole.
MAX_DETAIL_ZOOM = 16
#: Groupings kept per layer view (one per filter asked for lately).
KEPT = 8
WORLD = 2 * math.pi * 6378137.0


@dataclass(frozen=True)
class Level:
    """The points and groups of one zoom: position in supercluster's unit square (``fx``,
    ``fy``: 0–1 from west and from north), how many points each stands for, and the row whose
    properties it shows."""

    fx: np.ndarray
    fy: np.ndarray
    count: np.ndarray
    row: np.ndarray

    @property
    def x(self) -> np.ndarray:
        """Eastings in EPSG:3857 metres."""
        return (self.fx - 0.5) * WORLD

    @property
    def y(self) -> np.ndarray:
        """Northings in EPSG:3857 metres."""
        return (0.5 - self.fy) * WORLD

    def within(self, west: float, south: float, east: float, north: float) -> np.ndarray:
        """Positions of the items inside a box (EPSG:3857 metres)."""
        x, y = self.x, self.y
        return np.flatnonzero((x >= west) & (x <= east) & (y >= south) & (y <= north))


def group(level: Level, z: int, priority: np.ndarray) -> Level:
    """One zoom's items from the next zoom's (supercluster's ``_cluster``): neighbours are
    found, as its index finds them, among positions kept as 32-bit floats."""
    n = len(level.fx)
    if n < 2:
        return level
    r = RADIUS / (EXTENT * 2.0**z)
    tx = level.fx.astype("float32").astype("float64")
    ty = level.fy.astype("float32").astype("float64")
    pairs = cKDTree(np.column_stack([tx, ty])).query_pairs(r + 1e-6, output_type="ndarray")
    if not len(pairs):
        return level
    a = np.concatenate([pairs[:, 0], pairs[:, 1]])
    b = np.concatenate([pairs[:, 1], pairs[:, 0]])
    # Within ``r`` of the item's own position, as supercluster measures it.
    dx = level.fx[a] - tx[b]
    dy = level.fy[a] - ty[b]
    near_enough = dx * dx + dy * dy <= r * r
    a, b = a[near_enough], b[near_enough]
    order = np.argsort(a, kind="stable")
    a, b = a[order], b[order]
    start = np.searchsorted(a, np.arange(n + 1))
    taken = np.zeros(n, dtype=bool)
    leader = np.arange(n)
    # Items near no other stay themselves; the rest are taken in order, each gathering its
    # neighbours not yet taken (near is not quite symmetric: an item another finds may find
    # none itself, and is then taken alone at its turn).
    for i in np.unique(pairs).tolist():
        if taken[i]:
            continue
        taken[i] = True
        near = b[start[i] : start[i + 1]]
        near = near[~taken[near]]
        taken[near] = True
        leader[near] = i
    leaders, inverse = np.unique(leader, return_inverse=True)  # in the order they were made
    weight = level.count.astype("float64")
    count = np.bincount(inverse, weights=weight)
    fx = np.bincount(inverse, weights=level.fx * weight) / count
    fy = np.bincount(inverse, weights=level.fy * weight) / count
    # The item each group shows: the highest priority, the first in order among equals.
    best = np.lexsort((np.arange(n), -priority[level.row], inverse))
    first = best[np.r_[True, inverse[best][1:] != inverse[best][:-1]]]
    return Level(fx, fy, count.astype("int64"), level.row[first])


class GroupIndex:
    """Every zoom's points and groups of some rows' points (EPSG:3857 metres)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, rows: np.ndarray, priority: np.ndarray):
        # supercluster's unit square, in 32-bit floats as it keeps the points.
        fx = (x / WORLD + 0.5).astype("float32").astype("float64")
        fy = np.clip(0.5 - y / WORLD, 0.0, 1.0).astype("float32").astype("float64")
        level = Level(fx, fy, np.ones(len(x), dtype="int64"), rows)
        self.levels: dict[int, Level] = {TOP_ZOOM + 1: level}
        for z in range(TOP_ZOOM, -1, -1):
            level = group(level, z, priority)
            self.levels[z] = level

    def level(self, z: int) -> Level:
        """The items drawn at zoom ``z``."""
        return self.levels[min(z, TOP_ZOOM + 1)]


def detail_zoom(x: np.ndarray, y: np.ndarray) -> int:
    """The first zoom at which no tile holds more than ``MAX_TILE_POINTS`` points."""
    if not len(x):
        return 0
    for z in range(MAX_DETAIL_ZOOM + 1):
        size = WORLD / 2**z
        tx = np.clip(((x + WORLD / 2) // size).astype("int64"), 0, 2**z - 1)
        ty = np.clip(((WORLD / 2 - y) // size).astype("int64"), 0, 2**z - 1)
        if np.unique(tx * 2**z + ty, return_counts=True)[1].max() <= MAX_TILE_POINTS:
            return z
    return MAX_DETAIL_ZOOM + 1


class PointGroups:
    """A layer view's points, grouped per zoom for each filter asked for (kept a while)."""

    def __init__(self, mercator: np.ndarray, priority: np.ndarray | None = None) -> None:
        self.is_point = shapely.get_type_id(mercator) == 0
        coords = shapely.get_coordinates(mercator[self.is_point])
        self.x = np.zeros(len(mercator))
        self.y = np.zeros(len(mercator))
        self.x[self.is_point], self.y[self.is_point] = coords[:, 0], coords[:, 1]
        self.priority = (
            np.zeros(len(mercator))
            if priority is None
            else np.nan_to_num(priority.astype("float64"), nan=-np.inf)
        )
        self.detail_zoom = detail_zoom(coords[:, 0], coords[:, 1])
        self._indexes: OrderedDict[Hashable, GroupIndex] = OrderedDict()
        self._lock = threading.Lock()

    def grouped(self, z: int) -> bool:
        """Whether tiles at zoom ``z`` show groups rather than every point."""
        return z < self.detail_zoom and bool(self.is_point.any())

    def index(self, key: Hashable, rows: np.ndarray) -> GroupIndex:
        """The grouping of the point rows among ``rows`` (layer order), made once per key."""
        with self._lock:
            found = self._indexes.get(key)
            if found is not None:
                self._indexes.move_to_end(key)
                return found
        points = rows[self.is_point[rows]]
        made = GroupIndex(self.x[points], self.y[points], points, self.priority)
        with self._lock:
            self._indexes[key] = made
            while len(self._indexes) > KEPT:
                self._indexes.popitem(last=False)
        return made
