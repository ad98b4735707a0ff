"""Raster tiles: the risk surface through a colour-blind-safe colour map, PNG with alpha;
people per cell of a population grid through a grey scale of their own (``people``).

The colour map is cividis (Nuñez, Anderton & Renslow 2018), designed to read the same with
the common colour-vision deficiencies and in greyscale: dark blue for a score of 0, yellow for
1. Cells with no value are transparent, so the basemap shows where the surface says nothing.
Low scores are drawn lighter (partly transparent, from ``LOW_ALPHA`` at 0 to opaque at
``OPAQUE_FROM``): a country searched and found quiet stays readable under its basemap, and
is still told apart from no data, which is fully transparent.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
from PIL import Image
from rio_tiler.colormap import cmap
from rio_tiler.models import ImageData

from geo_service.store.raster import TILE_SIZE

COLORMAP_NAME = "cividis"


#: zlib level of the PNGs: 1 is the fastest, and risk tiles are smooth, so they stay small.
PNG_LEVEL = 1


@cache
def colormap() -> dict[int, tuple[int, int, int, int]]:
    """Value 0–255 → RGBA."""
    return {int(k): tuple(int(c) for c in v) for k, v in cmap.get(COLORMAP_NAME).items()}


#: Palette index of transparent pixels; scores use 0 … TRANSPARENT − 1.
TRANSPARENT = 255
#: Opacity of a score of 0, rising linearly to opaque at the score OPAQUE_FROM (0–1).
LOW_ALPHA = 0.4
OPAQUE_FROM = 0.25


@cache
def _alpha() -> bytes:
    """Per palette index, its opacity (the PNG's tRNS chunk): see ``LOW_ALPHA``."""
    score = np.arange(TRANSPARENT) / (TRANSPARENT - 1)
    alpha = LOW_ALPHA + (1.0 - LOW_ALPHA) * np.clip(score / OPAQUE_FROM, 0.0, 1.0)
    return bytes(np.rint(alpha * 255).astype(np.uint8)) + b"\x00"


@cache
def _palette() -> bytes:
    """Cividis at 255 levels (index i ≈ score i/254) plus the transparent index, as RGB bytes."""
    cm = colormap()
    rgb = [cm[int(round(i * 255 / (TRANSPARENT - 1)))][:3] for i in range(TRANSPARENT)]
    return bytes(c for colour in [*rgb, (0, 0, 0)] for c in colour)


def render(image: ImageData) -> bytes:
    """A tile of scores 0–1 as a paletted PNG, nodata transparent.

    One byte a pixel through a 256-entry palette (255 score levels and a transparent one):
    a quarter of the data an RGBA tile compresses, so faster to write and smaller to send,
    for a colour step of 1/254 of the score.
    """
    array = image.array
    values = np.ma.getdata(array)[0]
    masked = np.ma.getmaskarray(array)[0] | ~np.isfinite(values)
    with np.errstate(invalid="ignore"):
        scaled = np.clip(np.nan_to_num(values), 0.0, 1.0) * (TRANSPARENT - 1)
    index = np.rint(scaled).astype(np.uint8)
    index[masked] = TRANSPARENT
    tile = Image.fromarray(index, "P")
    tile.putpalette(_palette())
    buffer = io.BytesIO()
    tile.save(buffer, format="PNG", compress_level=PNG_LEVEL, transparency=_alpha())
    return buffer.getvalue()


@cache
def empty_tile() -> bytes:
    """A fully transparent tile (outside the surface)."""
    rgba = np.zeros((TILE_SIZE, TILE_SIZE, 4), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG", compress_level=9)
    return buffer.getvalue()


def alpha(score: float) -> float:
    """The opacity a score is drawn with (0–1), as the tiles draw it."""
    return LOW_ALPHA + (1.0 - LOW_ALPHA) * min(max(score / OPAQUE_FROM, 0.0), 1.0)


def legend(stops: int = 11) -> list[dict[str, object]]:
    """Scores and their colours, for a legend drawn by the client."""
    cm = colormap()
    out = []
    for value in np.linspace(0.0, 1.0, stops):
        r, g, b, _ = cm[int(round(value * 255))]
        out.append({"value": round(float(value), 3), "color": f"#{r:02x}{g:02x}{b:02x}"})
    return out


def _lut_colour(value: float) -> tuple[int, int, int]:
    """The RGB of a score 0–1 (for legends drawn elsewhere)."""
    r, g, b, _ = colormap()[int(round(min(max(value, 0.0), 1.0) * 255))]
    return r, g, b


# --- people per cell ---------------------------------------------------------------------------

#: People per cell drawn from the lightest grey to the darkest, on a log scale: a village's
#: cells hold a few people, a town's hundreds.
PEOPLE_RANGE = (0.5, 500.0)
PEOPLE_COLORMAP = "greys"
#: Opacity of populated cells: the basemap stays readable under them.
PEOPLE_ALPHA = 0.8


def people_level(values: np.ndarray) -> np.ndarray:
    """People per cell → 0–1 on the log scale of ``PEOPLE_RANGE``."""
    lo, hi = (np.log10(v) for v in PEOPLE_RANGE)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.clip((np.log10(values) - lo) / (hi - lo), 0.0, 1.0)


@cache
def _people_palette() -> bytes:
    cm = {int(k): v for k, v in cmap.get(PEOPLE_COLORMAP).items()}
    # From a light grey (not white: a sparse cell must show on a pale basemap) to black.
    rgb = [cm[int(round(40 + i * 215 / (TRANSPARENT - 1)))][:3] for i in range(TRANSPARENT)]
    return bytes(c for colour in [*rgb, (0, 0, 0)] for c in colour)


def render_people(image: ImageData) -> bytes:
    """A tile of people per cell as a paletted PNG; no one (and nodata) transparent."""
    array = image.array
    values = np.ma.getdata(array)[0].astype(np.float64)
    masked = np.ma.getmaskarray(array)[0] | ~np.isfinite(values) | (values <= 0)
    index = np.rint(people_level(np.where(masked, 1.0, values)) * (TRANSPARENT - 1))
    index = index.astype(np.uint8)
    index[masked] = TRANSPARENT
    tile = Image.fromarray(index, "P")
    tile.putpalette(_people_palette())
    alpha = bytes([round(PEOPLE_ALPHA * 255)] * TRANSPARENT) + b"\x00"
    buffer = io.BytesIO()
    tile.save(buffer, format="PNG", compress_level=PNG_LEVEL, transparency=alpha)
    return buffer.getvalue()


def renderer(fields: dict[str, Any] | list[str]) -> Callable[[ImageData], bytes]:
    """How a raster of these fields is drawn: people per cell in their own scale, anything
    else as risk scores."""
    return render_people if "people" in fields else render


def people_colour(people: float) -> str:
    """The colour a cell of ``people`` is drawn in (for legends)."""
    level = float(people_level(np.array([people]))[0])
    palette = _people_palette()
    i = int(round(level * (TRANSPARENT - 1))) * 3
    return "#" + palette[i : i + 3].hex()
