"""Clients written by others, unmodified, against a live server: OWSLib and GDAL's OAPIF, on
each backend (the embedded store, and PostGIS with the session build published)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pyogrio
from owslib.ogcapi.features import Features

from geo_service.store.files import load_layer


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
    assert len(incidents) == len(ours) == 1848 + 2 - 76 + 5  # restricted ones as 5 cells
    assert set(incidents["incident_id"]) == set(ours["incident_id"])
    bbox = (20.0, 5.0, 23.0, 7.0)
    part = pyogrio.read_dataframe(source, layer="incidents", bbox=bbox)
    b = ours.bounds
    inside = (
        (b.minx <= bbox[2]) & (b.maxx >= bbox[0]) & (b.miny <= bbox[3]) & (b.maxy >= bbox[1])
    ).sum()
    assert 0 < len(part) == inside < len(ours)
    info = pyogrio.read_info(source, layer="incidents")
    assert info["features"] in (-1, len(ours))  # GDAL may not ask for the count up front
