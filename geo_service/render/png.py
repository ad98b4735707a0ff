"""Raster tiles: the risk surface through a colour-blind-safe colour map, PNG with alpha.

The colour map is cividis (Nuñez, Anderton & Renslow 2018), designed to read the same with
the common colour-vision deficiencies and in greyscale: dark blue for a score of 0, yellow for
1. Cells with no value are transparent, so the basemap shows where the surface says nothing.
"""

from __future__ import annotations

import io
from functools import cache

import numpy as np
from PIL import Image
from rio_tiler.colormap import cmap
from rio_tiler.models import ImageData

COLORMAP_NAME = "cividis"
TILE_SIZE = 256
#: zlib level of the PNGs: 1 is the fastest, and risk tiles are smooth, so they stay small.
PNG_LEVEL = 1


@cache
def colormap() -> dict[int, tuple[int, int, int, int]]:
    """Value 0–255 → RGBA."""
    return {int(k): tuple(int(c) for c in v) for k, v in cmap.get(COLORMAP_NAME).items()}


@cache
def _lut() -> np.ndarray:
    """The colour map as a (256, 4) uint8 table."""
    cm = colormap()
    return np.array([cm[i] for i in range(256)], dtype=np.uint8)


def render(image: ImageData) -> bytes:
    """A tile of scores 0–1 as PNG, nodata transparent.

    The colours are looked up in a table and the PNG is written by Pillow at a low zlib level:
    several times faster than a general-purpose renderer, for files a few percent larger.
    """
    array = image.array
    values = np.ma.getdata(array)[0]
    masked = np.ma.getmaskarray(array)[0] | ~np.isfinite(values)
    with np.errstate(invalid="ignore"):
        index = np.rint(np.clip(np.nan_to_num(values), 0.0, 1.0) * 255).astype(np.uint8)
    rgba = _lut()[index]
    rgba[masked, 3] = 0
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG", compress_level=PNG_LEVEL)
    return buffer.getvalue()


@cache
def empty_tile() -> bytes:
    """A fully transparent tile (outside the surface)."""
    rgba = np.zeros((TILE_SIZE, TILE_SIZE, 4), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG", compress_level=9)
    return buffer.getvalue()


def legend(stops: int = 11) -> list[dict[str, object]]:
    """Scores and their colours, for a legend drawn by the client."""
    cm = colormap()
    out = []
    for value in np.linspace(0.0, 1.0, stops):
        r, g, b, _ = cm[int(round(value * 255))]
        out.append({"value": round(float(value), 3), "color": f"#{r:02x}{g:02x}{b:02x}"})
    return out
