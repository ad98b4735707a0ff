"""CQL2 filters (OGC API – Features Part 3): parsed by ``cql2``, checked, then compiled.

``parse`` reads cql2-text or cql2-json into the standard's JSON form; ``compile_filter`` walks
that tree once, checks every property against a layer's queryables and every operand's type,
and asks a ``Backend`` for each piece: the memory store builds masks (``cql_mask.py``), the
PostGIS store SQL (``postgis.py``). So both answer the same filter the same way, with SQL's
three-valued logic (a comparison with a missing value is unknown, and unknown never matches).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Generic, Protocol, TypeVar

import cql2
import numpy as np
import orjson
import pandas as pd
import shapely
from shapely.geometry import shape

from geo_service.errors import BadQueryError

#: ``filter-lang`` values; ``cql-text`` is the draft's name of cql2-text, which GDAL's OAPIF
#: driver sends (and looks for in the API definition before it sends a filter at all).
LANGUAGES = ("cql2-text", "cql2-json", "cql-text")
#: The name a filter gives a feature's geometry.
GEOMETRY = "geometry"
COMPARISONS = ("=", "<>", "<", "<=", ">", ">=")
SPATIAL = (
    "s_intersects",
    "s_within",
    "s_contains",
    "s_disjoint",
    "s_equals",
    "s_touches",
    "s_overlaps",
    "s_crosses",
)
TEMPORAL = ("t_intersects", "t_disjoint", "t_before", "t_after", "t_equals")
LOGICAL = ("and", "or", "not")
OTHERS = ("like", "in", "between", "isNull", "casei")
#: Every operator and function a filter may use.
SUPPORTED = (*LOGICAL, *COMPARISONS, *OTHERS, *SPATIAL, *TEMPORAL)

V = TypeVar("V")  # a value: a column, an expression
T = TypeVar("T")  # a condition


@dataclass(frozen=True)
class Filter:
    """A parsed filter: the standard's JSON form, and a key naming it (caches, counts)."""

    expr: Any
    key: str


def language(lang: str | None) -> str:
    """A ``filter-lang`` value checked (cql2-text when none is given)."""
    lang = "cql2-text" if lang is None else lang.lower()
    if lang not in LANGUAGES:
        raise BadQueryError(
            f"unknown filter language {lang!r}; use {' or '.join(LANGUAGES)}",
            parameter="filter-lang",
        )
    return lang


@lru_cache(maxsize=256)
def parse(text: str, lang: str | None = None) -> Filter:
    """A ``filter`` parameter in ``filter-lang`` (cql2-text by default), or a 400 saying
    what is wrong and where (the last filters parsed are kept: clients repeat them)."""
    lang = language(lang)
    try:
        expr = cql2.parse_json(text) if lang == "cql2-json" else cql2.parse_text(text)
        tree = expr.to_json()
    except (cql2.ParseError, cql2.ValidationError, ValueError) as exc:
        detail = " ".join(str(exc).split())
        raise BadQueryError(f"not valid {lang}: {detail}", parameter="filter") from exc
    return Filter(tree, orjson.dumps(tree, option=orjson.OPT_SORT_KEYS).decode())


def reproject(flt: Filter, to_crs84: Callable[[Any], Any]) -> Filter:
    """The filter with each geometry constant (GeoJSON or BBOX) turned into CRS84 by
    ``to_crs84`` (shapely geometries in, out): what ``filter-crs`` asks."""

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(v) for v in node]
        if not isinstance(node, dict):
            return node
        if "bbox" in node and len(node) == 1:
            box = [float(v) for v in node["bbox"]]
            if len(box) == 6:
                box = [box[0], box[1], box[3], box[4]]
            return {"bbox": list(to_crs84(np.array([shapely.box(*box)]))[0].bounds)}
        if "type" in node and "coordinates" in node:
            try:
                geometry = shape(node)
            except (ValueError, TypeError, AttributeError) as exc:
                raise _fail(f"not a geometry: {orjson.dumps(node).decode()}") from exc
            return shapely.geometry.mapping(to_crs84(np.array([geometry]))[0])
        return {k: walk(v) for k, v in node.items()}

    tree = walk(flt.expr)
    return Filter(tree, orjson.dumps(tree, option=orjson.OPT_SORT_KEYS).decode())


class Backend(Protocol, Generic[V, T]):
    """What a store turns each piece of a checked filter into."""

    def property(self, name: str, kind: str) -> V:
        """A queryable property (``kind``: string, number, boolean, timestamp)."""
        ...

    def literal(self, value: Any, kind: str) -> V:
        """A constant (a timestamp is a naive UTC ``pd.Timestamp``)."""
        ...

    def casei(self, value: V) -> V:
        """The value in lower case."""
        ...

    def compare(self, op: str, a: V, b: V) -> T:
        """``a op b`` for one of ``COMPARISONS``."""
        ...

    def like(self, a: V, pattern: str) -> T:
        """``a LIKE pattern`` (``%``, ``_``, ``\\`` escapes)."""
        ...

    def isin(self, a: V, values: Sequence[Any], kind: str) -> T:
        """``a IN (values)``."""
        ...

    def is_null(self, a: V) -> T:
        """``a IS NULL``."""
        ...

    def spatial(self, op: str, geometry: shapely.Geometry) -> T:
        """The feature's geometry against a constant one, for one of ``SPATIAL``."""
        ...

    def all_of(self, parts: list[T]) -> T:
        """AND."""
        ...

    def any_of(self, parts: list[T]) -> T:
        """OR."""
        ...

    def negate(self, part: T) -> T:
        """NOT."""
        ...


def _fail(message: str) -> BadQueryError:
    return BadQueryError(message, parameter="filter")


def _timestamp(text: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError) as exc:
        raise _fail(f"{text!r} is not a date or timestamp") from exc
    if ts is pd.NaT:
        raise _fail(f"{text!r} is not a date or timestamp")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def _span(node: Any) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """A temporal constant as an inclusive [start, end]: a date is its whole day, a timestamp
    an instant, an interval its ends (``..``: open)."""
    if isinstance(node, dict) and "timestamp" in node:
        ts = _timestamp(node["timestamp"])
        return ts, ts
    if isinstance(node, dict) and "date" in node:
        day = _timestamp(node["date"]).normalize()
        return day, day + pd.Timedelta(days=1) - pd.Timedelta(milliseconds=1)
    if isinstance(node, dict) and "interval" in node:
        ends = node["interval"]
        if not isinstance(ends, list) or len(ends) != 2:
            raise _fail("an interval has two ends")
        start = end = None
        if ends[0] != "..":
            start = _span(ends[0] if isinstance(ends[0], dict) else {"timestamp": ends[0]})[0]
            if isinstance(ends[0], str) and len(ends[0]) == 10:
                start = _span({"date": ends[0]})[0]
        if ends[1] != "..":
            last = ends[1] if isinstance(ends[1], dict) else {"timestamp": ends[1]}
            if isinstance(ends[1], str) and len(ends[1]) == 10:
                last = {"date": ends[1]}
            end = _span(last)[1]
        if start is None and end is None:
            raise _fail("an interval needs at least one end")
        return start, end
    if isinstance(node, str):
        return _span({"date": node} if len(node) == 10 else {"timestamp": node})
    raise _fail(f"expected a DATE, TIMESTAMP or INTERVAL, got {orjson.dumps(node).decode()}")


def _geometry(node: Any) -> shapely.Geometry:
    """A spatial constant: GeoJSON geometry (cql2-json, or WKT in cql2-text) or a BBOX."""
    try:
        if isinstance(node, dict) and "bbox" in node:
            box = [float(v) for v in node["bbox"]]
            if len(box) == 6:
                box = [box[0], box[1], box[3], box[4]]
            geometry = shapely.box(*box)
        elif isinstance(node, dict) and "type" in node:
            geometry = shape(node)
        else:
            raise ValueError("not a geometry")
    except (ValueError, TypeError, KeyError, AttributeError, shapely.errors.GEOSException) as exc:
        raise _fail(
            f"expected a geometry (WKT, GeoJSON or BBOX), got {orjson.dumps(node).decode()}"
        ) from exc
    coords = shapely.get_coordinates(geometry)
    if geometry.is_empty or not (
        (abs(coords[:, 0]) <= 180).all() and (abs(coords[:, 1]) <= 90).all()
    ):
        raise _fail("a geometry's coordinates are longitude, latitude in degrees (CRS84)")
    return geometry


def property_kinds(queryables: Mapping[str, str], date_field: str | None) -> dict[str, str]:
    """Each property a filter (or a sort) may name → its ``Backend`` kind."""
    kinds = {k: "number" if v == "integer" else v for k, v in queryables.items()}
    if date_field:
        kinds[date_field] = "timestamp"
    return kinds


def sort_keys(
    sortby: Sequence[tuple[str, bool]], queryables: Mapping[str, str], date_field: str | None
) -> list[tuple[str, str, bool]]:
    """``sortby`` checked: (property, kind, descending) for each, or a 400 naming the
    properties one may sort by."""
    kinds = property_kinds(queryables, date_field)
    unknown = [name for name, _ in sortby if name not in kinds]
    if unknown:
        raise BadQueryError(
            f"cannot sort by {', '.join(unknown)}; sortable properties are "
            f"{', '.join(sorted(kinds))}",
            parameter="sortby",
        )
    return [(name, kinds[name], descending) for name, descending in sortby]


class _Compiler(Generic[V, T]):
    def __init__(
        self, queryables: Mapping[str, str], date_field: str | None, backend: Backend[V, T]
    ) -> None:
        self.kinds = property_kinds(queryables, date_field)
        self.backend = backend

    def _property_kind(self, name: str) -> str:
        if name == GEOMETRY:
            raise _fail(f"'{GEOMETRY}' is used only in spatial functions (S_INTERSECTS…)")
        kind = self.kinds.get(name)
        if kind is None:
            raise _fail(
                f"unknown property '{name}'; the queryables are {', '.join(sorted(self.kinds))}"
            )
        return kind

    def value(self, node: Any, want: str | None = None) -> tuple[V, str]:
        """An operand and its type (``want``: the type of the other side, which a text
        constant takes when it is a date)."""
        b = self.backend
        if isinstance(node, dict) and "property" in node:
            name = node["property"]
            kind = self._property_kind(name)
            return b.property(name, kind), kind
        if isinstance(node, dict) and node.get("op") == "casei":
            inner, kind = self.value(_args(node, 1)[0], "string")
            if kind != "string":
                raise _fail("CASEI takes text")
            return b.casei(inner), "string"
        if isinstance(node, dict) and ("timestamp" in node or "date" in node):
            return b.literal(_span(node)[0], "timestamp"), "timestamp"
        if isinstance(node, bool):
            return b.literal(node, "boolean"), "boolean"
        if isinstance(node, int | float):
            return b.literal(float(node), "number"), "number"
        if isinstance(node, str):
            if want == "timestamp":
                return b.literal(_timestamp(node), "timestamp"), "timestamp"
            return b.literal(node, "string"), "string"
        if isinstance(node, dict) and "op" in node:
            raise _unsupported(node["op"])
        raise _fail(f"unexpected operand {orjson.dumps(node).decode()}")

    def pair(self, a: Any, b: Any) -> tuple[V, V, str]:
        """Two operands of one type (a text constant beside a date property is a date)."""
        first, kind_a = self.value(a)
        second, kind_b = self.value(b, kind_a)
        if kind_a == "string" and kind_b == "timestamp" and not _is_property(a):
            first, kind_a = self.value(a, "timestamp")
        if kind_a != kind_b:
            raise _fail(f"cannot compare {_describe(a, kind_a)} with {_describe(b, kind_b)}")
        return first, second, kind_a

    def condition(self, node: Any) -> T:
        b = self.backend
        if not isinstance(node, dict) or "op" not in node:
            if isinstance(node, bool):  # a filter that is just true or false
                return b.compare("=", b.literal(node, "boolean"), b.literal(True, "boolean"))
            raise _fail(f"expected a condition, got {orjson.dumps(node).decode()}")
        op = node["op"]
        if op in ("and", "or"):
            parts = [self.condition(a) for a in _args(node)]
            return b.all_of(parts) if op == "and" else b.any_of(parts)
        if op == "not":
            return b.negate(self.condition(_args(node, 1)[0]))
        if op in COMPARISONS:
            x, y, kind = self.pair(*_args(node, 2))
            if kind == "boolean" and op not in ("=", "<>"):
                raise _fail(f"true and false are compared with = or <>, not {op}")
            return b.compare(op, x, y)
        if op == "like":
            subject, pattern = _args(node, 2)
            value, kind = self.value(subject)
            if kind != "string" or not isinstance(pattern, str):
                raise _fail(f"LIKE compares text with a text pattern: {_describe(subject, kind)}")
            return b.like(value, pattern)
        if op == "in":
            subject, options = _args(node, 2)
            value, kind = self.value(subject)
            if not isinstance(options, list) or not options:
                raise _fail("IN takes a list of constants")
            constants = []
            for option in options:
                _, other = self.value(option, kind)
                if other != kind or (isinstance(option, dict) and "property" in option):
                    raise _fail(f"IN: {_describe(option, other)} is not a {kind} constant")
                constants.append(_constant(option, kind))
            return b.isin(value, constants, kind)
        if op == "between":
            subject, low, high = _args(node, 3)
            x, lo, kind = self.pair(subject, low)
            _, hi, _ = self.pair(subject, high)
            if kind not in ("number", "timestamp", "string"):
                raise _fail("BETWEEN takes numbers, text or dates")
            return b.all_of([b.compare(">=", x, lo), b.compare("<=", x, hi)])
        if op == "isNull":
            subject = _args(node, 1)[0]
            if isinstance(subject, dict) and subject.get("property") == GEOMETRY:
                return b.compare("=", b.literal(False, "boolean"), b.literal(True, "boolean"))
            return b.is_null(self.value(subject)[0])
        if op in SPATIAL:
            first, second = _args(node, 2)
            if _is_property(second) and not _is_property(first):
                first, second = second, first
                op = {"s_within": "s_contains", "s_contains": "s_within"}.get(op, op)
            if not (isinstance(first, dict) and first.get("property") == GEOMETRY):
                raise _fail(f"{op.upper()} compares the property '{GEOMETRY}' with a geometry")
            return b.spatial(op, _geometry(second))
        if op in TEMPORAL:
            first, second = _args(node, 2)
            if not _is_property(first):
                raise _fail(f"{op.upper()} compares a date property with a date or interval")
            kind = self._property_kind(first["property"])
            if kind != "timestamp":
                raise _fail(f"{op.upper()}: '{first['property']}' is not a date")
            when = b.property(first["property"], kind)
            start, end = _span(second)
            return self._temporal(op, when, start, end)
        raise _unsupported(op)

    def _temporal(
        self, op: str, when: V, start: pd.Timestamp | None, end: pd.Timestamp | None
    ) -> T:
        """An instant's relation to [start, end] as comparisons."""
        b = self.backend

        def cmp(o: str, ts: pd.Timestamp) -> T:
            return b.compare(o, when, b.literal(ts, "timestamp"))

        inside = [cmp(">=", start)] if start is not None else []
        inside += [cmp("<=", end)] if end is not None else []
        if op == "t_intersects":
            return b.all_of(inside)
        if op == "t_disjoint":
            return b.negate(b.all_of(inside))
        if op == "t_before":
            if start is None:
                raise _fail("T_BEFORE needs an interval with a start")
            return cmp("<", start)
        if op == "t_after":
            if end is None:
                raise _fail("T_AFTER needs an interval with an end")
            return cmp(">", end)
        if start is None or end is None or start != end:  # t_equals
            raise _fail("T_EQUALS compares a date property with a TIMESTAMP")
        return cmp("=", start)


def _args(node: dict[str, Any], count: int | None = None) -> list[Any]:
    args = node.get("args")
    if not isinstance(args, list) or (count is not None and len(args) != count):
        raise _fail(f"{str(node.get('op')).upper()} takes {count} arguments")
    return args


def _is_property(node: Any) -> bool:
    return isinstance(node, dict) and "property" in node


def _constant(node: Any, kind: str) -> Any:
    if kind == "timestamp":
        return _span(node)[0] if isinstance(node, dict) else _timestamp(node)
    if kind == "number":
        return float(node)
    return node


def _describe(node: Any, kind: str) -> str:
    if _is_property(node):
        return f"'{node['property']}' ({kind})"
    return f"{orjson.dumps(node).decode()} ({kind})"


def _unsupported(op: Any) -> BadQueryError:
    return _fail(
        f"{str(op).upper()} is not supported; filters use AND, OR, NOT, =, <>, <, <=, >, >=, "
        "LIKE, IN, BETWEEN, IS NULL, CASEI, " + ", ".join(s.upper() for s in (*SPATIAL, *TEMPORAL))
    )


def compile_filter(
    flt: Filter,
    queryables: Mapping[str, str],
    date_field: str | None,
    backend: Backend[V, T],
) -> T:
    """The filter as ``backend`` builds it, after checking each property and type."""
    return _Compiler(queryables, date_field, backend).condition(flt.expr)
