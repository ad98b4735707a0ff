"""Map definitions (``layers/maps.toml``): what each map shows, titled in every language.

A map names the service's layers it draws, its first view (a box fitted to the screen, or a
centre and zoom), an optional note under its legend, and which fields its popups show. The
file is checked when it is read, so a misspelt layer or field is an error naming the map
rather than a map that silently draws less.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from geo_service.errors import CatalogError

LANGUAGES = ("en", "fr", "pt")

#: The layers a map can draw, in drawing order (the surface at the bottom).
LAYERS = ("risk_surface", "community_risk", "tailings_consequence", "concessions", "incidents")

#: What a popup of each layer can show, in the default order. ``community_risk`` lists the
#: factors of the risk model whose breakdown (contribution, details, evidence) is shown.
POPUP_FIELDS: dict[str, tuple[str, ...]] = {
    "community_risk": ("concession_pressure", "tailings_exposure", "incident_intensity"),
    "incidents": ("type", "fatalities", "perpetrator", "location_precision"),
    "concessions": (
        "holder",
        "status",
        "footprint",
        "incidents_nearby",
        "communities_nearby",
        "dams_inside",
    ),
    "tailings_consequence": (
        "indicative_consequence_class",
        "reported_consequence",
        "status",
        "construction_method",
        "height_m",
        "volume_m3",
        "runout",
        "communities_in_runout",
        "people_in_runout",
        "communities_downstream",
        "river_name",
    ),
}


class Texts(BaseModel):
    """One text in every language the pages speak."""

    model_config = ConfigDict(extra="forbid")

    en: str
    fr: str
    pt: str

    def get(self, lang: str) -> str:
        """The text in ``lang`` (English if unknown)."""
        return getattr(self, lang if lang in LANGUAGES else "en")


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

    @model_validator(mode="after")
    def _check(self) -> MapDefinition:
        unknown = [x for x in self.layers if x not in LAYERS]
        if unknown:
            raise ValueError(
                f"unknown layer(s) {', '.join(unknown)}; maps draw {', '.join(LAYERS)}"
            )
        if self.bounds is None and (self.centre is None or self.zoom is None):
            raise ValueError("a map needs bounds, or a centre and a zoom")
        if self.bounds is not None:
            west, south, east, north = self.bounds
            if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
                raise ValueError("bounds are west, south, east, north in degrees, west < east")
        for layer, fields in self.popup.items():
            if layer not in self.layers:
                raise ValueError(f"popup fields for '{layer}', which this map does not draw")
            known = POPUP_FIELDS.get(layer, ())
            wrong = [f for f in fields if f not in known]
            if wrong:
                raise ValueError(
                    f"popup of '{layer}': unknown field(s) {', '.join(wrong)}; "
                    f"it knows {', '.join(known)}"
                )
        return self

    def popup_fields(self, layer: str) -> list[str]:
        """The fields a popup of ``layer`` shows on this map, in order."""
        return list(self.popup.get(layer, POPUP_FIELDS.get(layer, ())))

    def first_view(self) -> tuple[float, float, int]:
        """Latitude, longitude and zoom of the first view (a box: its centre, a zoom that
        holds it on a 1280 × 800 screen), for the page's start and the default picture."""
        if self.bounds is None:
            assert self.centre is not None and self.zoom is not None
            return self.centre[0], self.centre[1], self.zoom
        west, south, east, north = self.bounds

        def y(lat: float) -> float:
            return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))

        span_x = (east - west) / 360
        span_y = (y(north) - y(south)) / (2 * math.pi)
        zoom = math.floor(min(math.log2(1280 / 256 / span_x), math.log2(800 / 256 / span_y)))
        lat = math.degrees(2 * math.atan(math.exp((y(north) + y(south)) / 2)) - math.pi / 2)
        return lat, (west + east) / 2, max(0, min(18, zoom))


def load_maps(path: Path) -> dict[str, MapDefinition]:
    """Every map of the file, or ``CatalogError`` naming the map and field at fault."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(str(exc), path=path) from exc
    maps = {}
    for key, value in raw.items():
        try:
            maps[key] = MapDefinition(id=key, **value)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(map)"
            raise CatalogError(f"map '{key}', field '{where}': {first['msg']}", path=path) from exc
    return maps
