"""The communities in spatial partitions, for the factors that score them one by one.

A partition is the communities in one cell of ``PARTITION_DEG`` degrees, cut in four while it
holds more than ``PARTITION_MOST``: it depends on the communities' positions alone, never on
the number of workers. Each is evaluated with the
evidence within every factor's reach of its box (``Prepared.select``), in this process or as a
task of a cluster (``runner.py``); ``base.merge`` puts the rows back in order and adds up what
the partitions found per feature, in partition order: the same bytes whatever ran them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, cast

import geopandas as gpd
import numpy as np
import shapely

from geo_service.risk.base import (
    Box,
    FactorResult,
    Prepared,
    RiskFactor,
    RiskInputs,
    merge,
)
from geo_service.risk.boxes import only
from geo_service.risk.params import RiskParams
from geo_service.risk.runner import Runner, run_here

#: Side of a partition's cell (degrees): at the equator about 440 km, several times the
#: farthest reach of any factor (a district's incidents, 75 km), so the halo stays small.
PARTITION_DEG = 4.0
#: Communities above which a cell is cut in four (a task's memory grows with its pairs), and
#: the smallest cell so cut (about 55 km, below which the halo would be most of the work).
PARTITION_MOST = 100_000
MIN_PARTITION_DEG = 0.5


#: The columns of the communities the factors and steps read (and their geometry).
COMMUNITY_READS = ("country", "population", "sensitivity")


@dataclass(frozen=True)
class Partition:
    """Rows of the communities in one cell (ascending), and the box around them."""

    rows: np.ndarray
    box: Box | None


def partitions(
    points: np.ndarray, size_deg: float = PARTITION_DEG, most: int = PARTITION_MOST
) -> list[Partition]:
    """The communities (EPSG:4326 points) by cell, cells in order of (column, row); a cell
    holding more than ``most`` is cut in four (south-west, north-west, south-east, north-east),
    and so on, down to ``MIN_PARTITION_DEG``. Rows without a position make one partition
    first, with no box (no evidence reaches them)."""
    x, y = shapely.get_x(points), shapely.get_y(points)
    ok = np.isfinite(x) & np.isfinite(y)
    out = []
    if not ok.all():
        out.append(Partition(np.flatnonzero(~ok), None))
    rows = np.flatnonzero(ok)
    for cell in _cells(x[rows], y[rows], size_deg):
        out.extend(_split(rows[cell], x, y, size_deg, most))
    return out


def _cells(x: np.ndarray, y: np.ndarray, size: float) -> list[np.ndarray]:
    """Indices of the points in each cell of ``size`` degrees, cells by (column, row)."""
    if not len(x):
        return []
    col = np.floor(x / size).astype(np.int64)
    row = np.floor(y / size).astype(np.int64)
    key = (col - col.min()) * (int(row.max() - row.min()) + 1) + (row - row.min())
    order = np.argsort(key, kind="stable")
    k = key[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    return [np.sort(part) for part in np.split(order, starts[1:])]


def _split(
    rows: np.ndarray, x: np.ndarray, y: np.ndarray, size: float, most: int
) -> list[Partition]:
    """The communities ``rows`` of one cell of ``size``, cut in four while more than ``most``."""
    if len(rows) > most and size / 2 >= MIN_PARTITION_DEG:
        out = []
        for quarter in _cells(x[rows], y[rows], size / 2):
            out.extend(_split(rows[quarter], x, y, size / 2, most))
        return out
    box = (float(x[rows].min()), float(y[rows].min()), float(x[rows].max()), float(y[rows].max()))
    return [Partition(rows, box)]


class PartitionStep(Protocol):
    """Something besides the factors that a partition of the communities works out, from its
    communities, the evidence near them and the factors' results for them: per feature of a
    layer, what its communities add to it (``per = "feature"``: an array, one row per
    feature, added up over the partitions); per community (``per = "community"``: named
    arrays, one value per community, put back in community order); or a table the step
    itself adds up (``per = "table"``: ``add_up``, given the partitions' tables in partition
    order and the communities' rows of each).
    ``prepare`` once, ``evaluate`` per partition."""

    name: ClassVar[str]
    per: ClassVar[str]

    def prepare(self, inputs: RiskInputs, params: Any) -> Prepared:
        """What every partition shares, and how the features near one are chosen."""
        ...

    def evaluate(
        self, shared: Any, selected: Any, inputs: RiskInputs, results: list[FactorResult]
    ) -> Any:
        """This partition's part of every feature's sums, its communities' values, or its
        table."""
        ...


class TableStep(PartitionStep, Protocol):
    """A step whose partitions give tables (``per = "table"``): it adds them up itself."""

    def add_up(self, parts: list[Any], rows: list[np.ndarray]) -> Any:
        """The partitions' tables (in partition order; ``rows``: each one's communities) as
        one."""
        ...


@dataclass
class VectorWork:
    """What every partition reads: the factors and steps, their parameters and shared parts,
    the coverage."""

    factors: list[RiskFactor]
    params: list[Any]
    shared: list[Any]
    steps: list[PartitionStep]
    steps_shared: list[Any]
    coverage: dict[Any, Any]


@dataclass
class PartitionTask:
    """One partition: its communities and, per factor and step, the evidence near them."""

    communities: gpd.GeoDataFrame
    selected: list[Any]
    steps_selected: list[Any]


@dataclass
class Partitioned:
    """Every factor for every community; each feature step's totals, each community step's
    values and each table step's table, by the step's name; what the metadata records."""

    results: list[FactorResult]
    sums: dict[str, np.ndarray]
    values: dict[str, dict[str, np.ndarray]]
    tables: dict[str, Any]
    metadata: dict[str, Any]


def evaluate_partition(
    work: VectorWork, task: PartitionTask
) -> tuple[list[FactorResult], list[Any]]:
    """Every factor and step on one partition's communities."""
    inputs = RiskInputs(communities=task.communities, coverage=work.coverage)
    results = [
        factor.evaluate(shared, selected, inputs, params)
        for factor, params, shared, selected in zip(
            work.factors, work.params, work.shared, task.selected, strict=True
        )
    ]
    steps = [
        step.evaluate(shared, selected, inputs, results)
        for step, shared, selected in zip(
            work.steps, work.steps_shared, task.steps_selected, strict=True
        )
    ]
    return results, steps


class _Tasks:
    """The partitions' tasks, each made when asked for (a runner sends it and lets it go)."""

    def __init__(
        self,
        communities: gpd.GeoDataFrame,
        parts: list[Partition],
        prepared: list[Prepared],
        steps: list[Prepared],
    ) -> None:
        self.communities = only(communities, COMMUNITY_READS)
        self.parts, self.prepared, self.steps = parts, prepared, steps

    def __len__(self) -> int:
        return len(self.parts)

    def __getitem__(self, i: int) -> PartitionTask:
        part = self.parts[i]
        return PartitionTask(
            self.communities.iloc[part.rows].reset_index(drop=True),
            [p.select(part.box) for p in self.prepared],
            [p.select(part.box) for p in self.steps],
        )


def _size(task: PartitionTask) -> int:
    return len(task.communities)


def compute_partitioned(
    factors: list[RiskFactor],
    inputs: RiskInputs,
    params: RiskParams,
    runner: Runner | None = None,
    steps: Sequence[tuple[PartitionStep, Any]] = (),
) -> Partitioned:
    """Every factor for every community, and each of ``steps`` (a step and its parameters)
    over all communities, a partition at a time (``runner``: in this process by default); the
    same values, to the bit, whatever runs the partitions."""
    chosen = [params.factors[f.name] for f in factors]
    prepared = [f.prepare(inputs, p) for f, p in zip(factors, chosen, strict=True)]
    kinds = [step for step, _ in steps]
    steps_prepared = [step.prepare(inputs, p) for step, p in steps]
    parts = partitions(inputs.communities.geometry.to_numpy(), PARTITION_DEG)
    n = len(inputs.communities)
    if not parts:  # no communities: every factor and step on nothing, at once
        parts_all = [Partition(np.arange(0), None)]
        tasks: Sequence[PartitionTask] = [
            PartitionTask(
                inputs.communities,
                [p.select(None) for p in prepared],
                [p.select(None) for p in steps_prepared],
            )
        ]
    else:
        parts_all = parts
        tasks = _Tasks(inputs.communities, parts, prepared, steps_prepared)
    work = VectorWork(
        factors,
        chosen,
        [p.shared for p in prepared],
        kinds,
        [p.shared for p in steps_prepared],
        inputs.coverage,
    )
    done: list[tuple[list[FactorResult], list[Any]] | None] = [None] * len(parts_all)
    for i, result in (runner or run_here)(
        evaluate_partition, work, tasks, "community partitions", _size
    ):
        done[i] = result
    finished = [r for r in done if r is not None]
    if len(finished) != len(done):
        raise RuntimeError(f"{len(done) - len(finished)} partitions gave no result")
    rows = [p.rows for p in parts_all]
    results = []
    for j, (factor, p, pre) in enumerate(zip(factors, chosen, prepared, strict=True)):
        merged = merge([r[0][j] for r in finished], rows, n)
        results.append(factor.finish(pre.shared, merged, inputs, p))
    totals: dict[str, np.ndarray] = {}
    values: dict[str, dict[str, np.ndarray]] = {}
    order = np.argsort(np.concatenate(rows), kind="stable")
    tables: dict[str, Any] = {}
    for k, step in enumerate(kinds):
        if step.per == "community":
            first = finished[0][1][k]
            values[step.name] = {
                key: np.concatenate([r[1][k][key] for r in finished])[order] for key in first
            }
            continue
        if step.per == "table":
            table_step = cast(TableStep, step)
            tables[step.name] = table_step.add_up([r[1][k] for r in finished], rows)
            continue
        total = finished[0][1][k].copy()
        for r in finished[1:]:
            total += r[1][k]  # in partition order
        totals[step.name] = total
    sizes = [len(r) for r in rows]
    meta = {
        "cell_deg": PARTITION_DEG,
        "most": PARTITION_MOST,
        "partitions": len(parts),
        "largest": max(sizes),
    }
    return Partitioned(results, totals, values, tables, meta)
