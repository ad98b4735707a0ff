"""A feature's properties as a person reads them: a label and a value for each field.

Labels are words in the page's language (the layer definitions' popup labels,
``layers/layers.toml``, and the fields only a full record shows); values are numbers written
the language's way, dates spelt out, the model's and publishers' fixed words translated (as
the definitions give them: factor names, classes, statuses; and the reasons of a
confidence), lists as lists and nothing shown as a dash. A field with no label shows its name; the data's own words (names,
publishers, descriptions) stay as published.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Iterable, Mapping
from functools import cache, lru_cache
from typing import Any, NamedTuple
from urllib.parse import quote

import numpy as np
from babel.dates import format_date
from babel.numbers import get_decimal_symbol

from geo_service.maps.i18n import N_, plural_translator, translator
from geo_service.maps.layers import LayerDefinition, definitions, words
from geo_service.maps.page import CONFIDENCE_REASONS, NO_DATA, country_names, decimal
from geo_service.store.catalog import BuildCatalog

#: The layers' titles as the build names them, so a page can say them in its language.
LAYER_TITLES = (
    N_("Mining concessions and mapped mining areas"),
    N_("Mine sites"),
    N_("Communities"),
    N_("Tailings dams"),
    N_("Incidents"),
    N_("Community risk scores"),
    N_("Tailings dams: run-out and indicative consequence"),
    N_("Concessions: incidents, people and dams around them"),
    N_("Risk aggregated to H3 cells (public)"),
    N_("Where each risk factor has evidence"),
    # The areas of the layers whose rows a source can mark restricted (``publication.AREAS``).
    N_("Restricted incidents, by area"),
    N_("Restricted communities, by area"),
    N_("Restricted concessions and mine sites, by area"),
    N_("Restricted tailings dams, by area"),
    N_("Restricted official units, by area"),
    N_("Risk scores of restricted communities, by area"),
    N_("Run-out of restricted tailings dams, by area"),
    N_("Surroundings of restricted concessions, by area"),
)
#: Fields whose values are the names of the risk model's factors.
FACTOR_FIELDS = ("factor", "factors_available", "factors_missing")
#: The factors, as the community layer's definition names them.
FACTOR_LAYER = "community_risk"
#: Fields holding ISO 3166 alpha-3 codes, shown as the countries' names.
COUNTRY_FIELDS = ("country", "countries", "countries_without_outline")
#: Units of numbers, by the end of a field's name.
UNITS = (("_km", N_("{value} km")), ("_m3", N_("{value} m³")), ("_m", N_("{value} m")))
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def record_labels(_: Callable[[str], str]) -> dict[str, str]:
    """The label of every field a full record can show and the definitions do not label, in
    one language."""
    return {
        "name": _("Name"),
        "community_id": _("Identifier"),
        "concession_id": _("Identifier"),
        "dam_id": _("Identifier"),
        "incident_id": _("Identifier"),
        "country": _("Country"),
        "countries": _("Countries"),
        "admin1": _("Province or state (code)"),
        "population": _("Population"),
        "source": _("Dataset"),
        "source_id": _("Identifier in the dataset"),
        "sensitivity": _("Sensitivity"),
        "qa_flags": _("Quality checks"),
        "date": _("Date"),
        "description": _("Description"),
        "source_url": _("Source"),
        "commodity": _("Commodity"),
        "licence_type": _("Licence type"),
        "granted": _("Granted"),
        "expires": _("Expires"),
        "footprint_radius_m": _("Footprint radius"),
        "mine": _("Mine"),
        "operator": _("Operator"),
        "score": _("Risk score, 0 to 100"),
        "risk_class": _("Risk level"),
        "confidence": _("Confidence level"),
        "confidence_reasons": _("Why the confidence is not high"),
        "factors_available": _("Factors with data here"),
        "factors_missing": _("Factors without data here"),
        "score_caveat": _("What the score rests on"),
        "concession_pressure_nearest_km": _("Nearest mine site"),
        "concession_pressure_nearest_is_site": _("Nearest mine known only as a point"),
        "tailings_exposure_dams_in_runout": _("Dams within run-out reach"),
        "tailings_exposure_dams_downstream": _("Dams upstream on the river"),
        "tailings_exposure_reach_probability": _("Chance a dam's flow reaches it"),
        "tailings_exposure_failures_in_reach": _("Recorded failures within reach"),
        "tailings_exposure_nearest_dam_km": _("Nearest dam"),
        "incident_intensity_incidents_in_reach": _("Incidents within reach"),
        "incident_intensity_fatalities_in_reach": _("Deaths in incidents within reach"),
        "incident_intensity_latest_incident": _("Latest incident"),
        "failed": _("Failure recorded"),
        "failure_date": _("Date of the failure"),
        "height_estimated": _("Height estimated"),
        "volume_estimated": _("Volume estimated"),
        "runout_p50_km": _("Median run-out"),
        "runout_p90_km": _("Run-out reached by one flow in ten"),
        "people_in_runout": _("People a failure would reach"),
        "incidents": _("Incidents"),
        "communities": _("Communities"),
        "mean_score": _("Mean score"),
        "max_score": _("Highest score"),
        "factor": _("Factor"),
        "note": _("Note"),
        "sources": _("Sources"),
        "h3": _("H3 cell"),
        "resolution": _("H3 resolution"),
        "count": _("Shown only by this area"),
    }


def factor_label(name: str, _: Callable[[str], str], factors: Mapping[str, str]) -> str | None:
    """The label of a factor's own field (``concession_pressure_raw`` …), or None;
    ``factors`` are the factors' names in the page's language."""
    for factor, factor_words in factors.items():
        if not name.startswith(factor + "_"):
            continue
        detail = name.removeprefix(factor + "_")
        within = re.fullmatch(r"within_(\d+)km", detail)
        if within:
            return _("Mine sites within {km} km").replace("{km}", within.group(1))
        template = {
            "raw": _("{factor}: value before scaling"),
            "normalised": _("{factor}: level, 0 to 1"),
            "contribution": _("{factor}: points of the score"),
            "evidence": _("{factor}: evidence"),
            "evidence_withheld": _("{factor}: evidence not shown publicly"),
        }.get(detail)
        if template is None:
            return None
        return template.replace("{factor}", factor_words[:1].upper() + factor_words[1:])
    return None


class Shown(NamedTuple):
    """A value as the page shows it: text (None for nothing), a link, or a list of values
    (``inline``: one line, separated by commas) or of labelled values."""

    text: str | None = None
    href: str | None = None
    items: tuple[Shown, ...] | None = None
    pairs: tuple[tuple[str, Shown], ...] | None = None
    inline: bool = False


#: Nothing: the page shows a dash.
NONE = Shown()
#: The types of numbers in records (numpy's, from the tables, and Python's).
NUMBERS = frozenset({int, float, np.int64, np.int32, np.float64, np.float32})


@lru_cache(maxsize=65536)
def number(value: float, lang: str) -> str:
    """A number as ``lang`` writes it, with as many decimals as it needs (at most 6)."""
    if not math.isfinite(value):
        return str(value)
    if value == int(value) and abs(value) < 1e15:
        return decimal(value, lang, 0)
    size = abs(value)
    digits = (
        1 if size >= 100 else 2 if size >= 1 else min(6, max(3, 2 - math.floor(math.log10(size))))
    )
    text = decimal(value, lang, digits)
    point = _decimal_symbol(lang)
    return text.rstrip("0").removesuffix(point) if point in text else text


@lru_cache(maxsize=4096)
def _country(code: str, lang: str) -> str | None:
    return country_names([code], lang).get(code)


@lru_cache(maxsize=65536)
def day(text: str, lang: str) -> str:
    """A date (``2009-02-20``) spelt out as ``lang`` writes it; any other text as it is."""
    try:
        return format_date(dt.date.fromisoformat(text), "long", locale=lang)
    except ValueError:
        return text


@cache
def _decimal_symbol(lang: str) -> str:
    return get_decimal_symbol(lang)


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    return False


class Formatter:
    """Values of fields in one language. ``evidence`` names the layer holding the features of
    each source, so that evidence ids link to their own records; ``datasets`` the title of
    each source, shown for its key."""

    def __init__(
        self,
        lang: str,
        base: str,
        evidence: Mapping[str, str] | None = None,
        datasets: Mapping[str, str] | None = None,
        styles: Mapping[str, LayerDefinition] | None = None,
    ) -> None:
        self.lang = lang
        self.base = base
        self.evidence = evidence or {}
        self.datasets = datasets or {}
        self._ = translator(lang)
        styles = definitions() if styles is None else styles
        labels, self.values = words(styles, lang)
        self.labels = record_labels(self._) | labels
        factor_layer = styles.get(FACTOR_LAYER)
        self.factors = (
            {k: v.get(lang) for k, v in factor_layer.fields.items()} if factor_layer else {}
        )
        for name in FACTOR_FIELDS:
            self.values[name] = self.factors
        # Confidence is said in the community classes' words; its reasons by the model's.
        self.values["confidence"] = self.values.get("risk_class", {})
        self.values["risk_class"] = self.values.get("risk_class", {}) | {NO_DATA: self._(NO_DATA)}
        self.values["reported_consequence"] = self.values.get("indicative_consequence_class", {})
        self.values["confidence_reasons"] = {k: self._(v) for k, v in CONFIDENCE_REASONS.items()}
        self._units: dict[str, str | None] = {}

    @classmethod
    def of_build(
        cls,
        lang: str,
        base: str,
        catalog: BuildCatalog,
        styles: Mapping[str, LayerDefinition] | None = None,
    ) -> Formatter:
        """A formatter that knows the sources and layers of a build's catalog (and, with
        ``styles``, the layer definitions the pages use)."""
        return cls(
            lang,
            base,
            evidence_layers(catalog, catalog.layers),
            {key: s.title for key, s in catalog.sources.items()},
            styles,
        )

    def label(self, name: str) -> str:
        """A field's label in this language: its words, else its name."""
        return self.labels.get(name) or factor_label(name, self._, self.factors) or name

    def show(self, name: str, value: Any, record: Mapping[str, Any] | None = None) -> Shown:
        """One field's value as the page shows it (every cell of a table of thousands of rows
        comes through here: the common types are looked at first)."""
        if name == "score_caveat" and record is not None:
            caveat = self._caveat(record)
            if caveat is not None:
                return Shown(caveat)
        if value is None:
            return NONE
        kind = type(value)
        if kind is str:
            return self._text(name, value)
        if kind is bool or kind is np.bool_:
            _ = self._
            return Shown(_("yes") if value else _("no"))
        if kind in NUMBERS:
            if value != value:  # NaN
                return NONE
            text = number(float(value), self.lang)
            unit = self._unit(name)
            return Shown(unit.replace("{value}", text) if unit else text)
        if kind is np.ndarray:
            value = value.tolist()
        if isinstance(value, dict):
            return Shown(
                pairs=tuple((self.label(str(k)), self.show(str(k), v)) for k, v in value.items())
            )
        if isinstance(value, list | tuple):
            if not value:
                return NONE
            if name.endswith("_evidence"):
                return Shown(items=tuple(self._evidence(str(v)) for v in value), inline=True)
            shown = tuple(self.show(name, v) for v in value)
            if any(s.items is not None or s.pairs is not None for s in shown):
                return Shown(items=shown)
            return Shown(items=shown, inline=True)
        if isinstance(value, int | float | np.integer | np.floating):
            return self.show(name, float(value))
        return self._text(name, str(value))

    def _text(self, name: str, text: str) -> Shown:
        known = self.values.get(name)
        if known is not None and text in known:
            return Shown(known[text])
        if name == "source" and text in self.datasets:
            return Shown(self.datasets[text])
        if name in COUNTRY_FIELDS:
            country = _country(text, self.lang)
            return Shown(f"{country} ({text})" if country else text)
        if DATE.fullmatch(text):
            return Shown(day(text, self.lang))
        if text.startswith(("https://", "http://")):
            return Shown(text, href=text)
        return Shown(text)

    def _unit(self, name: str) -> str | None:
        """``{value} km`` … for a field whose name ends in its unit, in this language."""
        if name not in self._units:
            unit = next((u for end, u in UNITS if name.endswith(end)), None)
            self._units[name] = self._(unit) if unit else None
        return self._units[name]

    def rows(self, record: Mapping[str, Any]) -> list[tuple[str, Shown]]:
        """Every field of a record, labelled, in the record's order."""
        return [(self.label(k), self.show(k, v, record)) for k, v in record.items()]

    def _evidence(self, fid: str) -> Shown:
        layer = self.evidence.get(fid.split(":", 1)[0])
        if layer is None:
            return Shown(fid)
        href = (
            f"{self.base}collections/{layer}/items/{quote(fid, safe=':')}?f=html&lang={self.lang}"
        )
        return Shown(fid, href=href)

    def _caveat(self, record: Mapping[str, Any]) -> str | None:
        """What a score rests on, in this language (the record says it in English)."""
        _ = self._
        available = _listed(record.get("factors_available"))
        missing = _listed(record.get("factors_missing"))
        if available is None or missing is None:
            return None
        if _missing(record.get("score")):
            return _("No factor has evidence here: no score.")
        if not missing:
            return None
        names = ", ".join(self.factors.get(f, f) for f in missing)
        based = (
            plural_translator(self.lang)(
                "Based on {n} of {total} factors. No data here for: {missing}.",
                "Based on {n} of {total} factors. No data here for: {missing}.",
                len(available),
            )
            .replace("{n}", number(len(available), self.lang))
            .replace("{total}", number(len(available) + len(missing), self.lang))
            .replace("{missing}", names)
        )
        return f"{based} {_('Absence of evidence is not absence of risk.')}"


def _listed(value: Any) -> list[str] | None:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return [str(v) for v in value] if isinstance(value, list | tuple) else None


def evidence_layers(catalog: BuildCatalog, layers: Iterable[str]) -> dict[str, str]:
    """Source key → the layer (of ``layers``) holding that source's features."""
    out: dict[str, str] = {}
    for key, source in catalog.sources.items():
        for layer_id in layers:
            meta = catalog.layers.get(layer_id)
            if meta is not None and meta.kind == source.kind and key in meta.sources:
                out[key] = layer_id
                break
    return out


def cell(shown: Shown) -> Shown | str | None:
    """A value for a table's cell: plain text as a string, nothing as None (quick to write
    for a table of thousands of rows), anything else as it is."""
    if shown.href is None and shown.items is None and shown.pairs is None:
        return shown.text
    return shown
