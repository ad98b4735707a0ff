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

import hashlib
import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import urlencode

import folium
import numpy as np
from babel import Locale
from babel.numbers import format_decimal
from branca.element import Element, MacroElement
from folium.plugins import Fullscreen
from folium.utilities import JsCode
from jinja2 import Template

from geo_service.maps.assets import STATIC
from geo_service.maps.definitions import MapDefinition
from geo_service.maps.i18n import N_, plural_translator, translator
from geo_service.render import png
from geo_service.risk.params import Classes


def _cividis(value: float) -> str:
    r, g, b, _ = png.colormap()[int(round(min(max(value, 0.0), 1.0) * 255))]
    return f"#{r:02x}{g:02x}{b:02x}"


#: The class names of community scores, lowest first (translated where shown).
CLASSES = (N_("low"), N_("medium"), N_("high"), N_("very high"))
NO_DATA = N_("no data")
#: Each class is the surface's colour at the middle of its class (scores 0–25 → 0.125 …):
#: one scale for risk on the whole map. No data is white, outlined with dashes.
CLASS_COLOURS = {name: _cividis((i + 0.5) / len(CLASSES)) for i, name in enumerate(CLASSES)} | {
    NO_DATA: "#ffffff"
}
#: Indicative consequence classes of tailings dams (GISTM-style), lowest first, and their
#: colours (ColorBrewer RdPu, 5 classes).
DAM_CLASSES = (
    N_("Low"),
    N_("Significant"),
    N_("High"),
    N_("Very High"),
    N_("Extreme"),
)
DAM_COLOURS = dict(
    zip(DAM_CLASSES, ("#feebe2", "#fbb4b9", "#f768a1", "#c51b8a", "#7a0177"), strict=True)
)
INCIDENT_COLOUR = "#111111"
#: Most features of one view drawn one by one; beyond it communities are drawn as hexagons
#: and other layers ask to zoom in.
VIEW_LIMIT = 2000
#: Evidence features a popup fetches per factor (the rest are counted, with a link).
EVIDENCE_SHOWN = 3

#: Words of the data the pages translate (the model's and the publishers' fixed values).
FACTOR_NAMES = {
    "concession_pressure": N_("concession pressure"),
    "tailings_exposure": N_("tailings exposure"),
    "incident_intensity": N_("incident intensity"),
}
INCIDENT_TYPES = {
    "state-based": N_("state-based conflict"),
    "non-state": N_("non-state conflict"),
    "one-sided": N_("one-sided violence (against civilians)"),
    "tailings failure": N_("tailings dam failure"),
    "dam failure": N_("dam failure"),
}
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
PRECISIONS = {
    "exact": N_("exact place"),
    "near": N_("near the place"),
    "admin2": N_("district"),
    "admin1": N_("province"),
    "region": N_("region"),
    "country": N_("country"),
}
DAM_STATUS = {
    "active": N_("active"),
    "inactive": N_("inactive"),
    "decommissioning": N_("decommissioning"),
    "under construction": N_("under construction"),
    "failed": N_("failed"),
    "unknown": N_("unknown"),
}
CONSTRUCTION = {
    "upstream": N_("upstream"),
    "centreline": N_("centreline"),
    "downstream": N_("downstream"),
    "single_stage": N_("single stage"),
    "unknown": N_("unknown"),
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
    #: Layer → its fields as the caller sees it (the public view has cells and counts).
    fields: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, catalog: dict[str, Any], raster_zoom: int, public: bool = True) -> BuildFacts:
        """The facts of a build's catalog, for a caller who sees only the public view (or,
        ``public=False``, every row)."""
        layers = catalog["layers"]
        risk = catalog.get("risk", {})
        params = risk.get("parameters", {})
        classes = params.get("classes", {})
        thresholds = tuple(
            float(classes.get(k, d)) for k, d in (("medium", 25), ("high", 50), ("very_high", 75))
        )
        extent = (layers.get("incidents") or {}).get("time_extent")
        years = (int(extent[0][:4]), int(extent[1][:4])) if extent else None
        sources = {}
        for key, s in catalog["sources"].items():
            holder = next(
                (
                    lid
                    for lid, meta in layers.items()
                    if meta["kind"] == s["kind"] and key in meta["sources"]
                ),
                None,
            )
            sources[key] = {
                "title": s["title"],
                "publisher": s["publisher"],
                "licence": s["licence"],
                "licence_url": s.get("licence_url"),
                "url": s.get("url"),
                "kind": s["kind"],
                "layer": holder,
            }
        publishers = {
            lid: list(dict.fromkeys(catalog["sources"][k]["publisher"] for k in meta["sources"]))
            for lid, meta in layers.items()
        }
        countries = sorted(
            {
                c
                for s in catalog["sources"].values()
                for c in s.get("coverage", {}).get("countries", [])
            }
        )
        concession = params.get("concession_risk", {})
        incidents = risk.get("factors", {}).get("incident_intensity", {})
        reference = incidents.get("reference_date") or (extent[1] if extent else None)
        return cls(
            build_id=catalog["build_id"],
            raster_zoom=raster_zoom,
            cell_m=(layers.get("risk_surface") or {}).get("cell_m"),
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
            fields={
                lid: list(((meta.get("public") if public else None) or meta).get("fields", {}))
                for lid, meta in layers.items()
            },
        )


def class_of(score: float | None, thresholds: tuple[float, ...]) -> str:
    """The class of a score 0–100 (``no data`` for none), as the legend names it
    (``Classes.of``: the one place a score gets its class)."""
    value = np.nan if score is None else score
    return str(_classes(tuple(thresholds)).of(value)[0])


@cache
def _classes(thresholds: tuple[float, ...]) -> Classes:
    medium, high, very_high = thresholds
    return Classes(medium=medium, high=high, very_high=very_high)


@cache
def asset_version(name: str) -> str:
    """A digest of one of our own assets: its URL changes when it does (cached a day)."""
    return hashlib.blake2b((STATIC / name).read_bytes(), digest_size=6).hexdigest()


def country_names(codes: list[str], lang: str) -> dict[str, str]:
    """ISO alpha-3 → the country's name in ``lang`` (CLDR through Babel)."""
    import pycountry

    territories = Locale.parse(lang).territories
    out = {}
    for code in codes:
        country = pycountry.countries.get(alpha_3=code)
        if country is not None:
            out[code] = territories.get(country.alpha_2, country.name)
    return out


def decimal(value: float, lang: str, digits: int = 1) -> str:
    """A number written the way ``lang`` writes it (0,80 in French and Portuguese)."""
    return format_decimal(value, format=f"#,##0.{'0' * digits}" if digits else "#,##0", locale=lang)


def field_labels(_: Callable[[str], str]) -> dict[str, str]:
    """The label of every field a popup can show, in one language."""
    return {
        "type": _("Type"),
        "fatalities": _("Deaths"),
        "perpetrator": _("Perpetrator"),
        "location_precision": _("Location"),
        "holder": _("Operator"),
        "status": _("Status"),
        "footprint": _("Footprint"),
        "incidents_nearby": _("Incidents nearby"),
        "communities_nearby": _("Communities nearby"),
        "dams_inside": _("Tailings dams inside"),
        "indicative_consequence_class": _("Indicative consequence"),
        "reported_consequence": _("Reported by the register"),
        "construction_method": _("Construction"),
        "height_m": _("Height"),
        "volume_m3": _("Volume"),
        "runout": _("Run-out if it failed"),
        "failure": _("Failure recorded"),
        "communities_in_runout": _("Communities within run-out"),
        "people_in_runout": _("People a failure would reach"),
        "communities_downstream": _("Communities on the river below"),
        "river_name": _("River"),
    }


def _strings(lang: str) -> dict[str, Any]:
    """Every word the script shows, in ``lang`` (plurals as [one, other] for Intl.PluralRules)."""
    _ = translator(lang)
    ngettext = plural_translator(lang)

    def plural(singular: str, plural_: str) -> list[str]:
        return [ngettext(singular, plural_, 1), ngettext(singular, plural_, 2)]

    return {
        "zoomIn": _("Zoom in"),
        "zoomOut": _("Zoom out"),
        "layers": _("Layers"),
        "closePopup": _("Close"),
        "leaflet": _("Leaflet, a JavaScript library for interactive maps"),
        "loading": _("Loading…"),
        "failed": _("Could not load this. Try again in a moment."),
        "scoreLine": _("Score: {score} out of 100"),
        "noScore": _("No factor has evidence here: no score."),
        "basedOn": _("Based on {n} of {total} factors. No data here for: {missing}."),
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
        "dams": plural("{n} tailings dam", "{n} tailings dams"),
        "partial": _("{shown} of {total}: zoom in for all"),
        "classes": {c: _(c) for c in CLASSES} | {NO_DATA: _(NO_DATA)},
        "damClasses": {c: _(c) for c in DAM_CLASSES},
        "factors": {k: _(v) for k, v in FACTOR_NAMES.items()},
        "types": {k: _(v) for k, v in INCIDENT_TYPES.items()},
        "precisions": {k: _(v) for k, v in PRECISIONS.items()},
        "damStatus": {k: _(v) for k, v in DAM_STATUS.items()},
        "construction": {k: _(v) for k, v in CONSTRUCTION.items()},
        "fields": field_labels(_),
        "embed": _("Embed"),
        "copy": _("Copy this code into your page"),
    }


#: Symbols of the legend, drawn as on the map.
DIAMOND = (
    '<svg class="sym" viewBox="0 0 16 16" aria-hidden="true">'
    '<path d="M8 1 15 8 8 15 1 8z" fill="#fff"/></svg>'
)


def triangle_failed() -> str:
    """A failed dam's triangle, as the legend draws it."""
    return (
        '<svg class="sym failed" viewBox="0 0 16 15" aria-hidden="true">'
        '<path d="M8 1 15 14 1 14z" fill="#ffffff"/></svg>'
    )


def triangle(colour: str) -> str:
    """A dam's triangle in a colour, as the legend draws it."""
    return (
        '<svg class="sym" viewBox="0 0 16 15" aria-hidden="true">'
        f'<path d="M8 1 15 14 1 14z" fill="{colour}"/></svg>'
    )


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


class _Start(MacroElement):
    """Hands the map, its layers and the page's settings to ``riskmap.js``."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        RiskMap.start({{ this._parent.get_name() }}, {{ this.config|tojson }}, {
          basemap: {{ this.basemap.get_name() }},
          control: {{ this.control.get_name() }}{% for id, layer in this.layers.items() %},
          {{ id|tojson }}: {{ layer.get_name() }}{% endfor %}
        });
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


def _legend(
    definition: MapDefinition, lang: str, facts: BuildFacts, _: Callable[[str], str]
) -> str:
    """The legend: one section per layer (the script hides those not shown), the status of
    what is drawn, and the map's own note."""
    e = html.escape
    stops = ", ".join(s["color"] for s in png.legend(11))
    layers = definition.layers
    parts = []
    if "risk_surface" in layers or "community_risk" in layers:
        ticks = "".join(
            f"<span>{e(decimal(v, lang, 0))}</span>" for v in (0, *facts.thresholds, 100)
        )
        classes = "".join(
            f'<li><i class="dot" style="background:{CLASS_COLOURS[c]}"></i>{e(_(c))}</li>'
            for c in CLASSES
        )
        parts.append(
            '<section data-layers="risk_surface community_risk">'
            f"<h3>{e(_('Risk score, 0 to 100'))}</h3>"
            f'<div class="ramp" style="background:linear-gradient(to right, {stops})"></div>'
            f'<div class="ticks">{ticks}</div><ul class="classes">{classes}</ul></section>'
        )
    if "risk_surface" in layers:
        cell = (
            _("Surface: the score of each {size} cell, in the same colours").replace(
                "{size}", _("{value} m").replace("{value}", decimal(facts.cell_m, lang, 0))
            )
            if facts.cell_m
            else _("Surface: the score on a grid, in the same colours")
        )
        parts.append(
            '<section data-layers="risk_surface">'
            f'<p><i class="swatch" style="background:linear-gradient(to right, {stops})"></i>'
            f"{e(cell)}; {e(_('transparent where no factor has evidence'))}</p></section>"
        )
    if "community_risk" in layers:
        parts.append(
            '<section data-layers="community_risk">'
            f'<p><i class="dot" style="background:{CLASS_COLOURS[CLASSES[2]]}"></i>'
            f"{e(_('Community, coloured by its class'))}</p>"
            f'<p><i class="dot nodata"></i>{e(_("Community with no data: no factor has evidence there"))}</p>'
            f'<p><i class="dot hollow" style="border-color:{CLASS_COLOURS[CLASSES[2]]}"></i>'
            f"{e(_('Hollow: low confidence (coarse evidence, or few factors with data)'))}</p>"
            f'<p id="legend-hexagons" hidden><i class="hex" style="background:{CLASS_COLOURS[CLASSES[1]]}"></i>'
            f"{e(_('Hexagon: communities grouped when zoomed out, coloured by the highest score in it'))}</p>"
            '<p class="status" id="community-status" aria-live="polite"></p></section>'
        )
    if "tailings_consequence" in layers:
        dams = "".join(f"<li>{triangle(DAM_COLOURS[c])}{e(_(c))}</li>" for c in DAM_CLASSES)
        parts.append(
            '<section data-layers="tailings_consequence">'
            f"<h3>{e(_('Tailings dams, by indicative consequence of a failure'))}</h3>"
            f'<ul class="classes dams">{dams}</ul>'
            f'<p><i class="ring"></i>{e(_("Run-out of the selected dam: the median, and how far one flow in ten would go (over land, 25 km at most)"))}</p>'
            f"<p>{triangle_failed()}{e(_('A dam where a failure is recorded'))}</p>"
            '<p class="status" id="dam-status" aria-live="polite"></p></section>'
        )
    if "concessions" in layers:
        parts.append(
            '<section data-layers="concessions">'
            f"<p>{DIAMOND}{e(_('Diamond mine or plant (USGS), with its footprint'))}</p>"
            '<p class="status" id="concession-status" aria-live="polite"></p></section>'
        )
    if "incidents" in layers:
        parts.append(
            '<section data-layers="incidents">'
            f'<p><i class="dot incident"></i>{e(_("Incident (UCDP)"))}'
            f'<i class="cluster-sample">12</i>{e(_("several: select to zoom in"))}</p></section>'
        )
    if definition.legend is not None:
        parts.append(f'<p class="note">{e(definition.legend.get(lang))}</p>')
    title = definition.title.get(lang)
    return (
        f'<div id="risk-legend" class="risk-legend" role="region" aria-label="{e(_("Legend"))}">'
        f'<details id="legend-details" open><summary><span class="legend-title">{e(title)}</span>'
        f'<span class="legend-word">{e(_("Legend"))}</span></summary>'
        f"{''.join(parts)}</details></div>"
    )


def _time_filter(years: tuple[int, int], chosen: tuple[int, int], _: Callable[[str], str]) -> str:
    """The incidents' year range: two sliders and the count of what is in view."""
    e = html.escape
    first, last = years
    lo, hi = chosen

    def slider(key: str, label: str, value: int) -> str:
        return (
            f'<label for="incidents-{key}">{e(label)} <output id="incidents-{key}-value" '
            f'for="incidents-{key}">{value}</output></label>'
            f'<input type="range" id="incidents-{key}" min="{first}" max="{last}" step="1" '
            f'value="{value}">'
        )

    return (
        '<div id="time-filter" class="time-filter"><details id="time-details" open>'
        f'<summary><span class="long">{e(_("Incidents by year"))}</span>'
        f'<span class="short">{e(_("Incidents"))}</span> <span id="incidents-span">{lo}–{hi}</span>'
        "</summary>"
        f"<fieldset><legend>{e(_('Years shown'))}</legend>"
        f"{slider('from', _('From'), lo)}{slider('to', _('To'), hi)}</fieldset></details>"
        '<output id="incidents-status" aria-live="polite"></output></div>'
    )


def _stable_names(root: Element) -> None:
    """Name the page's elements in order rather than at random (Folium's default), so the
    same map and build give the same page, byte for byte."""
    count = 0

    def walk(element: Element) -> None:
        nonlocal count
        element._id = f"{count:04x}"
        count += 1
        for child in element._children.values():
            walk(child)

    walk(root)


def credit_template(definition: MapDefinition, base: str, lang: str) -> str:
    """The data credit with ``{publishers}`` to fill: the publishers, then a link to the
    page of every source's terms, in the page's language."""
    _ = translator(lang)
    return (
        f"{html.escape(_('Data: {publishers}'))} "
        f'(<a href="{base}maps/{definition.id}/sources?lang={lang}">'
        f"{html.escape(_('sources and licences'))}</a>)"
    )


def attribution_html(
    definition: MapDefinition, base: str, lang: str, facts: BuildFacts, layers: list[str]
) -> str:
    """The data credit of some layers: their publishers and a link to every source's terms."""
    publishers = dict.fromkeys(p for layer in layers for p in facts.publishers.get(layer, []))
    return credit_template(definition, base, lang).replace(
        "{publishers}", html.escape(", ".join(publishers))
    )


def build_page(
    definition: MapDefinition,
    base: str,
    lang: str,
    facts: BuildFacts,
    view: View | None = None,
    embed: bool = False,
    basemap: Basemap | None = None,
) -> str:
    """The page's HTML: Leaflet and our script from ``base``/assets, data from ``base``'s API.

    ``view`` reopens a shared view; ``embed`` is the chromeless page for iframes (folded
    controls, a link to the full map, no embed button).
    """
    _ = translator(lang)
    if view is None:
        lat, lon, zoom = definition.first_view()
        view = View(lat, lon, zoom, tuple(definition.layers), fit=definition.bounds)
    layers = [x for x in definition.layers if x in facts.layers or x == "risk_surface"]
    if facts.incident_years is None and "incidents" in layers:
        layers.remove("incidents")
    m = folium.Map(
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
        ("riskmap", f"{assets}riskmap/riskmap.js?v={asset_version('riskmap.js')}"),
    ]
    if "incidents" not in layers:
        m.default_js.pop(1)
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
    outside = folium.TileLayer(
        tiles=basemap.url,
        attr=html.escape(basemap.attribution),
        name=basemap.name.split(".")[0],
        max_zoom=18,
        max_native_zoom=basemap.max_zoom,
    ).add_to(m)
    names = {
        "risk_surface": _("Risk surface"),
        "community_risk": _("Communities"),
        "tailings_consequence": _("Tailings dams"),
        "concessions": _("Mine sites"),
        "incidents": _("Incidents"),
    }
    overlays: dict[str, Any] = {}
    for layer in layers:
        shown = layer in view.layers
        if layer == "risk_surface":
            overlays[layer] = folium.TileLayer(
                tiles=f"{base}tiles/risk_surface/{{z}}/{{x}}/{{y}}.png",
                attr=" ",
                name=names[layer],
                overlay=True,
                opacity=0.75,
                max_native_zoom=facts.raster_zoom,
                max_zoom=18,
                show=shown,
            ).add_to(m)
        else:
            overlays[layer] = folium.FeatureGroup(
                name=names[layer], overlay=True, show=shown
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
    page_url = f"{base}maps/{definition.id}"
    credit = (
        html.escape(_("Map: {title}")).replace(
            "{title}", f'<a href="{page_url}?lang={lang}">{html.escape(title)}</a>'
        )
        + f" — {attribution_html(definition, base, lang, facts, layers)}"
    )
    years = view.years or facts.incident_years
    config = {
        "lang": lang,
        "mapId": definition.id,
        "embed": embed,
        "embedUrl": f"{base}embed/{definition.id}",
        "api": f"{base}collections/",
        "title": title,
        "credit": credit,
        "attribution": {
            layer: attribution_html(definition, base, lang, facts, [layer]) for layer in layers
        },
        "publishers": {layer: facts.publishers.get(layer, []) for layer in layers},
        "creditTemplate": credit_template(definition, base, lang),
        "naturalEarth": "Natural Earth",
        "basemapUrl": f"{base}basemap.json",
        "viewLimit": VIEW_LIMIT,
        "evidenceShown": EVIDENCE_SHOWN,
        "thresholds": list(facts.thresholds),
        "layers": layers,
        "classes": list(CLASSES),
        "colours": CLASS_COLOURS,
        "damColours": DAM_COLOURS,
        "incidentColour": INCIDENT_COLOUR,
        "factors": [f for f in definition.popup_fields("community_risk") if f in facts.factors],
        "popup": {layer: definition.popup_fields(layer) for layer in layers},
        "sources": facts.sources,
        "countries": country_names(facts.countries, lang),
        "hexMinCount": facts.hex_min_count,
        "generalised": {layer: "generalised" in facts.fields.get(layer, ()) for layer in layers},
        "concessionKm": facts.concession_within_km,
        "referenceDate": facts.reference_date,
        "years": list(facts.incident_years) if facts.incident_years else None,
        "t": _strings(lang),
    }
    m.add_child(_Start(config, overlays, outside, control))

    root = m.get_root()
    root.html.add_child(Element(_legend(definition, lang, facts, _)))
    if "incidents" in layers and facts.incident_years and years:
        root.html.add_child(Element(_time_filter(facts.incident_years, years, _)))
    if embed:
        root.html.add_child(
            Element(
                f'<a class="full-map" href="{page_url}?lang={lang}" target="_blank" '
                f'rel="noopener">{html.escape(_("View larger map"))}</a>'
            )
        )
    oembed = f"{base}oembed?" + urlencode({"url": f"{page_url}?lang={lang}", "format": "json"})
    root.header.add_child(
        Element(
            f"<title>{html.escape(title)}</title>"
            f'<meta name="description" content="{html.escape(definition.description.get(lang))}">'
            f'<link rel="alternate" type="application/json+oembed" href="{html.escape(oembed)}" '
            f'title="{html.escape(title)}">'
            f'<link rel="icon" href="{base}favicon.ico">'
        )
    )
    _stable_names(root)
    page = root.render()
    # Folium's viewport forbids pinch zoom; people with low vision need it.
    page = re.sub(
        r'<meta name="viewport"[^>]*>',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        page,
        count=1,
    )
    return page.replace("<html>", f'<html lang="{lang}">', 1)
