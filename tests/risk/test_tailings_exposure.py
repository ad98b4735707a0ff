"""Tailings exposure: a hand-computed dam near Brumadinho, edge cases, and the bundled build."""

from __future__ import annotations

import json
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import Geod

from geo_service.catalog import SourceCatalog
from geo_service.risk.base import RiskInputs
from geo_service.risk.tailings_exposure import (
    CLASS_NOTE,
    LAYER_COLUMNS,
    TailingsExposure,
    TailingsExposureParams,
    gistm_class,
)
from geo_service.schemas import Kind
from geo_service.store.files import load_layer

GEOD = Geod(ellps="WGS84")
DAM = (-44.12, -20.12)  # near Brumadinho, MG
SAURIMO = (20.39155, -9.66078)  # Angola: no tailings register there
COVERAGE = {Kind.tailings_dams: {"BRA"}}


def rico(h: float, vt: float) -> tuple[float, float]:
    vf = 0.354 * vt**1.01
    return vf, 1.61 * (h * vf) ** 0.66


def concha_larrauri_lall(h: float, vt: float) -> tuple[float, float]:
    vf = 0.332 * vt**0.95
    hf = h * (vf / vt) * vf
    return vf, 10 ** (0.477 + 0.545 * math.log10(hf))


def fwd(start: tuple[float, float], azimuth: float, metres: float) -> tuple[float, float]:
    lon, lat, _ = GEOD.fwd(start[0], start[1], azimuth, metres)
    return float(lon), float(lat)


def dams_frame(**overrides) -> gpd.GeoDataFrame:
    row = {
        "dam_id": "d1",
        "name": "Test dam",
        "country": "BRA",
        "status": "active",
        "construction_method": "upstream",
        "height_m": 20.0,
        "volume_m3": 2e6,
        "reported_consequence": "high (ANM DPA)",
        "source": "test",
        "source_id": "1",
        "geometry": shapely.Point(DAM),
    }
    rows = overrides.pop("rows", [{}])
    return gpd.GeoDataFrame([{**row, **overrides, **r} for r in rows], crs="EPSG:4326")


# The scene: a river drawn in its flow direction, west to east through the dam.
WEST, EAST = fwd(DAM, 270, 40_000), fwd(DAM, 90, 60_000)
PLACES = {
    "A_3km": (fwd(DAM, 315, 3_000), "BRA", 850),  # inside the run-out, upstream side
    "B_30km": (fwd(DAM, 0, 30_000), "BRA", 5_000),  # outside the run-out, off the river
    "C_down": (fwd(fwd(DAM, 90, 20_000), 0, 500), "BRA", 1_200),  # river, 20 km below
    "D_up": (fwd(fwd(DAM, 270, 20_000), 0, 500), "BRA", 700),  # river, 20 km above
    "E_angola": (SAURIMO, "AGO", 60_000),  # outside coverage
    "F_far": (fwd(DAM, 180, 200_000), "BRA", 3_000),
}


def communities_frame(places=PLACES) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "community_id": list(places),
            "name": list(places),
            "country": [p[1] for p in places.values()],
            "population": pd.array([p[2] for p in places.values()], dtype="Int64"),
        },
        geometry=[shapely.Point(p[0]) for p in places.values()],
        crs="EPSG:4326",
    )


def rivers_frame() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"name": ["Test river"], "featurecla": ["River"]},
        geometry=[shapely.LineString([WEST, DAM, EAST])],
        crs="EPSG:4326",
    )


def run(dams, communities=None, rivers=None, **params):
    inputs = RiskInputs(
        communities=communities if communities is not None else communities_frame(),
        tailings_dams=dams,
        rivers=rivers,
        coverage=COVERAGE,
    )
    return TailingsExposure().compute(inputs, TailingsExposureParams(**params))


def test_hand_computed_dam_near_brumadinho() -> None:
    result = run(dams_frame(), rivers=rivers_frame())
    layer = result.layers["tailings_consequence"]
    row = layer.iloc[0]
    vf_r, d_r = rico(20.0, 2.0)
    vf_c, d_c = concha_larrauri_lall(20.0, 2.0)
    assert row["vf_low_mm3"] == pytest.approx(min(vf_r, vf_c), rel=1e-9)
    assert row["vf_high_mm3"] == pytest.approx(max(vf_r, vf_c), rel=1e-9)
    assert row["dmax_low_km"] == pytest.approx(min(d_r, d_c), rel=1e-9)
    assert row["dmax_high_km"] == pytest.approx(max(d_r, d_c), rel=1e-9)
    dmax = max(d_r, d_c)  # Rico: 9.30 km; Concha Larrauri & Lall: 6.48 km
    assert dmax == pytest.approx(9.30, abs=0.01) and min(d_r, d_c) == pytest.approx(6.48, abs=0.01)

    raw = dict(zip(PLACES, result.raw, strict=True))
    # 3 km away: inside the run-out, weighted 1 − d/Dmax (status and method weights are 1).
    assert raw["A_3km"] == pytest.approx(1 - 3.0 / dmax, rel=0.01)
    assert raw["B_30km"] == 0.0 and raw["F_far"] == 0.0
    # On the river 20 km below the dam (beyond the run-out, within the 300 km reach): exposed.
    assert raw["C_down"] == pytest.approx(1 - 20.0 / 300.0, rel=0.01)
    # On the river 20 km above it: not.
    assert raw["D_up"] == 0.0
    assert math.isnan(raw["E_angola"])
    assert np.allclose(result.normalised[:4], 1.0 - np.exp(-result.raw[:4]))

    cols = {k: dict(zip(PLACES, v, strict=True)) for k, v in result.columns.items()}
    assert cols["dams_in_runout"]["A_3km"] == 1 and cols["dams_in_runout"]["C_down"] == 0
    assert cols["dams_downstream"]["C_down"] == 1 and cols["dams_downstream"]["D_up"] == 0
    assert cols["nearest_dam_km"]["A_3km"] == pytest.approx(3.0, rel=0.005)
    assert math.isnan(cols["nearest_dam_km"]["F_far"])  # beyond the 50 km search
    assert math.isnan(cols["dams_in_runout"]["E_angola"])
    assert result.evidence.to_pylist() == [["d1"], [], ["d1"], [], [], []]

    # The consequence layer: only A is in the run-out; 850 people → Very High (indicative).
    assert row["communities_in_runout"] == 1 and row["population_in_runout"] == 850
    assert row["communities_downstream"] == 1 and row["river_name"] == "Test river"
    assert row["indicative_consequence_class"] == "Very High"
    assert row["indicative_class_note"] == CLASS_NOTE
    assert row["reported_consequence"] == "high (ANM DPA)"
    assert not row["height_estimated"] and not row["volume_estimated"]
    assert "rico2008" in row["runout_models"] and "concha_larrauri_lall2018" in row["runout_models"]
    assert "0.354" in row["runout_models"] and "0.545" in row["runout_models"]
    assert list(layer.columns) == [*LAYER_COLUMNS, "geometry"]
    assert layer.crs.to_epsg() == 4326 and layer.geometry.iloc[0].equals(shapely.Point(DAM))
    json.dumps(result.metadata)  # recorded in the build's metadata
    models = result.metadata["models"]
    assert models["rico2008"]["a"] == 0.354 and models["concha_larrauri_lall2018"]["d"] == 0.545


def test_upstream_raised_dam_weighs_more_than_downstream_raised() -> None:
    up = run(dams_frame(construction_method="upstream")).raw[0]
    down = run(dams_frame(construction_method="downstream")).raw[0]
    centre = run(dams_frame(construction_method="centreline")).raw[0]
    unknown = run(dams_frame(construction_method=None)).raw[0]
    assert up > centre > down > 0 and up > unknown > down
    assert down / up == pytest.approx(0.5)
    params = TailingsExposureParams()
    inactive = run(dams_frame(status="inactive")).raw[0]
    assert inactive / up == pytest.approx(params.status_weights["inactive"])
    assert run(dams_frame(status="something else")).raw[0] == pytest.approx(up)  # 'unknown'


def test_unknown_height_and_volume_take_defaults_and_are_flagged() -> None:
    params = TailingsExposureParams()
    dams = dams_frame(rows=[{"height_m": np.nan}, {"dam_id": "d2", "volume_m3": 0.0}])
    layer = run(dams).layers["tailings_consequence"]
    assert list(layer["height_estimated"]) == [True, False]
    assert list(layer["volume_estimated"]) == [False, True]
    assert layer["height_m"].iloc[0] == params.default_height_m
    assert layer["volume_m3"].iloc[1] == params.default_volume_m3
    _, d_r = rico(params.default_height_m, 2.0)
    _, d_c = concha_larrauri_lall(params.default_height_m, 2.0)
    assert layer["dmax_high_km"].iloc[0] == pytest.approx(max(d_r, d_c), rel=1e-9)
    _, d_r = rico(20.0, params.default_volume_m3 / 1e6)
    assert layer["dmax_high_km"].iloc[1] >= d_r * (1 - 1e-9)


def test_gistm_class_boundaries() -> None:
    par = [0, 1, 10, 11, 100, 101, 1000, 1001]
    assert list(gistm_class(np.array(par))) == [
        "Low",
        "Significant",
        "Significant",
        "High",
        "High",
        "Very High",
        "Very High",
        "Extreme",
    ]


@pytest.mark.parametrize(
    ("populations", "expected"),
    [([], "Low"), ([11], "High"), ([600, 401], "Extreme"), ([None], "Significant")],
)
def test_class_from_population_inside_the_runout(populations, expected) -> None:
    places = {f"c{i}": (fwd(DAM, 90 * i, 2_000), "BRA", p) for i, p in enumerate(populations)}
    places["far"] = (fwd(DAM, 0, 100_000), "BRA", 50_000)
    row = (
        run(dams_frame(), communities=communities_frame(places))
        .layers["tailings_consequence"]
        .iloc[0]
    )
    assert row["indicative_consequence_class"] == expected
    assert row["communities_unknown_population"] == sum(p is None for p in populations)


def test_dmax_is_capped_for_exposure_but_reported() -> None:
    dams = dams_frame(height_m=109.0, volume_m3=506e6)
    layer = run(dams, max_runout_km=100.0).layers["tailings_consequence"]
    assert layer["dmax_high_km"].iloc[0] > 1000 and layer["dmax_used_km"].iloc[0] == 100.0
    result = run(dams, max_runout_km=100.0)
    assert result.raw[list(PLACES).index("F_far")] == 0.0  # 200 km away
    uncapped = run(dams, max_runout_km=None, overland_max_km=None)
    assert uncapped.raw[list(PLACES).index("F_far")] > 0.0
    # Over land the circle stops at overland_max_km; only a river carries a flow further.
    overland = run(dams, max_runout_km=None)
    assert overland.raw[list(PLACES).index("F_far")] == 0.0


@pytest.mark.parametrize("dams", [None, "empty"])
def test_no_dams_gives_zero_where_covered_and_an_empty_layer(dams) -> None:
    frame = dams_frame().iloc[:0] if dams == "empty" else None
    result = run(frame, rivers=rivers_frame())
    covered = communities_frame()["country"].eq("BRA").to_numpy()
    assert np.all(result.raw[covered] == 0.0) and np.all(np.isnan(result.raw[~covered]))
    assert np.all(result.normalised[covered] == 0.0)
    layer = result.layers["tailings_consequence"]
    assert len(layer) == 0 and list(layer.columns) == [*LAYER_COLUMNS, "geometry"]
    assert result.evidence.to_pylist() == [[]] * len(covered)


def test_dam_with_missing_geometry_and_no_rivers_does_not_crash() -> None:
    dams = dams_frame(rows=[{}, {"dam_id": "nowhere", "geometry": None}])
    result = run(dams)
    assert result.raw[0] > 0 and len(result.layers["tailings_consequence"]) == 2
    assert result.metadata["dams_on_river"] == 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    azimuth=st.floats(0, 360),
    km=st.floats(0.1, 40.0),
    height=st.one_of(st.none(), st.floats(1.0, 150.0)),
    volume=st.one_of(st.none(), st.floats(1e3, 5e8)),
    method=st.sampled_from(["upstream", "downstream", "centreline", "single_stage", None]),
    status=st.sampled_from(["active", "inactive", "decommissioning", None]),
)
def test_adding_a_dam_never_lowers_exposure(azimuth, km, height, volume, method, status) -> None:
    base = dams_frame()
    extra = dams_frame(
        dam_id="new",
        geometry=shapely.Point(fwd(DAM, azimuth, km * 1000)),
        height_m=np.nan if height is None else height,
        volume_m3=np.nan if volume is None else volume,
        construction_method=method,
        status=status,
    )
    before = run(base, rivers=rivers_frame()).raw
    after = run(pd.concat([base, extra], ignore_index=True), rivers=rivers_frame()).raw
    covered = ~np.isnan(before)
    assert np.array_equal(covered, ~np.isnan(after))
    assert np.all(after[covered] >= before[covered] - 1e-12)


# --- the bundled build --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real(built, build_dir: Path, catalog: SourceCatalog):
    dams = load_layer(build_dir, "tailings_dams")
    communities = load_layer(build_dir, "communities")
    frames = [pyogrio.read_dataframe(p) for p in catalog.reference.rivers]
    rivers = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs="EPSG:4326")
    coverage: dict[Kind, set[str]] = {}
    for entry in catalog.sources:
        coverage.setdefault(entry.kind, set()).update(entry.coverage.countries)
    inputs = RiskInputs(
        communities=communities, tailings_dams=dams, rivers=rivers, coverage=coverage
    )
    return dams, communities, inputs, TailingsExposure().compute(inputs, TailingsExposureParams())


@pytest.mark.slow
def test_bundled_build(real) -> None:
    dams, communities, inputs, result = real
    json.dumps(result.metadata)
    layer = result.layers["tailings_consequence"]
    assert len(layer) == len(dams) == result.metadata["dams"]
    assert list(layer["dam_id"]) == list(dams["dam_id"])
    volume = pd.to_numeric(dams["volume_m3"])
    assert result.metadata["dams_volume_estimated"] == int((volume.isna() | (volume == 0)).sum())
    assert layer["volume_estimated"].sum() == result.metadata["dams_volume_estimated"]
    assert layer["height_estimated"].sum() == int(dams["height_m"].isna().sum())
    assert set(layer["indicative_consequence_class"]) <= {
        "Low",
        "Significant",
        "High",
        "Very High",
        "Extreme",
    }
    assert (layer["indicative_class_note"] == CLASS_NOTE).all()
    assert (layer["dmax_high_km"] >= layer["dmax_low_km"]).all()

    brazil = communities["country"].eq("BRA").to_numpy()
    assert np.all(np.isnan(result.raw[~brazil]))  # no register outside Brazil: no data
    assert np.all(np.isnan(result.normalised[~brazil]))
    assert np.all(np.isfinite(result.raw[brazil]))
    assert (result.raw[brazil] > 0).sum() > 100
    assert np.all((result.normalised[brazil] >= 0) & (result.normalised[brazil] <= 1))

    # The Galego dam (8363) lies 4 km from the Rio das Velhas, below Sabará. With run-outs
    # shrunk to nothing only the river pathway is left: Santa Luzia, 18 km down the Velhas, has
    # Galego among its dams; Rio Acima, on the Velhas upstream, does not.
    names = communities["name"].to_numpy()
    galego = layer.index[layer["dam_id"] == "anm_sigbm_brazil:8363"][0]
    assert layer.loc[galego, "river_name"] == "Velhas"
    assert layer.loc[galego, "river_snap_km"] == pytest.approx(4.0, abs=0.1)
    rivers_only = TailingsExposure().compute(inputs, TailingsExposureParams(max_runout_km=1e-3))
    santa_luzia = int(np.flatnonzero((names == "Santa Luzia") & (communities["admin1"] == "15"))[0])
    rio_acima = int(np.flatnonzero(names == "Rio Acima")[0])
    assert "anm_sigbm_brazil:8363" in rivers_only.evidence[santa_luzia].as_py()
    assert "anm_sigbm_brazil:8363" not in rivers_only.evidence[rio_acima].as_py()
    assert rivers_only.columns["dams_in_runout"][santa_luzia] == 0
    assert (
        rivers_only.raw[santa_luzia] > 0 and result.raw[santa_luzia] >= rivers_only.raw[santa_luzia]
    )

    # nearest_dam_km checked against brute-force geodesic distances for a few towns.
    dam_xy = shapely.get_coordinates(dams.geometry.to_numpy())
    for town in ("Brumadinho", "Mariana", "Itabirito", "Nova Lima"):
        i = int(np.flatnonzero((names == town) & brazil)[0])
        x, y = communities.geometry.iloc[i].x, communities.geometry.iloc[i].y
        _, _, d = GEOD.inv(np.full(len(dam_xy), x), np.full(len(dam_xy), y), *dam_xy.T)
        assert result.columns["nearest_dam_km"][i] == pytest.approx(d.min() / 1000, rel=0.005)
        assert result.raw[i] > 0
