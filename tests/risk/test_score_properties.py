"""Properties of the published score (hypothesis), on real evidence from the bundled build.

The scene: the 51 places of the Central African Republic with every USGS site and UCDP event
(concessions and incidents), and the 58 places of the Quadrilátero Ferrífero (Minas Gerais)
with half of the ANM tailings dams there and the Natural Earth rivers around it (tailings,
river pathway included). Hypothesis adds coverage to a factor, or evidence of any kind — a
real incident moved, a dam from the register, a USGS site (a located mine or a province's
stand-in), a tailings failure — and the whole ``community_risk`` score is compared.

Why the properties hold: every factor is a sum (or, for concessions, the nearest distance) of
non-negative terms that fall with distance, normalised by a fixed saturation — never by the
data; a factor with no data is left out of the combination, and one with data at 0 leaves the
score as it is (1 − Π(1 − n)^w: a probabilistic OR, ``combine.py``). So more coverage or more
or closer evidence can only raise a score. They hold for the exact incident sum, which the
bundled data use; the grid evaluation is exact only to its documented error
(``test_grid_method_keeps_moving_closer_within_its_error``). Incident ages are measured from a
fixed reference date here, as a build that adds newer incidents should set it (methodology §3).
"""

from __future__ import annotations

import copy
import datetime as dt
import tempfile
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import Geod, Transformer

from geo_service.build import EVIDENCE_KINDS, write_layer
from geo_service.catalog import SourceCatalog
from geo_service.risk import FACTORS
from geo_service.risk.base import CoverageArea, FactorResult, RiskInputs, no_evidence
from geo_service.risk.combine import combine
from geo_service.risk.incident_intensity import IncidentIntensity, IncidentIntensityParams
from geo_service.risk.model import coverage_of, read_rivers, run_risk
from geo_service.risk.params import RiskParams, load_risk_params
from geo_service.risk.surface import write_cog
from geo_service.schemas import Kind
from geo_service.store.files import load_layer
from tests.conftest import LAYERS

GEOD = Geod(ellps="WGS84")
#: The Quadrilátero Ferrífero: Brumadinho, Itabirito, Congonhas, Mariana, Catas Altas.
QUADRILATERO = shapely.box(-44.6, -20.7, -43.2, -19.6)
#: Dams that may be added: the rest of the register within about 100 km of it.
AROUND = shapely.box(-45.5, -21.5, -42.5, -19.0)
#: The surface at 2 km for the byte-identity runs: the cells are not what is tested.
QUICK_SURFACE_M = 2000.0
SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REFERENCE = dt.date(2022, 12, 30)


@dataclass
class Scene:
    layers: dict[Kind, gpd.GeoDataFrame]
    rivers: gpd.GeoDataFrame
    candidates: gpd.GeoDataFrame
    catalog: SourceCatalog
    params: RiskParams
    coverage: dict
    before: gpd.GeoDataFrame

    def inputs(self, coverage: dict | None = None, **replace: gpd.GeoDataFrame) -> RiskInputs:
        layers = {**self.layers, **{Kind(k): v for k, v in replace.items()}}
        return RiskInputs(
            communities=layers[Kind.communities],
            concessions=layers[Kind.concessions],
            tailings_dams=layers[Kind.tailings_dams],
            incidents=layers[Kind.incidents],
            rivers=self.rivers,
            coverage=coverage if coverage is not None else self.coverage,
        )


def community_risk(
    scene: Scene, coverage: dict | None = None, **replace: gpd.GeoDataFrame
) -> gpd.GeoDataFrame:
    """The ``community_risk`` layer, as ``run_risk`` makes it: every factor, then ``combine``."""
    inputs = scene.inputs(coverage, **replace)
    results = [f.compute(inputs, scene.params.factors[name]) for name, f in FACTORS.items()]
    assert results[2].metadata["method"] == "exact"
    return combine(inputs.communities, results, scene.params)


@pytest.fixture(scope="module")
def scene(built, build_dir: Path, catalog: SourceCatalog, tmp_path_factory) -> Scene:
    every = {kind: load_layer(build_dir, kind.value) for kind in EVIDENCE_KINDS}
    places = every[Kind.communities]
    in_box = places.intersects(QUADRILATERO)
    communities = places[places["country"].eq("CAF") | in_box].reset_index(drop=True)
    dams = every[Kind.tailings_dams]
    local = dams[dams.intersects(QUADRILATERO)]
    base, rest = local.iloc[::2], dams[dams.intersects(AROUND)].drop(local.index[::2])
    rivers = read_rivers(catalog)
    rivers = rivers[rivers.intersects(shapely.buffer(QUADRILATERO, 3.0))].reset_index(drop=True)
    # The catalog as a build reads it, its rivers cut to the scene's (a file of their own).
    river_file = tmp_path_factory.mktemp("scene") / "rivers.geojson"
    rivers.to_file(river_file)
    reference = catalog.reference.model_copy(update={"rivers": [river_file]})
    layers = {
        Kind.communities: communities,
        Kind.concessions: every[Kind.concessions],
        Kind.tailings_dams: base.reset_index(drop=True),
        Kind.incidents: every[Kind.incidents],
    }
    coverage, _ = coverage_of(catalog, every)
    params = load_risk_params(LAYERS / "risk.toml")
    incident_params = params.factors["incident_intensity"].model_copy(
        update={"reference_date": REFERENCE}
    )
    params = params.model_copy(
        update={"factors": {**params.factors, "incident_intensity": incident_params}}
    )
    s = Scene(
        layers=layers,
        rivers=rivers,
        candidates=rest.reset_index(drop=True),
        catalog=catalog.model_copy(update={"reference": reference}),
        params=params,
        coverage=coverage,
        before=gpd.GeoDataFrame(),
    )
    s.before = community_risk(s)
    # The scene exercises what it should: three factors in CAR, tailings by both pathways.
    assert len(communities) == 51 + 58 and len(base) == 36 and len(rest) == 50
    b = s.before
    assert (b["concession_pressure_raw"].notna() & b["incident_intensity_raw"].notna()).sum() == 51
    assert (b["tailings_exposure_dams_in_runout"] > 0).sum() > 20
    assert (b["tailings_exposure_dams_downstream"] > 0).sum() > 0
    return s


def _same_availability(before: gpd.GeoDataFrame, after: gpd.GeoDataFrame) -> None:
    assert before["factors_available"].tolist() == after["factors_available"].tolist()
    np.testing.assert_array_equal(before["score"].isna(), after["score"].isna())


def _never_lower(before: gpd.GeoDataFrame, after: gpd.GeoDataFrame) -> None:
    """No score fell, none was lost, and no factor with data lost it."""
    b, a = before["score"].to_numpy(), after["score"].to_numpy()
    scored = ~np.isnan(b)
    assert not np.isnan(a[scored]).any()
    low = np.flatnonzero(a[scored] < b[scored])
    assert low.size == 0, (
        before.loc[scored].iloc[low][["name", "score"]].assign(after=a[scored][low])
    )
    for f in FACTORS:
        had = before[f"{f}_normalised"].notna().to_numpy()
        assert after[f"{f}_normalised"].notna().to_numpy()[had].all(), f


# --- more coverage, more evidence: never a lower score -----------------------------------------

KINDS = {
    "concession_pressure": Kind.concessions,
    "tailings_exposure": Kind.tailings_dams,
    "incident_intensity": Kind.incidents,
}


@SETTINGS
@given(
    factor=st.sampled_from(sorted(KINDS)),
    countries=st.sets(st.sampled_from(["BRA", "CAF", "COD", "CMR"]), min_size=1),
)
def test_more_coverage_never_lowers_a_score(scene: Scene, factor, countries) -> None:
    """Giving a factor coverage where it had none (a new register, a survey of a new
    region) finds nothing new or something: the score never falls (the weighted mean did:
    incident coverage over the Quadrilátero halved every tailings score there)."""
    kind = KINDS[factor]
    coverage = dict(scene.coverage)
    old = coverage.get(kind) or CoverageArea()
    coverage[kind] = CoverageArea(old.countries | frozenset(countries), old.area, old.area_sources)
    after = community_risk(scene, coverage=coverage)
    _never_lower(scene.before, after)


def _near(place: shapely.Point, azimuth: float, km: float) -> shapely.Point:
    lon, lat, _ = GEOD.fwd(place.x, place.y, azimuth, km * 1000.0)
    return shapely.Point(lon, lat)


@SETTINGS
@given(
    which=st.integers(0, 10**6),
    place=st.integers(0, 10**6),
    azimuth=st.floats(0.0, 360.0),
    km=st.floats(0.0, 60.0),
    precision=st.sampled_from(["exact", "near", "admin1", None]),
    radius_km=st.sampled_from([2.0, 10.0, 25.0]),
)
def test_adding_a_mine_site_never_lowers_a_score(
    scene: Scene, which, place, azimuth, km, precision, radius_km
) -> None:
    """A USGS site of the extract, copied near any place of the scene (CAR or Brazil), as a
    located mine or as a province's stand-in."""
    sites = scene.layers[Kind.concessions]
    site = sites.iloc[[which % len(sites)]].copy()
    where = scene.layers[Kind.communities].geometry.iloc[place % len(scene.before)]
    site.geometry = [_near(where, azimuth, km)]
    site["concession_id"] = "added"
    site["location_precision"] = precision
    site["footprint_radius_m"] = radius_km * 1000.0
    after = community_risk(scene, concessions=pd.concat([sites, site], ignore_index=True))
    _never_lower(scene.before, after)


@SETTINGS
@given(
    which=st.integers(0, 10**6),
    place=st.integers(0, 10**6),
    azimuth=st.floats(0.0, 360.0),
    km=st.floats(0.0, 40.0),
    days=st.integers(0, 3650),
    deaths=st.integers(0, 500),
    kind=st.sampled_from(["one-sided", "state-based", "non-state", "tailings failure", None]),
)
def test_adding_an_incident_never_lowers_a_score(
    scene: Scene, which, place, azimuth, km, days, deaths, kind
) -> None:
    """A real event copied near any place (violence, or a tailings failure), dated up to ten
    years before the reference date."""
    incidents = scene.layers[Kind.incidents]
    event = incidents.iloc[[which % len(incidents)]].copy()
    where = scene.layers[Kind.communities].geometry.iloc[place % len(scene.before)]
    event.geometry = [_near(where, azimuth, km)]
    event["incident_id"] = "added"
    event["date"] = pd.Timestamp(REFERENCE - dt.timedelta(days=days)).as_unit(event["date"].dt.unit)
    event["fatalities"] = pd.array([deaths], dtype=incidents["fatalities"].dtype)
    event["type"] = kind
    after = community_risk(scene, incidents=pd.concat([incidents, event], ignore_index=True))
    _never_lower(scene.before, after)


def test_a_recorded_failure_gives_the_highest_tailings_exposure(scene: Scene) -> None:
    """Not vacuous: a tailings failure recorded 1 km from a Quadrilátero town raises it to
    the top of the tailings factor, the failure in its evidence."""
    b = scene.before
    brazil = np.flatnonzero(b["country"].eq("BRA").to_numpy())
    m = int(brazil[np.argmin(b["tailings_exposure_normalised"].to_numpy()[brazil])])
    incidents = scene.layers[Kind.incidents]
    event = incidents.iloc[[0]].copy()
    event.geometry = [_near(scene.layers[Kind.communities].geometry.iloc[m], 90.0, 1.0)]
    event["incident_id"], event["type"], event["country"] = "failure", "tailings failure", "BRA"
    after = community_risk(scene, incidents=pd.concat([incidents, event], ignore_index=True))
    assert after["tailings_exposure_normalised"].iloc[m] == 1.0
    assert after["score"].iloc[m] == 100.0 and after["risk_class"].iloc[m] == "very high"
    assert "failure" in after["tailings_exposure_evidence"].iloc[m]
    # It is no act of violence: the incident factor did not move.
    pd.testing.assert_series_equal(
        after["incident_intensity_raw"], b["incident_intensity_raw"], check_exact=False
    )


# --- what one factor, or nothing, gives -------------------------------------------------------


normalised_values = st.one_of(st.just(np.nan), st.floats(0.0, 1.0))


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(
        st.tuples(normalised_values, normalised_values, normalised_values), min_size=1, max_size=20
    )
)
def test_one_strong_factor_gives_at_least_high_and_zeros_give_zero(values) -> None:
    params = load_risk_params(LAYERS / "risk.toml")
    n = len(values)
    communities = gpd.GeoDataFrame(
        {
            "community_id": [str(i) for i in range(n)],
            "name": "x",
            "country": "BRA",
            "admin1": None,
            "population": pd.array([None] * n, dtype="Int64"),
            "source": "t",
            "source_id": "t",
            "sensitivity": "public",
        },
        geometry=[shapely.Point(0, 0)] * n,
        crs="EPSG:4326",
    )
    grid = np.array(values, dtype="float64").reshape(n, 3)
    results = [
        FactorResult(name, grid[:, i], grid[:, i].copy(), no_evidence(n))
        for i, name in enumerate(FACTORS)
    ]
    out = combine(communities, results, params)
    strong = np.nanmax(np.where(np.isnan(grid), -1, grid), axis=1) >= 0.8
    assert out["risk_class"][strong].isin(["high", "very high"]).all()
    none = np.isnan(grid).all(axis=1)
    assert out["score"][none].isna().all() and (out["risk_class"][none] == "no data").all()
    zeros = ~none & (np.nan_to_num(grid) == 0).all(axis=1)
    assert (out["score"][zeros] == 0.0).all()
    parts = out[[f"{f}_contribution" for f in FACTORS]].to_numpy(dtype="float64")
    np.testing.assert_array_equal(np.isnan(parts), np.isnan(grid))
    assert (np.nan_to_num(parts) >= 0).all()
    np.testing.assert_allclose(
        np.nansum(parts, axis=1)[~none], out["score"].to_numpy()[~none], atol=1e-9
    )
    for name in FACTORS:
        missing = out["factors_missing"].map(lambda m, f=name: f in m).to_numpy()
        np.testing.assert_array_equal(missing, out[f"{name}_normalised"].isna().to_numpy())


def test_the_bundled_build_keeps_the_score_properties(built, build_dir: Path) -> None:
    """On every community of the bundled build: a strong factor is at least "high"; a
    province's stand-in alone is at most "medium"; the contributions add up to the score
    exactly; no data is NaN and listed, never 0; the class is the published score's."""
    cr = load_layer(build_dir, "community_risk")
    params = load_risk_params(LAYERS / "risk.toml")
    norm = cr[[f"{f}_normalised" for f in FACTORS]].to_numpy(dtype="float64")
    strong = np.nanmax(np.where(np.isnan(norm), -1, norm), axis=1) >= 0.8
    assert strong.sum() > 100
    assert cr["risk_class"][strong].isin(["high", "very high"]).all()
    parts = cr[[f"{f}_contribution" for f in FACTORS]].to_numpy(dtype="float64")
    scored = cr["score"].notna().to_numpy()
    np.testing.assert_allclose(np.nansum(parts, axis=1)[scored], cr["score"][scored], atol=1e-9)
    np.testing.assert_array_equal(np.isnan(parts), np.isnan(norm))
    assert (cr["risk_class"] == params.classes.of(cr["score"].to_numpy())).all()
    # Kananga: 8.9 km from the Kasai-Central stand-in, nothing else: medium at most, and low
    # confidence (it was "100 · very high").
    kananga = cr[cr["name"].eq("Kananga")].iloc[0]
    assert kananga["risk_class"] == "medium" and kananga["confidence"] == "low"
    alone = (
        (cr["concession_pressure_normalised"] > 0)
        & cr["incident_intensity_normalised"].fillna(0).eq(0)
        & cr["tailings_exposure_normalised"].fillna(0).eq(0)
    )
    stand_in = (
        alone
        & cr["concession_pressure_normalised"].le(
            params.factors["concession_pressure"].stand_in_cap
        )
        & cr["confidence_reasons"].map(lambda r: "province_stand_in" in r)
    )
    assert stand_in.sum() > 30
    assert cr["risk_class"][stand_in].isin(["low", "medium"]).all()
    # Bria: 78 incidents, 768 deaths, no mine point within 50 km: very high (was 50 · medium).
    bria = cr[cr["name"].eq("Bria")].iloc[0]
    assert bria["risk_class"] == "very high" and bria["incident_intensity_normalised"] > 0.99
    # Kinshasa: concessions looked and found nothing, nothing else looked: 0 with low confidence.
    kinshasa = cr[cr["name"].eq("Kinshasa")].iloc[0]
    assert kinshasa["score"] == 0.0 and kinshasa["confidence"] == "low"
    assert set(kinshasa["factors_missing"]) == {"tailings_exposure", "incident_intensity"}


# --- moving an incident closer -----------------------------------------------------------------


def _utm(lon: float, lat: float) -> tuple[Transformer, Transformer]:
    """To and from the UTM zone the factor measures a community at (lon, lat) in."""
    zone = int(np.clip(np.floor((lon + 180.0) / 6.0) + 1, 1, 60))
    epsg = (32700 if lat < 0 else 32600) + zone
    return (
        Transformer.from_crs("EPSG:4326", epsg, always_xy=True),
        Transformer.from_crs(epsg, "EPSG:4326", always_xy=True),
    )


def _moved_towards(
    incidents: gpd.GeoDataFrame, j: int, place: shapely.Point, t: float
) -> gpd.GeoDataFrame:
    """Incident ``j`` at the fraction ``t`` of its distance to ``place``, in place's UTM metres."""
    to, back = _utm(place.x, place.y)
    px, py = to.transform(place.x, place.y)
    ix, iy = to.transform(incidents.geometry.iloc[j].x, incidents.geometry.iloc[j].y)
    lon, lat = back.transform(px + t * (ix - px), py + t * (iy - py))
    moved = incidents.copy()
    geoms = moved.geometry.to_numpy().copy()
    geoms[j] = shapely.Point(lon, lat)
    moved.geometry = geoms
    return moved


@SETTINGS
@given(which=st.integers(0, 10**6), towards=st.integers(0, 10**6), t=st.floats(0.0, 0.95))
def test_moving_an_incident_closer_never_lowers_a_score(scene: Scene, which, towards, t) -> None:
    incidents = scene.layers[Kind.incidents]
    usable = np.flatnonzero(incidents["location_precision"].isin(["exact", "near", "admin2"]))
    j = int(usable[which % len(usable)])
    car = np.flatnonzero(scene.before["country"].eq("CAF").to_numpy())
    m = int(car[towards % len(car)])
    place = scene.layers[Kind.communities].geometry.iloc[m]
    after = community_risk(scene, incidents=_moved_towards(incidents, j, place, t))
    before = scene.before
    _same_availability(before, after)
    assert after["score"].iloc[m] >= before["score"].iloc[m]
    assert after["incident_intensity_normalised"].iloc[m] >= before[
        "incident_intensity_normalised"
    ].iloc[m] * (1 - 1e-12)
    # Nothing but the incident factor moved.
    for col in ("concession_pressure_normalised", "tailings_exposure_normalised"):
        pd.testing.assert_series_equal(after[col], before[col])


def test_an_incident_brought_to_a_place_raises_its_score(scene: Scene) -> None:
    """The property is not vacuous: the latest one-sided massacre of the extract, moved into
    a CAR place scored below 50, raises that place's score."""
    incidents = scene.layers[Kind.incidents]
    deadly = incidents[
        incidents["type"].eq("one-sided") & incidents["location_precision"].eq("exact")
    ]
    j = int(incidents.index.get_loc(deadly.sort_values(["date", "fatalities"]).index[-1]))
    b = scene.before
    m = int(np.flatnonzero(b["country"].eq("CAF").to_numpy() & (b["score"] < 50).to_numpy())[0])
    place = scene.layers[Kind.communities].geometry.iloc[m]
    after = community_risk(scene, incidents=_moved_towards(incidents, j, place, 0.0))
    assert after["score"].iloc[m] > b["score"].iloc[m] + 1.0
    assert incidents["incident_id"].iloc[j] in after["incident_intensity_evidence"].iloc[m]


@settings(max_examples=20, deadline=None)
@given(
    t0=st.floats(0.05, 1.0),
    step=st.floats(0.0, 1.0),
    azimuth=st.floats(0.0, 360.0),
    km=st.floats(0.5, 8.0),
)
def test_grid_method_keeps_moving_closer_within_its_error(t0, step, azimuth, km) -> None:
    """The grid reads the kernel bilinearly between cell centres (h/6 apart), so its value is
    not exactly monotone in distance: moving an incident closer may lower it, by no more than
    the grid's documented error (1 % of the weight in reach; methodology §3)."""
    bria = (21.98, 6.54)
    lon, lat, _ = GEOD.fwd(*bria, azimuth, km * 1000.0)
    place = shapely.Point(bria)
    events = gpd.GeoDataFrame(
        {
            "incident_id": ["e"],
            "date": pd.to_datetime([dt.date(2022, 1, 1)]).astype("datetime64[ms]"),
            "type": pd.array(["state-based"], dtype="str"),
            "fatalities": pd.array([0], dtype="Int64"),
            "location_precision": pd.array(["exact"], dtype="str"),
            "country": "CAF",
        },
        geometry=[shapely.Point(lon, lat)],
        crs="EPSG:4326",
    )
    communities = gpd.GeoDataFrame({"country": ["CAF"]}, geometry=[place], crs="EPSG:4326")
    params = IncidentIntensityParams(method="grid", reference_date=dt.date(2022, 1, 1))

    def raw(t: float) -> float:
        inputs = RiskInputs(
            communities=communities,
            incidents=_moved_towards(events, 0, place, t),
            coverage={Kind.incidents: {"CAF"}},
        )
        return float(IncidentIntensity().compute(inputs, params).raw[0])

    farther, closer = raw(t0), raw(t0 * step)
    assert closer >= farther - 0.01  # the weight in reach is 1


# --- adding a dam ------------------------------------------------------------------------------


@SETTINGS
@given(
    pick=st.integers(0, 10**6),
    azimuth=st.floats(0.0, 360.0),
    km=st.floats(0.0, 20.0),
    height=st.one_of(st.none(), st.floats(1.0, 150.0)),
    volume=st.one_of(st.none(), st.floats(1e3, 5e8)),
    status=st.sampled_from(["active", "inactive", "decommissioning", "under construction", None]),
    method=st.sampled_from(["upstream", "centreline", "downstream", "single_stage", None]),
)
def test_adding_a_dam_never_lowers_a_score(
    scene: Scene, pick, azimuth, km, height, volume, status, method
) -> None:
    dam = scene.candidates.iloc[[pick % len(scene.candidates)]].copy()
    lon, lat, _ = GEOD.fwd(dam.geometry.x.iloc[0], dam.geometry.y.iloc[0], azimuth, km * 1000.0)
    dam.geometry = [shapely.Point(lon, lat)]
    dam["dam_id"] = "added"
    dam["height_m"] = np.nan if height is None else height
    dam["volume_m3"] = np.nan if volume is None else volume
    dam["status"], dam["construction_method"] = status, method
    dams = pd.concat([scene.layers[Kind.tailings_dams], dam], ignore_index=True)
    after = community_risk(scene, tailings_dams=dams)
    before = scene.before
    _never_lower(before, after)
    scored = before["score"].notna().to_numpy()
    assert (after["score"].to_numpy()[scored] >= before["score"].to_numpy()[scored]).all()
    raw_b = before["tailings_exposure_raw"].to_numpy()
    raw_a = after["tailings_exposure_raw"].to_numpy()
    covered = ~np.isnan(raw_b)
    assert (raw_a[covered] >= raw_b[covered] * (1 - 1e-12)).all()
    pd.testing.assert_series_equal(
        after["incident_intensity_normalised"], before["incident_intensity_normalised"]
    )


def test_a_dam_added_upstream_of_a_town_raises_its_score(scene: Scene) -> None:
    """Not vacuous: a dam of the register, 20 m high and holding 2 Mm³, placed 2 km from the
    least exposed town of the Quadrilátero, raises that town's score."""
    b = scene.before
    brazil = b["country"].eq("BRA").to_numpy()
    m = int(np.flatnonzero(brazil)[np.argmin(b["score"].to_numpy()[brazil])])
    dam = scene.candidates.iloc[[0]].copy()
    place = scene.layers[Kind.communities].geometry.iloc[m]
    lon, lat, _ = GEOD.fwd(place.x, place.y, 45.0, 2000.0)
    dam.geometry = [shapely.Point(lon, lat)]
    dam["status"], dam["construction_method"] = "active", "upstream"
    dam["height_m"], dam["volume_m3"] = 20.0, 2e6  # Dmax 9.3 km (Rico et al. 2008)
    dams = pd.concat([scene.layers[Kind.tailings_dams], dam], ignore_index=True)
    after = community_risk(scene, tailings_dams=dams)
    # 2 km inside a 9.3 km run-out: raw 1 − 2/9.3, normalised 0.54.
    assert after["score"].iloc[m] >= b["score"].iloc[m] + 10.0


# --- the same inputs, the same bytes ------------------------------------------------------------


def _write_layers(out, folder: Path) -> dict[str, bytes]:
    """Every risk layer written as a build writes it (``build.write_layer``; the surface
    through ``write_cog``), read back as bytes."""
    for name, gdf in out.layers.items():
        write_layer(gdf, folder / f"{name}.parquet")
    if out.surface is not None:
        write_cog(out.surface, folder / "risk_surface.tif")
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), share=st.floats(0.3, 1.0))
def test_same_inputs_give_byte_identical_layers(scene: Scene, seed, share) -> None:
    """A random part of the scene (rows drawn, order kept), through ``run_risk`` twice."""
    rng = np.random.default_rng(seed)
    layers = {
        kind: gdf.iloc[np.sort(rng.choice(len(gdf), max(1, int(share * len(gdf))), replace=False))]
        for kind, gdf in scene.layers.items()
    }
    originals = copy.deepcopy(layers)
    quick = scene.params.surface.model_copy(update={"cell_m": QUICK_SURFACE_M})
    params = scene.params.model_copy(update={"surface": quick})
    written = []
    for _ in range(2):
        out = run_risk(copy.deepcopy(layers), scene.catalog, params)
        with tempfile.TemporaryDirectory() as tmp:
            written.append(_write_layers(out, Path(tmp)))
    first, second = written
    assert {
        "community_risk.parquet",
        "tailings_consequence.parquet",
        "concession_risk.parquet",
        "risk_hex.parquet",
        "coverage.parquet",
        "risk_surface.tif",
    } <= set(first)
    assert first.keys() == second.keys()
    for name in first:
        assert first[name] == second[name], name
    # run_risk left its inputs as they were.
    for kind, gdf in layers.items():
        pd.testing.assert_frame_equal(gdf, originals[kind])
