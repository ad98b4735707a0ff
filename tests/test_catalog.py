"""The source catalog: the project's own parses; mistakes are named by table and key."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
import shapely

from geo_service.catalog import load_catalog
from geo_service.errors import CatalogError
from geo_service.schemas import Kind
from tests.conftest import CATALOG, SOURCES
from tests.helpers import COUNTRIES

GOOD = """
[sources.mine]
kind = "incidents"
title = "t"
path = "data/events.csv"
crs = "EPSG:4326"
publisher = "p"
licence = "CC BY 4.0"
attribution = "a"
retrieved = 2026-11-23
[sources.mine.mapping]
date = "when"
"""


def test_project_catalog_names_every_bundled_file(catalog) -> None:
    keys = [s.key for s in catalog.sources]
    assert keys == [
        "ucdp_ged_caf",
        "tailings_failures",
        "geonames_africa",
        "geonames_brazil",
        "geonames_sle_places",
        "worldpop_sle_2019",
        "ocha_sle_districts",
        "ocha_sle_chiefdoms",
        "ocha_cod_territories",
        "ibge_mg_municipalities",
        "osm_places_sle",
        "usgs_africa_diamond_facilities",
        "amazon_mining_watch_brazil",
        "anm_sigbm_brazil",
    ]
    assert {s.kind for s in catalog.sources} == set(Kind)
    for s in catalog.sources:
        assert s.path.is_file() and s.path.is_relative_to(SOURCES), s.path
        assert s.licence and s.attribution and s.publisher
    assert all(p.is_file() for p in catalog.reference.countries)
    ucdp = catalog.sources[0].mapping.rules
    assert ucdp["fatalities"].field == "best" and ucdp["location_precision"].field == "where_prec"
    assert ucdp["type"].field == "type_of_violence" and ucdp["perpetrator"].field == "side_a"
    assert ucdp["source_id"].field == "id"
    assert len(catalog.digest()) == 64


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('date = "when"', 'dates = "when"'),
            r"\[sources.mine\].mapping: unknown mapping key\(s\) dates",
        ),
        (('kind = "incidents"', 'kind = "events"'), "kind must be one of concessions, communities"),
        (('licence = "CC BY 4.0"\n', ""), r"\[sources.mine\] licence: Field required"),
        (('date = "when"', 'date = { field = "when", value = "x" }'), "give exactly one of"),
        (
            ('date = "when"', 'date = "when"\nkeep = ["country"]'),
            "keep: country would replace canonical",
        ),
        (("[sources.mine]", "[sources.Mine]"), "source keys are lower-case"),
        (('title = "t"', 'title = "t'), "not valid TOML"),
    ],
)
def test_catalog_mistakes_are_named(tmp_path, change, message) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(GOOD.replace(*change))
    with pytest.raises(CatalogError, match=message):
        load_catalog(path)


def test_paths_are_relative_to_the_catalog(tmp_path) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(GOOD)
    assert load_catalog(path).sources[0].path == tmp_path / "data" / "events.csv"
    with pytest.raises(CatalogError, match="source catalog not found"):
        load_catalog(tmp_path / "missing.toml")
    assert CATALOG.exists()


# --- coverage as an outline ---------------------------------------------------------------------


def _car_outline(crs: str) -> gpd.GeoDataFrame:
    """Natural Earth's Central African Republic, west of 19° E, in ``crs``."""
    ne = pyogrio.read_dataframe(COUNTRIES, columns=["ADM0_A3"])
    car = ne.loc[ne["ADM0_A3"] == "CAF"].geometry.iloc[0]
    west = shapely.intersection(car, shapely.box(-180.0, -90.0, 19.0, 90.0))
    return gpd.GeoDataFrame({"name": ["west"]}, geometry=[west], crs="EPSG:4326").to_crs(crs)


def _with_coverage(tmp_path: Path, coverage: str) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(
        GOOD.replace("retrieved = 2026-11-23\n", f"retrieved = 2026-11-23\n{coverage}\n")
    )
    return path


def test_coverage_polygon_is_a_file_relative_to_the_catalog(tmp_path) -> None:
    (tmp_path / "areas").mkdir()
    # A GeoPackage in UTM 34N: reprojected to longitude/latitude when read.
    outline = _car_outline("EPSG:32634")
    outline.to_file(tmp_path / "areas" / "west_car.gpkg", layer="drawn")
    path = _with_coverage(
        tmp_path,
        'coverage = { polygon = "areas/west_car.gpkg", polygon_layer = "drawn", note = "n" }',
    )
    catalog = load_catalog(path)
    coverage = catalog.sources[0].coverage
    assert coverage.polygon == tmp_path / "areas" / "west_car.gpkg"
    area = coverage.area()
    west = _car_outline("EPSG:4326").geometry.iloc[0]
    assert area.symmetric_difference(west).area < 1e-6 * west.area
    assert shapely.intersects(area, shapely.Point(18.56, 4.36))  # Bangui
    assert not shapely.intersects(area, shapely.Point(21.98, 6.54))  # Bria
    assert catalog.sources[0].provenance()["coverage"] == {
        "countries": [],
        "polygon": "west_car.gpkg",
        "polygon_layer": "drawn",
        "bbox": None,
        "note": "n",
    }
    # The outline is an input: changing it changes the build's fingerprint.
    before = catalog.digest()
    _car_outline("EPSG:32634").buffer(1000).to_frame("geometry").to_file(
        tmp_path / "areas" / "west_car.gpkg", layer="drawn"
    )
    assert load_catalog(path).digest() != before


def test_coverage_bbox_and_across_the_antimeridian(tmp_path) -> None:
    box = load_catalog(_with_coverage(tmp_path, "coverage = { bbox = [14.4, 2.2, 19.0, 8.0] }"))
    assert box.sources[0].coverage.area().equals(shapely.box(14.4, 2.2, 19.0, 8.0))
    wrap = load_catalog(_with_coverage(tmp_path, "coverage = { bbox = [170, -20, -170, -10] }"))
    area = wrap.sources[0].coverage.area()
    assert shapely.intersects(area, shapely.points([[179.0, -15.0], [-179.0, -15.0]])).all()
    assert not shapely.intersects(area, shapely.Point(0.0, -15.0))
    assert load_catalog(_with_coverage(tmp_path, "")).sources[0].coverage.area() is None


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
@pytest.mark.parametrize(
    ("coverage", "message"),
    [
        ('coverage = { polygon = "nowhere.geojson" }', "coverage polygon cannot be read"),
        ('coverage = { polygon = "points.geojson" }', "must hold only polygons, found Point"),
        ('coverage = { polygon = "no_crs.gpkg" }', "coverage polygon has no CRS"),
        ("coverage = { bbox = [19, 2, 14, 8, 1] }", "coverage.bbox"),
        ("coverage = { bbox = [14, 8, 19, 2] }", "need -90 <= south < north <= 90"),
        ("coverage = { bbox = [14, 2, 14, 8] }", "distinct longitudes"),
        ('coverage = { polygon_layer = "drawn" }', "polygon_layer names a layer"),
        ('coverage = { area = "x.geojson" }', "coverage.area: Extra inputs"),
    ],
)
def test_coverage_mistakes_are_named(tmp_path, coverage, message) -> None:
    gpd.GeoDataFrame(geometry=[shapely.Point(18.56, 4.36)], crs="EPSG:4326").to_file(
        tmp_path / "points.geojson"
    )
    gpd.GeoDataFrame(geometry=[shapely.box(14, 2, 19, 8)], crs=None).to_file(
        tmp_path / "no_crs.gpkg"
    )
    with pytest.raises(CatalogError, match=message) as info:
        load_catalog(_with_coverage(tmp_path, coverage))
    assert "[sources.mine]" in str(info.value)
