"""A CQL2 filter as a mask over a layer in memory (the embedded store's ``cql.Backend``).

Values are pandas columns of nullable types (a number compared with a number is a nullable
boolean array, which combines with them), whose logic is Kleene's, as SQL's is: a
comparison with a missing value is unknown, ``NOT unknown`` is unknown, and only true rows
match. Spatial functions look up candidates in the layer's STR-tree, then test them exactly.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import shapely
from typing_extensions import override

from geo_service.store.cql import Backend

Value = pd.Series | Any
#: True, false or unknown per row.
Mask = pd.Series | pd.arrays.BooleanArray
OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "<>": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
#: Each spatial function as a test of a feature's geometry against the constant one.
PREDICATES: dict[str, Callable[[Any, Any], np.ndarray]] = {
    "s_intersects": shapely.intersects,
    "s_within": shapely.within,
    "s_contains": shapely.contains,
    "s_equals": shapely.equals,
    "s_touches": shapely.touches,
    "s_overlaps": shapely.overlaps,
    "s_crosses": shapely.crosses,
}


def like_pattern(pattern: str) -> re.Pattern[str]:
    """A LIKE pattern as a regular expression: ``%`` any text, ``_`` one character, ``\\``
    takes the next character as itself."""
    out, chars = [], iter(pattern)
    for c in chars:
        if c == "\\":
            out.append(re.escape(next(chars, "\\")))
        elif c == "%":
            out.append(".*")
        elif c == "_":
            out.append(".")
        else:
            out.append(re.escape(c))
    return re.compile("".join(out), re.DOTALL)


class MaskBackend(Backend[Any, Mask]):
    """Builds boolean columns (true, false or unknown) over one layer's rows."""

    def __init__(
        self,
        size: int,
        column: Callable[[str, str], pd.Series],
        shapes: np.ndarray,
        tree: shapely.STRtree,
        numbers: Callable[[str], tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        """``numbers``: a number property as float64 values and where they are missing (kept
        by the layer), for comparisons of it with a number made in numpy."""
        self.size = size
        self.column = column
        self.shapes = shapes
        self.tree = tree
        self.numbers = numbers
        self._numeric: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _known(self, result: Any, *operands: Value) -> pd.Series:
        """``result`` as a nullable boolean column, unknown wherever an operand is missing."""
        if not isinstance(result, pd.Series):
            result = pd.Series(np.full(self.size, bool(result)))
        out = result.astype("boolean")
        for v in operands:
            if isinstance(v, pd.Series):
                out[v.isna().to_numpy()] = pd.NA
        return out

    @override
    def property(self, name: str, kind: str) -> pd.Series:
        values = self.column(name, kind)
        if kind == "number" and self.numbers is not None:
            self._numeric[id(values)] = self.numbers(name)
        return values

    @override
    def literal(self, value: Any, kind: str) -> Any:
        return value

    @override
    def casei(self, value: Value) -> Value:
        return value.str.lower() if isinstance(value, pd.Series) else str(value).lower()

    @override
    def compare(self, op: str, a: Value, b: Value) -> Mask:
        fast = self._compare_numbers(op, a, b)
        return fast if fast is not None else self._known(OPERATORS[op](a, b), a, b)

    def _compare_numbers(self, op: str, a: Value, b: Value) -> pd.arrays.BooleanArray | None:
        """A number property against a number, in numpy: unknown where it is missing (the
        same answer as the nullable columns give, without their cost); None otherwise."""

        def number(v: Value) -> bool:
            return isinstance(v, int | float) and not isinstance(v, bool)

        if isinstance(a, pd.Series) and id(a) in self._numeric and number(b):
            (values, missing), left, right = self._numeric[id(a)], None, b
        elif isinstance(b, pd.Series) and id(b) in self._numeric and number(a):
            (values, missing), left, right = self._numeric[id(b)], a, None
        else:
            return None
        with np.errstate(invalid="ignore"):
            result = OPERATORS[op](
                values if left is None else left, values if right is None else right
            )
        # An array, not a Series: the Kleene operators take either, and a Series would cost
        # more to make than the comparison.
        return pd.arrays.BooleanArray(np.asarray(result, dtype=bool), missing.copy())

    @override
    def like(self, a: Value, pattern: str) -> pd.Series:
        regex = like_pattern(pattern)
        if not isinstance(a, pd.Series):
            return self._known(bool(regex.fullmatch(str(a))))
        return self._known(a.str.fullmatch(regex), a)

    @override
    def isin(self, a: Value, values: Sequence[Any], kind: str) -> pd.Series:
        if not isinstance(a, pd.Series):
            return self._known(a in values)
        return self._known(a.isin(list(values)), a)

    @override
    def is_null(self, a: Value) -> pd.Series:
        if not isinstance(a, pd.Series):
            return self._known(a is None)
        return a.isna().astype("boolean")

    @override
    def spatial(self, op: str, geometry: shapely.Geometry) -> pd.Series:
        candidates = self.tree.query(geometry)
        test = PREDICATES.get(op, shapely.intersects)
        hit = np.zeros(self.size, dtype=bool)
        hit[candidates] = test(self.shapes[candidates], geometry)
        if op == "s_disjoint":
            hit = ~hit
        out = pd.Series(hit).astype("boolean")
        out[shapely.is_missing(self.shapes)] = pd.NA
        return out

    @override
    def all_of(self, parts: list[Mask]) -> Mask:
        return functools.reduce(operator.and_, parts)

    @override
    def any_of(self, parts: list[Mask]) -> Mask:
        return functools.reduce(operator.or_, parts)

    @override
    def negate(self, part: Mask) -> Mask:
        return ~part
