"""Helpers that turn real source files into test inputs: other formats, or rows made bad."""

from __future__ import annotations

import csv
import datetime as dt
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from geo_service.catalog import Mapping, SourceCatalog, SourceEntry
from geo_service.schemas import Kind

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "layers" / "sources"
UCDP_CSV = SOURCES / "ucdp_ged_v23_1_caf" / "ucdp_ged_v23_1_caf.csv"
GEONAMES_CSV = SOURCES / "geonames_cities500" / "communities_geonames_cities500.csv"
ANM_CSV = SOURCES / "anm_sigbm_mining_dams_brazil" / "anm_sigbm_mining_dams_brazil.csv"
COUNTRIES = SOURCES / "natural_earth" / "ne_50m_admin0_africa_russia.geojson"

#: Mapping of Natural Earth country outlines onto the concessions kind: real polygons for the
#: polygon path (no openly licensed concession polygons exist to ship).
COUNTRY_POLYGONS_AS_CONCESSIONS = {
    "source_id": "ADM0_A3",
    "name": "NAME",
    "holder": "SOVEREIGNT",
    "country": "ADM0_A3",
}


def read_text_csv(path: Path) -> pd.DataFrame:
    """A CSV with every value as published (no type guessing, empty stays empty)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def write_text_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write a CSV the way publishers do (quoted only where needed)."""
    frame.to_csv(path, index=False)
    return path


def record_start_lines(path: Path) -> list[int]:
    """Physical line on which each data record starts, counted independently of the code."""
    csv.field_size_limit(sys.maxsize)
    starts = []
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        prev = reader.line_num
        for _row in reader:
            starts.append(prev + 1)
            prev = reader.line_num
    return starts


def entry(
    catalog: SourceCatalog | None,
    key: str | None,
    path: Path,
    *,
    kind: Kind | None = None,
    mapping: dict[str, Any] | None = None,
    **overrides: Any,
) -> SourceEntry:
    """A catalog entry for ``path``: the project's entry ``key`` re-pointed, or a new one."""
    if key is not None and catalog is not None:
        base = next(e for e in catalog.sources if e.key == key)
        update: dict[str, Any] = {"path": path, **overrides}
        if mapping is not None:
            update["mapping"] = Mapping.parse(mapping, base.kind, "test")
        return base.model_copy(update=update)
    assert kind is not None
    return SourceEntry(
        key="test",
        kind=kind,
        title=path.name,
        path=path,
        publisher="test",
        licence="test",
        attribution="test",
        retrieved=dt.date(2026, 11, 23),
        mapping=Mapping.parse(mapping or {}, kind, "test"),
        **overrides,
    )
