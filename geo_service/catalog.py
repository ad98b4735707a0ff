"""The source catalog (``layers/sources.toml``) as typed models.

A new publisher in a format we already read is one entry here and nothing else: its kind, its
file, the adapter, how its fields map onto the canonical schema, and its licence. The models
are parsed once, with errors that name the entry and the key, so nothing downstream has to
second-guess a dict.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import tomllib
from pathlib import Path
from typing import Any

import pyogrio
import pyogrio.errors
import shapely
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from geo_service.errors import CatalogError
from geo_service.schemas import COMMON_FIELDS, RASTER_KINDS, SCHEMAS, SENSITIVITIES, Kind

_KEY = re.compile(r"^[a-z][a-z0-9_]*$")
_SPECIAL_MAPPING_KEYS = {"lon", "lat", "wkt", "keep", "source_id", "sensitivity"}


class FieldRule(BaseModel):
    """How one canonical field is made from a publisher's columns.

    Exactly one of ``field`` (a column), ``fields`` (the first non-empty of several columns),
    ``template`` (columns formatted into text, ``"{side_a} vs {side_b}"``) or ``value`` (a
    constant) says where the value comes from; ``map`` then translates publisher codes (or
    ``match``: regular expressions tried in order, the first that matches gives the value),
    ``null_if`` lists values meaning "unknown", ``format`` parses publisher date formats
    (strptime syntax) and ``scale`` converts units.
    """

    model_config = ConfigDict(extra="forbid")

    field: str | None = None
    fields: list[str] | None = None
    template: str | None = None
    value: str | int | float | bool | None = None
    map: dict[str, str | int | float | None] | None = None
    match: dict[str, str | int | float | None] | None = None
    null_if: list[str] = Field(default_factory=list)
    format: str | None = None
    scale: float | None = None

    @model_validator(mode="after")
    def _one_source(self) -> FieldRule:
        given = [
            k for k in ("field", "fields", "template", "value") if getattr(self, k) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of 'field', 'fields', 'template' or 'value'"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.fields is not None and not self.fields:
            raise ValueError("'fields' must name at least one column")
        if self.map is not None and self.match is not None:
            raise ValueError("give 'map' or 'match', not both")
        for pattern in self.match or {}:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"match pattern {pattern!r} is not a regular expression: {exc}"
                ) from exc
        return self

    @property
    def columns(self) -> list[str]:
        """Publisher columns this rule reads."""
        if self.field is not None:
            return [self.field]
        if self.fields is not None:
            return list(self.fields)
        if self.template is not None:
            return re.findall(r"{([^{}:!]+)", self.template)
        return []

    def label(self) -> str:
        """The publisher field(s) to name in a message about this value."""
        cols = self.columns
        return "+".join(cols) if cols else "(constant)"


class Mapping(BaseModel):
    """Publisher fields → canonical fields, for one source.

    Canonical fields not named here are taken from a column of the same name when the file has
    one. ``lon``/``lat`` (or ``wkt``) name the geometry columns of a CSV; when absent they are
    detected from common names. ``keep`` lists publisher columns carried into the layer as
    they are, beside the canonical ones.
    """

    rules: dict[str, FieldRule] = Field(default_factory=dict)
    lon: str | None = None
    lat: str | None = None
    wkt: str | None = None
    keep: list[str] = Field(default_factory=list)

    @classmethod
    def parse(cls, raw: dict[str, Any], kind: Kind, where: str) -> Mapping:
        """Build a mapping from its TOML table, rejecting keys that are not canonical fields."""
        if kind in RASTER_KINDS:
            if raw:
                raise CatalogError(
                    f"{where}: a {kind} source is a raster of values, it has no fields to map; "
                    "remove the mapping table"
                )
            return cls()
        schema = SCHEMAS[kind]
        allowed = set(schema.field_names) | _SPECIAL_MAPPING_KEYS
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise CatalogError(
                f"{where}: unknown mapping key(s) {', '.join(unknown)}; the {kind} schema has "
                f"{', '.join(schema.field_names)} (plus lon, lat, wkt, keep, source_id, sensitivity)"
            )
        clash = sorted(set(raw.get("keep", [])) & (set(schema.field_names) | set(COMMON_FIELDS)))
        if clash:
            raise CatalogError(
                f"{where}.keep: {', '.join(clash)} would replace canonical field(s); "
                "map them instead, or leave them out of keep"
            )
        rules: dict[str, FieldRule] = {}
        for name, spec in raw.items():
            if name in {"lon", "lat", "wkt", "keep"}:
                continue
            try:
                rules[name] = FieldRule(field=spec) if isinstance(spec, str) else FieldRule(**spec)
            except (ValidationError, TypeError) as exc:
                raise CatalogError(f"{where}.{name}: {_first_error(exc)}") from exc
        try:
            return cls(
                rules=rules,
                lon=raw.get("lon"),
                lat=raw.get("lat"),
                wkt=raw.get("wkt"),
                keep=raw.get("keep", []),
            )
        except ValidationError as exc:
            raise CatalogError(f"{where}: {_first_error(exc)}") from exc


class Coverage(BaseModel):
    """The area a source covers: outside it, absence of evidence is "no data", not zero.

    A source rarely covers whole countries: a survey walked three prefectures, a register ends at
    a state line. So besides ``countries`` (ISO3 codes; a community counts by its ``country``) a
    source may give ``polygon``, a vector file in any format GDAL reads (GeoJSON, GeoPackage,
    Shapefile, KML …; ``polygon_layer`` names the layer of a file with several) whose polygons
    outline the area, drawn in a GIS and saved beside the data, and ``bbox``, an inline
    [west, south, east, north] in degrees for an extract cut by coordinates. The source covers
    the union of all three.
    """

    model_config = ConfigDict(extra="forbid")

    countries: list[str] = Field(default_factory=list)
    #: Path of the outline file (relative to the catalog in ``sources.toml``).
    polygon: Path | None = None
    polygon_layer: str | None = None
    #: West, south, east, north in degrees (EPSG:4326); west > east crosses the antimeridian.
    bbox: tuple[float, float, float, float] | None = None
    note: str = ""

    @field_validator("bbox")
    @classmethod
    def _bbox_shape(
        cls, v: tuple[float, float, float, float] | None
    ) -> tuple[float, float, float, float] | None:
        if v is None:
            return v
        west, south, east, north = v
        if not all(-180.0 <= x <= 180.0 for x in (west, east)) or west == east:
            raise ValueError("bbox west and east must be distinct longitudes in -180..180")
        if not -90.0 <= south < north <= 90.0:
            raise ValueError("bbox is [west, south, east, north]: need -90 <= south < north <= 90")
        return v

    @model_validator(mode="after")
    def _layer_needs_polygon(self) -> Coverage:
        if self.polygon_layer is not None and self.polygon is None:
            raise ValueError("polygon_layer names a layer of 'polygon', which is not given")
        return self

    def area(self) -> shapely.Geometry | None:
        """The declared ``polygon`` and ``bbox`` as one (multi)polygon in EPSG:4326, or None.

        Read from the file every time (it is small and read once per build), reprojected from
        the file's own CRS; invalid rings are repaired. A file that cannot be read, has no CRS,
        or holds anything but polygons is a ``CatalogError``: a wrong outline would silently
        turn "no data" into zero or the reverse.
        """
        parts: list[shapely.Geometry] = []
        if self.polygon is not None:
            parts.extend(_read_outline(self.polygon, self.polygon_layer))
        if self.bbox is not None:
            west, south, east, north = self.bbox
            if west < east:
                parts.append(shapely.box(west, south, east, north))
            else:
                parts += [
                    shapely.box(west, south, 180.0, north),
                    shapely.box(-180.0, south, east, north),
                ]
        return shapely.union_all(parts) if parts else None

    def record(self) -> dict[str, Any]:
        """What a build's catalog.json says of the coverage (the outline file by name only)."""
        return {
            "countries": list(self.countries),
            "polygon": self.polygon.name if self.polygon is not None else None,
            "polygon_layer": self.polygon_layer,
            "bbox": list(self.bbox) if self.bbox is not None else None,
            "note": self.note,
        }


def _read_outline(path: Path, layer: str | None) -> list[shapely.Geometry]:
    """The polygons of a coverage outline file, in EPSG:4326."""
    try:
        frame = pyogrio.read_dataframe(path, layer=layer, columns=[])
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, OSError) as exc:
        raise CatalogError(f"coverage polygon cannot be read: {exc}", path=path) from exc
    if frame.crs is None:
        raise CatalogError(
            "coverage polygon has no CRS; save it with one (e.g. EPSG:4326)", path=path
        )
    if not frame.crs.equals("EPSG:4326"):
        frame = frame.to_crs("EPSG:4326")
    shapes = frame.geometry[~frame.geometry.is_empty & frame.geometry.notna()]
    kinds = set(shapes.geom_type)
    if not kinds or not kinds <= {"Polygon", "MultiPolygon"}:
        found = ", ".join(sorted(kinds - {"Polygon", "MultiPolygon"})) or "no geometry"
        raise CatalogError(f"coverage polygon must hold only polygons, found {found}", path=path)
    return list(shapely.make_valid(shapes.to_numpy()))


class SourceEntry(BaseModel):
    """One dataset of the catalog."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    key: str
    kind: Kind
    title: str
    path: Path
    adapter: str | None = None
    layer: str | None = None
    crs: str | None = None
    encoding: str = "utf-8"
    delimiter: str = ","
    publisher: str
    licence: str
    licence_url: str | None = None
    attribution: str
    url: str | None = None
    sensitivity: str = "public"
    retrieved: dt.date
    coverage: Coverage = Field(default_factory=Coverage)
    where: dict[str, list[str]] = Field(default_factory=dict)
    max_reject_share: float | None = Field(None, ge=0.0, le=1.0)
    #: population: the year the counts are for (required).
    year: int | None = Field(None, ge=1800, le=2200)
    #: units: overlaps between units of one level, and gaps inside their outline, larger than
    #: this are reported (km²).
    tolerance_km2: float = Field(0.05, ge=0.0)
    notes: str = ""
    mapping: Mapping = Field(default_factory=Mapping)
    # Set by load_catalog, never by a key in the file: errors name the catalog the entry is in.
    _catalog: Path | None = PrivateAttr(default=None)

    @property
    def catalog_path(self) -> Path | None:
        """The ``sources.toml`` this entry was read from (None for an entry made in code)."""
        return self._catalog

    @field_validator("key")
    @classmethod
    def _key_shape(cls, v: str) -> str:
        if not _KEY.match(v):
            raise ValueError(
                "source keys are lower-case letters, digits and '_' (e.g. ucdp_ged_caf)"
            )
        return v

    @model_validator(mode="after")
    def _population_year(self) -> SourceEntry:
        if self.kind == Kind.population and self.year is None:
            raise ValueError(
                "a population source must state the year its counts are for (year = 2019)"
            )
        return self

    @field_validator("sensitivity")
    @classmethod
    def _sensitivity(cls, v: str) -> str:
        if v not in SENSITIVITIES:
            raise ValueError(f"sensitivity must be one of {', '.join(SENSITIVITIES)}")
        return v

    def provenance(self) -> dict[str, Any]:
        """Licence, attribution and origin, as recorded in every build's catalog.json."""
        return {
            "title": self.title,
            "kind": str(self.kind),
            "publisher": self.publisher,
            "licence": self.licence,
            "licence_url": self.licence_url,
            "attribution": self.attribution,
            "url": self.url,
            "retrieved": self.retrieved.isoformat(),
            "sensitivity": self.sensitivity,
            "coverage": self.coverage.record(),
            "path": self.path.name,
            **({"year": self.year} if self.year is not None else {}),
        }


class Reference(BaseModel):
    """Reference layers used while validating (country outlines for the lon/lat checks)."""

    model_config = ConfigDict(extra="forbid")

    countries: list[Path] = Field(default_factory=list)
    country_field: str = "ADM0_A3"
    #: River centrelines for the downstream part of the tailings factor.
    rivers: list[Path] = Field(default_factory=list)
    #: Lake outlines, drawn on the maps' offline basemap with the countries and rivers.
    lakes: list[Path] = Field(default_factory=list)
    #: A point this far outside its declared country is flagged (borders are generalised).
    outside_country_tolerance_km: float = 10.0


class SourceCatalog(BaseModel):
    """All datasets a build reads, in catalog order."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    path: Path
    sources: list[SourceEntry]
    reference: Reference = Field(default_factory=Reference)

    def by_kind(self, kind: Kind) -> list[SourceEntry]:
        """Entries of one kind, in catalog order."""
        return [s for s in self.sources if s.kind == kind]

    def digest(self) -> str:
        """SHA-256 of the catalog file and every file it names: a build's input fingerprint."""
        h = hashlib.sha256()
        h.update(self.path.read_bytes())
        refs = [*self.reference.countries, *self.reference.rivers, *self.reference.lakes]
        refs += [s.coverage.polygon for s in self.sources if s.coverage.polygon is not None]
        for p in [s.path for s in self.sources] + refs:
            h.update(str(p.name).encode())
            h.update(file_digest(p).encode())
        return h.hexdigest()


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (``missing`` when it cannot be read)."""
    h = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return "missing"
    return h.hexdigest()


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        return f"{loc}: {msg}" if loc else msg
    return str(exc)


def load_catalog(path: Path) -> SourceCatalog:
    """Parse ``sources.toml``; paths in it are relative to the catalog file's folder."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CatalogError("source catalog not found", path=path) from exc
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"not valid TOML: {exc}", path=path) from exc
    base = path.parent
    entries: list[SourceEntry] = []
    for key, body in (raw.get("sources") or {}).items():
        if not isinstance(body, dict):
            raise CatalogError(f"[sources.{key}] must be a table", path=path)
        body = dict(body)
        where = f"[sources.{key}]"
        try:
            kind = Kind(body.get("kind"))
        except ValueError as exc:
            raise CatalogError(
                f"{where} kind must be one of {', '.join(k.value for k in Kind)}, "
                f"got {body.get('kind')!r}",
                path=path,
            ) from exc
        mapping = Mapping.parse(body.pop("mapping", {}) or {}, kind, f"{where}.mapping")
        if "path" in body:
            body["path"] = base / body["path"]
        coverage = body.get("coverage")
        if isinstance(coverage, dict) and isinstance(coverage.get("polygon"), str):
            body["coverage"] = {**coverage, "polygon": base / coverage["polygon"]}
        try:
            entry = SourceEntry(key=key, mapping=mapping, **body)
        except ValidationError as exc:
            raise CatalogError(f"{where} {_first_error(exc)}", path=path) from exc
        try:
            entry.coverage.area()  # an unreadable outline is a catalog mistake, found now
        except CatalogError as exc:
            raise CatalogError(f"{where} {exc}", path=path) from exc
        entry._catalog = path
        entries.append(entry)
    if not entries:
        raise CatalogError("no [sources.*] entries", path=path)
    ref_raw = dict(raw.get("reference") or {})
    for key in ("countries", "rivers", "lakes"):
        ref_raw[key] = [base / p for p in ref_raw.get(key, [])]
    try:
        reference = Reference(**ref_raw)
    except ValidationError as exc:
        raise CatalogError(f"[reference] {_first_error(exc)}", path=path) from exc
    return SourceCatalog(path=path, sources=entries, reference=reference)
