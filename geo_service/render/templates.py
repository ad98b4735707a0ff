"""The HTML pages other than the map itself, from Jinja2 templates (``geo_service/templates``).

One environment, made once: autoescape on, and the i18n extension, so ``_("…")`` and
``{% trans %}`` in a template speak the language the page is rendered in (``lang`` in its
context) from the map pages' catalogs (``maps/locales``). Every page extends ``base.html``:
one layout, one stylesheet served as an asset, no inline style or script.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context
from jinja2.runtime import Context

from geo_service.maps.assets import asset_version
from geo_service.maps.i18n import LANGUAGES, plural_translator, translator

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
#: The pages' stylesheet, one of our own assets (``maps/static``, served as ``riskmap/…``).
STYLESHEET = "site.css"
#: Each language in its own words, for the language switch.
LANGUAGE_NAMES = {"en": "English", "fr": "Français", "pt": "Português"}
#: How the templates are read, for the environment and for extracting their texts (Babel).
OPTIONS = {"trim_blocks": "true", "lstrip_blocks": "true", "trimmed": "true", "silent": "false"}


@pass_context
def _gettext(context: Context, message: str) -> str:
    return translator(context.get("lang", "en"))(message)


@pass_context
def _ngettext(context: Context, singular: str, plural: str, n: int) -> str:
    return plural_translator(context.get("lang", "en"))(singular, plural, n)


def language_links(url: str, lang: str) -> list[dict[str, Any]]:
    """The same page in each language: its URL with ``lang`` replaced, the rest kept."""
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "lang"]
    return [
        {
            "code": code,
            "name": LANGUAGE_NAMES[code],
            "href": urlunsplit(parts._replace(query=urlencode([*kept, ("lang", code)]))),
            "current": code == lang,
        }
        for code in LANGUAGES
    ]


@cache
def environment() -> Environment:
    """The one environment of the pages."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.policies["ext.i18n.trimmed"] = True
    env.install_gettext_callables(_gettext, _ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.globals["language_links"] = language_links
    env.globals["stylesheet"] = f"riskmap/{STYLESHEET}?v={asset_version(STYLESHEET)}"
    return env


def render(name: str, **context: Any) -> bytes:
    """A page: the template ``name`` with ``context``, which holds at least ``lang`` (the
    page's language), ``base`` (the service's URL, ending in '/') and ``here`` (the page's
    own URL, for the language switch)."""
    return environment().get_template(name).render(**context).encode()
