"""The bundled real data made bad in every way a source file arrives bad.

Truncated copies, Windows and Latin-1 text, byte-order marks, mixed geometry types, empty
files, absurd coordinates and paths that lead nowhere: each is refused with one line naming
the file, the line or feature where it can be known, and what is wrong, or its rows are
rejected one by one with their position and field. A build that meets one leaves the current
build current and byte-identical, and keeps its report in ``failed-<build-id>/``.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from geo_service.build import build
from geo_service.catalog import SourceCatalog, file_digest
from geo_service.errors import BuildError, RiskMapError, SourceError
from geo_service.ingest import ReadOptions
from geo_service.ingest.csv_table import CsvAdapter
from geo_service.ingest.validate import SourceResult, validate_source
from geo_service.schemas import Kind
from geo_service.settings import BuildSettings
from geo_service.store.files import current_build_id
from tests.conftest import CATALOG, QUICK_SURFACE_M, small_layers
from tests.helpers import (
    ANM_CSV,
    COMMUNITY_MAPPING,
    COUNTRIES,
    GEONAMES_CSV,
    UCDP_CSV,
    VECTOR_FORMATS,
    cp1252_places,
    csv_cut_in_quoted_field,
    csv_cut_mid_row,
    entry,
    fits_cp1252,
    geonames_points,
    read_text_csv,
    record_start_lines,
    truncated_copy,
    write_text_csv,
    write_vector,
)

TODAY = dt.date(2026, 11, 23)


def check(catalog: SourceCatalog, path: Path, key: str = "ucdp_ged_caf", **kw) -> SourceResult:
    """Validate ``path`` as the project's catalog entry ``key`` (re-pointed at it)."""
    return validate_source(entry(catalog, key, path, **kw), catalog.reference, today=TODAY)


def check_communities(catalog: SourceCatalog, path: Path, **mapping: str) -> SourceResult:
    """Validate a vector file of real GeoNames places as communities."""
    return validate_source(
        entry(None, None, path, kind=Kind.communities, mapping={**COMMUNITY_MAPPING, **mapping}),
        catalog.reference,
        today=TODAY,
    )


def refused(call: Callable[[], object], *parts: str) -> str:
    """The one-line message of the SourceError ``call`` raises; it must hold every part."""
    with pytest.raises(SourceError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, (part, message)
    return message


@pytest.fixture(scope="module")
def ucdp() -> pd.DataFrame:
    return read_text_csv(UCDP_CSV)


@pytest.fixture(scope="module")
def places() -> pd.DataFrame:
    return read_text_csv(GEONAMES_CSV)


# --- truncated files ------------------------------------------------------------------------


def test_csv_cut_mid_row_is_refused_naming_the_line(tmp_path, catalog) -> None:
    path, line = csv_cut_mid_row(UCDP_CSV, tmp_path / "ucdp.csv", record=500)
    refused(
        lambda: check(catalog, path),
        f"source ucdp_ged_caf: {path}: line {line}: the file ends in the middle of a record (",
        "of 48 fields, and no line break after it): it looks truncated",
    )


def test_csv_cut_inside_a_quoted_field_is_refused(tmp_path, catalog) -> None:
    # UCDP's source texts are quoted and span lines: cut right after a line break inside one,
    # the file even ends with a line break.
    path, line = csv_cut_in_quoted_field(UCDP_CSV, tmp_path / "ucdp.csv")
    assert path.read_bytes().endswith(b"\n")
    refused(
        lambda: check(catalog, path),
        f"{path}: line {line}: the file ends inside a quoted field",
        "it looks truncated",
    )
    # Cut a few characters into a quoted field on one line.
    data = UCDP_CSV.read_bytes()
    quote = data.index(b',"', data.index(b"\n", 200_000)) + 2
    cut = tmp_path / "ucdp_quote.csv"
    cut.write_bytes(data[: quote + 5])
    starts = record_start_lines(UCDP_CSV)
    line = max(s for s in starts if s <= data[:quote].count(b"\n") + 1)
    refused(lambda: check(catalog, cut), f"line {line}: the file ends inside a quoted field")


def test_csv_short_row_in_the_middle_is_one_rejected_row(tmp_path, ucdp, catalog) -> None:
    # Not a truncation: the rows after it are there, and are read.
    frame = ucdp.head(80)
    path = write_text_csv(frame, tmp_path / "ucdp.csv")
    lines = path.read_bytes().split(b"\n")
    line = record_start_lines(path)[40]
    lines[line - 1] = lines[line - 1][:40]
    path.write_bytes(b"\n".join(lines))
    result = check(catalog, path)
    rejected = result.problems[result.problems["action"] == "rejected"]
    assert rejected["position"].tolist() == [line]
    assert rejected["reason"].iloc[0].startswith("expected 48 fields, got ")
    assert result.counts["rejected"] == 1 and result.counts["kept"] == 79


#: How each format says it was cut short.
TRUNCATED = {
    "geojson": r"communities.geojson: is not complete JSON \(at line \d+, character \d+: "
    r"Unterminated \w+\): the file ends before its last object is closed, so it looks truncated",
    "gpkg": r"communities.gpkg: is truncated: its SQLite header records [\d,]+ bytes but the "
    r"file has [\d,]+",
    "shapefile": r"communities.shp: is truncated: its communities.shp header records [\d,]+ "
    r"bytes but the file has [\d,]+",
    "shapefile_zip": r"communities.zip: is not a complete zip archive: the directory that ends "
    r"every zip file is missing, so it is truncated",
    "kml": r"communities.kml: is not complete XML \(.* on line \d+ at offset \d+\): the file "
    r"ends before its elements are closed, so it looks truncated",
    "geoparquet": r"communities.parquet: is not a complete Parquet file: the footer that ends "
    r"every Parquet file is missing, so it is truncated",
}


@pytest.mark.parametrize("fmt", VECTOR_FORMATS)
def test_vector_file_truncated_to_half_is_refused(tmp_path, catalog, fmt) -> None:
    path, renames = write_vector(geonames_points(), tmp_path / "whole", fmt)
    cut = tmp_path / "cut" / path.name
    cut.parent.mkdir()
    for part in path.parent.glob(f"{path.stem}.*"):  # a Shapefile's .shx and .dbf come along
        shutil.copy(part, cut.parent / part.name)
    truncated_copy(path, cut)
    message = refused(lambda: check_communities(catalog, cut, **renames), "copy it again")
    assert pd.Series([message]).str.contains(TRUNCATED[fmt]).all(), message
    for raw in ("sqlite3_prepare", "Traceback", "<DRIVER>", "/vsizip/"):
        assert raw not in message


def test_shapefile_with_half_its_dbf_is_refused_not_read_short(tmp_path, catalog) -> None:
    # Read as the adapter reads (through Arrow), GDAL returns half the rows without a word.
    path, renames = write_vector(geonames_points(), tmp_path, "shapefile")
    dbf = path.with_suffix(".dbf")
    truncated_copy(dbf, dbf)
    assert len(pyogrio.read_dataframe(path, use_arrow=True)) < len(geonames_points())
    refused(
        lambda: check_communities(catalog, path, **renames),
        f"{path}: is truncated: communities.dbf records {len(geonames_points())} rows",
        "rows are missing; copy it again from the publisher",
    )


# --- Windows and Latin-1 text ---------------------------------------------------------------


def test_cp1252_csv_undeclared_names_line_byte_and_encoding(tmp_path, catalog) -> None:
    frame = cp1252_places()
    path = tmp_path / "places.csv"
    frame.to_csv(path, index=False, encoding="cp1252")
    data = path.read_bytes()
    offset = next(i for i, b in enumerate(data) if b >= 0x80)
    line = data[:offset].count(b"\n") + 1
    refused(
        lambda: check(catalog, path, key="geonames_africa"),
        f"source geonames_africa: {path}: line {line}, byte offset {offset}: "
        f"byte 0x{data[offset]:02X} is not valid utf-8 text",
        'set encoding = "cp1252" in its catalog entry (riskmap validate: --encoding cp1252)',
    )


@pytest.mark.parametrize("encoding", ["cp1252", "windows-1252"])
def test_cp1252_csv_declared_reads_every_name_exactly(tmp_path, catalog, encoding) -> None:
    frame = cp1252_places()
    path = tmp_path / "places.csv"
    frame.to_csv(path, index=False, encoding="cp1252")
    result = check(catalog, path, key="geonames_africa", encoding=encoding)
    assert result.counts["rejected"] == 0 and len(result.layer) == len(frame)
    layer = result.layer.set_index("source_id")
    assert (layer.loc[frame["geonameid"], "name"].to_numpy() == frame["name"].to_numpy()).all()
    assert (
        layer["alternatenames"].fillna("") == frame.set_index("geonameid")["alternatenames"]
    ).all()
    assert "Sémbé" in set(layer["name"]) and "Lóvua" in set(layer["name"])


def test_windows_text_declared_latin1_is_refused(tmp_path, places, catalog) -> None:
    # ’ is 0x92 in Windows-1252 and a control character in Latin-1: declared latin-1, the
    # names would be silently wrong.
    frame = places[places["alternatenames"].str.contains("’")].head(5)
    frame = frame[fits_cp1252(frame)]
    assert len(frame)
    path = tmp_path / "places.csv"
    frame.to_csv(path, index=False, encoding="cp1252")
    data = path.read_bytes()
    offset = data.index(b"\x92")
    line = data[:offset].count(b"\n") + 1
    refused(
        lambda: check(catalog, path, key="geonames_africa", encoding="latin-1"),
        f"line {line}, byte offset {offset}: byte 0x92 is a control "
        "character in latin-1, so the file is probably Windows text",
        'set encoding = "cp1252"',
    )
    assert len(check(catalog, path, key="geonames_africa", encoding="cp1252").layer) == len(frame)


def test_utf8_declared_latin1_is_refused_not_mangled(tmp_path, places, catalog) -> None:
    # Berbérati first: its name holds the file's first non-ASCII byte.
    frame = pd.concat([places[places["name"] == "Berbérati"], places.head(3)])
    path = write_text_csv(frame, tmp_path / "places.csv")
    refused(
        lambda: check(catalog, path, key="geonames_africa", encoding="latin-1"),
        "the file is UTF-8 text, but its encoding is declared as latin-1, which would read",
        "Berbérati",
        "BerbÃ©rati",
        "remove the encoding key",
    )


def test_unknown_encoding_is_named(tmp_path, places, catalog) -> None:
    path = write_text_csv(places.head(5), tmp_path / "places.csv")
    refused(
        lambda: check(catalog, path, key="geonames_africa", encoding="latin-9"),
        "unknown text encoding 'latin-9': use a name such as utf-8, cp1252 or latin-1",
    )


# --- byte-order marks -----------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be", "utf-32"])
def test_csv_with_a_byte_order_mark_is_read_as_it_says(tmp_path, catalog, encoding) -> None:
    frame = cp1252_places()
    path = tmp_path / "places.csv"
    if encoding == "utf-16-be":
        path.write_bytes(b"\xfe\xff" + frame.to_csv(index=False).encode("utf-16-be"))
    else:
        frame.to_csv(path, index=False, encoding=encoding)
    header = CsvAdapter().columns(ReadOptions(path=path))
    assert header[0] == "geonameid" and header == list(frame.columns)
    result = check(catalog, path, key="geonames_africa")  # utf-8 declared, the default
    assert result.counts["rejected"] == 0
    assert sorted(result.layer["name"]) == sorted(frame["name"])


def test_utf8_bom_wins_over_a_latin1_declaration(tmp_path, catalog) -> None:
    frame = cp1252_places()
    path = tmp_path / "places.csv"
    frame.to_csv(path, index=False, encoding="utf-8-sig")
    result = check(catalog, path, key="geonames_africa", encoding="latin-1")
    assert sorted(result.layer["name"]) == sorted(frame["name"])
    assert result.notes == [
        "places.csv: starts with a UTF-8 byte-order mark, so it is read as UTF-8, not as the "
        "declared latin-1"
    ]


def test_geojson_with_a_byte_order_mark(tmp_path, catalog) -> None:
    points = geonames_points(("CAF", "CIV"))
    path, _ = write_vector(points, tmp_path, "geojson")
    text = path.read_bytes()
    path.write_bytes(b"\xef\xbb\xbf" + text)
    result = check_communities(catalog, path)
    assert result.counts["kept"] == len(points)
    assert "Berbérati" in set(result.layer["name"])
    # RFC 8259 wants UTF-8; UTF-16 is refused with what to do, not GDAL's "not recognized".
    path.write_bytes(text.decode("utf-8").encode("utf-16"))
    refused(
        lambda: check_communities(catalog, path),
        "is UTF-16 text (it starts with a UTF-16 byte-order mark), which GDAL does not read as "
        "geojson: save it as UTF-8",
    )


# --- mixed geometry types -------------------------------------------------------------------


def _mixed(n: int = 16) -> tuple[object, list[int]]:
    """Real places; four replaced by a real river, a real country, two places as one
    MultiPoint and a single-part MultiPoint (which is a point)."""
    points = geonames_points().head(n).copy()
    river = pyogrio.read_dataframe(
        COUNTRIES.parent / "ne_10m_rivers_lake_centerlines_africa.geojson"
    ).geometry.iloc[0]
    caf = pyogrio.read_dataframe(COUNTRIES).set_index("ADM0_A3").loc["CAF"].geometry
    geoms = points.geometry.to_numpy().copy()
    geoms[3] = river
    geoms[6] = caf
    geoms[9] = shapely.MultiPoint([geoms[0], geoms[1]])
    geoms[12] = shapely.MultiPoint([geoms[12]])
    points["geometry"] = geoms
    return points, [4, 7, 10]


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "kml", "geoparquet"])
def test_mixed_geometries_are_rejected_feature_by_feature(tmp_path, catalog, fmt) -> None:
    points, bad = _mixed()
    path, renames = write_vector(points, tmp_path, fmt)
    result = check_communities(catalog, path, **renames)
    rejected = result.problems[result.problems["action"] == "rejected"]
    assert rejected["position"].tolist() == bad
    assert (rejected["field"] == "geometry").all()
    assert [r.split(", got ")[1] for r in rejected["reason"]] == [
        river_type := rejected["reason"].iloc[0].split(", got ")[1],
        "MultiPolygon" if "MultiPolygon" in rejected["reason"].iloc[1] else "Polygon",
        "MultiPoint",
    ]
    assert river_type in ("LineString", "MultiLineString")
    assert rejected["message"].iloc[2] == (
        f"{path.name}, feature 10, field 'geometry': expected Point, got MultiPoint"
    )
    assert result.counts["kept"] == 13
    kept = result.layer.set_index("source_id")
    assert kept.loc[points["geonameid"].iloc[12]].geometry.geom_type == "Point"


def test_mixed_wkt_rows_are_rejected_by_line(tmp_path, places, catalog) -> None:
    frame = places.head(30).copy()
    frame["wkt"] = "POINT (" + frame["longitude"] + " " + frame["latitude"] + ")"
    frame.loc[7, "wkt"] = "POLYGON ((18 4, 19 4, 19 5, 18 4))"
    frame.loc[8, "wkt"] = "LINESTRING (18 4, 19 5)"
    path = write_text_csv(frame.drop(columns=["longitude", "latitude"]), tmp_path / "wkt.csv")
    result = check(catalog, path, key="geonames_africa", adapter="csv_wkt")
    rejected = result.problems[result.problems["action"] == "rejected"]
    assert rejected["position"].tolist() == [9, 10]
    assert rejected["message"].tolist() == [
        "wkt.csv, line 9, field 'wkt': expected Point, got Polygon",
        "wkt.csv, line 10, field 'wkt': expected Point, got LineString",
    ]


# --- empty files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "suffix", [".csv", ".geojson", ".gpkg", ".shp", ".zip", ".kml", ".parquet"]
)
def test_zero_byte_file_is_refused(tmp_path, catalog, suffix) -> None:
    path = tmp_path / f"communities{suffix}"
    path.write_bytes(b"")
    refused(lambda: check_communities(catalog, path), f"{path}: file is empty (0 bytes)")


def test_header_only_csv_is_refused(tmp_path, catalog) -> None:
    path = tmp_path / "ucdp.csv"
    path.write_bytes(UCDP_CSV.read_bytes().split(b"\n", 1)[0] + b"\n")
    refused(lambda: check(catalog, path), f"{path}: has a header line but no data rows")


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "shapefile", "geoparquet"])
def test_vector_file_with_no_features_is_refused(tmp_path, catalog, fmt) -> None:
    path, renames = write_vector(geonames_points().head(0), tmp_path, fmt)
    if fmt == "geojson":
        path.write_text('{"type": "FeatureCollection", "features": []}')
    word = "rows" if fmt == "geoparquet" else "features"
    refused(
        lambda: check_communities(catalog, path, **renames),
        f"{path}: holds no {word}",
        "a source with no rows would drop the whole dataset from the build",
    )


def test_named_empty_layer_of_a_geopackage_is_refused(tmp_path, catalog) -> None:
    path, _ = write_vector(geonames_points(), tmp_path, "gpkg")
    pyogrio.write_dataframe(geonames_points().head(0), path, layer="later", append=True)
    refused(
        lambda: validate_source(
            entry(None, None, path, kind=Kind.communities, mapping=COMMUNITY_MAPPING, layer="later")
        ),
        "holds no features (its layer 'later' is empty)",
    )


def test_filter_that_keeps_nothing_is_refused(tmp_path, catalog) -> None:
    # The catalog keeps dams whose use contains "Rejeitos"; a copy without them keeps nothing.
    anm = read_text_csv(ANM_CSV)
    column = next(e for e in catalog.sources if e.key == "anm_sigbm_brazil").where
    ((col, values),) = column.items()
    other = anm[~anm[col].isin(values)].head(50)
    path = write_text_csv(other, tmp_path / "dams.csv")
    refused(
        lambda: check(catalog, path, key="anm_sigbm_brazil"),
        f"{path}: none of its 50 rows passes the catalog's where filter ({col} in ",
    )


# --- absurd coordinates ---------------------------------------------------------------------


def test_absurd_csv_coordinates_are_rejected_by_line_and_field(tmp_path, ucdp, catalog) -> None:
    frame = ucdp.head(60).copy()
    edits = {
        3: {"longitude": "nan"},
        7: {"latitude": "inf"},
        11: {"longitude": "1e308"},
        15: {"latitude": "-1e999"},
        19: {"longitude": "0", "latitude": "0"},
        23: {"longitude": "181"},
    }
    for i, values in edits.items():
        for col, value in values.items():
            frame.loc[i, col] = value
    swapped = 30
    frame.loc[swapped, ["longitude", "latitude"]] = frame.loc[
        swapped, ["latitude", "longitude"]
    ].to_numpy()
    path = write_text_csv(frame, tmp_path / "ucdp.csv")
    starts = record_start_lines(path)
    result = check(catalog, path)
    p = result.problems.set_index("position")
    expected = {
        3: ("longitude", "longitude is not a finite number: got 'nan'"),
        7: ("latitude", "latitude is not a finite number: got 'inf'"),
        11: ("longitude", "longitude out of range −180..180: got '1e+308'"),
        15: ("latitude", "latitude is not a finite number: got '-inf'"),
        19: (
            "longitude/latitude",
            "both coordinates are 0 ('null island'): a placeholder for a missing location, "
            "not a place",
        ),
        23: ("longitude", "longitude out of range −180..180: got '181.0'"),
    }
    for i, (field, reason) in expected.items():
        row = p.loc[starts[i]]
        assert (row["field"], row["reason"], row["action"]) == (field, reason, "rejected"), i
    assert result.counts["rejected"] == len(expected)
    # Swapped but in range: kept as published, flagged, named.
    flag = p.loc[starts[swapped]]
    assert flag["action"] == "flagged" and flag["reason"].startswith(
        "longitude and latitude look swapped"
    )


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_absurd_vector_coordinates_are_rejected_by_feature(tmp_path, catalog) -> None:
    points = geonames_points().head(12).copy()
    geoms = points.geometry.to_numpy().copy()
    x, y = geoms[5].x, geoms[5].y
    geoms[1] = shapely.Point(np.inf, 4.0)
    geoms[3] = shapely.Point(0, 0)
    geoms[5] = shapely.Point(y, x)  # swapped
    geoms[7] = shapely.Point(1e308, 4.0)
    geoms[9] = shapely.LineString([(18, 4), (np.nan, 5)])
    points["geometry"] = geoms
    path, _ = write_vector(points, tmp_path, "geoparquet")
    result = check_communities(catalog, path)
    p = result.problems.set_index("position")
    assert p.loc[2, "reason"] == "coordinates are not finite numbers (NaN or infinity)"
    assert p.loc[4, "reason"].startswith("both coordinates are 0 ('null island')")
    assert p.loc[6, "action"] == "flagged"
    assert p.loc[8, "reason"] == "coordinates outside lon −180..180, lat −90..90"
    assert p.loc[10, "reason"] == "coordinates are not finite numbers (NaN or infinity)"
    assert (p.loc[[2, 4, 8, 10], "field"] == "geometry").all()
    assert result.counts["rejected"] == 4 and result.counts["kept"] == 8


def test_projected_coordinates_that_cannot_be_reprojected(tmp_path, catalog) -> None:
    # In UTM, a northing of 1e30 comes back from PROJ as a point in the Pacific.
    points = geonames_points().head(10).to_crs("EPSG:32634")
    geoms = points.geometry.to_numpy().copy()
    geoms[2] = shapely.Point(500_000, 1e30)
    geoms[4] = shapely.Point(1e308, 0)
    points["geometry"] = geoms
    path, _ = write_vector(points, tmp_path, "gpkg")
    result = check_communities(catalog, path)
    rejected = result.problems[result.problems["action"] == "rejected"]
    assert rejected["position"].tolist() == [3, 5]
    assert (
        rejected["reason"]
        == "cannot be reprojected from EPSG:32634 to EPSG:4326: the coordinates lie outside "
        "what that CRS covers"
    ).all()
    good = result.layer.set_index("source_id").geometry
    original = geonames_points().head(10).set_index("geonameid").geometry
    assert np.allclose(shapely.get_coordinates(good), shapely.get_coordinates(original[good.index]))


# --- paths that lead nowhere ----------------------------------------------------------------


def _as_written(path: Path) -> str:
    return f'(path = "{os.path.relpath(path, CATALOG.parent)}" in {CATALOG})'


def test_missing_path_names_the_entry_and_the_path(tmp_path, catalog) -> None:
    path = tmp_path / "ucdp" / "ucdp_ged_v23_1_caf.csv"
    refused(
        lambda: check(catalog, path),
        f"source ucdp_ged_caf: {path}: file not found {_as_written(path)}",
    )


def test_folder_as_path_names_the_files_in_it(tmp_path, catalog) -> None:
    shutil.copy(UCDP_CSV, tmp_path / UCDP_CSV.name)
    refused(
        lambda: check(catalog, tmp_path),
        f"source ucdp_ged_caf: {tmp_path}: is a folder, not a file {_as_written(tmp_path)}: "
        f"name one file; it holds {UCDP_CSV.name}",
    )


def test_unreadable_file_names_the_entry(tmp_path, catalog, monkeypatch) -> None:
    path = tmp_path / UCDP_CSV.name
    shutil.copy(UCDP_CSV, path)
    path.chmod(0)
    if os.geteuid() == 0:  # root reads anything: make the open fail as it would for a user
        real_open = Path.open

        def no_access(self: Path, *args, **kwargs):
            if self == path:
                raise PermissionError(13, "Permission denied", str(self))
            return real_open(self, *args, **kwargs)

        monkeypatch.setattr(Path, "open", no_access)
    refused(
        lambda: check(catalog, path),
        f"source ucdp_ged_caf: {path}: cannot be read (Permission denied) {_as_written(path)}",
    )


# --- builds that meet a bad source ----------------------------------------------------------


@pytest.fixture(scope="module")
def layers_built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, BuildSettings]]:
    """A copy of the project's layers (the small catalog) with one good build current; each
    case breaks it."""
    layers = small_layers(tmp_path_factory.mktemp("bad")).parent
    settings = BuildSettings(
        build_dir=layers / "build", catalog=layers / "sources.toml", surface_cell_m=QUICK_SURFACE_M
    )
    build(settings)
    yield layers, settings


def _ucdp(layers: Path) -> Path:
    return layers / "sources" / "ucdp_ged_v23_1_caf" / "ucdp_ged_v23_1_caf.csv"


def _repoint_ucdp(layers: Path, path: Path, adapter: str) -> None:
    """Point the UCDP entry of the copied catalog at another file of the same events."""
    toml = layers / "sources.toml"
    rel = path.relative_to(layers)
    text = toml.read_text().replace(
        'path = "sources/ucdp_ged_v23_1_caf/ucdp_ged_v23_1_caf.csv"\nadapter = "csv"',
        f'path = "{rel}"\nadapter = "{adapter}"',
    )
    toml.write_text(text)


def _ucdp_as(layers: Path, fmt: str) -> Path:
    """The real UCDP events in another format, beside the CSV."""
    frame = read_text_csv(UCDP_CSV)
    gdf = gpd.GeoDataFrame(
        frame.drop(columns=["longitude", "latitude"]),
        geometry=shapely.points(frame["longitude"].astype(float), frame["latitude"].astype(float)),
        crs="EPSG:4326",
    )
    path, _ = write_vector(gdf, layers / "sources" / "ucdp_ged_v23_1_caf", fmt, stem="ucdp")
    return path


def _cut_mid_row(layers: Path) -> str:
    _, line = csv_cut_mid_row(UCDP_CSV, _ucdp(layers), record=900)
    return f"line {line}: the file ends in the middle of a record"


def _cp1252(layers: Path) -> str:
    path = layers / "sources" / "geonames_cities500" / "communities_geonames_cities500.csv"
    frame = read_text_csv(GEONAMES_CSV)
    frame[fits_cp1252(frame)].to_csv(path, index=False, encoding="cp1252")
    return "source geonames_africa: " + str(path) + ": line "


def _header_only(layers: Path) -> str:
    _ucdp(layers).write_bytes(UCDP_CSV.read_bytes().split(b"\n", 1)[0] + b"\n")
    return "has a header line but no data rows"


def _missing(layers: Path) -> str:
    _ucdp(layers).unlink()
    return (
        'file not found (path = "sources/ucdp_ged_v23_1_caf/ucdp_ged_v23_1_caf.csv" in '
        f"{layers / 'sources.toml'})"
    )


def _folder(layers: Path) -> str:
    toml = layers / "sources.toml"
    toml.write_text(
        toml.read_text().replace(
            'path = "sources/ucdp_ged_v23_1_caf/ucdp_ged_v23_1_caf.csv"',
            'path = "sources/ucdp_ged_v23_1_caf"',
        )
    )
    return "is a folder, not a file"


def _gpkg_half(layers: Path) -> str:
    path = _ucdp_as(layers, "gpkg")
    truncated_copy(path, path)
    _repoint_ucdp(layers, path, "gpkg")
    return "ucdp.gpkg: is truncated: its SQLite header records"


def _geojson_half(layers: Path) -> str:
    path = _ucdp_as(layers, "geojson")
    truncated_copy(path, path)
    _repoint_ucdp(layers, path, "geojson")
    return "ucdp.geojson: is not complete JSON"


def _null_island(layers: Path) -> str:
    frame = read_text_csv(UCDP_CSV)
    frame.loc[: len(frame) // 10, ["longitude", "latitude"]] = "0"
    write_text_csv(frame, _ucdp(layers))
    return "ucdp_ged_caf: 185 of 1848 rows rejected (10.0%), above the limit of 5.0%"


BAD_BUILDS: dict[str, Callable[[Path], str]] = {
    "csv cut mid-row": _cut_mid_row,
    "cp1252 undeclared": _cp1252,
    "header only": _header_only,
    "path missing": _missing,
    "path a folder": _folder,
    "geopackage half": _gpkg_half,
    "geojson half": _geojson_half,
    "null island rows": _null_island,
}


def _snapshot(build_dir: Path) -> dict[str, str]:
    current = build_dir / current_build_id(build_dir)
    return {p.name: file_digest(p) for p in sorted(current.iterdir())}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BAD_BUILDS))
def test_bad_source_leaves_current_build_and_keeps_the_report(layers_built, case) -> None:
    layers, settings = layers_built
    first = current_build_id(settings.build_dir)
    before = _snapshot(settings.build_dir)
    pristine = {p: p.read_bytes() for p in (layers / "sources.toml", _ucdp(layers))}
    geonames = layers / "sources" / "geonames_cities500" / GEONAMES_CSV.name
    pristine[geonames] = geonames.read_bytes()
    for old in settings.build_dir.glob("failed-*"):
        shutil.rmtree(old)
    try:
        expected = BAD_BUILDS[case](layers)
        with pytest.raises(RiskMapError) as info:
            build(settings)
        message = str(info.value)
        assert expected in message, message
        if not isinstance(info.value, BuildError):
            assert isinstance(info.value, SourceError) and "\n" not in message
            assert message.startswith("source "), message
        assert current_build_id(settings.build_dir) == first
        assert _snapshot(settings.build_dir) == before
        (failed,) = settings.build_dir.glob("failed-*")
        assert expected in (failed / "error.txt").read_text()
        if isinstance(info.value, BuildError):  # rows were read: their problems are kept
            report = pd.read_csv(failed / "rejects.csv")
            assert (report["reason"].str.contains("null island")).sum() == 185
    finally:
        for path, data in pristine.items():
            path.write_bytes(data)
        for extra in (layers / "sources" / "ucdp_ged_v23_1_caf").glob("ucdp.*"):
            extra.unlink()
