"""What the page adds to a layer's definition when it draws it, for the other styles.

A definition gives a layer's classes, colours, symbol and size; the page's script and
stylesheet add the rest (``static/js/communities.js``, ``features.js``, ``incidents.js``,
``riskmap.css``): halos under community dots, hollow dots for low confidence, how opaque an
area is, how wide outlines are. They are written here once for the MapLibre style, the QGIS
style and the sprite, with the class of a score taken from ``class_of`` (the one place a
score gets its class).
"""

from __future__ import annotations

from dataclasses import dataclass

from geo_service.maps.layers import LayerDefinition
from geo_service.maps.page import class_of

#: The field of a community's confidence, and the value drawn hollow.
CONFIDENCE_FIELD = "confidence"
LOW_CONFIDENCE = "low"
#: A restricted community is public only as its cell, coloured by its cell's highest score.
CELL_SCORE_FIELD = "max_score"
#: A dam where a failure is recorded (a boolean field), drawn with a heavy black outline.
FAILED_FIELD = "failed"
FAILED_OUTLINE = ("#000000", 3.0)
#: A mine site's footprint radius in metres, drawn as a ring round it.
FOOTPRINT_FIELD = "footprint_radius_m"
FOOTPRINT_WIDTH = 1.0

#: Symbols drawn as an SVG path in a 16-unit box span its 7-unit radius (``symbols.svg_path``).
ICON_RADIUS = 7 / 16
#: An icon's outline width in the 16-unit box, by how the layer is drawn (``riskmap.css``).
ICON_STROKE = {"sites": 1.6, "points": 1.6, "dams": 1.3}
#: Layers drawn as icons (a symbol per point); communities and incidents are dots.
ICON_DRAWS = tuple(ICON_STROKE)


@dataclass(frozen=True)
class Dot:
    """A community or incident dot: radius (half the definition's size) and outlines."""

    radius: float
    outline_width: float
    #: Low confidence: a ring of the class's colour this wide round a white centre.
    hollow_width: float = 3.0
    #: No data: the other colour, its outline this wide (dashed on the page).
    no_data_width: float = 1.5
    #: A white ring under the dot keeps it apart from a surface of the same colour.
    halo: float = 1.5
    halo_opacity: float = 0.8


@dataclass(frozen=True)
class Area:
    """A polygon of a layer: fill opacity, outline width and dashes (in outline widths)."""

    opacity: float
    width: float
    dash: tuple[float, float] | None = None
    #: Outlined in the layer's outline colour, or (incidents' cells) in its fill colour.
    outline_in_fill: bool = False


#: Polygons by how their layer is drawn: restricted communities and incidents as their cell
#: (dashed), mapped mine footprints, official units.
AREAS = {
    "communities": Area(0.5, 1.2, (4, 3)),
    "incidents": Area(0.12, 1.5, (5, 4), outline_in_fill=True),
    "sites": Area(0.25, 1.5),
    "points": Area(0.35, 1.0),
    "dams": Area(0.35, 1.0),
}


def dot(style: LayerDefinition) -> Dot:
    """How a community's or an incident's dot is drawn."""
    return Dot(radius=style.size / 2, outline_width=1.5 if style.draw == "incidents" else 1.0)


def hollow(style: LayerDefinition) -> bool:
    """Whether low confidence is drawn hollow (the legend explains it: a ``hollow`` note)."""
    return style.draw == "communities" and any(n.mark == "hollow" for n in style.notes)


def icon_size(style: LayerDefinition) -> float:
    """The drawn diameter of an icon's symbol, in CSS pixels."""
    return style.size * 2 * ICON_RADIUS


def icon_stroke(style: LayerDefinition) -> float:
    """An icon's outline width, in CSS pixels."""
    return ICON_STROKE.get(style.draw, 1.6) * style.size / 16


def classes(style: LayerDefinition) -> list[tuple[str, str]]:
    """Each class's value and colour, lowest first (none for a layer in one colour)."""
    return [(c.value, c.colour) for c in style.classes.values] if style.classes else []


def other_colour(style: LayerDefinition) -> str:
    """The fill of a feature of none of the classes (or of every feature, unclassed)."""
    return style.colour_of(None)


def score_steps(style: LayerDefinition, thresholds: tuple[float, ...]) -> list[tuple[float, str]]:
    """Each score class's lower bound and colour, from 0: what ``class_of`` gives at each
    bound, coloured as the definition colours that class."""
    return [(bound, style.colour_of(class_of(bound, thresholds))) for bound in (0.0, *thresholds)]


def rgba(colour: str, opacity: float = 1.0) -> tuple[int, int, int, int]:
    """A ``#rrggbb`` colour and an opacity as 0–255 channels."""
    value = colour.lstrip("#")
    return (
        int(value[0:2], 16),
        int(value[2:4], 16),
        int(value[4:6], 16),
        round(255 * opacity),
    )


def tile_fields(style: LayerDefinition) -> list[str]:
    """The properties a style reads from a layer's vector tiles: what the page fetches to draw
    it, its classes' field, and what the drawing rules above read (confidence, score, a
    cell's score, footprint, failure, the reader's filter)."""
    fields = [*style.properties]
    if style.classes is not None:
        fields.append(style.classes.field)
    if style.filter is not None:
        fields.append(style.filter.field)
    fields += {
        "communities": [CONFIDENCE_FIELD, "score", CELL_SCORE_FIELD],
        "sites": [FOOTPRINT_FIELD],
        "dams": [FAILED_FIELD],
    }.get(style.draw, [])
    return list(dict.fromkeys(fields))
