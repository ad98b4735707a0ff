"""Load and faults: a map page's real request mix at saturation, a build swapped in under
load, and the server killed under load.

Why: a journalist's embed can bring a flood of readers at once, and a new build is made while
readers are on the map. The service must then answer every request, keep its memory flat,
never answer from two builds at once (``X-Build-Id``, the ETag and the body must name one
build), and come back serving the build ``current`` points at after a crash.

How:

* ``mix`` opens every map of ``layers/maps.toml`` as ``/maps/{id}`` and ``/embed/{id}`` in
  Debian's headless Chromium (a fresh context each: empty cache), pans and zooms it a few
  times and opens a popup, and writes every request the browser sent to the service, in the
  order sent, to ``bench/data/load/mix.tsv`` (page, assets, offline basemap, tiles, items,
  features of popups; not the outside basemap's tiles, which cannot load here). The pages do
  not read TileJSON (Leaflet gets the tile URL in the page), so one TileJSON request per layer
  of each map is added, marked ``added``, as a GIS client opening the same map would send.
* ``load`` starts ``riskmap serve`` pinned to core 0 and runs ``wrk`` pinned to core 1, round
  robin over the mix with each request's own ``Accept`` header (a Lua script). It first finds
  the connection count that saturates the server (the fewest connections reaching 95 % of the
  highest rate of a sweep), then runs 60 s at that count per repeat, each with a fresh server
  warmed by one pass over the mix: requests per second, p50/p99 latency, answers that are not
  2xx/3xx, socket errors, and the server's RSS (``VmRSS``) at the start, after 30 s and at
  the end.
* ``swap`` serves a private copy of the build (under ``/tmp``) and, while an asyncio client
  (httpx, 8 connections, on core 1) replays the mix and checks every answer, runs
  ``riskmap build`` into that folder (``RISKMAP_SURFACE_CELL_M=2000``: about 20 s) one or
  more times, ``--gap`` seconds apart, in ``--repeats`` runs with a fresh server each. Every
  answer must be < 400 (304 allowed; half the repeats revalidate with the last ETag seen),
  carry ``X-Build-Id`` (all but ``/assets`` and the icon), an ETag whose build prefix
  (``W/"<build_id[:16]>-…"``, ``api/caching.py``) is that build, a JSON ``build_id`` equal to
  it, and name a build that had become current by its end (from a thread reading the
  ``current`` link every 2 ms) and that is not older than a build already answered before the
  request was asked (the service answers from the old build until the new one has loaded,
  then from the new one only). Latency: the p99 of the answers asked within 5 s of a swap
  (and within 5 s of the new build's first answer) against the p99 of every other answer of
  the run, per swap, medians over every swap of every run.
* ``kill`` does the same checks while the server is killed (``kill -9``) and started again
  with the same command: under load, in the middle of a build, and the moment a build swaps
  ``current``. It measures the time from the kill to ``/health`` answering with the build
  ``current`` points at, and requires that requests during the outage fail only with
  connection errors.

Run from the repository root (wrk from Debian, Chromium and Playwright from the test extras)::

    .venv/bin/riskmap build --if-needed
    .venv/bin/python bench/load_bench.py mix
    .venv/bin/python bench/load_bench.py load --repeats 3
    .venv/bin/python bench/load_bench.py swap --swaps 4 --repeats 3
    .venv/bin/python bench/load_bench.py kill --repeats 3

Results go to ``bench/results/load-*.tsv``, ``swap-*.tsv`` and ``kill-*.tsv`` (``key=value``
per line). Servers listen on 127.0.0.1 ports 8400–8499 only. This is run by hand; it is not
part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import datetime as dt
import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib import (
    BENCH,
    RESULTS,
    ROOT,
    RUN,
    answers,
    fmt,
    git_head,
    mmm,
    print_table,
    rss_kib,
    spawn,
    stop_server,
    wait_for_idle,
)

sys.path.insert(0, str(ROOT))

DATA = BENCH / "data" / "load"
MIX = DATA / "mix.tsv"
RISKMAP = ROOT / ".venv" / "bin" / "riskmap"
PORTS = {"mix": 8401, "load": 8402, "swap": 8403, "kill": 8404}
SERVER_CPU, CLIENT_CPU = 0, 1
#: What Chromium sends; the service compresses with gzip.
ACCEPT_ENCODING = "gzip, deflate, br, zstd"
#: Paths whose answers do not depend on the build (no X-Build-Id, no ETag).
BUILD_FREE = ("/assets/", "/favicon.ico")
#: ``W/"<build_id[:16]>-<hash>"`` (geo_service/api/caching.py etag_for).
ETAG = re.compile(r'^W/"(.+)-([0-9a-f]+)"$')
#: A response names a build that was current within this many seconds of its request.
SLACK_S = 0.1
IDLE_TARGET, IDLE_WAIT_S = 0.85, 120.0
LUA = r"""
-- Round robin over the mix (the last two tab-separated columns: accept, path); every answer
-- counted by status class. One RESULT line from done().
local reqs, idx, threads = {}, 0, {}
n2xx, n3xx, n4xx, n5xx, nother, last_bad = 0, 0, 0, 0, 0, 0
function setup(thread) table.insert(threads, thread) end
function init(args)
  for line in io.lines(args[1]) do
    local accept, path = line:match("([^\t]*)\t([^\t]+)$")
    if path and path:sub(1, 1) == "/" then
      local h = {["Accept-Encoding"] = args[2]}
      if accept ~= "" then h["Accept"] = accept end
      reqs[#reqs + 1] = wrk.format("GET", path, h)
    end
  end
  assert(#reqs > 0, "no requests read from " .. args[1])
end
function request()
  idx = idx % #reqs + 1
  return reqs[idx]
end
function response(status, headers, body)
  if status >= 200 and status < 300 then n2xx = n2xx + 1
  elseif status >= 300 and status < 400 then n3xx = n3xx + 1
  elseif status >= 400 and status < 500 then n4xx = n4xx + 1; last_bad = status
  elseif status >= 500 then n5xx = n5xx + 1; last_bad = status
  else nother = nother + 1; last_bad = status end
end
function done(summary, latency, requests)
  local c = {n2xx = 0, n3xx = 0, n4xx = 0, n5xx = 0, nother = 0}
  local bad = 0
  for _, t in ipairs(threads) do
    for k, _ in pairs(c) do c[k] = c[k] + (t:get(k) or 0) end
    bad = t:get("last_bad") or bad
  end
  local e = summary.errors
  io.write(string.format("RESULT requests=%d duration_s=%.3f rps=%.1f p50_ms=%.2f "
    .. "p90_ms=%.2f p99_ms=%.2f max_ms=%.2f mean_ms=%.2f s2xx=%d s3xx=%d s4xx=%d s5xx=%d "
    .. "sother=%d last_bad=%d connect=%d read=%d write=%d timeout=%d bytes=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, latency.mean / 1000,
    c.n2xx, c.n3xx, c.n4xx, c.n5xx, c.nother, bad, e.connect, e.read, e.write, e.timeout,
    summary.bytes))
end
"""


# --- helpers ---------------------------------------------------------------------------------


def serve_cmd(port: int) -> list[str]:
    """How the service is run (``riskmap serve``, one uvicorn worker), on a loopback port."""
    if not 8400 <= port <= 8499:
        raise SystemExit(f"port {port} is outside 8400–8499")
    return [str(RISKMAP), "serve", "--host", "127.0.0.1", "--port", str(port)]


def server_env(build_dir: Path) -> dict[str, str]:
    """The environment of a server on ``build_dir``."""
    return {**os.environ, "RISKMAP_BUILD_DIR": str(build_dir)}


def wait_health(port: int, timeout_s: float = 60.0) -> None:
    """Block until /health answers 200 (the server has a build and serves it)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if answers(port, "/health") == 200:
            return
        time.sleep(0.05)
    raise SystemExit(f"no /health on port {port} within {timeout_s:.0f} s")


def read_mix(path: Path = MIX) -> list[tuple[str, str]]:
    """(Accept, path) of every request of the mix, in order."""
    if not path.exists():
        raise SystemExit(f"missing {path.relative_to(ROOT)}: run 'load_bench.py mix' first")
    out = []
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        *_, accept, target = line.split("\t")
        out.append((accept, target))
    return out


def kind_of(path: str) -> str:
    """What a request of the mix asks for, for the summary of its weights."""
    p = path.split("?")[0]
    if p.startswith(("/maps/", "/embed/")) and "." not in p.rsplit("/", 1)[-1]:
        return "page"
    if p.startswith("/assets/") or p == "/favicon.ico":
        return "asset"
    if p == "/basemap.json":
        return "basemap"
    if p.endswith("/tilejson.json"):
        return "tilejson"
    if p.endswith(".png") and p.startswith("/tiles/"):
        return "png tile"
    if p.endswith(".mvt"):
        return "mvt tile"
    if p.endswith("/legend.json"):
        return "legend"
    if re.fullmatch(r"/collections/[^/]+/items", p):
        return "items"
    if re.fullmatch(r"/collections/[^/]+/items/[^/]+", p):
        return "item"
    return "other"


def sequential_pass(port: int, reqs: Sequence[tuple[str, str]]) -> tuple[int, int]:
    """Every distinct request once on one keep-alive connection: (answered, not 2xx/3xx).

    Fills the server's tile caches and loads every layer, so that a measurement starts from the
    state a server is in after its first readers, not from an empty process.
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    bad = n = 0
    for accept, path in dict.fromkeys(reqs):
        headers = {"Accept-Encoding": "gzip"} | ({"Accept": accept} if accept else {})
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        r.read()
        n += 1
        bad += not 200 <= r.status < 400
    conn.close()
    return n, bad


def warm(port: int) -> None:
    """One :func:`sequential_pass` over the mix, which must answer every request."""
    n, bad = sequential_pass(port, read_mix())
    if bad:
        raise SystemExit(f"{bad} of {n} requests of the mix failed on a fresh server")


class RssSampler:
    """The server's RSS once a second, in a thread (``/proc/<pid>/status``)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.t0 = time.monotonic()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic() - self.t0, rss_kib(self.pid) // 1024))
            self._stop.wait(1.0)

    def start(self) -> RssSampler:
        self.t0 = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.samples.append((time.monotonic() - self.t0, rss_kib(self.pid) // 1024))

    def at(self, t: float) -> int:
        """The sample nearest ``t`` seconds after start."""
        return min(self.samples, key=lambda s: abs(s[0] - t))[1]


def write_rows(out: Path, rows: Iterable[dict[str, Any]]) -> None:
    """``key=value`` tab-separated lines (the format of api_bench's results)."""
    with out.open("a", encoding="utf-8") as fh:
        for row in rows:
            fh.write("\t".join(f"{k}={fmt(v)}" for k, v in row.items()) + "\n")


def results_file(kind: str) -> Path:
    """A new ``bench/results/<kind>-<UTC time>.tsv`` (one per run, never overwritten)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    return RESULTS / f"{kind}-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}.tsv"


# --- mix -------------------------------------------------------------------------------------

#: A feature drawn near the middle of the view to open a popup on: communities first.
POPUP_TARGETS = """() => {
  const m = window.riskMap, size = m.getSize(), box = m.getContainer().getBoundingClientRect();
  const order = ["community_risk", "incidents", "tailings_consequence", "concessions"];
  const found = [];
  m.eachLayer(l => {
    if (!l.options || !l.feature) { return; }
    const ll = l.getLatLng ? l.getLatLng() : (l.getBounds ? l.getBounds().getCenter() : null);
    if (!ll) { return; }
    const p = m.latLngToContainerPoint(ll);
    if (p.x < size.x * 0.3 || p.x > size.x * 0.7 || p.y < size.y * 0.3 || p.y > size.y * 0.7) {
      return;
    }
    const rank = order.indexOf(l.options.riskLayer);
    found.push([rank < 0 ? 9 : rank, p.x + box.left, p.y + box.top, l.options.riskLayer || ""]);
  });
  found.sort((a, b) => a[0] - b[0]);
  return found.slice(0, 5);
}"""
MOVES = [
    "() => { window.riskMap.panBy([320, 160], {animate: false}); }",
    "() => { window.riskMap.zoomIn(); }",
    "() => { window.riskMap.panBy([-420, 90], {animate: false}); }",
    "() => { window.riskMap.zoomOut(); }",
    "() => { window.riskMap.panBy([60, -260], {animate: false}); }",
]


def _settled(page: Any, wait: Callable[..., Any], settle: Callable[[Any], None]) -> None:
    """After a move: the view's data drawn and its tiles in place, so that the next move does
    not cancel requests a reader who paused would have seen answered."""
    page.wait_for_timeout(400)  # the move's "moveend" has started the view's requests
    wait(page, "document.body && document.body.dataset.drawn === '1'", timeout=60)
    settle(page)


def _open_popup(page: Any, wait: Callable[..., Any]) -> str:
    """Click features near the middle until one opens a popup; wait until it has loaded."""
    for _rank, x, y, layer in page.evaluate(POPUP_TARGETS):
        page.mouse.click(x, y)
        try:
            wait(page, "!!document.querySelector('.leaflet-popup')", timeout=5)
        except AssertionError:
            continue
        wait(
            page,
            "!document.querySelector('.leaflet-popup').innerText"
            ".match(/Loading|Chargement|Carregando/)",
            timeout=30,
        )
        page.wait_for_timeout(500)  # the evidence the popup lists
        return layer
    return ""


def record_mix(build_dir: Path, tilejson: bool) -> None:
    """Load every map page and embed in Chromium, recording each request it sends us."""
    from playwright.sync_api import sync_playwright

    from geo_service.maps.definitions import load_maps
    from tests.chromium import ARGS, CHROMIUM
    from tests.maps.test_pages import BASEMAP_HOST, settle, wait

    maps = load_maps(ROOT / "layers" / "maps.toml")
    port = PORTS["mix"]
    base = f"http://127.0.0.1:{port}"
    rows: list[tuple[str, str, str, str]] = []
    failed: list[str] = []
    server = spawn("load-mix", serve_cmd(port), cpu=None, env=server_env(build_dir))
    try:
        wait_health(port)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            for name, definition in maps.items():
                for prefix in ("maps", "embed"):
                    label = f"{prefix}/{name}"
                    context = browser.new_context(viewport={"width": 1280, "height": 800})
                    page = context.new_page()

                    sent: list[Any] = []

                    def on_request(request: Any, sent: list[Any] = sent) -> None:
                        if request.url.startswith(base + "/"):
                            sent.append(request)

                    def on_response(response: Any) -> None:
                        if response.url.startswith(base + "/") and response.status >= 400:
                            failed.append(f"{response.status} {response.url}")

                    def on_failed(request: Any) -> None:
                        if request.url.startswith(base + "/") and BASEMAP_HOST not in request.url:
                            failed.append(f"failed {request.url}")

                    page.on("request", on_request)
                    page.on("response", on_response)
                    page.on("requestfailed", on_failed)
                    page.goto(f"{base}/{label}")
                    _settled(page, wait, settle)
                    for move in MOVES:
                        page.evaluate(move)
                        _settled(page, wait, settle)
                    opened = _open_popup(page, wait)
                    page.wait_for_load_state("networkidle")
                    for request in sent:  # every header as sent (``headers`` omits some)
                        accept = request.all_headers().get("accept", "")
                        rows.append((label, "browser", accept, request.url[len(base) :]))
                    context.close()
                    n = sum(1 for r in rows if r[0] == label)
                    print(f"{label:34} {n:4} requests, popup on {opened or '(none)'}")
                    if tilejson:
                        for layer in definition.layers:
                            rows.append((label, "added", "", f"/tiles/{layer}/tilejson.json"))
            browser.close()
    finally:
        stop_server(server)
    if failed:
        raise SystemExit("requests failed while recording:\n" + "\n".join(failed[:20]))
    DATA.mkdir(parents=True, exist_ok=True)
    with MIX.open("w", encoding="utf-8") as fh:
        fh.write("page\tsource\tkind\taccept\tpath\n")
        for label, source, accept, path in rows:
            fh.write(f"{label}\t{source}\t{kind_of(path)}\t{accept}\t{path}\n")
    kinds = Counter(kind_of(r[3]) for r in rows)
    table = [["kind", "requests", "share"]]
    for k, n in kinds.most_common():
        table.append([k, str(n), f"{n / len(rows):.1%}"])
    print_table(table, f"\n{len(rows)} requests ({len(set(r[3] for r in rows))} distinct)")
    print(f"wrote {MIX.relative_to(ROOT)}")


# --- load ------------------------------------------------------------------------------------


def wrk(port: int, conc: int, seconds: int, mix: Path = MIX) -> dict[str, float]:
    """``wrk -t1`` pinned to the client core, round robin over the mix."""
    RUN.mkdir(parents=True, exist_ok=True)
    script = RUN / "load-mix.lua"
    script.write_text(LUA, encoding="utf-8")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install -y wrk (Debian's wrk 4.1.0)")
    cmd = ["taskset", "-c", str(CLIENT_CPU), "wrk", "-t1", f"-c{conc}", f"-d{seconds}s"]
    cmd += ["--timeout", "30s", "-s", str(script), f"http://127.0.0.1:{port}"]
    cmd += ["--", str(mix), ACCEPT_ENCODING]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 120)
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT"))
    res = {k: float(v) for k, v in (t.split("=") for t in line.split()[1:])}
    res["errors"] = res["connect"] + res["read"] + res["write"] + res["timeout"]
    res["not_2xx_3xx"] = res["s4xx"] + res["s5xx"] + res["sother"]
    return res


def fresh_server(port: int, build_dir: Path) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    """A server pinned to the server core, warmed by one pass over the mix; its RSS then."""
    proc = spawn(f"load-{port}", serve_cmd(port), cpu=SERVER_CPU, env=server_env(build_dir))
    wait_health(port)
    time.sleep(3)  # the start-up thread loads every vector layer
    boot = rss_kib(proc.pid) // 1024
    try:
        warm(port)
    except SystemExit:
        stop_server(proc)
        raise
    return proc, {"rss_boot_mib": boot, "rss_warm_mib": rss_kib(proc.pid) // 1024}


def load(
    build_dir: Path, repeats: int, seconds: int, sweep: list[int], sweep_s: int, crowd: int
) -> Path:
    """The saturating connection count, then ``repeats`` runs of ``seconds`` at it (and at
    ``crowd`` connections: many readers at once, where latency is queueing), each with a
    fresh server, the order of the two swapped every repeat."""
    port = PORTS["load"]
    out = results_file("load")
    commit = git_head()
    print(f"commit {commit}; mix {len(read_mix())} requests; results -> {out.relative_to(ROOT)}")
    common = {"commit": commit.split()[0], "build": os.readlink(build_dir / "current")}
    idle = wait_for_idle(IDLE_TARGET, IDLE_WAIT_S)
    proc, rss = fresh_server(port, build_dir)
    rates: dict[int, float] = {}
    try:
        for conc in sweep:
            res = wrk(port, conc, sweep_s)
            rates[conc] = res["rps"]
            write_rows(
                out, [{**common, "phase": "sweep", "conc": conc, "idle_before": idle, **res}]
            )
            print(
                f"sweep c={conc:<3} {res['rps']:8.1f} req/s  p50 {res['p50_ms']:7.2f} ms  "
                f"p99 {res['p99_ms']:7.2f} ms  not 2xx/3xx {res['not_2xx_3xx']:.0f}  "
                f"socket errors {res['errors']:.0f}"
            )
    finally:
        stop_server(proc)
    best = max(rates.values())
    saturating = min(c for c, r in rates.items() if r >= 0.95 * best)
    print(
        f"saturation: {saturating} connections ({rates[saturating]:.0f} req/s, highest {best:.0f})"
    )
    concs = list(dict.fromkeys([saturating, crowd] if crowd else [saturating]))
    runs = []
    for rep in range(1, repeats + 1):
        for conc in concs if rep % 2 else concs[::-1]:
            idle = wait_for_idle(IDLE_TARGET, IDLE_WAIT_S)
            proc, rss = fresh_server(port, build_dir)
            try:
                sampler = RssSampler(proc.pid).start()
                res = wrk(port, conc, seconds)
                sampler.stop()
            finally:
                stop_server(proc)
            row = {
                **common,
                "phase": "load",
                "repeat": rep,
                "conc": conc,
                "saturating": saturating,
                "seconds": seconds,
                "idle_before": idle,
                **rss,
                "rss_start_mib": sampler.samples[0][1],
                "rss_30s_mib": sampler.at(30.0),
                "rss_end_mib": sampler.samples[-1][1],
                "rss_max_mib": max(s[1] for s in sampler.samples),
                **res,
            }
            runs.append(row)
            write_rows(out, [row])
            write_rows(
                out,
                [
                    {"phase": "rss", "repeat": rep, "conc": conc, "t_s": round(t, 1), "rss_mib": m}
                    for t, m in sampler.samples
                ],
            )
            print(
                f"#{rep} c={conc} {seconds} s: {res['rps']:.1f} req/s, p50 {res['p50_ms']:.2f} "
                f"ms, p99 {res['p99_ms']:.2f} ms, not 2xx/3xx {res['not_2xx_3xx']:.0f}, socket "
                f"errors {res['errors']:.0f}; RSS start {row['rss_start_mib']} / 30 s "
                f"{row['rss_30s_mib']} / end {row['rss_end_mib']} MiB  (idle {idle:.0%})"
            )
    summarise_load(runs)
    print(f"wrote {out.relative_to(ROOT)}")
    return out


def summarise_load(runs: list[dict[str, Any]]) -> None:
    """Median (min–max) over the repeats, per connection count."""
    table = [
        ["conc", "runs", "req/s", "p50 ms", "p99 ms", "RSS start", "RSS 30 s", "RSS end"]
        + ["not 2xx/3xx", "socket errors"]
    ]
    for conc in dict.fromkeys(int(float(r["conc"])) for r in runs):
        mine = [r for r in runs if int(float(r["conc"])) == conc]

        def col(k: str, mine: list[dict[str, Any]] = mine) -> list[float]:
            return [float(r[k]) for r in mine]

        table.append(
            [
                str(conc),
                str(len(mine)),
                mmm(col("rps"), "{:.0f}"),
                mmm(col("p50_ms")),
                mmm(col("p99_ms")),
                mmm(col("rss_start_mib"), "{:.0f}"),
                mmm(col("rss_30s_mib"), "{:.0f}"),
                mmm(col("rss_end_mib"), "{:.0f}"),
                f"{sum(col('not_2xx_3xx')):.0f}",
                f"{sum(col('errors')):.0f}",
            ]
        )
    seconds = int(float(runs[0]["seconds"]))
    print_table(table, f"\nmedian (min–max) over runs of {seconds} s; errors summed")


def summary(path: Path) -> None:
    """The summary of an earlier ``load`` run's TSV."""
    rows = [
        dict(t.split("=", 1) for t in line.split("\t"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line
    ]
    sweep = [["conc", "req/s", "p50 ms", "p99 ms", "not 2xx/3xx", "socket errors"]]
    for r in rows:
        if r.get("phase") == "sweep":
            sweep.append(
                [r["conc"]]
                + [f"{float(r[k]):.1f}" for k in ("rps", "p50_ms", "p99_ms")]
                + [f"{float(r[k]):.0f}" for k in ("not_2xx_3xx", "errors")]
            )
    if len(sweep) > 1:
        print_table(sweep, "sweep")
    runs = [r for r in rows if r.get("phase") == "load"]
    if runs:
        summarise_load(runs)


# --- checked client (swap, kill) -------------------------------------------------------------


class Timeline:
    """When each build became current, read from the ``current`` link every 2 ms in a thread.

    ``on_change`` runs in that thread the moment a change is seen (the kill test uses it to
    kill the server during the swap).
    """

    def __init__(self, build_dir: Path) -> None:
        self.link = build_dir / "current"
        self.changes: list[tuple[float, str]] = [(time.monotonic(), os.readlink(self.link))]
        self.on_change: Callable[[str], None] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            try:
                now = os.readlink(self.link)
            except OSError:
                continue
            if now != self.changes[-1][1]:
                self.changes.append((time.monotonic(), now))
                if self.on_change is not None:
                    self.on_change(now)

    def start(self) -> Timeline:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def current(self) -> str:
        return self.changes[-1][1]


@dataclass
class Answer:
    """One request of the checked client."""

    t0: float
    t1: float
    path: str
    status: int | None = None
    build: str | None = None
    error: str | None = None
    problems: list[str] = field(default_factory=list)
    revalidated: bool = False
    #: The start of the body of a failed answer (the service's JSON message).
    detail: str = ""


def check(
    path: str, status: int, headers: Any, body: bytes, sent_etag: str | None
) -> tuple[str | None, list[str]]:
    """The build an answer names, and what is wrong with it (empty: nothing).

    Problems: ``http N`` (status ≥ 400), ``no build id``, ``no etag``, ``etag build`` (the
    ETag's prefix is another build), ``body build`` (a JSON ``build_id`` is another build),
    ``304 for another etag``.
    """
    import orjson

    problems = []
    build = headers.get("x-build-id")
    if status >= 400:
        problems.append(f"http {status}")
    if path.startswith(BUILD_FREE):
        return build, problems
    if not build:
        problems.append("no build id")
        return None, problems
    etag = headers.get("etag")
    if status < 400:
        m = ETAG.match(etag or "")
        if m is None:
            problems.append("no etag")
        elif m.group(1) != build[:16]:
            problems.append("etag build")
        if status == 304 and (etag or "").removeprefix("W/") != (sent_etag or "").removeprefix(
            "W/"
        ):
            problems.append("304 for another etag")
    if status == 200 and b'"build_id"' in body[:200_000] and body[:1] == b"{":
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            problems.append("bad json")
        else:
            if isinstance(doc, dict) and "build_id" in doc and doc["build_id"] != build:
                problems.append("body build")
    return build, problems


class CheckedLoad:
    """``conc`` asyncio workers replaying the mix (each from its own place in it) and checking
    every answer; every second visit of a URL revalidates with the ETag last seen for it."""

    def __init__(self, port: int, reqs: list[tuple[str, str]], conc: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.reqs = reqs
        self.conc = conc
        self.answers: list[Answer] = []
        self.etags: dict[str, str] = {}
        self.visits: Counter[str] = Counter()
        self.stop = asyncio.Event()

    async def _worker(self, client: Any, start: int, cap: int) -> None:
        import httpx

        k = start
        while not self.stop.is_set() and len(self.answers) < cap:
            accept, path = self.reqs[k % len(self.reqs)]
            k += 1
            headers = {"Accept-Encoding": "gzip"} | ({"Accept": accept} if accept else {})
            self.visits[path] += 1
            sent = self.etags.get(path) if self.visits[path] % 2 == 0 else None
            if sent:
                headers["If-None-Match"] = sent
            t0 = time.monotonic()
            try:
                r = await client.get(path, headers=headers)
                body = r.content
            except httpx.HTTPError as exc:
                self.answers.append(Answer(t0, time.monotonic(), path, error=type(exc).__name__))
                await asyncio.sleep(0.01)  # a refused connection returns at once
                continue
            t1 = time.monotonic()
            build, problems = check(path, r.status_code, r.headers, body, sent)
            if r.headers.get("etag") and r.status_code == 200:
                self.etags[path] = r.headers["etag"]
            detail = body[:300].decode("utf-8", "replace") if problems else ""
            self.answers.append(
                Answer(t0, t1, path, r.status_code, build, None, problems, bool(sent), detail)
            )

    async def run(self, cap: int = 5_000_000) -> None:
        """Until ``stop`` is set (or ``cap`` answers: a bound, never reached in practice)."""
        import httpx

        limits = httpx.Limits(max_connections=self.conc, max_keepalive_connections=self.conc)
        async with httpx.AsyncClient(
            base_url=self.base, limits=limits, timeout=30.0, http2=False
        ) as client:
            step = max(1, len(self.reqs) // self.conc)
            await asyncio.gather(*(self._worker(client, i * step, cap) for i in range(self.conc)))


def verdict(answers: Sequence[Answer], timeline: Timeline) -> Counter[str]:
    """Counts of every kind of failure: transport errors by name, problems, answers from a
    build not yet current when they ended ("not current"), and answers from a build older than
    one already answered before they were asked ("went back").

    The service answers from a new build once it has loaded it, from the build before until
    then (``geo_service/api/builds.py``): an answer may name the old build for a while after
    ``current`` moved, but never once the new build has been seen answering.
    """
    out: Counter[str] = Counter()
    times = [t for t, _ in timeline.changes]

    def rank(a: Answer) -> int:
        """The last change before ``a`` ended that made its build current (-1: none)."""
        i = bisect.bisect_right(times, a.t1 + SLACK_S) - 1
        while i >= 0 and timeline.changes[i][1] != a.build:
            i -= 1
        return i

    named = sorted(
        (a for a in answers if not a.error and a.build and not a.path.startswith(BUILD_FREE)),
        key=lambda a: a.t1,
    )
    ranks = {id(a): rank(a) for a in named}
    ends = [a.t1 for a in named]
    newest: list[int] = []  # the newest build answered among the first i + 1 answers to end
    for a in named:
        newest.append(max(newest[-1] if newest else -1, ranks[id(a)]))
    for a in answers:
        if a.error:
            out[f"transport {a.error}"] += 1
            continue
        for p in a.problems:
            out[p] += 1
        if id(a) in ranks:
            if ranks[id(a)] < 0:
                out["not current"] += 1
            done = bisect.bisect_left(ends, a.t0 - SLACK_S)
            if done and ranks[id(a)] < newest[done - 1]:
                out["went back"] += 1
    return out


def show_failures(answers: Sequence[Answer], t_ref: float, limit: int = 10) -> list[str]:
    """The first failed answers, one line each (time from ``t_ref``, what, why)."""
    lines = []
    for a in answers:
        if a.error or a.problems:
            why = a.error or ", ".join(a.problems)
            lines.append(
                f"  {a.t0 - t_ref:+8.3f} s  {a.status or '-'}  {why}  {a.path}  {a.detail[:160]}"
            )
            if len(lines) >= limit:
                break
    return lines


def latency_ms(answers: Iterable[Answer]) -> tuple[float, float, float]:
    """p50, p99 and max latency (ms) of the answers."""
    xs = sorted((a.t1 - a.t0) * 1000 for a in answers if not a.error)
    if not xs:
        return float("nan"), float("nan"), float("nan")
    return xs[len(xs) // 2], xs[min(len(xs) - 1, int(len(xs) * 0.99))], xs[-1]


def private_copy(build_dir: Path) -> Path:
    """A builds folder under /tmp holding a copy of the current build (same id), so that
    builds and kills never touch the repository's own."""
    build_id = os.readlink(build_dir / "current")
    tmp = Path(tempfile.mkdtemp(prefix="riskmap-loadbench-")) / "build"
    tmp.mkdir()
    shutil.copytree(build_dir / build_id, tmp / build_id)
    os.symlink(build_id, tmp / "current")
    return tmp


def start_build(build_dir: Path, cell_m: float) -> subprocess.Popen[bytes]:
    """``riskmap build`` into ``build_dir`` on both cores (as an operator would run it)."""
    env = {
        **os.environ,
        "RISKMAP_BUILD_DIR": str(build_dir),
        "RISKMAP_SURFACE_CELL_M": str(cell_m),
    }
    return spawn("load-build", ["taskset", "-c", "0-1", str(RISKMAP), "build"], cpu=None, env=env)


async def wait_exit(proc: subprocess.Popen[bytes], timeout_s: float = 600.0) -> int:
    """The return code of a child, awaited without blocking the checked client."""
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("a build took more than 10 minutes")
        await asyncio.sleep(0.1)
    return proc.returncode


def pin_client() -> None:
    """The checked client on the client core (children widen their own mask)."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > CLIENT_CPU:
        os.sched_setaffinity(0, {CLIENT_CPU})


# --- swap ------------------------------------------------------------------------------------


async def _swap(
    build_dir: Path, swaps: int, conc: int, cell_m: float, before_s: float, after_s: float
) -> dict[str, Any]:
    port = PORTS["swap"]
    server = spawn("load-swap", serve_cmd(port), cpu=SERVER_CPU, env=server_env(build_dir))
    await asyncio.to_thread(wait_health, port)
    await asyncio.to_thread(warm, port)
    timeline = Timeline(build_dir).start()
    sampler = RssSampler(server.pid).start()
    checked = CheckedLoad(port, read_mix(), conc)
    runner = asyncio.create_task(checked.run())
    builds: list[dict[str, Any]] = []
    try:
        t_begin = time.monotonic()
        await asyncio.sleep(before_s)
        for k in range(swaps):
            t_start = time.monotonic()
            proc = start_build(build_dir, cell_m)
            code = await wait_exit(proc)
            t_end = time.monotonic()
            if code != 0:
                raise SystemExit(f"riskmap build failed ({code}); see {RUN / 'load-build.log'}")
            builds.append({"k": k + 1, "t_start": t_start, "t_end": t_end})
            await asyncio.sleep(after_s)
        t_stop = time.monotonic()
    finally:
        checked.stop.set()
        await runner
        timeline.stop()
        sampler.stop()
        stop_server(server)
    return {
        "answers": checked.answers,
        "timeline": timeline,
        "builds": builds,
        "t_begin": t_begin,
        "t_stop": t_stop,
        "rss": sampler,
    }


#: Seconds after a swap whose answers are compared with the rest.
WINDOW_S = 5.0


def p99_ms(answers: Iterable[Answer]) -> float:
    """p99 latency (ms) of the answers (NaN without any)."""
    return latency_ms(answers)[1]


def swap_windows(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Each swap: the build, when ``current`` moved, when the new build first answered (the
    end of its first answer), and the answers of the windows compared.

    ``after swap``: asked within ``WINDOW_S`` of ``current`` moving (the server loading the new
    build, then answering from it); ``after new``: within ``WINDOW_S`` of the new build's first
    answer. ``otherwise`` (per run): every answer asked outside both windows of every swap, a
    build running or not; ``quiet``: those asked while no build ran.
    """
    answers: list[Answer] = [a for a in res["answers"] if not a.error]
    timeline: Timeline = res["timeline"]
    out = []
    for (t_swap, new), b in zip(timeline.changes[1:], res["builds"], strict=False):
        first_new = min((a.t1 for a in answers if a.build == new), default=float("nan"))
        out.append({**b, "t_swap": t_swap, "build": new, "first_new": first_new})
    spans = [(w["t_swap"], max(w["t_swap"], w["first_new"]) + WINDOW_S) for w in out]
    building = [(b["t_start"], w["t_swap"]) for b, w in zip(res["builds"], out, strict=False)]

    def inside(t: float, ranges: list[tuple[float, float]]) -> bool:
        return any(lo <= t < hi for lo, hi in ranges)

    otherwise = [a for a in answers if not inside(a.t0, spans)]
    quiet = [a for a in otherwise if not inside(a.t0, building)]
    for w in out:
        w["after_swap"] = [a for a in answers if w["t_swap"] <= a.t0 < w["t_swap"] + WINDOW_S]
        w["after_new"] = [a for a in answers if w["first_new"] <= a.t0 < w["first_new"] + WINDOW_S]
        w["otherwise"], w["quiet"] = otherwise, quiet
    return out


def swap_run(res: dict[str, Any], common: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of one run (phases, swaps, total, RSS), printed as tables as well."""
    answers: list[Answer] = res["answers"]
    timeline: Timeline = res["timeline"]
    bad = verdict(answers, timeline)
    windows = swap_windows(res)
    first_start = res["builds"][0]["t_start"]
    phases: dict[str, list[Answer]] = {
        "before": [],
        "building": [],
        "loading": [],
        "first 5 s on new": [],
        "quiet": [],
    }
    for a in answers:
        if a.t0 < first_start:
            phases["before"].append(a)
            continue
        w = next((w for w in reversed(windows) if w["t_start"] <= a.t0), None)
        if w is None or a.t0 >= w["first_new"] + WINDOW_S:
            phases["quiet"].append(a)
        elif a.t0 < w["t_swap"]:
            phases["building"].append(a)
        elif a.t0 < w["first_new"]:
            phases["loading"].append(a)
        else:
            phases["first 5 s on new"].append(a)
    rows: list[dict[str, Any]] = []
    table = [["phase", "requests", "req/s", "p50 ms", "p99 ms", "max ms", "304 %", "failed"]]
    for name, xs in phases.items():
        span = (max(a.t1 for a in xs) - min(a.t0 for a in xs)) if xs else 0.0
        p50, p99, mx = latency_ms(xs)
        failed = sum(bool(a.error or a.problems) for a in xs)
        # A revalidation is a 304 only with the ETag of the same build: after a swap, every
        # URL is answered whole once more.
        share_304 = sum(a.status == 304 for a in xs) / len(xs) if xs else 0.0
        rows.append(
            {
                **common,
                "phase": name,
                "requests": len(xs),
                "seconds": span,
                "p50_ms": p50,
                "p99_ms": p99,
                "max_ms": mx,
                "share_304": share_304,
                "failed": failed,
            }
        )
        table.append(
            [
                name,
                str(len(xs)),
                f"{len(xs) / span:.0f}" if span else "-",
                f"{p50:.1f}",
                f"{p99:.1f}",
                f"{mx:.0f}",
                f"{share_304:.0%}",
                str(failed),
            ]
        )
    print_table(table, f"\n{len(answers)} checked answers, {common['conc']} connections")
    swap_table = [
        ["swap", "build s", "to new ms", "old after new", "p99 5 s after swap", "after new"]
        + ["otherwise", "quiet", "ratio", "max ms 5 s", "RSS before", "RSS 5 s after"]
    ]
    ok = [a for a in answers if not a.error and a.build]
    since = {bid: t for t, bid in reversed(timeline.changes)}
    slowest = []
    for w in windows:
        t_swap, new, first_new = w["t_swap"], w["build"], w["first_new"]
        old_after = sum(
            1 for a in ok if since.get(a.build, 0.0) < t_swap and a.t0 > first_new + SLACK_S
        )
        both = {id(a): a for a in w["after_swap"] + w["after_new"]}.values()
        for a in sorted(both, key=lambda a: a.t0 - a.t1)[:5]:
            slowest.append(
                f"  swap {w['k']}: {(a.t1 - a.t0) * 1000:6.0f} ms, asked "
                f"{a.t0 - t_swap:+6.2f} s after it, from "
                f"{'the new' if a.build == new else 'the old'} build: {a.path[:90]}"
            )
        p_swap, p_new = p99_ms(w["after_swap"]), p99_ms(w["after_new"])
        p_other, p_quiet = p99_ms(w["otherwise"]), p99_ms(w["quiet"])
        mx = latency_ms(w["after_swap"])[2]
        rss_before = res["rss"].at(t_swap - res["rss"].t0 - 1)
        rss_after = res["rss"].at(t_swap - res["rss"].t0 + WINDOW_S)
        row = {
            **common,
            "phase": "swap",
            "swap": w["k"],
            "build": new,
            "build_s": w["t_end"] - w["t_start"],
            "exit_after_swap_s": w["t_end"] - t_swap,
            "switch_ms": (first_new - t_swap) * 1000,
            "old_answers_after_new": old_after,
            "n_after_swap": len(w["after_swap"]),
            "n_after_new": len(w["after_new"]),
            "p99_after_swap_ms": p_swap,
            "p99_after_new_ms": p_new,
            "p99_otherwise_ms": p_other,
            "p99_quiet_ms": p_quiet,
            "ratio": p_swap / p_other,
            "ratio_after_new": p_new / p_other,
            "ratio_quiet": max(p_swap, p_new) / p_quiet,
            "max_ms_5s_after": mx,
            "rss_before_mib": rss_before,
            "rss_after_5s_mib": rss_after,
        }
        rows.append(row)
        swap_table.append(
            [
                str(w["k"]),
                f"{row['build_s']:.1f}",
                f"{row['switch_ms']:.0f}",
                str(old_after),
                f"{p_swap:.1f}",
                f"{p_new:.1f}",
                f"{p_other:.1f}",
                f"{p_quiet:.1f}",
                f"{row['ratio']:.2f}",
                f"{mx:.0f}",
                str(rss_before),
                str(rss_after),
            ]
        )
    print_table(swap_table, "")
    print("slowest answers within 5 s of each swap or of the new build's first answer:")
    print(*slowest, sep="\n")
    total = {
        **common,
        "phase": "total",
        "requests": len(answers),
        "errors": sum(n for k, n in bad.items() if k.startswith(("transport", "http"))),
        "mixes": sum(
            n
            for k, n in bad.items()
            if k in ("etag build", "body build", "no build id", "no etag", "304 for another etag")
        ),
        "not_current": bad.get("not current", 0),
        "went_back": bad.get("went back", 0),
        "problems": dict(bad),
        "rss_start_mib": res["rss"].samples[0][1],
        "rss_end_mib": res["rss"].samples[-1][1],
        "rss_max_mib": max(s[1] for s in res["rss"].samples),
        "builds": len(res["builds"]),
    }
    rows.append(total)
    print(
        f"\nerrors {total['errors']}, mixed builds {total['mixes']}, answers from a build not "
        f"yet current {total['not_current']}, from an older build than one already answered "
        f"{total['went_back']}; problems {dict(bad) or 'none'}"
    )
    swaps_at = timeline.changes[1:]
    failures = show_failures(answers, swaps_at[0][0] if swaps_at else first_start)
    if failures:
        print("first failures (time from the first swap):", *failures, sep="\n")
    print(
        f"server RSS start {total['rss_start_mib']} MiB, max {total['rss_max_mib']}, end "
        f"{total['rss_end_mib']}"
    )
    rss = [{"phase": "rss", "t_s": round(t, 1), "rss_mib": m} for t, m in res["rss"].samples]
    return rows + [{**common, **r} for r in rss]


def swap(
    build_dir: Path,
    swaps: int,
    repeats: int,
    conc: int,
    cell_m: float,
    gap_s: float,
    keep: bool,
) -> Path:
    """Builds swapped in under checked load, ``repeats`` runs of ``swaps`` with a fresh
    server each: errors, mixes, how soon the new build answers, and the p99 latency within
    ``WINDOW_S`` of a swap against the p99 otherwise (medians over every swap of every run)."""
    out = results_file("swap")
    commit = git_head()
    private = private_copy(build_dir)
    print(f"commit {commit}; private builds in {private}; results -> {out.relative_to(ROOT)}")
    pin_client()
    rows: list[dict[str, Any]] = []
    try:
        for rep in range(1, repeats + 1):
            idle = wait_for_idle(IDLE_TARGET, IDLE_WAIT_S)
            res = asyncio.run(_swap(private, swaps, conc, cell_m, 10.0, gap_s))
            common = {
                "commit": commit.split()[0],
                "code": os.environ.get("PYTHONPATH", "working tree"),
                "repeat": rep,
                "conc": conc,
                "cell_m": cell_m,
                "gap_s": gap_s,
                "idle_before": idle,
            }
            print(f"\n# run {rep} of {repeats} (machine {idle:.0%} idle before it)")
            mine = swap_run(res, common)
            write_rows(out, mine)
            rows += mine
    finally:
        if not keep:
            shutil.rmtree(private.parent, ignore_errors=True)
    summarise_swaps(rows)
    print(f"wrote {out.relative_to(ROOT)}")
    return out


def summarise_swaps(rows: list[dict[str, Any]]) -> None:
    """Median (min–max) over every swap of every run, and the runs' totals."""
    swaps = [r for r in rows if r.get("phase") == "swap"]
    totals = [r for r in rows if r.get("phase") == "total"]

    def col(k: str) -> list[float]:
        return [float(r[k]) for r in swaps]

    table = [["over swaps", "median (min–max)"]]
    for label, key, form in (
        ("to new build, ms", "switch_ms", "{:.0f}"),
        ("p99 within 5 s of a swap, ms", "p99_after_swap_ms", "{:.1f}"),
        ("p99 within 5 s of the new build's first answer, ms", "p99_after_new_ms", "{:.1f}"),
        ("p99 otherwise (per run), ms", "p99_otherwise_ms", "{:.1f}"),
        ("p99 while no build ran (per run), ms", "p99_quiet_ms", "{:.1f}"),
        ("ratio: within 5 s of a swap / otherwise", "ratio", "{:.2f}"),
        ("ratio: within 5 s of the new build / otherwise", "ratio_after_new", "{:.2f}"),
        ("ratio: worse window / no build running", "ratio_quiet", "{:.2f}"),
        ("max within 5 s of a swap, ms", "max_ms_5s_after", "{:.0f}"),
        ("old answers after the new build's first", "old_answers_after_new", "{:.0f}"),
    ):
        table.append([label, mmm(col(key), form)])
    print_table(table, f"\n{len(swaps)} swaps in {len(totals)} runs")
    summed = {
        k: sum(int(float(t[k])) for t in totals)
        for k in ("requests", "errors", "mixes", "not_current", "went_back")
    }
    print("summed over runs: " + ", ".join(f"{k} {n}" for k, n in summed.items()))


def swap_summary(path: Path) -> None:
    """The summary of an earlier ``swap`` run's TSV."""
    rows = [
        dict(t.split("=", 1) for t in line.split("\t"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line
    ]
    summarise_swaps(rows)


# --- kill ------------------------------------------------------------------------------------


async def _health_is_current(port: int, build_dir: Path, timeout_s: float = 60.0) -> float:
    """Poll /health every 10 ms until it names the build ``current`` points at when it
    answers (a build may swap while the server starts); the moment it did."""
    import httpx

    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2.0) as client:
        while time.monotonic() < deadline:
            try:
                r = await client.get("/health")
                now = os.readlink(build_dir / "current")
                if r.status_code == 200 and r.json().get("build_id") == now:
                    return time.monotonic()
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.01)
    raise SystemExit(f"/health did not name the current build within {timeout_s:.0f} s")


async def _kill(build_dir: Path, mode: str, conc: int, cell_m: float) -> dict[str, Any]:
    """One kill: ``load`` (under load), ``mid-build`` (8 s into a build) or ``at-swap`` (the
    moment the build's swap of ``current`` is seen)."""
    port = PORTS["kill"]
    cmd, env = serve_cmd(port), server_env(build_dir)
    server = spawn("load-kill", cmd, cpu=SERVER_CPU, env=env)
    await asyncio.to_thread(wait_health, port)
    await asyncio.to_thread(warm, port)
    timeline = Timeline(build_dir).start()
    checked = CheckedLoad(port, read_mix(), conc)
    runner = asyncio.create_task(checked.run())
    killed = threading.Event()
    t_kill = 0.0
    build: subprocess.Popen[bytes] | None = None

    def kill_now(_: str = "") -> None:
        nonlocal t_kill
        if not killed.is_set():
            os.kill(server.pid, signal.SIGKILL)
            t_kill = time.monotonic()
            killed.set()

    try:
        await asyncio.sleep(10.0)
        if mode == "load":
            kill_now()
        elif mode == "mid-build":
            build = start_build(build_dir, cell_m)
            await asyncio.sleep(8.0)
            kill_now()
        else:
            timeline.on_change = kill_now
            build = start_build(build_dir, cell_m)
            while not killed.is_set() and build.poll() is None:
                await asyncio.sleep(0.01)
            if not killed.is_set():
                raise SystemExit("the build ended without a swap")
        await asyncio.to_thread(server.wait, 10)
        server = spawn("load-kill", cmd, cpu=SERVER_CPU, env=env)  # the same command
        t_ready = await _health_is_current(port, build_dir)
        if build is not None:
            if await wait_exit(build) != 0:
                raise SystemExit(f"riskmap build failed; see {RUN / 'load-build.log'}")
        t_settled = time.monotonic()
        await asyncio.sleep(10.0)
        served = await _health_is_current(port, build_dir, 5.0)
    finally:
        checked.stop.set()
        await runner
        timeline.stop()
        if build is not None and build.poll() is None:
            build.wait(timeout=600)
        stop_server(server)
    return {
        "answers": checked.answers,
        "timeline": timeline,
        "t_kill": t_kill,
        "t_ready": t_ready,
        "t_settled": t_settled,
        "served_current": served > 0,
    }


def kill(build_dir: Path, repeats: int, conc: int, cell_m: float, keep: bool) -> Path:
    """The server killed under load, mid-build and at a swap; recovery and what clients saw."""
    out = results_file("kill")
    commit = git_head()
    private = private_copy(build_dir)
    print(f"commit {commit}; private builds in {private}; results -> {out.relative_to(ROOT)}")
    pin_client()
    plan = ["load"] * repeats + ["mid-build", "at-swap"]
    table = [["kill", "recovery s", "requests", "conn. errors", "in outage", "other failures"]]
    rows = []
    try:
        for i, mode in enumerate(plan, 1):
            idle = wait_for_idle(IDLE_TARGET, IDLE_WAIT_S)
            res = asyncio.run(_kill(private, mode, conc, cell_m))
            answers: list[Answer] = res["answers"]
            bad = verdict(answers, res["timeline"])
            t_kill, t_ready = res["t_kill"], res["t_ready"]
            transport = [a for a in answers if a.error]
            # In flight at the kill, or sent before the restarted server answered.
            in_outage = [a for a in transport if t_kill - 0.05 <= a.t1 <= t_ready + 1.0]
            other = sum(n for k, n in bad.items() if not k.startswith("transport"))
            after = [a for a in answers if a.t0 > t_ready and not a.error]
            builds_after = Counter(a.build for a in after if a.build)
            row = {
                "commit": commit.split()[0],
                "run": i,
                "mode": mode,
                "conc": conc,
                "idle_before": idle,
                "recovery_s": t_ready - t_kill,
                "requests": len(answers),
                "transport_errors": len(transport),
                "in_outage": len(in_outage),
                "outside_outage": len(transport) - len(in_outage),
                "other_failures": other,
                "problems": dict(bad),
                "served_current": res["served_current"],
                "builds_after_restart": dict(builds_after),
                "current": res["timeline"].current,
            }
            rows.append(row)
            write_rows(out, [row])
            table.append(
                [
                    mode,
                    f"{t_ready - t_kill:.2f}",
                    str(len(answers)),
                    str(len(transport)),
                    str(len(in_outage)),
                    str(other),
                ]
            )
            print(
                f"{mode:9} recovery {t_ready - t_kill:.2f} s; {len(answers)} requests, "
                f"{len(transport)} connection errors ({len(in_outage)} during the outage), "
                f"other failures {other}; after restart served {dict(builds_after)}; current "
                f"{res['timeline'].current}"
            )
    finally:
        if not keep:
            shutil.rmtree(private.parent, ignore_errors=True)
    print_table(table, "")
    loads = [r["recovery_s"] for r in rows if r["mode"] == "load"]
    print(f"recovery under load: {mmm(loads)} s over {len(loads)} kills")
    print(f"wrote {out.relative_to(ROOT)}")
    return out


# --- CLI -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", type=Path, default=ROOT / "layers" / "build")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("mix", help="record the map pages' requests in Chromium")
    p.add_argument("--no-tilejson", action="store_true", help="only what the browser sent")
    p = sub.add_parser("load", help="wrk at saturation over the mix; RSS")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seconds", type=int, default=60)
    p.add_argument("--sweep", default="1,2,4,8,16,32,64", help="connection counts to try")
    p.add_argument("--sweep-seconds", type=int, default=10)
    p.add_argument(
        "--crowd", type=int, default=32, help="also run at this many (0: only the saturating count)"
    )
    p = sub.add_parser("summary", help="print the summary of an earlier load or swap TSV")
    p.add_argument("tsv", type=Path)
    p = sub.add_parser("swap", help="builds swapped in under checked load")
    p.add_argument("--swaps", type=int, default=3, help="builds per run")
    p.add_argument("--repeats", type=int, default=1, help="runs, each with a fresh server")
    p.add_argument("--gap", type=float, default=40.0, help="seconds between builds")
    p.add_argument(
        "--code",
        type=Path,
        help="serve and build with the geo_service package of this folder (an earlier "
        "commit's, from 'git archive <commit> geo_service | tar -x -C DIR')",
    )
    p.add_argument("--conc", type=int, default=8)
    p.add_argument("--surface-cell", type=float, default=2000.0)
    p.add_argument("--keep", action="store_true", help="keep the private builds folder")
    p = sub.add_parser("kill", help="kill -9 under load, mid-build and at a swap")
    p.add_argument("--repeats", type=int, default=3, help="kills under load")
    p.add_argument("--conc", type=int, default=8)
    p.add_argument("--surface-cell", type=float, default=2000.0)
    p.add_argument("--keep", action="store_true", help="keep the private builds folder")
    args = parser.parse_args(argv)
    build_dir = args.build_dir.resolve()
    if not (build_dir / "current").is_symlink():
        raise SystemExit(f"no current build in {build_dir}: run 'riskmap build --if-needed'")
    if args.command == "mix":
        record_mix(build_dir, not args.no_tilejson)
    elif args.command == "load":
        if not 1 <= args.repeats <= 10:
            raise SystemExit("--repeats must be between 1 and 10")
        sweep = [int(c) for c in args.sweep.split(",")]
        load(build_dir, args.repeats, args.seconds, sweep, args.sweep_seconds, args.crowd)
    elif args.command == "summary":
        if args.tsv.name.startswith("swap-"):
            swap_summary(args.tsv)
        else:
            summary(args.tsv)
    elif args.command == "swap":
        if not 1 <= args.swaps <= 10 or not 1 <= args.repeats <= 10:
            raise SystemExit("--swaps and --repeats must be between 1 and 10")
        if args.gap < 2 * WINDOW_S:
            raise SystemExit(f"--gap must be at least {2 * WINDOW_S:.0f} s")
        if args.code is not None:
            if not (args.code / "geo_service" / "__init__.py").exists():
                raise SystemExit(f"no geo_service package in {args.code}")
            os.environ["PYTHONPATH"] = str(args.code.resolve())  # servers and builds
        swap(
            build_dir,
            args.swaps,
            args.repeats,
            args.conc,
            args.surface_cell,
            args.gap,
            args.keep,
        )
    else:
        if not 1 <= args.repeats <= 10:
            raise SystemExit("--repeats must be between 1 and 10")
        kill(build_dir, args.repeats, args.conc, args.surface_cell, args.keep)


if __name__ == "__main__":
    main()
