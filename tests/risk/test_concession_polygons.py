"""Mapped mine footprints (Amazon Mining Watch polygons): read, repaired, scored from their edge.

All on the bundled real data; distances are measured here independently, in an azimuthal
equidistant projection centred on the community (exact distances from its centre).
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyarrow.parquet as pq
import pytest
import shapely
from fastapi.testclient import TestClient
from pyproj import CRS, Transformer

from geo_service.api.app import create_app
from geo_service.catalog import SourceCatalog, SourceEntry
from geo_service.ingest.validate import validate_source
from geo_service.maps.layers import load_layers, words
from geo_service.risk.concession_risk import ConcessionRiskParams, footprint_growth
from geo_service.risk.params import load_risk_params
from geo_service.settings import ApiSettings
from geo_service.store.files import load_layer, read_build_catalog
from tests.conftest import LAYERS

KEY = "amazon_mining_watch_brazil"
UNKNOWN = "unknown (mining scar detected from imagery)"


def _entry(catalog: SourceCatalog) -> SourceEntry:
    return next(e for e in catalog.sources if e.key == KEY)


def _published(catalog: SourceCatalog) -> gpd.GeoDataFrame:
    """The bundled file as the publisher's values, read without the project's adapters."""
    return gpd.read_parquet(_entry(catalog).path)


def test_every_polygon_is_read_with_its_period_area_and_unknown_commodity(catalog) -> None:
    entry = _entry(catalog)
    published = _published(catalog)
    rows = pq.ParquetFile(entry.path).metadata.num_rows
    result = validate_source(entry, catalog.reference)
    # No row filter: every feature of the file is read and kept, none repaired or rejected.
    assert result.counts["read"] == rows == len(published)
    assert result.counts["filtered"] == 0
    assert result.counts["kept"] == rows - result.counts["rejected"]
    assert result.counts["repaired"] == int((~shapely.is_valid(published.geometry.values)).sum())
    layer = result.layer.set_index("source_id")
    assert layer.index.is_unique
    mine = layer.loc[published["amw_id"]]
    assert (mine["commodity"] == UNKNOWN).all()
    assert (mine["footprint"] == "polygon").all() and (mine["location_precision"] == "exact").all()
    # The period code's year (201800 → 2018, 202502 → 2025) and the published area, unchanged.
    assert (mine["period_year"].to_numpy() == published["period"].to_numpy() // 100).all()
    assert np.array_equal(mine["area_ha"].to_numpy(), published["mined_area_ha"].to_numpy())
    assert (mine["period"].astype(int).to_numpy() == published["period"].to_numpy()).all()
    assert mine.geometry.geom_equals_exact(published.set_index("amw_id").geometry, 0).all()


def _spiked(polygon: shapely.Polygon) -> shapely.Polygon:
    """The polygon with a zero-area spike out of its first edge: invalid, and repairable with
    its area unchanged."""
    ring = np.asarray(polygon.exterior.coords)
    a, b = ring[0], ring[1]
    mid = (a + b) / 2
    normal = np.array([b[1] - a[1], a[0] - b[0]])
    tip = mid + normal  # as far out as the edge is long, on either side
    coords = np.vstack([ring[:1], [mid, tip, mid], ring[1:]])
    return shapely.Polygon(coords, [np.asarray(r.coords) for r in polygon.interiors])


def _scrambled(polygon: shapely.Polygon) -> shapely.Polygon:
    """The polygon's exterior with two distant vertices swapped: a figure of eight."""
    ring = np.asarray(polygon.exterior.coords)[:-1].copy()
    i, j = 1, len(ring) // 2 + 1
    ring[[i, j]] = ring[[j, i]]
    return shapely.Polygon(ring)


def test_invalid_real_polygons_are_repaired_or_rejected_and_reported(
    catalog, tmp_path: Path
) -> None:
    published = _published(catalog)
    singles = published[published.geom_type == "Polygon"]
    sample = singles.iloc[:200].copy().reset_index(drop=True)
    # The real data has no invalid polygon: break two real ones, as a publisher's might be.
    big = sample.index[shapely.get_num_coordinates(sample.geometry.values) >= 12]
    fixable, broken = int(big[0]), int(big[1])
    sample.loc[fixable, "geometry"] = _spiked(sample.geometry[fixable])
    sample.loc[broken, "geometry"] = _scrambled(sample.geometry[broken])
    assert not sample.geometry[fixable].is_valid and not sample.geometry[broken].is_valid
    path = tmp_path / "amw_sample.parquet"
    sample.to_parquet(path, index=False)
    entry = _entry(catalog).model_copy(update={"path": path})

    result = validate_source(entry, catalog.reference)

    assert result.counts["read"] == len(sample)
    assert result.counts["repaired"] == 1 and result.counts["rejected"] == 1
    problems = result.problems.set_index("action")
    repaired = problems.loc[["repaired"]].iloc[0]
    assert repaired["file"] == path.name and repaired["field"] == "geometry"
    assert repaired["position"] == fixable + 1  # features are numbered from 1
    assert f"feature {fixable + 1}" in repaired["message"] and "repaired" in repaired["message"]
    rejected = problems.loc[["rejected"]].iloc[0]
    assert rejected["position"] == broken + 1 and rejected["field"] == "geometry"
    kept = result.layer.set_index("source_id").loc[sample["amw_id"][fixable]]
    assert kept.geometry.is_valid
    assert kept.geometry.area == pytest.approx(sample.geometry[fixable].area, rel=1e-9)
    assert sample["amw_id"][broken] not in set(result.layer["source_id"])


def _aeqd_distances(point: shapely.Point, polygons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Metres from the point to each polygon's edge and to its centroid (azimuthal
    equidistant projection centred on the point: distances from it are true)."""
    crs = CRS.from_proj4(f"+proj=aeqd +lat_0={point.y} +lon_0={point.x} +datum=WGS84 +units=m")
    to = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    projected = shapely.transform(
        polygons, lambda xy: np.column_stack(to.transform(xy[:, 0], xy[:, 1]))
    )
    origin = shapely.Point(0.0, 0.0)
    edge = shapely.distance(origin, projected)
    centre = shapely.distance(origin, shapely.centroid(projected))
    return edge, centre


@pytest.mark.slow
def test_a_community_beside_real_scars_gets_pressure_from_the_nearest_edge(
    built, build_dir
) -> None:
    risk = load_layer(build_dir, "community_risk")
    concessions = load_layer(build_dir, "concessions")
    scars = concessions[concessions["source"] == KEY].reset_index(drop=True)
    params = load_risk_params(LAYERS / "risk.toml").factors["concession_pressure"]
    # Juína (Mato Grosso), the diamond garimpo district's town: scars all round it.
    town = risk[(risk["name"] == "Juína") & (risk["country"] == "BRA")].iloc[0]
    edge, centre = _aeqd_distances(town.geometry, scars.geometry.to_numpy())
    nearest = int(np.argmin(edge))
    d = float(edge[nearest])
    assert 0 < d < params.max_km * 1000.0
    # Measured to the footprint's edge, not its centre (a point would be much further).
    assert d < centre[nearest] - 100.0
    assert town["concession_pressure_nearest_km"] == pytest.approx(d / 1000.0, rel=1e-3)
    assert town["concession_pressure_raw"] == pytest.approx(
        math.exp(-d / (params.decay_km * 1000.0)), rel=1e-3
    )
    assert not town["concession_pressure_nearest_is_site"]
    assert town["concession_pressure_evidence"][0] == scars["concession_id"][nearest]
    # Ring counts: the scars whose edges lie within each ring, counted independently.
    for ring in params.rings_km:
        within = int((edge <= min(ring, params.max_km) * 1000.0).sum())
        assert town[f"concession_pressure_within_{ring:g}km"] == within, ring


@pytest.mark.slow
def test_growth_per_period_adds_up_to_the_published_area(built, build_dir, catalog) -> None:
    meta = read_build_catalog(build_dir)
    growth = meta["risk"]["concession_risk"]["footprint_growth"]
    assert set(growth) == {KEY}  # the only source with footprints mapped by period
    published = _published(catalog)
    years = published["period"].to_numpy() // 100
    whole = growth[KEY]["areas"]["all"]
    assert whole["footprints"] == len(published)
    assert whole["area_ha"] == pytest.approx(published["mined_area_ha"].sum(), abs=1e-3)
    by_year = whole["by_year"]
    assert sorted(int(y) for y in by_year) == sorted(set(years.tolist()))
    assert sum(v["area_ha"] for v in by_year.values()) == pytest.approx(whole["area_ha"], abs=1e-3)
    for year, value in by_year.items():
        chosen = years == int(year)
        assert value["footprints"] == int(chosen.sum())
        assert value["area_ha"] == pytest.approx(
            published.loc[chosen, "mined_area_ha"].sum(), abs=1e-3
        )
    # The diamond district's box, by the representative point of each polygon.
    box = growth[KEY]["areas"]["juina_roosevelt"]
    west, south, east, north = box["box"]
    points = published.geometry.representative_point()
    inside = points.x.between(west, east) & points.y.between(south, north)
    assert 0 < box["footprints"] == int(inside.sum()) < len(published)
    assert sum(v["area_ha"] for v in box["by_year"].values()) == pytest.approx(
        published.loc[inside, "mined_area_ha"].sum(), abs=1e-3
    )
    # Each polygon of concession_risk keeps its year and area.
    per_polygon = load_layer(build_dir, "concession_risk").set_index("concession_id")
    ids = KEY + ":" + published["amw_id"]
    assert (per_polygon.loc[ids, "period_year"].to_numpy() == years).all()
    assert np.array_equal(
        per_polygon.loc[ids, "area_ha"].to_numpy(), published["mined_area_ha"].to_numpy()
    )


def test_growth_counts_undated_footprints_apart() -> None:
    frame = gpd.GeoDataFrame(
        {
            "source": ["a", "a", "a", "b"],
            "period_year": [2019, 2019, None, None],
            "area_ha": [1.5, 2.0, 4.0, 8.0],
        },
        geometry=[shapely.Point(0, 0).buffer(0.01)] * 4,
        crs="EPSG:4326",
    ).astype({"period_year": "Int64"})
    params = ConcessionRiskParams(growth_areas={"east": (1.0, -1.0, 2.0, 1.0)})
    out = footprint_growth(frame, params)
    assert set(out) == {"a"}  # a source with no dated footprint has no growth to tell
    whole = out["a"]["areas"]["all"]
    assert whole["by_year"] == {"2019": {"area_ha": 3.5, "footprints": 2}}
    assert whole["no_period"] == {"area_ha": 4.0, "footprints": 1}
    assert whole["area_ha"] == 7.5 and whole["footprints"] == 3
    assert out["a"]["areas"]["east"]["footprints"] == 0
    with pytest.raises(ValueError, match="west < east"):
        ConcessionRiskParams(growth_areas={"bad": (2.0, 0.0, 1.0, 1.0)})
    with pytest.raises(ValueError, match="whole extent"):
        ConcessionRiskParams(growth_areas={"all": (0.0, 0.0, 1.0, 1.0)})


@pytest.mark.slow
def test_a_scars_record_says_its_commodity_is_unknown_in_every_language(built, build_dir) -> None:
    client = TestClient(create_app(ApiSettings(build_dir=build_dir)))
    concessions = load_layer(build_dir, "concessions")
    scar = concessions.loc[concessions["source"] == KEY, "concession_id"].iloc[0]
    styles = load_layers(LAYERS / "layers.toml")
    for lang in ("en", "fr", "pt"):
        said = words(styles, lang)[1]["commodity"][UNKNOWN]
        assert said.split(" ")[0] in {"unknown", "inconnue", "desconhecida"}, lang
        page = client.get(f"/collections/concessions/items/{scar}?f=html&lang={lang}")
        assert page.status_code == 200
        assert html.escape(said, quote=False) in page.text, lang
    feature = client.get(f"/collections/concessions/items/{scar}").json()
    assert feature["properties"]["commodity"] == UNKNOWN


@pytest.mark.slow
def test_growth_per_unit_is_the_growth_of_the_area_the_unit_covers(built, build_dir) -> None:
    """Units covering the Juína / Roosevelt box and the rest of Brazil, and one in the sea:
    each unit's hectares, in all and by year, are those of the scars whose representative
    point it holds, and the box's are the catalog's own growth figures for it."""
    from geo_service.risk.exposure import footprint_by_unit

    meta = read_build_catalog(build_dir)
    juina = meta["risk"]["concession_risk"]["footprint_growth"][KEY]["areas"]["juina_roosevelt"]
    west, south, east, north = juina["box"]
    units = np.array(
        [
            shapely.box(west, south, east, north),
            shapely.difference(
                shapely.box(-75, -35, -33, 6), shapely.box(west, south, east, north)
            ),
            shapely.box(-30, -10, -20, 0),  # the Atlantic: no scar
        ]
    )
    scars = load_layer(build_dir, "concessions")
    scars = scars[scars["source"] == KEY]
    total, by_year = footprint_by_unit(shapely.STRtree(units), scars, len(units))
    assert total[0] == pytest.approx(juina["area_ha"], abs=0.01)
    assert by_year[0] == "; ".join(
        f"{y}: {v['area_ha']:.1f}" for y, v in sorted(juina["by_year"].items())
    )
    everything = meta["risk"]["concession_risk"]["footprint_growth"][KEY]["areas"]["all"]
    assert total[0] + total[1] == pytest.approx(everything["area_ha"], abs=0.01)
    assert np.isnan(total[2]) and by_year[2] is None
    # On the bundled units (Minas Gerais' municipalities among them) no scar lies in a unit.
    units_layer = load_layer(build_dir, "risk_units")
    assert units_layer["footprint_ha"].isna().all()
