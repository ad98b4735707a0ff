"""The store interface's contract, checked on every backend against the bundled build.

Each backend opens the same build through ``open_store`` (the PostGIS one after ``publish`` into
a throw-away cluster); every test below holds for each of them: descriptions that match what the queries return, paging, filters, what each access level
sees, features by id, vector tiles, raster values and the build's other files.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import mapbox_vector_tile
import morecantile
import numpy as np
import orjson
import pandas as pd
import pytest
import shapely

from geo_service.errors import BadQueryError, NotFoundError
from geo_service.store.base import Access, ItemQuery, Store

TMS = morecantile.tms.get("WebMercatorQuad")
#: Bria, Central African Republic: restricted reports lie around it.
BRIA = (21.99, 6.54)


def _restricted_ids(store: Store, layer: str) -> set[str]:
    frame = store.frame(layer, ItemQuery(limit=None), Access.analyst)
    id_field = store.layer(layer, Access.analyst).id_field
    hidden = frame["sensitivity"].eq("restricted")
    return set(frame.loc[hidden, id_field].astype(str))


def test_every_layer_is_described_as_its_features_are(store: Store) -> None:
    infos = store.layers(Access.anonymous)
    assert {"community_risk", "incidents", "concessions", "risk_units"} <= set(infos)
    assert not any(i.kind == "raster" for i in infos.values())
    for layer_id, info in infos.items():
        assert info.id == layer_id and info.title
        frame = store.frame(layer_id, ItemQuery(limit=None), Access.anonymous)
        assert info.count == len(frame), layer_id
        assert set(info.fields) == set(frame.columns) - {frame.geometry.name}, layer_id
        assert set(info.queryables) <= set(info.fields), layer_id
        if info.count and info.bounds is not None:
            west, south, east, north = info.bounds
            b = frame.total_bounds
            assert west <= b[0] + 1e-9 and south <= b[1] + 1e-9, layer_id
            assert east >= b[2] - 1e-9 and north >= b[3] - 1e-9, layer_id
    assert infos["incidents"].date_field == "date"
    assert infos["community_risk"].date_field is None


def test_pages_add_up_to_the_whole_and_agree_with_the_table(store: Store) -> None:
    query = ItemQuery(bbox=(-11.5, 8.3, -10.5, 9.0), limit=None)  # Kono, Sierra Leone
    whole = store.query("community_risk", query, Access.anonymous)
    assert whole.number_matched == len(whole.ids) == len(whole.features) > 250
    paged: list[str] = []
    for offset in range(0, whole.number_matched, 100):
        page = store.query(
            "community_risk", replace(query, limit=100, offset=offset), Access.anonymous
        )
        assert page.number_matched == whole.number_matched
        paged += page.ids
    assert paged == whole.ids and len(set(paged)) == len(paged)
    frame = store.frame("community_risk", query, Access.anonymous)
    assert frame["community_id"].astype(str).tolist() == whole.ids
    for fid, body, record in zip(whole.ids[:50], whole.features, whole.records, strict=False):
        feature = orjson.loads(body)
        assert feature["id"] == fid and feature["properties"] == record
        one = store.get("community_risk", fid, Access.anonymous)
        assert one.body == body and one.properties == record


def test_keyset_pages_are_the_offset_pages(store: Store) -> None:
    query = ItemQuery(bbox=(-11.5, 8.3, -10.5, 9.0), filters={"country": "SLE"}, limit=None)
    whole = store.query("community_risk", query, Access.anonymous)
    assert whole.number_matched > 250
    paged: list[str] = []
    after = None
    for _ in range(whole.number_matched // 70 + 2):
        page = store.query(
            "community_risk", replace(query, limit=70, after=after), Access.anonymous
        )
        assert page.number_matched == whole.number_matched
        paged += page.ids
        if len(page.ids) < 70:
            break
        after = page.ids[-1]
    assert paged == whole.ids
    # A feature the caller cannot see is no place to start from, as an unknown one is not.
    hidden = sorted(_restricted_ids(store, "incidents"))[0]
    for after in (hidden, "no-such-feature"):
        with pytest.raises(BadQueryError) as error:
            store.query("incidents", ItemQuery(after=after), Access.anonymous)
        assert error.value.parameter == "after"
    assert store.query("incidents", ItemQuery(after=hidden, limit=1), Access.analyst).ids


def test_filters_select_what_they_say(store: Store) -> None:
    bbox = (21.0, 5.5, 23.0, 7.5)
    inside = store.frame("incidents", ItemQuery(bbox=bbox, limit=None), Access.anonymous)
    everything = store.frame("incidents", ItemQuery(limit=None), Access.anonymous)
    box = shapely.box(*bbox)
    meets = everything.geometry.intersects(box) | everything.geometry.envelope.intersects(box)
    assert 0 < len(inside) < len(everything)
    assert len(inside) == int(meets.sum())
    start, end = pd.Timestamp("2019-01-01"), pd.Timestamp("2019-12-31")
    dated = store.frame("incidents", ItemQuery(interval=(start, end), limit=None), Access.anonymous)
    days = pd.to_datetime(dated["date"])
    # Rows with no date (cells standing for restricted reports) match any datetime.
    assert days.notna().any() and ((days >= start) & (days <= end) | days.isna()).all()
    caf = store.frame(
        "incidents", ItemQuery(filters={"country": "CAF"}, limit=None), Access.anonymous
    )
    assert len(caf) and (caf["country"] == "CAF").all()
    named = store.query("community_risk", ItemQuery(q="tshikapa", limit=3), Access.anonymous)
    assert named.records and named.records[0]["name"] == "Tshikapa"
    with pytest.raises(BadQueryError):
        store.query("incidents", ItemQuery(properties=("no_such_field",)), Access.anonymous)
    few = store.query("incidents", ItemQuery(properties=("date",), limit=5), Access.anonymous)
    assert all(set(r) == {"date"} for r in few.records)
    assert all(set(orjson.loads(f)["properties"]) == {"date"} for f in few.features)


def test_restricted_rows_reach_only_the_roles_that_may_see_them(store: Store) -> None:
    hidden = _restricted_ids(store, "incidents")
    assert len(hidden) >= 50, "the bundled catalog marks recent one-sided events restricted"
    for access in (Access.anonymous, Access.viewer):
        page = store.query("incidents", ItemQuery(limit=None), access)
        assert not hidden & set(page.ids)
        assert store.layer("incidents", access).count == page.number_matched
        for fid in sorted(hidden)[:5]:
            with pytest.raises(NotFoundError):
                store.get("incidents", fid, access)
    analyst = store.query("incidents", ItemQuery(limit=None), Access.analyst)
    assert hidden <= set(analyst.ids)
    assert store.get("incidents", sorted(hidden)[0], Access.analyst).id == sorted(hidden)[0]
    # Tiles over the restricted places: the anonymous ones carry none of their ids.
    tile = TMS.tile(*BRIA, 9)
    public = mapbox_vector_tile.decode(
        store.vector_tile("incidents", tile.z, tile.x, tile.y, Access.anonymous)
    )
    ids = {str(f["properties"].get("incident_id")) for f in public["incidents"]["features"]}
    assert ids and "None" not in ids and not ids & hidden
    full = mapbox_vector_tile.decode(
        store.vector_tile("incidents", tile.z, tile.x, tile.y, Access.analyst)
    )
    assert {str(f["properties"].get("incident_id")) for f in full["incidents"]["features"]} & hidden


def test_vector_tiles_hold_the_features_of_their_box(store: Store) -> None:
    tile = TMS.tile(-10.97, 8.64, 10)  # Koidu, Sierra Leone
    body = store.vector_tile("community_risk", tile.z, tile.x, tile.y, Access.anonymous)
    features = mapbox_vector_tile.decode(body)["community_risk"]["features"]
    west, south, east, north = TMS.bounds(tile)
    exact = store.query(
        "community_risk", ItemQuery(bbox=(west, south, east, north), limit=None), Access.anonymous
    )
    # A tile also carries what lies in its buffer (64/4096 of its side on each edge).
    pad = (east - west) * 64 / 4096
    padded = store.query(
        "community_risk",
        ItemQuery(bbox=(west - pad, south - pad, east + pad, north + pad), limit=None),
        Access.anonymous,
    )
    assert 0 < exact.number_matched <= len(features) <= padded.number_matched
    ocean = TMS.tile(-20.0, -40.0, 6)  # the South Atlantic
    empty = mapbox_vector_tile.decode(
        store.vector_tile("community_risk", ocean.z, ocean.x, ocean.y, Access.anonymous)
    )
    assert sum(len(layer["features"]) for layer in empty.values()) == 0


def test_rasters_give_their_values_and_nothing_outside(store: Store) -> None:
    surface = store.raster("risk_surface")
    assert surface.info.kind == "raster" and Path(surface.location).exists()
    assert 9 <= surface.native_zoom <= 10  # 250 m cells
    tile = TMS.tile(*BRIA, 8)
    image = surface.tile_data(tile.z, tile.x, tile.y)
    assert image is not None and image.array.shape[-2:] == (256, 256)
    values = image.array.compressed()
    assert len(values) and np.nanmin(values) >= 0.0 and np.nanmax(values) <= 1.0
    ocean = TMS.tile(-30.0, 0.0, 6)
    assert surface.tile_data(ocean.z, ocean.x, ocean.y) is None
    with pytest.raises(NotFoundError):
        store.raster("community_risk")


def test_other_files_and_unknown_names(store: Store) -> None:
    basemap = orjson.loads(store.resource("basemap"))
    assert basemap["type"] == "FeatureCollection" and len(basemap["features"]) > 50
    with pytest.raises(NotFoundError):
        store.resource("no_such_file")
    with pytest.raises(NotFoundError):
        store.layer("no_such_layer")
    with pytest.raises(NotFoundError):
        store.query("risk_surface", ItemQuery(), Access.anonymous)
    with pytest.raises(NotFoundError):
        store.get("community_risk", "no-such-id", Access.admin)


def test_restricted_rows_are_cells_of_a_collection_of_their_own(store: Store) -> None:
    """No layer mixes its rows with the cells of its restricted rows: those are its areas
    layer, the same features for every access level; the layer keeps its own geometry types
    for every caller (the incidents: points)."""
    anonymous, analyst = store.layers(Access.anonymous), store.layers(Access.analyst)
    assert set(anonymous) == set(analyst)
    with_areas = {k: v.meta.areas for k, v in analyst.items() if v.meta.areas}
    assert with_areas["incidents"] == "incident_areas"
    assert with_areas["community_risk"] == "community_risk_areas"
    assert with_areas["mine_sites"] == with_areas["concessions"] == "concession_areas"
    for layer_id, areas in with_areas.items():
        # The areas name one layer of those whose rows they hold (concessions, mine sites).
        assert with_areas[anonymous[areas].meta.areas_of] == areas
        full = store.frame(layer_id, ItemQuery(limit=None), Access.analyst)
        seen = store.frame(layer_id, ItemQuery(limit=None), Access.anonymous)
        assert set(seen.geom_type) <= set(full.geom_type), layer_id
        everything = ItemQuery(limit=10_000)
        public = store.query(areas, everything, Access.anonymous)
        precise = store.query(areas, everything, Access.analyst)
        assert public.features == precise.features and public.ids == precise.ids, areas
        cells = store.frame(areas, ItemQuery(limit=None), Access.anonymous)
        assert set(cells.geom_type) <= {"Polygon"} and (cells["count"] >= 3).all(), areas
        assert anonymous[areas].count == analyst[areas].count == len(cells)
    for access in (Access.anonymous, Access.analyst):
        incidents = store.frame("incidents", ItemQuery(limit=None), access)
        assert set(incidents.geom_type) == {"Point"}
    cells = store.query("incident_areas", ItemQuery(limit=100), Access.anonymous)
    assert cells.number_matched == 5 and all(r["count"] >= 3 for r in cells.records)
