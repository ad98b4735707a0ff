"""The pages other than the map (the API's pages, the maps' index and sources, errors): one
layout and one stylesheet from the templates, in the visitor's language, under a policy with
no inline style; the full record of a feature readable, in French too, on a 390 px phone."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from geo_service.api.app import create_app
from geo_service.maps.page import decimal
from geo_service.render.record import NONE, Formatter, Shown, number
from geo_service.render.templates import language_links, render
from geo_service.settings import ApiSettings
from tests.api.live import live_server
from tests.chromium import chromium
from tests.conftest import ROOT

SHOTS = ROOT / "test-artifacts" / "screenshots"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
ITABIRITO = "/collections/community_risk/items/geonames_brazil:3460954"
PAGES = [
    "/?f=html",
    "/conformance?f=html",
    "/collections?f=html",
    "/collections/incidents?f=html",
    "/collections/incidents/queryables?f=html",
    "/collections/community_risk/items?f=html&limit=20",
    f"{ITABIRITO}?f=html",
    "/collections/incidents/items/ucdp_ged_caf:36210?f=html",
    "/maps",
    "/maps/central-african-republic/sources",
]


@pytest.fixture(scope="module")
def client(built, build_dir) -> TestClient:
    return TestClient(create_app(ApiSettings(build_dir=build_dir)))


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def url(built, build_dir) -> Iterator[str]:
    with live_server(build_dir) as u:
        yield u


def _directives(header: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in header.split("; ")}


@pytest.mark.parametrize("lang", ["en", "fr"])
@pytest.mark.parametrize("path", PAGES)
def test_every_page_has_the_one_layout_and_stylesheet_and_no_inline_style(
    client, path, lang
) -> None:
    r = client.get(f"{path}{'&' if '?' in path else '?'}lang={lang}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), r.text
    text = r.text
    assert text.startswith("<!doctype html>") and f'<html lang="{lang}">' in text
    sheets = re.findall(r'<link rel="stylesheet" href="([^"]+)">', text)
    assert len(sheets) == 1 and re.search(r"/assets/riskmap/site\.css\?v=\w+$", sheets[0])
    css = client.get(sheets[0])
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "<style" not in text and " style=" not in text and "<script" not in text
    assert (
        text.count('<meta name="viewport"') == 1 and 'href="http://testserver/favicon.ico"' in text
    )
    # The language switch: the same page and query, only ``lang`` changed.
    switch = re.findall(r'<a href="([^"]+)" hreflang="(\w+)"', text)
    assert [code for _, code in switch] == ["en", "fr", "pt"]
    for href, code in switch:
        target = html.unescape(href)
        assert target.split("?")[0] == f"http://testserver{path.split('?')[0]}"
        assert f"lang={code}" in target and target.count("lang=") == 1
        for kept in re.findall(r"[?&]((?!lang=)[^&]+)", path):
            assert kept in target, (kept, target)
    # No inline style anywhere, so the policy allows none, nor an inline script.
    csp = r.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert _directives(csp)["style-src"] == ["'self'"]


def test_the_map_pages_need_no_inline_allowance(client) -> None:
    """The map pages too: their script sets styles through the DOM, never as markup (the
    browser tests fail on any policy violation Chromium reports)."""
    for path in ("/maps/overview", "/embed/central-african-republic?lang=fr"):
        csp = client.get(path).headers["content-security-policy"]
        assert "unsafe-inline" not in csp and "style-src-attr" not in csp, path


def test_pages_speak_the_language_asked_for(client) -> None:
    fr = client.get("/collections?f=html&lang=fr").text
    assert '<th scope="col">Couche</th>' in fr and "Scores de risque des communautés" in fr
    assert "26\u202f074" in fr  # counts written the French way
    pt = client.get("/collections?f=html", headers={"Accept-Language": "pt-BR,pt;q=0.9"}).text
    assert '<html lang="pt">' in pt and "Coleções" in pt
    items = client.get("/collections/incidents/items?f=html&lang=fr&limit=3&offset=3").text
    assert "entités correspondent." in items and "Affichage de 4 à 6." in items
    assert 'rel="next"' in items and 'rel="prev"' in items and "Page suivante" in items
    assert "Télécharger\u00a0:" in items  # a non-breaking space before the colon
    # Links between the pages keep the language.
    assert (
        "/collections/incidents/items?f=html&amp;lang=fr"
        in client.get("/collections/incidents?f=html&lang=fr").text
    )


def test_lang_is_documented_and_json_does_not_change(client) -> None:
    spec = client.get("/openapi.json").json()["paths"]
    for path in (
        "/",
        "/conformance",
        "/collections",
        "/collections/{collectionId}",
        "/collections/{collectionId}/queryables",
        "/collections/{collectionId}/items",
        "/collections/{collectionId}/items/{featureId}",
        "/maps",
    ):
        names = {p.get("name") for p in spec[path]["get"]["parameters"]}
        assert "lang" in names, path
    for path in ("/collections", "/collections/incidents", "/conformance", "/"):
        plain = client.get(path)
        assert client.get(path, params={"lang": "fr"}).content == plain.content, path
    plain, french = client.get(ITABIRITO).json(), client.get(f"{ITABIRITO}?lang=fr").json()
    assert french.pop("links") != plain.pop("links") and french == plain  # only "self" differs
    r = client.get(f"{ITABIRITO}?f=html&lang=fr&colour=red")
    assert r.status_code == 400 and "colour" in r.json()["description"]


def test_the_full_record_is_a_list_of_labelled_values_in_french(client) -> None:
    record = client.get(ITABIRITO).json()["properties"]
    assert record["factors_missing"] and record["confidence_reasons"]  # lists, as tested
    r = client.get(f"{ITABIRITO}?f=html&lang=fr")
    assert r.status_code == 200
    text = r.text
    assert "<table" not in text and text.count("<dt>") >= len(record) >= 40
    assert "<h1>Itabirito</h1>" in text and 'href="http://testserver/maps?lang=fr"' in text
    for words in (
        "<dt>Facteurs sans données ici</dt>",
        "<dd>pression des concessions, intensité des incidents</dd>",
        "<dt>Pourquoi la confiance n&#39;est pas élevée</dt>",
        "<dd>tous les facteurs n&#39;ont pas de données ici</dd>",
        "<dt>Niveau de risque</dt>\n<dd>très élevé</dd>",
        "<dt>Pays</dt>\n<dd>Brésil (BRA)</dd>",
        f"<dd>{decimal(record['score'], 'fr', 1)}</dd>",
        "<dd>53\u202f365</dd>",  # the population
        "Exposition aux résidus miniers\u00a0: preuves",
        "Pas de données ici pour\u00a0: pression des concessions",  # the caveat, in French
    ):
        assert words in text, words
    # No Python or JSON spelling of a value: no list's brackets, no None or nan.
    body = text.split("<main>")[1]
    assert not re.search(r"\[\s*['\"]", body) and "None" not in body and "nan" not in body
    assert "concession_pressure" not in body  # the words, not the keys
    # Evidence ids link to their own records, in the same language.
    dam = record["tailings_exposure_evidence"][0]
    link = f'<a href="http://testserver/collections/tailings_dams/items/{dam}?f=html&amp;lang=fr">'
    assert link in text
    assert client.get(html.unescape(link[9:-2])).status_code == 200


def test_values_are_written_for_people() -> None:
    fr = Formatter("fr", "http://x/", {"ucdp": "incidents"}, {"ucdp": "UCDP GED"})
    assert number(1234.5, "fr") == "1\u202f234,5" and number(0.000412, "en") == "0.000412"
    assert number(0.5, "pt") == "0,5" and number(12.0, "en") == "12"
    assert fr.show("runout_p50_km", np.float64(3.25)) == Shown("3,25 km")
    assert fr.show("height_m", 40) == Shown("40 m")
    assert fr.show("score", float("nan")) is NONE and fr.show("anything", None) is NONE
    assert fr.show("failed", np.True_) == Shown("oui")
    assert fr.show("date", "2009-02-20") == Shown("20 février 2009")
    assert fr.show("type", "one-sided").text == "violence unilatérale (contre des civils)"
    assert fr.show("source", "ucdp") == Shown("UCDP GED")
    shown = fr.show("factors_missing", np.array(["tailings_exposure", "incident_intensity"]))
    assert shown.inline and [s.text for s in shown.items or ()] == [
        "exposition aux résidus miniers",
        "intensité des incidents",
    ]
    evidence = fr.show("incident_intensity_evidence", ["ucdp:1", "other:2"])
    assert [s.href for s in evidence.items or ()] == [
        "http://x/collections/incidents/items/ucdp:1?f=html&lang=fr",
        None,
    ]
    nested = fr.show("extra", {"height_m": 2.5, "colour": ["red", "blue"]})
    assert nested.pairs == (
        ("Hauteur", Shown("2,5 m")),
        ("colour", Shown(items=(Shown("red"), Shown("blue")), inline=True)),
    )
    assert fr.label("some_field_nobody_named") == "some_field_nobody_named"
    assert fr.show("source_url", "https://ucdp.uu.se/event/1").href == "https://ucdp.uu.se/event/1"


def test_what_the_data_says_is_escaped() -> None:
    hostile = '<script>alert("x")</script>'
    rows = Formatter("en", "http://x/").rows(
        {"name": hostile, "description": f"a {hostile} b", "tags": [hostile]}
    )
    page = render(
        "record.html",
        lang="en",
        base="http://x/",
        here='http://x/collections/c/items/1?f=html&q="><script>',
        collection_id="c",
        feature_id=hostile,
        heading=hostile,
        layer_title=hostile,
        rows=rows,
        json_url='http://x/"><script>',
    ).decode()
    assert "<script" not in page and "&lt;script&gt;" in page
    assert page.count("&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") >= 4
    links = language_links('http://x/p?a=1&b="><script>&lang=fr', "fr")
    assert links[0]["href"] == "http://x/p?a=1&b=%22%3E%3Cscript%3E&lang=en"


def test_errors_are_a_page_for_a_browser_and_json_for_the_rest(client) -> None:
    page = client.get("/collections/nope?lang=fr", headers={"Accept": BROWSER})
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "<h1>Page introuvable</h1>" in page.text and "no collection" in page.text.lower()
    assert (
        "<style" not in page.text and "unsafe-inline" not in page.headers["content-security-policy"]
    )
    bad = client.get("/collections/incidents/items?limit=0", headers={"Accept": BROWSER})
    assert bad.status_code == 400 and "Cette adresse" not in bad.text  # English by default
    assert "<h1>This address has a mistake</h1>" in bad.text and "limit" in bad.text
    for headers, url in (
        ({}, "/collections/nope?lang=fr"),
        ({"Accept": "application/json"}, "/collections/nope"),
        ({"Accept": BROWSER}, "/collections/incidents/items?limit=0&f=csv"),
    ):
        r = client.get(url, headers=headers)
        assert r.status_code in (400, 404) and r.json()["code"], url
        assert "Accept" in r.headers["vary"]  # a cache keeps the page and the JSON apart


@pytest.mark.slow
def test_the_french_record_fits_a_phone(url, browser) -> None:
    """390 × 844 (a common phone): the full record reads without sideways scrolling, and the
    long table of items scrolls inside its own box, not the page; no policy is broken."""
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on(
        "response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None
    )
    try:
        for path in (
            f"{ITABIRITO}?f=html&lang=fr",
            "/collections/community_risk/items?f=html&lang=fr&limit=50",
            "/collections?f=html&lang=pt",
            "/collections/incidents?f=html&lang=fr",
            "/collections/incidents/queryables?f=html&lang=fr",
            "/?f=html&lang=fr",
            "/maps?lang=fr",
            "/maps/central-african-republic/sources?lang=fr",
        ):
            page.goto(url + path)
            page.wait_for_load_state("networkidle")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (path, width)
            styled = page.evaluate("getComputedStyle(document.body).fontFamily")
            assert "system-ui" in styled, path  # the stylesheet applied
        page.goto(url + f"{ITABIRITO}?f=html&lang=fr")
        page.wait_for_load_state("networkidle")
        box = page.evaluate(
            "(() => { const d = document.querySelector('dl.record dd');"
            " return d.getBoundingClientRect().right; })()"
        )
        assert box <= 390
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "record-fr-390.png"), full_page=True)
        page.goto(url + "/collections/community_risk/items?f=html&lang=fr&limit=50")
        inner = page.evaluate(
            "(() => { const s = document.querySelector('.scroll');"
            " return [s.scrollWidth, s.clientWidth]; })()"
        )
        assert inner[0] > inner[1]  # the table is wider than the phone and scrolls in its box
        assert not problems, problems
    finally:
        context.close()
