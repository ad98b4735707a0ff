"""Offline bundles (``riskmap bundle``): each focus map's bundle, unzipped and opened from
``file://`` in Chromium with every http(s) request failing, draws its layers, finds a place
by search and opens its popup, filters years and lists its table; the manifest catches a
changed file."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from geo_service.bundle import BundleError, gather, verify_bundle, write_bundle
from geo_service.cli import app as cli
from geo_service.settings import ApiSettings
from tests.maps.test_pages import MAPS, shot, wait

#: Every map but the overview (a continent: its bundle takes minutes; bench/README.md).
FOCUS = [m for m in MAPS if m != "overview"]
#: Bytes a bundle may take (Sierra Leone's Kono: 25 MB; the whole overview: 100 MB).
KONO_BYTES = 25 * 10**6


@pytest.fixture(scope="module")
def bundles(built, build_dir, tmp_path_factory) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    """Each focus map's anonymous bundle, written, checked and unzipped."""
    root = tmp_path_factory.mktemp("bundles")
    out = {}
    for map_id in FOCUS:
        zipped = write_bundle(
            gather(ApiSettings(build_dir=build_dir), map_id, "en"), root / f"{map_id}.zip"
        )
        meta = verify_bundle(zipped)
        assert meta["build_id"] == built.build_id and meta["role"] == "anonymous"
        folder = root / map_id
        with zipfile.ZipFile(zipped) as zf:
            zf.extractall(folder)
        out[map_id] = folder
    return out


def collection(folder: Path, layer: str) -> list[dict[str, Any]]:
    """The features of a bundle's data script."""
    text = (folder / "data" / f"{layer}.js").read_text(encoding="utf-8")
    body = text.split(f'.collections["{layer}"]=', 1)[1].rstrip(";")
    return json.loads(body)["features"]


def open_offline(browser: Any, folder: Path) -> tuple[Any, list[str], list[str]]:
    """The bundle's page from ``file://``, every http(s) request failed and recorded; the
    page, the requests that tried to leave, and the page's errors."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    outside: list[str] = []

    def refuse(route: Any) -> None:
        outside.append(route.request.url)
        route.abort()

    context.route(re.compile(r"^https?://"), refuse)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.goto((folder / "index.html").as_uri())
    wait(page, "document.body && document.body.dataset.drawn === '1'")
    return page, outside, errors


def _wanted(folder: Path, config: dict[str, Any]) -> tuple[str, str]:
    """A place to search for: the most populous community of the map's box, else the first
    official unit it draws."""
    west, south, east, north = MAPS[folder.name].bounds
    if "community_risk" in config["layers"]:
        inside = [
            f
            for f in collection(folder, "community_risk")
            if west <= f["geometry"]["coordinates"][0] <= east
            and south <= f["geometry"]["coordinates"][1] <= north
            and f["properties"]["name"]
        ]
        best = max(inside, key=lambda f: f["properties"].get("population") or 0)
        return "community_risk", best["properties"]["name"]
    where = MAPS[folder.name].where.get("risk_units", {})  # the units the map draws
    units = [
        f
        for f in collection(folder, "risk_units")
        if all(str(f["properties"].get(k)) == str(v) for k, v in where.items())
    ]
    return "risk_units", units[0]["properties"]["name"]


@pytest.mark.slow
@pytest.mark.parametrize("map_id", FOCUS)
def test_each_focus_map_works_offline(bundles, browser, map_id) -> None:
    folder = bundles[map_id]
    page, outside, errors = open_offline(browser, folder)
    config = page.evaluate("window.riskMapParts.config")
    assert config["offline"] is True
    # Its layers drawn: features from the bundle's data, the surface from its PMTiles.
    drawn = page.evaluate("RiskMap.drawn(window.riskMap)")
    data = page.evaluate("Object.assign({}, document.body.dataset)")
    shown = [x for x in config["layers"] if (folder / "data" / f"{x}.js").exists()]
    assert shown and any(drawn.get(x, 0) > 0 for x in shown), (drawn, data)
    assert int(data["basemap"]) > 0  # land, lakes and rivers from the bundle
    if "risk_surface" in config["layers"]:
        wait(page, "document.querySelectorAll('img.leaflet-tile[src^=\"blob:\"]').length > 0")
    # Search finds a place of the bundle, and choosing it opens its popup.
    layer, name = _wanted(folder, config)
    page.fill("#place-search", name[:12])
    wait(page, "document.querySelectorAll('#place-results li').length > 0")
    results = page.inner_text("#place-results")
    assert name in results, (name, results)
    index = page.evaluate(
        "(name) => Array.from(document.querySelectorAll('#place-results li strong'))"
        ".findIndex((s) => s.textContent === name)",
        name,
    )
    page.locator("#place-results li").nth(index).click()
    page.locator(".leaflet-popup").wait_for(timeout=15_000)
    wait(
        page,
        "!document.querySelector('.leaflet-popup').innerText.match(/Loading/)"
        " && document.querySelector('.leaflet-popup').innerText.length > 40",
    )
    text = page.inner_text(".leaflet-popup")
    assert name in text, text
    if layer == "community_risk":  # the score in words, and what it rests on
        assert "out of 100" in text and "Confidence:" in text, text
    shot(page, f"bundle-{map_id}-popup")
    page.keyboard.press("Escape")
    # The years of the incidents filter what is drawn.
    if "incidents" in config["layers"] and config["years"]:
        everything = int(page.evaluate("document.body.dataset.incidents || 0"))
        page.evaluate(
            "() => { const f = document.getElementById('incidents-from');"
            " const t = document.getElementById('incidents-to');"
            " t.value = 2013; f.value = 2013; f.dispatchEvent(new Event('input')); }"
        )
        wait(page, "document.getElementById('incidents-span').textContent === '2013–2013'")
        wait(page, f"Number(document.body.dataset.incidents) < {everything}")
        assert int(page.evaluate("document.body.dataset.incidents")) > 0
    # The data table of what is in view.
    if page.locator("#table-open").count():
        page.click("#table-open")
        wait(page, "document.querySelectorAll('dialog[open] tbody tr').length > 0")
        shot(page, f"bundle-{map_id}-table")
        page.keyboard.press("Escape")
    shot(page, f"bundle-{map_id}")
    assert not outside, outside[:5]
    assert not errors, errors[:5]
    page.context.close()


def test_bundle_holds_what_it_says_and_the_manifest_catches_changes(
    bundles, build_dir, tmp_path
) -> None:
    kono = bundles["sierra-leone-kono"]
    files = {p.relative_to(kono).as_posix() for p in kono.rglob("*") if p.is_file()}
    assert {"index.html", "README.txt", "sources.html", "manifest.json"} <= files
    assert "data/risk_surface.pmtiles.js" in files and "assets/riskmap/offline.js" in files
    assert sum((kono / f).stat().st_size for f in files) <= KONO_BYTES
    meta = json.loads((kono / "manifest.json").read_text())
    assert set(meta["files"]) == files - {"manifest.json"}
    readme = (kono / "README.txt").read_text(encoding="utf-8")
    assert MAPS["sierra-leone-kono"].title.get("en") in readme and "index.html" in readme
    assert meta["build_id"] in readme
    # The page fetches nothing: no http(s) address is loaded by it (links only).
    page = (kono / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"""(?:src|@import|url\()\s*=?\s*["']?https?://""", page)
    assert "sources.html" in page and "tile.openstreetmap.org" not in page
    # A changed or added file is named by --verify, which exits 1.
    zipped = tmp_path / "kono.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        for name in sorted(files):
            data = (kono / name).read_bytes()
            zf.writestr(name, data + b" " if name == "data/mine_sites.js" else data)
        zf.writestr("extra.txt", b"x")
    with pytest.raises(BundleError, match="changed: data/mine_sites.js"):
        verify_bundle(zipped)
    result = CliRunner().invoke(cli, ["bundle", "--verify", str(zipped)])
    assert result.exit_code == 1
    assert "changed: data/mine_sites.js" in result.output
    assert "not in the manifest: extra.txt" in result.output


def test_bundle_command_names_bad_input(build_dir, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RISKMAP_BUILD_DIR", str(build_dir))
    runner = CliRunner()
    bad = runner.invoke(cli, ["bundle", "nowhere", "--out", str(tmp_path / "x.zip")])
    assert bad.exit_code == 2 and "no map 'nowhere'" in bad.output
    assert "sierra-leone-kono" in bad.output
    lang = runner.invoke(cli, ["bundle", "overview", "--out", "x.zip", "--lang", "de"])
    assert lang.exit_code == 2 and "--lang" in lang.output
    role = runner.invoke(cli, ["bundle", "overview", "--out", "x.zip", "--role", "boss"])
    assert role.exit_code == 2 and "analyst" in role.output
    assert not (tmp_path / "x.zip").exists()


def test_tiles_left_out_of_a_bundle_have_no_value(built, build_dir) -> None:
    """A bundle asks only for the raster tiles over a coarse cell with a value: the archive
    holds every tile with a value that asking for every tile of the area gives."""
    from fastapi.testclient import TestClient
    from PIL import Image
    from pmtiles.reader import MemorySource, all_tiles

    from geo_service.api.app import create_app
    from geo_service.bundle.contents import _area, _pmtiles

    app = create_app(ApiSettings(build_dir=build_dir))
    client = TestClient(app)
    raster = app.state.builds.current().store.raster("risk_surface")
    box = _area(MAPS["sierra-leone-kono"])

    def painted(archive: bytes | None) -> dict[tuple[int, int, int], bytes]:
        assert archive is not None
        tiles = all_tiles(MemorySource(archive))
        return {
            zxy: data
            for zxy, data in tiles
            if Image.open(io.BytesIO(data)).convert("RGBA").getchannel("A").getbbox()
        }

    def quiet(label: str, done: int, total: int) -> None:
        return None

    chosen = painted(_pmtiles(client, "risk_surface", box, raster.native_zoom, quiet, raster.path))
    every = painted(_pmtiles(client, "risk_surface", box, raster.native_zoom, quiet))
    assert chosen == every and len(every) > 20
