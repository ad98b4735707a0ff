"""Tiles on the bundled build: PNG against the COG, MVT against the layer, TileJSON, errors."""

from __future__ import annotations

import io
import math

import mapbox_vector_tile
import morecantile
import numpy as np
import pytest
import rasterio
from fastapi.testclient import TestClient
from PIL import Image

from geo_service.api.app import create_app
from geo_service.render import png
from geo_service.settings import ApiSettings
from geo_service.store.files import load_layer

TMS = morecantile.tms.get("WebMercatorQuad")
BRIA = (21.98, 6.54)


@pytest.fixture(scope="module")
def client(built, build_dir) -> TestClient:
    return TestClient(create_app(ApiSettings(build_dir=build_dir)))


def _png(content: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(content))
    assert image.size == (256, 256)
    return np.asarray(image.convert("RGBA"))


def test_raster_tilejson(client, built) -> None:
    r = client.get("/tiles/risk_surface/tilejson.json")
    doc = r.json()
    assert doc["tilejson"] == "3.0.0" and doc["scheme"] == "xyz"
    assert doc["tiles"][0].startswith("http") and doc["tiles"][0].endswith("{z}/{x}/{y}.png")
    assert doc["maxzoom"] == 10  # 250 m cells ≈ 153 m pixels at zoom 10
    # The surface spans every covered country, Acre (Brazil) to Tanzania: 0 where nothing reaches.
    assert -76 < doc["bounds"][0] < -73 and 40 < doc["bounds"][2] < 43
    assert "UCDP" in doc["attribution"]
    assert client.get(doc["legend"]).json()["stops"][0] == {"value": 0.0, "color": "#00224d"}


def test_png_tile_shows_the_cog_in_cividis(client, built, build_dir) -> None:
    t = TMS.tile(*BRIA, 10)
    r = client.get(f"/tiles/risk_surface/{t.z}/{t.x}/{t.y}.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    rgba = _png(r.content)
    assert (rgba[..., 3] > 0).all()  # inside the surface: every pixel drawn
    cog = build_dir / built.build_id / "risk_surface.tif"
    bounds = TMS.xy_bounds(t)
    cm = png.colormap()
    with rasterio.open(cog) as src:
        for row, col in [(16, 16), (128, 128), (200, 50)]:
            x = bounds.left + (col + 0.5) * (bounds.right - bounds.left) / 256
            y = bounds.top - (row + 0.5) * (bounds.top - bounds.bottom) / 256
            value = next(src.sample([(x, y)]))[0]
            # Tile pixels (153 m) are resampled bilinearly from 250 m cells: a few steps apart.
            near = [np.array(cm[i][:3]) for i in range(256)]
            expected = int(round(float(value) * 255))
            distance = np.abs(near[expected] - rgba[row, col, :3]).max()
            assert distance <= 12, (row, col, value, rgba[row, col])
            # Low scores lighter (see png.alpha), no data transparent.
            assert abs(rgba[row, col, 3] - 255 * png.alpha(float(value))) <= 25


def test_png_is_transparent_where_the_surface_has_nothing(client) -> None:
    ocean = TMS.tile(-30.0, 0.0, 6)  # mid-Atlantic
    rgba = _png(client.get(f"/tiles/risk_surface/6/{ocean.x}/{ocean.y}.png").content)
    assert (rgba[..., 3] == 0).all()
    world = _png(client.get("/tiles/risk_surface/2/2/2.png").content)  # Africa, partly covered
    assert 0 < (world[..., 3] > 0).mean() < 1


@pytest.mark.parametrize(
    "path",
    [
        "/tiles/risk_surface/23/0/0.png",
        "/tiles/risk_surface/2/4/0.png",
        "/tiles/risk_surface/2/0/-1.png",
        "/tiles/nope/1/0/0.png",
        "/tiles/communities/1/0/0.png",
        "/tiles/risk_surface/1/0/0.mvt",
        "/tiles/communities/2/9/9.mvt",
        "/tiles/nope/tilejson.json",
    ],
)
def test_tiles_that_do_not_exist_are_404(client, path) -> None:
    r = client.get(path)
    assert r.status_code == 404 and r.json()["description"]


def test_tile_etag_and_long_cache(client) -> None:
    r = client.get("/tiles/risk_surface/3/4/3.png")
    assert "max-age=86400" in r.headers["cache-control"]
    again = client.get(
        "/tiles/risk_surface/3/4/3.png", headers={"If-None-Match": r.headers["etag"]}
    )
    assert again.status_code == 304


def test_vector_tile_has_the_layer_rows_and_properties(client, build_dir) -> None:
    doc = client.get("/tiles/community_risk/tilejson.json").json()
    assert doc["tiles"][0].endswith(".mvt") and doc["vector_layers"][0]["id"] == "community_risk"
    assert doc["vector_layers"][0]["fields"]["risk_class"] == "String"
    risk = load_layer(build_dir, "community_risk")
    t = TMS.tile(*BRIA, 9)  # the layer's detail zoom: every point by itself
    b = TMS.bounds(t)
    x, y = risk.geometry.x, risk.geometry.y
    inside = risk[(x >= b.left) & (x < b.right) & (y > b.bottom) & (y <= b.top)]
    r = client.get(f"/tiles/community_risk/{t.z}/{t.x}/{t.y}.mvt")
    assert r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    layer = mapbox_vector_tile.decode(r.content)["community_risk"]
    assert layer["extent"] == 4096
    ids = {f["properties"]["community_id"] for f in layer["features"]}
    assert set(inside["community_id"]) <= ids  # the buffer may add a few from next door
    assert not any("cluster" in f["properties"] for f in layer["features"])
    one = next(f for f in layer["features"] if f["properties"]["name"] == "Bria")
    want = inside.set_index("name").loc["Bria"]
    assert one["properties"]["score"] == pytest.approx(want["score"])
    assert one["properties"]["risk_class"] == want["risk_class"]
    px, py = one["geometry"]["coordinates"]
    mx, my = TMS.xy(*BRIA)
    xb = TMS.xy_bounds(t)
    assert math.isclose(px, (mx - xb.left) / (xb.right - xb.left) * 4096, abs_tol=60)
    assert math.isclose(py, (my - xb.bottom) / (xb.top - xb.bottom) * 4096, abs_tol=60)


def test_vector_tile_polygons_are_clipped_to_the_buffer(client) -> None:
    t = TMS.tile(*BRIA, 9)
    layer = mapbox_vector_tile.decode(client.get(f"/tiles/coverage/9/{t.x}/{t.y}.mvt").content)
    coords = []
    for f in layer["coverage"]["features"]:
        g = f["geometry"]
        rings = g["coordinates"] if g["type"] == "Polygon" else sum(g["coordinates"], [])
        coords += [c for ring in rings for c in ring]
    xy = np.array(coords)
    assert len(xy) and xy.min() >= -64 - 1 and xy.max() <= 4096 + 64 + 1
    empty = TMS.tile(-30.0, 0.0, 6)
    assert client.get(f"/tiles/incidents/6/{empty.x}/{empty.y}.mvt").content == b""


def test_low_zoom_vector_tiles_carry_no_empty_geometries(client) -> None:
    """Cells far smaller than a pixel collapse when snapped to the tile grid: left out."""
    for layer, (x, y) in (("risk_hex", (1, 0)), ("concession_risk", (1, 1)), ("risk_hex", (1, 1))):
        decoded = mapbox_vector_tile.decode(client.get(f"/tiles/{layer}/1/{x}/{y}.mvt").content)
        features = decoded.get(layer, {"features": []})["features"]
        assert features, (layer, x, y)
        assert all(f["geometry"]["coordinates"] for f in features), (layer, x, y)


def test_tilejson_lists_every_property_a_tile_carries(client) -> None:
    fields = client.get("/tiles/community_risk/tilejson.json").json()["vector_layers"][0]["fields"]
    # What the maps' styles draw with, and a group's count; the rest only when asked for.
    assert fields["score"] == "Number" and fields["risk_class"] == "String"
    assert fields["point_count"] == "Number" and fields["cluster"] == "Boolean"
    assert "incident_intensity_evidence" not in fields
    t = TMS.tile(-10.97, 8.64, 10)  # Koidu
    for params in ({}, {"properties": "incident_intensity_evidence,population"}):
        r = client.get(f"/tiles/community_risk/{t.z}/{t.x}/{t.y}.mvt", params=params)
        features = mapbox_vector_tile.decode(r.content)["community_risk"]["features"]
        keys = set().union(*(f["properties"] for f in features))
        assert keys <= set(fields) | set(params.get("properties", "").split(","))
        assert {"community_id", "name", "risk_class", "score", "confidence"} <= keys
    evidence = [f["properties"].get("incident_intensity_evidence") for f in features]
    assert any(isinstance(e, str) and e.startswith("[") for e in evidence)  # a list as JSON
    bad = client.get(f"/tiles/community_risk/{t.z}/{t.x}/{t.y}.mvt?properties=scor")
    assert bad.status_code == 400 and "scor" in bad.json()["description"]


def test_points_are_grouped_below_the_detail_zoom_and_tiles_stay_light(client, built) -> None:
    """Every community is in the world tile, in groups that count them; each group shows its
    highest-scoring community; from the detail zoom on, points come one by one."""
    risk = load_layer(built.path.parent, "community_risk")
    world = mapbox_vector_tile.decode(client.get("/tiles/community_risk/0/0/0.mvt").content)
    features = world["community_risk"]["features"]
    groups = [f for f in features if f["properties"].get("cluster")]
    assert groups and len(features) < 50
    assert sum(f["properties"].get("point_count", 1) for f in features) == len(risk)
    assert max(f["properties"].get("score", -1) for f in features) == risk["score"].max()
    sizes = {}
    for z in range(0, 10):
        t = TMS.tile(-10.97, 8.64, z)  # Koidu, in the densest part of the layer
        r = client.get(f"/tiles/community_risk/{t.z}/{t.x}/{t.y}.mvt")
        assert r.status_code == 200
        sizes[z] = len(r.content)
        decoded = mapbox_vector_tile.decode(r.content)["community_risk"]["features"]
        grouped = any(f["properties"].get("cluster") for f in decoded)
        assert grouped == (z < 9), z
    assert max(sizes.values()) < 500_000, sizes
