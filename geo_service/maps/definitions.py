"""Map definitions (``layers/maps.toml``): what each map shows, titled in every language.

A map names the service's layers it draws, its first view (a box fitted to the screen, or a
centre and zoom), an optional note under its legend, and which fields its popups show. The
file is checked when it is read, so a misspelt layer or field is an error naming the map
rather than a map that silently draws less.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from geo_service.errors import CatalogError
from geo_service.maps.i18n import typography

LANGUAGES = ("en", "fr", "pt")
T = TypeVar("T")


class Texts(BaseModel):
    """One text in every language the pages speak."""

    model_config = ConfigDict(extra="forbid")

    en: str
    fr: str
    pt: str

    def get(self, lang: str) -> str:
        """The text in ``lang`` (English if unknown), in that language's typography."""
        lang = lang if lang in LANGUAGES else "en"
        return typography(getattr(self, lang), lang)


class MapDefinition(BaseModel):
    """One map page."""

    model_config = ConfigDict(extra="forbid")

    id: str
    title: Texts
    description: Texts
    bounds: tuple[float, float, float, float] | None = Field(
        None,
        description="West, south, east, north (degrees) of the first view, fitted to the "
        "screen: a phone and a wide screen both see the whole region.",
    )
    centre: tuple[float, float] | None = Field(
        None, description="Latitude, longitude of the first view (with zoom, without bounds)."
    )
    zoom: int | None = Field(None, ge=0, le=18)
    layers: list[str] = Field(min_length=1)
    legend: Texts | None = Field(None, description="A note under the legend, for this map.")
    popup: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Per layer, the fields its popups show (default: every field it knows).",
    )
    hidden: list[str] = Field(
        default_factory=list,
        description="Layers in the layer list that are not drawn until the reader ticks them.",
    )
    growth: str | None = Field(
        None,
        description="A footprint-growth area of the risk parameters (concession_risk."
        "growth_areas) whose mapped footprint added per year the concessions legend charts.",
    )
    where: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Per layer, what it draws on this map: property = value filters of the "
        'items API (units of one level: where.risk_units = { level = "3" }).',
    )

    @model_validator(mode="after")
    def _check(self) -> MapDefinition:
        if self.bounds is None and (self.centre is None or self.zoom is None):
            raise ValueError("a map needs bounds, or a centre and a zoom")
        if self.bounds is not None:
            west, south, east, north = self.bounds
            if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
                raise ValueError("bounds are west, south, east, north in degrees, west < east")
        for layer in self.popup:
            if layer not in self.layers:
                raise ValueError(f"popup fields for '{layer}', which this map does not draw")
        for layer in self.hidden:
            if layer not in self.layers:
                raise ValueError(f"'{layer}' is hidden, but this map does not draw it")
        for layer in self.where:
            if layer not in self.layers:
                raise ValueError(f"a where filter for '{layer}', which this map does not draw")
        if self.growth is not None and "concessions" not in self.layers:
            raise ValueError("growth charts the mapped mining areas' footprints: draw concessions")
        return self

    def with_layers(self, known: dict[str, Any]) -> MapDefinition:
        """This map checked against the layer definitions ``known`` (id → definition):
        every layer it names is defined, its popup fields are the layer's, and the layers
        whose definition names this map are added; all in the definitions' drawing order."""
        unknown = [x for x in self.layers if x not in known]
        if unknown:
            raise ValueError(f"unknown layer(s) {', '.join(unknown)}; maps draw {', '.join(known)}")
        for layer, fields in self.popup.items():
            wrong = [f for f in fields if f not in known[layer].fields]
            if wrong:
                raise ValueError(
                    f"popup of '{layer}': unknown field(s) {', '.join(wrong)}; "
                    f"it knows {', '.join(known[layer].fields)}"
                )
        wanted = set(self.layers) | {k for k, d in known.items() if self.id in d.maps}
        return self.model_copy(update={"layers": [k for k in known if k in wanted]})

    def popup_fields(self, layer: str, default: list[str]) -> list[str]:
        """The fields a popup of ``layer`` shows on this map, in order (``default``: the
        layer's own)."""
        return list(self.popup.get(layer, default))

    def first_view(self) -> tuple[float, float, int]:
        """Latitude, longitude and zoom of the first view (a box: ``box_view``), for the
        page's start and the default picture."""
        if self.bounds is None:
            assert self.centre is not None and self.zoom is not None
            return self.centre[0], self.centre[1], self.zoom
        return box_view(self.bounds)


def box_view(bounds: tuple[float, float, float, float]) -> tuple[float, float, int]:
    """Latitude, longitude and zoom of a box (west, south, east, north): its centre, and a
    zoom that holds it on a 1280 × 800 screen."""
    west, south, east, north = bounds

    def y(lat: float) -> float:  # Web Mercator's y, the poles clamped to its square world
        lat = max(min(lat, 85.05112877980659), -85.05112877980659)
        return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))

    # A box that is a point or a line (or too small to measure) is shown at the closest zoom.
    span_x = max((east - west) / 360, 1e-9)
    span_y = max((y(north) - y(south)) / (2 * math.pi), 1e-9)
    zoom = math.floor(min(math.log2(1280 / 256 / span_x), math.log2(800 / 256 / span_y)))
    lat = math.degrees(2 * math.atan(math.exp((y(north) + y(south)) / 2)) - math.pi / 2)
    return lat, (west + east) / 2, max(0, min(18, zoom))


def layers_file(maps_file: Path) -> Path:
    """The layer definitions that go with a maps file: ``layers.toml`` beside it."""
    return Path(maps_file).with_name("layers.toml")


def load_maps(path: Path, layers: dict[str, Any] | None = None) -> dict[str, MapDefinition]:
    """Every map of the file, checked against the layer definitions ``layers`` (by default
    those of ``layers.toml`` beside it), or ``CatalogError`` naming the map and field."""
    if layers is None:
        from geo_service.maps.layers import load_layers

        layers = load_layers(layers_file(path))
    return read_entries(
        path, "map", lambda key, value: MapDefinition(id=key, **value).with_layers(layers)
    )


def read_entries(path: Path, kind: str, make: Callable[[str, Any], T]) -> dict[str, T]:
    """Every table of a TOML file made into a definition by ``make(key, value)``, or
    ``CatalogError`` naming the file, the entry (a ``kind``) and the field at fault."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(str(exc), path=path) from exc
    out = {}
    for key, value in raw.items():
        try:
            out[key] = make(key, value)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or f"({kind})"
            raise CatalogError(
                f"{kind} '{key}', field '{where}': {first['msg']}", path=path
            ) from exc
        except ValueError as exc:
            raise CatalogError(f"{kind} '{key}': {exc}", path=path) from exc
    return out
