"""Risk surface: hand-checked around Bria, against the vector factors, and the bundled COG."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from pydantic import ValidationError
from pyproj import Geod, Transformer
from scipy.stats import norm

from geo_service.build import EVIDENCE_KINDS
from geo_service.risk import FACTORS
from geo_service.risk import surface as surface_module
from geo_service.risk.base import RiskInputs
from geo_service.risk.combine import aggregate
from geo_service.risk.incident_intensity import IncidentIntensityParams
from geo_service.risk.model import read_countries, risk_inputs
from geo_service.risk.params import RiskParams, load_risk_params
from geo_service.risk.runner import run_here
from geo_service.risk.surface import (
    Surface,
    SurfaceParams,
    compute_surface,
    ground_scale,
    surface_for_build,
    write_cog,
)
from geo_service.schemas import Kind
from geo_service.store.files import load_kind, load_layer

GEOD = Geod(ellps="WGS84")
TO_LONLAT = Transformer.from_crs("EPSG:3857", "EPSG:4326", always_xy=True)
TO_MERCATOR = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
BRIA = (21.98, 6.54)  # Haute-Kotto, CAR; alluvial diamond town
BABOUA = (14.82, 5.79)  # CAR, near the Cameroon border
GAROUA_BOULAI = (14.55, 5.88)  # Cameroon, across the border from Baboua
REF = dt.date(2022, 6, 30)
ALL_CAF = {Kind.concessions: {"CAF"}, Kind.tailings_dams: {"CAF"}, Kind.incidents: {"CAF"}}
NAMES = ("concession_pressure", "tailings_exposure", "incident_intensity")


def fwd(start: tuple[float, float], azimuth: float, metres: float) -> tuple[float, float]:
    lon, lat, _ = GEOD.fwd(start[0], start[1], azimuth, metres)
    return float(lon), float(lat)


# --- the scene: a mine at Bria, a dam on a river to its east, an incident between ----------------

DAM = fwd(fwd(BRIA, 90, 80_000), 0, 20_000)
INCIDENT = fwd(fwd(BRIA, 90, 40_000), 0, 10_000)  # inside the box of the others: grid unchanged
RIVER = [fwd(DAM, 270, 40_000), DAM, fwd(DAM, 90, 60_000)]  # flows west to east


def sites(points: list[tuple[float, float]], radius: float = 2000.0) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "concession_id": [f"k{i}" for i in range(len(points))],
            "footprint": "site",
            "footprint_radius_m": radius,
            "country": "CAF",
        },
        geometry=[shapely.Point(p) for p in points],
        crs="EPSG:4326",
    )


def dams(points: list[tuple[float, float]]) -> gpd.GeoDataFrame:
    # 20 m, 2 Mm³: Dmax (Rico 2008, the higher model) = 9.3 km; active, upstream: weight 1.
    return gpd.GeoDataFrame(
        {
            "dam_id": [f"d{i}" for i in range(len(points))],
            "name": "Test dam",
            "country": "CAF",
            "status": "active",
            "construction_method": "upstream",
            "height_m": 20.0,
            "volume_m3": 2e6,
            "reported_consequence": None,
            "source": "test",
            "source_id": "1",
        },
        geometry=[shapely.Point(p) for p in points],
        crs="EPSG:4326",
    )


def incidents(point: tuple[float, float]) -> gpd.GeoDataFrame:
    # One exact, one-sided incident with 3 deaths, a year before the reference date.
    return gpd.GeoDataFrame(
        {
            "incident_id": ["i0"],
            "date": pd.to_datetime([REF - dt.timedelta(days=365)]).astype("datetime64[ms]"),
            "type": pd.array(["one-sided"], dtype="str"),
            "fatalities": pd.array([3], dtype="Int64"),
            "location_precision": pd.array(["exact"], dtype="str"),
            "country": "CAF",
        },
        geometry=[shapely.Point(point)],
        crs="EPSG:4326",
    )


#: The incident's weight written out: type 1.5 · (1 + 0.5 · ln(1 + 3)) · 2^(−365/365).
WEIGHT = 1.5 * (1 + 0.5 * math.log(4)) * 0.5


def rivers() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"name": ["Test river"], "featurecla": ["River"]},
        geometry=[shapely.LineString(RIVER)],
        crs="EPSG:4326",
    )


def risk_params(**factor_updates: dict) -> RiskParams:
    base = load_risk_params(None)
    factors = dict(base.factors)
    factors["incident_intensity"] = IncidentIntensityParams(reference_date=REF)
    for name, update in factor_updates.items():
        factors[name] = factors[name].model_copy(update=update)
    return base.model_copy(update={"factors": factors})


def scene(incident_at: tuple[float, float] = INCIDENT, coverage=None, **kw) -> RiskInputs:
    return RiskInputs(
        communities=gpd.GeoDataFrame({"country": []}, geometry=[], crs="EPSG:4326"),
        concessions=kw.get("concessions", sites([BRIA])),
        tailings_dams=kw.get("tailings_dams", dams([DAM])),
        incidents=kw.get("incidents", incidents(incident_at)),
        rivers=kw.get("rivers", rivers()),
        coverage=coverage if coverage is not None else ALL_CAF,
    )


@pytest.fixture(scope="module")
def countries(catalog) -> gpd.GeoDataFrame:
    return read_countries(catalog)


def cell_of(s: Surface, point: tuple[float, float]) -> tuple[int, int]:
    x, y = TO_MERCATOR.transform(*point)
    col, row = ~s.transform @ (x, y)
    return int(math.floor(row)), int(math.floor(col))


def centre(s: Surface, row: np.ndarray | int, col: np.ndarray | int) -> tuple:
    x, y = s.transform @ (np.asarray(col) + 0.5, np.asarray(row) + 0.5)
    return TO_LONLAT.transform(x, y)


def vector(inputs: RiskInputs, params: RiskParams, lon, lat) -> dict[str, np.ndarray]:
    """The vector factors at community points placed on the given cell centres."""
    communities = gpd.GeoDataFrame(
        {"community_id": [f"c{i}" for i in range(len(lon))], "country": "CAF"},
        geometry=shapely.points(np.asarray(lon), np.asarray(lat)),
        crs="EPSG:4326",
    )
    at = RiskInputs(
        communities=communities,
        concessions=inputs.concessions,
        tailings_dams=inputs.tailings_dams,
        incidents=inputs.incidents,
        rivers=inputs.rivers,
        coverage=inputs.coverage,
    )
    return {n: FACTORS[n].compute(at, params.factors[n]).normalised for n in NAMES}


@pytest.fixture(scope="module")
def bria(countries) -> tuple[Surface, RiskInputs, RiskParams]:
    """The Bria scene at 250 m, the incident moved onto a cell centre (so the grid holds it
    exactly and the hand values need no offset)."""
    params = risk_params()
    first = compute_surface(
        scene(), params, SurfaceParams(cell_m=250.0), countries, keep_factors=True
    )
    on_centre = centre(first, *cell_of(first, INCIDENT))
    inputs = scene(incident_at=on_centre)
    s = compute_surface(inputs, params, SurfaceParams(cell_m=250.0), countries, keep_factors=True)
    assert s.transform == first.transform and s.shape == first.shape
    return s, inputs, params


# --- hand-checked -----------------------------------------------------------------------------


def test_ground_scale_matches_geodesic_lengths() -> None:
    for lat in (0.0, 6.54, -30.0, 60.0):
        x, y = TO_MERCATOR.transform(20.0, lat)
        kx, ky = ground_scale(lat)
        east = GEOD.inv(*TO_LONLAT.transform(x - 500, y), *TO_LONLAT.transform(x + 500, y))[2]
        north = GEOD.inv(*TO_LONLAT.transform(x, y - 500), *TO_LONLAT.transform(x, y + 500))[2]
        assert east == pytest.approx(1000 * kx, rel=1e-6)
        assert north == pytest.approx(1000 * ky, rel=1e-6)
    # Web Mercator is not conformal on the ellipsoid: 0.67 % apart at the equator.
    kx, ky = ground_scale(0.0)
    assert 1 - ky / kx == pytest.approx(0.00669, abs=1e-5)


def test_concession_footprint_edge_and_decay(bria) -> None:
    s, _, _ = bria
    n = s.factors["concession_pressure"]
    assert n[cell_of(s, BRIA)] == 1.0
    assert n[cell_of(s, fwd(BRIA, 90, 2_000))] == 1.0  # the cell holding the footprint edge
    # 10 km beyond the edge: exp(−1), to the half cell (125 m of 10 km) the grid can resolve.
    for azimuth in (0, 90, 180, 270):
        assert n[cell_of(s, fwd(BRIA, azimuth, 12_000))] == pytest.approx(math.exp(-1), rel=0.02)
    assert n[cell_of(s, fwd(BRIA, 270, 53_000))] == 0.0  # beyond max_km from the edge


def test_incident_at_its_cell_and_two_kilometres_away(bria) -> None:
    s, inputs, _ = bria
    n = s.factors["incident_intensity"]
    here = inputs.incidents.geometry[0]
    row, col = cell_of(s, (here.x, here.y))
    assert n[row, col] == pytest.approx(1 - math.exp(-WEIGHT), rel=1e-5)
    # Eight cells east is 2 km on the ground at this latitude (250 · cos 6.6° = 248 m a cell).
    lon, lat = centre(s, row, col + 8)
    d = GEOD.inv(here.x, here.y, lon, lat)[2]
    assert d == pytest.approx(2_000, rel=0.01)
    assert n[row, col + 8] == pytest.approx(1 - math.exp(-WEIGHT * math.exp(-0.5)), rel=0.01)
    assert n[row, col + 8] == pytest.approx(
        1 - math.exp(-WEIGHT * math.exp(-0.5 * (d / 2_000) ** 2)), rel=1e-3
    )
    # Beyond 3 bandwidths along an axis nothing is left.
    assert n[row, col + 25] == 0.0 and n[row - 25, col] == 0.0


def reach(km: float) -> float:
    """P(run-out ≥ km) of the scene's dam (20 m, 2 Mm³), written out: the mean of the two
    laws' log-normal exceedances around their medians (9.30 and 6.48 km)."""
    spread = load_risk_params(None).factors["tailings_exposure"].runout_spread_log10
    medians = {"rico2008": 9.2989, "concha_larrauri_lall2018": 6.4818}
    return float(np.mean([norm.sf(math.log10(km / medians[k]) / spread[k]) for k in medians]))


def test_dam_runout_and_river_below(bria) -> None:
    s, _, _ = bria
    n = s.factors["tailings_exposure"]
    raw = -np.log1p(-n.astype("float64"))  # κ = 1

    def at(azimuth: float, metres: float) -> tuple[float, float]:
        row, col = cell_of(s, fwd(DAM, azimuth, metres))
        lon, lat = centre(s, row, col)
        return raw[row, col], GEOD.inv(*DAM, lon, lat)[2] / 1000.0

    # Near the dam, half a run-out away, just beyond either median, 20 km up the river (not on
    # the river below): the chance a flow gets that far (weight 1); no hard edge anywhere.
    for azimuth, metres in ((0, 0), (315, 4_650), (0, 9_600), (180, 9_600), (270, 20_000)):
        value, km = at(azimuth, metres)
        assert value == pytest.approx(reach(max(km, 1e-3)), abs=0.01), (azimuth, metres)
        assert value > 0.1
    # Beyond the overland limit (25 km), off the river: nothing.
    assert at(0, 26_000)[0] == 0.0
    # 30 km down the river: 1 − s/R, R = max(p90 run-out, 300 km).
    assert at(90, 30_000)[0] == pytest.approx(1 - 30 / 300, abs=0.005)


def test_agrees_with_the_vector_factors_on_cell_centres(bria) -> None:
    s, inputs, params = bria
    rows, cols = np.meshgrid(
        np.arange(3, s.shape[0], 7), np.arange(3, s.shape[1], 7), indexing="ij"
    )
    rows, cols = rows.ravel(), cols.ravel()
    # The computed cells (beyond them nothing reaches: the score is 0 where covered).
    computed = np.zeros(s.shape, dtype=bool)
    for r in s.regions:
        computed[r.rows, r.cols] = True
    keep = computed[rows, cols]
    rows, cols = rows[keep], cols[keep]
    lon, lat = centre(s, rows, cols)
    expected = vector(inputs, params, lon, lat)
    # Concessions: half a cell (177 m diagonal) of a 10 km decay. Incidents: the incident sits
    # on a cell centre, so only the square cut differs (at most exp(−4.5) = 1.1 % of its weight
    # 1.27 in the corners between 3h and 3h·√2). Cone and river: sampled exactly.
    tolerance = {
        "concession_pressure": 0.02,
        "incident_intensity": 0.015,
        "tailings_exposure": 0.001,
    }
    for name in NAMES:
        got = s.factors[name][rows, cols].astype("float64")
        assert np.all(np.isfinite(got)) and np.all(np.isfinite(expected[name]))
        assert np.abs(got - expected[name]).max() <= tolerance[name], name
        assert (expected[name] > 0.05).sum() > 20, name  # the comparison covers the features


def test_incident_off_a_cell_centre_is_within_the_grid_resolution(countries) -> None:
    params = risk_params()
    inputs = scene()
    s = compute_surface(inputs, params, SurfaceParams(cell_m=250.0), countries, keep_factors=True)
    row, col = cell_of(s, INCIDENT)
    rows, cols = np.meshgrid(np.arange(row - 30, row + 31, 3), np.arange(col - 30, col + 31, 3))
    lon, lat = centre(s, rows.ravel(), cols.ravel())
    expected = vector(inputs, params, lon, lat)["incident_intensity"]
    got = s.factors["incident_intensity"][rows.ravel(), cols.ravel()]
    # The weight is shared among the four centres around the incident: the kernel is then
    # interpolated between centres, off by ≤ (cell/h)²/4 = 0.4 % of the weight 1.27. Beyond the
    # vector's circular cut the square's corners add up to exp(−4.5) = 1.1 % of it.
    error = np.abs(got - expected)
    assert error[expected > 0].max() < 0.006
    assert error.max() < 0.02
    here = s.factors["incident_intensity"][row, col]
    lon, lat = centre(s, row, col)
    d = GEOD.inv(*INCIDENT, lon, lat)[2]
    assert here == pytest.approx(1 - math.exp(-WEIGHT * math.exp(-0.5 * (d / 2000) ** 2)), abs=3e-3)
    assert here == pytest.approx(1 - math.exp(-WEIGHT), rel=0.01)  # within 177 m of it


# --- coverage, score, determinism ------------------------------------------------------------


def test_transparent_exactly_where_no_factor_has_coverage_or_evidence(countries) -> None:
    """The surface's rule is the dots': a value where a factor has coverage or its evidence
    reaches, the combination of those (``combine.aggregate``), NaN nowhere else."""
    params = risk_params(incident_intensity={"weight": 2.0})
    coverage = {Kind.concessions: {"CAF"}, Kind.incidents: {"CAF"}, Kind.tailings_dams: set()}
    inputs = scene(
        incident_at=fwd(BABOUA, 90, 5_000),
        coverage=coverage,
        concessions=sites([BABOUA]),
        tailings_dams=dams([fwd(BABOUA, 0, 20_000)]),
        rivers=None,
    )
    s = compute_surface(inputs, params, SurfaceParams(cell_m=1000.0), countries, keep_factors=True)
    c = s.factors["concession_pressure"]
    i = s.factors["incident_intensity"]
    t = s.factors["tailings_exposure"]
    # No register covers the dam: values where its run-out reaches (25 km), NaN beyond.
    assert np.isfinite(t[cell_of(s, fwd(BABOUA, 0, 22_000))])
    assert np.array_equal(np.isfinite(t), np.nan_to_num(t) > 0)
    # Garoua-Boulaï (Cameroon, 32 km): the mine reaches it (50 km), the exact incident not.
    gb = cell_of(s, GAROUA_BOULAI)
    assert c[gb] > 0 and np.isnan(i[gb])
    for name in ("concession_pressure", "incident_intensity"):
        assert np.isfinite(s.factors[name][cell_of(s, BABOUA)])
    # The computed cells: the combination of what has data, NaN only where nothing has.
    computed = np.zeros(s.shape, dtype=bool)
    for r in s.regions:
        computed[r.rows, r.cols] = True
    score = s.score
    nothing = np.isnan(c) & np.isnan(i) & np.isnan(t)
    assert np.array_equal(np.isnan(score)[computed], nothing[computed])
    expected = aggregate([c, i, t], [1.0, 2.0, 1.0])
    have = computed & ~nothing
    np.testing.assert_allclose(score[have], expected[have], rtol=1e-6, atol=1e-7)
    one = have & ~np.isnan(c) & np.isnan(i) & np.isnan(t)
    np.testing.assert_allclose(score[one], c[one], rtol=1e-6, atol=1e-7)
    # Beyond the computed cells nothing reaches: 0 inside CAR (covered), NaN outside it.
    lon, lat = centre(s, *np.indices(s.shape))
    car = read_countries_outline(countries, "CAF")
    beyond = ~computed
    in_car = shapely.within(shapely.points(lon, lat), shapely.buffer(car, -0.02))
    out_car = ~shapely.intersects(shapely.points(lon, lat), shapely.buffer(car, 0.02))
    assert (beyond & in_car).sum() > 1000 and (beyond & out_car).sum() > 1000
    assert (score[beyond & in_car] == 0.0).all()
    assert np.isnan(score[beyond & out_car]).all()
    finite = score[~np.isnan(score)]
    assert finite.size and finite.min() >= 0.0 and finite.max() <= 1.0
    assert score.dtype == np.float32
    assert all(v.dtype == np.float32 for v in s.factors.values())


def read_countries_outline(countries: gpd.GeoDataFrame, iso3: str) -> shapely.Geometry:
    return countries.set_index("iso3").geometry[iso3]


def test_same_inputs_identical_arrays(bria, countries) -> None:
    s, inputs, params = bria
    again = compute_surface(
        inputs, params, SurfaceParams(cell_m=250.0), countries, keep_factors=True
    )
    assert np.array_equal(s.score, again.score, equal_nan=True)
    for name in NAMES:
        assert np.array_equal(s.factors[name], again.factors[name], equal_nan=True)
    assert s.metadata == again.metadata


def test_cells_grow_to_respect_max_cells(countries) -> None:
    s = compute_surface(
        scene(), risk_params(), SurfaceParams(cell_m=250.0, max_cells=20_000), countries
    )
    assert 0 < s.metadata["computed_cells"] <= 20_000
    assert s.metadata["cells_needed_at_requested_size"] > 20_000
    assert s.cell_m > 250.0 and s.cell_m == s.metadata["cell_m"]
    assert s.metadata["cell_grown"] and "max_cells" in s.metadata["cell_note"]
    assert s.transform.a == s.cell_m and s.transform.e == -s.cell_m


def test_surface_params_are_checked() -> None:
    with pytest.raises(ValidationError):
        SurfaceParams(cell_size=100)
    with pytest.raises(ValidationError):
        SurfaceParams(overview_levels=(2, 3))
    with pytest.raises(ValidationError):
        SurfaceParams(overview_levels=(4, 2))
    assert SurfaceParams(overview_levels=(2, 4, 8)).overview_levels == (2, 4, 8)


def test_no_evidence_is_an_error(countries) -> None:
    empty = RiskInputs(communities=gpd.GeoDataFrame({"country": []}, geometry=[], crs=4326))
    with pytest.raises(ValueError, match="nothing to map"):
        compute_surface(empty, risk_params(), SurfaceParams(), countries, keep_factors=True)


# --- the bundled build -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundled(built, build_dir: Path, catalog, tmp_path_factory) -> tuple[Surface, Path]:
    layers = {k: load_kind(build_dir, k.value) for k in EVIDENCE_KINDS}
    inputs, _ = risk_inputs(layers, catalog)
    s = surface_for_build(
        inputs,
        load_risk_params(None),
        read_countries(catalog),
        SurfaceParams(cell_m=5_000.0),
        keep_factors=True,
    )
    path = tmp_path_factory.mktemp("surface") / "risk_surface.tif"
    write_cog(s, path)
    return s, path


def test_bundled_cog_is_valid(bundled) -> None:
    s, path = bundled
    assert not path.with_name(path.name + ".part").exists()
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() == 3857
        assert src.dtypes == ("float32",) and src.count == 1 and math.isnan(src.nodata)
        assert src.block_shapes == [(512, 512)]
        assert src.overviews(1) == list(s.overview_levels) and len(src.overviews(1)) >= 1
        structure = src.tags(ns="IMAGE_STRUCTURE")
        assert structure["LAYOUT"] == "COG"  # GDAL's own check of the COG layout
        assert structure["COMPRESSION"] == "DEFLATE" and structure["PREDICTOR"] == "3"
        assert src.transform == s.transform and (src.height, src.width) == s.shape
        values = src.read(1)
        overview = src.read(1, out_shape=(src.height // 4, src.width // 4))
        assert "risk_surface" in src.tags()
    with path.open("rb") as fh:
        assert b"LAYOUT=IFDS_BEFORE_DATA" in fh.read(1024)
    assert np.array_equal(values, s.score, equal_nan=True)
    finite = values[~np.isnan(values)]
    assert finite.size > 0 and finite.min() >= 0.0 and finite.max() <= 1.0
    # Average overviews skip NaN: the sea does not swallow the coast.
    assert np.isnan(overview).mean() <= np.isnan(values).mean() + 0.01


def test_bundled_surface_has_each_factor_where_its_evidence_is(bundled, build_dir) -> None:
    s, _ = bundled
    assert s.metadata["cell_m"] == 5_000.0 and not s.metadata["cell_grown"]
    assert "rasterised" in s.metadata["factors"]["tailings_exposure"]["river_pathway"]
    assert s.metadata["factors"]["tailings_exposure"]["dams_on_river"] > 0
    risk = load_layer(build_dir, "community_risk")
    x, y = TO_MERCATOR.transform(risk.geometry.x.to_numpy(), risk.geometry.y.to_numpy())
    col, row = ~s.transform @ (np.asarray(x), np.asarray(y))
    row, col = np.floor(row).astype(int), np.floor(col).astype(int)
    on = (row >= 0) & (row < s.shape[0]) & (col >= 0) & (col < s.shape[1])
    country = risk["country"].to_numpy()
    for name, iso3 in (
        ("concession_pressure", "SLE"),
        ("tailings_exposure", "BRA"),
        ("incident_intensity", "CAF"),
    ):
        # Every community the factor reaches lies in a computed cell; only blocks beyond the
        # reach of all evidence are left out.
        reached = on & (country == iso3) & (risk[f"{name}_normalised"].to_numpy() > 0)
        assert reached.sum() > 20, name
        assert np.isfinite(s.factors[name][row[reached], col[reached]]).all(), name
        assert (s.factors[name] > 0.1).sum() > 50, name
    # Brazil has no incident evidence; concession evidence only in the Amazon (mining scars):
    # beyond their outline and reach the factor has no data there, as at the communities (a
    # community in a cell the outline touches, or within a cell of the reach, may differ).
    brazil = on & (country == "BRA")
    assert np.isnan(s.factors["incident_intensity"][row[brazil], col[brazil]]).all()
    vector = risk["concession_pressure_normalised"].to_numpy()
    grid = np.full(len(vector), np.nan)
    grid[on] = s.factors["concession_pressure"][row[on], col[on]]
    unscored = brazil & np.isnan(vector)
    assert unscored.sum() > 1000 and np.isnan(grid[unscored]).mean() > 0.98
    scored = brazil & (vector > 0)
    assert scored.sum() > 100 and np.isfinite(grid[scored]).all()
    # Concession pressure at the communities agrees with their vector values to the grid's
    # resolution: a community is within half a cell's diagonal of its cell's centre, which is
    # within another of its true distance: 6.6 km at most on 4.7 km cells, 1 − exp(−0.66) = 48 %.
    # Brazil's are distances to the edges of the Amazon's mapped mining scars.
    sle = on & np.isin(country, ["SLE", "GIN", "LBR", "CIV", "AGO", "COD", "CAF", "COG", "BRA"])
    got = s.factors["concession_pressure"][row[sle], col[sle]].astype("float64")
    want = risk["concession_pressure_normalised"].to_numpy()[sle]
    ok = np.isfinite(got) & np.isfinite(want)
    got, want = got[ok], want[ok]
    assert len(got) > 500
    assert np.all(np.abs(got - want) <= 0.5 * np.maximum(got, want) + 0.01)
    near = np.maximum(got, want) > 0.05
    assert near.sum() > 20 and np.median(np.abs(got - want)[near]) < 0.05


# --- regions and tiles -----------------------------------------------------------------------


def _values_at(s: Surface, other: Surface, name: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Values of ``s`` and ``other`` on the cells of ``other`` (same lattice, other extent)."""
    col, row = ~s.transform @ (other.extent[0], other.extent[3])
    r0, c0 = round(row), round(col)
    h, w = other.shape
    mine = s.mosaic(name)[r0 : r0 + h, c0 : c0 + w]
    return mine, other.mosaic(name)


def test_far_apart_evidence_makes_separate_regions_with_the_same_values(countries) -> None:
    params = risk_params()
    alone = compute_surface(scene(), params, SurfaceParams(cell_m=1000.0), countries, True)
    both_sites = sites([BRIA, BABOUA])  # Baboua is 800 km west of Bria
    both = compute_surface(
        scene(concessions=both_sites), params, SurfaceParams(cell_m=1000.0), countries, True
    )
    assert len(alone.regions) == 1 and len(both.regions) == 2
    assert both.metadata["regions"] == 2
    assert both.metadata["computed_cells"] < both.shape[0] * both.shape[1] / 2
    # Between the two, nothing is computed: beyond every reach, 0 where covered (CAR).
    midway = fwd(BRIA, 270, 400_000)
    computed = np.zeros(both.shape, dtype=bool)
    for r in both.regions:
        computed[r.rows, r.cols] = True
    assert not computed[cell_of(both, midway)] and both.score[cell_of(both, midway)] == 0.0
    assert np.isfinite(both.score[cell_of(both, BABOUA)])
    assert both.factors["concession_pressure"][cell_of(both, BABOUA)] == 1.0
    # The Bria region does not see Baboua: the same values as a surface of Bria alone.
    bria = np.zeros(alone.shape, dtype=bool)
    bria[alone.regions[0].rows, alone.regions[0].cols] = True
    for name in (None, *NAMES):
        mine, other = _values_at(both, alone, name)
        mine, other = mine[bria], other[bria]
        assert np.array_equal(np.isnan(mine), np.isnan(other)), name
        np.testing.assert_allclose(mine, other, atol=1e-6, rtol=0, err_msg=str(name))


def test_tiles_with_a_halo_give_the_same_values(bria, countries, monkeypatch) -> None:
    s, inputs, params = bria
    monkeypatch.setattr(surface_module, "TILE_CELLS", 300 * 300)
    tiled = compute_surface(inputs, params, SurfaceParams(cell_m=250.0), countries, True)
    assert tiled.shape == s.shape and tiled.transform == s.transform
    assert max(r.score.size for r in tiled.regions) > 300 * 300  # so it was cut into tiles
    for a, b in [(s.score, tiled.score), *((s.factors[n], tiled.factors[n]) for n in NAMES)]:
        assert np.array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def test_regions_are_written_into_one_sparse_cog(countries, tmp_path) -> None:
    both = compute_surface(
        scene(concessions=sites([BRIA, BABOUA])),
        risk_params(),
        SurfaceParams(cell_m=500.0),
        countries,
    )
    assert both.regions[0].factors == {}  # only the score is kept by default
    path = tmp_path / "two.tif"
    write_cog(both, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two.tif"]  # no staging left
    with rasterio.open(path) as src:
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.transform == both.transform and (src.height, src.width) == both.shape
        assert np.array_equal(src.read(1), both.mosaic(), equal_nan=True)
        # Tiles with nothing but nodata (no coverage, no evidence) were never written: GDAL
        # gives them no offset.
        mosaic = both.mosaic()
        offsets = {
            (bx, by): src.get_tag_item(f"BLOCK_OFFSET_{bx}_{by}", "TIFF", bidx=1)
            for bx in range(-(-src.width // 512))
            for by in range(-(-src.height // 512))
        }

    def empty(bx: int, by: int) -> bool:
        return bool(np.isnan(mosaic[by * 512 : (by + 1) * 512, bx * 512 : (bx + 1) * 512]).all())

    untouched = [b for b in offsets if empty(*b)]
    assert untouched and not any(offsets[b] for b in untouched)
    assert all(int(offsets[b]) > 0 for b in offsets if not empty(*b))


def test_tiles_placed_in_any_order_on_disk_give_the_same_surface(
    bria, countries, monkeypatch, tmp_path
) -> None:
    """Tiles come back in whatever order a cluster finishes them; a build keeps the regions
    on disk. Neither changes a value or the metadata."""
    _, inputs, params = bria
    monkeypatch.setattr(surface_module, "TILE_CELLS", 300 * 300)
    here = compute_surface(inputs, params, SurfaceParams(cell_m=250.0), countries)

    def backwards(fn, work, tasks, label, size=None):  # type: ignore[no-untyped-def]
        results = list(run_here(fn, work, tasks, label, size))
        assert len(results) > 2
        yield from reversed(results)

    other = compute_surface(
        inputs, params, SurfaceParams(cell_m=250.0), countries, runner=backwards, scratch=tmp_path
    )
    assert all(isinstance(r.score, np.memmap) for r in other.regions)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"region{i}-score.npy" for i in range(len(other.regions))
    ]
    assert np.array_equal(here.score, other.score, equal_nan=True)
    assert here.metadata == other.metadata
