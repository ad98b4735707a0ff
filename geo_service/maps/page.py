"""A map page built with Folium that loads every layer from the API by URL, never inlined.

Folium writes the page: the map, the risk surface as the service's PNG tiles, a feature group
per vector layer, the layer control and the full-screen button. What the page does as the
map moves lives in one script of ours, ``static/riskmap.js`` (served under ``/assets``, cached
by browsers): it loads the communities, incidents, mine sites and dams of the view from the
items API, opens popups that fetch a feature's evidence only when asked, keeps the legend to
the layers shown, and keeps the view in the URL. The page itself carries only the words of
its language and a few facts of the build (a few KB), never data.

Colours (one meaning per colour, readable with the common colour-vision deficiencies):

- **Risk** has one scale on the whole map: the surface is cividis (dark blue for 0, yellow for
  1; Nuñez, Anderton & Renslow 2018), and a community's class is the cividis colour at the
  middle of its class, so a colour means the same score on the surface, on a community and on
  a hexagon. *No data* is not a colour of that scale: a white dot with a dashed outline.
- **Tailings dams** are triangles in a pink-to-purple sequence (ColorBrewer RdPu, marked safe
  for colour-blind readers), light for a low indicative consequence, dark for extreme: a hue
  cividis never uses, on a shape no other layer uses.
- **Incidents** are black dots (grouped in numbered circles), **mine sites** white diamonds:
  neutral, told apart by shape.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from functools import cache
from typing import Any
from urllib.parse import quote, urlencode

import folium
import numpy as np
from babel import Locale
from babel.dates import format_date
from babel.numbers import format_decimal
from branca.element import Element, Figure, MacroElement
from folium.plugins import Fullscreen
from folium.utilities import JsCode
from jinja2 import Template

from geo_service.maps.assets import SCRIPTS, asset_version, script_version
from geo_service.maps.definitions import MapDefinition
from geo_service.maps.i18n import N_, plural_translator, translator
from geo_service.maps.layers import LayerDefinition
from geo_service.maps.names import with_stable_names
from geo_service.render import png
from geo_service.render.symbols import svg_path
from geo_service.render.templates import environment
from geo_service.risk.params import Classes
from geo_service.store import groups
from geo_service.store.catalog import BuildCatalog, CatalogSource
from geo_service.store.raster import native_zoom

NO_DATA = N_("no data")
#: Most features of one view drawn one by one; beyond it communities are drawn as hexagons
#: and other layers ask to zoom in.
VIEW_LIMIT = 2000
#: The picture of a shared link's card (Open Graph: 1.91 to 1), and the view it keeps.
CARD = (1200, 630)
PICTURE_VIEW = ("bbox", "lat", "lon", "z", "layers", "from", "to")
#: People per cell the legend of a population grid shows.
PEOPLE_STOPS = (1, 10, 100, 500)
#: The layer of official units, listed in the page's table beside the communities.
UNITS_LAYER = "risk_units"
#: A transparent pixel: the outside basemap's tiles in an offline bundle (none is fetched).
BLANK_TILE = "data:image/gif;base64,R0lGODlhAQABAAAAACH5BAEKAAEALAAAAAABAAEAAAICTAEAOw=="
#: Evidence features a popup fetches per factor (the rest are counted, with a link).
EVIDENCE_SHOWN = 3

#: Confidence in a score, and why it is not high (``risk/confidence.py``).
CONFIDENCE = {
    "high": N_("Confidence: high"),
    "medium": N_("Confidence: medium"),
    "low": N_("Confidence: low"),
}
CONFIDENCE_REASONS = {
    "province_stand_in": N_("the nearest mine is a point standing for a whole province"),
    "approximate_location": N_("the evidence is located only approximately"),
    "estimated_dam": N_("the dam's height or volume is estimated"),
    "factors_missing": N_("not every factor has data here"),
}


@dataclass(frozen=True)
class Basemap:
    """The outside basemap: the one outside resource of a page (``xyzservices`` provider)."""

    name: str
    url: str
    attribution: str
    max_zoom: int

    @classmethod
    def named(cls, name: str) -> Basemap:
        """A provider of ``xyzservices`` by name, e.g. ``OpenStreetMap.Mapnik``."""
        import xyzservices.providers as xyz

        try:
            provider = xyz.query_name(name)
        except ValueError as exc:
            raise ValueError(f"unknown basemap {name!r}: see xyzservices' providers") from exc
        return cls(
            name=name,
            url=provider.build_url(),
            attribution=provider.get("attribution", ""),
            max_zoom=int(provider.get("max_zoom", 18)),
        )


@dataclass(frozen=True)
class View:
    """What a share link reopens: centre, zoom, the layers shown and the incidents' years.

    ``fit`` is the map's box when the link named no centre: the page fits it to the screen.
    """

    lat: float
    lon: float
    zoom: int
    layers: tuple[str, ...]
    fit: tuple[float, float, float, float] | None = None
    years: tuple[int, int] | None = None


@dataclass(frozen=True)
class BuildFacts:
    """What a page needs to know of the build it shows (read from its ``catalog.json``)."""

    build_id: str
    raster_zoom: int
    cell_m: float | None
    factors: list[str]
    thresholds: tuple[float, ...]
    incident_years: tuple[int, int] | None
    #: Source key → title, publisher, licence, url, kind and the layer holding its features.
    sources: dict[str, dict[str, Any]]
    #: Layer → the publishers of its sources (for the attribution of what is drawn).
    publishers: dict[str, list[str]]
    #: ISO 3166 alpha-3 codes the sources cover.
    countries: list[str]
    hex_min_count: int
    concession_within_km: float
    concession_years: list[int]
    reference_date: str | None
    layers: list[str] = field(default_factory=list)
    #: Layer → the layer of its restricted rows as cells (``incidents`` → ``incident_areas``).
    areas: dict[str, str] = field(default_factory=dict)
    #: Layer → (publisher, countries covered) of each of its sources (none: everywhere).
    layer_sources: dict[str, list[tuple[str, tuple[str, ...]]]] = field(default_factory=dict)
    #: Zoom of the native cells of the other rasters (population grids), by layer.
    raster_zooms: dict[str, int] = field(default_factory=dict)
    #: Footprint growth by source and area (catalog.json risk.concession_risk.footprint_growth).
    footprint_growth: dict[str, Any] = field(default_factory=dict)

    def in_countries(self, countries: set[str]) -> BuildFacts:
        """These facts crediting only the sources that cover one of ``countries`` (a source
        with no coverage listed, such as a table of failures worldwide, covers them all)."""
        publishers = {
            layer: list(
                dict.fromkeys(p for p, where in pairs if not where or countries & set(where))
            )
            for layer, pairs in self.layer_sources.items()
        }
        return replace(self, publishers=publishers)

    @classmethod
    def of(cls, catalog: BuildCatalog, raster_zoom: int) -> BuildFacts:
        """The facts of a build's catalog (the same for every caller)."""
        layers = catalog.layers
        risk = catalog.risk
        params = risk.get("parameters", {})
        classes = params.get("classes", {})
        thresholds = tuple(
            float(classes.get(k, d)) for k, d in (("medium", 25), ("high", 50), ("very_high", 75))
        )
        extent = layers["incidents"].time_extent if "incidents" in layers else None
        years = (int(extent[0][:4]), int(extent[1][:4])) if extent else None
        sources = {}
        holders = catalog.source_layers()
        for key, s in catalog.sources.items():
            sources[key] = {
                "title": s.title,
                "publisher": s.publisher,
                "licence": s.licence,
                "licence_url": s.licence_url,
                "url": s.url,
                "kind": s.kind,
                "layer": holders[key],
            }
        publishers = {
            lid: list(dict.fromkeys(catalog.sources[k].publisher for k in meta.sources))
            for lid, meta in layers.items()
        }
        countries = sorted(
            {c for s in catalog.sources.values() for c in s.coverage.get("countries", [])}
        )
        concession = params.get("concession_risk", {})
        incidents = risk.get("factors", {}).get("incident_intensity", {})
        reference = incidents.get("reference_date") or (extent[1] if extent else None)
        return cls(
            build_id=catalog.build_id,
            raster_zoom=raster_zoom,
            footprint_growth=risk.get("concession_risk", {}).get("footprint_growth", {}),
            raster_zooms={
                lid: native_zoom(meta.cell_m)
                for lid, meta in layers.items()
                if meta.kind == "raster" and lid != "risk_surface" and meta.cell_m
            },
            cell_m=layers["risk_surface"].cell_m if "risk_surface" in layers else None,
            factors=list(risk.get("factors", params.get("factors", {}))),
            thresholds=thresholds,
            incident_years=years,
            sources=sources,
            publishers=publishers,
            countries=countries,
            hex_min_count=int(params.get("hex", {}).get("min_count", 3)),
            concession_within_km=float(concession.get("within_km", 10.0)),
            concession_years=[int(y) for y in concession.get("years", [1, 3, 5])],
            reference_date=str(reference)[:10] if reference else None,
            layers=list(layers),
            areas={
                lid: meta.areas
                for lid, meta in layers.items()
                if meta.areas is not None and meta.areas in layers
            },
            layer_sources={
                lid: [
                    (catalog.sources[k].publisher, _credit_countries(catalog.sources[k]))
                    for k in meta.sources
                ]
                for lid, meta in layers.items()
            },
        )


def _credit_countries(source: CatalogSource) -> tuple[str, ...]:
    """The countries a source is credited in: those its coverage lists, else, for a coverage
    drawn as an outline or a box, the countries of its public rows; none (everywhere) for a
    source that lists no coverage at all."""
    coverage = source.coverage
    if coverage.get("countries"):
        return tuple(coverage["countries"])
    if coverage.get("polygon") or coverage.get("bbox"):
        return source.countries_seen
    return ()


def class_of(score: float | None, thresholds: tuple[float, ...]) -> str:
    """The class of a score 0–100 (``no data`` for none), as the legend names it
    (``Classes.of``: the one place a score gets its class)."""
    value = np.nan if score is None else score
    return str(_classes(tuple(thresholds)).of(value)[0])


@cache
def _classes(thresholds: tuple[float, ...]) -> Classes:
    medium, high, very_high = thresholds
    return Classes(medium=medium, high=high, very_high=very_high)


#: Names CLDR writes otherwise than the maps' titles do ("Congo - Kinshasa"): one name for
#: a country on every page.
COUNTRY_NAMES = {
    "COD": {"en": "DR Congo", "fr": "RD Congo", "pt": "RD Congo"},
    "COG": {"en": "Republic of the Congo", "fr": "République du Congo", "pt": "República do Congo"},
}


def country_names(codes: list[str], lang: str) -> dict[str, str]:
    """ISO alpha-3 → the country's name in ``lang`` (CLDR through Babel, but for
    ``COUNTRY_NAMES``)."""
    import pycountry

    territories = Locale.parse(lang).territories
    out = {}
    for code in codes:
        country = pycountry.countries.get(alpha_3=code)
        if code in COUNTRY_NAMES:
            out[code] = COUNTRY_NAMES[code].get(lang, COUNTRY_NAMES[code]["en"])
        elif country is not None:
            out[code] = territories.get(country.alpha_2, country.name)
    return out


def decimal(value: float, lang: str, digits: int = 1) -> str:
    """A number written the way ``lang`` writes it (0,80 in French and Portuguese)."""
    return format_decimal(value, format=f"#,##0.{'0' * digits}" if digits else "#,##0", locale=lang)


def _strings(lang: str) -> dict[str, Any]:
    """Every word the script shows, in ``lang`` (plurals as [one, other] for Intl.PluralRules)."""
    _ = translator(lang)
    ngettext = plural_translator(lang)

    def plural(singular: str, plural_: str) -> list[str]:
        return [ngettext(singular, plural_, 1), ngettext(singular, plural_, 2)]

    return {
        "zoomIn": _("Zoom in"),
        "zoomInFor": _("Zoom in to see them"),
        "zoomOut": _("Zoom out"),
        "layers": _("Layers"),
        "closePopup": _("Close"),
        "leaflet": _("Leaflet, a JavaScript library for interactive maps"),
        "loading": _("Loading…"),
        "failed": _("Could not load this. Try again in a moment."),
        "scoreLine": _("Score: {score} out of 100"),
        "noScore": _("No factor has evidence here: no score."),
        "basedOn": plural(
            "Based on {n} of {total} factors. No data here for: {missing}.",
            "Based on {n} of {total} factors. No data here for: {missing}.",
        ),
        "absence": _("Absence of evidence is not absence of risk."),
        "points": _("points"),
        "level": _("level {value} of 1"),
        "noData": _(NO_DATA),
        "noCoverage": _("no data: no source covers this place"),
        "evidence": _("Evidence"),
        "inRecord": plural("{n} more in the full record", "{n} more in the full record"),
        "notListed": plural("{n} more not listed here", "{n} more not listed here"),
        "granted": _("granted {date}"),
        "operating": _("operating since {date}"),
        "built": _("built {date}"),
        "notPublic": plural(
            "{n} more report not shown publicly", "{n} more reports not shown publicly"
        ),
        "record": _("Full record"),
        "tableTitle": _("Communities in view"),
        "unitsTitle": _("Units in view"),
        "tableFirst": _("the {n} highest scores"),
        "colName": _("Community"),
        "colCountry": _("Country"),
        "colScore": _("Score"),
        "colClass": _("Class"),
        "colConfidence": _("Confidence"),
        "colFactors": _("Factors with data"),
        "confidenceWord": {
            "high": _("high confidence"),
            "medium": _("medium confidence"),
            "low": _("low confidence"),
        },
        "searchLabel": _("Find a town or a mine"),
        "searchPlaceholder": _("Find a town…"),
        "searchFound": plural("{n} place found", "{n} places found"),
        "sentMine": _("The nearest known diamond-mining site is {km} away."),
        "sentMineZone": _(
            "The nearest known diamond-mining area, a {radius} zone {publisher} gives for "
            "the whole of {place}, is {km} away."
        ),
        "sentMineNone": _("No known diamond-mining site is close enough to count."),
        "sentDams": plural(
            "{n} tailings dam could reach this place if it failed (chance a flow reaches it: {p}).",
            "{n} tailings dams could reach this place if they failed (chance a flow reaches "
            "it: {p}).",
        ),
        "sentFailures": plural(
            "{n} recorded dam failure reached this place.",
            "{n} recorded dam failures reached this place.",
        ),
        "sentDamsNone": _("No tailings dam is within reach."),
        "sentIncidents": plural(
            "{n} incident of lethal violence within reach ({deaths}), the latest on {date}.",
            "{n} incidents of lethal violence within reach ({deaths}), the latest on {date}.",
        ),
        "deaths": plural("{n} death", "{n} deaths"),
        "sentIncidentsNone": _("No incident of lethal violence is recorded within reach."),
        "sentMissing": _("No {missing} data covers this place."),
        "or": _(" or "),
        "evidenceOf": {
            "concession_pressure": _("mining"),
            "tailings_exposure": _("tailings dam"),
            "incident_intensity": _("incident"),
        },
        "sourceLine": _("Source: {source}"),
        "deathsCount": _("Deaths: {n}"),
        "nearestSite": _("Nearest mine site"),
        "sitesWithin": _("Mine sites within {km} km"),
        "damsInRunout": _("Dams within run-out reach"),
        "damsUpstream": _("Dams upstream on the river"),
        "nearestDam": _("Nearest dam"),
        "incidentsInReach": _("Incidents within reach"),
        "deathsInReach": _("Deaths in them"),
        "latestIncident": _("Latest incident"),
        "km": _("{value} km"),
        "m": _("{value} m"),
        "m3": _("{value} m³"),
        "people": plural("{n} person", "{n} people"),
        "range": _("{low} to {high} km"),
        "percent": _("{value} %"),
        "runoutBand": _("{median} at the median; 8 in 10 flows between {low} and {high}"),
        "peopleBand": _("about {n} (8 in 10 chances: {low} to {high})"),
        "screening": _("upper-bound screening estimate: a circle, not the valley"),
        "estimatedDam": _("height or volume estimated from the register"),
        "failedOn": _("failed on {date} (recorded failure)"),
        "reachChance": _("Chance a dam's flow reaches it"),
        "failureInReach": _("Recorded failures within reach"),
        "confidence": {k: _(v) for k, v in CONFIDENCE.items()},
        "reasons": {k: _(v) for k, v in CONFIDENCE_REASONS.items()},
        "indicative": _("indicative, not an engineering classification"),
        "siteFootprint": _(
            "a circle of {km} km around the published point (no boundary is published)"
        ),
        "polygon": _("the published boundary"),
        "incidentsNearby": _(
            "{y1} in the last year, {y3} in 3 years, {y5} in 5 years, within {km} km (to {date})"
        ),
        "communitiesNearby": _("{n} within {km} km ({people})"),
        "areaCommunities": plural(
            "{n} community here is shown only by its area, to protect the people there.",
            "{n} communities here are shown only by their area, to protect the people there.",
        ),
        "areaIncidents": plural(
            "{n} report shown only by its area", "{n} reports shown only by their area"
        ),
        "areaNote": _(
            "The place, date and sources of these reports could point to the people who made "
            "them: the public sees only the area and how many there are. They count in the "
            "scores all the same."
        ),
        "areaCount": plural("{n} more shown only by area", "{n} more shown only by area"),
        "areaFeatures": plural(
            "{n} here is shown only by its area, to protect the people behind it.",
            "{n} here are shown only by their area, to protect the people behind them.",
        ),
        "areaFeatureNote": _(
            "Where these are could point to the people who reported them: the public sees "
            "only the area and how many there are. They count in the scores all the same."
        ),
        "hexTitle": _("Hexagon of communities"),
        "hexBody": _(
            "{n} communities in this hexagon. Their highest score is {max} ({class}), "
            "the mean {mean}."
        ),
        "hexNote": _(
            "Zoom in to see each community. Hexagons with fewer than {min} communities "
            "are left out."
        ),
        "cluster": plural("{n} incident here", "{n} incidents here"),
        "andMore": plural("and {n} more", "and {n} more"),
        "communities": plural("{n} community", "{n} communities"),
        "grouped": plural(
            "{n} community, grouped in hexagons: zoom in for each one",
            "{n} communities, grouped in hexagons: zoom in for each one",
        ),
        "incidentCount": plural("{n} incident in view", "{n} incidents in view"),
        "sites": plural("{n} mine site", "{n} mine sites"),
        "miningAreas": plural("{n} mapped mining area", "{n} mapped mining areas"),
        "features": plural("{n} feature", "{n} features"),
        "units": plural("{n} official unit", "{n} official units"),
        "dams": plural("{n} tailings dam", "{n} tailings dams"),
        "partial": _("{shown} of {total}: zoom in for all"),
        "share": _("Share"),
        "shareLink": _("Link to this view"),
        "shareWith": _("Share with…"),
        "picture": _("This view as a picture (PNG)"),
        "copy": _("Copy this code into your page"),
    }


class _FirstView(MacroElement):
    """Runs before any layer is added: the translated zoom buttons, the metric scale bar, and
    the map's box fitted to the screen (so no tile of a wrong zoom is ever asked for)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function () {
          var map = {{ this._parent.get_name() }};
          L.control.zoom({position: "topleft", zoomInTitle: {{ this.zoom_in|tojson }},
                          zoomOutTitle: {{ this.zoom_out|tojson }}}).addTo(map);
          L.control.scale({imperial: false, position: "bottomleft"}).addTo(map);
          {% if this.fit %}
          // On a wide screen, clear of the legend (bottom left).
          var wide = map.getSize().x >= 900;
          map.fitBounds({{ this.fit|tojson }}, {animate: false,
                                                paddingTopLeft: [wide ? 300 : 0, 0]});
          {% endif %}
        })();
        {% endmacro %}
        """
    )

    def __init__(self, zoom_in: str, zoom_out: str, fit: list[list[float]] | None) -> None:
        super().__init__()
        self._name = "FirstView"
        self.zoom_in = zoom_in
        self.zoom_out = zoom_out
        self.fit = fit


class _Map(folium.Map):
    """Folium's map with the head of ``map/leaflet_map.html``: its element and script are
    Folium's macros, its viewport lets people zoom the page."""

    _template = environment().get_template("map/leaflet_map.html")

    @staticmethod
    def folium_macro(name: str) -> Callable[..., str]:
        return getattr(folium.Map._template.module, name)


class _Page(Figure):
    """The page around the map: Folium's figure, in its language (``<html lang>``)."""

    _template = environment().get_template("map/page.html")

    def __init__(self, lang: str) -> None:
        super().__init__()
        self.lang = lang


class _Start(MacroElement):
    """Hands the map, its layers and the page's settings to the page's script (a module,
    which runs once the page is parsed: ``static/js/main.js``)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        window.riskMapParts = {map: {{ this._parent.get_name() }},
          config: {{ this.config|tojson }}, layers: {
          basemap: {{ this.basemap.get_name() }},
          control: {{ this.control.get_name() }}{% for id, layer in this.layers.items() %},
          {{ id|tojson }}: {{ layer.get_name() }}{% endfor %}
        }};
        {% endmacro %}
        """
    )

    def __init__(
        self, config: dict[str, Any], layers: dict[str, Any], basemap: Any, control: Any
    ) -> None:
        super().__init__()
        self._name = "Start"
        self.config = config
        self.layers = layers
        self.basemap = basemap
        self.control = control


def evidence_line(facts: BuildFacts, lang: str, years: tuple[int, int] | None = None) -> str | None:
    """ "Evidence up to <date>" in ``lang`` (and the incidents' years when filtered)."""
    _ = translator(lang)
    if facts.reference_date is None:
        return None
    when = format_date(date.fromisoformat(facts.reference_date), format="long", locale=lang)
    line = _("Evidence up to {date}").replace("{date}", when)
    if years is not None and facts.incident_years is not None and years != facts.incident_years:
        line += "; " + _("incidents {first}–{last}").replace("{first}", str(years[0])).replace(
            "{last}", str(years[1])
        )
    return line


def growth_chart(
    facts: BuildFacts, area: str | None, lang: str, _: Callable[[str], str]
) -> dict[str, Any] | None:
    """Bars of the mapped footprint added per year in a growth ``area`` (summed over the
    sources that map footprints by period), for the concessions legend; none if no footprint
    lies there. The first year holds everything mapped up to it."""
    if area is None:
        return None
    years: dict[int, float] = {}
    for record in facts.footprint_growth.values():
        for year, row in (record["areas"].get(area) or {}).get("by_year", {}).items():
            years[int(year)] = years.get(int(year), 0.0) + row["area_ha"]
    if not years:
        return None
    top = max(years.values()) or 1.0
    width, height, gap = 18, 48, 4
    bars = []
    for i, (year, ha) in enumerate(sorted(years.items())):
        h = max(1.0, height * ha / top)
        label = (_("by {year}") if i == 0 else "{year}").replace("{year}", str(year))
        bars.append(
            {
                "x": i * (width + gap),
                "y": height - h,
                "width": width,
                "height": h,
                "year": str(year)[2:] if i else "≤" + str(year)[2:],
                "label": label,
                "value": decimal(ha, lang, 0),
            }
        )
    return {
        "caption": _("Mining footprint mapped, hectares added per year"),
        "total": _("{value} ha in all").replace("{value}", decimal(sum(years.values()), lang, 0)),
        "year_word": _("Year"),
        "area_word": _("Hectares"),
        "bars": bars,
        "width": len(bars) * (width + gap) - gap,
        "height": height,
    }


def _legend(
    definition: MapDefinition,
    lang: str,
    facts: BuildFacts,
    styles: dict[str, LayerDefinition],
    layers: list[str],
    _: Callable[[str], str],
    page: str,
    languages: bool = True,
    cells: bool = True,
) -> str:
    """The legend, from the layer definitions: one section per layer (the script hides those
    not shown), the date of the evidence, the map's own note, and links to the page in the
    other languages (``languages``; an offline bundle speaks one), and the line on rows shown
    only by their area unless the page draws none (``cells``: a bundle holding them as they
    are)."""
    size = (
        _("{value} m").replace("{value}", decimal(facts.cell_m, lang, 0)) if facts.cell_m else "—"
    )
    sections = []
    # The table button sits under the first layer a table lists (communities, or units).
    tabled = next((x for x in layers if styles[x].draw == "communities"), None) or next(
        (x for x in layers if x == UNITS_LAYER), None
    )
    for layer in layers:
        style = styles[layer]
        classes = style.classes.values if style.classes else []
        notes = [
            n
            for n in style.notes_kept(definition.where.get(layer, {}))
            if cells or n.mark != "area"
        ]
        plain = (
            None
            if classes or style.draw == "raster"
            else next((n for n in notes if n.mark is None), None)
        )
        sections.append(
            {
                "id": layer,
                "draw": style.draw,
                "heading": style.heading_of(lang),
                "name": plain.text.get(lang) if plain else style.name.get(lang),
                "path": svg_path(style.symbol),
                "colour": style.colour,
                "classes": [{"colour": c.colour, "label": c.label.get(lang)} for c in classes],
                "other": style.other
                and {
                    "mark": style.other.mark,
                    "colour": style.other.colour,
                    "label": style.other.label.get(lang),
                },
                "notes": [
                    {"id": n.id, "mark": n.mark, "text": n.text.get(lang).replace("{size}", size)}
                    for n in notes
                    if n is not plain
                ],
                "accent": classes[len(classes) // 2].colour if classes else style.colour,
                "growth": growth_chart(facts, definition.growth, lang, _)
                if style.draw == "sites"
                else None,
                "table": layer == tabled,
                "people": [
                    {"colour": png.people_colour(n), "label": decimal(n, lang, 0)}
                    for n in PEOPLE_STOPS
                ]
                if style.draw == "raster"
                else None,
                "filter": style.filter
                and {
                    "label": style.filter.label.get(lang),
                    "groups": [g.label.get(lang) for g in style.filter.groups],
                    "other": style.filter.other.get(lang),
                },
            }
        )
    stops = png.legend(11)
    return (
        environment()
        .get_template("map/legend.html")
        .render(
            title=definition.title.get(lang),
            words={
                "legend": _("Legend"),
                "language": _("Language"),
                "table": _("The communities in view, as a table")
                if tabled != UNITS_LAYER
                else _("The units in view, as a table"),
            },
            languages=[("en", "English"), ("fr", "Français"), ("pt", "Português")]
            if languages
            else [],
            lang=lang,
            page=page,
            evidence=evidence_line(facts, lang),
            stops=[
                {"offset": i / (len(stops) - 1), "color": s["color"]} for i, s in enumerate(stops)
            ],
            ticks=[decimal(v, lang, 0) for v in (0, *facts.thresholds, 100)],
            layers=sections,
            shapes={k: svg_path(k) for k in ("hexagon", "triangle")},
            note=definition.legend.get(lang) if definition.legend is not None else None,
        )
    )


def credit_template(
    definition: MapDefinition, base: str, lang: str, sources: str | None = None
) -> str:
    """The data credit with ``{publishers}`` to fill: the publishers, then a link to the
    page of every source's terms (``sources``: its address, if not the service's), in the
    page's language."""
    _ = translator(lang)
    href = sources or f"{base}maps/{definition.id}/sources?lang={lang}"
    return (
        f"{html.escape(_('Data: {publishers}'))} "
        f'(<a href="{html.escape(href)}">{html.escape(_("sources and licences"))}</a>)'
    )


def attribution_html(
    definition: MapDefinition,
    base: str,
    lang: str,
    facts: BuildFacts,
    layers: list[str],
    sources: str | None = None,
) -> str:
    """The data credit of some layers: their publishers and a link to every source's terms."""
    publishers = dict.fromkeys(p for layer in layers for p in facts.publishers.get(layer, []))
    return credit_template(definition, base, lang, sources).replace(
        "{publishers}", html.escape(", ".join(publishers))
    )


@dataclass(frozen=True)
class Offline:
    """A page of an offline bundle (``geo_service/bundle``): opened from files, it takes its
    data from scripts beside it (``scripts``, after Leaflet's), links its sources page
    (``sources``), draws no outside basemap, has nothing to share, and may say first what
    it holds (``notice``: a bundle made for a role that sees restricted rows)."""

    scripts: tuple[str, ...]
    sources: str = "sources.html"
    notice: str | None = None
    #: It holds restricted rows as they are (a role that sees them): no cells stand for them.
    precise: bool = False


@with_stable_names
def build_page(
    definition: MapDefinition,
    base: str,
    lang: str,
    facts: BuildFacts,
    view: View | None,
    embed: bool,
    basemap: Basemap | None,
    styles: dict[str, LayerDefinition],
    shared: dict[str, str] | None = None,
    offline: Offline | None = None,
) -> str:
    """The page's HTML: Leaflet and our script from ``base``/assets, data from ``base``'s API.

    ``view`` reopens a shared view; ``embed`` is the chromeless page for iframes (folded
    controls, a link to the full map, no embed button); ``offline``: the page of a bundle
    (``base`` then is the bundle's folder, "").
    """
    sources_page = offline.sources if offline else None
    _ = translator(lang)
    if view is None:
        lat, lon, zoom = definition.first_view()
        view = View(
            lat,
            lon,
            zoom,
            tuple(x for x in definition.layers if x not in definition.hidden),
            fit=definition.bounds,
        )
    layers = [x for x in definition.layers if x in facts.layers or styles[x].draw == "surface"]
    if facts.incident_years is None and "incidents" in layers:
        layers.remove("incidents")
    m = _Map(
        location=[view.lat, view.lon],
        zoom_start=view.zoom,
        tiles=None,
        control_scale=False,
        zoom_control=False,
        prefer_canvas=True,
    )
    assets = f"{base}assets/"
    m.default_js = [
        ("leaflet", f"{assets}leaflet/dist/leaflet.js"),
        ("supercluster", f"{assets}supercluster/dist/supercluster.min.js"),
    ]
    if "incidents" not in layers:
        m.default_js.pop(1)
    if offline is not None:  # the data, then the script that reads it, before the map
        m.default_js += [(f"riskmap_offline_{i}", src) for i, src in enumerate(offline.scripts)]
    m.default_css = [
        ("leaflet_css", f"{assets}leaflet/dist/leaflet.css"),
        ("riskmap_css", f"{assets}riskmap/riskmap.css?v={asset_version('riskmap.css')}"),
    ]
    fit = None
    if view.fit is not None:
        west, south, east, north = view.fit
        fit = [[south, west], [north, east]]
    m.add_child(_FirstView(_("Zoom in"), _("Zoom out"), fit))

    basemap = basemap or Basemap.named("OpenStreetMap.Mapnik")
    if offline is not None:  # nothing from outside: the basemap drawn from the bundle's data
        basemap = Basemap("Natural Earth", BLANK_TILE, " ", 18)
    outside = folium.TileLayer(
        tiles=basemap.url,
        attr=html.escape(basemap.attribution),
        name=basemap.name.split(".")[0],
        max_zoom=18,
        max_native_zoom=basemap.max_zoom,
    ).add_to(m)
    overlays: dict[str, Any] = {}
    for layer in layers:
        shown = layer in view.layers
        if layer == "risk_surface":
            overlays[layer] = folium.TileLayer(
                tiles=f"{base}tiles/risk_surface/{{z}}/{{x}}/{{y}}.png",
                attr=" ",
                name=styles[layer].name.get(lang),
                overlay=True,
                opacity=0.75,
                max_native_zoom=facts.raster_zoom,
                max_zoom=18,
                show=shown,
            ).add_to(m)
        elif styles[layer].draw == "raster":  # people per cell, in their own greys
            overlays[layer] = folium.TileLayer(
                tiles=f"{base}tiles/{layer}/{{z}}/{{x}}/{{y}}.png",
                attr=" ",
                name=styles[layer].name.get(lang),
                overlay=True,
                max_native_zoom=facts.raster_zooms.get(layer, facts.raster_zoom),
                max_zoom=18,
                show=shown,
            ).add_to(m)
        else:
            overlays[layer] = folium.FeatureGroup(
                name=styles[layer].name.get(lang), overlay=True, show=shown
            ).add_to(m)
    full = Fullscreen(
        position="topleft", title=_("Full screen"), title_cancel=_("Exit full screen")
    )
    full.default_js = [("fullscreen", f"{assets}leaflet.fullscreen/Control.FullScreen.js")]
    full.default_css = [("fullscreen_css", f"{assets}leaflet.fullscreen/Control.FullScreen.css")]
    full.add_to(m)
    # Folded on phones and in embeds: the map comes first, a tap opens the list.
    collapsed = (
        JsCode("true")
        if embed
        else JsCode('window.matchMedia("(max-width: 600px), (max-height: 480px)").matches')
    )
    control = folium.LayerControl(collapsed=collapsed)
    control.add_to(m)

    title = definition.title.get(lang)
    page_url = f"{base}maps/{definition.id}" if offline is None else "index.html"
    credit = (
        html.escape(_("Map: {title}")).replace(
            "{title}", f'<a href="{page_url}?lang={lang}">{html.escape(title)}</a>'
        )
        + f" — {attribution_html(definition, base, lang, facts, layers, sources_page)}"
    )
    years = view.years or facts.incident_years
    config = {
        "lang": lang,
        "mapId": definition.id,
        "embed": embed,
        "offline": offline is not None,
        "embedUrl": f"{base}embed/{definition.id}",
        "oembedUrl": f"{base}oembed",
        "pictureUrl": f"{base}maps/{definition.id}.png",
        "api": f"{base}collections/",
        "title": title,
        "credit": credit,
        "attribution": {
            layer: attribution_html(definition, base, lang, facts, [layer], sources_page)
            for layer in layers
        },
        "publishers": {layer: facts.publishers.get(layer, []) for layer in layers},
        "layerSources": {
            layer: [[p, list(where)] for p, where in facts.layer_sources.get(layer, [])]
            for layer in layers
        },
        "creditTemplate": credit_template(definition, base, lang, sources_page),
        "naturalEarth": "Natural Earth",
        "basemapUrl": f"{base}basemap.json",
        "viewLimit": VIEW_LIMIT,
        # Incidents are grouped as the vector tiles group points.
        "cluster": {"radius": groups.RADIUS, "extent": groups.EXTENT, "maxZoom": groups.TOP_ZOOM},
        "evidenceShown": EVIDENCE_SHOWN,
        "thresholds": list(facts.thresholds),
        "layers": layers,
        # Every layer's definition (a popup lists evidence of layers the map may not draw).
        "styles": {layer: style.script(lang) for layer, style in styles.items()},
        "factors": [
            f
            for f in definition.popup_fields("community_risk", styles["community_risk"].popup)
            if f in facts.factors
        ]
        if "community_risk" in styles
        else [],
        "popup": {layer: definition.popup_fields(layer, styles[layer].popup) for layer in layers},
        "where": {
            layer: "".join(f"&{k}={quote(str(v))}" for k, v in sorted(filters.items()))
            for layer, filters in definition.where.items()
        },
        "evidenceDate": evidence_line(facts, lang),
        "sources": facts.sources,
        "countries": country_names(facts.countries, lang),
        "hexMinCount": facts.hex_min_count,
        # The page's requests carry no token: it draws restricted rows as their cells.
        "areas": {layer: facts.areas[layer] for layer in layers if layer in facts.areas},
        "concessionKm": facts.concession_within_km,
        "referenceDate": facts.reference_date,
        "years": list(facts.incident_years) if facts.incident_years else None,
        "t": _strings(lang),
    }
    m.add_child(_Start(config, overlays, outside, control))

    root = _Page(lang)
    root.add_child(m)
    scripts = f"{assets}riskmap/{script_version()}/js/"
    if offline is None:  # an offline page's script came with Leaflet's (``Offline.scripts``)
        root.header.add_child(
            Element(
                environment()
                .get_template("map/modules.html")
                .render(base=scripts, modules=sorted(p.name for p in SCRIPTS.glob("*.js")))
            )
        )
    else:
        notice = environment().get_template("map/offline_notice.html")
        root.html.add_child(Element(notice.render(lang=lang, notice=offline.notice)))
    legend = _legend(
        definition,
        lang,
        facts,
        styles,
        layers,
        _,
        page_url,
        offline is None,
        offline is None or not offline.precise,
    )
    root.html.add_child(Element(legend))
    if "incidents" in layers and facts.incident_years and years:
        first, last = facts.incident_years
        panel = environment().get_template("map/time_filter.html")
        root.html.add_child(
            Element(panel.render(lang=lang, first=first, last=last, lo=years[0], hi=years[1]))
        )
    if embed:
        link = environment().get_template("map/full_link.html")
        root.html.add_child(Element(link.render(lang=lang, page=page_url)))
    shown = urlencode({**(shared or {}), "lang": lang})
    oembed = f"{base}oembed?" + urlencode({"url": f"{page_url}?{shown}", "format": "json"})
    picture = {k: v for k, v in (shared or {}).items() if k in PICTURE_VIEW}
    picture |= {"lang": lang, "width": str(CARD[0]), "height": str(CARD[1])}
    root.header.add_child(
        Element(
            environment()
            .get_template("map/head.html")
            .render(
                title=title,
                description=definition.description.get(lang),
                oembed=oembed,
                base=base,
                url=f"{page_url}?{shown}",
                locale={"en": "en_GB", "fr": "fr_FR", "pt": "pt_BR"}[lang],
                image=f"{base}maps/{definition.id}.png?{urlencode(picture)}",
                image_size=CARD,
                offline=offline is not None,
            )
        )
    )
    return root.render()
