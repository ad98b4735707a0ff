"""Incident intensity, hand-computed at Bria (CAR), as a property, and on the bundled build."""

from __future__ import annotations

import datetime as dt
import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod, Transformer

from geo_service.risk import incident_intensity
from geo_service.risk.base import RiskInputs
from geo_service.risk.incident_intensity import (
    IncidentIntensity,
    IncidentIntensityParams,
    incident_weights,
    kernel,
)
from geo_service.schemas import LOCATION_PRECISIONS, Kind
from geo_service.store.files import load_layer
from tests.helpers import UCDP_CSV, read_text_csv

GEOD = Geod(ellps="WGS84")
BRIA = (21.98, 6.54)  # Haute-Kotto, CAR; alluvial diamond town
BABOUA = (14.82, 5.79)  # CAR, near the Cameroon border
GAROUA_BOULAI = (14.55, 5.88)  # Cameroon, across the border from Baboua
REF = dt.date(2022, 6, 30)
#: UTM zone 34N (18–24 E), the zone ``metric`` measures Bria in; used here through pyproj alone.
UTM34 = Transformer.from_crs("EPSG:4326", "EPSG:32634", always_xy=True)
FROM_UTM34 = Transformer.from_crs("EPSG:32634", "EPSG:4326", always_xy=True)


def _communities(points, countries) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"community_id": [f"c{i}" for i in range(len(points))], "country": countries},
        geometry=[shapely.Point(p) for p in points],
        crs="EPSG:4326",
    )


def _incidents(rows: list[dict]) -> gpd.GeoDataFrame:
    """Incidents in the canonical schema from (lon, lat, date, type, fatalities, precision)."""
    return gpd.GeoDataFrame(
        {
            "incident_id": [f"i{k}" for k in range(len(rows))],
            "date": pd.to_datetime([r["date"] for r in rows]).astype("datetime64[ms]"),
            "type": pd.array([r.get("type") for r in rows], dtype="str"),
            "fatalities": pd.array([r.get("fatalities") for r in rows], dtype="Int64"),
            "location_precision": pd.array([r.get("precision") for r in rows], dtype="str"),
            "country": "CAF",
        },
        geometry=[shapely.Point(r["lon"], r["lat"]) for r in rows],
        crs="EPSG:4326",
    )


def _run(communities, incidents, params=None, coverage=("CAF",)):
    inputs = RiskInputs(
        communities=communities, incidents=incidents, coverage={Kind.incidents: set(coverage)}
    )
    return IncidentIntensity().compute(inputs, params or IncidentIntensityParams())


def _bria_case() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Bria, a place 200 km away, and three incidents around Bria (see the hand test)."""
    a_lon, a_lat, _ = GEOD.fwd(*BRIA, 90, 1_000)  # exact, 1 km east, on the reference date
    b_lon, b_lat, _ = GEOD.fwd(*BRIA, 0, 10_000)  # district-level, 10 km north, a year earlier
    far_lon, far_lat, _ = GEOD.fwd(*BRIA, 180, 200_000)
    incidents = _incidents(
        [
            dict(lon=a_lon, lat=a_lat, date=REF, type="one-sided", fatalities=3, precision="exact"),
            dict(
                lon=b_lon,
                lat=b_lat,
                date=REF - dt.timedelta(days=365),
                type="state-based",
                fatalities=None,
                precision="admin2",
            ),
            # At the door but located only to a province: left out.
            dict(
                lon=BRIA[0],
                lat=BRIA[1],
                date=REF - dt.timedelta(days=10),
                type="non-state",
                fatalities=50,
                precision="admin1",
            ),
        ]
    )
    return _communities([BRIA, (far_lon, far_lat)], ["CAF", "CAF"]), incidents


def _expected_raw(d_a: float, d_b: float, params: IncidentIntensityParams) -> float:
    """The factor's formula written out for the Bria case."""
    w_a = 1.5 * (1 + params.fatality_weight * math.log(1 + 3))
    w_b = 1.0 * (1 + params.fatality_weight * math.log(1 + 0))  # missing fatalities count as 0
    return w_a * math.exp(-(d_a**2) / (2 * 2_000.0**2)) + w_b * math.exp(
        -(d_b**2) / (2 * 25_000.0**2)
    ) * 2 ** (-365 / 365)


def _utm_metres(p, q) -> float:
    (x0, x1), (y0, y1) = UTM34.transform([p[0], q[0]], [p[1], q[1]])
    return math.hypot(x1 - x0, y1 - y0)


def test_hand_computed_at_bria() -> None:
    communities, incidents = _bria_case()
    params = IncidentIntensityParams()
    result = _run(communities, incidents, params)
    a = (incidents.geometry[0].x, incidents.geometry[0].y)
    b = (incidents.geometry[1].x, incidents.geometry[1].y)

    # Against geodesic distances: distances are measured in UTM, within 0.03 % here (scale
    # factor 0.99974 at 1° from the central meridian), which moves the kernel by < 1e-4.
    d_a, d_b = GEOD.inv(*BRIA, *a)[2], GEOD.inv(*BRIA, *b)[2]
    assert d_a == pytest.approx(1_000) and d_b == pytest.approx(10_000)
    assert result.raw[0] == pytest.approx(_expected_raw(d_a, d_b, params), rel=2e-4)
    # The formula itself, to 1e-6, with the planar distances of the zone it is measured in.
    expected = _expected_raw(_utm_metres(BRIA, a), _utm_metres(BRIA, b), params)
    assert result.raw[0] == pytest.approx(expected, rel=1e-6)

    assert result.normalised[0] == pytest.approx(1 - math.exp(-result.raw[0] / 1.0), rel=1e-12)
    assert result.evidence[0].as_py() == ["i0", "i1"]  # the exact, recent one contributes most
    assert result.columns["incidents_in_reach"][0] == 2
    assert result.columns["fatalities_in_reach"][0] == 3
    assert result.columns["latest_incident"][0] == np.datetime64(REF)
    # 200 km away: covered, nothing in reach, so zero (not NaN).
    assert result.raw[1] == 0 and result.normalised[1] == 0
    assert result.evidence[1].as_py() == []
    assert result.columns["incidents_in_reach"][1] == 0
    assert np.isnat(result.columns["latest_incident"][1])
    assert result.metadata["excluded"] == {
        "no_location": 0,
        "no_date": 0,
        "tailings_failure": 0,
        "low_precision": 1,
        "after_reference_date": 0,
    }
    assert result.metadata["incidents_used"] == 2
    assert "2^(−Δt_i / T½)" in result.metadata["formula"]


def test_saturation_and_weights_are_parameters() -> None:
    communities, incidents = _bria_case()
    base = _run(communities, incidents)
    params = IncidentIntensityParams(saturation=4.0, type_weights={}, fatality_weight=0.0)
    other = _run(communities, incidents, params)
    d_a = _utm_metres(BRIA, incidents.geometry[0].coords[0])
    d_b = _utm_metres(BRIA, incidents.geometry[1].coords[0])
    assert other.raw[0] == pytest.approx(
        math.exp(-(d_a**2) / 8e6) + 0.5 * math.exp(-(d_b**2) / 1.25e9), rel=1e-6
    )
    assert other.normalised[0] == pytest.approx(1 - math.exp(-other.raw[0] / 4.0))
    assert other.raw[0] < base.raw[0]


def test_a_type_weighted_zero_does_not_count_as_in_reach() -> None:
    communities, incidents = _bria_case()
    result = _run(communities, incidents, IncidentIntensityParams(type_weights={"state-based": 0}))
    assert result.evidence[0].as_py() == ["i0"]
    assert result.columns["incidents_in_reach"][0] == 1


def test_kernel_peaks_at_one_and_is_below_1_2_percent_at_the_cutoff() -> None:
    assert kernel(np.array([0.0]), np.array([2_000.0]))[0] == 1.0
    assert kernel(np.array([6_000.0]), np.array([2_000.0]))[0] < 0.012


def test_incident_weights_are_the_per_incident_formula() -> None:
    _, incidents = _bria_case()
    w = incident_weights(incidents, IncidentIntensityParams(), REF)
    assert w.keep.tolist() == [True, True, False]
    assert w.weights[0] == pytest.approx(1.5 * (1 + 0.5 * math.log(4)))
    assert w.weights[1] == pytest.approx(0.5)
    assert w.weights[2] == 0
    assert w.bandwidth_m[:2].tolist() == [2_000.0, 25_000.0] and math.isnan(w.bandwidth_m[2])


def test_reference_date_defaults_to_the_newest_incident() -> None:
    communities, incidents = _bria_case()
    result = _run(communities, incidents)
    assert result.metadata["reference_date"] == REF.isoformat()
    assert result.metadata["reference_date_source"] == "newest incident"
    explicit = _run(communities, incidents, IncidentIntensityParams(reference_date=REF))
    np.testing.assert_array_equal(result.raw, explicit.raw)
    # A year later, every incident is one half-life older.
    later = _run(
        communities, incidents, IncidentIntensityParams(reference_date=REF + dt.timedelta(365))
    )
    assert later.raw[0] == pytest.approx(result.raw[0] / 2, rel=1e-12)


def test_an_earlier_reference_date_ignores_later_incidents() -> None:
    communities, incidents = _bria_case()
    ref = REF - dt.timedelta(days=100)
    result = _run(communities, incidents, IncidentIntensityParams(reference_date=ref))
    assert result.metadata["reference_date"] == "2022-03-22"
    assert result.metadata["excluded"]["after_reference_date"] == 1
    assert result.metadata["excluded"]["low_precision"] == 1
    assert result.evidence[0].as_py() == ["i1"]
    d_b = _utm_metres(BRIA, incidents.geometry[1].coords[0])
    assert result.raw[0] == pytest.approx(
        math.exp(-(d_b**2) / (2 * 25_000.0**2)) * 2 ** (-265 / 365), rel=1e-6
    )
    assert result.columns["latest_incident"][0] == np.datetime64(REF - dt.timedelta(365))
    # The day before the newest incident already leaves it out; its own day keeps it.
    eve = IncidentIntensityParams(reference_date=REF - dt.timedelta(days=1))
    assert _run(communities, incidents, eve).metadata["excluded"]["after_reference_date"] == 1


def test_outside_coverage_evidence_that_reaches_counts_and_nothing_found_is_no_data() -> None:
    """UCDP covers CAR; Garoua-Boulaï is in Cameroon, 32 km from an attack in Baboua: the
    attack reaches it, so it has a value (a border is no wall). Yaoundé, far from any event,
    is where nobody looked and nothing was found: no data, not 0."""
    yaounde = (11.52, 3.87)
    communities = _communities([BABOUA, GAROUA_BOULAI, yaounde], ["CAF", "CMR", "CMR"])
    incidents = _incidents(
        [dict(lon=BABOUA[0], lat=BABOUA[1], date=REF, type="one-sided", precision="admin2")]
    )
    assert GEOD.inv(*BABOUA, *GAROUA_BOULAI)[2] < 75_000  # within 3 bandwidths of 25 km
    result = _run(communities, incidents)
    assert result.raw[0] > result.raw[1] > 0
    assert result.evidence[1].as_py() == ["i0"]
    assert result.columns["incidents_in_reach"][1] == 1
    assert math.isnan(result.raw[2]) and math.isnan(result.normalised[2])
    assert result.evidence[2].as_py() == []
    assert math.isnan(result.columns["incidents_in_reach"][2])
    assert math.isnan(result.columns["fatalities_in_reach"][2])
    # Without any coverage, only where the event reaches has a value.
    none = _run(communities, incidents, coverage=()).raw
    assert none[0] > 0 and none[1] > 0 and math.isnan(none[2])


def test_tailings_failures_are_not_violence() -> None:
    """A tailings failure is evidence of the tailings factor, not of incident intensity:
    excluded and counted, and it does not move the reference date."""
    communities = _communities([BRIA], ["CAF"])
    incidents = _incidents(
        [
            dict(lon=BRIA[0], lat=BRIA[1], date=REF, type="one-sided", precision="exact"),
            dict(
                lon=BRIA[0],
                lat=BRIA[1],
                date=REF + dt.timedelta(days=400),
                type="Tailings failure",
                precision="exact",
            ),
        ]
    )
    result = _run(communities, incidents)
    assert result.metadata["excluded"]["tailings_failure"] == 1
    assert result.metadata["reference_date"] == REF.isoformat()
    assert result.evidence[0].as_py() == ["i0"]


@pytest.mark.parametrize("incidents", [None, "empty"])
def test_no_incidents_gives_zero_inside_coverage(incidents) -> None:
    communities = _communities([BRIA, GAROUA_BOULAI], ["CAF", "CMR"])
    if incidents == "empty":
        incidents = _bria_case()[1].iloc[:0]
    result = _run(communities, incidents)
    assert result.raw[0] == 0 and math.isnan(result.raw[1])
    assert result.evidence.to_pylist() == [[], []]
    assert result.metadata["reference_date"] is None


def test_only_excluded_incidents_give_zero_and_are_counted() -> None:
    communities, incidents = _bria_case()
    coarse = incidents.iloc[[2]]
    result = _run(communities, coarse)
    assert result.raw.tolist() == [0.0, 0.0]
    assert result.evidence.to_pylist() == [[], []]
    assert result.metadata["excluded"]["low_precision"] == 1
    assert result.metadata["incidents_used"] == 0


def test_unknown_precision_in_params_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown location precision"):
        IncidentIntensityParams(bandwidth_km={"village": 2.0})


def _random_case(seed: int, n_comm: int = 40, n_inc: int = 400):
    rng = np.random.default_rng(seed)
    x0, y0 = UTM34.transform(*BRIA)
    cx, cy = FROM_UTM34.transform(
        x0 + rng.uniform(-80e3, 80e3, n_comm), y0 + rng.uniform(-80e3, 80e3, n_comm)
    )
    ix, iy = FROM_UTM34.transform(
        x0 + rng.uniform(-100e3, 100e3, n_inc), y0 + rng.uniform(-100e3, 100e3, n_inc)
    )
    precisions = [*LOCATION_PRECISIONS, None]
    types = ["one-sided", "state-based", "non-state", "other", None]
    rows = [
        dict(
            lon=ix[k],
            lat=iy[k],
            date=REF - dt.timedelta(days=int(rng.integers(0, 3000))),
            type=types[rng.integers(len(types))],
            fatalities=None if rng.random() < 0.1 else int(rng.integers(0, 100)),
            precision=precisions[rng.integers(len(precisions))],
        )
        for k in range(n_inc)
    ]
    return _communities(list(zip(cx, cy, strict=True)), ["CAF"] * n_comm), _incidents(rows)


def test_same_inputs_give_identical_arrays() -> None:
    communities, incidents = _random_case(7)
    first, second = _run(communities, incidents), _run(communities, incidents)
    assert (first.raw > 0).sum() > 10  # the case exercises the sums
    np.testing.assert_array_equal(first.raw, second.raw)
    np.testing.assert_array_equal(first.normalised, second.normalised)
    for col in first.columns:
        np.testing.assert_array_equal(first.columns[col], second.columns[col])
    assert first.evidence.equals(second.evidence)
    assert first.metadata == second.metadata


def test_values_do_not_depend_on_how_the_work_is_split(monkeypatch) -> None:
    communities, incidents = _random_case(11)
    whole = _run(communities, incidents)
    monkeypatch.setattr(incident_intensity, "PAIR_BUDGET", 100)  # 17 groups of 1–3
    split = _run(communities, incidents)
    np.testing.assert_array_equal(whole.raw, split.raw)
    for col in whole.columns:
        np.testing.assert_array_equal(whole.columns[col], split.columns[col])
    assert whole.evidence.equals(split.evidence)


_offsets = st.tuples(st.floats(-40e3, 40e3), st.floats(-40e3, 40e3))
_incident = st.tuples(
    _offsets,
    st.sampled_from([*LOCATION_PRECISIONS, None]),
    st.sampled_from(["one-sided", "state-based", "non-state", None]),
    st.one_of(st.none(), st.integers(0, 500)),
    st.integers(0, 2000),
)


@settings(max_examples=50, deadline=None)
@given(
    communities=st.lists(_offsets, min_size=1, max_size=4),
    incidents=st.lists(_incident, min_size=1, max_size=6),
    which=st.integers(0, 100),
    towards=st.integers(0, 100),
    t=st.floats(0.0, 1.0),
)
def test_moving_an_incident_closer_never_lowers_the_value(
    communities, incidents, which, towards, t
) -> None:
    # Positions are laid out in metres in the zone the factor measures in, so "closer" is exact.
    x0, y0 = UTM34.transform(*BRIA)
    comm_xy = np.array(communities) + (x0, y0)
    inc_xy = np.array([inc[0] for inc in incidents]) + (x0, y0)
    j, m = which % len(incidents), towards % len(communities)
    moved = inc_xy.copy()
    moved[j] = comm_xy[m] + t * (inc_xy[j] - comm_xy[m])

    def case(xy):
        lon, lat = FROM_UTM34.transform(xy[:, 0], xy[:, 1])
        rows = [
            dict(
                lon=lon[k],
                lat=lat[k],
                date=REF - dt.timedelta(days=age),
                type=kind,
                fatalities=deaths,
                precision=precision,
            )
            for k, (_, precision, kind, deaths, age) in enumerate(incidents)
        ]
        return _incidents(rows)

    clon, clat = FROM_UTM34.transform(comm_xy[:, 0], comm_xy[:, 1])
    places = _communities(list(zip(clon, clat, strict=True)), ["CAF"] * len(comm_xy))
    params = IncidentIntensityParams(reference_date=REF)
    before = _run(places, case(inc_xy), params).raw[m]
    after = _run(places, case(moved), params).raw[m]
    assert after >= before * (1 - 1e-9)


def test_on_the_bundled_build(built, build_dir, catalog) -> None:
    communities = load_layer(build_dir, "communities")
    incidents = load_layer(build_dir, "incidents")
    coverage = {
        Kind.incidents: set().union(
            *(e.coverage.countries for e in catalog.by_kind(Kind.incidents))
        )
    }
    assert coverage[Kind.incidents] == {"CAF"}
    params = IncidentIntensityParams()
    result = IncidentIntensity().compute(
        RiskInputs(communities=communities, incidents=incidents, coverage=coverage), params
    )
    # UCDP GED 23.1's newest CAR event is dated 2022-12-30.
    assert result.metadata["reference_date"] == "2022-12-30"
    # Events located only to a province, region or country (where_prec 4–7) are excluded.
    ucdp = read_text_csv(UCDP_CSV)
    coarse = int(ucdp["where_prec"].astype(int).between(4, 7).sum())
    assert coarse == 111
    assert result.metadata["excluded"]["low_precision"] == coarse
    assert result.metadata["incidents_used"] == len(ucdp) - coarse

    country = communities["country"].to_numpy()
    caf = country == "CAF"
    assert np.isfinite(result.raw[caf]).all() and (result.raw[caf] > 0).mean() > 0.9
    assert np.isnan(result.raw[country == "BRA"]).all()
    # Beyond CAR, a value only where CAR's events reach (Zongo, across the Ubangi from
    # Bangui), never 0: elsewhere no data.
    outside = result.raw[~caf]
    assert (outside[~np.isnan(outside)] > 0).all() and np.isnan(outside).mean() > 0.99

    top = int(np.nanargmax(result.raw))
    assert country[top] == "CAF"
    place = communities.geometry.iloc[top]
    evidence = result.evidence[top].as_py()
    assert len(evidence) == 5
    by_id = incidents.set_index("incident_id")
    bandwidth_m = {k: v * 1000 for k, v in params.bandwidth_km.items()}
    for incident_id in evidence:
        row = by_id.loc[incident_id]
        metres = GEOD.inv(place.x, place.y, row.geometry.x, row.geometry.y)[2]
        h = bandwidth_m[row["location_precision"]]
        assert metres <= 3 * h * 1.001
        assert row["date"] <= pd.Timestamp("2022-12-30")
    assert result.columns["incidents_in_reach"][top] >= 5
    assert result.columns["latest_incident"][top] <= np.datetime64("2022-12-30")


def test_the_grid_method_agrees_with_the_exact_one_on_the_bundled_build(built, build_dir) -> None:
    communities = load_layer(build_dir, "communities")
    incidents = load_layer(build_dir, "incidents")
    inputs = RiskInputs(
        communities=communities, incidents=incidents, coverage={Kind.incidents: {"CAF"}}
    )
    factor = IncidentIntensity()
    auto = factor.compute(inputs, IncidentIntensityParams())
    exact = factor.compute(inputs, IncidentIntensityParams(method="exact"))
    grid = factor.compute(inputs, IncidentIntensityParams(method="grid"))
    forced = factor.compute(inputs, IncidentIntensityParams(exact_pair_limit=0))

    pairs = exact.metadata["pairs_in_reach"]
    assert pairs == np.nansum(exact.columns["incidents_in_reach"]) > 1_000
    assert auto.metadata["method"] == "exact"  # far below the default limit
    assert forced.metadata["method"] == grid.metadata["method"] == "grid"
    np.testing.assert_array_equal(auto.raw, exact.raw)
    np.testing.assert_array_equal(forced.raw, grid.raw)

    # The same communities in reach, the same evidence in the same order.
    np.testing.assert_array_equal(
        grid.columns["incidents_in_reach"], exact.columns["incidents_in_reach"]
    )
    assert grid.evidence.equals(exact.evidence)
    # Values within the grid's stated error; deaths and dates in reach left unknown.
    live = exact.raw > 0.05
    assert live.sum() > 40
    rel = np.abs(grid.raw[live] - exact.raw[live]) / exact.raw[live]
    assert np.median(rel) < 0.005
    assert np.nanmax(np.abs(grid.normalised - exact.normalised)) < 0.01
    np.testing.assert_array_equal(np.isnan(grid.raw), np.isnan(exact.raw))
    caf = communities["country"].to_numpy() == "CAF"
    assert np.isnan(grid.columns["fatalities_in_reach"][caf]).all()
    assert np.isnat(grid.columns["latest_incident"]).all()


def test_grid_evidence_is_exact_among_many_events_at_one_place() -> None:
    # UCDP puts every district-level event at the district's centroid: a dozen events of
    # nearly equal weight at one point, more than the first nearest-neighbour search takes.
    lon, lat = BRIA[0] + 0.2, BRIA[1]
    rows = [
        dict(lon=lon, lat=lat, date=REF - dt.timedelta(days=3 * k), precision="admin2")
        for k in range(13)
    ]
    rng = np.random.default_rng(5)
    rows = [rows[i] for i in rng.permutation(13)]
    communities = _communities([BRIA], ["CAF"])
    exact = _run(communities, _incidents(rows), IncidentIntensityParams(method="exact"))
    grid = _run(communities, _incidents(rows), IncidentIntensityParams(method="grid"))
    newest = [f"i{k}" for k in np.argsort([(REF - r["date"]).days for r in rows])[:5]]
    assert exact.evidence[0].as_py() == newest
    assert grid.evidence[0].as_py() == newest
