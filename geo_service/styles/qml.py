"""A layer as a QGIS style (QML): its classes, colours and symbol, for the layer QGIS reads
from this API (OGC API – Features) or from a download.

A classed layer gets a categorised renderer on its class field, one category per class and one
for every other value (no data); an unclassed layer a single symbol. Points are the
definition's symbol (QGIS's simple marker draws the same five shapes) in its size in pixels;
areas are filled as the page fills them. What the page adds is kept where QGIS can say it:
low confidence hollow and a recorded failure's heavy outline, as data-defined colours and
widths. The document is written by a Jinja2 template (``templates/styles/layer.qml``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from geo_service.maps.layers import LayerDefinition
from geo_service.maps.page import class_of
from geo_service.render.templates import environment
from geo_service.styles import rules

#: The QGIS version whose QML this is (QGIS reads styles of older versions).
QGIS_VERSION = "3.28.0-Firenze"
#: QGIS's geometry types of a layer.
POINT, POLYGON = 0, 2
#: A data-defined property whose value is an expression.
EXPRESSION = 3
#: The scale denominator of zoom 0 in QGIS (96 dpi, 256-pixel tiles); each zoom halves it.
ZOOM0_SCALE = 559_082_264.028


@dataclass(frozen=True)
class SymbolLayer:
    """One symbol layer: its class, its options, and data-defined properties (expressions)."""

    kind: str
    options: dict[str, str]
    defined: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Symbol:
    """A symbol of the renderer, named by its index."""

    name: str
    type: str
    layers: list[SymbolLayer]


@dataclass(frozen=True)
class Category:
    """A class of the categorised renderer (an empty value: every other value)."""

    value: str
    label: str
    symbol: str


def colour(hex_colour: str, opacity: float = 1.0) -> str:
    """A colour as QGIS writes it: ``r,g,b,a``."""
    return ",".join(str(c) for c in rules.rgba(hex_colour, opacity))


def _number(value: float) -> str:
    return f"{value:g}"


def quoted(name: str) -> str:
    """A field's name in a QGIS expression."""
    return '"' + name.replace('"', '""') + '"'


def _marker(style: LayerDefinition, fill: str, value: str | None) -> SymbolLayer:
    """A point: the definition's symbol, fill and outline (a dot's, for communities and
    incidents; an icon's, for the others)."""
    dotted = style.draw in ("communities", "incidents")
    dot = rules.dot(style)
    size = dot.radius * 2 if dotted else rules.icon_size(style)
    width = dot.outline_width if dotted else rules.icon_stroke(style)
    no_data = style.classes is not None and value is None
    if no_data and style.draw == "communities":
        width = dot.no_data_width
    options = {
        "angle": "0",
        "color": colour(fill),
        "horizontal_anchor_point": "1",
        "joinstyle": "miter",
        "name": style.symbol,
        "offset": "0,0",
        "offset_unit": "Pixel",
        "outline_color": colour(style.outline),
        "outline_style": "dash" if no_data and style.draw == "communities" else "solid",
        "outline_width": _number(width),
        "outline_width_unit": "Pixel",
        "scale_method": "diameter",
        "size": _number(size),
        "size_unit": "Pixel",
        "vertical_anchor_point": "1",
    }
    defined = {}
    if rules.hollow(style) and value is not None:
        low = f"{quoted(rules.CONFIDENCE_FIELD)} = '{rules.LOW_CONFIDENCE}'"
        defined = {
            "fillColor": f"if({low}, '#ffffff', '{fill}')",
            "outlineColor": f"if({low}, '{fill}', '{style.outline}')",
            "outlineWidth": f"if({low}, {_number(dot.hollow_width)}, {_number(width)})",
        }
    if style.draw == "dams":
        failed = f"coalesce({quoted(rules.FAILED_FIELD)}, false)"
        heavy, heavy_width = rules.FAILED_OUTLINE
        defined = {
            "outlineColor": f"if({failed}, '{heavy}', '{style.outline}')",
            "outlineWidth": f"if({failed}, {_number(heavy_width)}, {_number(width)})",
        }
    return SymbolLayer("SimpleMarker", options, defined)


def _fill(style: LayerDefinition, fill: str) -> SymbolLayer:
    """An area: filled as opaque as the page fills it, outlined (dashed where it dashes)."""
    area = rules.AREAS.get(style.draw, rules.AREAS["points"])
    outline = style.colour if area.outline_in_fill else style.outline
    return SymbolLayer(
        "SimpleFill",
        {
            "border_width_unit": "Pixel",
            "color": colour(fill, area.opacity),
            "joinstyle": "bevel",
            "offset": "0,0",
            "offset_unit": "Pixel",
            "outline_color": colour(outline),
            "outline_style": "dash" if area.dash else "solid",
            "outline_width": _number(area.width),
            "outline_width_unit": "Pixel",
            "style": "solid",
        },
    )


def _symbol(
    style: LayerDefinition, name: str, geometry: int, fill: str, value: str | None
) -> Symbol:
    if geometry == POLYGON:
        return Symbol(name, "fill", [_fill(style, fill)])
    return Symbol(name, "marker", [_marker(style, fill, value)])


def layer_qml(style: LayerDefinition, geometry: int, lang: str, no_data: str) -> bytes:
    """The QML of a layer whose features are points (``POINT``) or areas (``POLYGON``), its
    labels in ``lang``; ``no_data`` labels a feature of none of the classes."""
    pairs = rules.classes(style)
    symbols: list[Symbol] = []
    categories: list[Category] = []
    if style.classes is not None:
        for i, c in enumerate(style.classes.values):
            symbols.append(_symbol(style, str(i), geometry, c.colour, c.value))
            categories.append(Category(c.value, c.label.get(lang), str(i)))
        label = style.other.label.get(lang) if style.other is not None else no_data
        symbols.append(_symbol(style, str(len(pairs)), geometry, rules.other_colour(style), None))
        categories.append(Category("", label, str(len(pairs))))
    else:
        symbols.append(_symbol(style, "0", geometry, style.colour, None))
    return (
        environment()
        .get_template("styles/layer.qml")
        .render(
            version=QGIS_VERSION,
            name=style.name.get(lang),
            field=style.classes.field if style.classes else None,
            categories=categories,
            symbols=symbols,
            geometry=geometry,
            min_scale=_number(round(ZOOM0_SCALE / 2**style.min_zoom)) if style.min_zoom else None,
            expression=EXPRESSION,
        )
        .encode()
    )


def _score_class(thresholds: tuple[float, ...]) -> str:
    """A QGIS expression giving the class of a cell's highest score (``rules.score_steps``:
    the lower bound of each class), nothing without a score."""
    field = quoted(rules.CELL_SCORE_FIELD)
    steps = [(bound, class_of(bound, thresholds)) for bound in (0.0, *thresholds)]
    cases = " ".join(
        f"WHEN {field} >= {_number(bound)} THEN '{name}'" for bound, name in reversed(steps)
    )
    return f"CASE {cases} END"


def cells_qml(
    style: LayerDefinition, lang: str, no_data: str, thresholds: tuple[float, ...]
) -> bytes:
    """The QML of a layer's areas layer (its restricted rows as H3 cells): areas drawn as the
    page draws the layer's cells; for places, each in the colour of its highest score's
    class (a category per class, on that class as an expression)."""
    if style.draw != "communities" or style.classes is None:
        plain = style.model_copy(update={"classes": None, "colour": rules.other_colour(style)})
        return layer_qml(plain, POLYGON, lang, no_data)
    symbols: list[Symbol] = []
    categories: list[Category] = []
    for i, c in enumerate(style.classes.values):
        symbols.append(_symbol(style, str(i), POLYGON, c.colour, c.value))
        categories.append(Category(c.value, c.label.get(lang), str(i)))
    n = len(style.classes.values)
    symbols.append(_symbol(style, str(n), POLYGON, rules.other_colour(style), None))
    categories.append(Category("", no_data, str(n)))
    return (
        environment()
        .get_template("styles/layer.qml")
        .render(
            version=QGIS_VERSION,
            name=style.name.get(lang),
            field=_score_class(thresholds),
            categories=categories,
            symbols=symbols,
            geometry=POLYGON,
            min_scale=None,
            expression=EXPRESSION,
        )
        .encode()
    )
