"""The MapLibre style's sprite: every icon the maps draw, in one PNG and its JSON index.

A layer whose symbol is not a circle (mine sites' diamonds, dams' triangles, squares) is drawn
by MapLibre from an image: one per class colour of the layer, one for features of no class,
and for dams the same with a failure's heavy outline. The images are the page's symbols
(``render/symbols.py``) in the definition's size, colours and outline, drawn four times larger
and reduced, so their edges are smooth; ``@2x`` sprites are drawn at twice the size.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from dataclasses import dataclass

import shapely
from PIL import Image, ImageDraw

from geo_service.maps.layers import LayerDefinition
from geo_service.render import symbols
from geo_service.styles.rules import (
    FAILED_OUTLINE,
    ICON_DRAWS,
    ICON_RADIUS,
    classes,
    icon_stroke,
    other_colour,
)

#: Name of the image of features of none of a layer's classes, and of an unclassed layer.
OTHER = "other"
#: Suffix of the images of dams where a failure is recorded.
FAILED = "failed"
#: Icons are drawn this many times larger, then reduced.
SUPERSAMPLE = 4
#: SVG's default limit on a mitred corner's length, in outline widths.
MITRE_LIMIT = 4.0


@dataclass(frozen=True)
class Icon:
    """One image of the sprite: a symbol, its size in CSS pixels, fill and outline."""

    name: str
    symbol: str
    size: int
    fill: str
    outline: str
    stroke: float


def icon_name(layer: str, key: str, failed: bool = False) -> str:
    """The sprite's name of a layer's image for a class (or ``OTHER``)."""
    return f"{layer}/{key}" + (f"/{FAILED}" if failed else "")


def drawn_as_icons(style: LayerDefinition) -> bool:
    """Whether the layer's points are drawn as images of the sprite."""
    return style.draw in ICON_DRAWS and style.symbol != "circle"


def icons(styles: Mapping[str, LayerDefinition]) -> list[Icon]:
    """Every image the definitions need, in their order."""
    out = []
    for style in styles.values():
        if not drawn_as_icons(style):
            continue
        fills = [*classes(style), (OTHER, other_colour(style))]
        for key, fill in fills:
            stroke = icon_stroke(style)
            out.append(
                Icon(
                    icon_name(style.id, key), style.symbol, style.size, fill, style.outline, stroke
                )
            )
            if style.draw == "dams":
                colour, width = FAILED_OUTLINE
                out.append(
                    Icon(
                        icon_name(style.id, key, True),
                        style.symbol,
                        style.size,
                        fill,
                        colour,
                        width,
                    )
                )
    return out


def _image(icon: Icon, ratio: int) -> Image.Image:
    """One icon at ``ratio`` device pixels per CSS pixel, its outline within the image: the
    symbol grown by half the outline in the outline's colour, shrunk by half in the fill's
    (mitred corners, as SVG draws them)."""
    pad = math.ceil(icon.stroke)
    side = (icon.size + 2 * pad) * ratio
    k = SUPERSAMPLE * ratio
    big = Image.new("RGBA", (side * SUPERSAMPLE, side * SUPERSAMPLE), (0, 0, 0, 0))
    draw = ImageDraw.Draw(big)
    centre = side * SUPERSAMPLE / 2
    r = icon.size * ICON_RADIUS * k
    half = icon.stroke * k / 2
    polygon = symbols.outline(icon.symbol, centre, centre, r)
    if polygon is None:
        for grow, colour in ((half, icon.outline), (-half, icon.fill)):
            draw.ellipse(
                (centre - r - grow, centre - r - grow, centre + r + grow, centre + r + grow),
                fill=colour,
            )
    else:
        shape = shapely.Polygon(polygon)
        for grow, colour in ((half, icon.outline), (-half, icon.fill)):
            grown = shape.buffer(grow, join_style="mitre", mitre_limit=MITRE_LIMIT)
            draw.polygon(list(grown.exterior.coords), fill=colour)
    return big.resize((side, side), Image.Resampling.LANCZOS)


def sprite(styles: Mapping[str, LayerDefinition], ratio: int = 1) -> tuple[dict, bytes]:
    """The sprite's index (name → x, y, width, height, pixelRatio) and its PNG, the images
    side by side."""
    images = [(icon.name, _image(icon, ratio)) for icon in icons(styles)]
    width = max(1, sum(image.width for _, image in images))
    height = max([1, *(image.height for _, image in images)])
    sheet = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    index: dict[str, dict[str, int]] = {}
    x = 0
    for name, image in images:
        sheet.paste(image, (x, 0))
        index[name] = {
            "x": x,
            "y": 0,
            "width": image.width,
            "height": image.height,
            "pixelRatio": ratio,
        }
        x += image.width
    out = io.BytesIO()
    sheet.save(out, format="PNG", optimize=True)
    return index, out.getvalue()
