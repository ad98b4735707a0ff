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
from scipy.stats import norm

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
COVERAGE = {Kind.tailings_dams: {"BRA"}, Kind.communities: {"BRA", "AGO"}}


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


def reach(km: float, h: float = 20.0, vt: float = 2.0) -> float:
    """P(run-out ≥ km), written out: the mean of the two laws' log-normal exceedances."""
    spread = TailingsExposureParams().runout_spread_log10
    medians = {
        "rico2008": rico(h, vt)[1],
        "concha_larrauri_lall2018": concha_larrauri_lall(h, vt)[1],
    }
    return float(np.mean([norm.sf(math.log10(km / medians[k]) / spread[k]) for k in medians]))


def test_hand_computed_dam_near_brumadinho() -> None:
    result = run(dams_frame(), rivers=rivers_frame())
    layer = result.layers["tailings_consequence"]
    row = layer.iloc[0]
    vf_r, d_r = rico(20.0, 2.0)
    vf_c, d_c = concha_larrauri_lall(20.0, 2.0)
    assert row["vf_low_mm3"] == pytest.approx(min(vf_r, vf_c), rel=1e-9)
    assert row["vf_high_mm3"] == pytest.approx(max(vf_r, vf_c), rel=1e-9)
    # Each law's median, as published (three significant figures).
    assert d_r == pytest.approx(9.30, abs=0.01) and d_c == pytest.approx(6.48, abs=0.01)
    assert row["runout_rico2008_p50_km"] == pytest.approx(d_r, rel=5e-3)
    assert row["runout_concha_larrauri_lall2018_p50_km"] == pytest.approx(d_c, rel=5e-3)
    # The band is that of the mixture: a 90 % chance of reaching p10, 10 % of reaching p90.
    assert reach(row["runout_p10_km"]) == pytest.approx(0.9, abs=0.005)
    assert reach(row["runout_p50_km"]) == pytest.approx(0.5, abs=0.005)
    assert reach(row["runout_p90_km"]) == pytest.approx(0.1, abs=0.005)
    assert row["runout_reach_km"] == 25.0  # the p90 is beyond the overland limit

    raw = dict(zip(PLACES, result.raw, strict=True))
    # 3 km away: the chance a flow gets that far (status and method weights are 1).
    assert raw["A_3km"] == pytest.approx(reach(3.0), rel=0.01)
    # 30 km: beyond the overland limit and off the river; 200 km: nothing.
    assert raw["B_30km"] == 0.0 and raw["F_far"] == 0.0
    # On the river 20 km below the dam: the river pathway (R = 300 km) is the stronger.
    assert raw["C_down"] == pytest.approx(1 - 20.0 / 300.0, rel=0.01)
    # 20 km above it, not on the river below, but a flow has a real chance to get that far:
    # no hard edge at a fitted median (the old model gave 0 past 9.3 km).
    assert raw["D_up"] == pytest.approx(reach(20.0), rel=0.01) and 0.1 < raw["D_up"] < 0.4
    assert math.isnan(raw["E_angola"])
    assert np.allclose(result.normalised[:4], 1.0 - np.exp(-result.raw[:4]))

    cols = {k: dict(zip(PLACES, v, strict=True)) for k, v in result.columns.items()}
    assert cols["dams_in_runout"]["A_3km"] == 1 and cols["dams_in_runout"]["D_up"] == 1
    assert cols["dams_in_runout"]["B_30km"] == 0
    assert cols["dams_downstream"]["C_down"] == 1 and cols["dams_downstream"]["D_up"] == 0
    assert cols["reach_probability"]["A_3km"] == pytest.approx(reach(3.0), abs=1e-3)
    assert cols["nearest_dam_km"]["A_3km"] == pytest.approx(3.0, rel=0.005)
    assert math.isnan(cols["nearest_dam_km"]["F_far"])  # beyond the 50 km search
    assert math.isnan(cols["dams_in_runout"]["E_angola"])
    assert result.evidence.to_pylist() == [["d1"], [], ["d1"], ["d1"], [], []]
    assert list(result.precision) == ["precise", None, "precise", "precise", None, None]

    # People a failure would reach: Σ P(reach) × population, two significant figures, with
    # the 80 % range (nobody within the p10 run-out; A, C and D within the p90).
    d_c_km = GEOD.inv(*DAM, *PLACES["C_down"][0])[2] / 1000
    d_d_km = GEOD.inv(*DAM, *PLACES["D_up"][0])[2] / 1000
    expected = 850 * reach(3.0) + 1_200 * reach(d_c_km) + 700 * reach(d_d_km)
    assert row["people_in_runout"] == float(f"{expected:.2g}")
    assert row["people_in_runout_p10"] == 0 and row["people_in_runout_p90"] == 2_800
    assert row["communities_in_runout"] == 3
    assert "upper-bound screening estimate" in row["people_note"]
    assert row["indicative_consequence_class"] == gistm_class(np.array([expected]))[0]
    assert row["communities_downstream"] == 1 and row["river_name"] == "Test river"
    assert row["indicative_class_note"] == CLASS_NOTE
    assert row["reported_consequence"] == "high (ANM DPA)"
    assert not row["height_estimated"] and not row["volume_estimated"] and not row["failed"]
    text = row["runout_models"]
    assert "rico2008" in text and "concha_larrauri_lall2018" in text
    assert "0.354" in text and "0.545" in text and "FLO-2D" in text and "not read from" in text
    assert list(layer.columns) == [*LAYER_COLUMNS, "geometry"]
    assert layer.crs.to_epsg() == 4326 and layer.geometry.iloc[0].equals(shapely.Point(DAM))
    json.dumps(result.metadata)  # recorded in the build's metadata
    assert result.metadata["runout_spread_log10"] == {
        "rico2008": 0.86,
        "concha_larrauri_lall2018": 0.75,
    }
    assert "not read from the papers" in result.metadata["provenance"]


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


def test_unknown_height_or_volume_is_drawn_from_the_register_and_widens_the_band() -> None:
    params = TailingsExposureParams()
    reg = params.unknown_attributes
    dams = dams_frame(rows=[{"height_m": np.nan}, {"dam_id": "d2", "volume_m3": 0.0}, {}])
    layer = run(dams).layers["tailings_consequence"]
    assert list(layer["height_estimated"]) == [True, False, False]
    assert list(layer["volume_estimated"]) == [False, True, False]
    # Unknown values stay unknown in the layer: no made-up number.
    assert math.isnan(layer["height_m"].iloc[0]) and math.isnan(layer["volume_m3"].iloc[1])
    # The height expected of a 2 Mm³ dam in the register (log-normal, conditional on volume).
    lh = reg.log10_height_mean + reg.correlation * reg.log10_height_sd / reg.log10_volume_sd * (
        math.log10(2e6) - reg.log10_volume_mean
    )
    assert layer["runout_rico2008_p50_km"].iloc[0] == pytest.approx(rico(10**lh, 2.0)[1], rel=5e-3)
    # Not knowing widens the 80 % band around the median.
    width = np.log10(layer["runout_p90_km"] / layer["runout_p10_km"])
    assert width.iloc[0] > width.iloc[2] and width.iloc[1] > width.iloc[2]
    assert layer["runout_p10_km"].iloc[1] < layer["runout_p10_km"].iloc[2]


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
    [([], "Low"), ([30], "High"), ([6000, 4010], "Extreme"), ([None], "Significant")],
)
def test_class_from_the_people_a_failure_would_reach(populations, expected) -> None:
    places = {f"c{i}": (fwd(DAM, 90 * i, 500), "BRA", p) for i, p in enumerate(populations)}
    places["far"] = (fwd(DAM, 0, 100_000), "BRA", 50_000)
    row = (
        run(dams_frame(), communities=communities_frame(places))
        .layers["tailings_consequence"]
        .iloc[0]
    )
    assert row["indicative_consequence_class"] == expected
    assert row["communities_unknown_population"] == sum(p is None for p in populations)


def test_where_no_community_source_looked_people_are_unknown_not_zero() -> None:
    inputs = RiskInputs(
        communities=communities_frame(),
        tailings_dams=dams_frame(),
        coverage={Kind.tailings_dams: {"BRA"}, Kind.communities: {"AGO"}},
    )
    row = (
        TailingsExposure()
        .compute(inputs, TailingsExposureParams())
        .layers["tailings_consequence"]
        .iloc[0]
    )
    assert pd.isna(row["people_in_runout"]) and pd.isna(row["communities_in_runout"])
    assert row["indicative_consequence_class"] is None


def test_quantiles_are_capped_and_the_overland_limit_stops_the_runout() -> None:
    dams = dams_frame(height_m=109.0, volume_m3=506e6)
    layer = run(dams, max_runout_km=100.0).layers["tailings_consequence"]
    assert layer["runout_rico2008_p50_km"].iloc[0] > 1000 and layer["runout_p90_km"].iloc[0] == 100
    result = run(dams, max_runout_km=100.0)
    assert result.raw[list(PLACES).index("F_far")] == 0.0  # 200 km away
    uncapped = run(dams, max_runout_km=None, overland_max_km=None)
    assert uncapped.raw[list(PLACES).index("F_far")] > 0.0
    # Over land the run-out stops at overland_max_km; only a river carries a flow further.
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
    assert result.raw[0] > 0 and len(result.layers["tailings_consequence"]) == 1
    assert result.metadata["dams_on_river"] == 0


# --- recorded failures --------------------------------------------------------------------------


def failures_frame(*rows: tuple[str, tuple[float, float], str]) -> gpd.GeoDataFrame:
    """Incidents: (id, position, type)."""
    return gpd.GeoDataFrame(
        {
            "incident_id": [r[0] for r in rows],
            "date": pd.to_datetime(["2019-01-25"] * len(rows)),
            "type": [r[2] for r in rows],
            "fatalities": pd.array([270] * len(rows), dtype="Int64"),
            "description": ["a failure"] * len(rows),
            "location_precision": ["near"] * len(rows),
            "country": ["BRA"] * len(rows),
            "source": ["t"] * len(rows),
            "source_id": [r[0] for r in rows],
        },
        geometry=[shapely.Point(r[1]) for r in rows],
        crs="EPSG:4326",
    )


def test_a_failure_at_a_registered_dam_marks_it_and_gives_the_highest_exposure() -> None:
    incidents = failures_frame(("f1", fwd(DAM, 45, 800), "tailings failure"))
    inputs = RiskInputs(
        communities=communities_frame(),
        tailings_dams=dams_frame(),
        incidents=incidents,
        rivers=rivers_frame(),
        coverage=COVERAGE,
    )
    result = TailingsExposure().compute(inputs, TailingsExposureParams())
    row = result.layers["tailings_consequence"].iloc[0]
    assert len(result.layers["tailings_consequence"]) == 1  # matched, not added
    assert row["failed"] and row["status"] == "failed" and row["failure_date"] == "2019-01-25"
    assert row["failure_incident"] == "f1"
    norm_ = dict(zip(PLACES, result.normalised, strict=True))
    # Inside its p90 run-out (the overland limit) or on the river below: the highest exposure.
    assert norm_["A_3km"] == 1.0 and norm_["D_up"] == 1.0 and norm_["C_down"] == 1.0
    assert norm_["B_30km"] == 0.0 and math.isnan(norm_["E_angola"])
    ev = dict(zip(PLACES, result.evidence.to_pylist(), strict=True))
    assert ev["A_3km"][:2] == ["d1", "f1"]
    assert result.columns["failures_in_reach"][0] == 1


def test_a_failure_where_no_dam_is_registered_is_a_dam_of_unknown_size() -> None:
    """A failure is proof a dam was there: even where no register looked (Angola here)."""
    near_saurimo = fwd(SAURIMO, 90, 6_000)
    incidents = failures_frame(
        ("f2", near_saurimo, "Tailings failure"), ("v1", fwd(DAM, 0, 1000), "one-sided")
    )
    incidents.loc[0, "country"] = "AGO"
    inputs = RiskInputs(
        communities=communities_frame(),
        tailings_dams=dams_frame(),
        incidents=incidents,
        coverage=COVERAGE,
    )
    result = TailingsExposure().compute(inputs, TailingsExposureParams())
    layer = result.layers["tailings_consequence"]
    assert list(layer["dam_id"]) == ["d1", "f2"]  # the violent incident is no dam failure
    added = layer.iloc[1]
    assert added["failed"] and added["height_estimated"] and added["volume_estimated"]
    i = list(PLACES).index("E_angola")
    assert result.normalised[i] == 1.0 and result.evidence[i].as_py() == ["f2"]
    assert result.precision[i] == "estimated"
    assert math.isnan(result.raw[list(PLACES).index("F_far")]) is False


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
    assert np.all(~np.isnan(after[covered]))
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
    assert (layer["runout_p10_km"] <= layer["runout_p50_km"]).all()
    assert (layer["runout_p50_km"] <= layer["runout_p90_km"]).all()
    assert (layer["runout_p90_km"] <= 700.0).all()

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
