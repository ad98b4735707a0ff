"""A river network from Natural Earth centrelines: which way the water flows, what lies downstream.

Tailings released into a river travel far beyond the empirical run-out (the 2021 Catoca spill
went hundreds of kilometres down the Tshikapa and the Kasai), so the tailings factor needs, for
a dam, the stretch of river below it and, for a community, how far along that stretch it sits.

Network. The centrelines (rivers and the ``Lake Centerline`` features that carry a river through
a lake or reservoir) are split into single lines, and noded where they meet: at shared end
points, where one line's end lies on or near another line (Natural Earth leaves gaps of up to
about 3 km at confluences — the Alima stops 3 km short of the Congo — so an end within
``join_m``, 4 km by default, of another line is joined to the nearest point of the nearest line
only), and where two lines cross (tributaries that overshoot the main stem). In the bundled files
no river end that is not a confluence lies within 20 km of another river, so the joins create
no false confluences there.

Flow direction. Natural Earth usually digitises rivers downstream, but not always (the two
Tocantins pieces below the Araguaia confluence run upstream, and one piece of the Tocantins above
it runs upstream too), so a line's own direction cannot be trusted. Per connected component,
every end node of degree one is a candidate outlet; with a candidate as outlet every line flows
from its end farther from the outlet (along the network) to its nearer end, and the candidate is
scored by the length of lines whose digitised direction agrees with that. The best-scoring
candidate is the outlet, and every line is oriented towards it. A single reversed line cannot
outvote the rest of its basin, because reversing the outlet reverses nearly everything else.

Downstream path. A point is snapped to the nearest line within ``snap_m``; from there the path
follows the line to its downstream node and then, at every node, the line on the shortest way
to the outlet (so it passes onto the river a tributary flows into), until ``reach_m`` or the
outlet. Distances are geodesic metres along the vertices (lines are densified to about 2 km, so
positions between vertices are exact to a few metres); distances of points from the river come
from ``metric.pairs_within``.

Limits. One outlet per component: a delta's other distributaries, and an inland delta's spill
channels, are treated as flowing towards the chosen outlet. Braided channels are both kept but
the path follows only the shortest one (the corridor around it usually covers the other). The
1:10m scale leaves out small rivers — the Tshikapa itself, and most streams below Brazilian
tailings dams — so a dam more than ``snap_m`` from a mapped river has no river pathway, and a
spill down an unmapped stream reaches the mapped network only if the dam is close to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Geod
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, dijkstra

from geo_service.risk.metric import nearest, pairs_within

GEOD = Geod(ellps="WGS84")

#: A line end this close to another line is joined to it (gaps at confluences reach ~3 km).
JOIN_M = 4000.0
#: Longest segment after densifying, in degrees (about 2 km): positions between two vertices are
#: interpolated, so short segments keep along-river distances exact.
DENSIFY_DEG = 0.02
#: Positions on a line closer than this (in degrees, ~1 cm) are the same cut.
_EPS_DEG = 1e-7


@dataclass(frozen=True)
class Reaches:
    """Downstream reaches of several sources, as pieces of lines (parallel arrays).

    Along piece ``i``, a position ``x`` metres from the start of line ``edge[i]`` (downstream
    order) lies ``base_m[i] + x - lo_m[i]`` metres down the river from source ``source[i]``.
    """

    source: np.ndarray
    edge: np.ndarray
    lo_m: np.ndarray
    hi_m: np.ndarray
    base_m: np.ndarray

    def __len__(self) -> int:
        return len(self.source)


@dataclass(frozen=True)
class RiverPairs:
    """Source–point pairs: the point lies within a corridor of the source's downstream reach."""

    source: np.ndarray
    point: np.ndarray
    #: Metres down the river from the source to the point's nearest place on the river.
    along_m: np.ndarray
    #: Metres from the point to the river there.
    offset_m: np.ndarray

    def __len__(self) -> int:
        return len(self.source)


@dataclass(frozen=True)
class DownstreamPath:
    """The river below one point, with the along-river distance of every vertex."""

    network: RiverNetwork
    reaches: Reaches
    #: The path from the snapped point downstream, EPSG:4326.
    geometry: shapely.LineString
    #: Along-river metres of each vertex of ``geometry`` from the point (snap leg included).
    measure_m: np.ndarray
    snap_m: float
    #: Names of the rivers followed, in order (unnamed lines left out).
    names: tuple[str, ...]

    @property
    def length_m(self) -> float:
        """Along-river length from the point to the end of the path."""
        return float(self.measure_m[-1]) if len(self.measure_m) else 0.0

    def along(self, points: gpd.GeoSeries | np.ndarray, corridor_m: float) -> np.ndarray:
        """Per point, its along-river distance (metres) if within ``corridor_m`` of the path."""
        pts = np.asarray(points, dtype=object)
        out = np.full(len(pts), np.nan)
        pairs = self.network.along(self.reaches, pts, corridor_m)
        out[pairs.point] = pairs.along_m
        return out


@dataclass(frozen=True)
class RiverNetwork:
    """Lines oriented downstream between nodes, and the next line below every node."""

    node_xy: np.ndarray
    #: Upstream and downstream node of every line.
    edge_up: np.ndarray
    edge_down: np.ndarray
    edge_length_m: np.ndarray
    #: The line was digitised against the flow (its direction was derived, not taken).
    edge_reversed: np.ndarray
    edge_name: np.ndarray
    #: Vertices of all lines, downstream order, line after line; ``edge_start[e]`` is line e's first.
    edge_start: np.ndarray
    vertex_xy: np.ndarray
    #: Metres from the start of its line to every vertex.
    vertex_m: np.ndarray
    #: Line leaving each node on the shortest way to the outlet (-1 at an outlet).
    node_next: np.ndarray
    #: What was done to the centrelines: counts, joins, reversed lengths.
    summary: dict[str, Any] = field(default_factory=dict)

    # --- construction ---------------------------------------------------------------------------

    @classmethod
    def from_frame(
        cls, rivers: gpd.GeoDataFrame, join_m: float = JOIN_M, densify_deg: float = DENSIFY_DEG
    ) -> RiverNetwork:
        """Node, orient and densify river centrelines (any CRS; LineStrings or multi)."""
        if rivers.crs is not None and not rivers.crs.equals("EPSG:4326"):
            rivers = rivers.to_crs("EPSG:4326")
        parts, index = shapely.get_parts(rivers.geometry.to_numpy(), return_index=True)
        ok = (shapely.get_type_id(parts) == 1) & (shapely.length(parts) > 0)
        parts = shapely.remove_repeated_points(parts[ok])
        index = index[ok]
        names = _names(rivers)[index]
        edges = _node(parts, join_m)
        return _orient(edges, names, densify_deg)

    # --- segments (two vertices each) -------------------------------------------------------------

    @cached_property
    def _seg(self) -> np.ndarray:
        """Index of the first vertex of every segment."""
        last = np.zeros(len(self.vertex_xy), dtype=bool)
        last[self.edge_start[1:] - 1] = True
        return np.flatnonzero(~last)

    @cached_property
    def seg_edge(self) -> np.ndarray:
        """Line of every segment."""
        counts = np.diff(self.edge_start) - 1
        return np.repeat(np.arange(len(self.edge_up)), counts)

    @cached_property
    def seg_geometry(self) -> np.ndarray:
        """Every segment as a two-point LineString in EPSG:4326."""
        k = self._seg
        return shapely.linestrings(np.stack([self.vertex_xy[k], self.vertex_xy[k + 1]], axis=1))

    def _position(self, seg: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Metres from the start of the segment's line to the points' nearest place on it."""
        k = self._seg[seg]
        a, b = self.vertex_xy[k], self.vertex_xy[k + 1]
        p = shapely.get_coordinates(points)
        coslat = np.cos(np.radians((a[:, 1] + b[:, 1]) / 2.0))
        d = (b - a) * np.column_stack([coslat, np.ones_like(coslat)])
        q = (p - a) * np.column_stack([coslat, np.ones_like(coslat)])
        den = np.einsum("ij,ij->i", d, d)
        t = np.clip(np.einsum("ij,ij->i", q, d) / np.where(den > 0, den, 1.0), 0.0, 1.0)
        return self.vertex_m[k] + t * (self.vertex_m[k + 1] - self.vertex_m[k])

    # --- queries ----------------------------------------------------------------------------------

    def snap(
        self, points: gpd.GeoSeries | np.ndarray, max_metres: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per point: nearest line within ``max_metres`` (-1 if none), position on it, distance."""
        pts = np.asarray(points, dtype=object)
        seg, metres = nearest(pts, self.seg_geometry, max_metres)
        edge = np.full(len(pts), -1, dtype=np.int64)
        pos = np.full(len(pts), np.nan)
        hit = seg >= 0
        edge[hit] = self.seg_edge[seg[hit]]
        pos[hit] = self._position(seg[hit], pts[hit])
        return edge, pos, metres

    def reaches(
        self,
        edge: np.ndarray,
        position_m: np.ndarray,
        reach_m: float | np.ndarray,
        start_m: float | np.ndarray = 0.0,
    ) -> Reaches:
        """The river below each start (line, position), down to ``reach_m`` along the river.

        ``start_m`` is distance already travelled (e.g. from a dam to the river); sources with
        ``edge`` -1 have no reach. One short walk per source over lines, not vertices.
        """
        n = len(edge)
        reach = np.broadcast_to(np.asarray(reach_m, dtype="float64"), (n,))
        start = np.broadcast_to(np.asarray(start_m, dtype="float64"), (n,))
        out: tuple[list[int], list[int], list[float], list[float], list[float]] = (
            [],
            [],
            [],
            [],
            [],
        )
        length, down, nxt = self.edge_length_m, self.edge_down, self.node_next
        for i in np.flatnonzero(np.asarray(edge) >= 0):
            e, lo, base, limit = int(edge[i]), float(position_m[i]), float(start[i]), reach[i]
            for _ in range(len(length)):
                if base > limit:
                    break
                hi = min(float(length[e]), lo + (limit - base))
                for col, v in zip(out, (i, e, lo, hi, base), strict=True):
                    col.append(v)
                base += hi - lo
                e = int(nxt[down[e]])
                if e < 0 or base >= limit:
                    break
                lo = 0.0
        return Reaches(
            np.asarray(out[0], dtype=np.int64),
            np.asarray(out[1], dtype=np.int64),
            np.asarray(out[2], dtype="float64"),
            np.asarray(out[3], dtype="float64"),
            np.asarray(out[4], dtype="float64"),
        )

    def along(
        self, reaches: Reaches, points: gpd.GeoSeries | np.ndarray, corridor_m: float
    ) -> RiverPairs:
        """Points within ``corridor_m`` of a reach, with their along-river distance from its source.

        One ``pairs_within`` against the segments of the lines the reaches use, then a join on
        the line: a point counts for a source if its nearest place on the line lies inside the
        source's piece. Where a point is near the reach at several places, the nearest along the
        river wins.
        """
        pts = np.asarray(points, dtype=object)
        empty = RiverPairs(*(np.empty(0, dtype=np.int64),) * 2, np.empty(0), np.empty(0))
        if len(reaches) == 0 or len(pts) == 0:
            return empty
        segs = np.flatnonzero(np.isin(self.seg_edge, np.unique(reaches.edge)))
        pairs = pairs_within(pts, self.seg_geometry[segs], corridor_m)
        if len(pairs) == 0:
            return empty
        seg = segs[pairs.target]
        edge = self.seg_edge[seg]
        pos = self._position(seg, pts[pairs.source])
        # Join pairs to the reach pieces on the same line.
        order = np.argsort(reaches.edge, kind="stable")
        r_edge = reaches.edge[order]
        first = np.searchsorted(r_edge, edge, side="left")
        count = np.searchsorted(r_edge, edge, side="right") - first
        rows = np.repeat(np.arange(len(edge)), count)
        piece = order[
            np.repeat(first, count) + np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        ]
        x = pos[rows]
        inside = (x >= reaches.lo_m[piece] - 1.0) & (x <= reaches.hi_m[piece] + 1.0)
        rows, piece, x = rows[inside], piece[inside], x[inside]
        along = reaches.base_m[piece] + np.maximum(x - reaches.lo_m[piece], 0.0)
        src, pt, off = reaches.source[piece], pairs.source[rows], pairs.metres[rows]
        if len(src) == 0:
            return empty
        key = np.lexsort((along, pt, src))
        src, pt, along, off = src[key], pt[key], along[key], off[key]
        keep = np.r_[True, (src[1:] != src[:-1]) | (pt[1:] != pt[:-1])]
        return RiverPairs(src[keep], pt[keep], along[keep], off[keep])

    def downstream(
        self, point: shapely.Point, reach_m: float, snap_m: float
    ) -> DownstreamPath | None:
        """The river below ``point`` (None if no line lies within ``snap_m``)."""
        edge, pos, metres = self.snap(np.array([point], dtype=object), snap_m)
        if edge[0] < 0:
            return None
        reaches = self.reaches(edge, pos, reach_m, metres)
        coords, measure, names = [], [], []
        for e, lo, hi, base in zip(
            reaches.edge, reaches.lo_m, reaches.hi_m, reaches.base_m, strict=True
        ):
            xy, m = self._cut(int(e), float(lo), float(hi))
            if coords:
                xy, m = xy[1:], m[1:]
            coords.append(xy)
            measure.append(base + m - lo)
            name = self.edge_name[e]
            if isinstance(name, str) and name and (not names or names[-1] != name):
                names.append(name)
        xy = np.concatenate(coords)
        if len(xy) < 2:
            xy = np.vstack([xy, xy])
            measure.append(measure[-1])
        return DownstreamPath(
            network=self,
            reaches=reaches,
            geometry=shapely.linestrings(xy),
            measure_m=np.concatenate(measure),
            snap_m=float(metres[0]),
            names=tuple(names),
        )

    def _cut(self, e: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
        """Vertices of line ``e`` between positions ``lo`` and ``hi`` (metres), ends interpolated."""
        s, t = self.edge_start[e], self.edge_start[e + 1]
        xy, m = self.vertex_xy[s:t], self.vertex_m[s:t]
        inner = (m > lo) & (m < hi)
        ends = np.column_stack([np.interp([lo, hi], m, xy[:, 0]), np.interp([lo, hi], m, xy[:, 1])])
        return (
            np.vstack([ends[:1], xy[inner], ends[1:]]),
            np.concatenate([[lo], m[inner], [hi]]),
        )

    def edges_frame(self) -> gpd.GeoDataFrame:
        """The oriented lines as a GeoDataFrame (for inspection and maps)."""
        geoms = [
            shapely.linestrings(self.vertex_xy[self.edge_start[e] : self.edge_start[e + 1]])
            for e in range(len(self.edge_up))
        ]
        return gpd.GeoDataFrame(
            {
                "name": self.edge_name,
                "length_km": self.edge_length_m / 1000.0,
                "reversed": self.edge_reversed,
                "up": self.edge_up,
                "down": self.edge_down,
            },
            geometry=geoms,
            crs="EPSG:4326",
        )


# --- construction helpers -------------------------------------------------------------------------


def _names(rivers: gpd.GeoDataFrame) -> np.ndarray:
    """A name per feature: ``name``, else ``name_en``, else None."""
    out = pd.Series([None] * len(rivers), index=rivers.index, dtype=object)
    for col in ("name_en", "name"):
        if col in rivers:
            out = rivers[col].where(rivers[col].notna() & (rivers[col] != ""), out)
    return out.to_numpy(dtype=object)


@dataclass(frozen=True)
class _Edges:
    """Noded lines in their digitised direction, between node ids."""

    part: np.ndarray
    coords: list[np.ndarray]
    u: np.ndarray
    v: np.ndarray
    node_xy: np.ndarray
    joins: int
    crossings: int


def _node(parts: np.ndarray, join_m: float) -> _Edges:
    """Split lines where they meet and give every meeting point one node id."""
    n = len(parts)
    length = shapely.length(parts)  # planar, in degrees: the unit of line_locate_point
    cut_part: list[np.ndarray] = [np.arange(n), np.arange(n)]
    cut_loc: list[np.ndarray] = [np.zeros(n), length]
    links: list[tuple[np.ndarray, np.ndarray]] = []  # pairs of cut-entry indices to merge

    def add_cuts(part: np.ndarray, loc: np.ndarray) -> np.ndarray:
        start = sum(len(c) for c in cut_part)
        cut_part.append(part)
        cut_loc.append(loc)
        return start + np.arange(len(part))

    # Line ends on or near another line: join to the nearest line(s) only.
    ends = np.concatenate([shapely.get_point(parts, 0), shapely.get_point(parts, -1)])
    end_part = np.r_[np.arange(n), np.arange(n)]
    end_entry = np.r_[np.arange(n), n + np.arange(n)]  # the entries of (part, 0) and (part, L)
    pairs = pairs_within(ends, parts, join_m)
    pairs = pairs.where(end_part[pairs.source] != pairs.target)
    joins = 0
    if len(pairs):
        best = np.full(len(ends), np.inf)
        np.minimum.at(best, pairs.source, pairs.metres)
        pairs = pairs.where(pairs.metres <= best[pairs.source] + 1.0)
        loc = shapely.line_locate_point(parts[pairs.target], ends[pairs.source])
        entries = add_cuts(pairs.target, loc)
        links.append((end_entry[pairs.source], entries))
        joins = int(np.count_nonzero(pairs.metres > 1.0))

    # Lines crossing each other (tributaries drawn a little past the main stem).
    tree = shapely.STRtree(parts)
    i, j = tree.query(parts, predicate="intersects")
    keep = i < j
    i, j = i[keep], j[keep]
    crossings = 0
    if len(i):
        pts, which = shapely.get_coordinates(
            shapely.intersection(parts[i], parts[j]), return_index=True
        )
        if len(pts):
            pi, pj = i[which], j[which]
            p = shapely.points(pts)
            a = add_cuts(pi, shapely.line_locate_point(parts[pi], p))
            b = add_cuts(pj, shapely.line_locate_point(parts[pj], p))
            links.append((a, b))
            crossings = len(pts)

    part_of = np.concatenate(cut_part)
    loc = np.clip(np.concatenate(cut_loc), 0.0, length[part_of])
    loc = np.where(loc < _EPS_DEG, 0.0, loc)
    loc = np.where(length[part_of] - loc < _EPS_DEG, length[part_of], loc)
    # Distinct cuts: entries sorted by (part, location), a new cut where either changes.
    order = np.lexsort((loc, part_of))
    new = np.r_[True, (np.diff(part_of[order]) != 0) | (np.diff(loc[order]) > _EPS_DEG)]
    cut_of_sorted = np.cumsum(new) - 1
    cut = np.empty(len(order), dtype=np.int64)
    cut[order] = cut_of_sorted
    cut_part_u = part_of[order][new]
    cut_loc_u = loc[order][new]
    n_cuts = len(cut_part_u)

    # Nodes: cuts merged through the links.
    if links:
        a = cut[np.concatenate([x for x, _ in links])]
        b = cut[np.concatenate([y for _, y in links])]
    else:
        a = b = np.empty(0, dtype=np.int64)
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n_cuts, n_cuts))
    _, node_of_cut = connected_components(graph, directed=False)
    cut_xy = shapely.get_coordinates(
        shapely.line_interpolate_point(parts[cut_part_u], cut_loc_u)
    )
    n_nodes = int(node_of_cut.max()) + 1 if n_cuts else 0
    counts = np.bincount(node_of_cut, minlength=n_nodes)
    node_xy = np.column_stack(
        [np.bincount(node_of_cut, cut_xy[:, k], minlength=n_nodes) / counts for k in (0, 1)]
    )

    # Lines between consecutive cuts of each part, ends moved onto their nodes.
    coords: list[np.ndarray] = []
    e_part, e_u, e_v = [], [], []
    for p in range(n):
        idx = np.flatnonzero(cut_part_u == p)  # cut ids of part p, sorted by location
        xy = shapely.get_coordinates(parts[p])
        cum = np.r_[0.0, np.cumsum(np.hypot(*np.diff(xy, axis=0).T))]
        for c0, c1 in zip(idx[:-1], idx[1:], strict=True):
            u, v = node_of_cut[c0], node_of_cut[c1]
            if u == v:
                continue
            lo, hi = cut_loc_u[c0], cut_loc_u[c1]
            inner = xy[(cum > lo) & (cum < hi)]
            coords.append(np.vstack([node_xy[u], inner, node_xy[v]]))
            e_part.append(p)
            e_u.append(u)
            e_v.append(v)
    return _Edges(
        part=np.asarray(e_part, dtype=np.int64),
        coords=coords,
        u=np.asarray(e_u, dtype=np.int64),
        v=np.asarray(e_v, dtype=np.int64),
        node_xy=node_xy,
        joins=joins,
        crossings=crossings,
    )


def _geodesic_steps(xy: np.ndarray) -> np.ndarray:
    """Geodesic metres between consecutive rows of ``xy`` (lon, lat)."""
    if len(xy) < 2:
        return np.empty(0)
    _, _, d = GEOD.inv(xy[:-1, 0], xy[:-1, 1], xy[1:, 0], xy[1:, 1])
    return np.asarray(d, dtype="float64")


def _orient(edges: _Edges, part_names: np.ndarray, densify_deg: float) -> RiverNetwork:
    """Choose each component's outlet, orient every line towards it, densify, measure."""
    n_nodes, n_edges = len(edges.node_xy), len(edges.u)
    lengths = np.array([_geodesic_steps(c).sum() for c in edges.coords], dtype="float64")
    u, v = edges.u, edges.v
    # Undirected graph, shortest of parallel lines.
    lo_n, hi_n = np.minimum(u, v), np.maximum(u, v)
    frame = pd.DataFrame({"a": lo_n, "b": hi_n, "w": lengths, "e": np.arange(n_edges)})
    shortest = frame.sort_values(["w", "e"]).drop_duplicates(["a", "b"])
    w = np.maximum(shortest["w"].to_numpy(), 1e-3)
    sa, sb = shortest["a"].to_numpy(), shortest["b"].to_numpy()
    graph = coo_matrix((w, (sa, sb)), shape=(n_nodes, n_nodes)).tocsr()
    n_comp, comp = connected_components(graph, directed=False)
    degree = np.bincount(u, minlength=n_nodes) + np.bincount(v, minlength=n_nodes)
    digitised_end = np.zeros(n_nodes, dtype=bool)
    digitised_end[v] = True

    dist = np.full(n_nodes, np.inf)
    outlets = []
    agreement = []
    edge_comp = comp[u] if n_edges else np.empty(0, dtype=np.int64)
    by_comp_nodes = pd.Series(np.arange(n_nodes)).groupby(comp).indices
    by_comp_edges = pd.Series(np.arange(n_edges)).groupby(edge_comp).indices
    for c in range(n_comp):
        nodes = by_comp_nodes[c]
        es = by_comp_edges.get(c)
        if es is None:
            continue
        cand = nodes[degree[nodes] == 1]
        if len(cand) == 0:  # a closed loop: any node may be the outlet
            cand = nodes
        # Digitised ends first, so that ties keep Natural Earth's own direction.
        cand = cand[np.argsort(~digitised_end[cand], kind="stable")]
        local = np.full(n_nodes, -1, dtype=np.int64)
        local[nodes] = np.arange(len(nodes))
        d = dijkstra(graph[nodes][:, nodes], directed=False, indices=local[cand])
        du, dv = d[:, local[u[es]]], d[:, local[v[es]]]
        score = ((dv < du) + 0.5 * (dv == du)) @ lengths[es]
        best = int(np.argmax(score))
        outlets.append(int(cand[best]))
        agreement.append(float(score[best] / max(lengths[es].sum(), 1e-9)))
        dist[nodes] = d[best]

    reversed_ = dist[v] > dist[u]
    up = np.where(reversed_, v, u)
    down = np.where(reversed_, u, v)

    # Next line below every node: towards its predecessor on the shortest way to the outlet.
    node_next = np.full(n_nodes, -1, dtype=np.int64)
    if outlets:
        _, pred, _ = dijkstra(
            graph, directed=False, indices=outlets, return_predecessors=True, min_only=True
        )
        has = pred >= 0
        x, y = np.flatnonzero(has), pred[has]
        key = np.minimum(x, y) * n_nodes + np.maximum(x, y)
        skey = sa * n_nodes + sb
        sorter = np.argsort(skey)
        node_next[x] = shortest["e"].to_numpy()[sorter][np.searchsorted(skey, key, sorter=sorter)]

    # Downstream-ordered, densified vertices with along-line metres.
    xy_list = []
    for e in range(n_edges):
        c = edges.coords[e][::-1] if reversed_[e] else edges.coords[e]
        xy_list.append(shapely.get_coordinates(shapely.segmentize(shapely.linestrings(c), densify_deg)))
    counts = np.array([len(c) for c in xy_list], dtype=np.int64)
    edge_start = np.r_[0, np.cumsum(counts)].astype(np.int64)
    vertex_xy = np.concatenate(xy_list) if xy_list else np.empty((0, 2))
    steps = _geodesic_steps(vertex_xy)
    cum = np.r_[0.0, np.cumsum(steps)]
    vertex_m = cum - np.repeat(cum[edge_start[:-1]], counts)
    edge_length = vertex_m[edge_start[1:] - 1] if n_edges else np.empty(0)

    names = part_names[edges.part] if n_edges else np.empty(0, dtype=object)
    summary = {
        "lines": int(n_edges),
        "nodes": int(n_nodes),
        "components": len(outlets),
        "joins_across_gaps": edges.joins,
        "crossings_noded": edges.crossings,
        "reversed_km": round(float(edge_length[reversed_].sum()) / 1000.0, 1),
        "total_km": round(float(edge_length.sum()) / 1000.0, 1),
        "min_agreement": round(min(agreement), 3) if agreement else None,
    }
    return RiverNetwork(
        node_xy=edges.node_xy,
        edge_up=up,
        edge_down=down,
        edge_length_m=edge_length,
        edge_reversed=reversed_,
        edge_name=names,
        edge_start=edge_start,
        vertex_xy=vertex_xy,
        vertex_m=vertex_m,
        node_next=node_next,
        summary=summary,
    )
