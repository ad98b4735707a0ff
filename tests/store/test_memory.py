"""The in-memory layer table: what each access level sees, filters, pages, encoding."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import orjson
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_service.errors import NotFoundError
from geo_service.settings import ApiSettings
from geo_service.store import open_store
from geo_service.store.base import Access, ItemQuery
from geo_service.store.catalog import CatalogLayer
from geo_service.store.cql import parse
from geo_service.store.memory import FILTERS_KEPT, LayerTable


@pytest.fixture
def table() -> LayerTable:
    frame = gpd.GeoDataFrame(
        {
            "incident_id": ["a", "b", "c", "d"],
            "date": pd.to_datetime(["2020-01-01", "2020-06-01", None, "2021-01-01"]),
            "type": pd.array(["one-sided", "state-based", "one-sided", None], dtype="string"),
            "fatalities": pd.array([1, 0, 3, None], dtype="Int64"),
            "sensitivity": ["public", "restricted", "public", "public"],
            "ids": [["x", "y"], [], None, ["z"]],
        },
        geometry=[
            shapely.Point(179.5, 0),
            shapely.Point(10, 10),
            shapely.Point(-179.5, 1),
            None,
        ],
        crs="EPSG:4326",
    )
    meta = CatalogLayer(
        id="incidents", title="Incidents", kind="incidents", file="x", id_field="incident_id"
    )
    return LayerTable("incidents", meta, frame)


def test_restricted_rows_exist_only_for_roles_that_allow_them(table) -> None:
    everything = ItemQuery(limit=10)
    assert table.select(everything, Access.anonymous).tolist() == [0, 2, 3]
    assert table.select(everything, Access.viewer).tolist() == [0, 2, 3]
    assert table.select(everything, Access.analyst).tolist() == [0, 1, 2, 3]
    with pytest.raises(NotFoundError):  # 404 for anonymous, as for an id that never existed
        table.get("b", Access.anonymous)
    assert orjson.loads(table.get("b", Access.admin).body)["id"] == "b"
    # The page count does not reveal restricted rows either.
    assert table.page(everything, Access.anonymous, "x").number_matched == 3


def test_bbox_across_the_antimeridian_and_missing_geometry(table) -> None:
    q = ItemQuery(bbox=(179.0, -1.0, -179.0, 2.0))
    assert table.select(q, Access.admin).tolist() == [0, 2]
    assert table.select(ItemQuery(bbox=(-180, -90, 180, 90)), Access.admin).tolist() == [0, 1, 2]


def test_dates_and_properties(table) -> None:
    day = (pd.Timestamp("2020-06-01"), pd.Timestamp("2020-06-01 23:59:59.999"))
    # Row 2 has no date: it matches any datetime (OGC API – Features, fc-time-response C).
    assert table.select(ItemQuery(interval=day), Access.admin).tolist() == [1, 2]
    assert table.select(ItemQuery(interval=(None, day[1])), Access.admin).tolist() == [0, 1, 2]
    assert table.select(ItemQuery(filters={"type": "one-sided"}), Access.admin).tolist() == [0, 2]
    assert table.select(ItemQuery(filters={"fatalities": "3"}), Access.admin).tolist() == [2]
    assert "ids" not in table.queryables and table.queryables["fatalities"] == "integer"


def test_features_are_rfc7946_with_nulls_and_lists(table) -> None:
    first, third, fourth = (orjson.loads(f) for f in table.features([0, 2, 3]))
    assert first["geometry"] == {"type": "Point", "coordinates": [179.5, 0]}
    assert first["properties"]["date"] == "2020-01-01" and first["properties"]["ids"] == ["x", "y"]
    assert third["properties"]["date"] is None and third["properties"]["ids"] is None
    assert fourth["geometry"] is None and fourth["properties"]["fatalities"] is None
    assert fourth["properties"]["type"] is None


def _meets_every_row(table: LayerTable, box: tuple[float, float, float, float]) -> np.ndarray:
    """Whether each row's bounds meet ``box``, by comparing every row (west > east: across
    the antimeridian): what ``in_box`` must give."""
    west, south, east, north = box
    if west <= east:
        in_x = (table.minx <= east) & (table.maxx >= west)
    else:
        in_x = (table.maxx >= west) | (table.minx <= east)
    return in_x & (table.miny <= north) & (table.maxy >= south)


@settings(max_examples=200, deadline=None)
@given(
    shapes=st.lists(
        st.tuples(st.floats(-180, 180), st.floats(-90, 90), st.floats(0, 40), st.floats(0, 20)),
        min_size=1,
        max_size=60,
    ),
    box=st.tuples(st.floats(-180, 180), st.floats(-90, 90), st.floats(-180, 180), st.floats(0, 90)),
)
def test_a_box_selects_the_rows_whose_bounds_meet_it(shapes, box) -> None:
    """The run of rows found by their west edge holds exactly the rows a comparison of every
    row's bounds finds, across the antimeridian too, with points, boxes and empty rows."""
    geometries = [
        shapely.Point(x, y) if w == 0 else shapely.box(x, y, min(x + w, 180), min(y + h, 90))
        for x, y, w, h in shapes
    ] + [None]
    frame = gpd.GeoDataFrame({"k": range(len(geometries))}, geometry=geometries, crs="EPSG:4326")
    meta = CatalogLayer(id="x", title="X", kind="incidents", file="x")
    table = LayerTable("x", meta, frame)
    west, south, east, height = box
    box = (west, south, east, min(south + height, 90))
    assert table.in_box(box).tolist() == _meets_every_row(table, box).tolist()


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(1, 5_000),
    grid=st.sampled_from([1, 3, 50, 0]),
    boxes_too=st.booleans(),
    box=st.tuples(
        st.integers(-2, 12), st.integers(-2, 12), st.integers(-2, 12), st.integers(0, 14)
    ),
)
def test_a_box_meets_rows_on_its_edges_and_shared_coordinates(seed, size, grid, boxes_too, box):
    """With many rows sharing coordinates (snapped to a grid of ``grid`` steps a unit; 0:
    not snapped) and boxes whose edges fall on them, the run of a layer of points or of boxes
    gives what comparing every row's bounds gives: rows on a box's edge meet it."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 10, (size, 2))
    if grid:
        xy = np.round(xy * grid) / grid
    if boxes_too:
        wh = np.round(rng.uniform(0, 2, (size, 2)) * max(grid, 1)) / max(grid, 1)
        geometries = shapely.box(xy[:, 0], xy[:, 1], xy[:, 0] + wh[:, 0], xy[:, 1] + wh[:, 1])
    else:
        geometries = shapely.points(xy)
    geometries = [*geometries, None]  # and a row without a geometry, which meets no box
    frame = gpd.GeoDataFrame({"k": range(size + 1)}, geometry=geometries, crs="EPSG:4326")
    table = LayerTable("x", CatalogLayer(id="x", title="X", kind="incidents", file="x"), frame)
    west, south, east, height = (float(v) for v in box)
    box = (west, south, east, south + height)
    assert table.in_box(box).tolist() == _meets_every_row(table, box).tolist()


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    asked=st.lists(
        st.tuples(
            st.integers(0, 30),
            st.tuples(st.floats(0, 10), st.floats(0, 10), st.floats(0, 10), st.floats(0, 10)),
            st.sampled_from([Access.anonymous, Access.admin]),
        ),
        min_size=1,
        max_size=60,
    ),
)
def test_a_kept_filter_answers_as_a_fresh_one(seed, asked) -> None:
    """Filters asked again (with other boxes and callers, after others have pushed them out
    of the ``FILTERS_KEPT`` kept) match the rows a fresh comparison finds; what is kept stays
    read-only and within bounds, and an answer changed by its caller changes nothing kept."""
    rng = np.random.default_rng(seed)
    size = 2_000
    score = rng.uniform(0, 30, size)
    score[rng.random(size) < 0.05] = np.nan
    frame = gpd.GeoDataFrame(
        {
            "score": score,
            "sensitivity": np.where(rng.random(size) < 0.2, "restricted", "public"),
        },
        geometry=shapely.points(rng.uniform(0, 10, (size, 2))),
        crs="EPSG:4326",
    )
    table = LayerTable("x", CatalogLayer(id="x", title="X", kind="incidents", file="x"), frame)
    for threshold, box, access in asked:
        west, east = sorted(box[::2])
        south, north = sorted(box[1::2])
        query = ItemQuery(bbox=(west, south, east, north), filter=parse(f"score > {threshold}"))
        found = table.matching(query, access)
        fresh = (table.minx >= west) & (table.minx <= east)
        fresh &= (table.miny >= south) & (table.miny <= north)
        fresh &= np.nan_to_num(score, nan=-1.0) > threshold
        if access is Access.anonymous:
            fresh &= ~table.restricted
        assert found.tolist() == fresh.tolist()
        found[:] = True  # the caller's own array
        assert len(table._filters) <= FILTERS_KEPT
        assert not any(kept.flags.writeable for kept in table._filters.values())
    for threshold in range(31, 33 + FILTERS_KEPT):  # more new filters than are kept
        table.matching(ItemQuery(filter=parse(f"score > {threshold}")), Access.admin)
    assert len(table._filters) == FILTERS_KEPT


def test_a_page_is_computed_at_once_only_from_a_loaded_layer(built, build_dir) -> None:
    """Routes answer a small page on the event loop only when nothing has to be loaded."""
    store = open_store(ApiSettings(build_dir=build_dir)).open(built.build_id)
    assert not store.answers_at_once("incidents", Access.anonymous)
    store.layer("incidents", Access.anonymous)
    assert store.answers_at_once("incidents", Access.anonymous)
    assert not store.answers_at_once("incidents", Access.analyst)  # the full view: not loaded
    assert not store.answers_at_once("no_such_layer", Access.anonymous)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(1, 12_000),
    ordered=st.booleans(),
    box=st.tuples(st.floats(0, 10), st.floats(0, 10), st.floats(0, 10), st.floats(0, 10)),
    limit=st.one_of(st.none(), st.integers(1, 300)),
    offset=st.integers(0, 400),
    after=st.one_of(st.none(), st.integers(0, 12_000)),
)
def test_a_page_is_the_slice_of_every_match(seed, size, ordered, box, limit, offset, after):
    """A page read from the first stretch of the matches is the slice ``offset`` (or after
    the feature ``after``) of the list of every match, with the same count: with matches
    spread through the layer, or gathered at its end (rows in order of longitude)."""
    xy = np.random.default_rng(seed).uniform(0, 10, (size, 2))
    if ordered:
        xy = xy[np.argsort(xy[:, 0])]
    frame = gpd.GeoDataFrame(
        {"fid": [f"f{i}" for i in range(size)]},
        geometry=shapely.points(xy),
        crs="EPSG:4326",
    )
    meta = CatalogLayer(id="x", title="X", kind="incidents", file="x", id_field="fid")
    table = LayerTable("x", meta, frame)
    west, east = sorted(box[::2])
    south, north = sorted(box[1::2])
    fid = None if after is None or after >= size else f"f{after}"
    query = ItemQuery(bbox=(west, south, east, north), limit=limit, offset=offset, after=fid)
    every = table.select(query, Access.anonymous)
    if fid is None:
        expected = every[offset : None if limit is None else offset + limit]
    else:
        start = int(np.searchsorted(every, int(fid[1:]), side="right"))
        expected = every[start : None if limit is None else start + limit]
    page = table.page(query, Access.anonymous, "b")
    assert page.number_matched == len(every)
    assert page.ids == [f"f{i}" for i in expected]
