"""The source catalog: the project's own parses; mistakes are named by table and key."""

from __future__ import annotations

import pytest

from geo_service.catalog import load_catalog
from geo_service.errors import CatalogError
from geo_service.schemas import Kind
from tests.conftest import CATALOG, SOURCES

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
        "geonames_africa",
        "geonames_brazil",
        "usgs_africa_diamond_facilities",
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
