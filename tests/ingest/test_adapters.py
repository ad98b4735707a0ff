"""Every adapter reads a real file: the bundled data, or the same data written in that format."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest

from geo_service.errors import SourceError
from geo_service.ingest import ADAPTERS, adapter_for
from geo_service.ingest.validate import validate_source
from geo_service.schemas import Kind
from tests.helpers import (
    COMMUNITY_MAPPING,
    COUNTRIES,
    COUNTRY_POLYGONS_AS_CONCESSIONS,
    GEONAMES_CSV,
    entry,
    geonames_points,
    write_vector,
)


@pytest.fixture(scope="module")
def communities() -> gpd.GeoDataFrame:
    """Real GeoNames rows (Central African Republic and Sierra Leone) as a GeoDataFrame."""
    return geonames_points(("CAF", "SLE"))


@pytest.fixture(scope="module")
def countries() -> gpd.GeoDataFrame:
    """Natural Earth outlines whose code is an ISO code (SAH, SDS, SOL are not: see test_validate)."""
    gdf = pyogrio.read_dataframe(COUNTRIES)
    return gdf[gdf["ADM0_A3"] == gdf["ISO_A3"]].reset_index(drop=True)


def _check_communities(result, expected: gpd.GeoDataFrame) -> None:
    assert result.counts["rejected"] == 0, result.problems["message"].tolist()[:5]
    layer = result.layer.set_index("source_id")
    assert set(layer.index) == set(expected["geonameid"])
    exp = expected.set_index("geonameid")
    xy = np.column_stack([layer.geometry.x, layer.geometry.y])
    xy_exp = np.column_stack([exp.loc[layer.index].geometry.x, exp.loc[layer.index].geometry.y])
    assert np.allclose(xy, xy_exp, atol=1e-6)
    assert (layer["name"] == exp.loc[layer.index, "name"]).all()
    assert layer.loc["2407656", "country"] == "SLE"  # Koidu, Kono district


def test_registry_names_every_format() -> None:
    assert set(ADAPTERS) == {"csv", "csv_wkt", "geojson", "gpkg", "shapefile", "kml", "geoparquet"}
    assert adapter_for(Path("x.gpkg")).name == "gpkg"
    assert adapter_for(Path("x.zip")).name == "shapefile"
    with pytest.raises(SourceError, match="cannot tell the format"):
        adapter_for(Path("x.xlsx"))


def test_csv_with_detected_lon_lat_columns(catalog, communities) -> None:
    # The GeoNames file names its columns latitude/longitude; the mapping does not say so.
    result = validate_source(
        entry(
            None,
            None,
            GEONAMES_CSV,
            kind=Kind.communities,
            mapping=COMMUNITY_MAPPING,
            crs="EPSG:4326",
        ),
        catalog.reference,
    )
    assert result.counts["read"] == 6206
    sub = result.layer[result.layer["country"].isin(["CAF", "SLE"])]
    assert len(sub) == len(communities)


def test_csv_with_named_lon_lat_columns(catalog) -> None:
    result = validate_source(
        next(e for e in catalog.sources if e.key == "ucdp_ged_caf"), catalog.reference
    )
    assert result.counts == {
        "read": 1848,
        "filtered": 0,
        "rejected": 0,
        "kept": 1848,
        "cleared": 0,
        "repaired": 0,
        "flagged": 0,
    }
    row = result.layer.set_index("source_id").loc["36210"]
    assert row["incident_id"] == "ucdp_ged_caf:36210"
    assert row["type"] == "state-based" and row["location_precision"] == "region"
    assert row["fatalities"] == 3 and str(row["date"].date()) == "2009-02-20"
    assert (row.geometry.x, row.geometry.y) == pytest.approx((26.486881, 5.399784))


def test_csv_wkt_polygons(tmp_path, catalog, countries) -> None:
    path = tmp_path / "countries.csv"
    frame = countries.drop(columns="geometry")
    frame["wkt"] = countries.geometry.to_wkt(rounding_precision=-1)
    frame.to_csv(path, index=False)
    result = validate_source(
        entry(
            None,
            None,
            path,
            kind=Kind.concessions,
            mapping=COUNTRY_POLYGONS_AS_CONCESSIONS,
            adapter="csv_wkt",
            crs="EPSG:4326",
        ),
        catalog.reference,
    )
    assert result.counts["rejected"] == 0
    assert len(result.layer) == len(countries)
    assert set(result.layer["footprint"]) == {"polygon"}
    assert result.layer["footprint_radius_m"].isna().all()
    caf = result.layer.set_index("source_id").loc["CAF"]
    original = countries.set_index("ADM0_A3").loc["CAF"].geometry
    assert caf.geometry.equals_exact(original, 1e-9)


@pytest.mark.parametrize(
    "fmt", ["geojson", "gpkg", "shapefile", "shapefile_zip", "kml", "geoparquet"]
)
def test_vector_formats_read_communities(tmp_path, catalog, communities, fmt) -> None:
    path, renames = write_vector(communities, tmp_path, fmt, stem="communities")
    mapping = {**COMMUNITY_MAPPING, **renames}
    layer = None
    if fmt == "gpkg":
        # A second layer: the adapter must read the one named.
        pyogrio.write_dataframe(
            pyogrio.read_dataframe(COUNTRIES), path, layer="countries", driver="GPKG", append=True
        )
        layer = "communities"
    result = validate_source(
        entry(None, None, path, kind=Kind.communities, mapping=mapping, layer=layer),
        catalog.reference,
    )
    _check_communities(result, communities)
    assert result.layer.crs.to_epsg() == 4326


def test_geopackage_layer_must_be_named_when_several(tmp_path, catalog, communities) -> None:
    path = tmp_path / "two.gpkg"
    pyogrio.write_dataframe(communities, path, layer="communities", driver="GPKG")
    pyogrio.write_dataframe(communities, path, layer="other", driver="GPKG", append=True)
    with pytest.raises(SourceError, match=r"has 2 layers \(communities, other\); name one"):
        validate_source(entry(None, None, path, kind=Kind.communities, mapping=COMMUNITY_MAPPING))
    with pytest.raises(
        SourceError, match="has no layer 'villages'; its layers are communities, other"
    ):
        validate_source(
            entry(
                None, None, path, kind=Kind.communities, mapping=COMMUNITY_MAPPING, layer="villages"
            )
        )


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "shapefile"])
def test_polygon_concessions_from_real_polygon_files(tmp_path, catalog, countries, fmt) -> None:
    suffix = {"geojson": ".geojson", "gpkg": ".gpkg", "shapefile": ".shp"}[fmt]
    path = tmp_path / f"countries{suffix}"
    driver = {"geojson": "GeoJSON", "gpkg": "GPKG", "shapefile": "ESRI Shapefile"}[fmt]
    pyogrio.write_dataframe(countries, path, driver=driver)
    mapping = dict(COUNTRY_POLYGONS_AS_CONCESSIONS)
    if fmt == "shapefile":
        mapping["holder"] = "SOVEREIGNT"  # 10 characters: fits a DBF name
    result = validate_source(
        entry(None, None, path, kind=Kind.concessions, mapping=mapping), catalog.reference
    )
    assert result.counts["rejected"] == 0
    assert len(result.layer) == len(countries)
    assert set(result.layer.geom_type) <= {"Polygon", "MultiPolygon"}
    assert result.layer.set_index("source_id").loc["BWA", "name"] == "Botswana"
