"""What every source adapter returns, and the protocol it follows.

An adapter only reads: it turns a file into publisher columns plus either ready geometries
(vector formats) or the names of the coordinate columns (CSV). Mapping and validation are the
same for every format, so a new format is one adapter and a new publisher is one catalog entry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
from pyproj import CRS

#: Called with (units done, units total) while an adapter reads; bytes for CSV, features else.
ProgressFn = Callable[[int, int], None]

LON_NAMES = ("lon", "long", "longitude", "lng", "x", "lon_dd", "longitude_dd", "decimallongitude")
LAT_NAMES = ("lat", "latitude", "y", "lat_dd", "latitude_dd", "decimallatitude")
WKT_NAMES = ("wkt", "geometry", "geom", "the_geom", "shape", "geometry_wkt")


@dataclass(frozen=True)
class ReadOptions:
    """What an adapter needs to know about a file beyond its path."""

    path: Path
    layer: str | None = None
    encoding: str = "utf-8"
    delimiter: str = ","
    lon: str | None = None
    lat: str | None = None
    wkt: str | None = None


@dataclass(frozen=True)
class SkippedRecord:
    """A record an adapter could not make into a row (a CSV line with the wrong number of
    fields): kept so validation reports and counts it like any other rejected row."""

    #: 1-based record number, and line (or feature) in the file; -1 when it cannot be known.
    record: int
    position: int
    #: The record as published, for the rejects file.
    text: str
    reason: str


@dataclass
class RawTable:
    """Publisher columns of one file, row-aligned with ``records`` (1-based record numbers).

    Exactly one of ``geometry`` (vector formats), ``lonlat`` or ``wkt`` (CSV) is set.
    ``record_word`` says how a user finds a row in the file ("line" for CSV, "feature"
    otherwise); ``locate`` turns record numbers into those positions (CSV lines differ from
    record numbers when quoted fields hold newlines). ``skipped`` are records that could not
    become rows at all.
    """

    path: Path
    data: pd.DataFrame
    records: np.ndarray
    crs: CRS | None
    geometry: np.ndarray | None = None
    lonlat: tuple[str, str] | None = None
    wkt: str | None = None
    record_word: str = "feature"
    locate: Callable[[np.ndarray], np.ndarray] | None = None
    notes: list[str] = field(default_factory=list)
    skipped: list[SkippedRecord] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.data)

    def positions(self, records: np.ndarray) -> np.ndarray:
        """Where records sit in the file, in ``record_word`` units."""
        if self.locate is None:
            return np.asarray(records)
        return self.locate(np.asarray(records))


class Adapter(Protocol):
    """Reads one file format."""

    #: Format name used in ``sources.toml`` (``adapter = "..."``).
    name: str
    #: File suffixes this adapter is picked for when an entry names none.
    suffixes: tuple[str, ...]

    def columns(self, opts: ReadOptions) -> list[str]:
        """Publisher column names, read from the file's header or schema only."""
        ...

    def read(
        self, opts: ReadOptions, columns: Sequence[str] | None, progress: ProgressFn | None = None
    ) -> RawTable:
        """Read the named columns (all when ``None``) and the geometry."""
        ...


def detect_column(columns: Sequence[str], candidates: Sequence[str]) -> str | None:
    """Find a column by common name, ignoring case."""
    lowered = {c.lower().strip(): c for c in columns}
    for name in candidates:
        if name in lowered:
            return lowered[name]
    return None
