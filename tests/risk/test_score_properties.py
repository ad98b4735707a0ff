"""Properties of the published score (hypothesis), on real evidence from the bundled build.

The scene: the 51 places of the Central African Republic with every USGS site and UCDP event
(concessions and incidents), and the 58 places of the Quadrilátero Ferrífero (Minas Gerais)
with half of the ANM tailings dams there and the Natural Earth rivers around it (tailings,
river pathway included). Hypothesis moves one real incident towards one place, or adds one real
dam from the register (moved, its height, volume, status and method drawn), and the whole
``community_risk`` score is compared.

Why the properties hold: every factor is a sum (or, for concessions, the nearest distance) of
non-negative terms that fall with distance, normalised by a fixed saturation
(1 − exp(−raw/κ), or exp(−d/λ)) — never by the data — and which factors a community has depends
on coverage only, not on the evidence. So more or closer evidence can only raise a factor, and
the weighted mean over a fixed set of factors with it. They hold for the exact incident sum,
which the bundled data use; the grid evaluation (above ``exact_pair_limit`` pairs) is exact
only to its documented error, so moving an incident by less than a grid cell may lower a value
within it (``test_grid_method_keeps_moving_closer_within_its_error``).
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

from geo_service.build import write_layer
from geo_service.catalog import SourceCatalog
from geo_service.risk import FACTORS
from geo_service.risk.base import RiskInputs
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


@dataclass
class Scene:
    layers: dict[Kind, gpd.GeoDataFrame]
    rivers: gpd.GeoDataFrame
    candidates: gpd.GeoDataFrame
    catalog: SourceCatalog
    params: RiskParams
    coverage: dict
    before: gpd.GeoDataFrame

    def inputs(self, **replace: gpd.GeoDataFrame) -> RiskInputs:
        layers = {**self.layers, **{Kind(k): v for k, v in replace.items()}}
        return RiskInputs(
            communities=layers[Kind.communities],
            concessions=layers[Kind.concessions],
            tailings_dams=layers[Kind.tailings_dams],
            incidents=layers[Kind.incidents],
            rivers=self.rivers,
            coverage=self.coverage,
        )


def community_risk(scene: Scene, **replace: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The ``community_risk`` layer, as ``run_risk`` makes it: every factor, then ``combine``."""
    inputs = scene.inputs(**replace)
    results = [f.compute(inputs, scene.params.factors[name]) for name, f in FACTORS.items()]
    assert results[2].metadata["method"] == "exact"
    return combine(inputs.communities, results, scene.params)


@pytest.fixture(scope="module")
def scene(built, build_dir: Path, catalog: SourceCatalog, tmp_path_factory) -> Scene:
    every = {kind: load_layer(build_dir, kind.value) for kind in Kind}
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
    _same_availability(before, after)
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
