"""River network: flow direction and downstream paths on the bundled Natural Earth rivers."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from pyproj import Geod

from geo_service.catalog import SourceCatalog
from geo_service.risk.rivers import RiverNetwork

GEOD = Geod(ellps="WGS84")

# Towns on the rivers (lon, lat), from GeoNames / OpenStreetMap.
IMPERATRIZ = (-47.49, -5.52)  # Tocantins, Maranhão
MIRACEMA = (-48.39, -9.56)  # Miracema do Tocantins, 440 km upstream of Imperatriz
CONCEICAO_DO_ARAGUAIA = (-49.26, -8.26)  # Araguaia, Pará
KISANGANI = (25.19, 0.52)  # Congo (Natural Earth's "Lualaba" reaches here)
KINSHASA = (15.31, -4.33)
MATADI = (13.45, -5.82)  # Congo, 150 km from the Atlantic
TSHIKAPA = (20.80, -6.42)  # Kasai
OUESSO = (16.05, 1.61)  # Sangha
GOVERNADOR_VALADARES = (-41.95, -18.85)  # Rio Doce
IPATINGA = (-42.54, -19.47)  # Rio Doce, upstream of Governador Valadares
LINHARES = (-40.07, -19.39)  # Rio Doce, downstream
SABARA = (-43.81, -19.89)  # Rio das Velhas
RIO_ACIMA = (-43.79, -20.09)  # Rio das Velhas, upstream of Sabará


@pytest.fixture(scope="module")
def network(catalog: SourceCatalog) -> RiverNetwork:
    frames = [pyogrio.read_dataframe(p) for p in catalog.reference.rivers]
    rivers = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs="EPSG:4326")
    return RiverNetwork.from_frame(rivers)


def _path(network: RiverNetwork, place: tuple[float, float], reach_km: float, snap_km=10.0):
    path = network.downstream(shapely.Point(place), reach_km * 1000.0, snap_km * 1000.0)
    assert path is not None, f"{place} is not within {snap_km} km of a river"
    return path


def _ends(path) -> tuple[np.ndarray, np.ndarray]:
    xy = shapely.get_coordinates(path.geometry)
    return xy[0], xy[-1]


def test_tocantins_flows_north_although_digitised_south(network: RiverNetwork) -> None:
    # Natural Earth draws this stretch southwards, upstream; the network must not follow it.
    edge, _, _ = network.snap(np.array([shapely.Point(IMPERATRIZ)]), 5000.0)
    assert network.edge_name[edge[0]] == "Tocantins" and network.edge_reversed[edge[0]]
    path = _path(network, IMPERATRIZ, 2000.0)
    start, end = _ends(path)
    assert end[1] > -3.0 > start[1]  # ends near Cametá, towards the Pará estuary (~-1.5)
    assert path.names[0] == "Tocantins" and path.names[-1] == "Tocantins"
    # Upstream of Imperatriz the path from Miracema passes Imperatriz.
    upstream = _path(network, MIRACEMA, 2000.0)
    at = upstream.along(np.array([shapely.Point(IMPERATRIZ)]), 5000.0)[0]
    assert 400_000 < at < 600_000
    assert np.isnan(path.along(np.array([shapely.Point(MIRACEMA)]), 5000.0)[0])  # upstream


def test_araguaia_continues_into_the_tocantins(network: RiverNetwork) -> None:
    path = _path(network, CONCEICAO_DO_ARAGUAIA, 2000.0)
    assert path.names[0] == "Araguaia" and "Tocantins" in path.names
    assert _ends(path)[1][1] > -3.0
    assert np.isfinite(path.along(np.array([shapely.Point(-49.12, -5.37)]), 5000.0)[0])  # Marabá


def test_congo_flows_west_to_the_atlantic(network: RiverNetwork) -> None:
    path = _path(network, KISANGANI, 3000.0)
    start, end = _ends(path)
    assert end[0] < 13.5 and -6.2 < end[1] < -5.5  # the mouth, below Matadi
    assert path.names[-1] == "Congo"
    pts = np.array([shapely.Point(KINSHASA), shapely.Point(MATADI)])
    kinshasa, matadi = path.along(pts, 6000.0)
    assert 1500_000 < kinshasa < matadi < path.length_m
    # From Kinshasa, Kisangani is upstream.
    assert np.isnan(
        _path(network, KINSHASA, 3000.0).along(np.array([shapely.Point(KISANGANI)]), 6000.0)[0]
    )


@pytest.mark.parametrize(
    ("place", "river"), [(TSHIKAPA, "Kasai"), (OUESSO, "Sangha")], ids=["kasai", "sangha"]
)
def test_tributaries_continue_down_the_congo(network, place, river) -> None:
    path = _path(network, place, 3000.0)
    assert path.names[0] == river and path.names[-1] == "Congo"
    assert np.isfinite(path.along(np.array([shapely.Point(MATADI)]), 6000.0)[0])
    assert np.isnan(path.along(np.array([shapely.Point(KISANGANI)]), 6000.0)[0])


def test_rio_doce_flows_east_and_distances_are_along_the_river(network: RiverNetwork) -> None:
    path = _path(network, GOVERNADOR_VALADARES, 1000.0)
    start, end = _ends(path)
    assert end[0] > -40.0 > start[0]  # the mouth at Regência
    pts = np.array([shapely.Point(LINHARES), shapely.Point(IPATINGA)])
    linhares, ipatinga = path.along(pts, 5000.0)
    assert np.isnan(ipatinga)  # upstream
    # Along-river distance exceeds the straight line, and the measure grows downstream.
    _, _, straight = GEOD.inv(*GOVERNADOR_VALADARES, *LINHARES)
    assert straight < linhares < 1.6 * straight
    assert np.all(np.diff(path.measure_m) >= 0)
    # The measure is the geodesic length of the path geometry (plus the snap leg).
    length = GEOD.geometry_length(path.geometry)
    assert path.length_m - path.snap_m == pytest.approx(length, rel=1e-6)
    # A point on the path 100 km down is found 100 km down.
    x = np.interp(100_000.0, path.measure_m, shapely.get_coordinates(path.geometry)[:, 0])
    y = np.interp(100_000.0, path.measure_m, shapely.get_coordinates(path.geometry)[:, 1])
    assert path.along(np.array([shapely.Point(x, y)]), 1000.0)[0] == pytest.approx(
        100_000.0, rel=1e-3
    )


def test_rio_das_velhas_below_sabara_not_above(network: RiverNetwork) -> None:
    path = _path(network, SABARA, 300.0)
    assert path.names[0] == "Velhas"
    assert np.isnan(path.along(np.array([shapely.Point(RIO_ACIMA)]), 5000.0)[0])
    assert "São  Francisco" in _path(network, SABARA, 1500.0).names


def test_every_node_drains_to_an_outlet(network: RiverNetwork) -> None:
    node = np.arange(len(network.node_xy))
    used = np.zeros(len(node), bool)
    used[network.edge_up] = used[network.edge_down] = True
    node = node[used]
    for _ in range(len(network.edge_up) + 1):
        nxt = network.node_next[node]
        if np.all(nxt < 0):
            break
        node = np.where(nxt < 0, node, network.edge_down[np.maximum(nxt, 0)])
    else:
        pytest.fail("a cycle in the downstream pointers")
    # Downstream pointers agree with the edge orientation.
    has = network.node_next >= 0
    assert np.all(network.edge_up[network.node_next[has]] == np.flatnonzero(has))
    assert network.summary["components"] > 50 and network.summary["joins_across_gaps"] > 0


def _frame(lines, names) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"name": names}, geometry=lines, crs="EPSG:4326")


def test_confluence_angle_overrules_a_reversed_main_stem() -> None:
    # Main stem digitised westwards, a tributary joining from the north-west: the water turns
    # east, so the main stem flows east.
    main = shapely.LineString([(11.0, -2.0), (10.5, -2.0), (10.0, -2.0)])
    trib = shapely.LineString([(10.1, -1.6), (10.5, -2.0)])
    net = RiverNetwork.from_frame(_frame([main, trib], ["Main", "Tributary"]))
    path = net.downstream(shapely.Point(10.2, -2.0), 500_000.0, 1000.0)
    assert path is not None
    assert _ends(path)[1][0] == pytest.approx(11.0)
    # Alone, a line flows the way it is drawn.
    alone = RiverNetwork.from_frame(_frame([main], ["Main"]))
    assert _ends(alone.downstream(shapely.Point(10.7, -2.0), 500_000.0, 1000.0))[1][0] == (
        pytest.approx(10.0)
    )


def test_small_gaps_are_joined_and_large_ones_not() -> None:
    main = shapely.LineString([(20.0, -5.0), (21.0, -5.0)])
    near = shapely.LineString([(20.3, -4.5), (20.5, -4.98)])  # stops ~2.2 km short
    far = shapely.LineString([(20.7, -4.5), (20.7, -4.8)])  # 22 km short
    net = RiverNetwork.from_frame(_frame([main, near, far], ["Main", "Near", "Far"]))
    pts = np.array([shapely.Point(20.9, -5.0)])
    assert np.isfinite(net.downstream(shapely.Point(20.35, -4.62), 500e3, 1000.0).along(pts, 500.0))
    assert np.isnan(net.downstream(shapely.Point(20.7, -4.6), 500e3, 1000.0).along(pts, 500.0))
    assert net.downstream(shapely.Point(25.0, 0.0), 500e3, 1000.0) is None


def test_no_usable_lines_make_an_empty_network() -> None:
    ring = shapely.LineString([(0.0, 0.0), (0.01, 0.0), (0.0, 0.01), (0.0, 0.0)])
    for frame in (_frame([], []), _frame([ring], ["Ring"])):
        net = RiverNetwork.from_frame(frame)
        assert len(net.edge_up) == 0
        assert net.downstream(shapely.Point(0.0, 0.0), 1e5, 1e4) is None
        edge, _, _ = net.snap(np.array([shapely.Point(0.0, 0.0)]), 1e4)
        reaches = net.reaches(edge, np.array([np.nan]), 1e5)
        assert len(net.along(reaches, np.array([shapely.Point(0.0, 0.0)]), 1e4)) == 0
