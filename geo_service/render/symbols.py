"""The symbols layers are drawn with, as one set of outlines for the page and the picture.

Each is a polygon in a unit box (centre 0, 0; radius 1; y down), or a circle: the page gets
it as an SVG path, the server-drawn picture as a polygon for Pillow.
"""

from __future__ import annotations

import math

SHAPES: dict[str, list[tuple[float, float]] | None] = {
    "circle": None,
    "triangle": [(0.0, -1.0), (1.0, 0.85), (-1.0, 0.85)],
    "diamond": [(0.0, -1.0), (1.0, 0.0), (0.0, 1.0), (-1.0, 0.0)],
    "square": [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)],
    "hexagon": [(math.cos(k * math.pi / 3), math.sin(k * math.pi / 3)) for k in range(6)],
}


def svg_path(symbol: str) -> str:
    """The symbol as an SVG path in a ``0 0 16 16`` box (a circle as two arcs)."""
    shape = SHAPES[symbol]
    if shape is None:
        return "M1 8a7 7 0 1 0 14 0a7 7 0 1 0 -14 0z"
    return (
        "M" + " ".join(f"{round(8 + 7 * x, 2):g} {round(8 + 7 * y, 2):g}" for x, y in shape) + "z"
    )


def outline(symbol: str, x: float, y: float, r: float) -> list[tuple[float, float]] | None:
    """The symbol's polygon centred on ``x, y`` with radius ``r`` (None for a circle)."""
    shape = SHAPES[symbol]
    return None if shape is None else [(x + r * px, y + r * py) for px, py in shape]
