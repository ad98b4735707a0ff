"""Benchmark of the map pages in headless Chromium, and of the static PNG.

Why: with the bundled data a map page must have its data drawn within 2 s of navigation and
weigh at most 1 MB without basemap tiles; a 1200 × 800 static PNG must take at most 2 s; and
100,000 incidents must stay smooth (grouped in clusters, the year filter answering at once).

How: against a build folder (default ``layers/build``, made by ``make run``), the server is
started on 127.0.0.1 (one uvicorn worker), then for every map of ``layers/maps.toml`` and
repeat a fresh browser context (empty cache) navigates to it at 1280 × 800. "Data drawn" is
the later of two moments the page itself records (``document.body.dataset``): ``drawnAt``,
the frame after every shown layer drew its view (the communities or their hexagons, mine
sites, dams, the incidents in their clusters), and ``tilesAt``, when every risk-surface tile
of the view had loaded; both in ms since navigation started, on the browser's clock. Page
weight is the sum of the response bodies as transferred (compressed where the server
gzipped them) that the page fetched from the service (the outside basemap's tiles excluded;
on this machine they fail anyway). The PNG is fetched ``--repeats`` times per map, each with
a slightly different view so that nothing is served from a cache.

``--incidents 100000`` also builds a copy of the build whose incidents are 100,000 draws of
the real ones (``tests/maps/resample.py``) and measures the Central African Republic map on
it: data drawn, weight, the time the year filter takes to redraw and recount, and the frame
times while the map is dragged with the mouse and dropped (the clusters of the new view drawn).

Run from the repository root (Debian's chromium, Playwright from the test extras)::

    .venv/bin/python bench/maps_bench.py --repeats 5 --incidents 100000

This is run by hand; it is not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geo_service.maps.definitions import load_maps  # noqa: E402
from tests.api.live import live_server  # noqa: E402
from tests.chromium import ARGS, CHROMIUM  # noqa: E402
from tests.maps.resample import resampled_build  # noqa: E402

BASEMAP_HOST = "tile.openstreetmap.org"
#: Every shown layer drawn, and (on maps with the surface) its tiles of the view loaded.
READY = (
    "document.body && document.body.dataset.drawn === '1' && ("
    "!document.querySelector('img.leaflet-tile[src*=\"/tiles/risk_surface/\"]') || "
    "(document.body.dataset.tilesAt && Array.from(document.querySelectorAll('img.leaflet-tile'))"
    ".filter(i => i.src.includes('/tiles/risk_surface/')).every(i => i.complete)))"
)
#: Records the time between frames until told to stop.
FRAMES = """() => { window.__frames = []; window.__stop = false; let last = performance.now();
  (function step(t) { window.__frames.push(t - last); last = t;
    if (!window.__stop) { requestAnimationFrame(step); } })(last); }"""


def drag(page: Any) -> list[float]:
    """Frame times (ms) while the map is dragged with the mouse across a third of the screen,
    then dropped (the view's clusters redrawn)."""
    page.evaluate(FRAMES)
    page.mouse.move(640, 400)
    page.mouse.down()
    for i in range(60):
        page.mouse.move(640 - 7 * i, 400 - 3 * i)
    page.mouse.up()
    wait(page, "document.body.dataset.drawn === '1'")
    page.wait_for_timeout(300)
    return page.evaluate("(() => { window.__stop = true; return window.__frames.slice(2); })()")


def wait(page: Any, expression: str, timeout: float = 60.0) -> None:
    """Poll until ``expression`` holds (the pages' CSP forbids the eval of wait_for_function)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(
        f"(() => {{ try {{ return !!({expression}); }} catch (e) {{ return false; }} }})()"
    ):
        if time.monotonic() > deadline:
            raise TimeoutError(expression)
        time.sleep(0.02)


def load(browser: Any, address: str) -> tuple[float, float, Any]:
    """Open ``address`` in a fresh context: (data drawn in s, weight in MB, the page)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    sizes: list[int] = []

    def on_response(response: Any) -> None:
        if BASEMAP_HOST in response.url:
            return
        try:  # bytes on the wire (gzipped where the server compressed)
            sizes.append(response.request.sizes()["responseBodySize"])
        except Exception:  # noqa: BLE001 - failed requests have no sizes
            pass

    page.on("response", on_response)
    page.goto(address, wait_until="commit")
    try:
        wait(page, READY)
    except TimeoutError as e:
        raise TimeoutError(f"{address}: never drawn ({e})") from None
    marks = page.evaluate("[document.body.dataset.drawnAt, document.body.dataset.tilesAt || 0]")
    drawn = max(float(m) for m in marks) / 1000.0
    page.wait_for_load_state("networkidle")
    return drawn, sum(sizes) / 1e6, page


def bench_pages(browser: Any, url: str, maps: list[str], repeats: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in maps:
        drawn, weight = [], []
        for _ in range(repeats):
            d, w, page = load(browser, f"{url}/maps/{name}")
            drawn.append(d)
            weight.append(w)
            page.context.close()
        results[name] = {"drawn_s": drawn, "weight_mb": weight}
    return results


def _fetch(address: str) -> float:
    t = time.perf_counter()
    with urllib.request.urlopen(address, timeout=60) as r:
        r.read()
    return time.perf_counter() - t


def bench_png(
    url: str, maps: dict[str, Any], repeats: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Each map's picture drawn anew (a slightly different view each time), and the same
    picture asked for again (served from the cache of rendered pictures)."""
    drawn, cached = {}, {}
    for name, definition in maps.items():
        west, south, east, north = definition.bounds
        addresses = []
        for i in range(repeats):
            d = (east - west) * 0.01 * (i + 1)
            bbox = f"{west + d:.4f},{south + d:.4f},{east + d:.4f},{north + d:.4f}"
            addresses.append(f"{url}/maps/{name}.png?bbox={bbox}&width=1200&height=800")
        drawn[name] = [_fetch(a) for a in addresses]
        cached[name] = [_fetch(a) for a in addresses]
    return drawn, cached


def bench_many(browser: Any, build_dir: Path, n: int, repeats: int) -> dict[str, Any]:
    """The Central African Republic map on a copy of the build with ``n`` incidents."""
    with tempfile.TemporaryDirectory() as tmp:
        builds = resampled_build(build_dir, Path(tmp), n)
        with live_server(builds) as url:
            drawn, weight, filters, frames, shown = [], [], [], [], []
            for _ in range(repeats):
                d, w, page = load(browser, f"{url}/maps/central-african-republic")
                drawn.append(d)
                weight.append(w)
                shown.append(
                    page.evaluate(
                        "[Number(document.body.dataset.incidents),"
                        " Number(document.body.dataset.incidentMarkers)]"
                    )
                )
                before = page.evaluate("document.body.dataset.incidents")
                t = time.perf_counter()
                page.evaluate(
                    "() => { const f = document.getElementById('incidents-from');"
                    " f.value = 2014; f.dispatchEvent(new Event('input')); }"
                )
                wait(page, f"document.body.dataset.incidents !== {before!r}", timeout=30)
                filters.append(time.perf_counter() - t)
                frames += drag(page)
                page.context.close()
    frames.sort()
    return {
        "incidents": n,
        "drawn_s": drawn,
        "weight_mb": weight,
        "in_view_and_marks": shown,
        "year_filter_s": filters,
        "pan_frame_ms_median": statistics.median(frames),
        "pan_frame_ms_p95": frames[int(len(frames) * 0.95)],
        "pan_frame_ms_max": frames[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-dir", type=Path, default=ROOT / "layers" / "build")
    parser.add_argument("--maps-file", type=Path, default=ROOT / "layers" / "maps.toml")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--incidents", type=int, default=0, help="also bench this many")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    maps = load_maps(args.maps_file)
    build_dir = args.build_dir.resolve()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        with live_server(build_dir) as url:
            pages = bench_pages(browser, url, list(maps), args.repeats)
            pngs, cached = bench_png(url, maps, args.repeats)
        many = bench_many(browser, build_dir, args.incidents, 3) if args.incidents else None
        browser.close()
    for name, r in pages.items():
        print(
            f"{name:26} data drawn {statistics.median(r['drawn_s']):.2f} s "
            f"(min {min(r['drawn_s']):.2f}, max {max(r['drawn_s']):.2f}); "
            f"page weight {statistics.median(r['weight_mb']):.2f} MB; "
            f"PNG 1200x800 {statistics.median(pngs[name]):.2f} s (max {max(pngs[name]):.2f}), "
            f"again {statistics.median(cached[name]) * 1000:.1f} ms"
        )
    if many:
        print(
            f"{many['incidents']:,} incidents: data drawn {statistics.median(many['drawn_s']):.2f} s "
            f"(max {max(many['drawn_s']):.2f}); weight {statistics.median(many['weight_mb']):.2f} MB; "
            f"in view / marks {many['in_view_and_marks'][0]}; year filter "
            f"{statistics.median(many['year_filter_s']):.2f} s; pan frames median "
            f"{many['pan_frame_ms_median']:.0f} ms, p95 {many['pan_frame_ms_p95']:.0f} ms, "
            f"max {many['pan_frame_ms_max']:.0f} ms"
        )
    print(json.dumps({"pages": pages, "png": pngs, "png_cached": cached, "many": many}))


if __name__ == "__main__":
    main()
