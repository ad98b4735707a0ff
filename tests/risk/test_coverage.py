"""Coverage declared as an outline: inside it a factor has a value, outside it "no data".

The outline is real: the Natural Earth outline of the Central African Republic cut at 19° E (the
west of the country, Bangui and Bossangoa; not Bambari or Bria), saved as a GeoJSON file the way
a data steward would save an area drawn in a GIS. UCDP's coverage is then that file alone, and
its events those of the west (a survey of the west). Outside the outline a place has a value
only where evidence reaches it: "no data" is for where nobody looked and nothing was found.
"""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely
from pyproj import Transformer

from geo_service.build import EVIDENCE_KINDS
from geo_service.catalog import Coverage, SourceCatalog
from geo_service.risk import FACTORS
from geo_service.risk.base import CoverageArea, RiskInputs
from geo_service.risk.combine import combine
from geo_service.risk.coverage import coverage_layer
from geo_service.risk.model import coverage_of, read_countries
from geo_service.risk.params import load_risk_params
from geo_service.risk.surface import SurfaceParams, compute_surface
from geo_service.schemas import Kind
from geo_service.store.files import load_layer
from tests.helpers import COUNTRIES

CUT_LON = 19.0
TO_LONLAT = Transformer.from_crs("EPSG:3857", "EPSG:4326", always_xy=True)


@pytest.fixture(scope="module")
def west_car(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, shapely.Geometry]:
    """The outline file, and the polygon it holds."""
    ne = pyogrio.read_dataframe(COUNTRIES, columns=["ADM0_A3"])
    car = ne.loc[ne["ADM0_A3"] == "CAF"].geometry.iloc[0]
    part = shapely.intersection(car, shapely.box(-180.0, -90.0, CUT_LON, 90.0))
    path = tmp_path_factory.mktemp("coverage") / "ucdp_area.geojson"
    gpd.GeoDataFrame({"name": ["western CAR"]}, geometry=[part], crs="EPSG:4326").to_file(path)
    return path, part


@pytest.fixture(scope="module")
def layers(built, build_dir: Path) -> dict[Kind, gpd.GeoDataFrame]:
    return {kind: load_layer(build_dir, kind.value) for kind in EVIDENCE_KINDS}


@pytest.fixture(scope="module")
def outlined(catalog: SourceCatalog, west_car) -> SourceCatalog:
    """The project's catalog with UCDP's coverage given by the outline file only."""
    path, _ = west_car
    sources = [
        s.model_copy(update={"coverage": Coverage(polygon=path, note=s.coverage.note)})
        if s.key == "ucdp_ged_caf"
        else s
        for s in catalog.sources
    ]
    return catalog.model_copy(update={"sources": sources})


def _inputs(layers, coverage) -> RiskInputs:
    return RiskInputs(
        communities=layers[Kind.communities],
        concessions=layers[Kind.concessions],
        tailings_dams=layers[Kind.tailings_dams],
        incidents=layers[Kind.incidents],
        coverage=coverage,
    )


def test_coverage_of_reads_the_outline(outlined, west_car, layers) -> None:
    _, part = west_car
    coverage, notes = coverage_of(outlined, layers)
    incidents = coverage[Kind.incidents]
    assert incidents.countries == frozenset() and incidents.area_sources == ("ucdp_ged_caf",)
    assert shapely.equals_exact(shapely.normalize(incidents.area), shapely.normalize(part), 1e-9)
    assert incidents.record()["area_bounds"][2] == pytest.approx(CUT_LON)
    # The other kinds keep their countries.
    assert coverage[Kind.tailings_dams].countries == {"BRA"}
    assert coverage[Kind.tailings_dams].area is None
    assert "Lethal organised violence only" in notes[Kind.incidents][0]


def _west(layers) -> dict[Kind, gpd.GeoDataFrame]:
    """The bundled layers with the events of the west only (what a survey of it found)."""
    events = layers[Kind.incidents]
    return {**layers, Kind.incidents: events[events.geometry.x < CUT_LON].reset_index(drop=True)}


def test_inside_the_outline_a_value_outside_no_data(outlined, layers) -> None:
    layers = _west(layers)
    coverage, _ = coverage_of(outlined, layers)
    inputs = _inputs(layers, coverage)
    params = load_risk_params(None)
    results = [f.compute(inputs, params.factors[name]) for name, f in FACTORS.items()]
    out = combine(inputs.communities, results, params).set_index("name")
    communities = inputs.communities
    lon = communities.geometry.x.to_numpy()
    caf = communities["country"].eq("CAF").to_numpy()
    raw = out["incident_intensity_raw"].to_numpy()
    # 29 of the 51 CAR places lie west of the cut: all have an incident value; east of the
    # cut, only those the western events reach (within 3 bandwidths) have one, and it is > 0.
    assert (caf & (lon < CUT_LON)).sum() == 29 and caf.sum() == 51
    assert (~np.isnan(raw))[caf & (lon < CUT_LON)].all()
    east = caf & (lon >= CUT_LON)
    assert (np.nan_to_num(raw[east & ~np.isnan(raw)]) > 0).all()
    assert np.isnan(raw[caf & (lon > CUT_LON + 1.0)]).all()
    # Bangui and Bossangoa (west) have a value, and it is not zero: UCDP recorded deaths there.
    for town in ("Bangui", "Bossangoa"):
        assert out.loc[town, "incident_intensity_raw"] > 0.5, town
        assert "incident_intensity" in out.loc[town, "factors_available"]
    # Bambari and Bria (east) had incident values with the country coverage; now no data, not 0.
    for town in ("Bambari", "Bria"):
        row = out.loc[town]
        assert math.isnan(row["incident_intensity_raw"]), town
        assert math.isnan(row["incident_intensity_contribution"]), town
        assert row["factors_missing"] == ["tailings_exposure", "incident_intensity"]
        assert "no data for tailings_exposure, incident_intensity" in row["score_caveat"]
        # The score is the concession factor alone.
        assert row["score"] == pytest.approx(100 * row["concession_pressure_normalised"], abs=1e-3)


def test_countries_and_outline_add_up(west_car, layers) -> None:
    _, part = west_car
    communities = layers[Kind.communities]
    both = CoverageArea(frozenset({"COD"}), part, ("test",))
    inside = both.contains(communities["country"].to_numpy(), communities.geometry.to_numpy())
    lon = communities.geometry.x.to_numpy()
    country = communities["country"].to_numpy()
    np.testing.assert_array_equal(
        inside, (country == "COD") | ((country == "CAF") & (lon < CUT_LON))
    )
    # A plain set is short for countries only (the factors' own tests pass sets).
    short = RiskInputs(communities=communities, coverage={Kind.incidents: {"CAF"}})
    np.testing.assert_array_equal(short.covered(Kind.incidents), country == "CAF")
    assert not RiskInputs(communities=communities).covered(Kind.incidents).any()


def test_coverage_layer_draws_the_outline(outlined, west_car, layers, catalog) -> None:
    _, part = west_car
    coverage, notes = coverage_of(outlined, layers)
    layer = coverage_layer(coverage, notes, read_countries(catalog)).set_index("factor")
    row = layer.loc["incident_intensity"]
    assert row["countries"] == [] and row["areas_from"] == ["ucdp_ged_caf"]
    assert row.geometry.symmetric_difference(part).area < 1e-9 * part.area
    # Concessions still cover their 16 countries, and only the Amazon's scars an outline.
    assert len(layer.loc["concession_pressure", "countries"]) == 16
    assert layer.loc["concession_pressure", "areas_from"] == ["amazon_mining_watch_brazil"]


def test_surface_honours_the_outline(outlined, west_car, layers, catalog) -> None:
    """Real UCDP events around the cut, on a 2 km grid: west of it values, east of it NaN."""
    _, part = west_car
    coverage, _ = coverage_of(outlined, layers)
    events = layers[Kind.incidents]
    x, y = events.geometry.x, events.geometry.y
    near_cut = events[x.between(CUT_LON - 1.0, CUT_LON) & y.between(4.0, 7.5)]
    assert len(near_cut) > 100
    inputs = RiskInputs(
        communities=layers[Kind.communities].iloc[:0],
        incidents=near_cut,
        coverage=coverage,
    )
    s = compute_surface(
        inputs, load_risk_params(None), SurfaceParams(cell_m=2000.0), read_countries(catalog), True
    )
    values = s.mosaic("incident_intensity")
    rows, cols = np.indices(values.shape)
    cx, cy = s.transform @ (cols.ravel() + 0.5, rows.ravel() + 0.5)
    lon, lat = TO_LONLAT.transform(cx, cy)
    centres = shapely.points(lon, lat)
    # The cells computed near the evidence (elsewhere nothing reaches: 0 where covered).
    computed = np.zeros(values.shape, dtype=bool)
    for r in s.regions:
        computed[r.rows, r.cols] = True
    car = read_countries(catalog).set_index("iso3").geometry["CAF"]
    # Well inside the outline (5 km from its edge), or in CAR beyond the reach of the western
    # events (75 km for a district-level event; 1° of longitude is 110 km there).
    inside = shapely.within(centres, shapely.buffer(part, -0.05)).reshape(values.shape)
    outside = (
        shapely.within(centres, car) & ~shapely.intersects(centres, shapely.buffer(part, 1.0))
    ).reshape(values.shape)
    finite = np.isfinite(values)
    assert (inside & finite).sum() > 1000 and (outside & computed).sum() > 1000
    assert finite[inside & computed].all()
    assert not finite[outside].any()
    assert s.metadata["factors"]["incident_intensity"]["coverage_areas_from"] == ["ucdp_ged_caf"]
