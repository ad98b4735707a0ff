"""Restricted rows never reach an anonymous caller, in any form.

The bundled catalog marks 76 real UCDP events restricted (one-sided violence since 2021). The
leak test builds the Central African evidence they belong to (``SMALL_SOURCES``) twice: once
as it is, and once with every restricted row moved inside its own H3 cell and every one of
its words and ids changed. Everything an
anonymous caller can fetch — collections, items with and without filters, single items, every
download format, vector and raster tiles at every zoom over the restricted places, TileJSON,
maps, embeds, pictures — must come out the same from both builds. What a row may still shape
(its cell, its date, type and deaths, through the scores) is the same in both; anything else
that leaked, a position inside the cell or a word of the report, would differ. The same crawl
also looks for every restricted-only text and id, and for restricted positions, directly.
The crawl runs on each backend: the embedded store, and PostGIS under its public role.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import geopandas as gpd
import h3
import morecantile
import numpy as np
import pandas as pd
import pyogrio
import pytest
from fastapi.testclient import TestClient

from geo_service.api.app import create_app
from geo_service.api.auth import file_line, new_token
from geo_service.build import build
from geo_service.bundle import gather
from geo_service.maps.definitions import load_maps
from geo_service.maps.layers import definitions
from geo_service.settings import ApiSettings, BuildSettings
from geo_service.store.base import Access
from geo_service.store.files import load_layer
from geo_service.store.postgis import publish
from tests.conftest import LAYERS, QUICK_SURFACE_M, SMALL_SOURCES, small_layers
from tests.helpers import read_text_csv, write_text_csv
from tests.postgis import database

TMS = morecantile.tms.get("WebMercatorQuad")
UCDP = Path("sources/ucdp_ged_v23_1_caf/ucdp_ged_v23_1_caf.csv")
#: What the bundled catalog restricts (layers/sources.toml).
RESTRICTED_RULE = re.compile(r"^3\|202[1-9]")
#: Columns of a restricted UCDP row that must never show (the model reads none of them).
TEXT_COLUMNS = [
    "side_a",
    "side_b",
    "dyad_name",
    "where_description",
    "where_coordinates",
    "adm_1",
    "adm_2",
    "source_article",
    "source_headline",
    "source_original",
]
VECTOR_LAYERS = [
    "incidents",
    "incident_areas",
    "community_risk",
    "community_risk_areas",
    "concession_risk",
    "risk_hex",
    "coverage",
]
FORMATS = ["json", "html", "csv", "gpkg", "parquet", "kml"]


def _restricted_rows(frame: pd.DataFrame) -> pd.Series:
    key = frame["type_of_violence"].astype(str) + "|" + frame["date_start"].astype(str)
    return key.str.match(RESTRICTED_RULE)


def _disguised(frame: pd.DataFrame) -> pd.DataFrame:
    """The same events, each restricted one moved inside its cell and its words changed."""
    out = frame.copy()
    rows = np.flatnonzero(_restricted_rows(out).to_numpy())
    for n, i in enumerate(rows):
        lat, lon = float(out.at[i, "latitude"]), float(out.at[i, "longitude"])
        cell = h3.latlng_to_cell(lat, lon, 5)
        clat, clon = h3.cell_to_latlng(cell)
        # Halfway to the cell's centre: another place, the same cell.
        nlat, nlon = (lat + clat) / 2, (lon + clon) / 2
        assert h3.latlng_to_cell(nlat, nlon, 5) == cell
        out.at[i, "latitude"], out.at[i, "longitude"] = f"{nlat:.6f}", f"{nlon:.6f}"
        for column in TEXT_COLUMNS:
            if column in out and out.at[i, column]:
                out.at[i, column] = f"changed {column} {n}"
        out.at[i, "id"] = str(990000000 + n)
    return out


def _layers_copy(root: Path, disguise: bool, keep: tuple[str, ...] = SMALL_SOURCES) -> Path:
    """A copy of the layers whose catalog keeps the sources ``keep`` (by default the Central
    African evidence the restricted reports belong to), the reports disguised if asked."""
    layers = small_layers(root, keep).parent
    if disguise:
        path = layers / UCDP
        write_text_csv(_disguised(read_text_csv(path)), path)
    return layers


@pytest.fixture(scope="module")
def twins(tmp_path_factory) -> dict[str, Any]:
    """Two builds of the bundled data, as published and disguised, and their anonymous apps."""
    out: dict[str, Any] = {}
    for name, disguise in (("real", False), ("disguised", True)):
        root = tmp_path_factory.mktemp(name)
        layers = _layers_copy(root, disguise)
        settings = BuildSettings(
            build_dir=root / "build",
            catalog=layers / "sources.toml",
            surface_cell_m=QUICK_SURFACE_M,
        )
        result = build(settings)
        app = create_app(ApiSettings(build_dir=settings.build_dir, maps_file=layers / "maps.toml"))
        out[name] = {
            "build": result,
            "dir": settings.build_dir,
            "maps": layers / "maps.toml",
            "client": TestClient(app),
        }
    return out


@pytest.fixture(scope="module", params=["memory", "postgis"])
def served(request, twins) -> dict[str, Any]:
    """The twins as each backend serves them to anonymous callers (PostGIS: each published
    into a database of its own, read through the public role)."""
    if request.param == "memory":
        return {**twins, "backend": "memory"}
    cluster = request.getfixturevalue("postgis_url")
    out: dict[str, Any] = {}
    for name, twin in twins.items():
        url = database(cluster, f"riskmap_twin_{name}")
        publish(url, twin["dir"], twin["build"].build_id)
        settings = ApiSettings(build_dir=twin["dir"], maps_file=twin["maps"], store_url=url)
        out[name] = {**twin, "client": TestClient(create_app(settings))}
    return {**out, "backend": "postgis"}


def _restricted_incidents(build_dir: Path) -> gpd.GeoDataFrame:
    incidents = load_layer(build_dir, "incidents")
    return incidents[incidents["sensitivity"] == "restricted"]


def _tiles(points: gpd.GeoDataFrame) -> list[tuple[int, int, int]]:
    """Every tile holding a restricted place, zoom 0 to 16 (a sample of places beyond 10)."""
    tiles = set()
    lon, lat = points.geometry.x.to_numpy(), points.geometry.y.to_numpy()
    for z in range(17):
        step = 1 if z <= 10 else 6
        for x, y in zip(lon[::step], lat[::step], strict=True):
            t = TMS.tile(x, y, z)
            tiles.add((t.z, t.x, t.y))
    return sorted(tiles)


def _urls(client: TestClient, points: gpd.GeoDataFrame) -> list[str]:
    """What an anonymous caller can ask for, around the restricted places."""
    urls = ["/", "/?f=html", "/conformance", "/collections", "/collections?f=html"]
    urls += ["/openapi.json", "/docs", "/maps", "/maps?lang=fr", "/basemap.json"]
    urls += ["/tiles/risk_surface/tilejson.json", "/tiles/risk_surface/legend.json"]
    urls.append("/rasters/risk_surface.tif")  # the surface's values, every byte
    for layer in VECTOR_LAYERS:
        urls += [f"/collections/{layer}", f"/collections/{layer}?f=html"]
        urls += [f"/collections/{layer}/queryables", f"/tiles/{layer}/tilejson.json"]
        # Every row in every format (a page of 2,000 communities as HTML: 10,000 is 23 MB).
        urls += [
            f"/collections/{layer}/items?limit={2000 if layer == 'community_risk' and f == 'html' else 10000}&f={f}"
            for f in FORMATS
        ]
        urls.append(f"/collections/{layer}/items?limit=7&offset=3")
    for x, y, date in zip(
        points.geometry.x, points.geometry.y, points["date"].dt.strftime("%Y-%m-%d"), strict=True
    ):
        near = f"{x - 0.02:.5f},{y - 0.02:.5f},{x + 0.02:.5f},{y + 0.02:.5f}"
        around = f"{x - 0.3:.5f},{y - 0.3:.5f},{x + 0.3:.5f},{y + 0.3:.5f}"
        for layer in (
            "incidents",
            "incident_areas",
            "community_risk",
            "risk_hex",
            "concession_risk",
        ):
            urls.append(f"/collections/{layer}/items?bbox={near}")
            urls.append(f"/collections/{layer}/items?bbox={around}&limit=1000")
        urls.append(f"/collections/incidents/items?bbox={around}&type=one-sided&f=csv")
        urls.append(f"/collections/incidents/items?datetime={date}&f=geojson")
        urls.append(f"/collections/incidents/items?datetime={date}/..&bbox={around}&f=kml")
        urls.append(f"/rasters/risk_surface/value?lon={x:.5f}&lat={y:.5f}")
    for z, x, y in _tiles(points):
        for layer in (
            "incidents",
            "incident_areas",
            "community_risk",
            "concession_risk",
            "risk_hex",
        ):
            urls.append(f"/tiles/{layer}/{z}/{x}/{y}.mvt")
        if z <= 12:
            urls.append(f"/tiles/risk_surface/{z}/{x}/{y}.png")
    maps = [m["id"] for m in _map_ids(client)]
    for map_id in maps:
        for lang in ("en", "fr", "pt"):
            urls += [f"/maps/{map_id}?lang={lang}", f"/embed/{map_id}?lang={lang}"]
        urls.append(f"/oembed?url=http://testserver/maps/{map_id}")
    for x, y in list(zip(points.geometry.x, points.geometry.y, strict=True))[::15]:
        box = f"{x - 0.6:.4f},{y - 0.4:.4f},{x + 0.6:.4f},{y + 0.4:.4f}"
        urls += [f"/maps/{m}.png?bbox={box}&width=400&height=300" for m in maps]
    return list(dict.fromkeys(urls))


def _map_ids(client: TestClient) -> list[dict[str, str]]:
    return [{"id": m} for m in re.findall(r'href="[^"]*/maps/([\w-]+)\?', client.get("/maps").text)]


def _normalised(body: bytes, content_type: str, build_id: str) -> str:
    """A response as text a comparison can use: the build's own id and clock, and the names
    Folium draws at random for a page's elements, taken out."""
    if content_type.startswith("application/geopackage"):
        frame = pyogrio.read_dataframe(io.BytesIO(body))
        text = frame.to_json(default=str)
    elif content_type.startswith("application/vnd.apache.parquet"):
        text = gpd.read_parquet(io.BytesIO(body)).to_json(default=str)
    elif content_type.startswith(("image/", "application/vnd.mapbox")):
        return body.hex()
    else:
        text = body.decode("utf-8")
    text = text.replace(build_id, "BUILD").replace(build_id[:16], "BUILD")
    text = re.sub(r"_[0-9a-f]{32}(?![0-9a-f])", "_ID", text)  # Folium names each element anew
    return re.sub(r'"(timeStamp|created|build_created)": ?"[^"]+"', r'"\1":"T"', text)


def _crawl(
    client: TestClient, urls: list[str], build_id: str
) -> tuple[dict[str, tuple[int, str]], dict[str, str]]:
    """Every answer, normalised for comparison, and as text a word can be looked for in
    (vector tiles as their raw bytes: their strings are UTF-8 inside; pictures left out)."""
    out, text = {}, {}
    for url in urls:
        r = client.get(url)
        assert r.status_code < 500, (url, r.status_code, r.text[:300])
        kind = r.headers.get("content-type", "")
        out[url] = (r.status_code, _normalised(r.content, kind, build_id))
        if kind.startswith("application/vnd.mapbox"):
            text[url] = r.content.decode("utf-8", errors="replace")
        elif not kind.startswith("image/"):
            text[url] = out[url][1]
    return out, text


def test_anonymous_outputs_do_not_depend_on_restricted_details(served) -> None:
    real, disguised = served["real"], served["disguised"]
    points = _restricted_incidents(real["dir"])
    assert len(points) == 76  # the documented part of the real data
    moved = _restricted_incidents(disguised["dir"])
    assert len(moved) == 76 and not np.allclose(points.geometry.x, moved.geometry.x)
    urls = _urls(real["client"], points)
    assert len(urls) > 1500
    if served["backend"] == "postgis":
        # Raster tiles are the build's COG read by the same code whatever the store: the
        # embedded crawl covers them. A picture draws the rows ``frame`` selects, by the SQL
        # the items above go through: one picture per map is enough here.
        urls = [u for u in urls if not u.startswith("/tiles/risk_surface/")]
        pictures: set[str] = set()
        kept = []
        for u in urls:
            if ".png?bbox=" in u:
                if u.split("?")[0] in pictures:
                    continue
                pictures.add(u.split("?")[0])
            kept.append(u)
        urls = kept
    a, a_text = _crawl(real["client"], urls, real["build"].build_id)
    b, _ = _crawl(disguised["client"], urls, disguised["build"].build_id)
    differ = [u for u in urls if a[u] != b[u]]
    if differ:
        first = differ[0]
        x, y = a[first][1], b[first][1]
        at = next((i for i in range(min(len(x), len(y))) if x[i] != y[i]), min(len(x), len(y)))
        detail = (
            a[first][0],
            b[first][0],
            x[max(0, at - 120) : at + 120],
            y[max(0, at - 120) : at + 120],
        )
    assert not differ, (differ[:10], detail if differ else None)
    # ... and every restricted-only word and id is absent from all of it.
    found = _secrets_in(a_text.values())
    assert not found, found[:10]


def _secrets_in(texts: Any) -> list[str]:
    """The words and ids of restricted reports found in ``texts`` (only theirs: text a
    public report shares is public)."""
    texts = list(texts)
    source = read_text_csv(LAYERS / UCDP)
    hidden = source[_restricted_rows(source)]
    public_text = "\n".join(source[~_restricted_rows(source)].to_numpy().ravel().astype(str))
    words = {
        w
        for column in TEXT_COLUMNS
        if column in source
        for w in hidden[column]
        if len(w) >= 6 and w not in public_text
    }
    assert len(words) > 50
    ids = [(f"ucdp_ged_caf:{i}", f'"{i}"', f",{i},") for i in hidden["id"]]
    found = [w for w in words if any(w in text for text in texts)]
    found += [i[0] for i in ids if any(any(x in t for x in i) for t in texts)]
    return found


def test_anonymous_bundles_do_not_depend_on_restricted_details(twins) -> None:
    """The leak test on offline bundles: the anonymous bundle of every map is the same, file
    by file, from the real reports and from disguised ones (but for the build's id and
    clock), and no restricted word or id is in any of it; a bundle made for the analyst role
    holds the restricted reports and says so first."""
    real, disguised = twins["real"], twins["disguised"]
    maps = load_maps(real["maps"], definitions(real["maps"]))
    texts = []
    for map_id in maps:
        a, b = (
            gather(ApiSettings(build_dir=t["dir"], maps_file=t["maps"]), map_id, "fr")
            for t in (real, disguised)
        )
        assert set(a.files) == set(b.files), map_id
        for path, data in a.files.items():
            kind = "image/png" if path.endswith((".png", ".svg", ".ico")) else "text/plain"
            x = _normalised(data, kind, a.build_id)
            y = _normalised(b.files[path], kind, b.build_id)
            assert x == y, (map_id, path)
            texts.append(x)
        assert "offline-notice" not in a.files["index.html"].decode()
    found = _secrets_in(texts)
    assert not found, found[:10]
    # The analyst's bundle: every report of the map's area, and a warning on its first screen.
    settings = ApiSettings(build_dir=real["dir"], maps_file=real["maps"])
    public = gather(settings, "central-african-republic", "en")
    analyst = gather(settings, "central-african-republic", "en", Access.analyst)

    def incidents(bundle: Any) -> int:
        text = bundle.files["data/incidents.js"].decode()
        return len(
            json.loads(text.split('.collections["incidents"]=', 1)[1].rstrip(";"))["features"]
        )

    assert incidents(analyst) - incidents(public) == 76
    # ... drawn as they are, so not also as cells (the public's bundle has the cells).
    assert (
        b'.collections["incident_areas"]={"type":"FeatureCollection","features":[]}'
        in (analyst.files["data/incident_areas.js"])
    )
    assert b'"count":' in public.files["data/incident_areas.js"]
    page = analyst.files["index.html"].decode()
    assert 'class="offline-notice" role="alert"' in page and "restricted records" in page
    # Its legend has no line on reports shown only by their area; the public's has.
    only_by_area = "Reports shown only by their area"
    assert only_by_area not in page and only_by_area in public.files["index.html"].decode()
    assert "restricted records" in analyst.files["README.txt"].decode()


def test_no_anonymous_feature_stands_at_a_restricted_place(twins) -> None:
    real = twins["real"]
    client = real["client"]
    points = _restricted_incidents(real["dir"])
    public = load_layer(real["dir"], "incidents")
    public = public[public["sensitivity"] != "restricted"]
    public_xy = {
        (round(x, 5), round(y, 5))
        for x, y in zip(public.geometry.x, public.geometry.y, strict=True)
    }
    secret = {
        (round(x, 5), round(y, 5))
        for x, y in zip(points.geometry.x, points.geometry.y, strict=True)
    } - public_xy  # a place also named by a public report is public
    assert secret
    body = client.get("/collections/incidents/items?limit=10000").json()
    assert {f["geometry"]["type"] for f in body["features"]} == {"Point"}
    for f in body["features"]:
        x, y = f["geometry"]["coordinates"]
        assert (round(x, 5), round(y, 5)) not in secret, f["id"]
    assert body["numberMatched"] == len(public)
    # The restricted reports are their cells, in a collection of their own.
    cells = client.get("/collections/incident_areas/items?limit=10000").json()["features"]
    assert cells and all(f["geometry"]["type"] == "Polygon" for f in cells)
    assert all(f["properties"]["count"] >= 3 for f in cells)
    assert sum(f["properties"]["count"] for f in cells) <= len(points)


def test_restricted_ids_answer_404_like_any_unknown_id(twins) -> None:
    client = twins["real"]["client"]
    rid = _restricted_incidents(twins["real"]["dir"])["incident_id"].iloc[0]
    hidden = client.get(f"/collections/incidents/items/{rid}")
    unknown = client.get("/collections/incidents/items/ucdp_ged_caf:1")
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json()["description"].replace(rid, "X") == unknown.json()["description"].replace(
        "ucdp_ged_caf:1", "X"
    )


def test_evidence_names_no_restricted_incident(twins) -> None:
    real = twins["real"]
    rids = set(_restricted_incidents(real["dir"])["incident_id"])
    precise = load_layer(real["dir"], "community_risk")
    named = precise["incident_intensity_evidence"].map(lambda v: bool(set(v) & rids))
    assert named.sum() > 0  # restricted reports are among the evidence of some scores
    url = "/collections/community_risk/items?limit=10000&properties=community_id,score,"
    url += "incident_intensity_evidence,incident_intensity_evidence_withheld"
    shown = {f["id"]: f["properties"] for f in real["client"].get(url).json()["features"]}
    for cid in precise.loc[named, "community_id"]:
        p = shown[cid]
        assert not set(p["incident_intensity_evidence"]) & rids
        assert p["incident_intensity_evidence_withheld"] >= 1
        # The score itself stays: it is computed from the evidence as the public may know it.
        want = precise.set_index("community_id").loc[cid, "score"]
        assert p["score"] == pytest.approx(want)


def test_a_token_with_the_right_role_sees_restricted_rows(twins) -> None:
    real = twins["real"]
    analyst, viewer = new_token(), new_token()
    entries = (
        f"analyst:{file_line(analyst, Access.analyst).split()[0]}",
        f"viewer:{file_line(viewer, Access.viewer).split()[0]}",
    )
    client = TestClient(create_app(ApiSettings(build_dir=real["dir"], tokens=entries)))
    rid = _restricted_incidents(real["dir"])["incident_id"].iloc[0]
    url = f"/collections/incidents/items/{rid}"
    r = client.get(url, headers={"Authorization": f"Bearer {analyst}"})
    assert r.status_code == 200 and r.json()["properties"]["sensitivity"] == "restricted"
    assert r.headers["cache-control"].startswith("private")
    assert "Authorization" in r.headers["vary"]
    every = client.get(
        "/collections/incidents/items?limit=10000", headers={"Authorization": f"Bearer {analyst}"}
    ).json()
    assert every["numberMatched"] == 1848 + 2  # UCDP and two tailings failures
    assert client.get(url, headers={"Authorization": f"Bearer {viewer}"}).status_code == 404
    assert client.get(url).status_code == 404
    bad = client.get(url, headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401 and "not-a-token" not in bad.text
    assert bad.headers["www-authenticate"].startswith("Bearer")
    assert client.get(url, headers={"Authorization": "Basic abc"}).status_code == 401
    # The analyst's tiles and counts are not the public's: different ETags.
    tile = "/tiles/incidents/6/34/30.mvt"
    assert (
        client.get(tile, headers={"Authorization": f"Bearer {analyst}"}).headers["etag"]
        != client.get(tile).headers["etag"]
    )


def test_publication_delay_keeps_recent_restricted_rows_out(tmp_path) -> None:
    import datetime as dt

    layers = _layers_copy(tmp_path, disguise=False)
    settings = BuildSettings(
        build_dir=tmp_path / "build",
        catalog=layers / "sources.toml",
        surface_cell_m=QUICK_SURFACE_M,
        publication_delay_days=365,
    )
    # As if built a month after the newest report: a year of restricted reports held back.
    result = build(settings, today=dt.date(2023, 1, 30))
    record = result.catalog["publication"]
    incidents = load_layer(settings.build_dir, "incidents")
    restricted = incidents[incidents["sensitivity"] == "restricted"]
    recent = restricted["date"] > pd.Timestamp("2022-01-30")
    assert record["kinds"]["incidents"]["delayed"] == int(recent.sum()) > 0
    client = TestClient(create_app(ApiSettings(build_dir=settings.build_dir)))
    cells = client.get("/collections/incident_areas/items?limit=10000").json()["features"]
    old = restricted.loc[~recent]
    old_cells = pd.Series(
        [h3.latlng_to_cell(y, x, 5) for x, y in zip(old.geometry.x, old.geometry.y, strict=True)]
    ).value_counts()
    assert {f["properties"]["h3"]: f["properties"]["count"] for f in cells} == {
        c: int(n) for c, n in old_cells.items() if n >= 3
    }
    # Nor do they count in any score: the evidence the model read had none of them.
    scores = load_layer(settings.build_dir, "community_risk")
    named = set().union(*map(set, scores["incident_intensity_evidence"]))
    assert not named & set(restricted.loc[recent, "incident_id"])
    assert json.dumps(result.catalog["publication"]["as_of"]) == '"2023-01-30"'


def test_restricted_communities_are_shown_only_as_cells(tmp_path) -> None:
    """Monitors' villages: the same rule for communities (here the GeoNames places of Sierra
    Leone's Eastern Province, Kono's, marked restricted in a copy of the catalog)."""
    sierra_leone = ("geonames_sle_places", "worldpop_sle_2019", "ocha_sle_chiefdoms")
    layers = _layers_copy(tmp_path, disguise=False, keep=(*SMALL_SOURCES, *sierra_leone))
    catalog = (layers / "sources.toml").read_text()
    rule = (
        "[sources.geonames_sle_places.mapping]\n"
        'sensitivity = { template = "{country_code}|{admin1_code}", '
        'match = { "^SL\\\\|01$" = "restricted" } }\n'
    )
    (layers / "sources.toml").write_text(
        catalog.replace("[sources.geonames_sle_places.mapping]\n", rule, 1)
    )
    source = pd.read_csv(
        layers / "sources/geonames_sl_populated_places/geonames_SL_populated_places_2019-08-07.csv",
        dtype=str,
    )
    kept = source[source["feature_code"].isin(["PPL", "PPLA", "PPLC", "PPLL", "PPLX"])]
    eastern = int((kept["admin1_code"] == "01").sum())
    settings = BuildSettings(
        build_dir=tmp_path / "build",
        catalog=layers / "sources.toml",
        surface_cell_m=QUICK_SURFACE_M,
    )
    result = build(settings)
    assert result.catalog["publication"]["kinds"]["communities"]["restricted"] == eastern > 1000
    places = load_layer(settings.build_dir, "communities")
    hidden = places[places["sensitivity"] == "restricted"]
    client = TestClient(create_app(ApiSettings(build_dir=settings.build_dir)))
    for layer in ("communities", "community_risk"):
        body = client.get(f"/collections/{layer}/items?country=SLE&limit=10000").json()
        more = client.get(f"/collections/{layer}/items?country=SLE&limit=10000&offset=10000")
        ids = {f["id"] for f in body["features"] + more.json()["features"]}
        assert not ids & set(hidden["community_id"]), layer
        assert body["numberMatched"] == len(ids) == len(kept) - eastern  # none of them listed
        areas = {"communities": "community_areas", "community_risk": "community_risk_areas"}
        cells = client.get(f"/collections/{areas[layer]}/items?limit=10000").json()
        counts = [f["properties"]["count"] for f in cells["features"]]
        assert counts and min(counts) >= 3 and sum(counts) <= eastern, layer
    # Official units count only what the public may see.
    units = load_layer(settings.build_dir, "risk_units")
    chiefdoms = units[(units["country"] == "SLE") & (units["level"] == 3)]
    assert chiefdoms["communities"].sum() <= len(kept) - eastern
    scored = client.get("/collections/community_risk_areas/items").json()["features"]
    assert scored and all(f["properties"]["max_score"] is not None for f in scored)
    # Those who may see them find them where they are, with their scores.
    token = new_token()
    entry = (f"analyst:{file_line(token, Access.analyst).split()[0]}",)
    analyst = TestClient(create_app(ApiSettings(build_dir=settings.build_dir, tokens=entry)))
    one = hidden.iloc[0]
    got = analyst.get(
        f"/collections/community_risk/items/{one['community_id']}",
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    assert got["geometry"]["coordinates"] == pytest.approx([one.geometry.x, one.geometry.y])
    assert got["properties"]["score"] is not None
    # risk_hex at resolution 7, finer than their cells, does not count them.
    hexes = load_layer(settings.build_dir, "risk_hex")
    fine = hexes[(hexes["resolution"] == 7)].set_index("h3")["communities"].dropna()
    public = places[places["sensitivity"] != "restricted"]
    at7 = pd.Series([h3.latlng_to_cell(p.y, p.x, 7) for p in public.geometry]).value_counts()
    assert (fine == at7.reindex(fine.index)).all()


# ---- one geometry type per collection: restricted rows as cells of their own collection ----

#: The areas collections of the Central African build (``publication.AREAS``).
AREAS = {
    "incidents": "incident_areas",
    "communities": "community_areas",
    "concessions": "concession_areas",
    "mine_sites": "concession_areas",
    "community_risk": "community_risk_areas",
    "tailings_consequence": "tailings_consequence_areas",
    "concession_risk": "concession_risk_areas",
}


def _analyst(build_dir: Path) -> tuple[TestClient, dict[str, str]]:
    """A client of the build whose token has the analyst role, and its header."""
    token = new_token()
    entry = (f"analyst:{file_line(token, Access.analyst).split()[0]}",)
    client = TestClient(create_app(ApiSettings(build_dir=build_dir, tokens=entry)))
    return client, {"Authorization": f"Bearer {token}"}


# A Shapefile stores dates as text and cuts long text at 254 characters: said, not wrong.
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_incidents_are_points_for_every_caller_and_a_shapefile_holds_them(twins, tmp_path) -> None:
    """The incidents collection holds points only: its public rows for anonymous callers,
    every row for an analyst; the restricted reports' cells are polygons of their own
    collection. So each download is one layer of one geometry type, which a Shapefile (one
    geometry type per file) takes as it is."""
    real = twins["real"]
    analyst, token = _analyst(real["dir"])
    restricted = len(_restricted_incidents(real["dir"]))
    callers = {"anonymous": (real["client"], {}), "analyst": (analyst, token)}
    for name, (client, headers) in callers.items():
        r = client.get("/collections/incidents/items?limit=10000", headers=headers)
        body = r.json()
        assert {f["geometry"]["type"] for f in body["features"]} == {"Point"}, name
        every = 1850 if name == "analyst" else 1850 - restricted
        assert body["numberMatched"] == len(body["features"]) == every, name
        assert client.get("/collections/incidents", headers=headers).json()["geometryTypes"] == [
            "Point"
        ]
        for layer, content, kind in (
            ("incidents", r.content, "Point"),
            (
                "incident_areas",
                client.get(
                    "/collections/incident_areas/items?limit=10000", headers=headers
                ).content,
                "Polygon",
            ),
        ):
            frame = pyogrio.read_dataframe(io.BytesIO(content))
            shp = tmp_path / name / f"{layer}.shp"
            shp.parent.mkdir(exist_ok=True)
            pyogrio.write_dataframe(frame, shp, driver="ESRI Shapefile")
            info = pyogrio.read_info(shp)
            assert info["geometry_type"] == kind and info["features"] == len(frame) > 0, layer
    assert restricted == 76


def test_areas_are_the_same_for_anonymous_and_authorised_callers(twins) -> None:
    real = twins["real"]
    analyst, token = _analyst(real["dir"])
    anonymous = real["client"]
    listed = [c["id"] for c in anonymous.get("/collections").json()["collections"]]
    assert listed == [
        c["id"] for c in analyst.get("/collections", headers=token).json()["collections"]
    ]
    for layer, areas in AREAS.items():
        holders = [x for x in AREAS if AREAS[x] == areas]  # concessions, mine sites
        assert listed.index(areas) == max(map(listed.index, holders)) + 1  # beside its layers
        urls = [
            f"/collections/{areas}",
            f"/collections/{areas}/items?limit=10000",
            f"/collections/{areas}/items?f=csv",
            f"/collections/{areas}/items?f=parquet",
            f"/collections/{areas}/queryables",
            f"/collections/{areas}/schema",
            f"/tiles/{areas}/tilejson.json",
            f"/tiles/{areas}/6/34/30.mvt",
        ]
        for url in urls:
            a, b = anonymous.get(url), analyst.get(url, headers=token)
            assert a.status_code == b.status_code == 200, url
            assert a.content == b.content, url
        doc = anonymous.get(f"/collections/{areas}").json()
        assert doc["geometryTypes"] == ["Polygon"] and "restricted" in doc["description"]
        assert f"collections/{layer}" in {x["href"].split("/", 3)[-1] for x in doc["links"]}
        own = anonymous.get(f"/collections/{layer}").json()
        assert f"'{areas}'" in own["description"]
    cells = anonymous.get("/collections/incident_areas/items?limit=10000").json()
    assert cells["numberMatched"] == 5  # the cells holding at least 3 restricted reports
    assert sorted(cells["features"][0]["properties"]) == ["count", "h3", "resolution"]
    scored = anonymous.get("/collections/community_risk_areas/items").json()
    assert scored["numberMatched"] == 0  # no restricted community in this build


def test_areas_exist_in_a_build_without_restricted_rows(tmp_path, twins) -> None:
    """Whether an areas collection exists, and what it holds as columns, never says whether
    a build holds restricted rows: a build of the same sources with none restricted has the
    same collections, the areas empty."""
    layers = _layers_copy(tmp_path, disguise=False)
    catalog = layers / "sources.toml"
    text = catalog.read_text(encoding="utf-8")
    rule = next(line for line in text.splitlines() if line.startswith("sensitivity = {"))
    catalog.write_text(text.replace(rule + "\n", ""), encoding="utf-8")
    settings = BuildSettings(
        build_dir=tmp_path / "build", catalog=catalog, surface_cell_m=QUICK_SURFACE_M
    )
    result = build(settings)
    assert result.catalog["publication"]["kinds"] == {}  # nothing restricted
    assert not any("public" in meta for meta in result.catalog["layers"].values())
    plain = TestClient(create_app(ApiSettings(build_dir=settings.build_dir)))
    real = twins["real"]["client"]

    def ids(client: TestClient) -> list[str]:
        return [c["id"] for c in client.get("/collections").json()["collections"]]

    assert ids(plain) == ids(real)
    for areas in AREAS.values():
        doc = plain.get(f"/collections/{areas}").json()
        assert doc["count"] == 0 and doc["geometryTypes"] == ["Polygon"], areas
        assert plain.get(f"/collections/{areas}/items").json()["numberMatched"] == 0
        assert plain.get(f"/collections/{areas}/items?f=gpkg").status_code == 200

        def described(client: TestClient, name: str = areas) -> dict[str, Any]:
            props = client.get(f"/collections/{name}/schema").json()["properties"]
            return {k: v["type"] for k, v in props["properties"]["properties"].items()}

        assert described(plain) == described(real), areas
    every = plain.get("/collections/incidents/items?limit=10000").json()
    assert every["numberMatched"] == 1850
    assert {f["geometry"]["type"] for f in every["features"]} == {"Point"}
