"""What a risk factor is: a pydantic parameter model and a ``compute`` over the evidence.

Each factor returns, per community, its raw value, a value normalised to 0–1, and the ids of
the features behind it, so that every score can be explained and traced; values are NaN where
the factor has no evidence coverage ("no data" is not zero). Factors are registered by name in
``geo_service.risk.FACTORS``; ``combine.py`` and the layers never need to know more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import geopandas as gpd
import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from geo_service.schemas import Kind


class FactorParams(BaseModel):
    """Base of every factor's parameters: unknown keys in ``risk.toml`` are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weight: float = 1.0


@dataclass
class RiskInputs:
    """The canonical layers of a build, and the reference data the factors need."""

    communities: gpd.GeoDataFrame
    concessions: gpd.GeoDataFrame | None = None
    tailings_dams: gpd.GeoDataFrame | None = None
    incidents: gpd.GeoDataFrame | None = None
    rivers: gpd.GeoDataFrame | None = None
    #: ISO3 countries where each kind of evidence was looked for (from the source catalog).
    coverage: dict[Kind, set[str]] = field(default_factory=dict)

    def covered(self, kind: Kind) -> np.ndarray:
        """Which communities lie in a country where this kind of evidence was collected."""
        countries = self.coverage.get(kind, set())
        return self.communities["country"].isin(sorted(countries)).to_numpy()


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


class RiskFactor(Protocol):
    """A factor: ``name`` (its ``risk.toml`` section), ``Params``, ``evidence_kind`` and ``compute``."""

    name: ClassVar[str]
    evidence_kind: ClassVar[Kind]
    Params: ClassVar[type[FactorParams]]

    def compute(self, inputs: RiskInputs, params: FactorParams) -> FactorResult:
        """Evaluate the factor for every community."""
        ...


def top_ids(
    source: np.ndarray, ids: np.ndarray, strength: np.ndarray, n: int, k: int | None = None
) -> pa.ListArray:
    """Per source row (0..n-1), the ids of its pairs with the greatest strength, ``k`` at most.

    Vectorised: one sort, ranks within each source, and an Arrow list column built from offsets.
    """
    source = np.asarray(source, dtype=np.int64)
    order = np.lexsort((-np.asarray(strength, dtype="float64"), source))
    s = source[order]
    values = np.asarray(ids, dtype=object)[order]
    if k is not None and len(s):
        starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
        group_start = np.repeat(starts, np.diff(np.r_[starts, len(s)]))
        keep = (np.arange(len(s)) - group_start) < k
        s, values = s[keep], values[keep]
    counts = np.bincount(s, minlength=n) if len(s) else np.zeros(n, dtype=np.int64)
    offsets = np.r_[0, np.cumsum(counts)].astype(np.int32)
    strings = pa.array(values.astype(str), pa.string())
    if isinstance(strings, pa.ChunkedArray):  # Arrow splits a large NumPy text array
        strings = strings.combine_chunks()
    return pa.ListArray.from_arrays(pa.array(offsets), strings)


def no_evidence(n: int) -> pa.ListArray:
    """An evidence column with no ids for any of ``n`` communities."""
    return pa.ListArray.from_arrays(
        pa.array(np.zeros(n + 1, dtype=np.int32)), pa.array([], pa.string())
    )
