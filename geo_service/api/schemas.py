"""What each property of a collection is, as JSON Schema: type, title, description, unit and
the values it takes.

One description serves the queryables (OGC API – Features Part 3) and the collection's schema
(``describedby``, Part 5), so GDAL and QGIS learn the same types and a person reading either
learns the same words. Titles are the labels the pages show (``layers/layers.toml``); a unit is
read from the field's name (``_km``, ``_m3``, ``_ha``…); a text property with few distinct
values lists them (``enum``).
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import pandas as pd

from geo_service.render.record import Formatter
from geo_service.store.base import LayerInfo

GEOMETRY_REF = "https://geojson.org/schema/Geometry.json"
#: A text property with at most this many distinct values lists them.
ENUM_MAX = 25
#: Units by the end of a field's name (the longest ending first).
UNITS = (
    ("_mm3", "Mm³", "millions of cubic metres"),
    ("_m3", "m³", "cubic metres"),
    ("_km", "km", "kilometres"),
    ("_ha", "ha", "hectares"),
    ("_m", "m", "metres"),
)


def _unit(name: str) -> tuple[str, str] | None:
    for ending, symbol, words in UNITS:
        if name.endswith(ending):
            return symbol, words
    if name == "score" or name.startswith("score_") or name.endswith("_score"):
        return "0–100", "points from 0 (none) to 100 (highest)"
    return None


def _json_type(column: pd.Series, known: str | None) -> dict[str, Any]:
    """A column's JSON Schema type: the store's queryable type, else lists and the rest."""
    if known is not None:
        return {"type": known}
    sample = column.dropna()
    if len(sample) and not isinstance(sample.iloc[0], str | bytes):
        return {"type": "array", "items": {"type": "string"}}
    return {"type": "string"}


def properties(info: LayerInfo, frame: gpd.GeoDataFrame, words: Formatter) -> dict[str, Any]:
    """Every property of the layer (``frame``: its rows as this caller sees them), described."""
    out: dict[str, Any] = {}
    for name in info.fields:
        if name not in frame:
            continue
        column = frame[name]
        title = words.label(name)
        schema: dict[str, Any] = {"title": title}
        if name == info.date_field:
            schema |= {"type": "string", "format": "date"}
        else:
            schema |= _json_type(column, info.queryables.get(name))
        description = f"{title[:1].upper()}{title[1:]}"
        unit = _unit(name)
        if unit is not None and schema["type"] in ("number", "integer"):
            schema["unit"] = unit[0]
            description += f", in {unit[1]}"
        if schema["type"] == "string" and "format" not in schema:
            values = column.dropna().astype(str).unique()
            if 0 < len(values) <= ENUM_MAX:
                schema["enum"] = sorted(values)
                description += "; one of the values listed"
        missing = int(column.isna().sum())
        if missing:
            description += f" (missing for {missing:,} of {len(column):,} features)"
        schema["description"] = description + "."
        out[name] = schema
    return out


def queryables_document(info: LayerInfo, described: dict[str, Any], here: str) -> dict[str, Any]:
    """The queryables: the properties a filter may name, and the geometry."""
    props: dict[str, Any] = {"geometry": {"$ref": GEOMETRY_REF, "title": "Geometry"}}
    names = {*info.queryables, *([info.date_field] if info.date_field else [])}
    props |= {k: v for k, v in described.items() if k in names}
    return {
        "$schema": "https://json-schema.org/draft/2019-09/schema",
        "$id": here,
        "type": "object",
        "title": info.title,
        "properties": props,
        "additionalProperties": False,
        # The draft's list of the same names: GDAL's OAPIF driver reads it to decide which
        # parts of a -where it sends to the server as a filter.
        "queryables": [{"id": k} for k in props if k != "geometry"],
    }


def feature_schema(info: LayerInfo, described: dict[str, Any], here: str) -> dict[str, Any]:
    """A JSON Schema of the collection's GeoJSON features (what ``describedby`` points to)."""
    return {
        "$schema": "https://json-schema.org/draft/2019-09/schema",
        "$id": here,
        "title": info.title,
        "type": "object",
        "required": ["type", "geometry", "properties"],
        "properties": {
            "type": {"type": "string", "enum": ["Feature"]},
            "id": {"type": "string"},
            "geometry": {"$ref": GEOMETRY_REF},
            "properties": {"type": "object", "properties": described},
        },
    }
