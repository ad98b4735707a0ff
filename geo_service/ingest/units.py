"""Checks of official units beyond their shapes: overlaps and gaps within one level.

Units of one level should tile their country. Boundaries drawn at 1:1M leave slivers, so only
overlaps between two units, and holes inside the outline of a level, larger than the source's
``tolerance_km2`` are reported: flagged and kept as published, naming both units.
Areas are measured on an equal-area projection (EPSG:6933).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from geo_service.ingest.problems import Problems

_EQUAL_AREA = Transformer.from_crs("EPSG:4326", "EPSG:6933", always_xy=True)


def equal_area(geoms: np.ndarray) -> np.ndarray:
    """Geometries on EPSG:6933, where areas are in m²."""

    def fn(xy: np.ndarray) -> np.ndarray:
        x, y = _EQUAL_AREA.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(np.asarray(geoms, dtype=object), fn)


def unit_problems(
    geoms: np.ndarray,
    codes: pd.Series,
    levels: pd.Series,
    alive: np.ndarray,
    tolerance_km2: float,
    problems: Problems,
) -> None:
    """Flag overlaps between the units of one level, and gaps inside a level's outline."""
    lv = levels.to_numpy(dtype="float64", na_value=np.nan)
    code = codes.to_numpy(dtype=object)
    limit = tolerance_km2 * 1e6
    for level in np.unique(lv[alive & np.isfinite(lv)]):
        idx = np.flatnonzero(alive & (lv == level) & ~shapely.is_missing(geoms))
        if idx.size == 0:
            continue
        shapes = equal_area(geoms[idx])
        tree = shapely.STRtree(shapes)
        a, b = tree.query(shapes, predicate="intersects")
        pair = a < b
        a, b = a[pair], b[pair]
        if a.size:
            area = shapely.area(shapely.intersection(shapes[a], shapes[b]))
            big = area > limit
            problems.add(
                idx[b[big]],
                "geometry",
                None,
                pd.Series(
                    [
                        f"overlaps unit {code[idx[i]]} of the same level by {m / 1e6:,.2f} km², "
                        f"more than the tolerance of {tolerance_km2:g} km²"
                        for i, m in zip(a[big], area[big], strict=True)
                    ]
                ),
                "flagged",
            )
        _gaps(shapes, idx, code, tree, limit, tolerance_km2, problems)


def _gaps(
    shapes: np.ndarray,
    idx: np.ndarray,
    code: np.ndarray,
    tree: shapely.STRtree,
    limit: float,
    tolerance_km2: float,
    problems: Problems,
) -> None:
    """Holes in the union of one level's units, each reported on the first unit around it."""
    outline = shapely.union_all(shapely.make_valid(shapes), grid_size=1.0)
    parts = shapely.get_parts(outline)
    holes = [
        shapely.Polygon(ring)
        for p in parts
        if shapely.get_type_id(p) == 3
        for ring in shapely.get_interior_ring(p, range(shapely.get_num_interior_rings(p)))
    ]
    holes = [h for h in holes if h.area > limit]
    if not holes:
        return
    hole_idx, unit = tree.query(
        shapely.buffer(np.asarray(holes, dtype=object), 10.0), predicate="intersects"
    )
    first = pd.Series(unit).groupby(hole_idx).min()
    rows, reasons = [], []
    for h, u in first.items():
        around = sorted({str(code[idx[j]]) for j in unit[hole_idx == h]})
        rows.append(idx[u])
        reasons.append(
            f"a gap of {holes[h].area / 1e6:,.2f} km² that no unit of this level covers, "
            f"between units {', '.join(around[:6])}{' …' if len(around) > 6 else ''}; more than "
            f"the tolerance of {tolerance_km2:g} km²"
        )
    problems.add(np.asarray(rows), "geometry", None, pd.Series(reasons), "flagged")
