"""Map styles: a MapLibre style per map and a QGIS style per layer, made from the definitions.

The colours, classes and symbols are read here from ``layers/layers.toml`` itself, not through
the code that makes the styles, so a style that drifts from the definitions fails. MapLibre GL
JS (from npm, served by the service) draws each style in real headless Chromium, with every
request to anywhere but the service refused: it must draw our layers with no error, each dot
in the colour its class and confidence give. The style is checked against the style
specification's own validator (``gl-style-validate``, installed with MapLibre). QGIS is not
installed here: its styles are checked as XML, for the renderer, classes, colours and labels
QGIS reads. Screenshots land in ``test-artifacts/screenshots`` (``style-<map>.png``).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import time
import tomllib
from collections.abc import Iterator
from typing import Any
from xml.etree import ElementTree

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from geo_service.api.app import create_app
from geo_service.api.auth import file_line, new_token
from geo_service.maps.definitions import load_maps
from geo_service.settings import ApiSettings
from geo_service.store.base import Access
from tests.conftest import ROOT, in_ci
from tests.maps.test_pages import SHOTS

DEFINITIONS = tomllib.loads((ROOT / "layers" / "layers.toml").read_text(encoding="utf-8"))
MAPS = load_maps(ROOT / "layers" / "maps.toml")
STYLE = "application/vnd.mapbox.style+json"
QML = "application/vnd.qgis.qml"
VALIDATOR = ROOT / "node_modules/@maplibre/maplibre-gl-style-spec/dist/gl-style-validate.mjs"
#: Maps drawn in the browser: every kind of layer between them (units, communities, sites and
#: villages; dams; incidents).
BROWSER_MAPS = ("sierra-leone-kono", "brazil-minas-gerais", "central-african-republic")


def classes(layer: str) -> list[tuple[str, str]]:
    """A layer's classes as layers.toml writes them: value, colour."""
    return [(c["value"], c["colour"].lower()) for c in DEFINITIONS[layer]["classes"]["values"]]


def style_of(client: TestClient, map_id: str, **params: str) -> dict[str, Any]:
    r = client.get(f"/styles/{map_id}", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == STYLE
    return r.json()


def layer(style: dict[str, Any], layer_id: str) -> dict[str, Any]:
    found = [x for x in style["layers"] if x["id"] == layer_id]
    assert found, f"no style layer {layer_id}: {[x['id'] for x in style['layers']]}"
    return found[0]


def urls(node: Any) -> Iterator[str]:
    """Every URL a style names."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("url", "data", "sprite") and isinstance(v, str):
                yield v
            else:
                yield from urls(v)
    elif isinstance(node, list):
        for v in node:
            yield from urls(v)


# ---- the MapLibre style ------------------------------------------------------------------


def test_every_map_has_a_style_of_its_layers_with_absolute_urls(client, built) -> None:
    catalog = built.catalog["layers"]
    for map_id, definition in MAPS.items():
        style = style_of(client, map_id)
        assert style["version"] == 8 and style["name"] == definition.title.en
        drawn = [x for x in definition.layers if x in catalog]
        # A layer's restricted rows as cells: its areas, a source of their own.
        areas = [catalog[x]["areas"] for x in drawn if catalog[x].get("areas")]
        assert set(style["sources"]) == {"basemap", *drawn, *areas}, map_id
        for x in drawn + areas:
            assert style["sources"][x]["url"] == f"http://testserver/tiles/{x}/tilejson.json"
            kind = "raster" if catalog[x]["kind"] == "raster" else "vector"
            assert style["sources"][x]["type"] == kind
            sourced = [s for s in style["layers"] if s.get("source") == x]
            assert sourced and all(s.get("source-layer", x) == x for s in sourced), x
        assert all(u.startswith("http://testserver/") for u in urls(style)), map_id
        assert style["sources"]["basemap"] == {
            "type": "geojson",
            "data": "http://testserver/basemap.json",
        }
        # No text is drawn: the style needs no glyphs from anywhere.
        assert "glyphs" not in style and all(
            s["type"] != "symbol" or "text-field" not in s.get("layout", {})
            for s in style["layers"]
        )
    assert style_of(client, "overview", lang="pt")["name"] == MAPS["overview"].title.pt
    proxied = client.get("/styles/overview", headers={"Host": "maps.example.org"}).json()
    assert proxied["sprite"] == "http://maps.example.org/styles/sprite"


def test_style_colours_and_classes_are_the_definitions(client, built) -> None:
    style = style_of(client, "sierra-leone-kono")
    communities = classes("community_risk")
    other = DEFINITIONS["community_risk"]["other"]["colour"]
    dot = layer(style, "community_risk-dot")["paint"]
    # ["case", hollow, "#ffffff", ["match", ["get", "risk_class"], v1, c1, …, other]]
    match = dot["circle-color"][3]
    assert match[:2] == ["match", ["get", "risk_class"]]
    assert list(zip(match[2:-1:2], match[3:-1:2], strict=True)) == communities
    assert match[-1] == other
    assert dot["circle-radius"] == DEFINITIONS["community_risk"]["size"] / 2
    # Restricted rows are public as cells, a source of their own, coloured by their highest
    # score's class: the classes' lower bounds are the build's.
    bounds = built.catalog["risk"]["parameters"]["classes"]
    cells = layer(style, "community_risk_areas-area")
    assert cells["source"] == cells["source-layer"] == "community_risk_areas"
    assert cells["metadata"]["riskmap:layer"] == "community_risk"  # shown with its layer
    assert style["sources"]["community_risk_areas"]["url"].endswith(
        "/tiles/community_risk_areas/tilejson.json"
    )
    assert not any(x["id"] == "community_risk-area" for x in style["layers"])
    cell = cells["paint"]["fill-color"]
    step = cell[2]
    assert step[:3] == ["step", ["get", "max_score"], communities[0][1]]
    assert step[3::2] == [bounds["medium"], bounds["high"], bounds["very_high"]]
    assert step[4::2] == [c for _, c in communities[1:]]
    units = layer(style, "risk_units-area")
    assert units["paint"]["fill-color"][2:-1] == [x for pair in classes("risk_units") for x in pair]
    # The map's filter (chiefdoms: level 3) and its hidden layer (the population grid).
    assert ["==", ["to-string", ["get", "level"]], "3"] in units["filter"]
    assert layer(style, "worldpop_sle_2019-raster")["layout"] == {"visibility": "none"}
    assert "layout" not in layer(style, "risk_surface-raster")
    places = layer(style, "osm_places_sle-dot")
    assert places["minzoom"] == DEFINITIONS["osm_places_sle"]["min_zoom"]
    assert places["paint"]["circle-color"] == DEFINITIONS["osm_places_sle"]["colour"]
    order = [x["id"] for x in style["layers"]]
    assert order.index("risk_surface-raster") < order.index("risk_units-area")
    assert order.index("community_risk-dot") < order.index("mine_sites-icon")
    dams = style_of(client, "brazil-minas-gerais")
    image = layer(dams, "tailings_consequence-icon")["layout"]["icon-image"]
    assert image[1] == "tailings_consequence/"
    known = image[2][1][2][1]
    assert known == [v for v, _ in classes("tailings_consequence")]


def test_style_follows_the_style_specification(client, tmp_path) -> None:
    node = shutil.which("node")
    if node is None or not VALIDATOR.exists():
        if in_ci():
            pytest.fail("node and the npm packages are needed ('make test' installs them)")
        pytest.skip("node or maplibre-gl's style validator is not installed")
    files = []
    for map_id in MAPS:
        path = tmp_path / f"{map_id}.json"
        path.write_text(json.dumps(style_of(client, map_id)), encoding="utf-8")
        files.append(str(path))
    run = subprocess.run(
        [node, str(VALIDATOR), *files], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0 and not run.stdout.strip(), run.stdout + run.stderr


def test_style_answers_304_and_names_what_is_wrong(client) -> None:
    first = client.get("/styles/overview")
    again = client.get("/styles/overview", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    missing = client.get("/styles/atlantis")
    assert missing.status_code == 404 and "atlantis" in missing.json()["description"]
    assert client.get("/styles/overview?zoom=3").status_code == 400
    assert client.get("/styles/overview?f=xml").status_code == 400
    listed = client.get("/styles").json()["styles"]
    assert [s["id"] for s in listed] == list(MAPS)
    kono = next(s for s in listed if s["id"] == "sierra-leone-kono")
    types = {(x["rel"], x["type"]) for x in kono["links"]}
    assert ("stylesheet", STYLE) in types and ("stylesheet", QML) in types
    assert all(x["href"].startswith("http://testserver/styles/") for x in kono["links"])
    # A browser asking for HTML gets the map drawn from the style, in its language.
    page = client.get(
        "/styles/sierra-leone-kono", headers={"Accept": "text/html"}, params={"lang": "fr"}
    )
    assert page.headers["content-type"].startswith("text/html")
    assert "Styles QGIS, un par couche" in page.text
    assert 'data-style="http://testserver/styles/sierra-leone-kono?lang=fr"' in page.text
    assert "http://testserver/styles/sierra-leone-kono/community_risk.qml?lang=fr" in page.text
    assert "unsafe" not in page.headers["content-security-policy"]


def test_sprite_holds_each_icon_in_its_class_colour(client) -> None:
    for suffix, ratio in (("", 1), ("@2x", 2)):
        index = client.get(f"/styles/sprite{suffix}.json").json()
        picture = client.get(f"/styles/sprite{suffix}.png")
        assert picture.headers["content-type"] == "image/png"
        sheet = Image.open(io.BytesIO(picture.content)).convert("RGBA")
        for layer_id, triangle in (("tailings_consequence", True), ("risk_units", False)):
            for value, colour in classes(layer_id):
                box = index[f"{layer_id}/{value}"]
                assert box["pixelRatio"] == ratio
                # The symbol's middle (a triangle's a little lower) is the class's colour.
                x = box["x"] + box["width"] // 2
                y = box["y"] + box["height"] * (3 if triangle else 2) // 5
                *channels, alpha = sheet.getpixel((x, y))
                want = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
                assert alpha == 255, (layer_id, value)
                assert max(abs(p - q) for p, q in zip(channels, want, strict=True)) <= 2
                # Dams where a failure is recorded have their own image.
                assert (f"{layer_id}/{value}/failed" in index) == triangle
        assert "concessions/other" in index
    one = client.get("/styles/sprite.json").json()["concessions/other"]
    two = client.get("/styles/sprite@2x.json").json()["concessions/other"]
    assert two["width"] == 2 * one["width"]


def test_styles_hold_no_data_the_same_for_everyone(built, build_dir, client) -> None:
    """An analyst's token (which sees restricted rows) gets the very same styles: they name
    the tiles, which answer as each caller may see, and hold nothing of the rows."""
    token = new_token()
    entry = (f"analyst:{file_line(token, Access.analyst).split()[0]}",)
    analyst = TestClient(create_app(ApiSettings(build_dir=build_dir, tokens=entry)))
    header = {"Authorization": f"Bearer {token}"}
    for path in (
        "/styles/central-african-republic",
        "/styles/central-african-republic/incidents.qml",
        "/styles/central-african-republic/incident_areas.qml",
        "/styles/sprite.png",
    ):
        theirs = analyst.get(path, headers=header)
        assert theirs.status_code == 200 and theirs.headers["cache-control"].startswith("private")
        assert theirs.content == client.get(path).content, path


# ---- QGIS styles -------------------------------------------------------------------------


def qml(client: TestClient, map_id: str, layer_id: str, **params: str) -> ElementTree.Element:
    r = client.get(f"/styles/{map_id}/{layer_id}.qml", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == QML
    return ElementTree.fromstring(r.content)


def options(symbol_layer: ElementTree.Element) -> dict[str, str]:
    found = symbol_layer.find("Option")
    assert found is not None
    return {o.get("name", ""): o.get("value", "") for o in found.findall("Option")}


def rgb(colour: str, alpha: int = 255) -> str:
    return ",".join(str(int(colour[i : i + 2], 16)) for i in (1, 3, 5)) + f",{alpha}"


def test_qml_of_a_classed_layer_has_its_classes_colours_and_labels(client) -> None:
    root = qml(client, "sierra-leone-kono", "community_risk", lang="fr")
    assert root.tag == "qgis" and root.findtext("layerGeometryType") == "0"
    renderer = root.find("renderer-v2")
    assert renderer is not None
    assert renderer.get("type") == "categorizedSymbol" and renderer.get("attr") == "risk_class"
    categories = renderer.findall("categories/category")
    values = DEFINITIONS["community_risk"]["classes"]["values"]
    assert [c.get("value") for c in categories] == [v["value"] for v in values] + [""]
    assert [c.get("label") for c in categories[:-1]] == [v["label"]["fr"] for v in values]
    assert categories[-1].get("label", "").startswith("pas de donn")
    symbols = {s.get("name"): s for s in renderer.findall("symbols/symbol")}
    wanted = [*classes("community_risk"), ("", DEFINITIONS["community_risk"]["other"]["colour"])]
    for category, (_, colour) in zip(categories, wanted, strict=True):
        symbol = symbols[category.get("symbol")]
        assert symbol.get("type") == "marker"
        marker = symbol.find("layer")
        assert marker is not None and marker.get("class") == "SimpleMarker"
        o = options(marker)
        assert o["color"] == rgb(colour) and o["name"] == "circle"
        assert o["size"] == str(DEFINITIONS["community_risk"]["size"])
    # Low confidence is hollow: a white fill, the class's colour as a ring (QGIS expressions).
    low = symbols[categories[0].get("symbol")].find("layer")
    assert low is not None
    expressions = {
        p.get("name"): p.find("Option[@name='expression']").get("value")  # type: ignore[union-attr]
        for p in low.findall("data_defined_properties/Option/Option[@name='properties']/Option")
    }
    assert expressions["fillColor"] == "if(\"confidence\" = 'low', '#ffffff', '#1a386f')"
    assert classes("community_risk")[0][1] == "#1a386f"


def test_qml_of_areas_dams_and_points(client) -> None:
    units = qml(client, "sierra-leone-chiefdoms", "risk_units")
    assert units.findtext("layerGeometryType") == "2"
    fills = units.findall("renderer-v2/symbols/symbol/layer")
    assert {f.get("class") for f in fills} == {"SimpleFill"}
    # Filled as the page fills them: 35 % opaque, outlined in the definition's outline.
    o = options(fills[0])
    assert o["color"] == rgb(classes("risk_units")[0][1], 89)
    assert o["outline_color"] == rgb(DEFINITIONS["risk_units"]["outline"])
    dams = qml(client, "brazil-minas-gerais", "tailings_consequence")
    marker = dams.find("renderer-v2/symbols/symbol/layer")
    assert marker is not None and options(marker)["name"] == "triangle"
    incidents = qml(client, "central-african-republic", "incidents")
    renderer = incidents.find("renderer-v2")
    assert renderer is not None and renderer.get("type") == "singleSymbol"
    dot = incidents.find("renderer-v2/symbols/symbol/layer")
    assert dot is not None and options(dot)["color"] == rgb(DEFINITIONS["incidents"]["colour"])
    assert incidents.findtext("layerGeometryType") == "0"
    # The restricted reports' cells (their own collection): dashed areas, 12 % opaque.
    cells = qml(client, "central-african-republic", "incident_areas")
    assert cells.findtext("layerGeometryType") == "2"
    fill = cells.find("renderer-v2/symbols/symbol/layer")
    assert fill is not None and fill.get("class") == "SimpleFill"
    o = options(fill)
    assert o["color"] == rgb(DEFINITIONS["incidents"]["colour"], 31)
    assert o["outline_style"] == "dash"
    # Restricted places' cells: a category per class of their highest score.
    places = qml(client, "central-african-republic", "community_risk_areas")
    renderer = places.find("renderer-v2")
    assert renderer is not None and renderer.get("type") == "categorizedSymbol"
    assert renderer.get("attr", "").startswith('CASE WHEN "max_score" >= ')
    assert [c.get("value") for c in renderer.findall("categories/category")] == [
        v["value"] for v in DEFINITIONS["community_risk"]["classes"]["values"]
    ] + [""]
    villages = qml(client, "sierra-leone-kono", "osm_places_sle")
    assert villages.get("hasScaleBasedVisibilityFlag") == "1"
    r = client.get("/styles/sierra-leone-kono/risk_surface.qml")
    assert r.status_code == 404 and "community_risk" in r.json()["description"]
    assert client.get("/styles/sierra-leone-kono/incidents.qml").status_code == 404
    assert client.get("/styles/atlantis/incidents.qml").status_code == 404


# ---- MapLibre GL JS in Chromium ----------------------------------------------------------

#: Each community dot drawn, with its properties and the colours MapLibre evaluated for it.
RENDERED_DOTS = """() => window.styleMap.map.queryRenderedFeatures(
    {layers: ['community_risk-dot', 'community_risk-group']})
  .map(f => ({cls: f.properties.risk_class, confidence: f.properties.confidence,
    group: f.layer.id.endsWith('-group'), count: f.properties.point_count,
    fill: f.layer.paint['circle-color'], stroke: f.layer.paint['circle-stroke-color']}))"""
RENDERED_LAYERS = """() => { const seen = {};
  window.styleMap.map.queryRenderedFeatures().forEach(f => {
    seen[f.layer.id] = (seen[f.layer.id] || 0) + 1; });
  return seen; }"""


def hex_of(colour: dict[str, float]) -> str:
    return "#" + "".join(f"{round(colour[c] * 255):02x}" for c in "rgb")


def wait_for(page: Any, expression: str, timeout: float = 60.0) -> Any:
    """Poll a JS expression until it is truthy (the page's CSP allows no eval of strings)."""
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(
            f"(() => {{ try {{ return {expression}; }} catch (e) {{ return null; }} }})()"
        )
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        time.sleep(0.2)


@pytest.mark.slow
def test_maplibre_draws_each_style_in_chromium(url, browser) -> None:
    colours = dict(classes("community_risk"))
    other = DEFINITIONS["community_risk"]["other"]["colour"]
    for map_id in BROWSER_MAPS:
        context = browser.new_context(viewport={"width": 1000, "height": 760})
        page = context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda e, p=problems: p.append(f"page error: {e}"))
        page.on(
            "console",
            lambda m, p=problems: p.append(m.text) if m.type == "error" else None,
        )
        page.on(
            "response",
            lambda r, p=problems: p.append(f"{r.status} {r.url}") if r.status >= 400 else None,
        )
        # Nothing but the service: the style must draw with no outside network.
        outside: list[str] = []
        page.route(
            "**/*",
            lambda route, o=outside: (
                route.continue_()
                if route.request.url.startswith("http://127.0.0.1")
                else (o.append(route.request.url), route.abort())
            ),
        )
        page.goto(f"{url}/styles/{map_id}?f=html")
        wait_for(page, "document.getElementById('style-map').dataset.drawn === '1'")
        assert page.evaluate("window.styleMap.errors") == [], map_id
        drawn = page.evaluate(RENDERED_LAYERS)
        # Communities one by one, or in groups where the tiles group them (below the
        # layer's detail zoom).
        shown = drawn.get("community_risk-dot", 0) + drawn.get("community_risk-group", 0)
        assert shown >= 5, (map_id, drawn)
        assert drawn.get("basemap-land", 0) > 0, (map_id, drawn)
        wanted = {
            "sierra-leone-kono": ("risk_units-area", "mine_sites-icon"),
            "brazil-minas-gerais": ("tailings_consequence-icon", "risk_units-area"),
            "central-african-republic": (
                "incidents-dot",
                "mine_sites-icon",
                "incident_areas-area",
            ),
        }[map_id]
        assert all(drawn.get(x, 0) > 0 for x in wanted), (map_id, drawn)
        # Every dot in the colour of its class; low confidence hollow; no data grey; a group
        # in the colour of the highest-scoring community it holds, ringed in white.
        for d in page.evaluate(RENDERED_DOTS):
            if d["group"]:
                assert d["count"] >= 2 and hex_of(d["stroke"]) == "#ffffff", d
                want = colours.get(d["cls"], other)
                assert hex_of(d["fill"]) == want, d
            elif d["cls"] not in colours:
                assert hex_of(d["fill"]) == other, d
            elif d["confidence"] == "low":
                assert (hex_of(d["fill"]), hex_of(d["stroke"])) == ("#ffffff", colours[d["cls"]])
            else:
                assert hex_of(d["fill"]) == colours[d["cls"]], d
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.locator("#style-map").screenshot(path=str(SHOTS / f"style-{map_id}.png"))
        assert not problems, (map_id, problems)
        assert not outside, (map_id, outside)
        context.close()
