"""Map pages in real headless Chromium, against a live server on the bundled build."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest
from fastapi.testclient import TestClient

from geo_service.api.app import create_app
from geo_service.settings import ApiSettings
from tests.api.live import live_server
from tests.conftest import ROOT, in_ci

CHROMIUM = Path("/usr/bin/chromium")
BASEMAP_HOST = "tile.openstreetmap.org"
SHOTS = ROOT / "test-artifacts" / "screenshots"
RISK_TILES = (
    "Array.from(document.querySelectorAll('img.leaflet-tile'))"
    ".filter(i => i.src.includes('/tiles/risk_surface/') && i.complete && i.naturalWidth > 0)"
    ".length"
)


@pytest.fixture(scope="module")
def client(built, build_dir) -> TestClient:
    return TestClient(create_app(ApiSettings(build_dir=build_dir)))


def test_page_loads_nothing_from_a_third_party_but_the_basemap(client) -> None:
    page = client.get("/maps/overview")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    urls = set(re.findall(r"https?://[^\"' )]+", page.text))
    outside = {u for u in urls if not u.startswith("http://testserver/")}
    assert outside == {f"https://{BASEMAP_HOST}/{{z}}/{{x}}/{{y}}.png"}
    for asset in re.findall(r"http://testserver(/assets/[^\"']+)", page.text):
        assert client.get(asset).status_code == 200, asset
    assert '<html lang="en">' in page.text
    assert "République centrafricaine" in client.get("/maps/central-african-republic?lang=fr").text
    assert client.get("/maps/nope").status_code == 404
    assert client.get("/maps/overview?lang=de").status_code == 400
    assert client.get("/assets/leaflet/../../pyproject.toml").status_code == 404
    assert client.get("/assets/leaflet/package.json").status_code == 404
    index = client.get("/maps")
    assert "/maps/overview" in index.text and "/maps/central-african-republic" in index.text
    previews = re.findall(r'<img src="http://testserver(/maps/[^"]+\.png[^"]*)"', index.text)
    assert len(previews) == 2  # a picture of each map
    preview = client.get(previews[0].replace("&amp;", "&"))
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/png"


@pytest.fixture(scope="module")
def url(built, build_dir) -> Iterator[str]:
    with live_server(build_dir) as u:
        yield u


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    if not CHROMIUM.exists():
        if in_ci():
            pytest.fail("Chromium is missing: 'make test' installs the Debian chromium package")
        pytest.skip("Chromium is not installed ('make test' installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


def test_map_page_draws_the_data_and_layers_toggle(url, browser) -> None:
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    errors: list[str] = []
    failed: list[str] = []

    def on_console(message) -> None:  # type: ignore[no-untyped-def]
        if message.type == "error" and BASEMAP_HOST not in message.location.get("url", ""):
            errors.append(f"{message.text} ({message.location.get('url')})")

    page.on("console", on_console)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.goto(f"{url}/maps/central-african-republic", wait_until="load")
    page.wait_for_function("Number(document.body.dataset.communities) > 0", timeout=30_000)
    page.wait_for_function(f"{RISK_TILES} > 4", timeout=30_000)
    # The offline basemap is drawn (the outside tiles cannot load here: no internet).
    page.wait_for_function("Number(document.body.dataset.basemap) > 100", timeout=30_000)
    drawn = int(page.evaluate("document.body.dataset.communities"))
    assert drawn > 100  # the Central African Republic's communities in view
    assert "communities" in page.inner_text("#community-status")
    assert "Incidents" in page.inner_text(".risk-legend")  # every visible layer has a legend
    # Every tile of the view in place (Leaflet keeps scaled tiles of the last zoom meanwhile).
    page.wait_for_function(
        "Array.from(document.querySelectorAll('img.leaflet-tile'))"
        ".every(i => i.complete) && !document.querySelector('.leaflet-zoom-anim')",
        timeout=30_000,
    )
    page.wait_for_timeout(500)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "central-african-republic.png"))

    # Turning the surface off in the layer control removes its tiles.
    page.get_by_label("Risk surface").uncheck()
    page.wait_for_function(f"{RISK_TILES} == 0", timeout=10_000)
    page.get_by_label("Risk surface").check()
    page.wait_for_function(f"{RISK_TILES} > 4", timeout=30_000)

    ours = [u for u in failed if BASEMAP_HOST not in u]
    assert not ours, ours
    assert not errors, errors
    page.close()


def test_language_by_parameter_then_accept_language(client) -> None:
    fr = client.get("/maps/overview", headers={"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"})
    assert '<html lang="fr">' in fr.text and "Surface de risque" in fr.text
    assert "très élevé" in fr.text and "sources et licences" in fr.text
    pt = client.get("/maps/overview?lang=pt", headers={"Accept-Language": "fr"})
    assert '<html lang="pt">' in pt.text and "Comunidades por classe de risco" in pt.text
    assert "Riscos da mineração de diamantes" in pt.text
    en = client.get("/maps/overview", headers={"Accept-Language": "de-DE"})
    assert '<html lang="en">' in en.text and "Risk surface" in en.text
    assert fr.headers["etag"] != en.headers["etag"] and "Accept-Language" in fr.headers["vary"]
    assert "<h1>Cartes</h1>" in client.get("/maps", headers={"Accept-Language": "fr"}).text


def test_every_catalog_has_every_string(client) -> None:
    from babel.messages.extract import extract_from_file
    from babel.messages.pofile import read_po

    from geo_service.maps.i18n import LOCALES

    for lang in ("fr", "pt"):
        with (LOCALES / lang / "LC_MESSAGES" / "messages.po").open("rb") as fh:
            catalog = read_po(fh)
        empty = [m.id for m in catalog if m.id and not m.string]
        assert not empty, (lang, empty)
        ids = {m.id for m in catalog if m.id}
        # Every literal string the pages translate is in the catalog.
        # (Calls inside f-strings are not extracted; page.py's plain calls are.)
        used = set()
        for module in ("geo_service/maps/page.py", "geo_service/api/routes/maps.py"):
            used |= {m[1] for m in extract_from_file("python", ROOT / module)}
        assert len(used) >= 4 and used <= ids, (lang, used - ids)


def test_oembed_follows_the_spec(client) -> None:
    page = client.get("/maps/overview?lang=fr")
    found = re.search(
        r'<link rel="alternate" type="application/json\+oembed" href="([^"]+)"', page.text
    )
    assert found  # discovery
    doc = client.get(found.group(1).replace("&amp;", "&")).json()
    assert doc["version"] == "1.0" and doc["type"] == "rich"
    assert doc["html"].startswith("<iframe") and "/embed/overview" in doc["html"]
    assert {"width", "height", "provider_name", "provider_url", "title"} <= set(doc)
    small = client.get(
        "/oembed",
        params={"url": "http://testserver/maps/overview?z=7", "maxwidth": 300, "maxheight": 150},
    ).json()
    assert small["width"] <= 300 and small["height"] <= 150 and "z=7" in small["html"]
    assert (
        client.get("/oembed", params={"url": "http://elsewhere.example/maps/overview"}).status_code
        == 404
    )
    assert client.get("/oembed", params={"url": "http://testserver/maps/nope"}).status_code == 404
    xml = client.get("/oembed", params={"url": "http://testserver/maps/overview", "format": "xml"})
    assert xml.status_code == 200 and xml.headers["content-type"].startswith("text/xml")
    root = ElementTree.fromstring(xml.content)
    assert root.tag == "oembed" and root.findtext("type") == "rich"
    assert root.findtext("html").startswith("<iframe")  # escaped in the XML, text once read
    bad = client.get("/oembed", params={"url": "http://testserver/maps/overview", "format": "x"})
    assert bad.status_code == 400 and "format" in bad.json()["description"]
    assert client.get("/maps/overview?layers=nope").status_code == 400
    assert client.get("/maps/overview?lat=100").status_code == 400


def _wait_drawn(page) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_function("Number(document.body.dataset.communities) > 0", timeout=30_000)


def test_share_link_reopens_the_same_view(url, browser) -> None:
    page = browser.new_page(viewport={"width": 900, "height": 600})
    page.goto(f"{url}/maps/overview?lang=pt&lat=5.5&lon=18.0&z=6&layers=community_risk")
    _wait_drawn(page)
    assert page.evaluate(RISK_TILES) == 0  # the surface is off in this link
    page.evaluate("window.riskMap.setView([7.25, 21.5], 7) && null")
    page.wait_for_function("location.search.includes('z=7')", timeout=10_000)
    shared = page.url
    assert "lang=pt" in shared and "lat=7.25" in shared and "layers=community_risk" in shared
    again = browser.new_page(viewport={"width": 900, "height": 600})
    again.goto(shared)
    _wait_drawn(again)
    centre = again.evaluate("[window.riskMap.getCenter().lat, window.riskMap.getCenter().lng]")
    assert centre == pytest.approx([7.25, 21.5], abs=1e-3)
    assert again.evaluate("window.riskMap.getZoom()") == 7
    assert again.evaluate(RISK_TILES) == 0
    assert again.evaluate("document.documentElement.lang") == "pt"
    # The embed button gives the iframe code of this view.
    again.get_by_role("button", name="Incorporar").click()
    code = again.input_value("#embed-code")
    assert code.startswith('<div style="position:relative') and "/embed/overview?" in code
    assert "lat=7.25" in code and "Uppsala" in code  # attribution travels with the embed
    page.close()
    again.close()


def test_embed_renders_inside_an_iframe_from_another_origin(url, browser, tmp_path) -> None:
    import http.server
    import threading

    host = tmp_path / "site"
    host.mkdir()
    (host / "index.html").write_text(
        f'<!doctype html><html><body><h1>A newspaper</h1><iframe id="m" '
        f'src="{url}/embed/central-african-republic?lang=fr" width="800" height="500">'
        "</iframe></body></html>"
    )
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(host))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
        frame = page.frame_locator("#m")
        frame.locator("#community-status").filter(has_text="communautés").wait_for(timeout=30_000)
        assert frame.locator("a.full-map").get_attribute("href").endswith("lang=fr")
        assert frame.locator(".embed-control").count() == 0
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "embed-in-another-site.png"))
        page.close()
    finally:
        server.shutdown()


def test_time_filter_changes_the_incident_count(url, browser, build_dir) -> None:
    from geo_service.store.files import load_layer

    incidents = load_layer(build_dir, "incidents")
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    page.goto(f"{url}/maps/central-african-republic?lang=en")
    page.wait_for_function("Number(document.body.dataset.incidents) > 0", timeout=30_000)
    everything = int(page.evaluate("document.body.dataset.incidents"))

    def set_years(first: int, last: int) -> int:
        page.evaluate(
            "([a, b]) => { const f = document.getElementById('incidents-from');"
            " const t = document.getElementById('incidents-to');"
            " t.value = b; f.value = a; f.dispatchEvent(new Event('input')); }",
            [first, last],
        )
        page.wait_for_function(
            f"location.search.includes('from={first}') && location.search.includes('to={last}')",
            timeout=10_000,
        )
        page.wait_for_function(
            f"document.getElementById('incidents-status').textContent.includes('{first}–{last}')",
            timeout=10_000,
        )
        return int(page.evaluate("document.body.dataset.incidents"))

    in_2013 = set_years(2013, 2013)
    years = incidents["date"].dt.year
    bounds = page.evaluate(
        "(() => { const b = window.riskMap.getBounds();"
        " return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()]; })()"
    )
    x, y = incidents.geometry.x, incidents.geometry.y
    visible = (x >= bounds[0]) & (x <= bounds[2]) & (y >= bounds[1]) & (y <= bounds[3])
    assert in_2013 == int((visible & (years == 2013)).sum()) > 0
    assert in_2013 < everything
    status = page.inner_text("#incidents-status")
    assert f"{in_2013} of {in_2013} incidents, 2013–2013" in status
    assert page.locator(".leaflet-control-zoom-fullscreen").count() == 1  # full screen
    page.screenshot(path=str(SHOTS / "incidents-2013.png"))
    page.close()


def test_offline_basemap_holds_land_lakes_and_rivers(client) -> None:
    r = client.get("/basemap.json", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
    assert int(r.headers.get("content-length", len(r.content))) < 250_000  # slow connections
    kinds = [f["properties"]["kind"] for f in r.json()["features"]]
    assert {"land", "lake", "river"} == set(kinds) and kinds.count("land") > 50
    assert "Natural Earth" in r.json()["attribution"]


def test_static_png_is_the_requested_size_and_shows_the_layers(client) -> None:
    import io

    import numpy as np
    from PIL import Image

    r = client.get("/maps/central-african-republic.png?bbox=14,2,28,11&width=1200&height=800")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(r.content))
    assert image.size == (1200, 800)
    rgb = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(int)
    assert len(np.unique(rgb, axis=0)) > 500  # not blank: basemap, surface, dots, text
    # The surface's dark blue (cividis at low scores, at 75 %) covers part of the picture,
    # and the community classes' colours are drawn.
    dark_blue = (rgb[:, 2] > rgb[:, 0] + 40) & (rgb[:, 0] < 90)
    assert dark_blue.mean() > 0.05
    yellow = (rgb[:, 0] > 230) & (rgb[:, 1] > 210) & (rgb[:, 2] < 80)
    assert yellow.sum() > 100
    small = client.get("/maps/overview.png?width=360&height=240&lang=fr&layers=community_risk")
    assert Image.open(io.BytesIO(small.content)).size == (360, 240)
    assert client.get("/maps/overview.png?bbox=10,0,5,5").status_code == 400
    assert client.get("/maps/overview.png?width=5000").status_code == 400
    assert client.get("/maps/overview.png?layers=nope").status_code == 400
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "static-car.png").write_bytes(r.content)


def test_basemap_is_configurable(built, build_dir) -> None:
    other = TestClient(create_app(ApiSettings(build_dir=build_dir, basemap="OpenTopoMap")))
    page = other.get("/maps/overview").text
    assert "tile.opentopomap.org" in page and BASEMAP_HOST not in page
    assert "OpenTopoMap" in page  # its attribution


def test_every_map_draws_without_errors(url, browser, client) -> None:
    for map_id in ("overview", "central-african-republic"):
        page = browser.new_page(viewport={"width": 360, "height": 640})  # a phone
        errors: list[str] = []
        page.on(
            "console",
            lambda m, errors=errors: (
                errors.append(m.text)
                if m.type == "error" and BASEMAP_HOST not in m.location.get("url", "")
                else None
            ),
        )
        page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
        page.goto(f"{url}/maps/{map_id}")
        page.wait_for_function("Number(document.body.dataset.communities) > 0", timeout=30_000)
        page.wait_for_function("Number(document.body.dataset.basemap) > 0", timeout=30_000)
        if map_id == "overview":  # 12,095 communities in view: drawn as H3 aggregates
            page.wait_for_function("Number(document.body.dataset.grouped) > 50", timeout=30_000)
            assert "hexagons" in page.inner_text("#community-status")
        # Every control is a real, focusable element (keyboard users reach them with Tab).
        for selector in (".leaflet-control-zoom-in", ".leaflet-control-layers"):
            assert page.locator(selector).count() == 1
        page.screenshot(path=str(SHOTS / f"{map_id}-phone.png"))
        assert not errors, (map_id, errors)
        page.close()
