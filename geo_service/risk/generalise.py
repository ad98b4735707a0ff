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

import geopandas as gpd
import h3
import numpy as np
import pandas as pd

from geo_service.publication import cell_polygons, cells_of
from geo_service.risk.params import HexParams


def _point_cells(points: gpd.GeoDataFrame, resolutions: list[int]) -> dict[int, np.ndarray]:
    """Cell ids of every point at every resolution: indexed once, coarser ones by parent."""
    if not len(points):
        return {r: np.array([], dtype=object) for r in resolutions}
    finest = max(resolutions)
    fine = cells_of(points.geometry, finest)
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


def _totals(
    communities: gpd.GeoDataFrame,
    community_cells: pd.DataFrame,
    incidents: gpd.GeoDataFrame,
    incident_cells: pd.DataFrame,
    resolutions: list[int],
) -> dict[int, pd.DataFrame]:
    """Per resolution and cell: communities, scored, score sum, highest score, incidents."""
    at_c = _point_cells(communities, resolutions)
    at_i = _point_cells(incidents, resolutions)
    scores = communities["score"].to_numpy(dtype="float64")
    out = {}
    for r in resolutions:
        parts = [
            pd.DataFrame(
                {
                    "h3": at_c[r],
                    "communities": 1,
                    "scored": ~np.isnan(scores),
                    "score_sum": np.nan_to_num(scores),
                    "max_score": scores,
                    "incidents": 0,
                }
            ),
            pd.DataFrame({"h3": at_i[r], "incidents": 1}),
        ]
        ok, parent = _cell_parents(community_cells, r)
        if ok.any():
            n = community_cells["count"].to_numpy(dtype="int64")[ok]
            mean = community_cells["mean_score"].to_numpy(dtype="float64")[ok]
            parts.append(
                pd.DataFrame(
                    {
                        "h3": parent[ok],
                        "communities": n,
                        "scored": np.where(np.isnan(mean), 0, n),
                        "score_sum": np.nan_to_num(mean) * n,
                        "max_score": community_cells["max_score"].to_numpy(dtype="float64")[ok],
                    }
                )
            )
        ok, parent = _cell_parents(incident_cells, r)
        if ok.any():
            n = incident_cells["count"].to_numpy(dtype="int64")[ok]
            parts.append(pd.DataFrame({"h3": parent[ok], "incidents": n}))
        table = pd.concat(parts, ignore_index=True)
        for column in ("communities", "scored", "incidents"):
            table[column] = table[column].fillna(0).astype("int64")
        table["score_sum"] = table["score_sum"].astype("float64").fillna(0.0)
        table["max_score"] = table["max_score"].astype("float64")
        out[r] = table.groupby("h3").agg(
            communities=("communities", "sum"),
            scored=("scored", "sum"),
            score_sum=("score_sum", "sum"),
            max_score=("max_score", "max"),
            incidents=("incidents", "sum"),
        )
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
) -> gpd.GeoDataFrame:
    """Counts and scores per H3 cell of the public views (``community_risk``,
    ``incidents``) and of the cells of their restricted rows (``*_areas``), small counts
    suppressed."""
    k = params.min_count
    resolutions = sorted(params.resolutions)
    communities, community_cells = _points(community_risk), _cells(community_areas)
    points, incident_cells = _points(incidents), _cells(incident_areas)
    totals = _totals(communities, community_cells, points, incident_cells, resolutions)
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
        cells["mean_score"] = (cells["score_sum"] / cells["scored"]).where(~few_scored)
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
