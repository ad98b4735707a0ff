"""A CQL2 filter as an SQL condition on a published view (the PostGIS store's ``cql.Backend``).

A queryable property is read from its typed column (``typed_column``: ``q_<name>``, written by
``publish``), or, in a view published without them, from the row's ``props`` JSON cast to its
type; the date is the ``date`` column, the geometry ``geom``. Constants are quoted by psycopg. Text compares by code
point (``COLLATE "C"``), as Python compares it in the embedded store.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import pandas as pd
import shapely
from psycopg import sql
from typing_extensions import override

from geo_service.store.cql import Backend, Filter, compile_filter

CASTS = {"string": "text", "number": "float8", "boolean": "boolean"}
FUNCTIONS = {
    "s_intersects": "ST_Intersects",
    "s_within": "ST_Within",
    "s_contains": "ST_Contains",
    "s_disjoint": "ST_Disjoint",
    "s_equals": "ST_Equals",
    "s_touches": "ST_Touches",
    "s_overlaps": "ST_Overlaps",
    "s_crosses": "ST_Crosses",
}


def typed_column(name: str) -> str:
    """The column of a view that holds the queryable property ``name`` in its SQL type."""
    return f"q_{name}"


def _constant(value: Any) -> Any:
    return value.to_pydatetime() if isinstance(value, pd.Timestamp) else value


class SqlBackend(Backend[sql.Composable, sql.Composable]):
    """Builds SQL conditions over a view's columns (``typed``: the properties that have a
    typed column in it)."""

    def __init__(self, typed: Collection[str] = ()) -> None:
        self.typed = frozenset(typed)

    @override
    def property(self, name: str, kind: str) -> sql.Composable:
        if kind == "timestamp":
            return sql.SQL("date")
        if name in self.typed:
            value: sql.Composable = sql.Identifier(typed_column(name))
        else:
            value = sql.SQL("(props->>{})::{}").format(sql.Literal(name), sql.SQL(CASTS[kind]))
        return sql.SQL('({} COLLATE "C")').format(value) if kind == "string" else value

    @override
    def literal(self, value: Any, kind: str) -> sql.Composable:
        return sql.Literal(_constant(value))

    @override
    def casei(self, value: sql.Composable) -> sql.Composable:
        return sql.SQL("lower({})").format(value)

    @override
    def compare(self, op: str, a: sql.Composable, b: sql.Composable) -> sql.Composable:
        return sql.SQL("({} {} {})").format(a, sql.SQL(op), b)

    @override
    def like(self, a: sql.Composable, pattern: str) -> sql.Composable:
        return sql.SQL("({} LIKE {})").format(a, sql.Literal(pattern))

    @override
    def isin(self, a: sql.Composable, values: Sequence[Any], kind: str) -> sql.Composable:
        return sql.SQL("({} = ANY({}))").format(a, sql.Literal([_constant(v) for v in values]))

    @override
    def is_null(self, a: sql.Composable) -> sql.Composable:
        return sql.SQL("({} IS NULL)").format(a)

    @override
    def spatial(self, op: str, geometry: shapely.Geometry) -> sql.Composable:
        return sql.SQL("{}(geom, ST_GeomFromWKB(decode({}, 'hex'), 4326))").format(
            sql.SQL(FUNCTIONS[op]), sql.Literal(shapely.to_wkb(geometry, hex=True))
        )

    @override
    def all_of(self, parts: list[sql.Composable]) -> sql.Composable:
        return sql.SQL("({})").format(sql.SQL(" AND ").join(parts))

    @override
    def any_of(self, parts: list[sql.Composable]) -> sql.Composable:
        return sql.SQL("({})").format(sql.SQL(" OR ").join(parts))

    @override
    def negate(self, part: sql.Composable) -> sql.Composable:
        return sql.SQL("(NOT {})").format(part)


def condition(
    flt: Filter,
    queryables: Mapping[str, str],
    date_field: str | None,
    typed: Collection[str] = (),
) -> sql.SQL:
    """The filter as one SQL condition with its constants quoted in it, ready to sit in a
    statement that has parameters (its ``%`` doubled)."""
    text = compile_filter(flt, queryables, date_field, SqlBackend(typed)).as_string(None)
    return sql.SQL(text.replace("%", "%%"))
