"""Map pages in real headless Chromium, against a live server on the bundled build.

Every map of ``layers/maps.toml`` is opened at 1280 and 360 px wide and must draw each of its
layers from the service with no console error and no failed request but the outside
basemap's (the browser resolves no host but this one, ``tests/chromium.py``: the offline
basemap shows). Popups are opened with the mouse and must show the score, each factor's part
and the evidence behind it, by name, date, source and link; the keyboard must reach every
control; panels must not cover each other.
Screenshots land in ``test-artifacts/screenshots``.

The pages carry a strict Content-Security-Policy (no ``eval``), so the tests wait by polling
``page.evaluate`` rather than with ``wait_for_function``, which evaluates strings.
"""

from __future__ import annotations

import ast
import html
import io
import math
import re
import shutil
import time
import tomllib
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

import pytest
import shapely
from fastapi.testclient import TestClient
from PIL import Image
from shapely.geometry import Point

from geo_service.api.app import create_app
from geo_service.maps.definitions import load_maps
from geo_service.maps.layers import load_layers
from geo_service.settings import ApiSettings
from tests.api.live import live_server
from tests.conftest import ROOT

BASEMAP_HOST = "tile.openstreetmap.org"
SHOTS = ROOT / "test-artifacts" / "screenshots"
MAPS = load_maps(ROOT / "layers" / "maps.toml")
RISK_TILES = (
    "Array.from(document.querySelectorAll('img.leaflet-tile'))"
    ".filter(i => i.src.includes('/tiles/risk_surface/') && i.complete && i.naturalWidth > 0)"
    ".length"
)
OUTSIDE_CREDIT_GONE = (
    "!document.querySelector('.leaflet-control-attribution').innerText.includes('OpenStreetMap')"
)
DRAWN = "window.RiskMap && window.riskMap ? RiskMap.drawn(window.riskMap) : {}"
# The dot of a layer farthest from every other symbol in view (kept as window.tapped), and
# where it is on the page.
LONE_DOT = """(layer) => { const m = window.riskMap; const size = m.getSize();
  const all = []; m.eachLayer(l => { if (l.options && l.options.riskLayer && l.getLatLng) {
    const p = m.latLngToContainerPoint(l.getLatLng());
    if (p.x > 20 && p.y > 20 && p.x < size.x - 20 && p.y < size.y - 20) all.push([l, p]); } });
  let best = null; let room = -1;
  const r = m.getContainer().getBoundingClientRect();
  const top = (p) => document.elementFromPoint(p.x + r.left, p.y + r.top);
  all.forEach(([l, p]) => { if (l.options.riskLayer !== layer || !l._radius) return;
    if (!top(p) || top(p).tagName !== "CANVAS") return;  // under a symbol or a panel
    const near = Math.min(...all.filter(o => o[0] !== l).map(o => o[1].distanceTo(p)));
    if (near > room) { best = [l, p]; room = near; } });
  if (!best) return null;
  window.tapped = best[0];
  return [best[1].x + r.left, best[1].y + r.top, room]; }"""
# Every marker's symbol (sites, dams, groups of incidents): how many, and those whose centre is
# not where their feature is.
MISPLACED_ICONS = """() => { const m = window.riskMap; const r = m.getContainer().getBoundingClientRect();
  const out = {icons: 0, misplaced: []};
  m.eachLayer(l => { if (!l._icon || !l.options.riskLayer) return;
    const p = m.latLngToContainerPoint(l.getLatLng()); const b = l._icon.getBoundingClientRect();
    const dx = (b.left + b.right) / 2 - r.left - p.x; const dy = (b.top + b.bottom) / 2 - r.top - p.y;
    out.icons += 1;
    if (Math.hypot(dx, dy) > 1) out.misplaced.push([l._icon.className, Math.round(dx), Math.round(dy)]); });
  return out; }"""


# ---- fixtures and helpers ------------------------------------------------------------------


class Watched:
    """A page, and what went wrong in it other than the outside basemap."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        self.failed: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)

    def _console(self, message: Any) -> None:
        where = message.location.get("url", "")
        if message.type == "error" and BASEMAP_HOST not in where:
            self.errors.append(f"{message.text} ({where})")

    def _failed(self, request: Any) -> None:
        if BASEMAP_HOST not in request.url:
            self.failed.append(request.url)

    def _response(self, response: Any) -> None:
        if response.status >= 400 and BASEMAP_HOST not in response.url:
            self.failed.append(f"{response.status} {response.url}")

    def clean(self) -> None:
        assert not self.errors, self.errors
        assert not self.failed, self.failed


def open_map(
    browser: Any,
    address: str,
    width: int = 1280,
    height: int = 800,
    accept_language: str | None = None,
) -> Watched:
    """A fresh context (empty cache) on ``address``, waited until every layer is drawn."""
    headers = {"Accept-Language": accept_language} if accept_language else {}
    context = browser.new_context(
        viewport={"width": width, "height": height}, extra_http_headers=headers
    )
    watched = Watched(context.new_page())
    watched.page.goto(address)
    wait(watched.page, "document.body && document.body.dataset.drawn === '1'")
    return watched


def wait(page: Any, expression: str, timeout: float = 30.0) -> Any:
    """Poll a JS expression until it is truthy (CSP-safe: no string is eval'ed by the page)."""
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(
            f"(() => {{ try {{ return {expression}; }} catch (e) {{ return null; }} }})()"
        )
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        time.sleep(0.1)


def settle(page: Any) -> None:
    """Every tile of the view in place (Leaflet keeps scaled tiles of the last zoom)."""
    wait(
        page,
        "Array.from(document.querySelectorAll('img.leaflet-tile')).every(i => i.complete)"
        " && !document.querySelector('.leaflet-zoom-anim')",
    )
    page.wait_for_timeout(300)


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def click_feature(page: Any, layer: str, name: str) -> None:
    """Click (with the mouse) the drawn feature of ``layer`` named ``name``."""
    xy = page.evaluate(
        """([layer, name]) => { const m = window.riskMap; let hit = null;
        m.eachLayer(l => { if (!hit && l.options && l.options.riskLayer === layer && l.feature
          && l.feature.properties.name === name && l.getLatLng) { hit = l; } });
        if (!hit) { return null; }
        const p = m.latLngToContainerPoint(hit.getLatLng());
        const r = m.getContainer().getBoundingClientRect();
        return [p.x + r.left, p.y + r.top]; }""",
        [layer, name],
    )
    assert xy, f"{name} is not drawn in {layer}"
    page.mouse.click(xy[0], xy[1])


def popup(page: Any, done: str) -> str:
    """The text of the open popup once ``done`` (a CSS selector inside it) is there and
    nothing is loading."""
    popup = page.locator(".leaflet-popup")
    popup.wait_for(timeout=15_000)
    wait(
        page,
        f"document.querySelector('.leaflet-popup {done}') && !document.querySelector("
        "'.leaflet-popup').innerText.match(/Loading|Chargement|Carregando/)",
        timeout=20,
    )
    return popup.inner_text()


def _config(page: str) -> dict[str, Any]:
    """The settings a map page hands its script."""
    import json

    found = re.search(r"config: (\{.*?\}), layers: \{", page, re.DOTALL)
    assert found, "no config in the page"
    return json.loads(found.group(1))


def feature(client: TestClient, layer: str, fid: str) -> dict[str, Any]:
    r = client.get(f"/collections/{layer}/items/{fid}")
    assert r.status_code == 200, (layer, fid)
    return r.json()["properties"]


def community(client: TestClient, name: str, country: str) -> tuple[str, dict[str, Any]]:
    """A community of the public view by name: its id and properties."""
    fc = client.get(
        "/collections/community_risk/items", params={"name": name, "country": country}
    ).json()
    assert fc["numberMatched"] == 1, (name, fc["numberMatched"])
    f = fc["features"][0]
    return f["id"], f["properties"]


# ---- the pages as HTML ---------------------------------------------------------------------


def test_page_loads_nothing_from_a_third_party_but_the_basemap(client) -> None:
    page = client.get("/maps/overview")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    urls = set(re.findall(r"(?:src|href)=\"(https?://[^\"]+)\"", page.text))
    outside = {u for u in urls if not u.startswith("http://testserver/")}
    assert outside == set(), outside  # the basemap's template is in the script, not a src
    templates = set(re.findall(r"https?://[^\"' )]*\{z\}[^\"' )]*", page.text))
    templates = {t for t in templates if not t.startswith("http://testserver/")}
    assert templates == {f"https://{BASEMAP_HOST}/{{z}}/{{x}}/{{y}}.png"}
    assets = re.findall(r"http://testserver(/assets/[^\"']+)", page.text)
    assert any("/js/main.js" in a for a in assets) and any("riskmap.css" in a for a in assets)
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
    # The script's modules: every one the entry imports is preloaded, and served as
    # JavaScript; nothing outside them is.
    modules = sorted(p.name for p in (ROOT / "geo_service/maps/static/js").glob("*.js"))
    preloaded = re.findall(
        r'rel="modulepreload" href="http://testserver(/assets/[^"]+)"', page.text
    )
    assert sorted(a.rsplit("/", 1)[1] for a in preloaded) == modules
    for asset in preloaded:
        r = client.get(asset)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    base = preloaded[0].rsplit("/", 1)[0]
    for name in ("main.py", "%2e%2e%2fmain.js", "nope.js"):
        assert client.get(f"{base}/{name}").status_code == 404, name
    assert '<html lang="en">' in page.text
    assert "République centrafricaine" in client.get("/maps/central-african-republic?lang=fr").text
    assert client.get("/maps/nope").status_code == 404
    # A language we do not speak gives English, a regional tag its language, whatever the
    # browser asks; the page never echoes the value it was given.
    german = client.get("/maps/overview?lang=de", headers={"accept-language": "fr"})
    assert german.status_code == 200 and '<html lang="en">' in german.text
    odd = client.get("/maps?lang=%3Cscript%3E")
    assert odd.status_code == 200 and '<html lang="en">' in odd.text and "<script>" not in odd.text
    assert '<html lang="fr">' in client.get("/maps/overview?lang=fr-CA").text
    assert '<html lang="pt">' in client.get("/maps/overview?lang=pt_BR").text
    for header in ("a", "footprint, fr;q=0.5", "x-y;q=abc"):  # tags Babel does not know
        page = client.get("/maps/overview", headers={"accept-language": header})
        assert page.status_code == 200, header
        assert f'<html lang="{"fr" if "fr" in header else "en"}">' in page.text, header
    assert client.get("/assets/leaflet/../../pyproject.toml").status_code == 404
    assert client.get("/assets/leaflet/package.json").status_code == 404
    assert client.get("/assets/riskmap/../page.py").status_code == 404
    index = client.get("/maps")
    previews = re.findall(r'<img src="http://testserver(/maps/[^"]+\.png[^"]*)"', index.text)
    assert len(previews) == len(MAPS) >= 5  # a picture of each map
    for map_id in MAPS:
        assert f"/maps/{map_id}?lang=en" in index.text
    preview = client.get(html.unescape(previews[0]))
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/png"


def test_pinch_zoom_is_allowed(client) -> None:
    for path in ("/maps/overview", "/embed/overview", "/maps", "/maps/overview/sources"):
        viewports = re.findall(r'<meta name="viewport" content="([^"]+)"', client.get(path).text)
        assert viewports == ["width=device-width, initial-scale=1"], (path, viewports)


class _Head(HTMLParser):
    """The title, the description and the oEmbed link's title of a page, as text."""

    def __init__(self) -> None:
        super().__init__()
        self.title = ""
        self.description = ""
        self.oembed_title = ""
        self._in_title = False
        self._in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self._in_body = self._in_body or tag == "body"  # an SVG's titles are not the page's
        self._in_title = tag == "title" and not self._in_body
        if tag == "meta" and a.get("name") == "description":
            self.description = a.get("content") or ""
        if tag == "link" and a.get("type") == "application/json+oembed":
            self.oembed_title = a.get("title") or ""

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False


def test_titles_and_descriptions_read_as_written(client) -> None:
    """No ``\\u00e9`` escapes: a French title is the French title, accents and all."""
    for map_id, definition in MAPS.items():
        for lang in ("en", "fr", "pt"):
            for path in (f"/maps/{map_id}", f"/embed/{map_id}"):
                text = client.get(path, params={"lang": lang}).text
                head = _Head()
                head.feed(text)
                assert head.title == definition.title.get(lang), (path, lang, head.title)
                assert head.oembed_title == definition.title.get(lang)
                assert head.description == definition.description.get(lang)
                assert "\\u00" not in text.split("</head>")[0], (path, lang)
    fr = client.get("/maps/central-african-republic?lang=fr").text
    # French sets a no-break space before its colon.
    assert "<title>République centrafricaine\u00a0: communautés, mines et violences</title>" in fr


def test_language_by_parameter_then_accept_language(client) -> None:
    fr = client.get("/maps/overview", headers={"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"})
    assert '<html lang="fr">' in fr.text and "Surface de risque" in fr.text
    assert "très élevé" in fr.text and "sources et licences" in fr.text
    assert "Zoom avant" in fr.text and "Zoom in" not in fr.text
    pt = client.get("/maps/overview?lang=pt", headers={"Accept-Language": "fr"})
    assert '<html lang="pt">' in pt.text and "Pontuação de risco, de 0 a 100" in pt.text
    assert "Riscos da mineração de diamantes" in pt.text
    en = client.get("/maps/overview", headers={"Accept-Language": "de-DE"})
    assert '<html lang="en">' in en.text and "Risk surface" in en.text
    assert fr.headers["etag"] != en.headers["etag"] and "Accept-Language" in fr.headers["vary"]
    assert "<h1>Cartes</h1>" in client.get("/maps", headers={"Accept-Language": "fr"}).text
    # The sources page is in the page's language too, the publishers' words as published.
    sources = client.get("/maps/central-african-republic/sources?lang=fr")
    assert sources.status_code == 200 and '<html lang="fr">' in sources.text
    assert "Sources et licences" in sources.text and "Éditeur" in sources.text
    assert "Uppsala Conflict Data Program" in sources.text
    assert "République centrafricaine" in sources.text  # the countries covered, in French
    assert "/maps/central-african-republic?lang=fr" in sources.text  # back to the same map
    page = client.get("/maps/central-african-republic?lang=pt").text
    assert "/maps/central-african-republic/sources?lang=pt" in page  # the credit's link


#: Calls that mark a text for the catalogs, and how many of their first arguments are texts.
MARKERS = {"_": 1, "N_": 1, "ngettext": 2, "plural": 2}
TRANSLATED = (
    "geo_service/maps/page.py",
    "geo_service/api/routes/maps.py",
    "geo_service/api/routes/features.py",
    "geo_service/render/record.py",
    "geo_service/bundle/contents.py",
)


def _marked(path: Path) -> tuple[set[tuple[str, ...]], int]:
    """Every literal text a module marks, and how many sit inside f-strings (read with the
    ``ast`` module, which sees calls inside f-strings where Babel's extractor does not)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    in_fstrings = {
        id(node) for js in ast.walk(tree) if isinstance(js, ast.JoinedStr) for node in ast.walk(js)
    }
    found: set[tuple[str, ...]] = set()
    inside = 0
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        n = MARKERS.get(node.func.id)
        if n is None:
            continue
        args = node.args[:n]
        if len(args) == n and all(
            isinstance(a, ast.Constant) and isinstance(a.value, str) for a in args
        ):
            found.add(tuple(a.value for a in args))
            inside += id(node) in in_fstrings
    return found, inside


def _in_templates() -> set[tuple[str, ...]]:
    """Every text the page templates translate (``_()``, ``ngettext()`` and ``{% trans %}``
    blocks), read by Jinja2's extractor for Babel with the options the pages are made with."""
    from jinja2.ext import babel_extract

    from geo_service.render.templates import OPTIONS, TEMPLATES

    found: set[tuple[str, ...]] = set()
    for path in sorted(TEMPLATES.rglob("*.html")):
        with path.open("rb") as fh:
            for _line, _function, message, _comments in babel_extract(
                fh, ("_", "gettext", "ngettext"), [], OPTIONS
            ):
                texts = (message,) if isinstance(message, str) else message
                found.add(tuple(t for t in texts if t is not None))
    return found


def test_every_catalog_has_every_string() -> None:
    from babel.messages.pofile import read_po

    from geo_service.maps.i18n import LOCALES

    used: set[tuple[str, ...]] = set()
    inside = 0
    marked = {}
    for module in TRANSLATED:
        marked[module], n = _marked(ROOT / module)
        used |= marked[module]
        inside += n
    assert len(used) > 100 and inside > 0  # f-strings' calls are seen
    assert ("sources and licences",) in used and ("Evidence up to {date}",) in used
    templates = _in_templates()
    # The texts of the templates and records are written with French typography's
    # non-breaking space before : ; ? and ! (no line starts with one of them).
    record = marked["geo_service/render/record.py"]
    typeset = templates | (
        record - marked["geo_service/maps/page.py"] - marked["geo_service/api/routes/maps.py"]
    )
    assert ("Sources and licences",) in templates and ("Language",) in templates
    assert ("%(num)s feature matches.", "%(num)s features match.") in templates  # {% trans %}
    used |= templates
    for lang in ("fr", "pt"):
        with (LOCALES / lang / "LC_MESSAGES" / "messages.po").open("rb") as fh:
            catalog = read_po(fh, locale=lang)
        entries = {m.id if isinstance(m.id, str) else m.id[0]: m for m in catalog if m.id}
        missing = sorted(u[0] for u in used if u[0] not in entries)
        assert not missing, (lang, missing)
        stale = sorted(set(entries) - {u[0] for u in used})
        assert not stale, (lang, stale)  # a translation nothing shows
        for key in used:
            message = entries[key[0]]
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            assert all(strings), (lang, key)
            if len(key) == 2:
                assert isinstance(message.id, tuple) and message.id[1] == key[1], (lang, key)
            # Every placeholder of the English text is in the translation: {name} for the
            # pages made in Python, %(name)s for the templates.
            for s in strings:
                for pattern in (r"\{\w+\}", r"%\(\w+\)s"):
                    wanted = set(re.findall(pattern, key[-1]))
                    assert wanted <= set(re.findall(pattern, s)), (lang, key, s)
            if lang == "fr" and key in typeset:
                for s in strings:
                    assert not re.search(r"[^\u00a0\u202f][:;?!](\s|$)", s), (key, s)


def test_oembed_follows_the_spec(client) -> None:
    page = client.get("/maps/overview?lang=fr")
    found = re.search(
        r'<link rel="alternate" type="application/json\+oembed" href="([^"]+)"', page.text
    )
    assert found  # discovery
    doc = client.get(html.unescape(found.group(1))).json()
    assert doc["version"] == "1.0" and doc["type"] == "rich"
    assert "<iframe" in doc["html"] and "/embed/overview" in doc["html"]
    assert "lang=fr" in doc["html"]  # the embed speaks the page's language
    # Responsive: as wide as its column up to its width, in proportion, never below 240 px;
    # it says how recent its evidence is, and a picture of it stands in where frames cannot.
    assert "width:100%" in doc["html"] and "min-height:240px" in doc["html"]
    assert "décembre 2022" in doc["html"]
    thumb = client.get(doc["thumbnail_url"].replace("http://testserver", ""))
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/png"
    assert (doc["thumbnail_width"], doc["thumbnail_height"]) == (600, 400)
    # A shared view travels as a box, so every frame fits it; the page's discovery link
    # keeps the view it was opened with.
    shared = client.get("/maps/overview?lat=7.25&lon=21.5&z=7&layers=community_risk&lang=fr")
    link = html.unescape(
        re.search(r'type="application/json\+oembed" href="([^"]+)"', shared.text).group(1)
    )
    assert "lat%3D7.25" in link and "layers%3Dcommunity_risk" in link
    boxed = client.get(link).json()["html"]
    assert "bbox=" in boxed and "lat=" not in boxed and "layers=community_risk" in boxed
    assert doc["title"] == MAPS["overview"].title.get("fr")  # in French typography
    assert {"width", "height", "provider_name", "provider_url", "title"} <= set(doc)
    small = client.get(
        "/oembed",
        params={"url": "http://testserver/maps/overview?z=7", "maxwidth": 300, "maxheight": 150},
        headers={"Accept-Language": "pt"},
    ).json()
    assert small["width"] <= 300 and small["height"] <= 240 and "bbox=" in small["html"]
    assert "lang=pt" in small["html"]
    assert (
        client.get("/oembed", params={"url": "http://elsewhere.example/maps/overview"}).status_code
        == 404
    )
    assert client.get("/oembed", params={"url": "http://testserver/maps/nope"}).status_code == 404
    xml = client.get("/oembed", params={"url": "http://testserver/maps/overview", "format": "xml"})
    assert xml.status_code == 200 and xml.headers["content-type"].startswith("text/xml")
    root = ElementTree.fromstring(xml.content)
    assert root.tag == "oembed" and root.findtext("type") == "rich"
    assert root.findtext("html").startswith("<div")  # escaped in the XML, text once read
    # The same map shared under another name of this server (RISKMAP_HOST_NAMES).
    named = TestClient(
        create_app(
            ApiSettings(build_dir=client.app.state.settings.build_dir, host_names=("maps.example",))
        )
    )
    other = named.get("/oembed", params={"url": "https://maps.example/maps/drc-kasai?lang=pt"})
    assert other.status_code == 200 and "/embed/drc-kasai?" in other.json()["html"]
    assert "lang=pt" in other.json()["html"]
    assert client.get("/oembed", params={"url": "https://maps.example/maps/x"}).status_code == 404
    bad = client.get("/oembed", params={"url": "http://testserver/maps/overview", "format": "x"})
    # oEmbed 1.0 §2.3.4: a format the provider does not give is 501 Not Implemented.
    assert bad.status_code == 501 and "format" in bad.json()["description"]
    assert client.get("/maps/overview?layers=nope").status_code == 400
    assert client.get("/maps/overview?lat=100").status_code == 400
    assert client.get("/maps/central-african-republic?from=x").status_code == 400


# ---- the map definitions --------------------------------------------------------------------


def test_every_map_shows_where_the_bundled_data_has_evidence(built, build_dir) -> None:
    """Each focus region's first view holds what its map lists: scored communities, and the
    mine sites, dams and incidents it draws."""
    from geo_service.store.files import load_layer

    assert {"drc-kasai", "sierra-leone-kono", "brazil-minas-gerais"} <= set(MAPS)
    wanted = {
        "community_risk": "community_risk",
        "concessions": "concessions",
        "mine_sites": "mine_sites",
        "tailings_consequence": "tailings_consequence",
        "incidents": "incidents",
    }
    frames = {layer: load_layer(build_dir, layer) for layer in wanted}
    for map_id, definition in MAPS.items():
        assert definition.bounds is not None, map_id
        west, south, east, north = definition.bounds
        for layer in definition.layers:
            if layer not in wanted:
                continue
            inside = frames[layer].cx[west:east, south:north]
            assert len(inside) > 0, (map_id, layer)
            if layer == "community_risk":
                assert inside["score"].notna().sum() >= 3, map_id
        assert definition.legend is not None  # each map says what its evidence leaves out
    minas = frames["tailings_consequence"].cx[-44.9:-42.9, -20.75:-19.3]
    assert len(minas) > 50 and (minas["indicative_consequence_class"] == "Extreme").any()


def test_map_definitions_are_checked(tmp_path) -> None:
    from geo_service.errors import CatalogError

    base = (
        '[m]\nbounds = [1, 1, 2, 2]\nlayers = ["community_risk"]\n'
        '[m.title]\nen = "a"\nfr = "b"\npt = "c"\n[m.description]\nen = "a"\nfr = "b"\npt = "c"\n'
    )
    path = tmp_path / "maps.toml"
    path.write_text(base, encoding="utf-8")
    layers = load_layers(ROOT / "layers" / "layers.toml")
    default = layers["community_risk"].popup
    assert load_maps(path, layers)["m"].popup_fields("community_risk", default) == default
    for bad, word in (
        (base.replace('["community_risk"]', '["nope"]'), "nope"),
        (base.replace("bounds = [1, 1, 2, 2]", "bounds = [2, 1, 1, 2]"), "west < east"),
        (base.replace("bounds = [1, 1, 2, 2]\n", ""), "centre and a zoom"),
        (base + '[m.popup]\ncommunity_risk = ["wealth"]\n', "wealth"),
        (base.replace("[m.title]", 'maps = ["elsewhere"]\n[m.title]'), "maps"),
        (base + '[m.popup]\nincidents = ["type"]\n', "does not draw"),
        (base.replace("[m.title]", 'growth = "juina_roosevelt"\n[m.title]'), "concessions"),
    ):
        path.write_text(bad, encoding="utf-8")
        with pytest.raises(CatalogError, match=word):
            load_maps(path, layers)
    # A layer definition at fault is named with its field, the file beside the maps.
    wrong = tmp_path / "layers.toml"
    wrong.write_text(
        '[dots]\ncolour = "red"\n[dots.name]\nen = "a"\nfr = "b"\npt = "c"\n', encoding="utf-8"
    )
    with pytest.raises(CatalogError, match=r"layer 'dots', field 'colour'.*#rrggbb"):
        load_layers(wrong)
    with pytest.raises(CatalogError, match="layers.toml"):
        load_maps(path)  # its layers.toml is the faulty one


def test_the_juina_map_charts_the_scars_added_each_year(client, built) -> None:
    """The mine sites' legend of the Juína map charts the hectares of mining scars added per
    year in the Juína / Roosevelt box, as the build recorded them, in every language."""
    risk = tomllib.loads((ROOT / "layers" / "risk.toml").read_text(encoding="utf-8"))
    areas = risk["concession_risk"]["growth_areas"]
    for definition in MAPS.values():
        assert definition.growth is None or definition.growth in areas, definition.id
    growth = built.catalog["risk"]["concession_risk"]["footprint_growth"]
    recorded = {
        int(year): row["area_ha"]
        for record in growth.values()
        for year, row in record["areas"]["juina_roosevelt"]["by_year"].items()
    }
    assert sorted(recorded) == list(range(2018, 2026))
    for lang, first in (("en", "by 2018"), ("fr", "jusqu'en 2018"), ("pt", "até 2018")):
        page = client.get("/maps/brazil-juina", params={"lang": lang}).text
        figure = page.split('<figure class="growth">')[1].split("</figure>")[0]
        cells = re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td></tr>", figure)
        assert [html.unescape(c[0]) for c in cells] == [first, *map(str, range(2019, 2026))]
        shown = [float(re.sub(r"[\s\u202f\u00a0.,]", "", c[1])) for c in cells]
        assert shown == [round(recorded[y]) for y in sorted(recorded)], (lang, shown)
        assert len(re.findall("<rect ", figure)) == len(recorded)
    # Other maps have no chart.
    assert '<figure class="growth">' not in client.get("/maps/sierra-leone-kono").text


def test_colours_mean_one_thing_each() -> None:
    """Community classes are the surface's colours at their class's middle (one scale); no
    data and the dams' colours are nowhere on that scale."""
    from geo_service.render import png

    layers = load_layers(ROOT / "layers" / "layers.toml")
    classes = layers["community_risk"].classes.values
    other = layers["community_risk"].other

    def rgb(hex_colour: str) -> tuple[int, int, int]:
        return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]

    def far(a: tuple[int, ...], b: tuple[int, ...]) -> float:
        return sum((x - y) ** 2 for x, y in zip(a, b, strict=True)) ** 0.5

    ramp = [png.colormap()[i][:3] for i in range(256)]
    for i, c in enumerate(classes):
        middle = ramp[round((i + 0.5) / len(classes) * 255)]
        assert far(rgb(c.colour), middle) < 3, c.value
    # Light to dark in the order of the scale, so the classes read in greyscale.
    lightness = [sum(rgb(c.colour)) for c in classes]
    assert lightness == sorted(lightness)
    assert min(far(rgb(other.colour), c) for c in ramp) > 60
    for c in layers["tailings_consequence"].classes.values:
        assert min(far(rgb(c.colour), r) for r in ramp) > 40, c.value


# ---- every map in the browser -----------------------------------------------------------------


@pytest.mark.slow
def test_every_map_draws_each_layer_without_errors(url, browser) -> None:
    languages = ["en", "fr", "pt"]  # each language at each width, across the maps
    for i, (map_id, definition) in enumerate(MAPS.items()):
        wide, phone = languages[i % 3], languages[(i + 1) % 3]
        for width, height, lang in ((1280, 800, wide), (360, 640, phone)):
            watched = open_map(browser, f"{url}/maps/{map_id}?lang={lang}", width, height)
            page = watched.page
            wait(page, "Number(document.body.dataset.basemap) > 100")
            drawn = page.evaluate(DRAWN)
            zoom = page.evaluate("window.riskMap.getZoom()")
            styles = load_layers(ROOT / "layers" / "layers.toml")
            for layer in definition.layers:
                if layer == "risk_surface":
                    wait(page, f"{RISK_TILES} > 0")
                elif layer in definition.hidden or styles[layer].draw == "raster":
                    # Off at first (a population grid): in the layer list, not drawn.
                    assert not drawn.get(layer), (map_id, layer, drawn)
                elif styles[layer].min_zoom > zoom:
                    # Too dense for this zoom (villages): the legend says to zoom in.
                    assert not drawn.get(layer), (map_id, layer, drawn)
                    assert (page.locator(f"#{layer}-status").text_content() or "").strip()
                else:
                    assert drawn.get(layer, 0) > 0, (map_id, width, layer, drawn)
            off = page.evaluate(MISPLACED_ICONS)
            assert not off["misplaced"], (map_id, width, off)
            settle(page)
            shot(page, f"{map_id}-{width}-{lang}")
            watched.clean()
            page.context.close()


@pytest.mark.slow
def test_toggling_each_layer_changes_what_is_drawn(url, browser) -> None:
    for map_id in ("central-african-republic", "brazil-minas-gerais"):
        watched = open_map(browser, f"{url}/maps/{map_id}")
        page = watched.page
        names = {
            "risk_surface": "Risk surface",
            "community_risk": "Communities",
            "mine_sites": "Mine sites",
            "concessions": "Mining areas",
            "incidents": "Incidents",
            "tailings_consequence": "Tailings dams",
            "risk_units": "Official units",
        }
        for layer in MAPS[map_id].layers:
            box = page.get_by_label(names[layer], exact=True)
            legend = page.locator(f'#risk-legend section[data-layers="{layer}"]')
            if layer == "risk_surface":
                wait(page, f"{RISK_TILES} > 4")
                box.uncheck()
                wait(page, f"{RISK_TILES} == 0", timeout=10)
                assert legend.is_hidden()
                box.check()
                wait(page, f"{RISK_TILES} > 4")
            else:
                before = page.evaluate(DRAWN).get(layer, 0)
                assert before > 0, (map_id, layer)
                box.uncheck()
                wait(page, f"!({DRAWN})['{layer}']", timeout=10)
                assert legend.is_hidden(), (map_id, layer)  # its legend goes with it
                assert f"{layer}" not in page.evaluate(
                    "new URLSearchParams(location.search).get('layers')"
                )
                box.check()
                wait(page, f"({DRAWN})['{layer}'] > 0")
                assert legend.is_visible(), (map_id, layer)
            if layer == "incidents":
                # The year filter goes with the incidents.
                box.uncheck()
                assert page.locator("#time-filter").is_hidden()
                box.check()
                assert page.locator("#time-filter").is_visible()
        watched.clean()
        page.context.close()


@pytest.mark.slow
def test_keyboard_reaches_every_control(url, browser) -> None:
    watched = open_map(browser, f"{url}/maps/central-african-republic")
    page = watched.page
    seen: list[str] = []
    for _ in range(80):
        page.keyboard.press("Tab")
        seen.append(
            page.evaluate(
                "(() => { const e = document.activeElement;"
                " return [e.tagName, e.id, e.className, e.getAttribute('aria-controls') || '']"
                ".join('|'); })()"
            )
        )
    text = "\n".join(seen)
    assert "leaflet-control-zoom-in" in text and "leaflet-control-zoom-out" in text
    assert "leaflet-control-layers-selector" in text  # the layer control's boxes
    assert "|incidents-from|" in text and "|incidents-to|" in text  # the time sliders
    assert "BUTTON|||embed-panel" in text  # the embed button
    # The controls work from the keyboard too: the embed button opens its code, a slider
    # moves the years, a box turns a layer off.
    page.locator(".embed-control button").focus()
    page.keyboard.press("Enter")
    assert page.locator("#embed-code").is_visible()
    assert "/embed/central-african-republic?" in page.input_value("#embed-code")
    page.locator(".embed-control button").press("Enter")
    before = page.inner_text("#incidents-status")
    page.locator("#incidents-to").focus()
    for _ in range(10):
        page.keyboard.press("ArrowLeft")
    wait(page, "location.search.includes('to=2012')")
    wait(page, f"document.getElementById('incidents-status').innerText !== {before!r}")
    page.get_by_label("Risk surface", exact=True).focus()
    page.keyboard.press("Space")
    wait(page, f"{RISK_TILES} == 0", timeout=10)
    # The map pans and zooms from the keyboard (Leaflet's keys on the focused map).
    zoom = page.evaluate("window.riskMap.getZoom()")
    centre = page.evaluate("window.riskMap.getCenter().lng")
    page.locator(".leaflet-container").focus()
    page.keyboard.press("ArrowRight")
    wait(page, f"window.riskMap.getCenter().lng > {centre}")
    page.keyboard.press("Equal")
    wait(page, f"window.riskMap.getZoom() > {zoom}")
    # A popup opens from the keyboard: the table of the communities in view, then a name.
    page.locator("#table-open").focus()
    page.keyboard.press("Enter")
    page.locator("#community-table tbody tr").first.wait_for(timeout=15_000)
    rows = page.locator("#community-table tbody tr")
    assert rows.count() > 5
    headers = page.locator("#community-table thead th").all_inner_texts()
    assert headers == ["Community", "Country", "Score", "Class", "Confidence", "Factors with data"]
    first = rows.first.locator("th button")
    name = first.inner_text()
    scores = [float(x) for x in page.locator("#community-table td.num").all_inner_texts()[:5]]
    assert scores == sorted(scores, reverse=True)  # the highest first
    first.focus()
    page.keyboard.press("Enter")
    assert not page.locator("#community-table").is_visible()
    assert popup(page, ".summary").startswith(name)
    watched.clean()
    page.context.close()


@pytest.mark.slow
def test_axe_finds_no_serious_problem_on_any_page(url, browser) -> None:
    """axe-core (npm) in Chromium: every map and embed, at 1280 × 800 and 390 × 844, in each
    language across them, and the other pages: no serious or critical violation of WCAG 2.x
    A/AA."""
    axe = ROOT / "node_modules" / "axe-core" / "axe.min.js"
    assert axe.exists(), "axe-core is installed from npm by make test"
    pages = [f"/maps/{m}" for m in MAPS] + [f"/embed/{m}" for m in MAPS]
    pages += ["/maps", "/collections?f=html", "/collections/incidents/items?f=html&limit=20"]
    languages = ("en", "fr", "pt")
    found: dict[str, list[str]] = {}
    for i, path in enumerate(pages):
        for width, height in ((1280, 800), (390, 844)):
            context = browser.new_context(
                viewport={"width": width, "height": height}, bypass_csp=True
            )
            page = context.new_page()
            lang = languages[(i + width) % 3]
            page.goto(f"{url}{path}{'&' if '?' in path else '?'}lang={lang}")
            if path.startswith(("/maps/", "/embed/")):
                wait(page, "document.body.dataset.drawn === '1'")
            page.add_script_tag(path=str(axe))
            violations = page.evaluate(
                "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa',"
                " 'wcag21a', 'wcag21aa', 'wcag22aa']}}).then(r => r.violations"
                ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
                ".map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', ')))"
            )
            if violations:
                found[f"{path} {width} {lang}"] = violations
            context.close()
    assert not found, found


@pytest.mark.slow
def test_community_popup_shows_the_score_its_factors_and_their_evidence(
    url, browser, client
) -> None:
    fid, p = community(client, "Itabirito", "BRA")
    record = feature(client, "community_risk", fid)
    sources = client.get("/collections/tailings_dams").json()["sources"]
    watched = open_map(browser, f"{url}/maps/brazil-minas-gerais?lang=en")
    page = watched.page
    click_feature(page, "community_risk", "Itabirito")
    text = popup(page, ".evidence ul")
    # The score as published (one decimal at most), and its class: never "50 · medium".
    assert "Itabirito" in text and f"{record['score']:g} out of 100 · very high" in text
    assert "Confidence: medium" in text
    assert "very high" in text and "tailings exposure" in text
    assert f"+{record['tailings_exposure_contribution']:.1f} points" in text
    assert f"level {record['tailings_exposure_normalised']:.2f} of 1" in text
    assert "no data: no source covers this place" in text  # the factors without coverage
    assert "Based on 1 of 3 factors" in text and "Absence of evidence" in text
    ids = record["tailings_exposure_evidence"]
    for eid in ids[:3]:  # the first three, by name, with the date they give
        assert feature(client, "tailings_dams", eid)["name"] in text
    assert f"{len(ids) - 3} more in the full record" in text
    in_reach = (
        record["tailings_exposure_dams_in_runout"] + record["tailings_exposure_dams_downstream"]
    )
    if in_reach > len(ids):
        assert f"{int(in_reach) - len(ids)} more not listed here" in text
    assert sources[0]["title"] in text and "Agência Nacional de Mineração" in text
    links = page.locator(".leaflet-popup .evidence a").evaluate_all("a => a.map(x => x.href)")
    item_links = [u for u in links if "/collections/tailings_dams/items/" in u]
    assert len(item_links) == 3
    for link in item_links:
        assert link.endswith("?f=html")
        assert client.get(link.replace(url, "")).status_code == 200
    record_link = page.locator(".leaflet-popup a", has_text="Full record").first.get_attribute(
        "href"
    )
    assert record_link.endswith("?f=html") and "community_risk/items/" in record_link
    shot(page, "popup-community-en")
    watched.clean()
    page.context.close()


@pytest.mark.slow
def test_popups_speak_french_and_count_what_the_public_may_not_see(url, browser, client) -> None:
    incidents = load_layers(ROOT / "layers" / "layers.toml")["incidents"]
    fid, p = community(client, "Bambari", "CAF")
    record = feature(client, "community_risk", fid)
    x, y = client.get(f"/collections/community_risk/items/{fid}").json()["geometry"]["coordinates"]
    watched = open_map(
        browser,
        f"{url}/maps/central-african-republic?lang=fr&lat={y}&lon={x}&z=10&layers=community_risk",
    )
    page = watched.page
    click_feature(page, "community_risk", "Bambari")
    text = popup(page, ".evidence ul")
    assert "intensité des incidents" in text and "sur 100" in text
    normalised = f"{record['incident_intensity_normalised']:.2f}".replace(".", ",")
    assert f"niveau {normalised} sur 1" in text  # decimals as French writes them
    first = feature(client, "incidents", record["incident_intensity_evidence"][0])
    assert incidents.values["type"][first["type"]].fr in text  # the incident type in French
    assert "state-based" not in text and "one-sided" not in text
    withheld = record.get("incident_intensity_evidence_withheld") or 0
    if withheld:  # restricted reports are counted, never listed
        assert re.search(rf"{withheld} autres? signalements? non publics?", text), text
    assert page.locator(".leaflet-popup-close-button").get_attribute("aria-label") == "Fermer"
    shot(page, "popup-community-fr")
    watched.clean()
    page.context.close()


@pytest.mark.slow
def test_evidence_that_is_not_found_is_counted_as_not_public(url, browser, client) -> None:
    fid, _ = community(client, "Itabirito", "BRA")
    first = feature(client, "community_risk", fid)["tailings_exposure_evidence"][0]
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.route(
        f"**/collections/tailings_dams/items/{first.replace(':', '%3A')}",
        lambda route: route.fulfill(status=404, content_type="application/json", body="{}"),
    )
    page.goto(f"{url}/maps/brazil-minas-gerais?lang=en")
    wait(page, "document.body.dataset.drawn === '1'")
    click_feature(page, "community_risk", "Itabirito")
    text = popup(page, ".evidence .more")
    assert "1 more report not shown publicly" in text
    listed = page.locator(".leaflet-popup .evidence li").all_inner_texts()
    assert len(listed) == 2  # the two found; the third is counted, not named
    assert not any(feature(client, "tailings_dams", first)["name"] + " " in x for x in listed)
    context.close()


@pytest.mark.slow
def test_incident_hexagon_site_and_dam_popups(url, browser, client) -> None:
    # An incident far from any other: drawn alone, its popup names the dataset.
    fc = client.get("/collections/incidents/items", params={"limit": 10000}).json()
    points = [f for f in fc["features"] if f["geometry"]["type"] == "Point"]
    lonely = None
    for f in points:
        x, y = f["geometry"]["coordinates"]
        if all(
            abs(g["geometry"]["coordinates"][0] - x) + abs(g["geometry"]["coordinates"][1] - y)
            > 0.2
            for g in points
            if g is not f
        ):
            lonely = f
            break
    assert lonely is not None
    x, y = lonely["geometry"]["coordinates"]
    watched = open_map(
        browser,
        f"{url}/maps/central-african-republic?lang=pt&lat={y}&lon={x}&z=11&layers=incidents",
    )
    page = watched.page
    dot = page.evaluate(
        """(id) => { const m = window.riskMap; let hit = null;
        m.eachLayer(l => { if (l.feature && l.feature.id === id) { hit = l; } });
        const p = m.latLngToContainerPoint(hit.getLatLng());
        const r = m.getContainer().getBoundingClientRect(); return [p.x + r.left, p.y + r.top]; }""",
        lonely["id"],
    )
    page.mouse.click(*dot)
    text = popup(page, ".source")
    assert "UCDP Georeferenced Event Dataset" in text and "Uppsala" in text
    assert "ucdp_ged_caf" not in text  # the dataset's name, not its key
    link = page.locator(".leaflet-popup a", has_text="Registro completo").get_attribute("href")
    assert client.get(link.replace(url, "")).status_code == 200
    page.context.close()

    # A hexagon of the overview says what it is.
    watched = open_map(browser, f"{url}/maps/overview?layers=community_risk")
    page = watched.page
    assert page.locator("#legend-hexagons").is_visible()  # explained while hexagons show
    centre = page.evaluate(
        """() => { const m = window.riskMap; let hit = null;
        m.eachLayer(l => { if (!hit && l.feature && l.feature.properties.communities > 20) { hit = l; } });
        const p = m.latLngToContainerPoint(hit.getBounds().getCenter());
        const r = m.getContainer().getBoundingClientRect(); return [p.x + r.left, p.y + r.top]; }"""
    )
    page.mouse.click(*centre)
    text = popup(page, ".note")
    assert "communities in this hexagon" in text and "highest score" in text
    assert "fewer than 3 communities are left out" in text
    shot(page, "popup-hexagon-en")
    watched.clean()
    page.context.close()

    # A dam: consequence, run-out range, people within, and its run-out drawn.
    watched = open_map(browser, f"{url}/maps/brazil-minas-gerais?lang=fr")
    page = watched.page
    dams = client.get(
        "/collections/tailings_consequence/items",
        params={"bbox": "-44.9,-20.75,-42.9,-19.3", "limit": 1000},
    ).json()["features"]
    registered = [f for f in dams if not f["properties"]["failed"]]
    worst = max(registered, key=lambda f: f["properties"]["people_in_runout"] or 0)
    click_feature(page, "tailings_consequence", worst["properties"]["name"])
    text = popup(page, ".source")
    assert "Écoulement en cas de rupture" in text and "en médiane" in text and "km" in text
    # People a failure would reach: an expected number with its range, and what it is.
    assert "Personnes qu'une rupture atteindrait" in text and "environ" in text
    assert "estimation de dépistage, majorante" in text
    assert "indicative, pas une classification d'ingénierie" in text
    assert page.evaluate(DRAWN).get("tailings_consequence", 0) > 0
    wait(page, "document.querySelectorAll('.leaflet-overlay-pane path, canvas').length > 0")
    shot(page, "popup-dam-fr")
    page.keyboard.press("Escape")
    watched.clean()
    page.context.close()

    # A mine site: its operator, footprint and what is around it.
    watched = open_map(browser, f"{url}/maps/sierra-leone-kono?lang=en")
    page = watched.page
    site = client.get(
        "/collections/mine_sites/items", params={"country": "SLE", "limit": 10}
    ).json()["features"][0]
    click_feature(page, "mine_sites", site["properties"]["name"])
    text = popup(page, ".source")
    assert site["properties"]["holder"] in text and "around the published point" in text
    assert "U.S. Geological Survey" in text and "within 10 km" in text
    watched.clean()
    page.context.close()


@pytest.mark.slow
def test_low_confidence_is_hollow_and_says_why_and_failures_are_marked(
    url, browser, client
) -> None:
    """Kananga rests on a point standing for all of Kasai-Central: a hollow dot, "medium" at
    most, and a popup saying why the confidence is low. Fundão, a recorded failure, is a dam
    with a heavy outline whose popup says when it failed."""
    fid, p = community(client, "Kananga", "COD")
    record = feature(client, "community_risk", fid)
    assert record["risk_class"] == "medium" and record["confidence"] == "low"
    watched = open_map(browser, f"{url}/maps/drc-kasai?lang=en")
    page = watched.page
    style = page.evaluate(
        """(name) => { let hit = null; window.riskMap.eachLayer(l => {
          if (!hit && l.options && l.options.riskLayer === "community_risk" && l.feature
              && l.feature.properties.name === name) { hit = l; } });
        return hit && {fill: hit.options.fillColor, color: hit.options.color,
                       weight: hit.options.weight}; }""",
        "Kananga",
    )
    medium = load_layers(ROOT / "layers" / "layers.toml")["community_risk"].colour_of("medium")
    assert style == {"fill": "#fff", "color": medium, "weight": 3}
    assert page.locator("#risk-legend svg.sym.hollow").count() == 1
    click_feature(page, "community_risk", "Kananga")
    text = popup(page, ".evidence")
    assert f"Score: {record['score']:g} out of 100 · medium" in text
    assert "Confidence: low" in text and "standing for a whole province" in text
    shot(page, "popup-low-confidence-en")
    watched.clean()
    page.context.close()

    dam = feature(client, "tailings_consequence", "tailings_failures:fundao_2015")
    assert dam["failed"] and dam["status"] == "failed" and dam["failure_date"] == "2015-11-05"
    watched = open_map(browser, f"{url}/maps/brazil-minas-gerais?lang=pt")
    page = watched.page
    assert page.locator(".dam-icon.failed").count() >= 1
    click_feature(page, "tailings_consequence", dam["name"])
    text = popup(page, ".source")
    assert "rompida em" in text and "2015" in text
    assert "estimados a partir do cadastro" in text  # its size is not known: estimated
    shot(page, "popup-failed-dam-pt")
    watched.clean()
    page.context.close()


@pytest.mark.slow
def test_layout_leaves_the_map_readable(url, browser) -> None:
    """Panels never cover one another, at 1280 px, on a 360 px phone and in a small iframe."""
    controls = {
        "zoom": ".leaflet-control-zoom",
        "full": ".leaflet-bar:has(.leaflet-control-zoom-fullscreen)",
        "embed": ".embed-control",
        "search": ".search-control",
        "layers": ".leaflet-control-layers",
        "legend": "#risk-legend",
        "status": "#community_risk-status",
        "time": "#time-filter",
        "attribution": ".leaflet-control-attribution",
        "scale": ".leaflet-control-scale",
        "link": ".full-map",
    }
    script = """(sel) => { const out = {};
      for (const [k, s] of Object.entries(sel)) { const e = document.querySelector(s);
        if (!e) continue; const r = e.getBoundingClientRect(); const st = getComputedStyle(e);
        if (r.width && r.height && st.display !== 'none' && st.visibility !== 'hidden')
          out[k] = [r.left, r.top, r.right, r.bottom]; }
      return out; }"""

    def overlaps(a: list[float], b: list[float]) -> bool:
        return a[0] < b[2] - 1 and b[0] < a[2] - 1 and a[1] < b[3] - 1 and b[1] < a[3] - 1

    cases = [(f"/maps/{m}", 1280, 800, 0.35) for m in MAPS]
    cases += [(f"/maps/{m}?lang=fr", 360, 640, 0.3) for m in MAPS]
    cases += [("/embed/central-african-republic?lang=fr", 344, 227, 0.45)]
    cases += [("/embed/brazil-minas-gerais?lang=pt", 344, 227, 0.45)]
    for path, width, height, share in cases:
        watched = open_map(browser, f"{url}{path}", width, height)
        page = watched.page
        rects = page.evaluate(script, controls)
        assert {"zoom", "attribution", "legend"} <= set(rects), (path, rects)
        boxes = {k: v for k, v in rects.items() if k != "status"}
        for a in boxes:
            for b in boxes:
                if a < b and not ({a, b} == {"legend", "status"}):
                    assert not overlaps(boxes[a], boxes[b]), (path, width, a, b, rects)
        if "status" in rects:  # the count is never under the attribution or the scale
            for other in ("attribution", "scale", "time"):
                if other in rects:
                    assert not overlaps(rects["status"], rects[other]), (path, other)
        covered = sum((r[2] - r[0]) * (r[3] - r[1]) for r in boxes.values())
        assert covered / (width * height) < share, (path, width, covered / (width * height))
        if width <= 360:
            shot(page, f"layout-{path.strip('/').replace('/', '-').split('?')[0]}-{width}x{height}")
        watched.clean()
        page.context.close()


# ---- share links, embeds, time filter, clusters ---------------------------------------------


@pytest.mark.slow
def test_share_link_reopens_the_same_view_and_language(url, browser) -> None:
    # No ?lang=: the browser asks for French, and the link it shares says so.
    watched = open_map(
        browser,
        f"{url}/maps/overview?lat=5.5&lon=18.0&z=6&layers=community_risk",
        900,
        600,
        accept_language="fr-FR,fr;q=0.9",
    )
    page = watched.page
    assert page.evaluate(RISK_TILES) == 0  # the surface is off in this link
    wait(page, "location.search.includes('lang=fr')")
    page.evaluate("window.riskMap.setView([7.25, 21.5], 7) && null")
    wait(page, "location.search.includes('z=7')")
    shared = page.url
    assert "lang=fr" in shared and "lat=7.25" in shared and "layers=community_risk" in shared
    page.get_by_role("button", name="Partager").click()
    code = page.input_value("#embed-code")
    assert code.startswith('<div style="position:relative') and "/embed/overview?" in code
    src = html.unescape(re.search(r'src="([^"]+)"', code).group(1))
    assert "lang=fr" in src and "bbox=" in src and "lat=" not in src and "Uppsala" in code
    box = [float(v) for v in parse_qs(urlsplit(src).query)["bbox"][0].split(",")]
    # Reopened by someone whose browser prefers English: the same view, still in French.
    again = open_map(browser, shared, 900, 600, accept_language="en-GB,en;q=0.9")
    centre = again.page.evaluate("[window.riskMap.getCenter().lat, window.riskMap.getCenter().lng]")
    assert centre == pytest.approx([7.25, 21.5], abs=1e-3)
    assert again.page.evaluate("window.riskMap.getZoom()") == 7
    assert again.page.evaluate(RISK_TILES) == 0
    assert again.page.evaluate("document.documentElement.lang") == "fr"
    assert again.page.locator(".leaflet-control-zoom-in").get_attribute("title") == "Zoom avant"
    # The embed snippet opens as an embed, in French, on the same view: in a newspaper's
    # column on a phone (336 × 222) it still shows the whole box, and the map's title.
    embed = open_map(browser, src, 336, 222, accept_language="en")
    assert embed.page.evaluate("document.documentElement.lang") == "fr"
    seen = embed.page.evaluate(
        "(() => { const b = window.riskMap.getBounds();"
        " return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()]; })()"
    )
    assert seen[0] <= box[0] + 0.05 and seen[1] <= box[1] + 0.05
    assert seen[2] >= box[2] - 0.05 and seen[3] >= box[3] - 0.05
    title = embed.page.locator(".legend-title")
    assert title.is_visible() and MAPS["overview"].title.get("fr")[:20] in title.inner_text()
    shot(embed.page, "embed-336x222-fr")
    for w in (watched, again, embed):
        w.clean()
        w.page.context.close()


@pytest.mark.slow
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
        frame.locator("#community_risk-status").filter(has_text="communautés").wait_for(
            timeout=30_000
        )
        assert frame.locator("a.full-map").get_attribute("href").endswith("lang=fr")
        assert frame.locator(".embed-control").count() == 0
        shot(page, "embed-in-another-site")
        page.close()
    finally:
        server.shutdown()


@pytest.mark.slow
def test_time_filter_changes_the_incident_count(url, browser, client) -> None:
    watched = open_map(browser, f"{url}/maps/central-african-republic?lang=en")
    page = watched.page
    wait(page, "Number(document.body.dataset.incidents) > 0")
    everything = int(page.evaluate("document.body.dataset.incidents"))
    # Grouped: far fewer marks than incidents, each with its count.
    assert 0 < int(page.evaluate("document.body.dataset.incidentMarkers")) < everything / 5

    def set_years(first: int, last: int) -> int:
        page.evaluate(
            "([a, b]) => { const f = document.getElementById('incidents-from');"
            " const t = document.getElementById('incidents-to');"
            " t.value = b; f.value = a; f.dispatchEvent(new Event('input')); }",
            [first, last],
        )
        wait(
            page,
            f"location.search.includes('from={first}') && location.search.includes('to={last}')",
        )
        wait(page, f"document.getElementById('incidents-span').textContent === '{first}–{last}'")
        page.wait_for_timeout(400)
        return int(page.evaluate("document.body.dataset.incidents"))

    in_2013 = set_years(2013, 2013)
    b = page.evaluate(
        "(() => { const b = window.riskMap.getBounds();"
        " return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()]; })()"
    )
    fc = client.get(
        "/collections/incidents/items",
        params={"limit": 10000, "datetime": "2013-01-01/2013-12-31", "bbox": ",".join(map(str, b))},
    ).json()
    expected = sum(
        1
        for f in fc["features"]
        if f["geometry"]["type"] == "Point"
        and b[0] <= f["geometry"]["coordinates"][0] <= b[2]
        and b[1] <= f["geometry"]["coordinates"][1] <= b[3]
    )
    assert in_2013 == expected > 0
    assert in_2013 < everything
    assert f"{in_2013} incidents in view" in page.inner_text("#incidents-status")
    assert page.locator(".leaflet-control-zoom-fullscreen").count() == 1  # full screen
    shot(page, "incidents-2013")
    # A cluster opens into its incidents (a tap on its ring: a community inside it answers
    # a tap on its own dot).
    zoom = page.evaluate("window.riskMap.getZoom()")
    page.locator(".incident-cluster span").first.click()  # its count, on the ring
    wait(page, f"window.riskMap.getZoom() > {zoom}")
    watched.clean()
    page.context.close()


@pytest.mark.slow
def test_reports_shown_only_by_area_are_drawn_as_their_cells(url, browser, client) -> None:
    """The restricted reports the public knows only by area come from their own collection
    (incident_areas) and are drawn with the incidents: each cell dashed, counted in the
    layer's status line, its popup saying how many reports it holds and why no more."""
    cells = client.get("/collections/incident_areas/items", params={"limit": 100}).json()
    assert cells["numberMatched"] > 0
    biggest = max(cells["features"], key=lambda f: f["properties"]["count"])
    hexagon = shapely.geometry.shape(biggest["geometry"])
    incidents = client.get("/collections/incidents/items", params={"limit": 10000}).json()
    points = [Point(f["geometry"]["coordinates"]) for f in incidents["features"]]
    # A place inside the cell away from every public report (their dots and groups take a
    # tap first): the cell answers there.
    centre = hexagon.centroid
    inside = [
        Point(
            centre.x + (v[0] - centre.x) * k,
            centre.y + (v[1] - centre.y) * k,
        )
        for k in (0.0, 0.3, 0.6)
        for v in hexagon.exterior.coords[:-1]
    ]
    free = max(inside, key=lambda p: min(p.distance(q) for q in points))
    watched = open_map(
        browser,
        f"{url}/maps/central-african-republic?lang=en&lat={centre.y:.5f}&lon={centre.x:.5f}"
        "&z=11&layers=incidents",
    )
    page = watched.page
    assert int(wait(page, "Number(document.body.dataset.incidentsAreas)")) >= 1
    # Drawn as paths of the incidents layer, in the cells' pane under every dot.
    assert page.locator(".leaflet-cells-pane path").count() >= 1
    dashed = page.locator(".leaflet-cells-pane path").first.get_attribute("stroke-dasharray")
    assert dashed and dashed.replace(",", " ").split() == ["5", "4"]
    assert page.evaluate(DRAWN).get("incidents", 0) >= 1
    n = biggest["properties"]["count"]
    status = page.inner_text("#incidents-status")
    counted = re.search(r"(\d+) more shown only by area", status)
    assert counted and int(counted.group(1)) >= n, status  # the cells in view
    xy = page.evaluate(
        """([lat, lon]) => { const m = window.riskMap;
        const p = m.latLngToContainerPoint([lat, lon]);
        const r = m.getContainer().getBoundingClientRect(); return [p.x + r.left, p.y + r.top]; }""",
        [free.y, free.x],
    )
    page.mouse.click(*xy)
    text = popup(page, ".note")
    assert f"{n} reports shown only by their area" in text, text
    assert "the public sees only the area" in text
    page.wait_for_timeout(300)  # the popup faded in
    shot(page, "incident-areas-en")
    watched.clean()
    page.context.close()


@pytest.mark.slow
def test_many_incidents_stay_grouped_and_filterable(built, build_dir, browser, tmp_path) -> None:
    """25,000 incidents (resampled from the real ones): three pages of the items API, drawn
    as a few hundred marks at most, the year filter counting what it keeps (how fast:
    ``bench/maps_bench.py --incidents``)."""
    import geopandas as gpd

    from tests.maps.resample import resampled_build

    builds = resampled_build(build_dir, tmp_path / "builds", 25_000)
    catalog = (builds / "current" / "catalog.json").read_text()
    meta = __import__("json").loads(catalog)["layers"]["incidents"]
    public = gpd.read_parquet(builds / "current" / meta.get("public", meta)["file"])
    with live_server(builds) as big:
        watched = open_map(browser, f"{big}/maps/central-african-republic?lang=en")
        page = watched.page
        wait(page, "Number(document.body.dataset.incidents) > 0", timeout=60)
        b = page.evaluate(
            "(() => { const b = window.riskMap.getBounds();"
            " return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()]; })()"
        )
        pts = public[public.geometry.geom_type == "Point"]
        inside = pts.cx[b[0] : b[2], b[1] : b[3]]
        assert int(page.evaluate("document.body.dataset.incidents")) == len(inside) > 20_000
        assert int(page.evaluate("document.body.dataset.incidentMarkers")) < 300
        page.evaluate(
            "() => { const f = document.getElementById('incidents-from');"
            " f.value = 2015; f.dispatchEvent(new Event('input')); }"
        )
        wait(page, "location.search.includes('from=2015')")
        years = inside["date"].dt.year
        expected = int((years >= 2015).sum())
        wait(page, f"Number(document.body.dataset.incidents) === {expected}")
        watched.clean()
        page.context.close()


# ---- the offline basemap and the picture ---------------------------------------------------


def test_offline_basemap_holds_land_lakes_and_rivers(client) -> None:
    r = client.get("/basemap.json", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in r.headers["vary"]
    assert int(r.headers.get("content-length", len(r.content))) < 250_000  # slow connections
    kinds = [f["properties"]["kind"] for f in r.json()["features"]]
    assert {"land", "lake", "river"} == set(kinds) and kinds.count("land") > 50
    assert "Natural Earth" in r.json()["attribution"]
    plain = client.get("/basemap.json", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.json() == r.json()


def test_static_png_is_the_requested_size_and_shows_the_layers(client) -> None:
    import numpy as np
    from PIL import Image

    r = client.get("/maps/central-african-republic.png?bbox=14,2,28,11&width=1200&height=800")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(r.content))
    assert image.size == (1200, 800)
    rgb = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(int)
    assert len(np.unique(rgb, axis=0)) > 500  # not blank: basemap, surface, dots, text
    # The surface's blue (cividis at low scores, drawn lighter over the land) covers the
    # covered countries, and the communities' class colours are drawn.
    blue = rgb[:, 2] > rgb[:, 0] + 15
    assert blue.mean() > 0.2
    colour = load_layers(ROOT / "layers" / "layers.toml")["community_risk"].colour_of("medium")
    medium = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    assert (np.abs(rgb - medium).sum(axis=1) < 12).sum() > 50
    minas = client.get("/maps/brazil-minas-gerais.png?width=1200&height=800&lang=pt")
    dams = np.asarray(Image.open(io.BytesIO(minas.content)).convert("RGB")).reshape(-1, 3)
    extreme = np.array([0x7A, 0x01, 0x77])
    assert (np.abs(dams.astype(int) - extreme).sum(axis=1) < 12).sum() > 100  # the dams
    small = client.get("/maps/overview.png?width=360&height=240&lang=fr&layers=community_risk")
    assert Image.open(io.BytesIO(small.content)).size == (360, 240)
    assert client.get("/maps/overview.png?bbox=10,0,5,5").status_code == 400
    assert client.get("/maps/overview.png?width=5000").status_code == 400
    assert client.get("/maps/overview.png?layers=nope").status_code == 400
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "static-car.png").write_bytes(r.content)
    (SHOTS / "static-minas-gerais-pt.png").write_bytes(minas.content)
    (SHOTS / "static-overview-360-fr.png").write_bytes(small.content)


def test_static_png_draws_the_population_grid_when_shown(client) -> None:
    """The Kono picture with the WorldPop layer ticked darkens the built-up cells of Koidu,
    under the same marks, and nothing else; the grid is credited only then."""
    import numpy as np
    from PIL import Image

    box = "bbox=-11.02,8.6,-10.92,8.68&width=500&height=340"

    def grey(layers: str) -> np.ndarray:
        r = client.get(f"/maps/sierra-leone-kono.png?{box}&layers={layers}")
        assert r.status_code == 200, r.text
        return np.asarray(Image.open(io.BytesIO(r.content)).convert("L"), dtype=float)

    plain, people = grey("mine_sites"), grey("mine_sites,worldpop_sle_2019")
    darker = (plain - people)[:-60]  # above the credits (naming WorldPop) and scale bar
    assert (darker > 10).mean() > 0.05, (darker > 10).mean()  # Koidu's built-up cells
    assert (darker < -10).mean() < 0.001  # greys over the land: every mark is unchanged
    r = client.get(f"/maps/sierra-leone-kono.png?{box}&layers=worldpop_sle_2019&width=800")
    assert r.status_code == 200


def test_small_pictures_keep_the_map_visible() -> None:
    """A 360 × 240 preview: a title that fits, no legend, a short credit; most of it map."""
    import numpy as np
    from PIL import Image

    from geo_service.render import static_map

    legend = [static_map.LegendItem(f"class {i}", "#123456") for i in range(6)]
    credit = "Natural Earth; Data: Uppsala Conflict Data Program (UCDP), Uppsala University, "
    credit += "GeoNames, U.S. Geological Survey, Agência Nacional de Mineração (ANM)"
    title = "Risques liés aux mines de diamants : vue d'ensemble"
    for (w, h), most in (((360, 240), 0.3), ((1200, 800), 0.2)):
        frame = static_map.frame_for((10.0, -10.0, 30.0, 10.0), w, h)
        image = Image.new("RGBA", (w, h), (255, 0, 255, 255))
        ramp = static_map.LegendItem("Risk score", heading=True, ramp=("0", "25", "50", "100"))
        static_map.furniture(image, frame, title, [ramp, *legend], credit, "Evidence up to 2022")
        px = np.asarray(image.convert("RGB")).astype(int)
        covered = (np.abs(px - [255, 0, 255]).sum(axis=2) > 30).mean()
        assert covered < most, (w, h, covered)
        corner = px[int(h * 0.6) : int(h * 0.9), : w // 5]  # where the legend goes
        legend_drawn = (np.abs(corner - [255, 0, 255]).sum(axis=2) > 30).mean() > 0.3
        assert legend_drawn == (w >= static_map.LEGEND_MIN_SIZE[0]), (w, h)
        # The title stays inside the picture.
        top_right = px[: h // 6, w - 4 :]
        assert (np.abs(top_right - [255, 0, 255]).sum(axis=2) < 30).all(), (w, h)


def test_static_png_credits_only_what_it_drew(client, monkeypatch) -> None:
    from PIL import Image

    from geo_service.render import static_map

    said: list[str] = []
    original = static_map.furniture

    def furniture(*args: Any) -> None:
        said.append(args[4])  # the attribution
        original(*args)

    monkeypatch.setattr(static_map, "furniture", furniture)
    # No internet: the outside tiles fail, the offline basemap is drawn and credited alone.
    monkeypatch.setattr(static_map, "outside_basemap", lambda frame, template: None)
    client.get("/maps/drc-kasai.png?width=400&height=300&lang=fr")
    assert "OpenStreetMap" not in said[-1] and "Natural Earth" in said[-1]
    assert "U.S. Geological Survey" in said[-1] and "Données" in said[-1]
    # Only the sources that cover what is drawn: no UCDP (Central African Republic only) on
    # the Kasai picture, nor on the Minas Gerais picture and page.
    assert "Uppsala" not in said[-1]
    client.get("/maps/brazil-minas-gerais.png?width=402&height=300")
    assert "Uppsala" not in said[-1] and "Agência Nacional de Mineração" in said[-1]
    config = _config(client.get("/maps/brazil-minas-gerais").text)
    credits = " ".join(p for names in config["publishers"].values() for p in names)
    assert "Uppsala" not in credits and "Agência Nacional de Mineração" in credits
    # Tiles that arrive are credited.
    monkeypatch.setattr(
        static_map,
        "outside_basemap",
        lambda frame, template: Image.new("RGBA", (frame.width, frame.height), "#dddddd"),
    )
    client.get("/maps/drc-kasai.png?width=401&height=300&lang=fr")
    assert "OpenStreetMap" in said[-1]


def test_basemap_is_configurable(built, build_dir) -> None:
    other = TestClient(create_app(ApiSettings(build_dir=build_dir, basemap="OpenTopoMap")))
    page = other.get("/maps/overview").text
    assert "tile.opentopomap.org" in page and BASEMAP_HOST not in page
    assert "OpenTopoMap" in page  # its attribution


# ---- one definition per layer ---------------------------------------------------------------

#: A layer the bundled maps do not draw (the register's dams as published), defined here alone.
EXTRA_LAYER = """
[tailings_dams]
draw = "points"
symbol = "square"
size = 14
name = { en = "Registered dams", fr = "Barrages inscrits", pt = "Barragens cadastradas" }
heading = { en = "Registered dams, by status", fr = "Barrages inscrits, par statut", pt = "Barragens cadastradas, por situação" }
properties = ["name"]
popup = ["commodity", "status"]
maps = ["brazil-minas-gerais"]

[tailings_dams.classes]
field = "status"
values = [
    { value = "active", colour = "#00c957", label = { en = "in use", fr = "en service", pt = "em uso" } },
    { value = "inactive", colour = "#ff7f00", label = { en = "out of use", fr = "hors service", pt = "fora de uso" } },
]

[tailings_dams.fields]
commodity = { en = "Ore mined", fr = "Minerai extrait", pt = "Minério lavrado" }
status = { en = "Register status", fr = "Statut au registre", pt = "Situação no cadastro" }
"""


@pytest.fixture(scope="module")
def extra_layer(tmp_path_factory) -> Path:
    """The bundled maps and layers, plus one layer definition: nothing else changed."""
    folder = tmp_path_factory.mktemp("layers")
    shutil.copy(ROOT / "layers" / "maps.toml", folder / "maps.toml")
    text = (ROOT / "layers" / "layers.toml").read_text(encoding="utf-8") + EXTRA_LAYER
    (folder / "layers.toml").write_text(text, encoding="utf-8")
    return folder / "maps.toml"


def test_a_layer_definition_alone_draws_the_layer(
    built, build_dir, extra_layer, browser, monkeypatch
) -> None:
    """Adding one definition to layers.toml puts the layer on the map page (drawn, with a
    popup of its fields), in its legend, and in the picture and the picture's legend."""
    import numpy as np
    from PIL import Image

    from geo_service.render import static_map

    client = TestClient(create_app(ApiSettings(build_dir=build_dir, maps_file=extra_layer)))
    page = client.get("/maps/brazil-minas-gerais?lang=fr").text
    assert '<section data-layers="tailings_dams"><h3>Barrages inscrits, par statut</h3>' in page
    assert "en service" in page and "hors service" in page and "#00c957" in page

    said: list[list[str]] = []
    original = static_map.furniture

    def furniture(image: Any, frame: Any, title: str, legend: list[Any], *rest: Any) -> None:
        said.append([item.label for item in legend])
        original(image, frame, title, legend, *rest)

    monkeypatch.setattr(static_map, "furniture", furniture)
    monkeypatch.setattr(static_map, "outside_basemap", lambda frame, template: None)
    picture = client.get("/maps/brazil-minas-gerais.png?layers=tailings_dams&lang=pt")
    assert picture.status_code == 200
    assert said[-1][:3] == ["Barragens cadastradas, por situação", "em uso", "fora de uso"]
    rgb = np.asarray(Image.open(io.BytesIO(picture.content)).convert("RGB")).reshape(-1, 3)
    green = (np.abs(rgb.astype(int) - [0x00, 0xC9, 0x57]).sum(axis=1) < 12).sum()
    assert green > 200  # squares of dams in use

    with live_server(build_dir, maps_file=str(extra_layer)) as address:
        watched = open_map(
            browser, f"{address}/maps/brazil-minas-gerais?lang=en&layers=tailings_dams"
        )
        p = watched.page
        assert wait(p, f"({DRAWN}).tailings_dams") > 10
        assert p.locator("#risk-legend section[data-layers=tailings_dams]").is_visible()
        # A dam in use: its popup shows the fields the definition names, with its labels.
        name = p.evaluate(
            """() => { let n = null; window.riskMap.eachLayer(l => {
              if (!n && l.options && l.options.riskLayer === 'tailings_dams' && l.feature
                  && l.feature.properties.name
                  && window.riskMap.getBounds().contains(l.getLatLng())) {
                n = l.feature.properties.name; } }); return n; }"""
        )
        click_feature(p, "tailings_dams", name)
        text = popup(p, "table")
        assert "Register status" in text and ("in use" in text or "out of use" in text)
        shot(p, "extra-layer-en")
        watched.clean()


# ---- find, read, phones ---------------------------------------------------------------------


def test_names_are_found_whatever_their_case_and_accents(client) -> None:
    """q= finds a town however it is typed, the best match first, and only in what the
    caller may see."""
    found = client.get("/collections/community_risk/items", params={"q": "tshikapa"}).json()
    assert found["features"][0]["properties"]["name"] == "Tshikapa"
    mbuji = client.get("/collections/community_risk/items", params={"q": "MBUJI mayi"}).json()
    assert mbuji["features"][0]["properties"]["name"] == "Mbuji-Mayi"
    accents = client.get("/collections/community_risk/items", params={"q": "Sao Joao"}).json()
    names = [f["properties"]["name"] for f in accents["features"]]
    assert names and all("São João" in n for n in names[:3]), names
    everything = client.get(
        "/collections/community_risk/items", params={"q": "a", "limit": 10000}
    ).json()
    assert everything["numberMatched"] > 1000
    assert all(f["properties"]["sensitivity"] != "restricted" for f in everything["features"])
    assert all(f["geometry"]["type"] == "Point" for f in everything["features"])
    assert client.get("/collections/incidents/items", params={"q": "x"}).status_code == 200


@pytest.mark.slow
def test_search_box_finds_a_town_and_opens_it(url, browser) -> None:
    watched = open_map(browser, f"{url}/maps/drc-kasai?lang=fr")
    page = watched.page
    page.fill("#place-search", "tshikapa")
    page.locator("#place-results li").first.wait_for(timeout=10_000)
    first = page.locator("#place-results li").first.inner_text()
    assert first.startswith("Tshikapa") and "RD Congo" in first
    page.keyboard.press("Enter")
    text = popup(page, ".summary")
    assert text.startswith("Tshikapa")
    centre = page.evaluate("[window.riskMap.getCenter().lat, window.riskMap.getCenter().lng]")
    assert centre == pytest.approx([-6.41, 20.8], abs=0.1)
    # Town names of our own at this zoom (no outside basemap here).
    assert int(wait(page, "document.body.dataset.labels")) > 0
    named = page.locator(".town-label").filter(has_text=re.compile("^Tshikapa$"))
    wait(page, "document.querySelectorAll('.town-label').length > 0")
    page.wait_for_timeout(300)  # a name leaving fades out
    assert named.count() == 1
    shot(page, "search-tshikapa-fr")
    watched.clean()


@pytest.mark.slow
def test_search_finds_a_chiefdom_and_opens_it(url, browser) -> None:
    """On the Kono map, where the chiefdoms lie under the community dots, the search finds
    Tankoro by its name without its accent or case, fits the map to it and opens its popup."""
    watched = open_map(browser, f"{url}/maps/sierra-leone-kono?lang=fr")
    page = watched.page
    page.fill("#place-search", "TANKÒRO")
    unit = page.locator("#place-results li", has_text="SL010313")
    unit.wait_for(timeout=10_000)
    assert unit.inner_text().startswith("Tankoro")
    unit.click()
    text = popup(page, "table")
    assert text.startswith("Tankoro") and "Personnes à moins de 5 km" in text, text
    bounds = page.evaluate(
        "(() => { const b = window.riskMap.getBounds(); return [b.getWest(), b.getSouth(),"
        " b.getEast(), b.getNorth()]; })()"
    )
    assert bounds[0] < -10.98 < bounds[2] and bounds[1] < 8.64 < bounds[3], bounds
    watched.clean()


@pytest.mark.slow
def test_a_name_with_markup_is_text(url, browser) -> None:
    """Popups are made of nodes: a name holding markup shows as it is written, runs nothing."""
    evil = '<img src=x onerror="window.pwned=1">Tshikapa<script>window.pwned=2</script>'
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()

    def rename(route: Any) -> None:
        response = route.fetch()
        body = response.json()
        for f in body.get("features", [body]):
            if f.get("properties", {}).get("name") == "Tshikapa":
                f["properties"]["name"] = evil
        route.fulfill(response=response, json=body)

    page.route("**/collections/community_risk/items**", rename)
    page.goto(f"{url}/maps/drc-kasai?lang=en&lat=-6.41&lon=20.8&z=10&layers=community_risk")
    wait(page, "document.body.dataset.drawn === '1'")
    click_feature(page, "community_risk", evil)
    text = popup(page, ".summary")
    assert evil in text
    assert page.evaluate("window.pwned === undefined")
    assert page.locator(".leaflet-popup img").count() == 0
    page.unroute_all(behavior="ignoreErrors")
    context.close()


@pytest.mark.slow
def test_on_a_phone_popups_are_clear_of_controls_and_dots_are_reachable(
    url, browser, client
) -> None:
    """390 × 844: the map's title shows; Bria, under a group of incidents, opens with a tap;
    its popup is above every control; every symbol answers a tap 24 px wide."""
    fid, p = community(client, "Bria", "CAF")
    x, y = client.get(f"/collections/community_risk/items/{fid}").json()["geometry"]["coordinates"]
    for lang in ("en", "fr", "pt"):
        watched = open_map(
            browser,
            f"{url}/maps/central-african-republic?lang={lang}&lat={y}&lon={x}&z=9",
            390,
            844,
        )
        page = watched.page
        title = page.locator(".legend-title")
        assert title.is_visible() and title.inner_text().strip()
        under = page.evaluate(
            """([lat, lon]) => { const m = window.riskMap; const p = m.latLngToContainerPoint([lat, lon]);
            const r = m.getContainer().getBoundingClientRect();
            const hit = document.elementFromPoint(p.x + r.left, p.y + r.top);
            return hit && hit.closest('.incident-cluster') !== null; }""",
            [y, x],
        )
        assert under, "Bria is under a group of incidents at this zoom"
        click_feature(page, "community_risk", "Bria")
        text = popup(page, ".summary")
        assert text.startswith("Bria")
        placed = wait(page, f"(({POPUP_CLEAR})()).inside && ({POPUP_CLEAR})()")
        assert all(placed["clear"]), placed
        shot(page, f"phone-bria-popup-{lang}")
        sizes = page.evaluate(
            "Array.from(document.querySelectorAll('.touch-icon, .incident-cluster'))"
            ".map(e => { const r = e.getBoundingClientRect(); return Math.min(r.width, r.height); })"
        )
        assert sizes and min(sizes) >= 23.5, sizes  # 24 px, to a rounding
        watched.clean()
        page.context.close()


@pytest.mark.parametrize(
    "late",
    [("community_risk",), ("incidents", "mine_sites")],
    ids=["communities-last", "communities-first"],
)
def test_every_symbol_is_where_its_feature_is_and_takes_its_click(url, browser, late) -> None:
    """Every marker's symbol is centred on its feature (a group of incidents once lay in the
    flow of the page, hundreds of pixels off). Communities and incidents are dots of one canvas:
    whichever layer's data comes last, a click on a community's dot opens its popup and a click
    on an incident's opens its own. (On two canvases, the one made last lay over the other and
    took every click meant for it.)"""
    context = browser.new_context(viewport={"width": 1280, "height": 800})

    def slow(route: Any) -> None:
        time.sleep(1.5)
        route.continue_()

    context.route(lambda u: "/items?" in u and any(f"/{x}/items" in u for x in late), slow)
    watched = Watched(context.new_page())
    page = watched.page
    page.goto(f"{url}/maps/central-african-republic?lang=en")
    wait(page, "document.body && document.body.dataset.drawn === '1'")
    assert page.evaluate("document.querySelectorAll('.leaflet-overlay-pane canvas').length") == 1
    off = page.evaluate(MISPLACED_ICONS)
    assert off["icons"] >= 20 and not off["misplaced"], off
    for layer in ("community_risk", "incidents"):
        x, y, room = page.evaluate(LONE_DOT, layer)
        assert room > 16, (layer, room)  # no other symbol answers a click on its centre
        page.mouse.click(x, y)
        wait(page, "window.tapped.isPopupOpen()", timeout=10)
        page.evaluate("() => { window.riskMap.closePopup(); }")
        wait(page, "!document.querySelector('.leaflet-popup')")  # it fades out first
    watched.clean()
    context.close()


@pytest.mark.slow
def test_credits_follow_what_is_drawn_as_the_view_moves(url, browser) -> None:
    """The data credit names the publishers of what is drawn in view: OpenStreetMap only once
    its places show (zoom 12), ANM and not UCDP once the overview is panned to Minas Gerais."""

    def credit(page: Any) -> str:
        return str(page.inner_text(".leaflet-control-attribution"))

    def move(page: Any, lat: float, lon: float, zoom: int) -> str:
        page.evaluate(
            "([c, z]) => { window.riskMap.setView(c, z, {animate: false}); }", [[lat, lon], zoom]
        )
        page.wait_for_timeout(300)
        wait(page, "document.body.dataset.drawn === '1'")
        return credit(page)

    watched = open_map(browser, f"{url}/maps/sierra-leone-kono")
    # The outside basemap's credit goes once its tiles have failed, which may be just after
    # the data is drawn (test_outside_credit_follows_its_tiles_when_the_scripts_come_late).
    wait(watched.page, OUTSIDE_CREDIT_GONE)
    first = credit(watched.page)
    assert "GeoNames" in first and "OCHA" in first and "OpenStreetMap" not in first, first
    # The Amazon's scars (covered by an outline, not a list of countries) only in Brazil.
    assert "Amazon Mining Watch" not in first, first
    near = move(watched.page, 8.65, -10.97, 13)
    assert "OpenStreetMap contributors" in near, near
    assert "OpenStreetMap" not in move(watched.page, 8.65, -10.97, 10)
    watched.clean()
    watched.page.context.close()

    watched = open_map(browser, f"{url}/maps/overview")
    assert "Uppsala" in credit(watched.page)
    brazil = move(watched.page, -20.1, -44.1, 9)
    assert "Agência Nacional de Mineração" in brazil and "Uppsala" not in brazil, brazil
    assert "U.S. Geological Survey" not in brazil, brazil  # no mine site in view
    africa = move(watched.page, 6.5, 20.5, 8)
    assert "Uppsala" in africa and "Agência" not in africa, africa
    watched.clean()
    watched.page.context.close()

    watched = open_map(browser, f"{url}/maps/brazil-juina")
    assert "Amazon Mining Watch" in credit(watched.page)
    watched.clean()
    watched.page.context.close()


@pytest.mark.parametrize("arrive", [False, True], ids=["tiles-fail", "tiles-arrive"])
def test_outside_credit_follows_its_tiles_when_the_scripts_come_late(url, browser, arrive) -> None:
    """The outside basemap is credited while its tiles arrive and not once they all failed,
    even when they settled before the page's scripts arrived (as on a slow link)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    if arrive:
        tile = io.BytesIO()
        Image.new("RGB", (256, 256), (230, 225, 215)).save(tile, format="PNG")
        context.route(
            f"https://{BASEMAP_HOST}/**",
            lambda route: route.fulfill(status=200, content_type="image/png", body=tile.getvalue()),
        )

    def late(route: Any) -> None:  # the module that credits, after the tiles have settled
        time.sleep(2.0)
        route.continue_()

    context.route("**/js/controls.js*", late)
    watched = Watched(context.new_page())
    watched.page.goto(f"{url}/maps/sierra-leone-kono")
    wait(watched.page, "document.body && document.body.dataset.drawn === '1'")
    said = "document.querySelector('.leaflet-control-attribution').innerText"
    if arrive:
        assert "OpenStreetMap contributors" in watched.page.evaluate(said)
    else:
        wait(watched.page, OUTSIDE_CREDIT_GONE)
    assert "Natural Earth" in watched.page.evaluate(said)
    watched.clean()
    context.close()


def open_unit(page: Any, unit: dict[str, Any]) -> str:
    """Open the popup of the drawn ``unit`` (a GeoJSON feature) with a mouse click on its
    shape, as far from every dot and marker as the view allows; return the popup's text."""
    view = page.evaluate(
        """() => { const m = window.riskMap; const r = m.getContainer().getBoundingClientRect();
        const size = m.getSize(); const grid = []; const marks = [];
        for (let y = 70; y < size.y - 40; y += 12) { for (let x = 60; x < size.x - 60; x += 12) {
          const el = document.elementFromPoint(x + r.left, y + r.top);
          if (!el || (el !== m.getContainer() && !el.closest(".leaflet-tile-pane, "
            + ".leaflet-overlay-pane, .leaflet-halos-pane"))) { continue; }
          const ll = m.containerPointToLatLng([x, y]); grid.push([x, y, ll.lng, ll.lat]); } }
        m.eachLayer(l => { if (l instanceof L.Marker || l instanceof L.CircleMarker) {
          const p = m.latLngToContainerPoint(l.getLatLng()); marks.push([p.x, p.y]); } });
        return {left: r.left, top: r.top, grid, marks}; }"""
    )
    # A grid step (12 px) inside the edge: the page draws the shape simplified for its zoom.
    step = abs(view["grid"][1][2] - view["grid"][0][2])
    shape = shapely.geometry.shape(unit["geometry"]).buffer(-step)
    inside = [(x, y) for x, y, lon, lat in view["grid"] if shape.contains(Point(lon, lat))]
    assert inside, f"unit {unit['id']} is not in view"

    def room(xy: tuple[float, float]) -> float:
        return min((math.dist(xy, m) for m in view["marks"]), default=math.inf)

    x, y = max(inside, key=room)
    assert room((x, y)) > 16, f"no spot of unit {unit['id']} is clear of the dots"
    page.mouse.click(view["left"] + x, view["top"] + y)
    return popup(page, "table")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("map_id", "code", "lang", "words"),
    [
        (
            "sierra-leone-chiefdoms",
            "SL010313",
            "en",
            ["Tankoro", "People within 5 km of a mine site"],
        ),
        ("sierra-leone-chiefdoms", "SL010391", "fr", ["Koidu Town", "Personnes (au moins)"]),
        ("sierra-leone-chiefdoms", "SL010309", "pt", ["Nimikoro", "Pessoas a menos de 10 km"]),
        # On the regional maps the units lie under the community dots: a tap beside the dots.
        ("sierra-leone-kono", "SL010313", "en", ["Tankoro", "People within 20 km of a mine"]),
        ("drc-kasai", "CD8201", "fr", ["Mbuji-Mayi", "Personnes à moins de 10 km d'un site"]),
        ("brazil-minas-gerais", "3109006", "pt", ["Brumadinho", "Pessoas que um rompimento"]),
        ("brazil-minas-gerais", "3140001", "en", ["Mariana", "People a dam failure would reach"]),
    ],
)
def test_maps_show_units_with_people_exposed(url, browser, client, map_id, code, lang, words):
    feature = client.get(f"/collections/risk_units/items/{code}").json()
    unit = feature["properties"]
    watched = open_map(browser, f"{url}/maps/{map_id}?lang={lang}")
    page = watched.page
    page.evaluate(
        """(code) => { const m = window.riskMap; m.eachLayer(l => { if (l.feature
          && l.feature.id === code && l.getBounds) {
            m.fitBounds(l.getBounds(), {animate: false}); } }); }""",
        code,
    )
    page.wait_for_timeout(300)  # the view's requests under way
    wait(page, "document.body.dataset.drawn === '1'")
    text = open_unit(page, feature)
    assert text.startswith(unit["name"]), text
    for word in words:
        assert word in text, (word, text)
    shown = re.sub(r"[\s\u202f\u00a0.,]", "", text)
    counted = ("people", "people_mine_5km", "people_mine_10km", "people_mine_20km")
    for key in (*counted, "people_runout", "people_downstream", "people_incident_reach"):
        if unit[key]:  # every non-zero figure of people exposed, in the reader's digits
            digits = {str(int(unit[key])), str(round(unit[key]))}
            assert any(d in shown for d in digits), (key, unit[key], text)
    shot(page, f"unit-{map_id}-{lang}")
    watched.clean()


@pytest.mark.slow
def test_the_chiefdom_table_sorts_and_matches_the_layer(url, browser, client) -> None:
    watched = open_map(browser, f"{url}/maps/sierra-leone-chiefdoms", width=1280, height=800)
    page = watched.page
    page.click("#table-open")
    wait(page, "document.querySelectorAll('table.sortable tbody tr').length > 0")
    rows = page.locator("table.sortable tbody tr")
    assert rows.count() == 167
    heads = page.locator("table.sortable thead th")
    labels = heads.all_inner_texts()
    column = labels.index("People within 10 km of a mine site")
    heads.nth(column).locator("button").click()
    sort = heads.nth(column).get_attribute("aria-sort")
    assert sort == "descending"
    units = client.get(
        "/collections/risk_units/items", params={"level": "3", "limit": "500"}
    ).json()["features"]
    ranked = sorted(units, key=lambda f: -(f["properties"]["people_mine_10km"] or -1))
    first = [r.split("\t")[0].strip() for r in rows.all_inner_texts()[:3]]
    assert first == [f["properties"]["name"] for f in ranked[:3]]
    heads.nth(column).locator("button").click()
    assert heads.nth(column).get_attribute("aria-sort") == "ascending"
    shot(page, "chiefdom-table")
    watched.clean()


POPUP_CLEAR = """() => { const pop = document.querySelector('.leaflet-popup').getBoundingClientRect();
    const out = [];
    for (const el of document.querySelectorAll('.leaflet-control')) {
      const r = el.getBoundingClientRect();
      const x0 = Math.max(r.left, pop.left), x1 = Math.min(r.right, pop.right);
      const y0 = Math.max(r.top, pop.top), y1 = Math.min(r.bottom, pop.bottom);
      if (x1 - x0 < 2 || y1 - y0 < 2) continue;
      const hit = document.elementFromPoint((x0 + x1) / 2, (y0 + y1) / 2);
      out.push(!!(hit && hit.closest('.leaflet-popup')));
    }
    const w = window.innerWidth, h = window.innerHeight;
    return {clear: out, inside: pop.left >= -1 && pop.top >= -1 && pop.right <= w + 1
      && pop.bottom <= h + 1}; }"""


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["en", "fr", "pt"])
@pytest.mark.parametrize(("width", "height"), [(390, 844), (1280, 800)])
def test_kasai_reads_in_every_language_on_a_phone_and_a_screen(
    url, browser, lang, width, height
) -> None:
    """The title shows; the search finds Tshikapa; the town's
    popup opens above every control, inside the screen; the embed at 336 × 222 shows the
    title and the whole of the map's box."""
    watched = open_map(browser, f"{url}/maps/drc-kasai?lang={lang}", width, height)
    page = watched.page
    title = page.locator(".legend-title")
    assert title.is_visible() and MAPS["drc-kasai"].title.get(lang)[:12] in title.inner_text()
    page.fill("#place-search", "tshikapa")
    wait(page, "document.querySelectorAll('#place-results li').length >= 1")
    found = page.locator("#place-results li").all_inner_texts()
    assert found[0].startswith("Tshikapa"), found
    page.keyboard.press("Enter")
    assert popup(page, ".summary").startswith("Tshikapa")
    # Inside the screen once the map has panned to it, above every control.
    placed = wait(page, f"(({POPUP_CLEAR})()).inside && ({POPUP_CLEAR})()")
    assert all(placed["clear"]), placed
    shot(page, f"kasai-{lang}-{width}x{height}")
    watched.clean()
    page.context.close()

    embed = open_map(browser, f"{url}/embed/drc-kasai?lang={lang}", 336, 222)
    seen = embed.page.evaluate(
        "(() => { const b = window.riskMap.getBounds();"
        " return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()]; })()"
    )
    west, south, east, north = MAPS["drc-kasai"].bounds
    assert seen[0] <= west + 0.05 and seen[1] <= south + 0.05, seen
    assert seen[2] >= east - 0.05 and seen[3] >= north - 0.05, seen
    title = embed.page.locator(".legend-title")
    assert title.is_visible() and MAPS["drc-kasai"].title.get(lang)[:12] in title.inner_text()
    embed.clean()
    embed.page.context.close()
