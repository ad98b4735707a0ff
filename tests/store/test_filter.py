"""CQL2 filters on every backend: each answer is the one an independent evaluator gives.

The oracle is ``cql2``'s own evaluator (``Expr.matches``), run on each feature of a full
table; filters are drawn by hypothesis from the layers' real properties and values. A row
whose value the filter needs is missing is unknown to SQL and to the oracle (which refuses to
decide it): those rows are compared only on what the logic decides.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from typing import Any

import cql2
import orjson
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo_service.errors import BadQueryError
from geo_service.store.base import Access, ItemQuery, Store
from geo_service.store.cql import parse

NUMBERS = ("score", "population", "concession_pressure_nearest_km", "people")
TEXTS = ("country", "risk_class", "confidence", "name")
RUNS = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@cache
def _table(store: Store, layer: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Every feature of a layer (anonymous) as the oracle reads it: ids and GeoJSON items."""
    page = store.query(layer, ItemQuery(limit=None), Access.anonymous)
    return page.ids, [orjson.loads(f) for f in page.features]


def _oracle(store: Store, layer: str, text: str) -> tuple[set[str], set[str]]:
    """Ids the oracle says match, and ids it cannot decide (a needed value is missing)."""
    expr = cql2.parse_text(text)
    yes, unknown = set(), set()
    for fid, item in zip(*_table(store, layer), strict=True):
        try:
            if expr.matches(item):
                yes.add(fid)
        except Exception:  # noqa: BLE001 - the oracle's "cannot reduce to a boolean"
            unknown.add(fid)
    return yes, unknown


def _ours(store: Store, layer: str, text: str) -> set[str]:
    page = store.query(layer, ItemQuery(filter=parse(text), limit=None), Access.anonymous)
    assert page.number_matched == len(page.ids)
    return set(page.ids)


@cache
def _values(store: Store, layer: str, column: str) -> list[Any]:
    frame = store.frame(layer, ItemQuery(limit=None), Access.anonymous)
    values = frame[column].dropna().drop_duplicates().sort_values()
    return values.iloc[:: max(len(values) // 40, 1)].tolist()


def _quote(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(float(value))


def conditions(store: Store) -> st.SearchStrategy[str]:
    """Conditions on community_risk's real properties and values."""
    layer = "community_risk"
    numbers = st.sampled_from(NUMBERS).flatmap(
        lambda c: st.tuples(
            st.just(c),
            st.sampled_from(("=", "<>", "<", "<=", ">", ">=")),
            st.sampled_from(_values(store, layer, c)),
        ).map(lambda t: f"{t[0]} {t[1]} {_quote(t[2])}")
    )
    between = st.sampled_from(NUMBERS).flatmap(
        lambda c: st.lists(st.sampled_from(_values(store, layer, c)), min_size=2, max_size=2).map(
            lambda v: f"{c} BETWEEN {_quote(min(v))} AND {_quote(max(v))}"
        )
    )
    texts = st.sampled_from(TEXTS).flatmap(
        lambda c: st.one_of(
            st.sampled_from(_values(store, layer, c)).map(lambda v: f"{c} = {_quote(v)}"),
            st.lists(st.sampled_from(_values(store, layer, c)), min_size=1, max_size=3).map(
                lambda vs: f"{c} IN ({', '.join(_quote(v) for v in vs)})"
            ),
            st.sampled_from(_values(store, layer, c)).map(
                lambda v: f"{c} LIKE {_quote(str(v)[:2] + '%')}"
            ),
        )
    )
    nulls = st.sampled_from((*NUMBERS, *TEXTS)).map(lambda c: f"{c} IS NULL")
    boxes = st.tuples(
        st.floats(-20, 40), st.floats(-20, 20), st.floats(0.5, 15), st.floats(0.5, 15)
    ).map(
        lambda b: (
            f"S_INTERSECTS(geometry, BBOX({b[0]:.3f}, {b[1]:.3f}, "
            f"{b[0] + b[2]:.3f}, {b[1] + b[3]:.3f}))"
        )
    )
    leaves = st.one_of(numbers, between, texts, nulls, boxes)
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.tuples(inner, inner).map(lambda p: f"({p[0]} AND {p[1]})"),
            st.tuples(inner, inner).map(lambda p: f"({p[0]} OR {p[1]})"),
            inner.map(lambda p: f"NOT ({p})"),
        ),
        max_leaves=4,
    )


def test_filters_answer_what_an_independent_evaluator_answers(store: Store) -> None:
    @RUNS
    @given(text=conditions(store))
    def check(text: str) -> None:
        yes, unknown = _oracle(store, "community_risk", text)
        ours = _ours(store, "community_risk", text)
        assert ours - unknown == yes - unknown, text
        assert yes <= ours, text

    check()


@pytest.mark.parametrize(
    "text",
    [
        "T_INTERSECTS(date, INTERVAL('2019-01-01', '2019-12-31'))",
        "date >= DATE('2020-01-01') AND fatalities > 5",
        "T_BEFORE(date, TIMESTAMP('2015-06-01T00:00:00Z')) OR country IN ('AGO', 'SLE')",
        "S_WITHIN(geometry, POLYGON((20 4, 24 4, 24 8, 20 8, 20 4))) AND NOT fatalities = 0",
        "country LIKE 'C_F' AND fatalities BETWEEN 1 AND 10",
        "T_AFTER(date, INTERVAL('2000-01-01', '2021-12-31'))",
    ],
)
def test_dated_and_spatial_filters_on_incidents(store: Store, text: str) -> None:
    yes, unknown = _oracle(store, "incidents", text)
    ours = _ours(store, "incidents", text)
    assert ours - unknown == yes - unknown
    assert yes, "a filter chosen to match some incidents matches none"


def test_cql2_json_is_the_same_filter_as_cql2_text(store: Store) -> None:
    text = "score > 50 AND country = 'SLE'"
    as_json = orjson.dumps(cql2.parse_text(text).to_json()).decode()
    by_json = store.query(
        "community_risk",
        ItemQuery(filter=parse(as_json, "cql2-json"), limit=None),
        Access.anonymous,
    )
    assert set(by_json.ids) == _ours(store, "community_risk", text)
    assert by_json.number_matched > 20


def test_unknown_values_never_match(store: Store) -> None:
    """SQL's logic: a row with no population is neither above nor (NOT above) a threshold."""
    frame = store.frame("community_risk", ItemQuery(limit=None), Access.anonymous)
    missing = int(frame["population"].isna().sum())
    above = _ours(store, "community_risk", "population > 1000")
    not_above = _ours(store, "community_risk", "NOT (population > 1000)")
    assert missing > 0 and not above & not_above
    assert len(above) + len(not_above) + missing == len(frame)
    assert len(_ours(store, "community_risk", "population IS NULL")) == missing


def test_filters_combine_with_the_other_parameters_and_with_restricted_rows(
    store: Store,
) -> None:
    box = (21.0, 5.5, 23.0, 7.5)
    flt = parse("T_INTERSECTS(date, INTERVAL('2015-01-01', '..'))")
    both = store.frame("incidents", ItemQuery(bbox=box, filter=flt, limit=None), Access.analyst)
    alone = store.frame("incidents", ItemQuery(filter=flt, limit=None), Access.analyst)
    inside = alone[alone.geometry.intersects(shapely.box(*box))]
    assert 0 < len(both) == len(inside) < len(alone)
    assert (pd.to_datetime(both["date"]) >= pd.Timestamp("2015-01-01")).all()
    seen = store.frame("incidents", ItemQuery(filter=flt, limit=None), Access.anonymous)
    assert "restricted" not in set(seen["sensitivity"])
    assert set(seen.geom_type) == {"Point"}  # restricted rows are in incident_areas
    assert len(seen) < len(alone)


@pytest.mark.parametrize(
    ("layer", "text", "words"),
    [
        ("community_risk", "scor > 5", "unknown property 'scor'"),
        ("community_risk", "score > 'high'", "cannot compare 'score' (number)"),
        ("community_risk", "score >", "not valid cql2-text"),
        ("community_risk", "name LIKE 3", "LIKE compares text"),
        ("community_risk", "score + 1 > 5", "+ is not supported"),
        ("community_risk", "S_INTERSECTS(name, POINT(1 2))", "compares the property 'geometry'"),
        ("community_risk", "T_INTERSECTS(score, DATE('2020-01-01'))", "'score' is not a date"),
        ("incidents", "S_INTERSECTS(geometry, POINT(500 2))", "longitude, latitude"),
        ("community_risk", "T_INTERSECTS(date, DATE('2020-01-01'))", "unknown property 'date'"),
    ],
)
def test_bad_filters_name_what_is_wrong(store: Store, layer: str, text: str, words: str) -> None:
    with pytest.raises(BadQueryError) as caught:
        store.query(layer, ItemQuery(filter=parse(text)), Access.anonymous)
    assert caught.value.parameter == "filter"
    assert words in str(caught.value), str(caught.value)


@pytest.mark.parametrize(
    "sortby",
    [
        (("score", True), ("name", False)),
        (("population", False),),
        (("country", False), ("people", True)),
    ],
)
def test_sorting_orders_as_pandas_does(store: Store, sortby: tuple) -> None:
    """Each key in turn, missing values last either way, ties in layer order."""
    frame = store.frame("community_risk", ItemQuery(limit=None), Access.anonymous)
    frame = frame.reset_index(drop=True).assign(_position=range(len(frame)))
    want = frame.sort_values(
        [name for name, _ in sortby] + ["_position"],
        ascending=[not descending for _, descending in sortby] + [True],
        na_position="last",
        kind="stable",
    )["community_id"].tolist()
    query = ItemQuery(sortby=sortby, limit=None, properties=("community_id",))
    assert store.query("community_risk", query, Access.anonymous).ids == want
    page = store.query("community_risk", replace(query, limit=50, offset=100), Access.anonymous)
    assert page.ids == want[100:150]
    with pytest.raises(BadQueryError, match="cannot sort by nope"):
        store.query("community_risk", ItemQuery(sortby=(("nope", False),)), Access.anonymous)
