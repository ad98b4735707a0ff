"""Items query parameters: ``bbox``, ``datetime`` and property filters, parsed and checked.

Every mistake is a ``BadQueryError`` naming the parameter, which the API answers with 400:
a client learns what to fix instead of getting an empty page.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from fastapi import Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from geo_service.api.crs import OutputCrs, box_to_crs84, resolve
from geo_service.errors import BadQueryError
from geo_service.store import cql
from geo_service.store.base import BBox, ItemQuery

#: Parameters every items request may carry besides the queryable properties (``lang`` is
#: the language of the HTML page).
ITEMS_PARAMETERS = frozenset(
    {
        "limit",
        "offset",
        "after",
        "bbox",
        "bbox-crs",
        "crs",
        "datetime",
        "f",
        "properties",
        "q",
        "lang",
        "filter",
        "filter-lang",
        "filter-crs",
        "sortby",
    }
)
MAX_LIMIT = 10_000
#: No layer holds this many features: a larger offset is a mistake, answered as one.
MAX_OFFSET = 1_000_000_000

FILTER_HELP = (
    "A CQL2 filter on the queryable properties, the date and the geometry (OGC API – Features "
    "Part 3): score > 50 AND country = 'SLE', name LIKE 'Ko%', S_INTERSECTS(geometry, "
    "POLYGON((…))), T_INTERSECTS(date, INTERVAL('2020-01-01', '2020-12-31')). See docs/api.md."
)
FILTER_LANG_HELP = "The filter's language: cql2-text (default) or cql2-json."
CRS_HELP = (
    "The CRS of the answer's coordinates (OGC API – Features Part 2): one of the collection's "
    "crs list; EPSG:4326 puts latitude first. Default CRS84."
)
LANG_HELP = (
    "Language of the HTML page: en, fr or pt; a regional tag (fr-CA) takes its language, any "
    "other value English. Without it, the browser's Accept-Language. JSON and downloads are "
    "the same in every language."
)
FilterParam = Annotated[str | None, Query(description=FILTER_HELP)]
FilterLangParam = Annotated[str | None, Query(alias="filter-lang", description=FILTER_LANG_HELP)]


class ItemsParams(BaseModel):
    """The items operation's query parameters, checked in one pass by pydantic (FastAPI would
    check each in Python on every request) and declared in the API document from here
    (``document``). Queryable properties (``?type=one-sided``) are read by ``items_query``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    limit: int = Field(100, ge=1, le=MAX_LIMIT, description="Features per page.")
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="Features to skip.")
    after: str | None = Field(
        None,
        description="Start after the feature with this id (the next links set it: a deep "
        "page costs what the first does; offset then only numbers the page).",
    )
    bbox: str | None = Field(
        None, description="west,south,east,north in degrees (CRS84); west > east crosses 180°."
    )
    datetime: str | None = Field(
        None,
        description="An instant or an interval (start/end, ../end, start/..): the features "
        "dated then, and those with no date (on a collection whose features carry no date, "
        "every feature).",
    )
    f: str | None = Field(
        None,
        description="Format: json (GeoJSON, default), html, csv, gpkg, parquet, kml, xlsx "
        "(a spreadsheet).",
    )
    properties: str | None = Field(
        None, description="GeoJSON: only these properties (comma-separated), e.g. name,score."
    )
    q: str | None = Field(
        None,
        description="Search the names (and other names) of the features, whatever the case "
        "and accents: q=tshikapa finds Tshikapa, q=sao joao São João; best first.",
    )
    filter: str | None = Field(None, description=FILTER_HELP)
    filter_lang: str | None = Field(None, alias="filter-lang", description=FILTER_LANG_HELP)
    crs: str | None = Field(None, description=CRS_HELP)
    bbox_crs: str | None = Field(
        None, alias="bbox-crs", description="The CRS of bbox (default CRS84)."
    )
    filter_crs: str | None = Field(
        None, alias="filter-crs", description="The CRS of the filter's geometries (CRS84)."
    )
    sortby: str | None = Field(
        None,
        description="Order by these properties (the queryables, and the date), "
        "comma-separated, '-' before one for descending: sortby=-score,name. Missing values "
        "come last, ties in layer order; a sorted result pages by offset.",
    )
    lang: str | None = Field(None, description=LANG_HELP)

    @classmethod
    def of(cls, params: Mapping[str, str]) -> ItemsParams:
        """The parameters of a request, or ``RequestValidationError`` naming each wrong one
        (answered with 400, as FastAPI's own checks are)."""
        try:
            return cls.model_validate(dict(params))
        except ValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_url=False)]
            ) from None

    @classmethod
    def document(cls) -> list[dict[str, Any]]:
        """The parameters as OpenAPI declares query parameters (``openapi_extra``)."""
        schema = cls.model_json_schema(by_alias=True)
        return [
            {
                "name": name,
                "in": "query",
                "required": False,
                "schema": {k: v for k, v in field.items() if k not in ("title", "description")},
                "description": field["description"],
            }
            for name, field in schema["properties"].items()
        ]


def parse_bbox(text: str) -> BBox:
    """``west,south,east,north`` (or the 6-number form with heights) in CRS84 degrees.

    West greater than east is a box across the antimeridian, as OGC API – Features says.
    """
    parts = text.split(",")
    try:
        numbers = [float(p) for p in parts]
    except ValueError as exc:
        raise BadQueryError(f"expected 4 numbers, got {text!r}", parameter="bbox") from exc
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if len(numbers) != 4 or not all(math.isfinite(n) for n in numbers):
        raise BadQueryError(
            f"expected 4 finite numbers west,south,east,north, got {text!r}", parameter="bbox"
        )
    west, south, east, north = numbers
    if not (-180 <= west <= 180 and -180 <= east <= 180):
        raise BadQueryError("longitudes must be within -180..180", parameter="bbox")
    if not (-90 <= south <= 90 and -90 <= north <= 90):
        raise BadQueryError("latitudes must be within -90..90", parameter="bbox")
    if south > north:
        raise BadQueryError(f"south ({south:g}) is north of north ({north:g})", parameter="bbox")
    return west, south, east, north


#: RFC 3339 full-date, or date-time with an optional fraction and offset (Z or ±hh:mm).
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?)?")


def _instant(text: str) -> tuple[pd.Timestamp, bool]:
    """A timestamp (UTC, naive) and whether it was a bare date."""
    if not RFC3339.fullmatch(text.strip()):
        raise BadQueryError(
            f"{text!r} is not an RFC 3339 date (2021-06-30) or date-time (2021-06-30T12:00:00Z)",
            parameter="datetime",
        )
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError) as exc:
        raise BadQueryError(
            f"{text!r} is not an RFC 3339 date or date-time", parameter="datetime"
        ) from exc
    if ts is pd.NaT:
        raise BadQueryError(f"{text!r} is not a date", parameter="datetime")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts, len(text.strip()) == 10


def parse_datetime(text: str) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """An instant, or a closed or half-open interval (``..`` or empty for an open end).

    A bare date stands for the whole day.
    """
    text = text.strip()
    if "/" not in text:
        ts, day = _instant(text)
        end = ts + pd.Timedelta(days=1) - pd.Timedelta(milliseconds=1) if day else ts
        return ts, end
    first, _, second = text.partition("/")
    if "/" in second:
        raise BadQueryError(f"{text!r} has more than one '/'", parameter="datetime")
    start = None if first in ("", "..") else _instant(first)[0]
    end = None
    if second not in ("", ".."):
        end, day = _instant(second)
        if day:
            end = end + pd.Timedelta(days=1) - pd.Timedelta(milliseconds=1)
    if start is None and end is None:
        raise BadQueryError("an interval needs at least one end", parameter="datetime")
    if start is not None and end is not None and start > end:
        raise BadQueryError(f"the interval {text!r} ends before it starts", parameter="datetime")
    return start, end


def parse_filter(params: Mapping[str, str], crs: OutputCrs | None = None) -> cql.Filter | None:
    """The ``filter`` parameter in its ``filter-lang`` (OGC API – Features Part 3), if any;
    its geometries in ``crs`` (``filter-crs``) are read as CRS84 ones."""
    lang = cql.language(params.get("filter-lang"))
    if "filter" not in params:
        return None
    found = cql.parse(params["filter"], lang)
    return found if crs is None or crs.is_crs84 else cql.reproject(found, crs.unproject)


def parse_sortby(text: str) -> tuple[tuple[str, bool], ...]:
    """``sortby=-score,name``: properties in order, ``-`` descending, ``+`` (or nothing)
    ascending; which properties may be sorted by is the store's to check."""
    keys = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        descending = part.startswith("-")
        name = part.lstrip("+-").strip()
        if not name:
            raise BadQueryError(f"{part!r} names no property", parameter="sortby")
        keys.append((name, descending))
    return tuple(keys)


def check_parameters(given: Iterable[str], queryables: Iterable[str]) -> None:
    """Refuse a parameter the collection does not know, listing those it does."""
    allowed = ITEMS_PARAMETERS | set(queryables)
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise BadQueryError(
            f"unknown parameter(s) {', '.join(unknown)}; this collection takes "
            f"{', '.join(sorted(ITEMS_PARAMETERS))} and the queryable properties "
            f"{', '.join(sorted(queryables)) or '(none)'}"
        )


def refuse_unknown(given: Iterable[str], allowed: Iterable[str]) -> None:
    """Refuse a parameter a resource does not take (OGC /req/core/query-param-unknown): a
    misspelt filter answered as if it were absent would mislead."""
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise BadQueryError(
            f"unknown parameter(s) {', '.join(unknown)}; this resource takes "
            f"{', '.join(sorted(allowed)) or 'none'}"
        )


def _box_in(text: str, crs: OutputCrs) -> BBox:
    """A ``bbox`` given in ``crs`` (``bbox-crs``), as CRS84 bounds."""
    if crs.is_crs84:
        return parse_bbox(text)
    try:
        numbers = [float(p) for p in text.split(",")]
    except ValueError as exc:
        raise BadQueryError(f"expected 4 numbers, got {text!r}", parameter="bbox") from exc
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if len(numbers) != 4 or not all(math.isfinite(n) for n in numbers):
        raise BadQueryError(f"expected 4 finite numbers, got {text!r}", parameter="bbox")
    if numbers[0] > numbers[2] or numbers[1] > numbers[3]:
        raise BadQueryError(
            f"in {crs.uri} a box is its lower corner then its upper one", parameter="bbox"
        )
    box = box_to_crs84(numbers, crs)
    if not all(math.isfinite(v) for v in box):
        raise BadQueryError(f"the box is outside {crs.uri}'s area of use", parameter="bbox")
    west, south, east, north = box
    return (max(west, -180.0), max(south, -90.0), min(east, 180.0), min(north, 90.0))


def items_query(
    params: Mapping[str, str],
    queryables: Iterable[str],
    limit: int,
    offset: int,
    maps_file: Path,
) -> ItemQuery:
    """The checked query of an items request (``maps_file``: the maps, whose regions' UTM
    zones are among the CRSs served)."""
    names = set(queryables)
    check_parameters(params.keys(), names)
    bbox_crs = resolve(params.get("bbox-crs"), maps_file, "bbox-crs")
    resolve(params.get("crs"), maps_file, "crs")  # checked here, applied to the answer
    bbox, datetime = params.get("bbox"), params.get("datetime")
    q = params.get("q") or None
    after = params.get("after") or None
    sortby = parse_sortby(params.get("sortby", ""))
    if after is not None and (q is not None or sortby):
        raise BadQueryError(
            "'after' pages in layer order, and a search (q) or a sort (sortby) orders "
            "otherwise: page with offset",
            parameter="after",
        )
    return ItemQuery(
        filter=parse_filter(params, resolve(params.get("filter-crs"), maps_file, "filter-crs")),
        bbox=_box_in(bbox, bbox_crs) if bbox is not None else None,
        interval=parse_datetime(datetime) if datetime is not None else None,
        filters={k: v for k, v in params.items() if k in names},
        q=q,
        sortby=sortby,
        limit=limit,
        offset=offset,
        after=after,
        properties=tuple(p for p in params["properties"].split(",") if p)
        if "properties" in params
        else None,
    )
