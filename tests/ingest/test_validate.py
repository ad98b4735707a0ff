"""Every validation rule, each shown on a real row made bad."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from geo_service.errors import SourceError
from geo_service.ingest.validate import validate_source
from geo_service.schemas import Kind
from tests.helpers import (
    ANM_CSV,
    COMMUNITY_MAPPING,
    COUNTRIES,
    COUNTRY_POLYGONS_AS_CONCESSIONS,
    GEONAMES_CSV,
    UCDP_CSV,
    entry,
    geonames_points,
    read_text_csv,
    record_start_lines,
    write_text_csv,
)


@pytest.fixture(scope="module")
def ucdp() -> pd.DataFrame:
    return read_text_csv(UCDP_CSV)


def ucdp_with(tmp_path, ucdp: pd.DataFrame, edits: dict[int, dict[str, str]], rows: int = 60):
    """The first ``rows`` real UCDP rows, with some values replaced (row index → column → value)."""
    frame = ucdp.head(rows).copy()
    for i, values in edits.items():
        for col, value in values.items():
            frame.loc[i, col] = value
    return write_text_csv(frame, tmp_path / "ucdp.csv")


def check(catalog, path, key="ucdp_ged_caf", **kw):
    return validate_source(
        entry(catalog, key, path, **kw), catalog.reference, today=dt.date(2026, 11, 23)
    )


def problem(result, **match) -> pd.Series:
    p = result.problems
    for k, v in match.items():
        p = p[p[k] == v]
    assert len(p) == 1, (match, result.problems[["field", "reason", "action"]].to_string())
    return p.iloc[0]


def test_broken_date_on_line_17_names_line_and_field(tmp_path, ucdp, catalog) -> None:
    # UCDP quotes multi-line source texts: records and lines differ, as in the real file.
    path = ucdp_with(tmp_path, ucdp, {})
    starts = record_start_lines(path)
    record = starts.index(17)  # the record that starts on line 17
    path = ucdp_with(tmp_path, ucdp, {record: {"date_start": "2009-02-31T00:00:00"}})
    assert record_start_lines(path)[record] == 17
    result = check(catalog, path)
    p = problem(result, field="date_start")
    assert p["position"] == 17 and p["action"] == "rejected" and p["target"] == "date"
    assert p["message"] == (
        "ucdp.csv, line 17, field 'date_start' → date: expected a date (YYYY-MM-DD, an ISO 8601 "
        "timestamp, or the format set in the mapping), got '2009-02-31T00:00:00'"
    )
    assert result.counts["rejected"] == 1 and result.counts["kept"] == 59


def test_line_numbers_in_a_file_without_multiline_fields(tmp_path, catalog) -> None:
    frame = read_text_csv(GEONAMES_CSV).head(40)
    frame.loc[15, "population"] = "about 2000"  # data row 16 sits on line 17
    path = write_text_csv(frame, tmp_path / "places.csv")
    result = check(catalog, path, key="geonames_africa")
    p = problem(result, field="population")
    assert (p["position"], p["action"]) == (17, "cleared")
    assert p["reason"] == "expected a whole number >= 0, got 'about 2000'"
    row = result.layer.set_index("source_id").loc[frame.loc[15, "geonameid"]]
    assert pd.isna(row["population"])  # kept, the wrong value left empty


def test_required_fields(tmp_path, ucdp, catalog) -> None:
    path = ucdp_with(tmp_path, ucdp, {3: {"id": ""}, 4: {"date_start": ""}})
    result = check(catalog, path)
    assert problem(result, field="id")["reason"] == "missing source_id"
    assert problem(result, field="date_start")["reason"] == "missing date"
    assert result.counts["rejected"] == 2
    assert len(result.layer) == 58


def test_required_column_absent_is_one_clear_error(tmp_path, ucdp, catalog) -> None:
    path = write_text_csv(ucdp.head(5).drop(columns=["date_start"]), tmp_path / "ucdp.csv")
    with pytest.raises(
        SourceError, match="column\\(s\\) date_start named in the mapping are not in the file"
    ):
        check(catalog, path)
    mapping = {"lon": "longitude", "lat": "latitude", "source_id": "id", "country": "country"}
    with pytest.raises(SourceError, match="no column for the required field 'date'"):
        check(catalog, path, mapping=mapping)


def test_types(tmp_path, ucdp, catalog) -> None:
    path = ucdp_with(
        tmp_path, ucdp, {5: {"best": "three"}, 6: {"best": "2.5"}, 7: {"longitude": "26,49"}}
    )
    result = check(catalog, path)
    assert (
        problem(result, field="best", value="three")["reason"]
        == "expected a whole number >= 0, got 'three'"
    )
    assert problem(result, field="best", value="2.5")["action"] == "cleared"
    lon = problem(result, field="longitude")
    assert (lon["action"], lon["reason"]) == ("rejected", "expected a number, got '26,49'")
    kept = result.layer.set_index("source_id")
    assert pd.isna(kept.loc[ucdp.loc[5, "id"], "fatalities"])


def test_dates_in_publisher_format_and_in_the_future(tmp_path, ucdp, catalog) -> None:
    frame = ucdp.head(20).copy()
    frame["date_start"] = pd.to_datetime(frame["date_start"]).dt.strftime("%d/%m/%Y")
    frame.loc[2, "date_start"] = "12/05/2031"
    path = write_text_csv(frame, tmp_path / "ucdp.csv")
    mapping = entry(catalog, "ucdp_ged_caf", path).mapping
    raw = {k: v.model_dump(exclude_defaults=True) for k, v in mapping.rules.items()}
    raw["date"] = {"field": "date_start", "format": "%d/%m/%Y"}
    raw.update(lon="longitude", lat="latitude")
    result = check(catalog, path, mapping=raw)
    assert (
        problem(result, field="date_start")["reason"] == "date is in the future, got '12/05/2031'"
    )
    assert str(result.layer.set_index("source_id").loc["36210", "date"].date()) == "2009-02-20"
    # Without the format the same values are not ISO dates: named, with the expected form.
    bad = check(catalog, path)
    assert bad.counts["rejected"] == 20
    assert "expected a date (YYYY-MM-DD" in bad.problems["reason"].iloc[0]


def test_coordinate_ranges(tmp_path, ucdp, catalog) -> None:
    path = ucdp_with(
        tmp_path, ucdp, {1: {"latitude": "95.3"}, 2: {"longitude": "200"}, 3: {"best": "-3"}}
    )
    result = check(catalog, path)
    assert (
        problem(result, field="latitude")["reason"] == "latitude out of range −90..90: got '95.3'"
    )
    assert (
        problem(result, field="longitude")["reason"]
        == "longitude out of range −180..180: got '200.0'"
    )
    fat = problem(result, field="best")
    assert (fat["action"], fat["reason"]) == ("cleared", "expected a whole number >= 0, got '-3'")
    assert result.counts["rejected"] == 2


def test_real_negative_dam_height_is_cleared(catalog) -> None:
    # The ANM register really holds a dam 703 m below ground.
    result = validate_source(
        next(e for e in catalog.sources if e.key == "anm_sigbm_brazil"), catalog.reference
    )
    p = problem(result, value="-703.0")
    assert p["target"] == "height_m" and p["action"] == "cleared"
    assert p["reason"] == "expected a number > 0, got '-703.0'"
    dam = result.layer.set_index("source_id").loc[
        str(read_text_csv(ANM_CSV).iloc[p["record"] - 1]["source_id"])
    ]
    assert pd.isna(dam["height_m"]) and dam["name"]


def test_enum_country_and_url(tmp_path, ucdp, catalog) -> None:
    path = ucdp_with(tmp_path, ucdp, {1: {"where_prec": "9"}, 2: {"country": "Centrafrique"}})
    result = check(catalog, path)
    prec = problem(result, field="where_prec")
    assert prec["action"] == "cleared" and prec["reason"].startswith(
        "expected one of exact, near, admin2"
    )
    assert problem(result, field="country")["action"] == "rejected"
    raw = {
        "lon": "longitude",
        "lat": "latitude",
        "source_id": "id",
        "date": "date_start",
        "country": "country",
        "source_url": "source_article",
    }
    res = check(catalog, path, mapping=raw)
    url = res.problems[res.problems["field"] == "source_article"]
    articles = ucdp.head(60)["source_article"]
    assert len(url) == ((articles != "") & ~articles.str.startswith("https://")).sum() > 50
    assert (url["action"] == "cleared").all()
    # One real citation is a URL, and is kept as the incident's source_url.
    assert res.layer["source_url"].dropna().tolist() == [
        "https://www.amnesty.org/en/region/central-african-republic/report-2012"
    ]
    assert url["reason"].iloc[0] == "expected an http(s) URL, got 'Reuters  25/2-09'"


def test_natural_earth_codes_that_are_not_iso_are_rejected(catalog) -> None:
    result = validate_source(
        entry(
            None, None, COUNTRIES, kind=Kind.concessions, mapping=COUNTRY_POLYGONS_AS_CONCESSIONS
        ),
        catalog.reference,
    )
    rejected = result.problems[result.problems["action"] == "rejected"]
    assert sorted(rejected["value"]) == [
        "SAH",
        "SDS",
        "SOL",
    ]  # Western Sahara, South Sudan, Somaliland


def test_crs_missing_declared_and_reprojected(tmp_path, ucdp, catalog) -> None:
    path = ucdp_with(tmp_path, ucdp, {})
    with pytest.raises(SourceError, match="has no CRS and none is declared"):
        check(catalog, path, crs=None)
    # The real rows in UTM zone 34N (a GeoPackage with its own CRS) come back to EPSG:4326.
    wgs = check(catalog, path).layer
    utm = wgs.to_crs("EPSG:32634")
    gpkg = tmp_path / "utm.gpkg"
    pyogrio.write_dataframe(utm[["source_id", "date", "country", "geometry"]], gpkg, driver="GPKG")
    mapping = {"source_id": "source_id", "date": "date", "country": "country"}
    back = validate_source(
        entry(None, None, gpkg, kind=Kind.incidents, mapping=mapping), catalog.reference
    )
    assert back.counts["rejected"] == 0
    assert np.allclose(
        shapely.get_coordinates(back.layer.geometry),
        shapely.get_coordinates(wgs.geometry),
        atol=1e-7,
    )
    with pytest.raises(SourceError, match="differs from the declared crs"):
        validate_source(
            entry(None, None, gpkg, kind=Kind.incidents, mapping=mapping, crs="EPSG:4326")
        )


def test_swapped_lon_lat_is_flagged(tmp_path, ucdp, catalog) -> None:
    # Bangui is at about 18.6 E, 4.4 N; swapped, it would fall in the Gulf of Guinea.
    row = ucdp[(ucdp["where_prec"] == "1")].index[0]
    lon, lat = ucdp.loc[row, "longitude"], ucdp.loc[row, "latitude"]
    path = ucdp_with(tmp_path, ucdp, {row: {"longitude": lat, "latitude": lon}})
    result = check(catalog, path)
    p = problem(result, action="flagged")
    assert p["reason"].startswith("longitude and latitude look swapped")
    kept = result.layer.set_index("source_id").loc[ucdp.loc[row, "id"]]
    assert kept["qa_flags"] == "probable_lonlat_swap"
    assert result.counts["rejected"] == 0 and result.counts["flagged"] == 1


def test_point_outside_declared_country_is_flagged(catalog) -> None:
    # Real: USGS places Namibia's marine diamond licences offshore.
    usgs = next(e for e in catalog.sources if e.key == "usgs_africa_diamond_facilities")
    result = validate_source(usgs, catalog.reference)
    flagged = result.problems[result.problems["action"] == "flagged"]
    assert (
        len(flagged) == 2
        and flagged["reason"].str.contains("outside its declared country NAM").all()
    )


def _country_file(tmp_path, geometry) -> object:
    gdf = pyogrio.read_dataframe(COUNTRIES)
    gdf = gdf[gdf["ADM0_A3"] == "CAF"].copy()
    gdf["geometry"] = [geometry(gdf.geometry.iloc[0])]
    path = tmp_path / "caf.geojson"
    pyogrio.write_dataframe(gdf, path, driver="GeoJSON")
    return path


def test_invalid_polygon_repaired_when_shape_kept(tmp_path, catalog) -> None:
    def small_bowtie(geom):
        ring = np.asarray(geom.exterior.coords)
        ring[[10, 11]] = ring[[11, 10]]  # two neighbouring vertices swapped: a tiny self-crossing
        return shapely.Polygon(ring)

    path = _country_file(tmp_path, small_bowtie)
    assert not shapely.is_valid(pyogrio.read_dataframe(path).geometry.iloc[0])
    result = validate_source(
        entry(None, None, path, kind=Kind.concessions, mapping=COUNTRY_POLYGONS_AS_CONCESSIONS),
        catalog.reference,
    )
    p = problem(result, action="repaired")
    assert "Self-intersection" in p["reason"]
    geom = result.layer.geometry.iloc[0]
    assert (
        geom.is_valid
        and abs(
            geom.area
            - pyogrio.read_dataframe(COUNTRIES).set_index("ADM0_A3").loc["CAF"].geometry.area
        )
        < 0.01
    )


def test_invalid_polygon_rejected_when_repair_changes_shape(tmp_path, catalog) -> None:
    def scrambled(geom):
        # The outline simplified to 55 vertices first: repairing a ring of thousands of
        # vertices in random order takes GEOS a minute, and the verdict is the same.
        ring = np.asarray(geom.simplify(0.1).exterior.coords)[:-1]
        order = np.random.default_rng(1).permutation(len(ring))
        return shapely.Polygon(ring[order])

    path = _country_file(tmp_path, scrambled)
    result = validate_source(
        entry(None, None, path, kind=Kind.concessions, mapping=COUNTRY_POLYGONS_AS_CONCESSIONS),
        catalog.reference,
    )
    p = problem(result, action="rejected")
    assert p["reason"].endswith("cannot be repaired without changing its shape")
    assert len(result.layer) == 0


def test_wrong_geometry_type(tmp_path, catalog) -> None:
    # Real places, three of them replaced by real river lines: those three are rejected.
    rivers = pyogrio.read_dataframe(
        COUNTRIES.parent / "ne_10m_rivers_lake_centerlines_africa.geojson"
    ).head(3)
    places = geonames_points().head(20)
    places.loc[[4, 9, 14], "geometry"] = rivers.geometry.to_numpy()
    path = tmp_path / "places.geojson"
    pyogrio.write_dataframe(places, path, driver="GeoJSON")
    result = validate_source(
        entry(None, None, path, kind=Kind.communities, mapping=COMMUNITY_MAPPING),
        catalog.reference,
    )
    assert result.counts["rejected"] == 3 and result.counts["kept"] == 17
    rejected = result.problems[result.problems["action"] == "rejected"]
    assert rejected["position"].tolist() == [5, 10, 15]
    assert (rejected["field"] == "geometry").all()
    assert rejected["reason"].str.match(r"expected Point, got (Multi)?LineString$").all()
    # A file of nothing but lines is the wrong file (or kind): one error, not a reject per row.
    rivers["country"] = "COD"
    only_lines = tmp_path / "rivers.geojson"
    pyogrio.write_dataframe(rivers, only_lines, driver="GeoJSON")
    with pytest.raises(
        SourceError,
        match=r"rivers.geojson, field 'geometry': every geometry in it is LineString or "
        r"MultiLineString \(3 features\) and this kind needs Point: is it the right file, or the right kind\?",
    ):
        validate_source(
            entry(
                None,
                None,
                only_lines,
                kind=Kind.communities,
                mapping={"source_id": "rivernum", "name": "name"},
            ),
            catalog.reference,
        )


def test_duplicate_ids(tmp_path, ucdp, catalog) -> None:
    path = ucdp_with(tmp_path, ucdp, {9: {"id": ucdp.loc[2, "id"]}}, rows=20)
    result = check(catalog, path)
    p = problem(result, action="rejected")
    first_line = record_start_lines(path)[2]
    assert (
        p["reason"]
        == f"duplicate id 'ucdp_ged_caf:{ucdp.loc[2, 'id']}' (first on line {first_line})"
    )
    assert p["position"] == record_start_lines(path)[9]


def test_unknown_sensitivity_is_refused_not_published(tmp_path, ucdp, catalog) -> None:
    frame = ucdp.head(10).copy()
    frame["sensitivity"] = "public"
    frame.loc[4, "sensitivity"] = "secret"
    frame.loc[5, "sensitivity"] = "restricted"
    path = write_text_csv(frame, tmp_path / "ucdp.csv")
    base = entry(catalog, "ucdp_ged_caf", path).mapping
    raw = {k: v.model_dump(exclude_defaults=True) for k, v in base.rules.items()}
    raw.update(lon="longitude", lat="latitude", sensitivity="sensitivity")
    result = check(catalog, path, mapping=raw)
    assert (
        problem(result, field="sensitivity")["reason"]
        == "expected public or restricted, got 'secret'"
    )
    assert result.layer["sensitivity"].value_counts().to_dict() == {"public": 8, "restricted": 1}


def test_row_filter_counts(catalog) -> None:
    anm = next(e for e in catalog.sources if e.key == "anm_sigbm_brazil")
    result = validate_source(anm, catalog.reference)
    assert (
        result.counts["read"] == 918
        and result.counts["filtered"] == 314
        and result.counts["kept"] == 604
    )


def test_malformed_and_empty_csv(tmp_path, ucdp, catalog) -> None:
    path = ucdp_with(tmp_path, ucdp, {}, rows=10)
    text = path.read_text(encoding="utf-8").rstrip("\n").split("\n")
    text.insert(3, "1,2,3")  # a row with three fields, on line 4
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    result = check(catalog, path)
    assert len(result.layer) == 10
    # The short row is a rejected row like any other: in the rejects, and in the counts.
    p = problem(result, action="rejected")
    assert (p["position"], p["value"]) == (4, "1,2,3")
    assert p["message"] == "ucdp.csv, line 4: expected 48 fields, got 3; row skipped"
    assert result.counts["read"] == 11 and result.counts["rejected"] == 1
    # Lines after it still point at their own line.
    later = ucdp_with(tmp_path, ucdp, {7: {"best": "many"}}, rows=10)
    text = later.read_text(encoding="utf-8").rstrip("\n").split("\n")
    text.insert(3, "1,2,3")
    later.write_text("\n".join(text) + "\n", encoding="utf-8")
    best = problem(check(catalog, later), field="best")
    assert best["position"] == record_start_lines(later)[8]  # the short row is record 4
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(SourceError, match="file is empty"):
        check(catalog, empty)
    with pytest.raises(SourceError, match="file not found"):
        check(catalog, tmp_path / "nope.csv")


def test_latin1_csv_needs_its_encoding(tmp_path, catalog) -> None:
    frame = read_text_csv(GEONAMES_CSV).drop(columns=["alternatenames"])
    accented = frame["name"].map(
        lambda n: not n.isascii() and n.encode("latin-1", "ignore").decode("latin-1") == n
    )
    frame = frame[accented].head(25)
    assert len(frame) == 25
    path = tmp_path / "latin1.csv"
    frame.to_csv(path, index=False, encoding="latin-1")
    mapping = {"source_id": "geonameid", "country": "country_iso3"}
    with pytest.raises(
        SourceError, match=r'line \d+, byte offset \d+: .* is not valid utf-8.*encoding = "cp1252"'
    ):
        check(catalog, path, key="geonames_africa", mapping=mapping)
    ok = check(catalog, path, key="geonames_africa", encoding="latin-1", mapping=mapping)
    assert ok.counts["rejected"] == 0
    assert sorted(ok.layer["name"]) == sorted(frame["name"])


def test_byte_order_mark_is_not_part_of_the_first_column(tmp_path, catalog) -> None:
    frame = read_text_csv(GEONAMES_CSV).head(20)
    path = tmp_path / "bom.csv"
    frame.to_csv(path, index=False, encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    result = check(catalog, path, key="geonames_africa")
    assert result.counts["kept"] == 20
