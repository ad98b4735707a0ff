"""Official units through the API: the collection, its licences, its tiles and its downloads,
with the codes kept as text (a spreadsheet must not read 3109006 or SL0103 as a number)."""

from __future__ import annotations

import io
import re
import zipfile

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from geo_service.api.app import create_app
from geo_service.settings import ApiSettings


@pytest.fixture(scope="module")
def client(built, build_dir) -> TestClient:
    return TestClient(create_app(ApiSettings(build_dir=build_dir)))


def test_risk_units_is_a_collection_with_the_sources_it_rests_on(client: TestClient) -> None:
    ids = [c["id"] for c in client.get("/collections").json()["collections"]]
    assert {"risk_units", "units", "osm_places_sle"} <= set(ids)
    meta = client.get("/collections/risk_units").json()
    text = str(meta)
    assert "WorldPop" in text and "OCHA" in text and "IBGE" in text
    assert "OpenStreetMap" not in text
    osm = client.get("/collections/osm_places_sle").json()
    assert "ODbL" in str(osm)


def test_a_chiefdom_is_found_by_its_code_and_its_name(client: TestClient) -> None:
    by_code = client.get("/collections/risk_units/items", params={"code": "SL010301"}).json()
    assert by_code["numberMatched"] == 1
    unit = by_code["features"][0]
    assert unit["id"] == "SL010301" and unit["properties"]["parent_code"] == "SL0103"
    by_name = client.get(
        "/collections/risk_units/items", params={"q": "koidu", "level": "3"}
    ).json()
    assert [f["properties"]["name"] for f in by_name["features"]][:1] == ["Koidu Town"]
    tile = client.get("/tiles/risk_units/8/120/121.mvt")
    assert tile.status_code == 200 and len(tile.content) > 100


def test_downloads_keep_the_codes_as_text(client: TestClient) -> None:
    params = {"parent_code": "31", "limit": "900"}
    csv = client.get("/collections/risk_units/items", params={**params, "f": "csv"})
    assert csv.status_code == 200
    table = pd.read_csv(io.StringIO(csv.text), dtype=str)
    assert len(table) == 853
    assert {"3109006", "3140001"} <= set(table["code"])
    xlsx = client.get("/collections/risk_units/items", params={**params, "f": "xlsx"})
    assert xlsx.status_code == 200
    assert xlsx.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    with zipfile.ZipFile(io.BytesIO(xlsx.content)) as book:
        sheet = book.read("xl/worksheets/sheet1.xml").decode()
        shared = book.read("xl/sharedStrings.xml").decode()
    # The codes are strings of the sheet (shared or inline), never numeric cells.
    assert "3109006" in shared or 'inlineStr"><is><t>3109006' in sheet
    assert not re.search(r"<c [^>]*><v>3109006</v>", sheet)
