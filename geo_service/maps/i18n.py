"""Languages of the pages: English, French and Portuguese, from gettext catalogs (Babel).

The language is ``?lang=`` when given, else the best match of the browser's
Accept-Language, else English. Catalogs are the ``.po`` files under ``locales/``, read and
compiled in memory once, so a translator edits one text file and nothing else. Words from the
data (place names, publishers) stay as published.
"""

from __future__ import annotations

import gettext
import io
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path

from babel import Locale, UnknownLocaleError, negotiate_locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LANGUAGES = ("en", "fr", "pt")
LOCALES = Path(__file__).parent / "locales"


@cache
def _translations(lang: str) -> gettext.NullTranslations:
    po = LOCALES / lang / "LC_MESSAGES" / "messages.po"
    if lang == "en" or not po.exists():
        return gettext.NullTranslations()
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=lang)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def translator(lang: str) -> Callable[[str], str]:
    """``_`` for one language (set in its typography)."""
    gettext_ = _translations(lang if lang in LANGUAGES else "en").gettext
    if lang != "fr":
        return gettext_
    return lambda message: typography(gettext_(message), lang)


def plural_translator(lang: str) -> Callable[[str, str, int], str]:
    """``ngettext`` for one language: the form of a text for a count."""
    ngettext = _translations(lang if lang in LANGUAGES else "en").ngettext
    if lang != "fr":
        return ngettext
    return lambda one, other, n: typography(ngettext(one, other, n), lang)


#: French sets a thin no-break space before ; ! ? and a no-break space before : (and inside
#: « »), so a line never breaks between a word and its mark.
_FRENCH = (
    (re.compile(r"[ \u00a0\u202f]*([;!?])(?=\s|$)"), "\u202f\\1"),
    (re.compile(r"(?<=\S)[ \u00a0\u202f]*:(?=\s|$)"), "\u00a0:"),
    (re.compile(r"«[ \u00a0]*"), "«\u00a0"),
    (re.compile(r"[ \u00a0]*»"), "\u00a0»"),
)


def typography(text: str, lang: str) -> str:
    """``text`` set in the typography of ``lang`` (French spacing; others as they are)."""
    if lang != "fr":
        return text
    for pattern, replacement in _FRENCH:
        text = pattern.sub(replacement, text)
    return text


def N_(message: str) -> str:  # noqa: N802 - the gettext convention extractors look for
    """Marks a text for translation where it is defined; ``_`` translates it where shown."""
    return message


def choose_language(lang: str | None, accept_language: str | None) -> str:
    """The page's language: ``lang`` if given (a regional tag such as fr-CA takes its language;
    one we do not speak gives English), else Accept-Language's best match, else English."""
    if lang:
        return lang if lang in LANGUAGES else _by_language([lang.replace("-", "_")]) or "en"
    wanted = []
    for part in (accept_language or "").split(","):
        tag, _, q = part.strip().partition(";q=")
        try:
            weight = float(q) if q else 1.0
        except ValueError:
            weight = 0.0
        if tag and weight > 0:
            wanted.append((weight, tag.replace("-", "_")))
    preferred = [tag for _, tag in sorted(wanted, key=lambda x: -x[0])]
    return negotiate_locale(preferred, LANGUAGES, sep="_") or _by_language(preferred) or "en"


def _by_language(preferred: list[str]) -> str | None:
    for tag in preferred:
        try:
            language = Locale.parse(tag, sep="_").language
        except (ValueError, TypeError, UnknownLocaleError):  # "a", "footprint", "x-y"
            continue
        if language in LANGUAGES:
            return language
    return None
