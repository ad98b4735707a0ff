"""What a risk factor is: a pydantic parameter model and a ``compute`` over the evidence.

Each factor returns, per community, its raw value, a value normalised to 0–1, and the ids of
the features behind it, so that every score can be explained and traced; values are NaN where
the factor has no evidence coverage ("no data" is not zero). Factors are registered by name in
``geo_service.risk.FACTORS``; ``combine.py`` and the layers never need to know more.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import shapely
from pydantic import BaseModel, ConfigDict

from geo_service.schemas import Kind


class FactorParams(BaseModel):
    """Base of every factor's parameters: unknown keys in ``risk.toml`` are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weight: float = 1.0


@dataclass(frozen=True)
class CoverageArea:
    """Where one kind of evidence was looked for: whole countries, and drawn areas.

    ``countries`` are ISO3 codes, matched against a community's ``country`` (a place is
    covered by the register of the country it belongs to, whatever the border's generalisation);
    ``area`` is the union of the outlines and boxes the sources declared (EPSG:4326), matched
    against a community's position. A place in either is covered.
    """

    countries: frozenset[str] = frozenset()
    area: shapely.Geometry | None = None
    #: Catalog keys of the sources whose declared outline makes up ``area``.
    area_sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.area is not None:
            shapely.prepare(self.area)  # many point-in-polygon tests follow

    def contains(self, countries: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Per place (its country code and EPSG:4326 point): inside the coverage?"""
        inside = pd.Series(countries, dtype=object).isin(sorted(self.countries)).to_numpy()
        if self.area is None or not len(points):
            return inside
        # On the outline counts as inside (``intersects``), as the surface's cells do.
        return inside | shapely.intersects(self.area, np.asarray(points, dtype=object))

    def record(self) -> dict[str, Any]:
        """What the build metadata says of it (the area by its sources and bounds)."""
        return {
            "countries": sorted(self.countries),
            "areas_from": list(self.area_sources),
            "area_bounds": [round(float(v), 6) for v in shapely.bounds(self.area)]
            if self.area is not None
            else None,
        }


@dataclass
class RiskInputs:
    """The canonical layers of a build, and the reference data the factors need."""

    communities: gpd.GeoDataFrame
    concessions: gpd.GeoDataFrame | None = None
    tailings_dams: gpd.GeoDataFrame | None = None
    incidents: gpd.GeoDataFrame | None = None
    rivers: gpd.GeoDataFrame | None = None
    #: Where each kind of evidence was looked for (``model.coverage_of``, from the catalog). A
    #: plain set of ISO3 codes is short for countries only.
    coverage: dict[Kind, CoverageArea] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.coverage = {
            kind: c if isinstance(c, CoverageArea) else CoverageArea(frozenset(c))
            for kind, c in self.coverage.items()
        }

    def coverage_for(self, kind: Kind) -> CoverageArea:
        """The coverage of one kind of evidence (nothing covered when none was declared)."""
        return self.coverage.get(kind) or CoverageArea()

    def covered(self, kind: Kind) -> np.ndarray:
        """Which communities lie where this kind of evidence was collected (country or area)."""
        return self.coverage_for(kind).contains(
            self.communities["country"].to_numpy(), self.communities.geometry.to_numpy()
        )


@dataclass
class FactorResult:
    """One factor's contribution for every community (row-aligned with ``communities``)."""

    name: str
    raw: np.ndarray
    normalised: np.ndarray
    #: Per community, ids of the features behind the value, strongest first (see ``top_ids``).
    evidence: pa.ListArray
    #: Extra per-community columns (``combine`` prefixes them with the factor's name).
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    #: Extra layers this factor produces (e.g. ``tailings_consequence``).
    layers: dict[str, gpd.GeoDataFrame] = field(default_factory=dict)
    #: Model ids, coefficients and anything else the build metadata should record.
    metadata: dict[str, Any] = field(default_factory=dict)
    #: Per community, how precisely its strongest evidence is known: "precise",
    #: "approximate", "estimated" or "stand_in" (``confidence.py``); None without evidence.
    precision: np.ndarray | None = None
    #: Per feature of the evidence, what a partition of the communities adds to it (e.g. people
    #: in a dam's run-out); ``merge`` adds the partitions' up, in partition order.
    sums: dict[str, np.ndarray] = field(default_factory=dict)


#: A box in longitude and latitude (min x, min y, max x, max y).
Box = tuple[float, float, float, float]


@dataclass
class Prepared:
    """A factor's work done once for all communities: ``shared`` (what every partition reads,
    sent once to each worker) and ``select``, the evidence within the factor's reach of a box
    (all of it for None), made in the build's process and sent with the partition."""

    shared: Any
    select: Callable[[Box | None], Any]


class RiskFactor(Protocol):
    """A factor: ``name`` (its ``risk.toml`` section), ``Params``, ``evidence_kind``, and its
    value in three steps, so that the communities can be taken a partition at a time:
    ``prepare`` (once), ``evaluate`` (per partition: its communities in ``inputs``, the
    evidence ``select`` gave for them) and ``finish`` (once, on the partitions ``merge``d).
    ``compute`` is the three on all communities at once."""

    name: ClassVar[str]
    evidence_kind: ClassVar[Kind]
    Params: ClassVar[type[FactorParams]]

    def prepare(self, inputs: RiskInputs, params: FactorParams) -> Prepared:
        """What every partition shares, and how the evidence near one is chosen."""
        ...

    def evaluate(
        self, shared: Any, selected: Any, inputs: RiskInputs, params: FactorParams
    ) -> FactorResult:
        """The factor for the communities of one partition."""
        ...

    def finish(
        self, shared: Any, merged: FactorResult, inputs: RiskInputs, params: FactorParams
    ) -> FactorResult:
        """The merged partitions made whole: metadata, and layers from the sums."""
        ...

    def compute(self, inputs: RiskInputs, params: FactorParams) -> FactorResult:
        """Evaluate the factor for every community (``compute_all``)."""
        ...


def compute_all(factor: RiskFactor, inputs: RiskInputs, params: FactorParams) -> FactorResult:
    """A factor on every community at once: all of its evidence, one partition."""
    prepared = factor.prepare(inputs, params)
    part = factor.evaluate(prepared.shared, prepared.select(None), inputs, params)
    n = len(inputs.communities)
    return factor.finish(prepared.shared, merge([part], [np.arange(n)], n), inputs, params)


def merge(parts: Sequence[FactorResult], rows: Sequence[np.ndarray], n: int) -> FactorResult:
    """One factor's partitions (``parts[i]`` for communities ``rows[i]``) as one result for
    all ``n``: per-community values in community order, ``sums`` added up in partition order,
    each partition's metadata kept in ``metadata["partitions"]`` for ``finish``."""
    where = np.concatenate(list(rows)) if rows else np.empty(0, dtype=np.int64)
    if len(where) != n or (n and not np.array_equal(np.sort(where), np.arange(n))):
        raise ValueError("partitions must hold every community exactly once")
    order = np.argsort(where, kind="stable")

    def placed(values: Sequence[np.ndarray]) -> np.ndarray:
        return np.concatenate(list(values))[order]

    first = parts[0]
    sums: dict[str, np.ndarray] = {}
    for part in parts:
        for key, values in part.sums.items():
            sums[key] = sums[key] + values if key in sums else values.copy()
    precision = None
    if any(p.precision is not None for p in parts):
        precision = placed(
            [
                p.precision if p.precision is not None else np.full(len(r), None, dtype=object)
                for p, r in zip(parts, rows, strict=True)
            ]
        )
    evidence = pa.concat_arrays([p.evidence for p in parts]) if len(parts) > 1 else first.evidence
    if not np.array_equal(order, np.arange(n)):
        evidence = evidence.take(pa.array(order))
    return FactorResult(
        name=first.name,
        raw=placed([p.raw for p in parts]),
        normalised=placed([p.normalised for p in parts]),
        evidence=evidence,
        columns={k: placed([p.columns[k] for p in parts]) for k in first.columns},
        precision=precision,
        metadata={"partitions": [p.metadata for p in parts]},
        sums=sums,
    )


def top_ids(
    source: np.ndarray, ids: np.ndarray, strength: np.ndarray, n: int, k: int | None = None
) -> pa.ListArray:
    """Per source row (0..n-1), the ids of its pairs with the greatest strength, ``k`` at most.

    Vectorised: one sort, ranks within each source, and an Arrow list column built from offsets.
    """
    source = np.asarray(source, dtype=np.int64)
    # One integer key: source, then the rank of strength (strongest first; ties in order).
    rank = np.empty(len(source), dtype=np.int64)
    rank[np.argsort(-np.asarray(strength, dtype="float64"), kind="stable")] = np.arange(len(rank))
    order = np.argsort(source * max(len(rank), 1) + rank)
    s = source[order]
    values = np.asarray(ids, dtype=object)[order]
    if k is not None and len(s):
        starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
        group_start = np.repeat(starts, np.diff(np.r_[starts, len(s)]))
        keep = (np.arange(len(s)) - group_start) < k
        s, values = s[keep], values[keep]
    counts = np.bincount(s, minlength=n) if len(s) else np.zeros(n, dtype=np.int64)
    offsets = np.r_[0, np.cumsum(counts)].astype(np.int32)
    try:  # ids are text already, as a rule
        strings = pa.array(values, pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        strings = None
    if strings is None or strings.null_count:
        strings = pa.array(values.astype(str), pa.string())
    if isinstance(strings, pa.ChunkedArray):  # Arrow splits a large NumPy text array
        strings = strings.combine_chunks()
    return pa.ListArray.from_arrays(pa.array(offsets), strings)


def first_ids(evidence: pa.ListArray) -> np.ndarray:
    """The first (strongest) id of every evidence list, None where the list is empty."""
    offsets = evidence.offsets.to_numpy()
    values = evidence.flatten().to_numpy(zero_copy_only=False).astype(object)
    out = np.full(len(evidence), None, dtype=object)
    has = np.diff(offsets) > 0
    out[has] = values[offsets[:-1][has] - offsets[0]]
    return out


def precision_of(
    evidence: pa.ListArray, ids: pd.Series, words: np.ndarray | pd.Series
) -> np.ndarray:
    """Per community, the precision word of its strongest evidence (``ids`` → ``words``).

    Only the ids that are some community's strongest are looked up (a million incidents are
    not turned into a table for a few thousand of them).
    """
    first = pd.Series(first_ids(evidence), dtype=object)
    wanted = pd.unique(first.dropna())
    chosen = ids.isin(wanted).to_numpy()
    lookup = pd.Series(
        np.asarray(words, dtype=object)[chosen], index=ids[chosen].astype(str).to_numpy()
    )
    lookup = lookup[~lookup.index.duplicated()]
    out = first.map(lookup).astype(object)
    return out.where(out.notna(), None).to_numpy(dtype=object)


def no_evidence(n: int) -> pa.ListArray:
    """An evidence column with no ids for any of ``n`` communities."""
    return pa.ListArray.from_arrays(
        pa.array(np.zeros(n + 1, dtype=np.int32)), pa.array([], pa.string())
    )
