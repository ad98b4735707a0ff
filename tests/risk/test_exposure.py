"""People exposed on the real files: the WorldPop grid, the OCHA chiefdoms, the bundled sites.

Every figure the build gives is recomputed here another way: the grid read with rasterio,
each chiefdom cut out of it with ``rasterio.mask`` (cell centres inside, as the build counts),
distances measured on the WGS84 ellipsoid with ``pyproj.Geod``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
import rasterio.mask
import shapely
from pyproj import Geod

from geo_service.build import BuildResult
from geo_service.catalog import SourceCatalog
from geo_service.errors import CatalogError, SourceError
from geo_service.ingest.validate import validate_source
from tests.conftest import LAYERS, SOURCES
from tests.helpers import entry

WORLDPOP = SOURCES / "worldpop_sle_2019_constrained_100m" / "sle_ppp_2019_constrained.tif"
CHIEFDOMS = SOURCES / "ocha_codab_sle_adm2_adm3" / "sle_admbnda_adm3_1m_gov_ocha.geojson"
GEOD = Geod(ellps="WGS84")
#: Site points the rings are drawn around: not the stand-ins for a province or a country.
STAND_INS = ("admin1", "region", "country", "international")


def _grid() -> tuple[np.ndarray, rasterio.Affine]:
    with rasterio.open(WORLDPOP) as src:
        data = src.read(1, masked=True)
        return data.filled(0).astype(np.float64), src.transform


def _layer(built: BuildResult, name: str) -> gpd.GeoDataFrame:
    return gpd.read_parquet(built.path / built.catalog["layers"][name]["file"])


def test_the_worldpop_total_is_reproduced_from_the_grid(built: BuildResult) -> None:
    people, _ = _grid()
    total = float(people[people > 0].sum())
    meta = built.catalog["layers"]["worldpop_sle_2019"]
    assert meta["kind"] == "raster" and meta["year"] == 2019
    assert abs(meta["total"] - total) <= 1, (meta["total"], total)
    assert (
        abs(built.catalog["risk"]["exposure"]["grids"]["worldpop_sle_2019"]["people"] - total) <= 1
    )
    # The data's own README measured 6,737,137 persons.
    assert round(total) in (6_737_136, 6_737_137)
    with rasterio.open(built.path / meta["file"]) as cog:
        assert abs(float(np.nansum(cog.read(1).astype(np.float64))) - total) <= 1
    # Every person is in one chiefdom, or in the few coastal cells no chiefdom covers.
    units = _layer(built, "risk_units")
    chiefdoms = units[units["level"] == 3]
    assert len(chiefdoms) == 167
    assert 0.98 * total < chiefdoms["people"].sum() <= total + 1
    assert set(chiefdoms["people_source"]) == {"grid"}
    assert set(chiefdoms["people_year"]) == {2019}


def test_every_chiefdom_people_exposed_equals_an_independent_zonal_sum(
    built: BuildResult,
) -> None:
    people, transform = _grid()
    rows, cols = np.nonzero(people > 0)
    lon, lat = rasterio.transform.xy(transform, rows, cols, offset="center")
    lon, lat = np.asarray(lon), np.asarray(lat)
    count = people[rows, cols]
    # Distance from each populated cell to the nearest located site's footprint edge.
    sites = _layer(built, "mine_sites")
    sites = sites[
        (sites["country"] == "SLE") & ~sites["location_precision"].isin(STAND_INS)
    ].reset_index(drop=True)
    assert len(sites) >= 1, "the bundled data has Koidu's kimberlite mine, located on imagery"
    nearest = np.full(len(lon), np.inf)
    for site in sites.itertuples():
        _, _, metres = GEOD.inv(
            lon, lat, np.full(len(lon), site.geometry.x), np.full(len(lat), site.geometry.y)
        )
        nearest = np.minimum(nearest, np.maximum(metres - site.footprint_radius_m, 0.0))
    cell_of = {(int(r), int(c)): i for i, (r, c) in enumerate(zip(rows, cols, strict=True))}

    units = _layer(built, "risk_units").set_index("code")
    shapes = gpd.read_file(CHIEFDOMS)
    rings = [5.0, 10.0, 20.0, 50.0]
    checked = 0
    with rasterio.open(WORLDPOP) as src:
        for unit in shapes.itertuples():
            # The chiefdom cut out of the grid: the cells whose centre lies inside it.
            masked, window_transform = rasterio.mask.mask(
                src, [unit.geometry], crop=True, filled=False, all_touched=False
            )
            band = masked[0]
            r, c = np.nonzero(~np.ma.getmaskarray(band) & (band.filled(0) > 0))
            col_off = round((window_transform.c - transform.c) / transform.a)
            row_off = round((window_transform.f - transform.f) / transform.e)
            idx = np.array(
                [cell_of[(int(a) + row_off, int(b) + col_off)] for a, b in zip(r, c, strict=True)],
                dtype=int,
            )
            row = units.loc[unit.admin3Pcod]
            total = float(count[idx].sum()) if idx.size else 0.0
            assert row["people"] == pytest.approx(total, abs=1.0), unit.admin3Name
            for km in rings:
                inside = idx[nearest[idx] <= km * 1000.0] if idx.size else idx
                expected = float(count[inside].sum())
                # A cell within a few metres of a ring's edge may fall either side: the build
                # measures in UTM metres around a 64-segment circle, this test on the ellipsoid.
                edge = idx[np.abs(nearest[idx] - km * 1000.0) < 30.0] if idx.size else idx
                slack = float(count[edge].sum()) + 1.0
                got = row[f"people_mine_{km:g}km"]
                assert abs(got - expected) <= slack, (unit.admin3Name, km, got, expected)
            checked += 1
    assert checked == 167
    kono = units.loc[shapes.loc[shapes["admin2Name"] == "Kono", "admin3Pcod"]]
    assert len(kono) == 15 and set(kono["parent_code"]) == {"SL0103"}
    # Koidu's kimberlite mine is in Kono: some of its chiefdoms have people within 5 km of it.
    assert (kono["people_mine_5km"] > 0).sum() >= 2
    assert (kono["people_mine_5km"] <= kono["people_mine_10km"]).all()
    assert (kono["people_mine_10km"] <= kono["people_mine_20km"]).all()


def test_brumadinho_and_mariana_show_their_dams(built: BuildResult) -> None:
    units = _layer(built, "risk_units").set_index("code")
    dams = _layer(built, "tailings_dams")
    for code, name, dam in (
        ("3109006", "Brumadinho", "Córrego do Feijão"),
        ("3140001", "Mariana", "Germano"),
    ):
        row = units.loc[code]
        assert row["name"] == name and row["level"] == 2 and row["parent_code"] == "31"
        outline = row.geometry
        inside = dams[dams.geometry.within(outline)]
        assert row["tailings_dams"] == len(inside) > 0
        assert (
            inside["mine"].fillna("").str.contains(dam).any()
            or inside["name"].str.contains(dam).any()
        )
        # No grid covers Brazil: the town's own population stands in, and the row says so.
        assert row["people_source"] == "communities" and pd.isna(row["people_year"])
        assert row["people_runout"] > 0
        assert row["score_max"] >= 75 and row["risk_class"] == "very high"


def test_communities_say_where_their_people_come_from(built: BuildResult) -> None:
    risk = _layer(built, "community_risk")
    sle = risk[risk["country"] == "SLE"]
    on_grid = sle[sle["people_source"] == "grid"]
    assert len(on_grid) > 0.5 * len(sle)
    # People are counted once: the catchments hold no more than the grid.
    assert on_grid["people"].sum() <= built.catalog["layers"]["worldpop_sle_2019"]["total"] + 1
    elsewhere = risk[risk["country"] != "SLE"]
    assert set(elsewhere["people_source"].dropna()) == {"point"}
    known = elsewhere["population"].notna()
    assert (elsewhere.loc[known, "people"] == elsewhere.loc[known, "population"]).all()
    assert elsewhere.loc[~known, "people"].isna().all()


def test_osm_rows_never_reach_a_cc_by_layer(built: BuildResult) -> None:
    layers = built.catalog["layers"]
    osm = layers["osm_places_sle"]
    assert osm["sources"] == ["osm_places_sle"] and osm["count"] > 9000
    assert built.catalog["sources"]["osm_places_sle"]["licence"] == "ODbL 1.0"
    osm_ids = set(_layer(built, "osm_places_sle")["place_id"])
    for name, meta in layers.items():
        if name == "osm_places_sle" or meta["kind"] == "raster":
            continue
        assert "osm_places_sle" not in meta["sources"], name
        frame = gpd.read_parquet(built.path / meta["file"])
        if "source" in frame:
            assert "osm_places_sle" not in set(frame["source"].dropna()), name
        for col in frame.columns.drop(frame.geometry.name):
            if pd.api.types.is_object_dtype(frame[col]) or pd.api.types.is_string_dtype(frame[col]):
                assert not set(frame[col].dropna().astype(str)) & osm_ids, (name, col)


def test_a_unit_file_with_a_duplicate_code_or_a_crossed_ring_is_named(
    catalog: SourceCatalog, tmp_path: Path
) -> None:
    shapes = gpd.read_file(CHIEFDOMS)
    first, second = 3, 10
    third = next(
        i for i in range(20, len(shapes)) if shapes.geometry.iloc[i].geom_type == "Polygon"
    )
    shapes.loc[second, "admin3Pcod"] = shapes.loc[first, "admin3Pcod"]
    # Two neighbouring vertices swapped: the ring crosses itself, and GEOS repairs it without
    # changing its area by more than the tolerance.
    ring = list(shapes.geometry.iloc[third].exterior.coords)
    k = len(ring) // 2
    ring[k], ring[k + 1] = ring[k + 1], ring[k]
    shapes.loc[third, "geometry"] = shapely.Polygon(ring)
    assert not shapes.geometry.iloc[third].is_valid
    path = tmp_path / "chiefdoms.geojson"
    pyogrio.write_dataframe(shapes, path)
    result = validate_source(entry(catalog, "ocha_sle_chiefdoms", path))
    messages = result.problems["message"].tolist()
    code = shapes.loc[first, "admin3Pcod"]
    assert (
        f"chiefdoms.geojson, feature {second + 1}, field 'admin3Pcod' → code: "
        f"duplicate id '{code}' (first on feature {first + 1})" in messages
    ), messages
    crossed = [
        m
        for m in messages
        if m.startswith(f"chiefdoms.geojson, feature {third + 1}, field 'geometry'")
    ]
    assert crossed and "Self-intersection" in crossed[0] and "repaired" in crossed[0], messages
    assert result.counts["rejected"] == 1 and len(result.layer) == 166


def test_overlapping_units_are_reported_with_both_codes(
    catalog: SourceCatalog, tmp_path: Path
) -> None:
    shapes = gpd.read_file(CHIEFDOMS)
    a, b = 0, int(np.flatnonzero(shapes.geometry.touches(shapes.geometry.iloc[0]))[0])
    shapes.loc[b, "geometry"] = shapes.geometry.iloc[b].union(shapes.geometry.iloc[a].buffer(-0.01))
    path = tmp_path / "chiefdoms.geojson"
    pyogrio.write_dataframe(shapes, path)
    result = validate_source(entry(catalog, "ocha_sle_chiefdoms", path))
    flagged = result.problems[result.problems["action"] == "flagged"]["message"].tolist()
    hits = [m for m in flagged if "overlaps unit" in m]
    assert len(hits) == 1, flagged
    first, second = sorted((a, b))
    assert hits[0].startswith(f"chiefdoms.geojson, feature {second + 1}, field 'geometry': ")
    assert f"overlaps unit {shapes.loc[first, 'admin3Pcod']} of the same level by" in hits[0]
    # A real file has none above the tolerance.
    clean = validate_source(entry(catalog, "ocha_sle_chiefdoms", CHIEFDOMS))
    assert clean.counts["flagged"] == 0 and clean.counts["kept"] == 167


def test_a_population_grid_needs_a_crs_a_year_and_counts_of_zero_or_more(
    catalog: SourceCatalog, tmp_path: Path
) -> None:
    with rasterio.open(WORLDPOP) as src:
        window = rasterio.windows.Window(2000, 1500, 300, 200)
        data = src.read(1, window=window)
        profile = {
            **src.profile,
            "width": 300,
            "height": 200,
            "transform": src.window_transform(window),
        }
        nodata = src.nodata
    populated = np.argwhere(data > 0)
    r, c = populated[0]
    data[r, c] = -3.0
    bad = tmp_path / "negative.tif"
    with rasterio.open(bad, "w", **profile) as dst:
        dst.write(data, 1)
    result = validate_source(entry(catalog, "worldpop_sle_2019", bad))
    assert result.counts["rejected"] == 1
    assert result.problems["message"].tolist() == [
        f"negative.tif, row {r + 1}, column {c + 1}, field 'band 1': a negative count of "
        "people (-3); the cell counts as nobody"
    ]
    expected = float(data[(data > 0) & (data != nodata)].astype(np.float64).sum())
    assert result.grid is not None and result.grid.total == pytest.approx(expected)

    no_crs = tmp_path / "no_crs.tif"
    with rasterio.open(no_crs, "w", **{**profile, "crs": None}) as dst:
        dst.write(data, 1)
    with pytest.raises(SourceError, match="no_crs.tif: has no coordinate reference system"):
        validate_source(entry(catalog, "worldpop_sle_2019", no_crs))

    text = (LAYERS / "sources.toml").read_text(encoding="utf-8").replace("year = 2019\n", "")
    copy = tmp_path / "layers"
    shutil.copytree(LAYERS / "sources", copy / "sources")
    (copy / "sources.toml").write_text(text, encoding="utf-8")
    from geo_service.catalog import load_catalog

    with pytest.raises(CatalogError, match=r"\[sources.worldpop_sle_2019\] .*state the year"):
        load_catalog(copy / "sources.toml")


def test_units_are_served_with_their_codes_as_text(built: BuildResult) -> None:
    meta = built.catalog["layers"]["risk_units"]
    assert meta["id_field"] == "code"
    assert meta["fields"]["code"] in ("str", "string", "object")
    assert set(meta["sources"]) >= {
        "worldpop_sle_2019",
        "ocha_sle_chiefdoms",
        "ibge_mg_municipalities",
    }
    assert "osm_places_sle" not in meta["sources"]
    assert json.dumps(meta)  # plain JSON
