"""OGC API – Features on the bundled build: contracts, filters against the data, paging, HTTP."""

from __future__ import annotations

import io

import geopandas as gpd
import mapbox_vector_tile
import morecantile
import numpy as np
import pandas as pd
import pyogrio
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from starlette.datastructures import URL

from geo_service.api.app import create_app
from geo_service.settings import ApiSettings
from geo_service.store.files import load_layer


@pytest.fixture(scope="module")
def client(built, build_dir) -> TestClient:
    return TestClient(create_app(ApiSettings(build_dir=build_dir)))


@pytest.fixture(scope="module")
def incidents(built, build_dir) -> gpd.GeoDataFrame:
    """The incidents as an anonymous caller gets them (restricted ones as H3 cells)."""
    return load_layer(build_dir, "incidents", public=True)


def _ids(body: dict) -> list[str]:
    return [f["id"] for f in body["features"]]


def test_landing_page_and_conformance(client) -> None:
    body = client.get("/").json()
    rels = {link["rel"]: link for link in body["links"]}
    assert {"self", "service-desc", "service-doc", "conformance", "data"} <= set(rels)
    assert rels["service-desc"]["href"].endswith("/openapi.json")
    assert rels["service-desc"]["type"].startswith("application/vnd.oai.openapi+json")
    api = client.get(rels["service-desc"]["href"])
    assert api.status_code == 200 and api.json()["openapi"].startswith("3.0.")
    assert '{"type":"null"}' not in api.text.replace(" ", "")  # 3.1 forms rewritten for 3.0
    assert "/collections/{collectionId}/items" in api.json()["paths"]
    assert client.get(rels["service-doc"]["href"]).status_code == 200
    conf = client.get(rels["conformance"]["href"]).json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conf
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson" in conf


def test_collection_links_and_queryables(client) -> None:
    body = client.get("/collections/incidents").json()
    rels = {link["rel"]: link for link in body["links"]}
    items = {link["type"] for link in body["links"] if link["rel"] == "items"}
    assert items == {"application/geo+json", "text/html"}
    assert rels["license"]["href"].startswith("https://creativecommons.org/")
    q = client.get(rels["http://www.opengis.net/def/rel/ogc/1.0/queryables"]["href"])
    assert q.status_code == 200 and q.headers["content-type"] == "application/schema+json"
    props = q.json()["properties"]
    assert props["type"]["type"] == "string" and props["fatalities"]["type"] == "integer"
    assert props["date"]["format"] == "date"


def test_paging_through_next_links_returns_every_feature_once(client, incidents) -> None:
    url, seen, pages = "/collections/incidents/items?limit=500", [], 0
    while url and pages < 10:
        body = client.get(url).json()
        assert body["numberMatched"] == len(incidents)
        assert body["numberReturned"] == len(body["features"])
        seen += _ids(body)
        nxt = [link["href"] for link in body["links"] if link["rel"] == "next"]
        url = nxt[0] if nxt else None
        pages += 1
    assert pages == 4 and len(seen) == len(set(seen)) == len(incidents)
    assert set(seen) == set(incidents["incident_id"])
    alternates = {link["type"] for link in body["links"] if link["rel"] == "alternate"}
    assert {"text/csv; charset=utf-8", "application/geopackage+sqlite3"} <= alternates
    second = client.get("/collections/incidents/items?limit=500&offset=500").json()
    prev = [link["href"] for link in second["links"] if link["rel"] == "prev"]
    assert _ids(client.get(prev[0]).json()) == seen[:500]


def test_page_links_keep_every_filter_and_change_only_their_own(client) -> None:
    query = "bbox=14,2,28,11&datetime=2015-01-01T00:00:00Z/..&properties=type,date&limit=7&offset=7"
    body = client.get(f"/collections/incidents/items?{query}").json()
    assert body["numberMatched"] > 14
    here = URL(f"http://testserver/collections/incidents/items?{query}")
    links = {(x["rel"], x["type"]): x["href"] for x in body["links"]}
    geojson = "application/geo+json"
    assert links[("self", geojson)] == str(here)
    # The next page starts after this page's last feature (keyset) and is numbered on.
    last = _ids(body)[-1]
    assert links[("next", geojson)] == str(
        here.include_query_params(offset=14, limit=7, after=last)
    )
    assert links[("prev", geojson)] == str(here.include_query_params(offset=0, limit=7))
    for fmt in ("html", "csv", "gpkg", "parquet", "kml"):
        assert str(here.include_query_params(f=fmt)) in links.values()
    following = client.get(links[("next", geojson)]).json()
    expected = client.get(f"/collections/incidents/items?{query.replace('offset=7', 'offset=14')}")
    assert _ids(following) == _ids(expected.json()) and len(_ids(following)) == 7
    csv = client.get(str(here.include_query_params(f="csv")))
    assert len(pd.read_csv(io.StringIO(csv.text))) == 7


def test_offset_past_the_end_is_an_empty_page(client, incidents) -> None:
    body = client.get("/collections/incidents/items?offset=100000").json()
    assert body["numberReturned"] == 0 and body["numberMatched"] == len(incidents)
    assert not [link for link in body["links"] if link["rel"] == "next"]


@pytest.mark.parametrize(
    "bbox",
    ["20,5,23,7", "14,2,15,4", "0,0,1,1", "27,-90,14,90", "20,5,0,23,7,100"],
)
def test_bbox_matches_the_data(client, incidents, bbox) -> None:
    numbers = [float(v) for v in bbox.split(",")]
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    w, s, e, n = numbers
    b = incidents.bounds  # points, and the cells restricted incidents are shown as
    in_x = (b.minx <= e) & (b.maxx >= w) if w <= e else (b.maxx >= w) | (b.minx <= e)
    want = set(incidents.loc[in_x & (b.miny <= n) & (b.maxy >= s), "incident_id"])
    body = client.get(f"/collections/incidents/items?bbox={bbox}&limit=10000").json()
    assert body["numberMatched"] == len(want) and set(_ids(body)) == want


@pytest.mark.parametrize(
    "value, lo, hi",
    [
        ("2020-01-01/2020-12-31", "2020-01-01", "2020-12-31"),
        ("2021-06-01/..", "2021-06-01", None),
        ("../1995-12-31", None, "1995-12-31"),
        ("/1995-12-31", None, "1995-12-31"),
        ("2014-11-01", "2014-11-01", "2014-11-01"),
        ("2020-01-01T00:00:00Z/2020-06-30T23:59:59Z", "2020-01-01", "2020-06-30"),
    ],
)
def test_datetime_matches_the_data(client, incidents, value, lo, hi) -> None:
    dates = pd.to_datetime(incidents["date"]).dt.normalize()
    keep = np.ones(len(incidents), dtype=bool)
    if lo:
        keep &= dates >= pd.Timestamp(lo)
    if hi:
        keep &= dates <= pd.Timestamp(hi)
    assert keep.any()  # every case selects something real
    assert dates.notna().all()  # the public reports (restricted ones: incident_areas)
    want = set(incidents.loc[keep, "incident_id"])
    body = client.get(f"/collections/incidents/items?datetime={value}&limit=10000").json()
    assert set(_ids(body)) == want
    # Features with no date (the cells that stand for restricted reports) match any datetime.
    cells = client.get(f"/collections/incident_areas/items?datetime={value}").json()
    assert cells["numberMatched"] == 5


def test_property_filters_match_the_data(client, incidents) -> None:
    r = client.get("/collections/incidents/items?type=one-sided&location_precision=exact&limit=1")
    want = ((incidents["type"] == "one-sided") & (incidents["location_precision"] == "exact")).sum()
    assert r.status_code == 200 and r.json()["numberMatched"] == want > 0
    r = client.get("/collections/incidents/items?fatalities=5&limit=10000")
    assert r.json()["numberMatched"] == (incidents["fatalities"] == 5).sum() > 0
    body = client.get("/collections/community_risk/items?country=SLE&limit=10000").json()
    assert body["features"] and {f["properties"]["country"] for f in body["features"]} == {"SLE"}


@pytest.mark.parametrize(
    "query, words",
    [
        ("colour=red", ["unknown parameter", "colour", "queryable"]),
        ("limit=0", ["limit"]),
        ("limit=10001", ["limit"]),
        ("limit=ten", ["limit"]),
        ("offset=-1", ["offset"]),
        ("bbox=1,2,3", ["bbox", "4"]),
        ("bbox=0,10,1,5", ["bbox", "south"]),
        ("bbox=0,0,200,1", ["bbox", "longitude"]),
        ("datetime=yesterday", ["datetime"]),
        ("datetime=2020-01-01/2019-01-01", ["datetime", "before it starts"]),
        ("datetime=../..", ["datetime"]),
        ("fatalities=many", ["fatalities", "integer"]),
        ("f=shapefile", ["f", "unsupported"]),
        ("crs=EPSG:2154", ["crs", "is not served"]),
    ],
)
def test_bad_parameters_are_400_with_a_message(client, query, words) -> None:
    r = client.get(f"/collections/incidents/items?{query}")
    assert r.status_code == 400, r.text
    message = r.json()["description"]
    for word in words:
        assert word in message, message


def test_datetime_on_a_layer_without_dates_selects_every_feature(client) -> None:
    # OGC API – Features /req/core/fc-time-response C: features with no temporal geometry
    # match any datetime.
    whole = client.get("/collections/concessions/items?limit=1").json()["numberMatched"]
    for value in ("2020-01-01", "1900-01-01/1900-12-31", "../2001-01-01"):
        r = client.get(f"/collections/concessions/items?datetime={value}&limit=1")
        assert r.status_code == 200 and r.json()["numberMatched"] == whole > 0


def test_one_feature_and_unknown_ones(client, incidents) -> None:
    fid = incidents["incident_id"].iloc[10]
    r = client.get(f"/collections/incidents/items/{fid}")
    assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
    body = r.json()
    assert body["id"] == fid and body["properties"]["incident_id"] == fid
    assert body["geometry"]["type"] == "Point"
    assert {link["rel"] for link in body["links"]} == {"self", "alternate", "collection"}
    assert client.get("/collections/incidents/items/nope").status_code == 404
    assert client.get("/collections/nope").status_code == 404
    assert client.get("/collections/nope/items").json()["code"] == "NotFound"
    assert client.get("/collections/incidents/items/..%2F..%2Fcatalog.json").status_code == 404


def test_properties_are_plain_json(client) -> None:
    body = client.get("/collections/community_risk/items?limit=50").json()
    props = body["features"][0]["properties"]
    assert isinstance(props["score"], int | float) or props["score"] is None
    assert isinstance(props["concession_pressure_evidence"], list)
    incident = client.get("/collections/incidents/items?limit=1").json()["features"][0]
    assert len(incident["properties"]["date"]) == 10  # 2009-02-20, not a timestamp


def test_etag_304_cache_control_build_id_cors_and_gzip(client, built) -> None:
    url = "/collections/incidents/items?limit=1000"
    r = client.get(url)
    etag = r.headers["etag"]
    assert r.headers["x-build-id"] == built.build_id and "max-age" in r.headers["cache-control"]
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert client.get(url + "&offset=1", headers={"If-None-Match": etag}).status_code == 200
    assert client.get("/collections").headers["cache-control"] == "public, max-age=60"
    cors = client.get(url, headers={"Origin": "https://news.example"})
    assert cors.headers["access-control-allow-origin"] == "*"
    zipped = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.json()["numberReturned"] == 1000


FILTER = "type=one-sided&bbox=20,5,23,7"


def _filtered(incidents: gpd.GeoDataFrame) -> set[str]:
    b = incidents.bounds
    inside = (b.minx <= 23) & (b.maxx >= 20) & (b.miny <= 7) & (b.maxy >= 5)
    keep = (incidents["type"] == "one-sided") & inside
    return set(incidents.loc[keep, "incident_id"])


@pytest.mark.parametrize("fmt", ["csv", "gpkg", "parquet", "kml"])
def test_filtered_downloads_hold_exactly_the_filtered_features(client, incidents, fmt) -> None:
    want = _filtered(incidents)
    assert 20 < len(want) < len(incidents)
    r = client.get(f"/collections/incidents/items?{FILTER}&f={fmt}")
    assert r.status_code == 200, r.text
    assert 'filename="incidents.' in r.headers["content-disposition"]
    data = io.BytesIO(r.content)
    if fmt == "csv":
        got = pd.read_csv(data)
        assert {"longitude", "latitude", "wkt"} <= set(got.columns)
    elif fmt == "parquet":
        got = gpd.read_parquet(data)
        assert got.crs.to_epsg() == 4326
    else:
        got = pyogrio.read_dataframe(data)
    assert len(got) == len(want)
    if fmt != "kml":  # KML keeps names and descriptions, not every attribute
        assert set(got["incident_id"]) == want


def test_downloads_hold_every_feature_unless_limited(client) -> None:
    r = client.get("/collections/communities/items?f=csv")
    assert len(pd.read_csv(io.BytesIO(r.content))) == 26074  # more than one page may hold
    r = client.get("/collections/communities/items?f=csv&limit=10")
    assert len(pd.read_csv(io.BytesIO(r.content))) == 10


def test_lists_survive_parquet_and_become_json_text_in_csv(client) -> None:
    url = "/collections/community_risk/items?country=CAF&limit=50"
    got = gpd.read_parquet(io.BytesIO(client.get(url + "&f=parquet").content))
    assert any(len(v) for v in got["incident_intensity_evidence"])
    text = pd.read_csv(io.BytesIO(client.get(url + "&f=csv").content))
    assert text["incident_intensity_evidence"].str.startswith("[").all()


def test_html_by_f_and_by_accept(client, incidents) -> None:
    page = client.get("/collections/incidents/items?limit=5&f=html")
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>Incidents</h1>" in page.text and page.text.count("<tr>") == 6
    assert 'rel="next"' in page.text
    negotiated = client.get("/collections/incidents/items?limit=5", headers={"Accept": "text/html"})
    assert negotiated.headers["content-type"].startswith("text/html")
    fid = incidents["incident_id"].iloc[0]
    one = client.get(f"/collections/incidents/items/{fid}?f=html")
    assert one.status_code == 200 and fid in one.text
    assert client.get(f"/collections/incidents/items/{fid}?f=csv").status_code == 400
    plain = client.get("/collections/incidents/items?limit=1", headers={"Accept": "*/*"})
    assert plain.headers["content-type"] == "application/geo+json"


def test_landing_and_collections_as_html(client) -> None:
    page = client.get("/collections?f=html")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    # 13 layers, the areas of the 9 whose rows can be restricted (8 collections), the header.
    assert "<h1>Collections</h1>" in page.text and page.text.count("<tr>") == 13 + 8 + 1
    assert "CC BY 4.0" in page.text and "/collections/incidents/items?f=html" in page.text
    landing = client.get("/", headers={"Accept": "text/html,application/xhtml+xml"})
    assert (
        landing.headers["content-type"].startswith("text/html") and "openapi.json" in landing.text
    )
    assert client.get("/conformance?f=html").text.count("ogcapi-features-1") >= 3
    assert client.get("/collections/incidents?f=html").status_code == 200
    assert client.get("/collections?f=csv").status_code == 400


def test_head_is_get_without_the_body(client) -> None:
    get = client.get("/collections/incidents/items?limit=3")
    head = client.head("/collections/incidents/items?limit=3")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["etag"] == get.headers["etag"]
    assert head.headers["content-length"] == str(len(get.content))
    assert client.head("/tiles/risk_surface/3/4/3.png").headers["content-type"] == "image/png"
    assert client.head("/collections/nope").status_code == 404


def test_property_selection(client) -> None:
    body = client.get(
        "/collections/community_risk/items?limit=5&properties=name,score,risk_class"
    ).json()
    assert body["numberReturned"] == 5
    assert all(set(f["properties"]) == {"name", "score", "risk_class"} for f in body["features"])
    assert all(f["geometry"]["type"] == "Point" for f in body["features"])
    r = client.get("/collections/community_risk/items?properties=name,nope")
    assert r.status_code == 400 and "nope" in r.json()["description"]


@pytest.mark.parametrize("layer", ["concession_risk", "risk_hex", "coverage"])
def test_csv_of_polygon_layers_has_wkt_and_no_point_columns(client, build_dir, layer) -> None:
    r = client.get(f"/collections/{layer}/items?f=csv&limit=5")
    assert r.status_code == 200
    table = pd.read_csv(io.BytesIO(r.content))
    assert len(table) == min(5, len(load_layer(build_dir, layer)))
    assert table["longitude"].isna().all()
    assert table["wkt"].str.match(r"(MULTI)?POLYGON").all()


def test_every_ogc_resource_refuses_unknown_parameters(client) -> None:
    for path in (
        "/",
        "/conformance",
        "/collections",
        "/collections/incidents",
        "/collections/incidents/queryables",
        "/collections/incidents/items/ucdp_ged_caf:36210",
    ):
        r = client.get(path, params={"colour": "red"})
        assert r.status_code == 400, path
        assert "colour" in r.json()["description"]


def test_single_feature_has_an_alternate_link(client) -> None:
    body = client.get("/collections/incidents/items/ucdp_ged_caf:36210").json()
    alternate = [x for x in body["links"] if x["rel"] == "alternate"]
    assert alternate and alternate[0]["type"].startswith("text/html")
    assert client.get(alternate[0]["href"]).text.startswith("<!doctype html>")


def test_queryables_as_html(client) -> None:
    r = client.get("/collections/incidents/queryables?f=html")
    assert r.headers["content-type"].startswith("text/html") and "fatalities" in r.text


@pytest.mark.parametrize("value", ["now", "yesterday", "2021", "2021-13-45", "01/02/2021"])
def test_datetime_must_be_rfc3339(client, value) -> None:
    r = client.get("/collections/incidents/items", params={"datetime": value})
    assert r.status_code == 400 and "datetime" in r.json()["description"]


def test_downloads_keep_only_the_chosen_properties(client) -> None:
    url = "/collections/incidents/items?country=CAF&limit=20&properties=date,fatalities"
    table = pd.read_csv(io.BytesIO(client.get(url + "&f=csv").content))
    assert set(table.columns) == {"date", "fatalities", "longitude", "latitude", "wkt"}
    gpkg = pyogrio.read_dataframe(io.BytesIO(client.get(url + "&f=gpkg").content))
    assert set(gpkg.columns) == {"date", "fatalities", "geometry"} and len(gpkg) == 20
    assert client.get(url.replace("fatalities", "nope") + "&f=csv").status_code == 400


CQL = "type = 'one-sided' AND S_INTERSECTS(geometry, BBOX(20, 5, 23, 7))"


def test_cql2_filter_pages_downloads_and_tiles_hold_the_same_features(client, incidents) -> None:
    want = _filtered(incidents)
    first = client.get("/collections/incidents/items", params={"filter": CQL, "limit": 10})
    assert first.status_code == 200, first.text
    assert first.json()["numberMatched"] == len(want)
    seen, page = [], first.json()
    while True:
        seen += [f["id"] for f in page["features"]]
        nxt = [x["href"] for x in page["links"] if x["rel"] == "next"]
        if not nxt:
            break
        assert "filter=" in nxt[0]
        page = client.get(nxt[0]).json()
    assert len(seen) == len(set(seen)) and set(seen) == want
    csv = client.get("/collections/incidents/items", params={"filter": CQL, "f": "csv"})
    assert set(pd.read_csv(io.BytesIO(csv.content))["incident_id"]) == want
    tile = client.get("/tiles/incidents/4/8/7.mvt", params={"filter": CQL})
    everything = client.get("/tiles/incidents/4/8/7.mvt")
    assert tile.status_code == everything.status_code == 200
    decoded = mapbox_vector_tile.decode(tile.content)["incidents"]["features"]
    whole = mapbox_vector_tile.decode(everything.content)["incidents"]["features"]
    assert decoded and len(decoded) < len(whole)
    assert {f["properties"]["incident_id"] for f in decoded} <= want


def test_bad_filters_are_400_naming_the_parameter_and_the_problem(client) -> None:
    for params, words in [
        ({"filter": "scor > 5"}, "unknown property 'scor'"),
        ({"filter": "score >"}, "not valid cql2-text"),
        ({"filter": "score > 5", "filter-lang": "cql1"}, "parameter 'filter-lang'"),
        ({"filter": '{"op": ">"}', "filter-lang": "cql2-json"}, "not valid cql2-json"),
    ]:
        r = client.get("/collections/community_risk/items", params=params)
        assert r.status_code == 400 and words in r.json()["description"], (params, r.text)
    assert client.get("/tiles/incidents/4/8/7.mvt", params={"filter": "x >"}).status_code == 400
    classes = client.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter" in classes
    assert "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text" in classes


def test_answers_in_other_crs_and_boxes_given_in_them(client) -> None:
    from pyproj import Transformer

    kono = "-11.5,8.3,-10.5,9.0"
    plain = client.get(f"/collections/community_risk/items?bbox={kono}&limit=20").json()
    utm = client.get(f"/collections/community_risk/items?bbox={kono}&limit=20&crs=EPSG:32629")
    assert utm.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/32629>"
    to_utm = Transformer.from_crs("OGC:CRS84", "EPSG:32629")
    for a, b in zip(plain["features"], utm.json()["features"], strict=True):
        x, y = to_utm.transform(*a["geometry"]["coordinates"])
        assert abs(x - b["geometry"]["coordinates"][0]) < 0.001
        assert abs(y - b["geometry"]["coordinates"][1]) < 0.001
        assert a["properties"] == b["properties"]
    latlon = client.get(f"/collections/community_risk/items?bbox={kono}&limit=1&crs=EPSG:4326")
    lon, lat = plain["features"][0]["geometry"]["coordinates"]
    assert latlon.json()["features"][0]["geometry"]["coordinates"] == [lat, lon]
    crs_list = client.get("/collections/community_risk").json()["crs"]
    assert {"http://www.opengis.net/def/crs/EPSG/0/3857", utm.headers["content-crs"][1:-1]} <= set(
        crs_list
    )
    # A box in metres selects what the same area in degrees does.
    box_m = (300000, 920000, 380000, 990000)
    west, south, east, north = Transformer.from_crs("EPSG:32629", "OGC:CRS84").transform_bounds(
        *box_m, densify_pts=21
    )
    by_metres = client.get(
        "/collections/community_risk/items",
        params={"bbox": ",".join(map(str, box_m)), "bbox-crs": "EPSG:32629", "limit": 1},
    ).json()["numberMatched"]
    by_degrees = client.get(
        f"/collections/community_risk/items?bbox={west},{south},{east},{north}&limit=1"
    ).json()["numberMatched"]
    in_filter = client.get(
        "/collections/community_risk/items",
        params={
            "filter": f"S_INTERSECTS(geometry, BBOX({','.join(map(str, box_m))}))",
            "filter-crs": "EPSG:32629",
            "limit": 1,
        },
    ).json()["numberMatched"]
    assert by_metres == by_degrees == in_filter > 100
    gpkg = client.get(f"/collections/community_risk/items?bbox={kono}&f=gpkg&crs=EPSG:32629")
    assert pyogrio.read_info(io.BytesIO(gpkg.content))["crs"] == "EPSG:32629"
    for params, words in [
        ({"crs": "EPSG:9999"}, "is not served"),
        ({"crs": "EPSG:3857", "f": "csv"}, "f=csv gives longitude and latitude"),
        ({"bbox-crs": "EPSG:32629", "bbox": "5,5,1,1"}, "lower corner"),
    ]:
        r = client.get("/collections/community_risk/items", params=params)
        assert r.status_code == 400 and words in r.json()["description"], r.text


def test_sorted_pages_link_by_offset(client) -> None:
    page = client.get("/collections/community_risk/items?sortby=-score,name&limit=5").json()
    scores = [f["properties"]["score"] for f in page["features"]]
    assert scores == sorted(scores, reverse=True)
    nxt = next(x["href"] for x in page["links"] if x["rel"] == "next")
    assert "after=" not in nxt and "offset=5" in nxt and "sortby=" in nxt
    second = client.get(nxt).json()["features"]
    assert second[0]["properties"]["score"] <= scores[-1]
    r = client.get("/collections/community_risk/items?sortby=-score&after=x")
    assert r.status_code == 400 and "parameter 'after'" in r.json()["description"]
    r = client.get("/collections/community_risk/items?sortby=colour")
    assert r.status_code == 400 and "cannot sort by colour" in r.json()["description"]


def test_queryables_and_schema_describe_each_property(client) -> None:
    q = client.get("/collections/community_risk/queryables").json()["properties"]
    assert all(v.get("title") and v.get("description") for k, v in q.items() if k != "geometry")
    assert q["concession_pressure_nearest_km"]["unit"] == "km"
    assert q["score"]["type"] == "number" and q["score"]["unit"] == "0–100"
    assert {"SLE", "CAF", "BRA"} <= set(q["country"]["enum"])
    assert "enum" not in q["name"]  # thousands of names: not a list of values
    links = client.get("/collections/community_risk").json()["links"]
    described = next(x for x in links if x["rel"] == "describedby")
    schema = client.get(described["href"])
    assert schema.headers["content-type"].startswith("application/schema+json")
    props = schema.json()["properties"]["properties"]["properties"]
    assert props["factors_available"]["type"] == "array"
    assert props["score"] == q["score"]
    assert set(q) - {"geometry"} <= set(props)


@pytest.mark.parametrize("layer", ["community_risk", "incidents", "concessions", "risk_units"])
def test_tilejson_centres_sit_among_the_features(client, layer) -> None:
    doc = client.get(f"/tiles/{layer}/tilejson.json").json()
    lon, lat, _ = doc["center"]
    west, south, east, north = doc["bounds"]
    assert west <= lon <= east and south <= lat <= north
    near = client.get(
        f"/collections/{layer}/items?bbox={lon - 2},{lat - 2},{lon + 2},{lat + 2}&limit=1"
    ).json()
    assert near["numberMatched"] > 0


@pytest.mark.parametrize("layer", ["risk_surface", "worldpop_sle_2019"])
def test_raster_tilejson_centres_sit_among_cells_with_a_value(client, layer) -> None:
    """The risk surface spans Brazil and Africa: the middle of its bounds is the Atlantic."""
    lon, lat, _ = client.get(f"/tiles/{layer}/tilejson.json").json()["center"]
    tile = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, 9)
    png = client.get(f"/tiles/{layer}/{tile.z}/{tile.x}/{tile.y}.png")
    assert np.asarray(Image.open(io.BytesIO(png.content)).convert("RGBA"))[..., 3].any()
    if layer == "risk_surface":  # a smooth surface: the very cell has a value
        value = client.get(f"/rasters/{layer}/value", params={"lon": lon, "lat": lat})
        assert value.status_code == 200 and value.json()["value"] is not None, value.text
