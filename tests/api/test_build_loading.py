"""A new build answers only once it has loaded; the build served before answers until then.

The loading is made observable with events the test holds, never with timing: while the new
build's ``warm`` waits on an event, every answer names the old build; once it returns, every
answer names the new one. A build that fails to load leaves the old one answering and is tried
again; builds swapped out are released. The builds are thin twins of the session build (a few
of its layers, the files linked, the catalog rewritten under a new id), so each loads at once.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from geo_service.api.app import create_app
from geo_service.settings import ApiSettings
from geo_service.store.base import Store
from geo_service.store.memory import BuildStore

#: The layers of a twin: a small one, one with a public view, and the risk surface.
THIN = ("tailings_dams", "incidents", "risk_surface")
A, B, C = (f"2099010{i}T000000Z-twin" for i in (1, 2, 3))
#: What is asked of every build: each answer names its build in X-Build-Id, and a JSON body
#: with a ``build_id`` names the same one.
URLS = (
    "/health",
    "/collections",
    "/collections/incidents/items?limit=5",
    "/collections/tailings_dams/items?limit=3&f=json",
    "/tiles/risk_surface/3/4/3.png",
)
#: Seconds a test waits, at most, for a build to load or fail in its thread.
WAIT_S = 30.0


def twin(source: Path, builds: Path, build_id: str, layers: tuple[str, ...] = THIN) -> Path:
    """A build of ``layers`` of the build at ``source``, under ``build_id``."""
    catalog = json.loads((source / "catalog.json").read_text(encoding="utf-8"))
    catalog["build_id"] = build_id
    catalog["layers"] = {k: v for k, v in catalog["layers"].items() if k in layers}
    files = {meta["file"] for meta in catalog["layers"].values()}
    files |= {meta["public"]["file"] for meta in catalog["layers"].values() if meta.get("public")}
    if catalog.get("basemap"):
        files.add(catalog["basemap"]["file"])
    target = builds / build_id
    target.mkdir(parents=True)
    for name in files:
        (target / name).symlink_to((source / name).resolve())
    (target / "catalog.json").write_text(json.dumps(catalog), encoding="utf-8")
    return target


def point(builds: Path, build_id: str) -> None:
    """Make ``build_id`` current, as ``riskmap build`` does (one rename)."""
    tmp = builds / "current.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(build_id, tmp)
    os.replace(tmp, builds / "current")


def served(client: TestClient) -> set[str]:
    """The builds the answers to ``URLS`` name (each must be a success naming one build)."""
    names = set()
    for url in URLS:
        r = client.get(url)
        assert r.status_code == 200, (url, r.status_code, r.text[:200])
        header = r.headers["x-build-id"]
        if r.headers["content-type"].startswith(("application/json", "application/geo+json")):
            assert r.json().get("build_id", header) == header, url
        names.add(header)
    return names


def wait_for(what: Callable[[], bool], why: str) -> None:
    """Poll ``what`` until it holds, at most ``WAIT_S``."""
    deadline = time.monotonic() + WAIT_S
    while not what():
        assert time.monotonic() < deadline, f"{why}: not within {WAIT_S:.0f} s"
        time.sleep(0.02)


def serving(client: TestClient, build_id: str) -> Callable[[], bool]:
    return lambda: client.get("/health").json()["build_id"] == build_id


@pytest.fixture
def builds(tmp_path: Path, built, build_dir: Path) -> Path:  # type: ignore[no-untyped-def]
    """A builds folder holding the twins A and B, A current."""
    folder = tmp_path / "builds"
    for build_id in (A, B):
        twin(build_dir / built.build_id, folder, build_id)
    point(folder, A)
    return folder


@pytest.fixture
def gates(monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[threading.Event, threading.Event]]:
    """Per build id, (entered, release): a build named here waits in ``warm`` until released."""
    held: dict[str, tuple[threading.Event, threading.Event]] = {}
    warm = BuildStore.warm

    def gated(self: BuildStore, like: Store | None = None) -> None:
        if self.build_id in held:
            entered, release = held[self.build_id]
            entered.set()
            release.wait(WAIT_S)
        warm(self, like)

    monkeypatch.setattr(BuildStore, "warm", gated)
    return held


def gate(gates: dict, build_id: str) -> tuple[threading.Event, threading.Event]:
    gates[build_id] = (threading.Event(), threading.Event())
    return gates[build_id]


def test_requests_keep_the_old_build_until_the_new_one_has_loaded(builds, gates) -> None:
    client = TestClient(create_app(ApiSettings(build_dir=builds)))
    assert served(client) == {A}  # at start-up there is nothing else: answered at once
    entered, release = gate(gates, B)
    point(builds, B)
    assert served(client) == {A}  # the first request after the move starts the load
    assert entered.wait(WAIT_S), "the new build did not start loading"
    # (a) while it loads, every request is answered, from the old build
    for _ in range(3):
        assert served(client) == {A}
    release.set()
    wait_for(serving(client, B), "the new build answering")
    # The tiles the old build served were rendered from the new one before it answered, and
    # the features it had written were written again.
    new = client.app.state.builds.current()
    assert new.raster_tiles.recent(10) == [("risk_surface", 3, 4, 3)]
    incidents = new.store._tables[("incidents", False)]
    assert sum(f is not None for f in incidents._features) == 5  # ?limit=5
    # (b) once loaded, every request is answered from the new build, and only from it
    for _ in range(3):
        assert served(client) == {B}


def test_a_build_replaced_while_it_loads_is_never_served(builds, gates, built, build_dir) -> None:
    twin(build_dir / built.build_id, builds, C)
    client = TestClient(create_app(ApiSettings(build_dir=builds)))
    assert served(client) == {A}
    entered, release = gate(gates, B)
    point(builds, B)
    assert served(client) == {A}
    assert entered.wait(WAIT_S)
    point(builds, C)  # a newer build while B loads: B, once loaded, is dropped
    assert served(client) == {A}
    release.set()
    wait_for(serving(client, C), "the newest build answering")
    assert served(client) == {C}


class Kept(logging.Handler):
    """Keeps the records it is given."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def errors() -> Iterator[Kept]:
    """What the service logs at ERROR and above while the test runs (the server's log)."""
    kept = Kept()
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(kept)
    yield kept
    logger.removeHandler(kept)


def test_a_build_that_fails_to_load_leaves_the_old_one_answering(
    builds: Path, errors: Kept
) -> None:
    app = create_app(ApiSettings(build_dir=builds))
    client = TestClient(app)
    assert served(client) == {A}
    broken = builds / B / "incidents.parquet"
    good = broken.resolve()
    broken.unlink()
    broken.write_bytes(b"PAR1 not a parquet file")
    app.state.builds.retry_s = 3600.0
    point(builds, B)

    def failed() -> bool:
        assert served(client) == {A}  # every request answered, from the old build
        return any("could not be loaded" in r.getMessage() for r in errors.records)

    wait_for(failed, "the broken build's failure logged")
    (record,) = errors.records
    assert B in record.getMessage() and A in record.getMessage() and record.exc_info
    assert served(client) == {A}
    assert app.state.builds.loading is None  # not tried again before retry_s
    # Repaired, it is tried again after retry_s and served.
    broken.unlink()
    broken.symlink_to(good)
    app.state.builds.retry_s = 0.0
    wait_for(serving(client, B), "the repaired build answering")
    assert served(client) == {B}


def test_builds_swapped_out_are_released(builds: Path) -> None:
    app = create_app(ApiSettings(build_dir=builds))
    client = TestClient(app)
    source = app.state.builds.source
    opened: list[weakref.ref[Store]] = []
    open_build = source.open

    def recorded(build_id: str) -> Store:
        store = open_build(build_id)
        opened.append(weakref.ref(store))
        return store

    source.open = recorded
    swaps = 8
    for i in range(swaps + 1):
        build_id = (A, B)[i % 2]
        point(builds, build_id)
        wait_for(serving(client, build_id), f"swap {i}")
        assert served(client) == {build_id}
    assert len(opened) == swaps + 1  # one new store per swap (the first one at start-up)
    gc.collect()
    alive = [ref() for ref in opened if ref() is not None]
    # The one served, and at most the one before it (frozen by the collector until the next
    # swap, if something of it is in a reference cycle).
    assert 1 <= len(alive) <= 2, [s.build_id for s in alive]
    assert alive[-1] is app.state.builds.current().store
