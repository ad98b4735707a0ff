"""A map as a MapLibre style (version 8): its layers drawn as the map page draws them.

The sources are the service's own: the offline basemap (``/basemap.json``, so the style draws
with no outside network), and each layer's TileJSON (raster tiles for the risk surface and
population grids, vector tiles for the rest, whose source layer is the layer's id). Each layer
of the map becomes the style layers its definition asks for — areas, dots, icons of the
sprite — in the page's colours and sizes, with the map's filters (``where``) and its hidden
layers hidden. Layers are stacked as the page stacks them: basemap, rasters, areas, rings,
dots, then icons (incidents' dots under the communities'). No text is drawn, so the style
needs no glyphs.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from geo_service.maps.definitions import MapDefinition
from geo_service.maps.layers import LayerDefinition
from geo_service.publication import areas_of
from geo_service.render.static_map import (
    OFFLINE_FILLS,
    OFFLINE_RIVER,
    OFFLINE_SEA,
    SURFACE_OPACITY,
    WORLD,
)
from geo_service.styles import rules
from geo_service.styles.sprite import FAILED, OTHER, drawn_as_icons, icon_name

Expr = list[Any]
#: A style layer, and the stack it belongs to (drawn in this order).
STACKS = ("basemap", "raster", "area", "ring", "under", "halo", "dot", "icon")
#: Points by themselves, and the groups the tiles make of them below a layer's detail zoom
#: (``store/groups.py``: ``cluster``, ``point_count``, the properties of the point shown).
POINTS: Expr = [
    "all",
    ["in", ["geometry-type"], ["literal", ["Point", "MultiPoint"]]],
    ["!", ["has", "cluster"]],
]
GROUPS: Expr = ["has", "cluster"]
POLYGONS: Expr = ["in", ["geometry-type"], ["literal", ["Polygon", "MultiPolygon"]]]
#: Metres per pixel at zoom 0 on the equator (256-pixel tiles).
METRES_PER_PIXEL = WORLD / 256
#: Zoom up to which rings in metres are scaled.
MAX_ZOOM = 24


def get(field: str) -> Expr:
    """A feature's property."""
    return ["get", field]


def class_colour(style: LayerDefinition, fallback: Any = None) -> Any:
    """A feature's fill: its class's colour, else ``fallback`` (the other colour)."""
    fallback = rules.other_colour(style) if fallback is None else fallback
    pairs = rules.classes(style)
    if not pairs or style.classes is None:
        return fallback
    return ["match", get(style.classes.field), *[x for pair in pairs for x in pair], fallback]


def score_colour(style: LayerDefinition, thresholds: tuple[float, ...], field: str) -> Expr:
    """The colour of a score's class (``rules.score_steps``), the other colour without one."""
    steps = rules.score_steps(style, thresholds)
    step: Expr = ["step", get(field), steps[0][1]]
    for bound, colour in steps[1:]:
        step += [bound, colour]
    return ["case", ["==", ["typeof", get(field)], "number"], step, rules.other_colour(style)]


def where(filters: Mapping[str, str]) -> list[Expr]:
    """The map's ``where`` filters on a layer (property = value, compared as text)."""
    return [["==", ["to-string", get(k)], str(v)] for k, v in sorted(filters.items())]


def _all(*parts: Expr) -> Expr:
    return ["all", *parts]


class Builder:
    """The style layers of one map, collected by stack."""

    def __init__(self, lang: str, hidden: Collection[str]) -> None:
        self.lang = lang
        self.hidden = set(hidden)
        self.stacks: dict[str, list[dict[str, Any]]] = {s: [] for s in STACKS}

    def add(
        self, stack: str, layer_id: str, kind: str, style: LayerDefinition | None, **spec: Any
    ) -> None:
        """A style layer named ``<layer>-<kind>``; a map's hidden layer is not shown."""
        out: dict[str, Any] = {"id": f"{layer_id}-{kind}", **spec}
        if style is not None:
            out["source"] = layer_id
            if out["type"] != "raster":
                out["source-layer"] = layer_id
            if style.min_zoom:
                out["minzoom"] = style.min_zoom
            out["metadata"] = {"riskmap:layer": layer_id, "riskmap:name": style.name.get(self.lang)}
            if layer_id in self.hidden:
                out.setdefault("layout", {})["visibility"] = "none"
        self.stacks[stack].append(out)

    def layers(self) -> list[dict[str, Any]]:
        """Every style layer, in drawing order."""
        return [layer for stack in STACKS for layer in self.stacks[stack]]


def _basemap(b: Builder) -> None:
    b.add(
        "basemap",
        "background",
        "sea",
        None,
        type="background",
        paint={"background-color": OFFLINE_SEA},
    )
    for kind, (fill, outline) in OFFLINE_FILLS.items():
        b.add(
            "basemap",
            "basemap",
            kind,
            None,
            type="fill",
            source="basemap",
            filter=["==", get("kind"), kind],
            paint={"fill-color": fill, "fill-outline-color": outline},
        )
    b.add(
        "basemap",
        "basemap",
        "river",
        None,
        type="line",
        source="basemap",
        filter=["==", get("kind"), "river"],
        paint={"line-color": OFFLINE_RIVER, "line-width": 1},
    )


def _area(b: Builder, style: LayerDefinition, fill: Any, filters: list[Expr]) -> None:
    """The layer's polygons: filled, outlined (dashed where the page dashes them)."""
    area = rules.AREAS[style.draw]
    filter_ = _all(POLYGONS, *filters)
    b.add(
        "area",
        style.id,
        "area",
        style,
        type="fill",
        filter=filter_,
        paint={"fill-color": fill, "fill-opacity": area.opacity},
    )
    outline = style.colour if area.outline_in_fill else style.outline
    line: dict[str, Any] = {"line-color": outline, "line-width": area.width}
    if area.dash is not None:
        line["line-dasharray"] = list(area.dash)
    b.add("area", style.id, "outline", style, type="line", filter=filter_, paint=line)


def _cells(b: Builder, style: LayerDefinition, fill: Any, areas: str | None) -> None:
    """The cells of the layer's restricted rows: its areas layer (``incident_areas``), a
    source of its own, drawn as the page draws them, shown and hidden with the layer. The
    map's filters do not apply: a cell has none of the rows' properties."""
    if areas is None:
        return
    first = len(b.stacks["area"])
    _area(b, style, fill, [])
    for layer in b.stacks["area"][first:]:
        layer["id"] = areas + layer["id"].removeprefix(style.id)
        layer["source"] = layer["source-layer"] = areas


def _groups(
    b: Builder, stack: str, style: LayerDefinition, colour: Any, filters: list[Expr]
) -> None:
    """A group of points: a disc in the colour of the point it shows (the highest score),
    larger as it stands for more, ringed in white like the pages' groups."""
    radius = rules.dot(style).radius
    b.add(
        stack,
        style.id,
        "group",
        style,
        type="circle",
        filter=_all(GROUPS, *filters),
        paint={
            "circle-radius": [
                "step",
                ["get", "point_count"],
                radius + 3,
                10,
                radius + 6,
                100,
                radius + 9,
                1000,
                radius + 12,
            ],
            "circle-color": colour,
            "circle-stroke-color": "#ffffff",
            "circle-stroke-width": 2,
            "circle-opacity": 0.9,
        },
    )


def _communities(
    b: Builder,
    style: LayerDefinition,
    thresholds: tuple[float, ...],
    filters: list[Expr],
    areas: str | None = None,
) -> None:
    """Dots in their class's colour over a white halo, hollow when the confidence is low,
    the other colour without a class; restricted rows as their cell, in the colour of its
    highest score's class."""
    _cells(b, style, score_colour(style, thresholds, rules.CELL_SCORE_FIELD), areas)
    dot = rules.dot(style)
    points = _all(POINTS, *filters)
    b.add(
        "halo",
        style.id,
        "halo",
        style,
        type="circle",
        filter=points,
        paint={
            "circle-radius": dot.radius + dot.halo,
            "circle-color": "#ffffff",
            "circle-opacity": dot.halo_opacity,
        },
    )
    known = [value for value, _ in rules.classes(style)]
    field = style.classes.field if style.classes else rules.CONFIDENCE_FIELD
    classed: Expr = ["in", get(field), ["literal", known]]
    no_data: Expr = ["!", classed]
    hollow: Any = (
        _all(classed, ["==", get(rules.CONFIDENCE_FIELD), rules.LOW_CONFIDENCE])
        if rules.hollow(style)
        else False
    )
    colour = class_colour(style)
    b.add(
        "dot",
        style.id,
        "dot",
        style,
        type="circle",
        filter=points,
        # Higher scores on top, as the page draws them.
        layout={"circle-sort-key": ["coalesce", get("score"), -1]},
        paint={
            "circle-radius": dot.radius,
            "circle-color": ["case", hollow, "#ffffff", colour],
            "circle-stroke-color": ["case", hollow, colour, style.outline],
            "circle-stroke-width": [
                "case",
                no_data,
                dot.no_data_width,
                hollow,
                dot.hollow_width,
                dot.outline_width,
            ],
        },
    )
    _groups(b, "dot", style, colour, filters)


def _incidents(
    b: Builder, style: LayerDefinition, filters: list[Expr], areas: str | None = None
) -> None:
    """Dots in the layer's colour, under the communities', in groups where the tiles group
    them (below the layer's detail zoom); reports public only by area as their cell."""
    _cells(b, style, style.colour, areas)
    dot = rules.dot(style)
    b.add(
        "under",
        style.id,
        "dot",
        style,
        type="circle",
        filter=_all(POINTS, *filters),
        paint={
            "circle-radius": dot.radius,
            "circle-color": class_colour(style),
            "circle-stroke-color": style.outline,
            "circle-stroke-width": dot.outline_width,
        },
    )
    _groups(b, "under", style, class_colour(style), filters)


def _footprints(b: Builder, style: LayerDefinition, filters: list[Expr]) -> None:
    """A ring of each mine site's footprint radius, in metres at the equator (the page's
    rings are true to the latitude: within 1 % up to 8°, 13 % smaller at 30°)."""
    metres = get(rules.FOOTPRINT_FIELD)
    b.add(
        "ring",
        style.id,
        "footprint",
        style,
        type="circle",
        filter=_all(POINTS, [">", ["coalesce", metres, 0], 0], *filters),
        paint={
            "circle-radius": [
                "interpolate",
                ["exponential", 2],
                ["zoom"],
                0,
                ["/", metres, METRES_PER_PIXEL],
                MAX_ZOOM,
                ["/", ["*", metres, 2**MAX_ZOOM], METRES_PER_PIXEL],
            ],
            "circle-opacity": 0,
            "circle-stroke-color": style.outline,
            "circle-stroke-width": rules.FOOTPRINT_WIDTH,
            "circle-pitch-alignment": "map",
        },
    )


def _points(b: Builder, style: LayerDefinition, filters: list[Expr]) -> None:
    """Points as the definition's symbol: an icon of the sprite, or a circle (a group of
    points: a disc)."""
    points = _all(POINTS, *filters)
    _groups(b, "dot", style, class_colour(style), filters)
    if not drawn_as_icons(style):
        b.add(
            "dot",
            style.id,
            "dot",
            style,
            type="circle",
            filter=points,
            paint={
                "circle-radius": rules.icon_size(style) / 2,
                "circle-color": class_colour(style),
                "circle-stroke-color": style.outline,
                "circle-stroke-width": rules.icon_stroke(style),
            },
        )
        return
    key: Any = OTHER
    if style.classes is not None:
        known = [value for value, _ in rules.classes(style)]
        field = get(style.classes.field)
        key = ["case", ["in", field, ["literal", known]], ["to-string", field], OTHER]
    image: Expr = ["concat", icon_name(style.id, ""), key]
    if style.draw == "dams":
        image.append(["case", ["==", get(rules.FAILED_FIELD), True], f"/{FAILED}", ""])
    b.add(
        "icon",
        style.id,
        "icon",
        style,
        type="symbol",
        filter=points,
        layout={
            "icon-image": image,
            "icon-allow-overlap": True,
            "icon-ignore-placement": True,
        },
    )


def _layer(
    b: Builder,
    style: LayerDefinition,
    thresholds: tuple[float, ...],
    filters: list[Expr],
    areas: str | None = None,
) -> None:
    """The style layers of one layer of the map (``areas``: its areas layer, if any)."""
    if style.draw in ("surface", "raster"):
        surface = style.draw == "surface"
        b.add(
            "raster",
            style.id,
            "raster",
            style,
            type="raster",
            paint={
                "raster-opacity": SURFACE_OPACITY if surface else 1.0,
                # Scores are smooth; counts of people per cell are not.
                "raster-resampling": "linear" if surface else "nearest",
            },
        )
    elif style.draw == "communities":
        _communities(b, style, thresholds, filters, areas)
    elif style.draw == "incidents":
        _incidents(b, style, filters, areas)
    else:
        _cells(b, style, rules.other_colour(style), areas)
        _area(b, style, class_colour(style), filters)
        if style.draw == "sites":
            _footprints(b, style, filters)
        _points(b, style, filters)


def style_document(
    definition: MapDefinition,
    styles: Mapping[str, LayerDefinition],
    present: Collection[str],
    base: str,
    lang: str,
    thresholds: tuple[float, ...],
) -> dict[str, Any]:
    """The MapLibre style of a map: its layers that the build holds (``present``), with
    URLs under ``base`` (the service's root, ending in '/'), named in ``lang``."""
    layers = [x for x in definition.layers if x in present]
    lat, lon, zoom = definition.first_view()
    sources: dict[str, Any] = {"basemap": {"type": "geojson", "data": f"{base}basemap.json"}}
    b = Builder(lang, definition.hidden)
    _basemap(b)
    for layer in layers:
        style = styles[layer]
        tilejson = f"{base}tiles/{layer}/tilejson.json"
        if style.draw in ("surface", "raster"):
            sources[layer] = {"type": "raster", "url": tilejson, "tileSize": 256}
        else:
            sources[layer] = {"type": "vector", "url": tilejson}
        # Its restricted rows as cells, from a source of their own (the same for every caller).
        areas = areas_of(layer) if style.draw not in ("surface", "raster") else None
        if areas is not None and areas in present:
            sources[areas] = {"type": "vector", "url": f"{base}tiles/{areas}/tilejson.json"}
        else:
            areas = None
        _layer(b, style, thresholds, where(definition.where.get(layer, {})), areas)
    return {
        "version": 8,
        "name": definition.title.get(lang),
        "metadata": {
            "riskmap:map": definition.id,
            "riskmap:lang": lang,
            "riskmap:bounds": list(definition.bounds) if definition.bounds else None,
            "riskmap:page": f"{base}maps/{definition.id}?lang={lang}",
        },
        "center": [lon, lat],
        "zoom": zoom,
        "sprite": f"{base}styles/sprite",
        "sources": sources,
        "layers": b.layers(),
    }
