"""Benchmark of the map pages in headless Chromium, and of the static PNG.

Why: with the bundled data a map page must have its data drawn within 2 s of navigation and
weigh at most 1 MB without basemap tiles; a 1200 × 800 static PNG must take at most 2 s.

How: against a build folder (default ``layers/build``, made by ``make run``), the server is
started on 127.0.0.1 (one uvicorn worker), then for each map page and repeat a fresh browser
context (empty cache) navigates to it and waits until the communities of the view are drawn
(``document.body.dataset.communities``) and every risk-surface tile in view has loaded; the
time from navigation start is read from the browser's clock. Page weight is the sum of the
response bodies as transferred (compressed where the server gzipped them) that the page
fetched from the service (the outside basemap's tiles excluded; on
this machine they fail anyway). The PNG is fetched ``--repeats`` times per map, each with a
different view so that nothing is served from a cache.

Run from the repository root (Debian's chromium, Playwright from the test extras)::

    .venv/bin/python bench/maps_bench.py --repeats 5

This is run by hand; it is not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.api.live import live_server  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
BASEMAP_HOST = "tile.openstreetmap.org"
DRAWN = (
    "document.body && Number(document.body.dataset.communities) > 0 && "
    "Array.from(document.querySelectorAll('img.leaflet-tile'))"
    ".filter(i => i.src.includes('/tiles/risk_surface/')).every(i => i.complete)"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-dir", type=Path, default=ROOT / "layers" / "build")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    catalog_maps = ["overview", "central-african-republic"]
    results: dict[str, dict[str, list[float]]] = {}
    with live_server(args.build_dir.resolve()) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        for name in catalog_maps:
            drawn, weight = [], []
            for _ in range(args.repeats):
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                page = context.new_page()
                sizes: list[int] = []

                def on_response(response, sizes=sizes) -> None:  # type: ignore[no-untyped-def]
                    if BASEMAP_HOST in response.url:
                        return
                    try:  # bytes on the wire (gzipped where the server compressed)
                        sizes.append(response.request.sizes()["responseBodySize"])
                    except Exception:  # noqa: BLE001 - failed requests have no sizes
                        pass

                page.on("response", on_response)
                page.goto(f"{url}/maps/{name}", wait_until="commit")
                page.wait_for_function(DRAWN, timeout=30_000)
                drawn.append(page.evaluate("performance.now()") / 1000.0)
                page.wait_for_load_state("networkidle")
                weight.append(sum(sizes) / 1e6)
                context.close()
            png = []
            for i in range(args.repeats):
                bbox = f"{14 + i * 0.1},{2 + i * 0.1},{28 + i * 0.1},{11 + i * 0.1}"
                t = time.perf_counter()
                with urllib.request.urlopen(
                    f"{url}/maps/{name}.png?bbox={bbox}&width=1200&height=800", timeout=60
                ) as r:
                    r.read()
                png.append(time.perf_counter() - t)
            results[name] = {"drawn_s": drawn, "weight_mb": weight, "png_s": png}
        browser.close()
    for name, r in results.items():
        print(
            f"{name:26} data drawn {statistics.median(r['drawn_s']):.2f} s "
            f"(min {min(r['drawn_s']):.2f}, max {max(r['drawn_s']):.2f}); "
            f"page weight {statistics.median(r['weight_mb']):.2f} MB; "
            f"PNG 1200x800 {statistics.median(r['png_s']):.2f} s (max {max(r['png_s']):.2f})"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
