"""A new build swapped in while a live server is answering a map's kind of requests.

The service promises that a swap never fails a request and never mixes two builds in one
answer: ``X-Build-Id``, the ETag's build prefix (``W/"<build_id[:16]>-…"``) and a JSON body's
``build_id`` always name the same build. Once ``current`` has moved, requests keep the old
build while the new one loads, then switch to it at once: no request started after the first
answer from the new build gets the old one. ``bench/load_bench.py swap`` measures the same
under full load; this is its bounded form for the suite (a few threads, a quick 2 km surface,
127.0.0.1).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

from geo_service.build import build
from geo_service.settings import BuildSettings
from tests.api.live import live_server

#: A map page's kinds of request: the page, TileJSON, a tile, items, a feature, the catalog.
URLS = [
    "/maps/overview",
    "/tiles/risk_surface/tilejson.json",
    "/tiles/risk_surface/3/4/3.png",
    "/collections/community_risk/items?limit=20&properties=name,score&bbox=14,2,28,11",
    "/collections/concessions/items?limit=5",
    "/collections",
    "/collections/incidents/items?limit=3",
]
ETAG = re.compile(r'^W/"(.+)-([0-9a-f]+)"$')
THREADS = 4
#: Bounds on the loops: requests per thread, seconds for the new build to load and answer,
#: and seconds to wait for every thread and kind of request to be answered after that.
MAX_REQUESTS = 20_000
LOAD_S = 30.0
AFTER_S = 15.0


@dataclass
class Seen:
    """One answer (or failure) as a client saw it."""

    t0: float
    t1: float
    url: str
    status: int = 0
    header: str | None = None
    etag_build: str | None = None
    body_build: str | None = None
    error: str | None = None


def _client(url: str, start: int, stop: threading.Event, out: list[Seen]) -> None:
    with httpx.Client(base_url=url, timeout=30, headers={"Accept-Encoding": "gzip"}) as client:
        for i in range(start, start + MAX_REQUESTS):
            if stop.is_set():
                return
            path = URLS[i % len(URLS)]
            t0 = time.monotonic()
            try:
                r = client.get(path)
            except httpx.HTTPError as exc:
                out.append(Seen(t0, time.monotonic(), path, error=repr(exc)))
                continue
            seen = Seen(t0, time.monotonic(), path, r.status_code, r.headers.get("x-build-id"))
            m = ETAG.match(r.headers.get("etag", ""))
            seen.etag_build = m.group(1) if m else None
            if r.headers.get("content-type", "").startswith(
                ("application/json", "application/geo")
            ):
                doc = orjson.loads(r.content)
                seen.body_build = doc.get("build_id") if isinstance(doc, dict) else None
            out.append(seen)


def test_a_build_swapped_in_under_load_fails_nothing_and_mixes_nothing(
    settings: BuildSettings, small_catalog: Path
) -> None:
    # A private builds folder, the quick surface and the small catalog (tests/conftest.py).
    first = build(settings, catalog_path=small_catalog)
    stop = threading.Event()
    seen: list[list[Seen]] = [[] for _ in range(THREADS)]
    with live_server(settings.build_dir) as url:
        threads = [
            threading.Thread(target=_client, args=(url, i * 2, stop, seen[i]), daemon=True)
            for i in range(THREADS)
        ]
        for t in threads:
            t.start()
        try:
            time.sleep(2.0)  # answers from the first build
            t_build = time.monotonic()
            second = build(settings, catalog_path=small_catalog)
            t_served = wait_until_served(url, second.build_id, LOAD_S)
            # Until every thread has had an answer it asked for after that (bounded), and
            # every kind of request has been answered after it (a loaded machine is slow).
            deadline = t_served + AFTER_S
            while time.monotonic() < deadline and not (
                all(any(s.t0 > t_served and s.status for s in mine) for mine in seen)
                and {s.url for mine in seen for s in mine if s.t0 > t_served and s.status}
                == set(URLS)
            ):
                time.sleep(0.1)
            time.sleep(1.0)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=60)
    answers = [s for mine in seen for s in mine]
    assert first.build_id[:16] != second.build_id[:16]
    builds = {first.build_id, second.build_id}

    failed = [(s.url, s.status, s.error) for s in answers if s.error or s.status >= 400]
    assert not failed, failed[:10]
    mixed = [
        (s.url, s.header, s.etag_build, s.body_build)
        for s in answers
        if s.header not in builds
        or s.etag_build != s.header[:16]
        or (s.body_build is not None and s.body_build != s.header)
    ]
    assert not mixed, mixed[:10]
    before = [s.header for s in answers if s.t1 < t_build]
    after = [s.header for s in answers if s.t0 > t_served]
    assert before and set(before) == {first.build_id}
    assert after and set(after) == {second.build_id}, sorted(set(after))
    # The switch is at once: nothing asked after the first answer from the new build got
    # the old one.
    first_new = min(s.t1 for s in answers if s.header == second.build_id)
    went_back = [
        (s.url, s.t0 - first_new)
        for s in answers
        if s.t0 > first_new and s.header != second.build_id
    ]
    assert not went_back, went_back[:10]
    # Every kind of request was answered from the new build after the swap.
    assert {s.url for s in answers if s.t0 > t_served} == set(URLS)


def wait_until_served(url: str, build_id: str, limit_s: float) -> float:
    """Poll /health until it names ``build_id`` (at most ``limit_s``); the moment it did."""
    deadline = time.monotonic() + limit_s
    with httpx.Client(base_url=url, timeout=30) as client:
        while client.get("/health").json()["build_id"] != build_id:
            assert time.monotonic() < deadline, f"build {build_id} not served in {limit_s} s"
            time.sleep(0.05)
    return time.monotonic()
