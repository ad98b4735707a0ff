"""The in-memory layer table: what each access level sees, filters, pages, encoding."""

from __future__ import annotations

import geopandas as gpd
import orjson
import pandas as pd
import pytest
import shapely

from geo_service.errors import NotFoundError
from geo_service.store.base import Access, ItemQuery
from geo_service.store.catalog import CatalogLayer
from geo_service.store.memory import LayerTable


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
