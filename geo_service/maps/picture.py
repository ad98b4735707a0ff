"""A map as a picture: its layers' marks and legend made from their definitions.

Each layer's features in the frame become marks in its definition's symbol and colours (with
what the page adds for some layers: halos and hollow dots for communities, footprints for
mine sites, the year filter for incidents, and the cells of restricted rows from the layer's
areas layer, for a caller who does not see the rows themselves); the legend has a heading per
layer and the same classes and lines as the page's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_service.maps.layers import LayerDefinition
from geo_service.maps.page import PEOPLE_STOPS, class_of, decimal
from geo_service.render import png, static_map
from geo_service.store.base import DATE_FIELDS, ItemQuery

#: Marks are drawn this much smaller than the page's symbols (a print is read closer).
SCALE = 0.45
#: The most populous communities of a picture whose names are written (those that fit).
TOWNS = 40


@dataclass(frozen=True)
class Drawn:
    """What one layer puts in the picture: its marks (and cells), and its legend lines."""

    marks: list[static_map.Marks | tuple[list[Any], list[str]]]
    legend: list[static_map.LegendItem]
    #: ISO alpha-3 codes of the countries of the features drawn (for the credits).
    countries: set[str]
    #: Town names to write, the most populous first.
    places: list[static_map.Label]


def layer_marks(
    style: LayerDefinition,
    frame: gpd.GeoDataFrame,
    thresholds: tuple[float, ...],
    years: tuple[int, int] | None,
    countries: set[str] | None = None,
    places: list[static_map.Label] | None = None,
    cells: gpd.GeoDataFrame | None = None,
) -> list[static_map.Marks | tuple[list[Any], list[str]]]:
    """The marks of a layer's rows in view (``frame``), under them the cells of its
    restricted rows in view (``cells``, from its areas layer); the countries of those rows
    are added to ``countries``."""
    if countries is not None and "country" in frame:
        countries.update(str(c) for c in frame["country"].dropna().unique())
    points = (frame.geom_type == "Point").to_numpy()
    shapes, rows = np.flatnonzero(~points), np.flatnonzero(points)
    out: list[static_map.Marks | tuple[list[Any], list[str]]] = []
    if cells is not None and len(cells):
        if "max_score" in cells:  # a cell of places in its highest score's class colour
            fills = [style.colour_of(class_of(v, thresholds)) for v in cells["max_score"]]
        else:
            fills = [style.colour_of(None)] * len(cells)
        out.append((list(cells.geometry), fills))
    if len(shapes):  # areas drawn in their class's colour (official units, footprints)
        field = style.classes.field if style.classes else None
        if field in frame:
            fills = [style.colour_of(v) for v in frame[field].iloc[shapes]]
        else:
            fills = [style.colour] * len(shapes)
        out.append((list(frame.geometry.iloc[shapes]), fills))
    date = next((f for f in DATE_FIELDS if f in frame), None)
    if style.draw == "incidents" and years is not None and date is not None:
        year = pd.to_datetime(frame[date].iloc[rows], utc=True).dt.year.to_numpy()
        rows = rows[(year >= years[0]) & (year <= years[1])]
    chosen = frame.iloc[rows]
    if style.draw == "communities" and "score" in chosen:
        chosen = chosen.sort_values("score", na_position="first")
    centre = chosen.geometry.representative_point()
    if places is not None and style.draw == "communities" and "population" in chosen:
        biggest = chosen["population"].fillna(0).to_numpy().argsort()[::-1][:TOWNS]
        places += [
            static_map.Label(float(centre.x.iloc[i]), float(centre.y.iloc[i]), str(name))
            for i, name in zip(biggest, chosen["name"].iloc[biggest], strict=True)
            if name
        ]
    field = style.classes.field if style.classes else None
    values = chosen[field].tolist() if field in chosen else [None] * len(chosen)
    fills = [style.colour_of(v) for v in values]
    known = {c.value for c in style.classes.values} if style.classes else set()
    other = [bool(known) and v not in known for v in values]
    kwargs: dict[str, Any] = {}
    if style.draw == "communities":
        low = (
            chosen["confidence"].eq("low").fillna(False).tolist() if "confidence" in chosen else []
        )
        kwargs = {
            "halo": "#ffffff",
            "dashed": other,
            "hollow": [not o and bool(h) for o, h in zip(other, low, strict=False)] or None,
        }
    if style.draw == "sites" and "footprint_radius_m" in chosen:
        kwargs["rings_m"] = chosen["footprint_radius_m"].fillna(0).tolist()
    out.append(
        static_map.Marks(
            centre.x.to_numpy(),
            centre.y.to_numpy(),
            fills,
            style.size * SCALE,
            outline=style.outline,
            shape=style.symbol,
            **kwargs,
        )
    )
    return out


def layer_legend(
    style: LayerDefinition,
    lang: str,
    ticks: list[str],
    cells: bool,
    years: tuple[int, int] | None = None,
) -> list[static_map.LegendItem]:
    """The legend lines of one layer: its heading (with the years shown, when filtered), its
    classes or its symbol, no data, and the notes a picture can draw (hollow dots, and the
    cells of rows shown only by their area)."""
    item = static_map.LegendItem
    heading = style.heading_of(lang)
    if style.draw == "surface":
        return [item(heading, heading=True, ramp=tuple(ticks))]
    if style.draw == "raster":  # people per cell, in the page legend's stops
        stops = [item(decimal(n, lang, 0), png.people_colour(n), "square") for n in PEOPLE_STOPS]
        return [item(heading, heading=True), *stops]
    if years is not None and style.draw == "incidents":
        heading = f"{heading}, {years[0]}–{years[1]}"
    lines = [item(heading, heading=True)]
    notes = list(style.notes)
    if style.classes is not None:
        lines += [item(c.label.get(lang), c.colour, style.symbol) for c in style.classes.values]
    else:  # its symbol, said by its first plain note (else its name)
        plain = next((n for n in notes if n.mark is None), None)
        label = plain.text.get(lang) if plain else style.name.get(lang)
        lines.append(item(label, style.colour, style.symbol))
        notes = [n for n in notes if n is not plain]
    if style.other is not None:
        lines.append(item(style.other.label.get(lang), style.other.colour, dashed=True))
    for note in notes:
        if note.mark == "hollow" and style.classes is not None:
            colour = style.classes.values[len(style.classes.values) // 2].colour
            lines.append(item(note.text.get(lang), colour, hollow=True))
        if note.mark in ("hex", "area") and cells:
            fill = style.classes.values[1].colour if style.classes else "#8a8a8a"
            lines.append(item(note.text.get(lang), fill, "hexagon"))
    return lines


def draw_layers(
    shown: list[str],
    styles: dict[str, LayerDefinition],
    frame_of: Callable[[str, ItemQuery], gpd.GeoDataFrame],
    query: ItemQuery,
    thresholds: tuple[float, ...],
    years: tuple[int, int] | None,
    lang: str,
    where: dict[str, dict[str, str]] | None = None,
    areas: dict[str, str] | None = None,
) -> Drawn:
    """Every shown layer's marks (in drawing order) and the legend of them all; ``where``:
    the map's filters per layer; ``areas``: the areas layer of each layer whose restricted
    rows are drawn as their cells (for a caller who does not see the rows)."""
    marks: list[static_map.Marks | tuple[list[Any], list[str]]] = []
    legend: list[static_map.LegendItem] = []
    countries: set[str] = set()
    places: list[static_map.Label] = []
    ticks = [decimal(v, lang, 0) for v in (0, *thresholds, 100)]
    for layer in shown:
        style = styles[layer]
        drawn = []
        if style.draw not in ("surface", "raster"):
            frame = frame_of(layer, replace(query, filters=(where or {}).get(layer, {})))
            area = (areas or {}).get(layer)
            restricted = frame_of(area, replace(query, filters={})) if area else None
            drawn = layer_marks(style, frame, thresholds, years, countries, places, restricted)
            marks += drawn
        cells = any(not isinstance(m, static_map.Marks) for m in drawn)
        legend += layer_legend(style, lang, ticks, cells, years)
    return Drawn(marks, legend, countries, places)
