"""The communities in spatial partitions, for the factors that score them one by one.

A partition is the communities in one cell of ``PARTITION_DEG`` degrees, so it depends on a
community's position alone, never on the number of workers. Each is evaluated with the
evidence within every factor's reach of its box (``Prepared.select``), in this process or as a
task of a cluster (``runner.py``); ``base.merge`` puts the rows back in order and adds up what
the partitions found per feature, in partition order: the same bytes whatever ran them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from geo_service.risk.base import (
    Box,
    FactorResult,
    Prepared,
    RiskFactor,
    RiskInputs,
    compute_all,
    merge,
)
from geo_service.risk.boxes import only
from geo_service.risk.params import RiskParams
from geo_service.risk.runner import Runner, run_here

#: Side of a partition's cell (degrees): at the equator about 440 km, several times the
#: farthest reach of any factor (a district's incidents, 75 km), so the halo stays small.
PARTITION_DEG = 4.0


#: The columns of the communities the factors read (and their geometry).
COMMUNITY_READS = ("country", "population")


@dataclass(frozen=True)
class Partition:
    """Rows of the communities in one cell (ascending), and the box around them."""

    rows: np.ndarray
    box: Box | None


def partitions(points: np.ndarray, size_deg: float = PARTITION_DEG) -> list[Partition]:
    """The communities (EPSG:4326 points) by cell, cells in order of (column, row); rows
    without a position make one partition first, with no box (no evidence reaches them)."""
    x, y = shapely.get_x(points), shapely.get_y(points)
    ok = np.isfinite(x) & np.isfinite(y)
    col = np.floor(np.where(ok, x, 0.0) / size_deg).astype(np.int64)
    row = np.floor(np.where(ok, y, 0.0) / size_deg).astype(np.int64)
    key = np.where(ok, (col + 100_000) * 200_000 + (row + 100_000), -1)
    order = np.argsort(key, kind="stable")
    k = key[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]]) if len(k) else np.empty(0, np.int64)
    out = []
    for rows in np.split(order, starts[1:]):
        if not len(rows):
            continue
        rows = np.sort(rows)
        box = None
        if ok[rows[0]]:
            box = (
                float(x[rows].min()),
                float(y[rows].min()),
                float(x[rows].max()),
                float(y[rows].max()),
            )
        out.append(Partition(rows, box))
    return out


@dataclass
class VectorWork:
    """What every partition reads: the factors, their parameters and shared parts, coverage."""

    factors: list[RiskFactor]
    params: list[Any]
    shared: list[Any]
    coverage: dict[Any, Any]


@dataclass
class PartitionTask:
    """One partition: its communities and, per factor, the evidence within reach of them."""

    communities: gpd.GeoDataFrame
    selected: list[Any]


def evaluate_partition(work: VectorWork, task: PartitionTask) -> list[FactorResult]:
    """Every factor on one partition's communities."""
    inputs = RiskInputs(communities=task.communities, coverage=work.coverage)
    return [
        factor.evaluate(shared, selected, inputs, params)
        for factor, params, shared, selected in zip(
            work.factors, work.params, work.shared, task.selected, strict=True
        )
    ]


class _Tasks:
    """The partitions' tasks, each made when asked for (a runner sends it and lets it go)."""

    def __init__(
        self, communities: gpd.GeoDataFrame, parts: list[Partition], prepared: list[Prepared]
    ) -> None:
        self.communities = only(communities, COMMUNITY_READS)
        self.parts, self.prepared = parts, prepared

    def __len__(self) -> int:
        return len(self.parts)

    def __getitem__(self, i: int) -> PartitionTask:
        part = self.parts[i]
        return PartitionTask(
            self.communities.iloc[part.rows].reset_index(drop=True),
            [p.select(part.box) for p in self.prepared],
        )


def _size(task: PartitionTask) -> int:
    return len(task.communities)


def compute_factors(
    factors: list[RiskFactor],
    inputs: RiskInputs,
    params: RiskParams,
    runner: Runner | None = None,
) -> tuple[list[FactorResult], dict[str, Any]]:
    """Every factor for every community, a partition at a time (``runner``: in this process by
    default); the same values, to the bit, whatever runs the partitions. Also what the build
    metadata records of the partitions."""
    chosen = [params.factors[f.name] for f in factors]
    if not len(inputs.communities):
        results = [compute_all(f, inputs, p) for f, p in zip(factors, chosen, strict=True)]
        return results, {"cell_deg": PARTITION_DEG, "partitions": 0}
    prepared = [f.prepare(inputs, p) for f, p in zip(factors, chosen, strict=True)]
    parts = partitions(inputs.communities.geometry.to_numpy(), PARTITION_DEG)
    work = VectorWork(factors, chosen, [p.shared for p in prepared], inputs.coverage)
    tasks = _Tasks(inputs.communities, parts, prepared)
    results: list[list[FactorResult] | None] = [None] * len(parts)
    for i, result in (runner or run_here)(
        evaluate_partition, work, tasks, "community partitions", _size
    ):
        results[i] = result
    n = len(inputs.communities)
    rows = [p.rows for p in parts]
    out = []
    for j, (factor, p, pre) in enumerate(zip(factors, chosen, prepared, strict=True)):
        merged = merge([r[j] for r in results if r is not None], rows, n)
        out.append(factor.finish(pre.shared, merged, inputs, p))
    sizes = [len(r) for r in rows]
    return out, {"cell_deg": PARTITION_DEG, "partitions": len(parts), "largest": max(sizes)}
