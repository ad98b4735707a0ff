"""Concession pressure, hand-computed at real places, and on the bundled build."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import Geod

from geo_service.risk.base import RiskInputs
from geo_service.risk.concession_pressure import ConcessionPressure, ConcessionPressureParams
from geo_service.risk.metric import buffer_metres, nearest, pairs_within
from geo_service.schemas import Kind
from geo_service.store.files import load_kind, load_layer

GEOD = Geod(ellps="WGS84")
CATOCA = (20.301661, -9.405401)  # USGS AGO035, Catoca kimberlite mine, Lunda Sul
SAURIMO = (20.39155, -9.66078)  # GeoNames 145531


def _communities(points, countries) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "community_id": [f"c{i}" for i in range(len(points))],
            "country": countries,
            "population": [1000] * len(points),
        },
        geometry=[shapely.Point(p) for p in points],
        crs="EPSG:4326",
    )


def _sites(geoms, radius, footprint) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "concession_id": [f"k{i}" for i in range(len(geoms))],
            "footprint_radius_m": radius,
            "footprint": footprint,
        },
        geometry=geoms,
        crs="EPSG:4326",
    )


def test_site_point_distance_is_to_its_footprint_edge() -> None:
    inputs = RiskInputs(
        communities=_communities([SAURIMO], ["AGO"]),
        concessions=_sites([shapely.Point(CATOCA)], [2000.0], ["site"]),
        coverage={Kind.concessions: {"AGO"}},
    )
    params = ConcessionPressureParams()
    result = ConcessionPressure().compute(inputs, params)
    _, _, metres = GEOD.inv(*SAURIMO, *CATOCA)
    edge = metres - 2000.0
    assert result.columns["nearest_km"][0] == pytest.approx(edge / 1000, rel=2e-3)
    assert result.raw[0] == pytest.approx(math.exp(-edge / 10_000), rel=2e-3)
    assert result.normalised[0] == result.raw[0]
    assert result.columns["nearest_is_site"][0]
    assert result.columns["within_20km"][0] == 0 and result.columns["within_50km"][0] == 1
    assert result.evidence.to_pylist() == [["k0"]]


def test_inside_a_polygon_is_full_pressure_and_rings_count() -> None:
    square = shapely.box(20.0, -9.5, 20.2, -9.3)
    near = (20.24, -9.4)  # 4.4 km east of the square's edge
    _, _, to_edge = GEOD.inv(*near, 20.2, -9.4)
    inputs = RiskInputs(
        communities=_communities(
            [(20.1, -9.4), near, (23.0, -9.4), (20.1, -9.4), (-44.0, -20.0)],
            ["AGO", "AGO", "AGO", "BRA", "BRA"],
        ),
        concessions=_sites(
            [square, shapely.Point(20.1, -9.45)], [np.nan, 1000.0], ["polygon", "site"]
        ),
        coverage={Kind.concessions: {"AGO"}},
    )
    result = ConcessionPressure().compute(inputs, ConcessionPressureParams(decay_km=5.0))
    assert result.raw[0] == 1.0 and result.columns["nearest_km"][0] == 0.0
    assert result.raw[1] == pytest.approx(math.exp(-to_edge / 5000), rel=2e-3)
    assert result.raw[2] == 0.0  # more than 50 km from anything: covered, no pressure
    # A place no concession source covers: no data, not zero — unless a concession reaches it
    # (the same spot recorded under another country is inside the square all the same).
    assert math.isnan(result.raw[4]) and math.isnan(result.columns["within_5km"][4])
    assert result.raw[3] == 1.0 and result.columns["within_5km"][3] == 2
    assert result.columns["within_5km"][0] == 2
    assert result.columns["within_5km"][1] == 1
    assert list(result.precision) == ["precise", "precise", None, "precise", None]


def test_moving_closer_never_lowers_pressure() -> None:
    params = ConcessionPressureParams()
    values = []
    for km in (40, 20, 10, 5, 1):
        lon, lat, _ = GEOD.fwd(*CATOCA, 90, km * 1000 + 2000)
        inputs = RiskInputs(
            communities=_communities([(lon, lat)], ["AGO"]),
            concessions=_sites([shapely.Point(CATOCA)], [2000.0], ["site"]),
            coverage={Kind.concessions: {"AGO"}},
        )
        values.append(ConcessionPressure().compute(inputs, params).raw[0])
    assert values == sorted(values)
    assert values[-1] == pytest.approx(math.exp(-0.1), rel=5e-3)


def test_metric_helpers_measure_metres_across_zones() -> None:
    # Two points 1 km apart either side of the 18 E zone boundary, and far in the south.
    a = shapely.Point(17.995, -9.0)
    lon, lat, _ = GEOD.fwd(17.995, -9.0, 90, 1000)
    b = shapely.Point(lon, lat)
    pairs = pairs_within(np.array([a, b]), np.array([b, a]), 1500.0)
    # UTM's scale error at a zone edge is at most about 0.1 %.
    assert sorted(pairs.metres.tolist()) == pytest.approx([0.0, 0.0, 1000.0, 1000.0], rel=1.5e-3)
    idx, dist = nearest(np.array([a]), np.array([shapely.Point(30, 30), b]), 5000)
    assert idx[0] == 1 and dist[0] == pytest.approx(1000, rel=1e-3)
    circle = buffer_metres(np.array([a]), 2000.0)[0]
    edge = shapely.get_coordinates(circle.exterior)[0]
    assert GEOD.inv(17.995, -9.0, *edge)[2] == pytest.approx(2000, rel=5e-3)


def test_on_the_bundled_build(built, build_dir, catalog) -> None:
    communities = load_layer(build_dir, "communities")
    concessions = load_kind(build_dir, "concessions")
    coverage = {
        Kind.concessions: set().union(
            *(e.coverage.countries for e in catalog.by_kind(Kind.concessions))
        )
    }
    result = ConcessionPressure().compute(
        RiskInputs(communities=communities, concessions=concessions, coverage=coverage),
        ConcessionPressureParams(),
    )
    by_name = dict(zip(communities["name"], result.raw, strict=False))
    # Outside the countries given here, a value only where a footprint is within max_km:
    # Cuiabá has a scar 14 km away; Belo Horizonte has no mapped mine in reach.
    assert 0 < by_name["Cuiabá"] < 1
    assert math.isnan(by_name["Belo Horizonte"])
    # Koidu's centre is 1.5 km from the Koidu kimberlite pipes (SLE007), inside their footprint.
    koidu = communities.index[communities["source_id"] == "2407656"][0]
    assert result.raw[koidu] == 1.0 and result.columns["nearest_km"][koidu] == 0.0
    assert result.evidence[koidu].as_py()[0] == "usgs_africa_diamond_facilities:SLE007"
    covered = communities["country"].isin(sorted(coverage[Kind.concessions])).to_numpy()
    reached = result.columns["nearest_km"] <= 50.0
    assert np.isnan(result.raw[~covered & ~reached]).all()
    assert not np.isnan(result.raw[covered | reached]).any()
    assert ((result.raw[covered] >= 0) & (result.raw[covered] <= 1)).all()
