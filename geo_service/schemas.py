"""Canonical schemas of the source kinds.

Every table source, whatever its publisher or format, is mapped onto one of these schemas before
it can become a layer; a ``population`` source is a raster and has no schema (``population.py``). A field's spec says what a value must look like; ``validate.py`` enforces
it and names the file, row and field of every value that does not fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import numpy as np
import pandas as pd

FieldType = Literal["str", "int", "float", "date", "country", "enum", "url"]


class Kind(StrEnum):
    """The kinds of source: four of evidence the risk model combines, official units it sums
    over, people per cell of a grid, and reference places drawn but never scored."""

    concessions = "concessions"
    communities = "communities"
    tailings_dams = "tailings_dams"
    incidents = "incidents"
    units = "units"
    population = "population"
    places = "places"


#: Kinds read as rasters, not tables: they have no schema and no mapping.
RASTER_KINDS = frozenset({Kind.population})
#: Kinds written as one layer per source, never merged: their licences may differ (an ODbL
#: database must not be mixed into a CC BY one).
PER_SOURCE_KINDS = frozenset({Kind.places})


SENSITIVITIES = ("public", "restricted")

#: Location precision of an incident or a mine site, coarsest last. Publisher codes (UCDP
#: ``where_prec``, ACLED ``geo_precision``, USGS location confidence) are mapped onto these
#: words in the source catalog.
LOCATION_PRECISIONS = ("exact", "near", "admin2", "admin1", "region", "country", "international")

#: Incident types that are tailings or water-dam failures: evidence for the tailings factor
#: (a failed dam, and where it reached), not for incident intensity.
FAILURE_TYPES = ("tailings failure", "dam failure")


def is_failure(types: pd.Series) -> np.ndarray:
    """Which incident types are failures (any case, spaces around), word by distinct word."""
    distinct = pd.Series(pd.unique(types.dropna()), dtype=object)
    words = distinct[distinct.astype(str).str.strip().str.lower().isin(FAILURE_TYPES)]
    return types.isin(list(words)).to_numpy(dtype=bool)


CONSTRUCTION_METHODS = ("upstream", "downstream", "centreline", "single_stage", "unknown")

#: How a concession's footprint is known: a mapped boundary, or only a site point standing for
#: a footprint of ``footprint_radius_m``.
FOOTPRINTS = ("polygon", "site")


@dataclass(frozen=True)
class FieldSpec:
    """One canonical field: its type, whether a row without it is rejected, and its range."""

    name: str
    type: FieldType = "str"
    required: bool = False
    min: float | None = None
    max: float | None = None
    #: ``min`` itself is not allowed (height > 0, not >= 0).
    min_exclusive: bool = False
    choices: tuple[str, ...] = ()
    #: Dates after the day of the build are refused (an incident cannot be in the future).
    not_future: bool = False
    description: str = ""

    def expectation(self) -> str:
        """Describe an acceptable value in words, for error messages."""
        if self.type == "enum":
            return "one of " + ", ".join(self.choices)
        if self.type == "date":
            return "a date (YYYY-MM-DD, an ISO 8601 timestamp, or the format set in the mapping)"
        if self.type == "country":
            return "a country (ISO 3166-1 alpha-3 code, alpha-2 code or English name)"
        if self.type == "url":
            return "an http(s) URL"
        words = {"int": "a whole number", "float": "a number", "str": "text"}[self.type]
        if self.min is not None and self.max is not None:
            return f"{words} from {self.min:g} to {self.max:g}"
        if self.min is not None:
            return f"{words} {'>' if self.min_exclusive else '>='} {self.min:g}"
        return words


@dataclass(frozen=True)
class KindSchema:
    """Geometry types and fields of one kind."""

    kind: Kind
    id_field: str
    geometry_types: tuple[str, ...]
    fields: tuple[FieldSpec, ...]
    title: str
    date_field: str | None = None
    #: For a kind whose sources give areas and points: the id and title of the layer its
    #: points are published in, so that every layer holds one family of geometry.
    points_layer: tuple[str, str] | None = None

    @property
    def field_names(self) -> list[str]:
        """Canonical field names in schema order, id first."""
        return [f.name for f in self.fields]

    def spec(self, name: str) -> FieldSpec:
        """Return the spec of a canonical field."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)


_COUNTRY = FieldSpec("country", "country", required=True, description="ISO 3166-1 alpha-3")

SCHEMAS: dict[Kind, KindSchema] = {
    Kind.concessions: KindSchema(
        kind=Kind.concessions,
        title="Mining concessions and mapped mining areas",
        points_layer=("mine_sites", "Mine sites"),
        id_field="concession_id",
        geometry_types=("Polygon", "MultiPolygon", "Point"),
        fields=(
            FieldSpec("concession_id", required=True),
            FieldSpec("name", required=True),
            FieldSpec("holder"),
            FieldSpec("commodity"),
            FieldSpec("licence_type"),
            FieldSpec("status"),
            FieldSpec("granted", "date"),
            FieldSpec("expires", "date"),
            _COUNTRY,
            FieldSpec("footprint", "enum", choices=FOOTPRINTS),
            FieldSpec(
                "footprint_radius_m",
                "float",
                min=0,
                min_exclusive=True,
                description="radius of the footprint a site point stands for",
            ),
            FieldSpec(
                "location_precision",
                "enum",
                choices=LOCATION_PRECISIONS,
                description="how precisely the site is located: exact (mapped or imaged), "
                "near (estimated), admin2, or admin1/country for a point standing for a "
                "province's or a country's diggings",
            ),
            FieldSpec(
                "period_year",
                "int",
                min=1900,
                max=2100,
                description="year of the period in which the publisher mapped this footprint "
                "(a source that maps footprints period by period gives each period's new "
                "area as its own rows); footprint growth is summed by it",
            ),
            FieldSpec(
                "area_ha",
                "float",
                min=0,
                description="area of the footprint as the publisher gives it, in hectares",
            ),
        ),
    ),
    Kind.communities: KindSchema(
        kind=Kind.communities,
        title="Communities",
        id_field="community_id",
        geometry_types=("Point",),
        fields=(
            FieldSpec("community_id", required=True),
            FieldSpec("name", required=True),
            FieldSpec("population", "int", min=0),
            _COUNTRY,
            FieldSpec("admin1"),
        ),
    ),
    Kind.tailings_dams: KindSchema(
        kind=Kind.tailings_dams,
        title="Tailings dams",
        id_field="dam_id",
        geometry_types=("Point",),
        fields=(
            FieldSpec("dam_id", required=True),
            FieldSpec("name", required=True),
            FieldSpec("mine"),
            FieldSpec("operator"),
            FieldSpec("commodity"),
            FieldSpec("status"),
            FieldSpec("height_m", "float", min=0, min_exclusive=True),
            FieldSpec("volume_m3", "float", min=0),
            FieldSpec("construction_method", "enum", choices=CONSTRUCTION_METHODS),
            FieldSpec("reported_consequence"),
            _COUNTRY,
        ),
    ),
    Kind.incidents: KindSchema(
        kind=Kind.incidents,
        title="Incidents",
        id_field="incident_id",
        geometry_types=("Point",),
        date_field="date",
        fields=(
            FieldSpec("incident_id", required=True),
            FieldSpec("date", "date", required=True, not_future=True),
            FieldSpec("type"),
            FieldSpec("perpetrator"),
            FieldSpec("fatalities", "int", min=0),
            FieldSpec("description"),
            FieldSpec("source_url", "url"),
            FieldSpec("location_precision", "enum", choices=LOCATION_PRECISIONS),
            _COUNTRY,
        ),
    ),
    Kind.units: KindSchema(
        kind=Kind.units,
        title="Official administrative units",
        id_field="code",
        geometry_types=("Polygon", "MultiPolygon"),
        fields=(
            FieldSpec(
                "code", required=True, description="the unit's official code (P-code, IBGE code)"
            ),
            FieldSpec("name", required=True),
            FieldSpec(
                "level",
                "int",
                required=True,
                min=0,
                description="administrative level: 1 province or state, 2 district, 3 chiefdom",
            ),
            FieldSpec("parent_code", description="the official code of the unit above"),
            _COUNTRY,
        ),
    ),
    Kind.places: KindSchema(
        kind=Kind.places,
        title="Places",
        id_field="place_id",
        geometry_types=("Point",),
        fields=(
            FieldSpec("place_id", required=True),
            FieldSpec("name"),
            FieldSpec("place_type", description="the publisher's word: city, town, village …"),
            FieldSpec("population", "int", min=0),
            _COUNTRY,
        ),
    ),
}

#: Columns every canonical layer carries beside its kind's fields, for provenance and QA.
COMMON_FIELDS = ("source", "source_id", "sensitivity", "qa_flags")
