"""Raster layers' values on a live server, both stores: the COG read by GDAL through
``/vsicurl/`` (HTTP range requests) against the file the build wrote, byte ranges exactly,
and the value at a point against the cell rasterio reads from the local file."""

from __future__ import annotations

import math

import httpx
import numpy as np
import pytest
import rasterio
from rasterio.warp import transform
from rasterio.windows import Window

COG = "image/tiff; application=geotiff; profile=cloud-optimized"
#: Koidu (Kono, Sierra Leone), Bria (Central African Republic), Paracatu (Minas Gerais).
PLACES = [(-10.97, 8.64), (21.98, 6.54), (-46.87, -17.22)]
#: The Atlantic between Brazil and Africa: inside the surface's box, no factor covers it.
OCEAN = (-20.0, 0.0)


def _enclosure(doc: dict, layer: str) -> dict:
    found = [
        link
        for link in doc["links"]
        if link["rel"] == "enclosure" and f"/rasters/{layer}.tif" in link["href"]
    ]
    assert len(found) == 1, doc["links"]
    return found[0]


def _local_cell(path, lon: float, lat: float) -> tuple[float, int, int]:
    """The value rasterio reads from the local file at the cell under a point."""
    with rasterio.open(path) as src:
        xs, ys = transform("EPSG:4326", src.crs, [lon], [lat])
        row, col = src.index(xs[0], ys[0])
        return float(src.read(1, window=Window(col, row, 1, 1))[0, 0]), col, row


def test_the_landing_page_and_tilejson_link_the_file_and_the_value_query(url, built) -> None:
    landing = httpx.get(f"{url}/").json()
    cog = _enclosure(landing, "risk_surface")
    assert cog["type"] == COG
    assert cog["length"] == (built.path / "risk_surface.tif").stat().st_size
    assert cog["href"].endswith(f"?build={built.build_id}")
    tilejson = httpx.get(f"{url}/tiles/risk_surface/tilejson.json").json()
    assert _enclosure(tilejson, "risk_surface")["href"] == cog["href"]
    value = next(link for link in tilejson["links"] if link.get("templated"))
    lon, lat = PLACES[0]
    asked = httpx.get(value["href"].format(lon=lon, lat=lat))
    assert asked.status_code == 200 and asked.json()["layer"] == "risk_surface"


def test_gdal_reads_the_cog_through_vsicurl_as_the_local_file(url, built) -> None:
    """GDAL reads only the blocks it needs: it refuses a server that answers a range with the
    whole file ("Range downloading not supported"), so reading at all proves ranges work."""
    href = _enclosure(httpx.get(f"{url}/").json(), "risk_surface")["href"]
    local = built.path / "risk_surface.tif"
    with (
        rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"),
        rasterio.open(f"/vsicurl/{href}") as remote,
        rasterio.open(local) as mine,
    ):
        theirs_profile, ours_profile = dict(remote.profile), dict(mine.profile)
        assert math.isnan(theirs_profile.pop("nodata")) and math.isnan(ours_profile.pop("nodata"))
        assert theirs_profile == ours_profile
        assert remote.overviews(1) == mine.overviews(1)
        # A window around Koidu, scored cells and cells without a value (NaN) both.
        (x,), (y,) = transform("EPSG:4326", mine.crs, [PLACES[0][0]], [PLACES[0][1]])
        row, col = mine.index(x, y)
        window = Window(col - 200, row - 150, 400, 300)
        theirs, ours = remote.read(1, window=window), mine.read(1, window=window)
        assert np.isfinite(ours).any()
        np.testing.assert_array_equal(theirs, ours)
        # The whole surface from its smallest overview.
        shape = (mine.height // 128, mine.width // 128)
        np.testing.assert_array_equal(
            remote.read(1, out_shape=shape), mine.read(1, out_shape=shape)
        )


def test_a_range_is_exactly_its_bytes_and_never_gzipped(url, built) -> None:
    path = built.path / "risk_surface.tif"
    data_size = path.stat().st_size
    href = f"{url}/rasters/risk_surface.tif"
    with path.open("rb") as f:
        f.seek(1_000_000)
        expected = f.read(65_536)
        f.seek(data_size - 100)
        tail = f.read()
    gzip = {"Accept-Encoding": "gzip"}
    r = httpx.get(href, headers={"Range": "bytes=1000000-1065535", **gzip})
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes 1000000-1065535/{data_size}"
    assert "content-encoding" not in r.headers and r.content == expected
    assert r.headers["content-type"] == COG and r.headers["etag"].startswith('"')
    r = httpx.get(href, headers={"Range": "bytes=-100"})
    assert r.status_code == 206 and r.content == tail
    head = httpx.head(href)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["accept-ranges"] == "bytes"
    assert int(head.headers["content-length"]) == data_size
    assert head.headers["x-build-id"] == built.build_id
    again = httpx.get(href, headers={"If-None-Match": head.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    past = httpx.get(href, headers={"Range": f"bytes={data_size}-"})
    assert past.status_code == 416
    assert past.headers["content-range"] == f"bytes */{data_size}"


def test_the_whole_file_is_the_build_s_bytes(url, built) -> None:
    """A whole download (the small population grid) is the file as the build wrote it."""
    r = httpx.get(f"{url}/rasters/worldpop_sle_2019.tif", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and "content-encoding" not in r.headers
    assert r.content == (built.path / "worldpop_sle_2019.tif").read_bytes()
    assert r.headers["content-disposition"] == 'attachment; filename="worldpop_sle_2019.tif"'


def test_a_file_named_by_another_build_is_not_served(url, built) -> None:
    ok = httpx.head(f"{url}/rasters/risk_surface.tif?build={built.build_id}")
    assert ok.status_code == 200 and "immutable" in ok.headers["cache-control"]
    gone = httpx.get(f"{url}/rasters/risk_surface.tif?build=20200101T000000Z-00000000")
    assert gone.status_code == 404 and "'build'" in gone.json()["description"]
    assert built.build_id in gone.json()["description"]
    assert httpx.get(f"{url}/rasters/communities.tif").status_code == 404
    wrong = httpx.get(f"{url}/rasters/risk_surface.tif?bbox=1,2,3,4")
    assert wrong.status_code == 400 and "bbox" in wrong.json()["description"]


@pytest.mark.parametrize(("lon", "lat"), PLACES)
def test_the_value_at_a_point_is_the_file_s_cell(url, built, lon: float, lat: float) -> None:
    value, col, row = _local_cell(built.path / "risk_surface.tif", lon, lat)
    assert math.isfinite(value)
    r = httpx.get(f"{url}/rasters/risk_surface/value", params={"lon": lon, "lat": lat})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    doc = r.json()
    assert np.float32(doc["value"]) == np.float32(value)
    assert doc["cell"] == {"col": col, "row": row, "size_m": 250.0, "crs": "EPSG:3857"}
    assert (doc["lon"], doc["lat"], doc["band"]) == (lon, lat, "score")
    assert doc["build_id"] == built.build_id


def test_the_population_grid_answers_people_per_cell(url, built) -> None:
    lon, lat = PLACES[0]
    value, col, row = _local_cell(built.path / "worldpop_sle_2019.tif", lon, lat)
    doc = httpx.get(f"{url}/rasters/worldpop_sle_2019/value?lon={lon}&lat={lat}").json()
    assert doc["band"] == "people" and (doc["cell"]["col"], doc["cell"]["row"]) == (col, row)
    assert np.float32(doc["value"]) == np.float32(value)


def test_no_value_is_null_and_outside_is_404(url, built) -> None:
    value, _, _ = _local_cell(built.path / "risk_surface.tif", *OCEAN)
    assert math.isnan(value)
    lon, lat = OCEAN
    r = httpx.get(f"{url}/rasters/risk_surface/value?lon={lon}&lat={lat}")
    assert r.status_code == 200 and r.json()["value"] is None
    outside = httpx.get(f"{url}/rasters/risk_surface/value?lon=100&lat=0")
    assert outside.status_code == 404
    assert "lon 100, lat 0 is outside risk_surface" in outside.json()["description"]
    for query, name in [("lon=0&lat=95", "lat"), ("lon=0", "lat"), ("lon=x&lat=0", "lon")]:
        bad = httpx.get(f"{url}/rasters/risk_surface/value?{query}")
        assert bad.status_code == 400 and f"'{name}'" in bad.json()["description"], query
    extra = httpx.get(f"{url}/rasters/risk_surface/value?lon=0&lat=0&band=2")
    assert extra.status_code == 400 and "band" in extra.json()["description"]
