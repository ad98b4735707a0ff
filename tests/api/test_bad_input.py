"""Whatever a client sends, the answer is a clear 4xx or a real answer: never a 5xx.

Property-based tests (hypothesis) throw malformed and extreme parameters at the items,
tiles and map routes (``test_openapi.py`` runs schemathesis over every documented operation).
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo_service.api.app import create_app
from geo_service.settings import ApiSettings

ANY_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)
NUMBER = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**12), 10**12),
).map(str)
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


_CLIENTS: dict[str, TestClient] = {}


def _client(build_dir) -> TestClient:  # type: ignore[no-untyped-def]
    """One app per builds folder for the whole module, as a server keeps it between requests
    (opening a build for every generated example would time the opening, not the answers)."""
    key = str(build_dir)
    if key not in _CLIENTS:
        _CLIENTS[key] = TestClient(create_app(ApiSettings(build_dir=build_dir)))
    return _CLIENTS[key]


def _clear_4xx_or_ok(r) -> None:  # type: ignore[no-untyped-def]
    assert r.status_code < 500, (r.request.url, r.status_code, r.text[:300])
    if r.status_code >= 400:
        body = r.json()
        assert body["code"] and body["description"], body


@SETTINGS
@given(
    bbox=st.one_of(ANY_TEXT, st.lists(NUMBER, min_size=0, max_size=7).map(",".join)),
    limit=st.one_of(NUMBER, ANY_TEXT),
    offset=st.one_of(NUMBER, ANY_TEXT),
    when=st.one_of(ANY_TEXT, st.dates().map(str), st.just("../.."), st.just("2021-01-01/..")),
    f=st.one_of(ANY_TEXT, st.sampled_from(["json", "html", "csv", "gpkg", "parquet", "kml"])),
)
def test_items_parameters(built, build_dir, bbox, limit, offset, when, f) -> None:
    client = _client(build_dir)
    r = client.get(
        "/collections/incidents/items",
        params={"bbox": bbox, "limit": limit, "offset": offset, "datetime": when, "f": f},
    )
    _clear_4xx_or_ok(r)


@SETTINGS
@given(
    collection=st.one_of(ANY_TEXT, st.sampled_from(["incidents", "..", "../../etc/passwd"])),
    feature=st.one_of(ANY_TEXT, st.just("../../../etc/passwd"), st.just("%2e%2e%2f")),
    extra=st.dictionaries(ANY_TEXT.filter(bool), ANY_TEXT, max_size=3),
)
def test_paths_and_unknown_parameters(built, build_dir, collection, feature, extra) -> None:
    client = _client(build_dir)
    collection, feature = quote(collection, safe="./%"), quote(feature, safe="./%")
    for path in (
        f"/collections/{collection}",
        f"/collections/{collection}/items",
        f"/collections/incidents/items/{feature}",
        f"/assets/{feature}",
    ):
        _clear_4xx_or_ok(client.get(path, params=extra))


@SETTINGS
@given(
    z=st.integers(-5, 40),
    x=st.integers(-(2**31), 2**40),
    y=st.integers(-(2**31), 2**40),
    layer=st.sampled_from(["risk_surface", "incidents", "community_risk", "nope"]),
    ext=st.sampled_from(["png", "mvt", "jpg"]),
)
def test_tiles_out_of_range(built, build_dir, z, x, y, layer, ext) -> None:
    _clear_4xx_or_ok(_client(build_dir).get(f"/tiles/{layer}/{z}/{x}/{y}.{ext}"))


@SETTINGS
@given(
    lat=NUMBER,
    lon=NUMBER,
    z=st.one_of(NUMBER, ANY_TEXT),
    lang=ANY_TEXT,
    width=st.one_of(NUMBER, ANY_TEXT),
)
def test_map_pages_and_pictures(built, build_dir, lat, lon, z, lang, width) -> None:
    client = _client(build_dir)
    _clear_4xx_or_ok(client.get("/maps/overview", params={"lat": lat, "lon": lon, "z": z}))
    _clear_4xx_or_ok(client.get("/embed/overview", params={"lang": lang}))
    r = client.get(
        "/maps/overview.png", params={"width": width, "height": 120, "bbox": f"{lon},{lat},1,1"}
    )
    _clear_4xx_or_ok(r)


def test_very_long_and_oversized_requests(built, build_dir) -> None:
    client = _client(build_dir)
    r = client.get("/collections/incidents/items", params={"bbox": "1," * 5000})
    assert r.status_code == 414 and "bytes" in r.json()["description"]
    r = client.request("GET", "/collections", content=b"x" * 100_000)
    assert r.status_code == 413
    r = client.post("/collections", content=b"{}")
    assert r.status_code == 405
