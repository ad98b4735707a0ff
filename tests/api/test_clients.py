"""Clients written by others, unmodified, against a live server: OWSLib and GDAL's OAPIF, on
each backend (the embedded store, and PostGIS with the session build published)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import geopandas as gpd
import httpx
import pandas as pd
import pyogrio
import pytest
from owslib.ogcapi.features import Features

from geo_service.store.files import load_layer

#: The id property of the layers that have one GDAL keeps (it keeps "id" to itself).
ID_FIELDS = ("incident_id", "community_id", "concession_id", "dam_id", "code", "place_id", "h3")


def test_owslib_lists_collections_and_pages_to_the_end(url, build_dir) -> None:
    api = Features(url)
    assert "conformsTo" in api.conformance()
    ids = {c["id"] for c in api.collections()["collections"]}
    assert {"incidents", "community_risk", "tailings_consequence"} <= ids
    assert api.collection("incidents")["title"] == "Incidents"
    assert "type" in api.collection_queryables("incidents")["properties"]

    seen: list[str] = []
    params: dict[str, str] = {"limit": "700"}
    for _ in range(45):  # 26,074 communities in pages of 700: 38 pages
        page = api.collection_items("communities", **params)
        assert page["numberMatched"] == 26074
        seen += [f["id"] for f in page["features"]]
        nxt = [link["href"] for link in page["links"] if link["rel"] == "next"]
        if not nxt:
            break
        params = dict(parse_qsl(urlsplit(nxt[0]).query))
    assert len(seen) == len(set(seen)) == 26074
    # datetime on every collection: dated features in the interval, undated ones all.
    for collection in ids:
        page = api.collection_items(collection, datetime_="2019-01-01/2019-12-31", limit=1)
        whole = api.collection_items(collection, limit=1)
        dated = "temporal" in api.collection(collection)["extent"]
        assert (page["numberMatched"] < whole["numberMatched"]) is dated, collection
    want = set(load_layer(build_dir, "communities")["community_id"])
    assert set(seen) == want


def test_gdal_oapif_reads_collections_whole_and_by_bbox(url, build_dir) -> None:
    source = f"OAPIF:{url}/"
    layers = {name for name, _ in pyogrio.list_layers(source)}
    assert {"incidents", "communities", "community_risk", "risk_hex"} <= layers
    incidents = pyogrio.read_dataframe(source, layer="incidents")
    ours = load_layer(build_dir, "incidents", public=True)  # GDAL asks with no token
    assert len(incidents) == len(ours) == 1848 + 2 - 76  # the restricted ones left out
    assert set(incidents["incident_id"]) == set(ours["incident_id"])
    assert set(incidents.geom_type) == {"Point"}
    # ... and found as 5 cells in a collection of their own.
    cells = pyogrio.read_dataframe(source, layer="incident_areas")
    assert len(cells) == 5 and set(cells.geom_type) == {"Polygon"}
    bbox = (20.0, 5.0, 23.0, 7.0)
    part = pyogrio.read_dataframe(source, layer="incidents", bbox=bbox)
    b = ours.bounds
    inside = (
        (b.minx <= bbox[2]) & (b.maxx >= bbox[0]) & (b.miny <= bbox[3]) & (b.maxy >= bbox[1])
    ).sum()
    assert 0 < len(part) == inside < len(ours)
    info = pyogrio.read_info(source, layer="incidents")
    assert info["features"] in (-1, len(ours))  # GDAL may not ask for the count up front


#: Reads layers through GDAL's OAPIF driver with its debug log on (GDAL reads CPL_LOG once, at
#: its start, so each run is a process of its own): ``source log [[layer, where], …]`` in,
#: each result's ids (or count) out as JSON.
READER = """
import json, sys
import pyogrio
source, asks = sys.argv[1], json.loads(sys.argv[2])
out = []
for layer, where, id_field in asks:
    frame = pyogrio.read_dataframe(source, layer=layer, where=where)
    dates = sorted(frame["date"].astype(str)) if "date" in frame else []
    ids = sorted(frame[id_field].astype(str)) if id_field else []
    out.append({"count": len(frame), "ids": ids, "dates": dates[:1] + dates[-1:]})
print(json.dumps(out))
"""


def _gdal(url: str, asks: list[tuple[str, str, str | None]], log: Path) -> list[dict]:
    """What GDAL reads for each (layer, where, id field), with its log in ``log``."""
    env = {**os.environ, "CPL_DEBUG": "ON", "CPL_LOG": str(log)}
    run = subprocess.run(
        [sys.executable, "-c", READER, f"OAPIF:{url}/", json.dumps(asks)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout)


def _where(frame: pd.DataFrame, queryables: dict) -> tuple[str, pd.Series]:
    """An OGR SQL condition on a text queryable of the layer, and the rows it selects."""
    texts = [k for k, v in queryables.items() if v.get("type") == "string" and k in frame]
    column = "country" if "country" in texts else texts[0]
    value = frame[column].dropna().value_counts().index[0]
    quoted = str(value).replace("'", "''")
    return f"{column} = '{quoted}'", frame[column] == value


def test_gdal_sends_where_to_the_server_as_cql2_on_every_collection(url, tmp_path) -> None:
    """GDAL's OAPIF driver, default options: each -where goes to the server as a filter
    (never 'evaluated on client side'), in pages of 1,000, and selects what the same
    condition selects in a full download."""
    asks, wanted = [], []
    for collection in [c["id"] for c in httpx.get(f"{url}/collections").json()["collections"]]:
        whole = gpd.read_parquet(
            io.BytesIO(httpx.get(f"{url}/collections/{collection}/items?f=parquet").content)
        )
        if not len(whole):  # the areas of a layer with nothing restricted: nothing to select
            continue
        queryables = httpx.get(f"{url}/collections/{collection}/queryables").json()["properties"]
        where, selected = _where(whole, queryables)
        id_field = next((k for k in ID_FIELDS if k in whole), None)
        ids = sorted(whole.loc[selected, id_field].astype(str)) if id_field else []
        asks.append((collection, where, id_field))
        wanted.append((collection, int(selected.sum()), ids))
    log = tmp_path / "gdal.log"
    got = _gdal(url, asks, log)
    text = log.read_text()
    assert "client side" not in text
    for (collection, count, ids), result in zip(wanted, got, strict=False):
        assert result["count"] == count, collection
        assert result["ids"] == ids, collection
        fetched = [x for x in text.splitlines() if f"/collections/{collection}/items?" in x]
        pages = max(-(-count // 1000), 1)
        pages_read = [x for x in fetched if "limit=20)" not in x]  # not the first sample
        assert all("filter=" in x for x in pages_read), pages_read
        assert len(pages_read) <= pages, (collection, len(pages_read), pages)
    # A condition on the date goes to the server too.
    dated = _gdal(url, [("incidents", "date >= '2020-01-01'", "incident_id")], log)[0]
    assert "client side" not in log.read_text() and "filter=date" in log.read_text()
    assert dated["count"] and dated["dates"][0] >= "2020-01-01"


def test_owslib_sends_cql2_and_gets_what_a_full_download_holds(url) -> None:
    api = Features(url)
    text = "score > 50 AND country = 'SLE'"
    got = api.collection_items("community_risk", filter=text, limit=1000)
    whole = gpd.read_parquet(
        io.BytesIO(httpx.get(f"{url}/collections/community_risk/items?f=parquet").content)
    )
    want = whole[(whole["score"] > 50) & (whole["country"] == "SLE")]
    assert got["numberMatched"] == len(want) == len(got["features"]) > 10
    assert {f["id"] for f in got["features"]} == set(want["community_id"])


#: QGIS's Python bindings come from Debian (``make test`` installs them) and run in the
#: system's Python, not ours.
SYSTEM_PYTHON = "/usr/bin/python3"
QGIS = """
import json, os, sys
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from qgis.core import (QgsApplication, QgsFeatureRequest, QgsNetworkAccessManager,
    QgsRectangle, QgsVectorLayer)
app = QgsApplication([], False)
app.initQgis()
url, whole, box, names = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4:]
seen = []
QgsNetworkAccessManager.setRequestPreprocessor(lambda req: seen.append(req.url().toString()))
def layer(name):
    return QgsVectorLayer(f"url='{url}' typename='{name}'", name, "OAPIF")
out = {"layers": {}}
for name in names:
    found = layer(name)
    out["layers"][name] = [found.isValid(), found.featureCount()]
seen.clear()
boxed = layer(whole)
request = QgsFeatureRequest().setFilterRect(QgsRectangle(*box))
out["box"] = [f["community_id"] for f in boxed.getFeatures(request)]
out["box_requests"] = list(seen)
seen.clear()
read = layer(whole)
out["whole"] = [f["community_id"] for f in read.getFeatures()]
out["whole_requests"] = list(seen)
app.exitQgis()
print("RESULT " + json.dumps(out))
"""


def _has_qgis() -> bool:
    return (
        Path(SYSTEM_PYTHON).exists()
        and subprocess.run(
            [SYSTEM_PYTHON, "-c", "import qgis.core"], capture_output=True
        ).returncode
        == 0
    )


def test_qgis_reads_every_collection_in_large_pages_and_boxes_on_the_server(url) -> None:
    """QGIS's own OGC API – Features provider (not GDAL's; Debian's QGIS 3.22), unmodified:
    every collection opens with the count the API gives; a whole layer comes in pages of
    1,000 (its largest page; the API's maximum is 10,000); a box holds what the API's bbox
    query holds (QGIS 3.22 downloads a layer of this size whole and cuts the box itself)."""
    if not _has_qgis():
        pytest.skip("QGIS's Python bindings are not installed (make test installs them)")
    collections = httpx.get(f"{url}/collections").json()["collections"]
    names = [c["id"] for c in collections if c.get("itemType") == "feature"]
    box = [-11.2, 8.4, -10.8, 8.8]  # round Koidu, Sierra Leone
    run = subprocess.run(
        [SYSTEM_PYTHON, "-c", QGIS, url, "community_risk", json.dumps(box), *names],
        capture_output=True,
        text=True,
        timeout=600,
    )
    line = next((x for x in run.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line is not None, run.stderr[-2000:]
    out = json.loads(line[len("RESULT ") :])
    for name in names:
        matched = httpx.get(f"{url}/collections/{name}/items", params={"limit": 1}).json()
        assert out["layers"][name] == [True, matched["numberMatched"]], name
    whole = httpx.get(f"{url}/collections/community_risk/items", params={"limit": 1}).json()
    assert len(out["whole"]) == len(set(out["whole"])) == whole["numberMatched"]
    for phase in ("box_requests", "whole_requests"):
        pages = [u for u in out[phase] if "/items" in u and "limit=10&" not in u + "&"]
        assert 0 < len(pages) <= whole["numberMatched"] // 1000 + 2, (phase, len(pages))
        assert all("limit=1000" in u for u in pages), pages[:3]
    api = httpx.get(
        f"{url}/collections/community_risk/items",
        params={"bbox": ",".join(map(str, box)), "limit": 10000, "properties": "name"},
    ).json()
    assert set(out["box"]) == {f["id"] for f in api["features"]}
    assert out["box"]
