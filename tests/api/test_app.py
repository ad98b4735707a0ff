"""The minimal service: /health and /collections from a real build, in-process and live."""

from __future__ import annotations

import shutil
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from geo_service.api.app import create_app
from geo_service.build import build
from geo_service.settings import ApiSettings, BuildSettings
from tests.api.live import SWITCH_S, live_server
from tests.conftest import QUICK_SURFACE_M


@pytest.fixture(scope="module")
def client(built, build_dir) -> TestClient:
    return TestClient(create_app(ApiSettings(build_dir=build_dir)))


def test_health_names_the_build(client, built) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json()["build_id"] == built.build_id
    assert r.headers["x-build-id"] == built.build_id


def test_collections_list_the_build_layers(client, built) -> None:
    r = client.get("/collections")
    assert r.status_code == 200 and r.headers["x-build-id"] == built.build_id
    body = r.json()
    by_id = {c["id"]: c for c in body["collections"]}
    assert set(by_id) == {
        "concessions",
        "mine_sites",
        "communities",
        "tailings_dams",
        "incidents",
        "community_risk",
        "concession_risk",
        "tailings_consequence",
        "risk_hex",
        "coverage",
        "units",
        "risk_units",
        "osm_places_sle",
        # Beside each layer whose rows a source can mark restricted, those rows as cells.
        "concession_areas",
        "community_areas",
        "tailings_dam_areas",
        "incident_areas",
        "community_risk_areas",
        "concession_risk_areas",
        "tailings_consequence_areas",
        "unit_areas",
    }
    # A derived layer names every source it was computed from, with their licences.
    assert (
        "CC BY 4.0" in by_id["community_risk"]["license"]
        and "ANM" in by_id["community_risk"]["attribution"]
    )
    incidents = by_id["incidents"]
    assert (
        incidents["title"] == "Incidents" and incidents["count"] == 1848 + 2 - 76
    )  # the restricted rows are in incident_areas, as 5 cells
    assert incidents["geometryTypes"] == ["Point"]
    assert by_id["incident_areas"]["count"] == 5
    assert by_id["incident_areas"]["geometryTypes"] == ["Polygon"]
    assert incidents["license"] == "CC BY 4.0"
    assert "UCDP" in incidents["attribution"]
    assert incidents["extent"]["temporal"]["interval"] == [
        ["1991-08-08T00:00:00Z", "2022-12-30T00:00:00Z"]
    ]
    assert incidents["extent"]["spatial"]["bbox"][0] == pytest.approx(
        [-43.4425, -29.775, 27.196, 10.465],
        abs=1e-3,  # UCDP, and Fundão and Jagersfontein
    )
    assert incidents["build_id"] == built.build_id
    assert by_id["communities"]["license"] == "CC BY 4.0"
    assert {s["coverage"]["countries"][0] for s in by_id["communities"]["sources"]} == {
        "GIN",  # cities500 of Africa, Sierra Leone left to its village-level file
        "SLE",
        "BRA",
    }
    assert (
        by_id["tailings_dams"]["sources"][0]["publisher"] == "Agência Nacional de Mineração (ANM)"
    )
    # Only a layer whose features carry dates advertises a temporal extent; the others say
    # in words what time they describe, and that datetime selects all of them.
    assert [k for k, c in by_id.items() if "temporal" in c["extent"]] == ["incidents"]
    assert all("spatial" in c["extent"] for c in by_id.values())
    communities = by_id["communities"]["description"]  # GeoNames, OpenStreetMap, ...
    assert "carry no date" in communities and "2026-11-23 to 2026-12-05" in communities
    assert "when retrieved, 2026-11-23." in by_id["mine_sites"]["description"]  # USGS
    # One geometry type per collection: the mapped areas apart from the sites.
    assert by_id["mine_sites"]["geometryTypes"] == ["Point"]
    assert by_id["concessions"]["geometryTypes"] == ["MultiPolygon", "Polygon"]
    assert "evidence of 1991-08-08 to 2022-12-30" in by_id["community_risk"]["description"]
    assert "carry no date" not in incidents["description"]


def test_no_build_answers_503_with_a_hint(tmp_path) -> None:
    client = TestClient(create_app(ApiSettings(build_dir=tmp_path)))
    r = client.get("/collections")
    assert r.status_code == 503
    assert "run 'riskmap build'" in r.json()["description"]


def test_live_server_picks_up_a_new_build_without_restart(
    tmp_path, built, build_dir, small_catalog
) -> None:
    builds = tmp_path / "build"
    shutil.copytree(build_dir, builds, symlinks=True)
    with live_server(builds) as url:
        r = httpx.get(f"{url}/health", timeout=5)
        assert r.status_code == 200 and r.json()["build_id"] == built.build_id
        time.sleep(1.1)
        new = build(
            BuildSettings(build_dir=builds, surface_cell_m=QUICK_SURFACE_M),
            catalog_path=small_catalog,
        )
        # Served once it has loaded; the old build answers meanwhile.
        deadline = time.monotonic() + SWITCH_S
        r = httpx.get(f"{url}/collections", timeout=5)
        while r.headers["x-build-id"] == built.build_id:
            assert time.monotonic() < deadline, f"the new build was not served in {SWITCH_S} s"
            time.sleep(0.1)
            r = httpx.get(f"{url}/collections", timeout=5)
        assert r.headers["x-build-id"] == new.build_id != built.build_id
