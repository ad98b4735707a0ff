"""GeoJSON of features, written the same way by every backend.

Coordinates carry at most ``DECIMALS`` decimals: the shortest form of the number that reads
back exactly, rounded half to even at the ninth decimal (``-5``, ``12.11029``), which is what
PostGIS's ``ST_AsGeoJSON(geom, 9)`` writes, so the embedded store and PostGIS answer the same
bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import numpy as np
import orjson
import pandas as pd
import shapely

#: Decimals of a coordinate (1e-9° is 0.1 mm).
DECIMALS = 9

_NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _shortener(decimals: int) -> Callable[[re.Match[bytes]], bytes]:
    step = Decimal(1).scaleb(-decimals)

    def short(match: re.Match[bytes]) -> bytes:
        x = float(match.group())
        text = repr(x)
        if round(x, decimals) == x and "e" not in text:
            # Already short: its shortest form has no more decimals than kept.
            return (text[:-2] if text.endswith(".0") else text).encode()
        fixed = format(Decimal(text).quantize(step, rounding=ROUND_HALF_EVEN), "f")
        return fixed.rstrip("0").rstrip(".").encode() if "." in fixed else fixed.encode()

    return short


_SHORT = {DECIMALS: _shortener(DECIMALS)}


def geometries_json(geoms: np.ndarray, decimals: int = DECIMALS) -> list[bytes]:
    """Each geometry as GeoJSON bytes (``null`` for a missing one), coordinates with at most
    ``decimals`` decimals."""
    short = _SHORT.get(decimals) or _SHORT.setdefault(decimals, _shortener(decimals))
    return [
        _NUMBER.sub(short, g.encode()) if g is not None else b"null"
        for g in shapely.to_geojson(geoms)
    ]


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, pd.Timestamp | np.datetime64):
        return pd.Timestamp(value).isoformat()
    return str(value)


def properties_json(properties: dict[str, Any]) -> bytes:
    """A feature's properties as JSON bytes."""
    return orjson.dumps(properties, default=_json_default, option=_JSON_OPTIONS)


def feature_bytes(fid: object, geometry: bytes, properties: bytes) -> bytes:
    """One GeoJSON Feature from its id and the JSON of its geometry and of its properties."""
    return (
        b'{"type":"Feature","id":'
        + orjson.dumps(fid)
        + b',"geometry":'
        + geometry
        + b',"properties":'
        + properties
        + b"}"
    )


def _json_ready(column: pd.Series) -> pd.Series:
    """Values orjson writes as the GeoJSON a reader expects: dates as ISO text, nulls as null."""
    if pd.api.types.is_datetime64_any_dtype(column):
        ts = column.dt.tz_localize(None) if column.dt.tz is not None else column
        midnight = bool((ts.dropna() == ts.dropna().dt.normalize()).all())
        text = ts.dt.strftime("%Y-%m-%d" if midnight else "%Y-%m-%dT%H:%M:%SZ")
        return text.astype(object).where(ts.notna(), None)
    values = column.astype(object)
    if column.dtype == object:  # lists (evidence ids) arrive from Parquet as numpy arrays
        values = values.map(lambda v: v.tolist() if isinstance(v, np.ndarray) else v)
    return values.where(pd.notna(column) if column.dtype != object else column.notna(), None)


def json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Each row's properties as JSON-ready values (dates as text, nulls as None)."""
    props = frame.drop(columns=frame.geometry.name)
    return pd.DataFrame({c: _json_ready(props[c]) for c in props.columns}).to_dict("records")
