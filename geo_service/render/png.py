"""Raster tiles: the risk surface through a colour-blind-safe colour map, PNG with alpha.

The colour map is cividis (Nuñez, Anderton & Renslow 2018), designed to read the same with
the common colour-vision deficiencies and in greyscale: dark blue for a score of 0, yellow for
1. Cells with no value are transparent, so the basemap shows where the surface says nothing.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from rio_tiler.colormap import cmap
from rio_tiler.models import ImageData

COLORMAP_NAME = "cividis"
TILE_SIZE = 256


@cache
def colormap() -> dict[int, tuple[int, int, int, int]]:
    """Value 0–255 → RGBA."""
    return {int(k): tuple(int(c) for c in v) for k, v in cmap.get(COLORMAP_NAME).items()}


def render(image: ImageData) -> bytes:
    """A tile of scores 0–1 as PNG, nodata transparent."""
    with np.errstate(invalid="ignore"):  # NaN under the mask: never drawn
        scaled = image.rescale(in_range=((0.0, 1.0),))
        return scaled.render(img_format="PNG", colormap=colormap())


@cache
def empty_tile() -> bytes:
    """A fully transparent tile (outside the surface)."""
    data = np.ma.masked_all((1, TILE_SIZE, TILE_SIZE), dtype="uint8")
    return ImageData(data).render(img_format="PNG", colormap=colormap())


def legend(stops: int = 11) -> list[dict[str, object]]:
    """Scores and their colours, for a legend drawn by the client."""
    cm = colormap()
    out = []
    for value in np.linspace(0.0, 1.0, stops):
        r, g, b, _ = cm[int(round(value * 255))]
        out.append({"value": round(float(value), 3), "color": f"#{r:02x}{g:02x}{b:02x}"})
    return out
