"""Helpers that turn real source files into test inputs: other formats, or rows made bad."""

from __future__ import annotations

import csv
import datetime as dt
import sys
import zipfile
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio

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


#: Every vector format the adapters read, as ``write_vector`` names them.
VECTOR_FORMATS = ("geojson", "gpkg", "shapefile", "shapefile_zip", "kml", "geoparquet")
#: Mapping of the GeoNames points of ``geonames_points`` onto the communities kind.
COMMUNITY_MAPPING = {"source_id": "geonameid", "country": "country_iso3", "admin1": "admin1_code"}


def geonames_points(countries: tuple[str, ...] = ("CAF", "SLE")) -> gpd.GeoDataFrame:
    """Real GeoNames places of some countries as points (the columns every format can hold)."""
    df = read_text_csv(GEONAMES_CSV)
    df = df[df["country_iso3"].isin(countries)].reset_index(drop=True)
    df["population"] = df["population"].astype(int)
    return gpd.GeoDataFrame(
        df.drop(columns=["latitude", "longitude", "alternatenames", "country_iso2", "timezone"]),
        geometry=gpd.points_from_xy(df["longitude"].astype(float), df["latitude"].astype(float)),
        crs="EPSG:4326",
    )


def write_vector(
    gdf: gpd.GeoDataFrame, folder: Path, fmt: str, stem: str = "communities"
) -> tuple[Path, dict[str, str]]:
    """Write real features in one of ``VECTOR_FORMATS``; also the mapping keys that format
    renames (DBF names stop at 10 characters; a KML placemark's name is ``Name``)."""
    folder.mkdir(parents=True, exist_ok=True)
    renames: dict[str, str] = {}
    if fmt == "geojson":
        path = folder / f"{stem}.geojson"
        pyogrio.write_dataframe(gdf, path, driver="GeoJSON")
    elif fmt == "gpkg":
        path = folder / f"{stem}.gpkg"
        pyogrio.write_dataframe(gdf, path, layer=stem, driver="GPKG")
    elif fmt in ("shapefile", "shapefile_zip"):
        path = folder / f"{stem}.shp"
        pyogrio.write_dataframe(gdf, path, driver="ESRI Shapefile")
        renames = {"country": "country_is", "admin1": "admin1_cod"}
        if fmt == "shapefile_zip":
            zipped = folder / f"{stem}.zip"
            with zipfile.ZipFile(zipped, "w") as zf:
                for part in folder.glob(f"{stem}.*"):
                    if part.suffix != ".zip":
                        zf.write(part, part.name)
            path = zipped
    elif fmt == "kml":
        path = folder / f"{stem}.kml"
        pyogrio.write_dataframe(gdf, path, driver="KML")
        renames = {"name": "Name"}
    elif fmt == "geoparquet":
        path = folder / f"{stem}.parquet"
        gdf.to_parquet(path)
    else:
        raise ValueError(fmt)
    return path, renames


def truncated_copy(src: Path, dst: Path, keep: float = 0.5) -> Path:
    """The first ``keep`` share of a file's bytes, as a copy interrupted part-way leaves it."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def csv_cut_mid_row(src: Path, dst: Path, record: int) -> tuple[Path, int]:
    """A CSV cut half-way through the first line of data record ``record`` (0-based), with
    no line break after it; also the line that record starts on."""
    line = record_start_lines(src)[record]
    lines = src.read_bytes().split(b"\n")
    kept = b"\n".join(lines[: line - 1]) + b"\n" + lines[line - 1][: len(lines[line - 1]) // 2]
    dst.write_bytes(kept)
    return dst, line


def csv_cut_in_quoted_field(src: Path, dst: Path) -> tuple[Path, int]:
    """A CSV cut right after a line break *inside* a quoted field (so it even ends with a line
    break); also the line the record with that field starts on."""
    starts = record_start_lines(src)
    record = next(i for i in range(len(starts) - 1) if starts[i + 1] - starts[i] > 1)
    lines = src.read_bytes().split(b"\n")
    dst.write_bytes(b"\n".join(lines[: starts[record]]) + b"\n")
    return dst, starts[record]


def fits_cp1252(frame: pd.DataFrame) -> pd.Series:
    """Rows whose every value Windows-1252 can encode (most GeoNames rows; not Cyrillic ones)."""
    return frame.apply(
        lambda row: all(v.encode("cp1252", "ignore").decode("cp1252") == v for v in row), axis=1
    )


def cp1252_places(n: int = 40) -> pd.DataFrame:
    """Real GeoNames rows whose names need more than ASCII but fit Windows-1252 (Lóvua,
    Yaloké, Sémbé, Zuénoula, Télimélé …), a few from each country, every column as published."""
    frame = read_text_csv(GEONAMES_CSV)
    accented = frame["name"].map(lambda v: not v.isascii())
    chosen = frame[fits_cp1252(frame) & accented].groupby("country_iso3", sort=False)
    return chosen.head(max(1, n // 8)).head(n).reset_index(drop=True)
