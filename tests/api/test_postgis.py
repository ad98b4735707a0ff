"""The service on PostGIS: the same answers as the embedded store, several replicas alike, and a
new build picked up by every replica without a response that mixes two builds.

Each test has a database of its own in the session's throw-away cluster (``postgis_url``).
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import httpx
import mapbox_vector_tile
import morecantile
import orjson
import psycopg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from geo_service.api.app import create_app
from geo_service.build import BuildResult, build
from geo_service.cli import app
from geo_service.settings import ApiSettings, BuildSettings
from geo_service.store.postgis import publish
from tests.api.live import live_server

TMS = morecantile.tms.get("WebMercatorQuad")
BRIA = TMS.tile(21.99, 6.54, 7)
KOIDU = TMS.tile(-10.97, 8.64, 10)
HOST = {"host": "maps.example"}
#: What a client asks for: documents, pages of items, filters, a feature, tiles, maps.
URLS = [
    "/collections",
    "/collections/incidents",
    "/collections/incidents/queryables",
    "/collections/incidents/items?limit=50",
    "/collections/incidents/items?limit=20&offset=40&bbox=20,4,24,8",
    "/collections/incidents/items?datetime=2019-01-01/2019-12-31&limit=30",
    "/collections/incidents/items?type=one-sided&properties=date,type&limit=25",
    "/collections/incidents/items/ucdp_ged_caf:36210",
    "/collections/incidents/items?f=html&limit=10",
    "/collections/incidents/items/ucdp_ged_caf:36210?f=html",
    "/collections/incidents/items?f=csv&bbox=21,5,23,7",
    "/collections/community_risk/items?q=bria&limit=5",
    f"/tiles/risk_surface/{BRIA.z}/{BRIA.x}/{BRIA.y}.png",
    "/tiles/incidents/tilejson.json",
    "/maps/central-african-republic",
    "/embed/central-african-republic",
    "/maps/central-african-republic/sources",
    "/maps/central-african-republic.png?width=400&height=300",
    "/basemap.json",
]


def _database(url: str, name: str) -> str:
    """A new database with PostGIS in the cluster of ``url``."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    there = re.sub(r"@/[^?]+", f"@/{name}", url)
    with psycopg.connect(there, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION postgis")
    return there


def test_postgis_answers_as_the_embedded_store(
    built: BuildResult, build_dir: Path, postgis_url: str
) -> None:
    url = _database(postgis_url, "riskmap_same")
    publish(url, build_dir, built.build_id)
    embedded = TestClient(create_app(ApiSettings(build_dir=build_dir)))
    database = TestClient(create_app(ApiSettings(build_dir=build_dir, store_url=url)))
    for path in URLS:
        a, b = embedded.get(path), database.get(path)
        assert a.status_code == b.status_code == 200, path
        assert a.headers["etag"] == b.headers["etag"], path
        assert a.headers["x-build-id"] == b.headers["x-build-id"] == built.build_id
        assert a.content == b.content, path
    # Vector tiles come from ST_AsMVT: the same features, encoded by PostGIS.
    for layer, tile, key in (
        ("incidents", BRIA, "incident_id"),
        ("community_risk", KOIDU, "community_id"),
    ):
        path = f"/tiles/{layer}/{tile.z}/{tile.x}/{tile.y}.mvt"
        a, b = (mapbox_vector_tile.decode(c.get(path).content) for c in (embedded, database))
        ids = [sorted(str(f["properties"][key]) for f in d[layer]["features"]) for d in (a, b)]
        assert len(ids[0]) > 0 and ids[0] == ids[1], layer
    # Restricted reports stay out of the anonymous answers, read through the public role.
    hidden = database.get(
        "/collections/incidents/items?limit=5", headers={"accept": "application/geo+json"}
    )
    assert (
        orjson.loads(hidden.content)["numberMatched"]
        == orjson.loads(embedded.get("/collections/incidents/items?limit=5").content)[
            "numberMatched"
        ]
    )


def test_the_public_role_cannot_read_restricted_rows(
    built: BuildResult, build_dir: Path, postgis_url: str
) -> None:
    url = _database(postgis_url, "riskmap_roles")
    publish(url, build_dir, built.build_id)
    with psycopg.connect(url) as conn:
        schema = conn.execute("SELECT schema_name FROM riskmap.builds WHERE current").fetchone()[0]
        conn.execute("SET ROLE riskmap_public")
        assert conn.execute(f'SELECT count(*) FROM "{schema}"."incidents__public"').fetchone()[0]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f'SELECT count(*) FROM "{schema}"."incidents"')
        conn.rollback()
        conn.execute("SET ROLE riskmap_public")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f'SELECT count(*) FROM "{schema}"."files"')
        conn.rollback()
        conn.execute("SET ROLE riskmap_full")
        full = conn.execute(
            f'SELECT count(*) FROM "{schema}"."incidents" WHERE restricted'
        ).fetchone()[0]
        assert full >= 50


def test_replicas_answer_alike_and_switch_together(
    small_catalog: Path, tmp_path: Path, postgis_url: str
) -> None:
    url = _database(postgis_url, "riskmap_replicas")
    settings = BuildSettings(build_dir=tmp_path / "builds")
    first = build(settings, catalog_path=small_catalog)
    publish(url, settings.build_dir, first.build_id)
    with (
        live_server(settings.build_dir, store_url=url) as one,
        live_server(settings.build_dir, store_url=url) as two,
    ):
        for path in URLS:
            if "central-african-republic" not in path and "incidents" not in path:
                continue
            # Behind one proxy both replicas are asked under the same host name.
            a, b = (httpx.get(u + path, headers=HOST, timeout=60) for u in (one, two))
            assert a.status_code == b.status_code == 200, path
            assert a.headers["etag"] == b.headers["etag"], path
            assert a.content == b.content, path
        # A new build, published while both replicas answer: each picks it up within a few
        # seconds, and no answer carries one build in its header and another in its body.
        second = build(settings, catalog_path=small_catalog)
        assert second.build_id != first.build_id
        seen: list[tuple[str, str]] = []
        stop = threading.Event()

        def ask(base: str) -> None:
            while not stop.is_set():
                r = httpx.get(base + "/collections/incidents/items?limit=1", timeout=30)
                seen.append((r.headers["x-build-id"], orjson.loads(r.content)["build_id"]))

        threads = [threading.Thread(target=ask, args=(u,)) for u in (one, two)]
        for t in threads:
            t.start()
        try:
            publish(url, settings.build_dir, second.build_id)
            published = time.monotonic()
            for base in (one, two):
                while (
                    httpx.get(base + "/collections", timeout=10).headers["x-build-id"]
                    != second.build_id
                ):
                    assert time.monotonic() - published < 5.0, f"{base} still on the old build"
                    time.sleep(0.1)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
        assert seen and all(header == body for header, body in seen)
        assert {h for h, _ in seen} <= {first.build_id, second.build_id}
        # Publishing the first build again rolls back to it, without copying it again.
        with psycopg.connect(url) as conn:
            before = conn.execute(
                "SELECT published FROM riskmap.builds WHERE build_id = %s", (first.build_id,)
            ).fetchone()[0]
        publish(url, settings.build_dir, first.build_id)
        with psycopg.connect(url) as conn:
            after = conn.execute(
                "SELECT published FROM riskmap.builds WHERE build_id = %s", (first.build_id,)
            ).fetchone()[0]
        assert after == before
        for base in (one, two):
            deadline = time.monotonic() + 5.0
            while httpx.get(base + "/collections", timeout=10).headers["x-build-id"] != (
                first.build_id
            ):
                assert time.monotonic() < deadline, f"{base} did not roll back"
                time.sleep(0.1)


def test_riskmap_build_publishes_when_given_a_database(
    small_catalog: Path, tmp_path: Path, postgis_url: str
) -> None:
    url = _database(postgis_url, "riskmap_cli")
    runner = CliRunner(env={"COLUMNS": "200", "RISKMAP_STORE_URL": url})
    args = ["build", "--catalog", str(small_catalog), "--build-dir", str(tmp_path)]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "published into PostGIS" in first.output
    current = (tmp_path / "current").readlink().name
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT build_id, current FROM riskmap.builds").fetchall()
    assert rows == [(current, True)]
    # Nothing changed: no new build, and the database keeps the one it has.
    again = runner.invoke(app, [*args, "--if-needed"])
    assert again.exit_code == 0, again.output
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT build_id, current FROM riskmap.builds").fetchall() == rows
    # A database that cannot be reached: a clear error and exit status 2; the build stays.
    broken = CliRunner(env={"COLUMNS": "200", "RISKMAP_STORE_URL": url + "&port=1"})
    failed = broken.invoke(app, [*args, "--if-needed"])
    assert failed.exit_code == 2
    assert "publishing" in failed.output and "PostGIS failed" in failed.output
    assert (tmp_path / "current").readlink().name == current
