"""``risk_hex``: communities and incidents aggregated to H3 cells, safe to show to anyone.

This is what anonymous users see of restricted data, so it must be right. Per cell and
resolution: the counts of communities and incidents, and the mean and highest community score.

* It is made from what the public may see of the layers (``publication.py``): the public
  views' rows by their own position, and restricted rows only as the cells of the layers'
  areas (``incident_areas``, ``community_risk_areas``). Those count
  at the generalisation's resolution and coarser ones, never at finer ones, where their cell
  would not say which of its children holds them. So this layer tells nothing the public views
  do not.
* A count below ``min_count`` is **suppressed**, with the statistics it would reveal, and the
  suppression cannot be undone by subtraction: within a shown cell, the children left hidden
  hold either nothing or at least ``min_count`` (the smallest shown children are hidden too
  until they do), and nothing below a hidden cell is shown. Without that, a parent's count
  minus its shown children's would give a hidden child's count exactly.
"""

from __future__ import annotations

from typing import Any, ClassVar

import geopandas as gpd
import h3
import numpy as np
import pandas as pd

from geo_service.publication import cell_polygons, cells_of, is_restricted
from geo_service.risk.base import FactorResult, Prepared, RiskInputs
from geo_service.risk.combine import scores
from geo_service.risk.params import HexParams, RiskParams

#: Scores are added up in hundredths, as whole numbers: the same sums in any order (a
#: published score has one decimal; a cell of restricted rows, two).
HUNDREDTHS = 100

#: The columns of the totals per cell, and how two tables of them add up.
TOTALS = {
    "communities": "sum",
    "scored": "sum",
    "score_sum": "sum",
    "max_score": "max",
    "incidents": "sum",
}

Totals = dict[int, pd.DataFrame]


def _point_cells(geoms: np.ndarray, resolutions: list[int]) -> dict[int, np.ndarray]:
    """Cell ids of every point at every resolution: indexed once, coarser ones by parent."""
    if not len(geoms):
        return {r: np.array([], dtype=object) for r in resolutions}
    finest = max(resolutions)
    fine = cells_of(gpd.GeoSeries(geoms), finest)
    out = {finest: fine}
    unique, inverse = np.unique(fine.astype(str), return_inverse=True)
    for r in resolutions:
        if r != finest:
            out[r] = np.array([h3.cell_to_parent(c, r) for c in unique], dtype=object)[inverse]
    return out


def _cell_parents(cells: pd.DataFrame, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Generalised cells that count at resolution ``r`` (theirs or coarser) and their cell."""
    if not len(cells):
        return np.zeros(0, dtype=bool), np.array([], dtype=object)
    own = cells["resolution"].to_numpy(dtype="int64")
    counts = own >= r
    parents = np.array(
        [
            h3.cell_to_parent(c, r) if ok else None
            for c, ok in zip(cells["h3"], counts, strict=True)
        ],
        dtype=object,
    )
    return counts, parents


def _table(h3_ids: np.ndarray, **columns: Any) -> pd.DataFrame:
    """Rows of totals (a column not given: 0; ``max_score``: NaN), one per ``h3_ids``."""
    n = len(h3_ids)
    out = pd.DataFrame({"h3": np.asarray(h3_ids, dtype=object)})
    for name in TOTALS:
        default = np.full(n, np.nan) if name == "max_score" else np.zeros(n, dtype=np.int64)
        value = columns.get(name, default)
        out[name] = np.broadcast_to(value, (n,)) if np.ndim(value) == 0 else value
    return out


def add_up(parts: list[Totals]) -> Totals:
    """Totals of several sets of rows, per resolution and cell (sums and highest)."""
    out = {}
    for r in parts[0]:
        table = pd.concat([p[r] for p in parts])
        out[r] = table.groupby(level="h3", sort=True).agg(TOTALS)
    return out


def point_totals(geoms: np.ndarray, scores: np.ndarray | None, resolutions: list[int]) -> Totals:
    """Per resolution and cell: the points (EPSG:4326) as communities (``scores`` given: one
    score each, NaN for none) or as incidents (None)."""
    at = _point_cells(geoms, resolutions)
    out = {}
    for r in resolutions:
        if scores is None:
            table = _table(at[r], incidents=1)
        else:
            s = np.asarray(scores, dtype="float64")
            table = _table(
                at[r],
                communities=1,
                scored=(~np.isnan(s)).astype(np.int64),
                score_sum=np.round(np.nan_to_num(s) * HUNDREDTHS).astype(np.int64),
                max_score=s,
            )
        out[r] = table.groupby("h3", sort=True).agg(TOTALS)
    return out


def cell_totals(
    community_cells: pd.DataFrame, incident_cells: pd.DataFrame, resolutions: list[int]
) -> Totals:
    """Per resolution and cell: the cells of restricted rows (``Publication.areas``), each
    at its own resolution and coarser ones; a cell of communities counts as ``count`` rows of
    its published mean score."""
    out = {}
    for r in resolutions:
        parts = [_table(np.array([], dtype=object))]
        ok, parent = _cell_parents(community_cells, r)
        if ok.any():
            n = community_cells["count"].to_numpy(dtype="int64")[ok]
            mean = community_cells["mean_score"].to_numpy(dtype="float64")[ok]
            parts.append(
                _table(
                    parent[ok],
                    communities=n,
                    scored=np.where(np.isnan(mean), 0, n),
                    score_sum=np.round(np.nan_to_num(mean) * HUNDREDTHS).astype(np.int64) * n,
                    max_score=community_cells["max_score"].to_numpy(dtype="float64")[ok],
                )
            )
        ok, parent = _cell_parents(incident_cells, r)
        if ok.any():
            n = incident_cells["count"].to_numpy(dtype="int64")[ok]
            parts.append(_table(parent[ok], incidents=n))
        out[r] = pd.concat(parts, ignore_index=True).groupby("h3", sort=True).agg(TOTALS)
    return out


def parents_of(cells: pd.Index, resolution: int) -> pd.Series:
    """Each cell's parent at a coarser resolution (index: the cell)."""
    return pd.Series([h3.cell_to_parent(c, resolution) for c in cells], index=cells, dtype=object)


def suppress(
    counts: dict[int, pd.Series], k: int, parents: dict[int, pd.Series] | None = None
) -> dict[int, pd.Series]:
    """Which counts may be shown, per resolution (index: cell), so none below ``k`` can be
    worked out from the others.

    Coarse to fine: a cell is shown when it holds at least ``k`` and its parent is shown; and
    in a shown parent whose hidden children hold between 1 and ``k`` − 1 in all, its smallest
    shown children are hidden as well until they hold ``k`` or more.
    """
    levels = sorted(counts)
    shown = {levels[0]: counts[levels[0]] >= k}
    for coarse, fine in zip(levels, levels[1:], strict=False):
        c = counts[fine]
        parent = (
            parents[fine].reindex(c.index)
            if parents is not None and fine in parents
            else parents_of(c.index, coarse)
        )
        up = shown[coarse].reindex(parent.to_numpy()).fillna(False).to_numpy(dtype=bool)
        ok = pd.Series((c >= k).to_numpy() & up, index=c.index)
        visible = c.where(ok, 0).groupby(parent.to_numpy()).sum()
        whole = counts[coarse]
        rest = whole - visible.reindex(whole.index, fill_value=0)
        short = rest[(rest > 0) & (rest < k) & shown[coarse]]
        if len(short):
            candidate = ok & parent.isin(short.index)
            cand = pd.DataFrame({"n": c[candidate], "parent": parent[candidate]})
            cand = cand.sort_values(["parent", "n"], kind="stable")
            before = cand.groupby("parent")["n"].cumsum() - cand["n"]
            hide = short.reindex(cand["parent"]).to_numpy() + before.to_numpy() < k
            ok[cand.index[hide]] = False
        shown[fine] = ok
    return shown


def _cells(areas: gpd.GeoDataFrame | None) -> pd.DataFrame:
    """The cells of an areas layer as a table (none: an empty one)."""
    if areas is None or not len(areas):
        return pd.DataFrame(columns=["h3", "resolution", "count", "mean_score", "max_score"])
    return pd.DataFrame(areas.drop(columns=areas.geometry.name))


def _points(frame: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame:
    """The public rows at their own position (none: an empty layer)."""
    if frame is None or not len(frame):
        return gpd.GeoDataFrame({"score": []}, geometry=[], crs="EPSG:4326")
    return frame


def risk_hex(
    community_risk: gpd.GeoDataFrame,
    community_areas: gpd.GeoDataFrame | None,
    incidents: gpd.GeoDataFrame | None,
    incident_areas: gpd.GeoDataFrame | None,
    params: HexParams,
    community_totals: Totals | None = None,
) -> gpd.GeoDataFrame:
    """Counts and scores per H3 cell of the public views (``community_risk``,
    ``incidents``) and of the cells of their restricted rows (``*_areas``), small counts
    suppressed. ``community_totals`` is ``point_totals`` of the public communities, if the
    partitions of the communities have added them up already (``HexTotals``)."""
    resolutions = sorted(params.resolutions)
    if community_totals is None:
        communities = _points(community_risk)
        community_totals = point_totals(
            communities.geometry.to_numpy(), communities["score"].to_numpy(), resolutions
        )
    points = _points(incidents)
    totals = add_up(
        [
            community_totals,
            point_totals(points.geometry.to_numpy(), None, resolutions),
            cell_totals(_cells(community_areas), _cells(incident_areas), resolutions),
        ]
    )
    return hex_layer(totals, params)


def hex_layer(totals: Totals, params: HexParams) -> gpd.GeoDataFrame:
    """The ``risk_hex`` layer from the totals per resolution and cell, small counts
    suppressed."""
    k = params.min_count
    resolutions = sorted(params.resolutions)
    parents = {
        fine: parents_of(totals[fine].index, coarse)
        for coarse, fine in zip(resolutions, resolutions[1:], strict=False)
    }
    show = {
        column: suppress({r: totals[r][column] for r in resolutions}, k, parents)
        for column in ("communities", "scored", "incidents")
    }
    frames = []
    for r in resolutions:
        cells = totals[r].copy()
        few_scored = ~(show["scored"][r] & show["communities"][r])
        cells["communities"] = cells["communities"].where(show["communities"][r])
        cells["incidents"] = cells["incidents"].where(show["incidents"][r])
        cells["mean_score"] = _mean(cells["score_sum"], cells["scored"]).where(~few_scored)
        cells["max_score"] = cells["max_score"].where(~few_scored)
        cells = cells[cells["communities"].notna() | cells["incidents"].notna()]
        cells = cells.reset_index(names="h3")
        cells["resolution"] = r
        frames.append(cells)
    table = pd.concat(frames, ignore_index=True)
    for column in ("communities", "incidents"):
        table[column] = table[column].astype("Int64")
    table["mean_score"] = table["mean_score"].astype("float64").round(2)
    table["max_score"] = table["max_score"].astype("float64").round(2)
    columns = ["h3", "resolution", "communities", "incidents", "mean_score", "max_score"]
    return gpd.GeoDataFrame(table[columns], geometry=cell_polygons(table["h3"]), crs="EPSG:4326")


def _mean(total: pd.Series, n: pd.Series) -> pd.Series:
    """``total`` hundredths over ``n``, to the nearest hundredth (halves to even, as
    ``numpy.round``), as a score; NaN where ``n`` is 0. Whole numbers throughout: the same
    wherever the sums were made."""
    t, k = total.to_numpy(dtype=np.int64), n.to_numpy(dtype=np.int64)
    k1 = np.maximum(k, 1)
    q, r = np.divmod(t, k1)
    q = q + ((2 * r > k1) | ((2 * r == k1) & (q % 2 == 1)))
    return pd.Series(np.where(k > 0, q / HUNDREDTHS, np.nan), index=total.index)


class HexTotals:
    """``point_totals`` of the public communities, a partition at a time, from the scores of
    its factors; the cells of restricted rows are counted once, in the build (``cell_totals``:
    a cell's mean score is of all its rows)."""

    name: ClassVar[str] = "risk_hex"
    per: ClassVar[str] = "table"

    def __init__(self, hidden: bool = False) -> None:
        #: Whether rows marked restricted are hidden from the public (a ``Publication``
        #: that holds the communities' restricted rows).
        self.hidden = hidden

    def prepare(self, inputs: RiskInputs, params: RiskParams) -> Prepared:
        """The parameters, shared; nothing selected."""
        return Prepared((params, self.hidden), lambda box: None)

    def evaluate(
        self,
        shared: tuple[RiskParams, bool],
        selected: None,
        inputs: RiskInputs,
        results: list[FactorResult],
    ) -> Totals:
        """The totals of this partition's public communities."""
        params, hidden = shared
        communities = inputs.communities
        score = scores(results, params, len(communities))
        public = ~is_restricted(communities) if hidden else np.ones(len(communities), bool)
        geoms = communities.geometry.to_numpy()[public]
        return point_totals(geoms, score[public], sorted(params.hex.resolutions))

    def add_up(self, parts: list[Totals], rows: list[np.ndarray]) -> Totals:
        """The partitions' totals, added up."""
        return add_up(parts)
