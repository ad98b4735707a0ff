"""``risk_hex``: communities and incidents aggregated to H3 cells, safe to show to anyone.

This is what anonymous users will see of restricted data, so it must be right: per cell and
resolution, the counts of communities and incidents and the mean and maximum community score;
a count below ``min_count`` is suppressed (with the statistics that would reveal it), and a cell
with nothing left to show is dropped. Each point is indexed once at the finest resolution;
coarser cells are its parents.
"""

from __future__ import annotations

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import shapely

from geo_service.risk.params import HexParams


def _cells(points: gpd.GeoSeries, resolutions: tuple[int, ...]) -> dict[int, np.ndarray]:
    """H3 cell ids of every point at every resolution (None for a missing point)."""
    finest = max(resolutions)
    lon, lat = shapely.get_x(points.to_numpy()), shapely.get_y(points.to_numpy())
    fine = np.array(
        [
            h3.latlng_to_cell(y, x, finest) if x == x else None
            for x, y in zip(lon, lat, strict=True)
        ],
        dtype=object,
    )
    out = {finest: fine}
    uniques = pd.unique(fine[pd.notna(fine)])
    for res in resolutions:
        if res == finest:
            continue
        parent = {c: h3.cell_to_parent(c, res) for c in uniques}
        out[res] = np.array([parent.get(c) for c in fine], dtype=object)
    return out


def risk_hex(
    community_risk: gpd.GeoDataFrame, incidents: gpd.GeoDataFrame | None, params: HexParams
) -> gpd.GeoDataFrame:
    """Counts and scores per H3 cell, with small counts suppressed."""
    k = params.min_count
    comm = _cells(community_risk.geometry, params.resolutions)
    inc = (
        _cells(incidents.geometry, params.resolutions)
        if incidents is not None and len(incidents)
        else {}
    )
    frames = []
    for res in params.resolutions:
        c = pd.DataFrame({"h3": comm[res], "score": community_risk["score"].to_numpy()})
        c = (
            c.dropna(subset=["h3"])
            .groupby("h3")
            .agg(
                communities=("score", "size"),
                scored=("score", "count"),
                mean_score=("score", "mean"),
                max_score=("score", "max"),
            )
        )
        if res in inc:
            i = pd.Series(inc[res]).dropna().value_counts().rename("incidents")
        else:
            i = pd.Series(dtype="int64", name="incidents")
        cells = c.join(i, how="outer")
        cells["communities"] = cells["communities"].fillna(0).astype("int64")
        cells["incidents"] = cells["incidents"].fillna(0).astype("int64")
        few_comm = cells["communities"] < k
        few_scored = cells["scored"].fillna(0) < k
        cells.loc[few_comm, "communities"] = pd.NA
        cells.loc[few_comm | few_scored, ["mean_score", "max_score"]] = np.nan
        cells.loc[cells["incidents"] < k, "incidents"] = pd.NA
        cells = cells[cells["communities"].notna() | cells["incidents"].notna()]
        cells = cells.drop(columns="scored").reset_index(names="h3")
        cells["resolution"] = res
        frames.append(cells)
    table = pd.concat(frames, ignore_index=True)
    table["communities"] = table["communities"].astype("Int64")
    table["incidents"] = table["incidents"].astype("Int64")
    table["mean_score"] = table["mean_score"].round(2)
    table["max_score"] = table["max_score"].round(2)
    geoms = [
        shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(c)]) for c in table["h3"]
    ]
    columns = ["h3", "resolution", "communities", "incidents", "mean_score", "max_score"]
    return gpd.GeoDataFrame(table[columns], geometry=geoms, crs="EPSG:4326")
