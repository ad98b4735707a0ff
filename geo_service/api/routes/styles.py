"""Map styles for other clients: ``/styles`` (every map's), ``/styles/{map_id}`` (a MapLibre
style, or ``f=html``: the map drawn from it by MapLibre GL JS), ``/styles/{map_id}/{layer}.qml``
(a layer's QGIS style) and the style's sprite (``/styles/sprite[@2x].json|png``).

Styles hold drawing rules, never data: every caller gets the same ones, and their sources are
the service's tiles, which answer as the caller may see.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request, Response

from geo_service.api.caching import SHORT, conditional
from geo_service.api.deps import AccessDep, BuildDep
from geo_service.api.drawings import layer_definitions, map_definition, map_definitions
from geo_service.api.links import base_url, link
from geo_service.api.params import refuse_unknown
from geo_service.api.routes.maps import HTML, Lang, _facts
from geo_service.errors import NotFoundError
from geo_service.maps.assets import asset_version
from geo_service.maps.i18n import choose_language, translator
from geo_service.maps.layers import LayerDefinition, definitions
from geo_service.maps.page import NO_DATA
from geo_service.render.features import negotiate
from geo_service.render.templates import render
from geo_service.styles.maplibre import style_document
from geo_service.styles.qml import POINT, POLYGON, cells_qml, layer_qml
from geo_service.styles.sprite import sprite

router = APIRouter(tags=["styles"])

#: A MapLibre (Mapbox GL) style document, as OGC API – Styles names it.
STYLE = "application/vnd.mapbox.style+json"
#: A QGIS layer style, as OGC API – Styles names it.
QML = "application/vnd.qgis.qml"
JSON = "application/json"
PNG = "image/png"
#: The preview page's script (``maps/static``, served as ``riskmap/…``).
PREVIEW_SCRIPT = "style_preview.js"
Format = Annotated[
    str | None,
    Query(description="json (a MapLibre style) or html (the map drawn from it); else Accept."),
]


def _vector_layers(request: Request, build: BuildDep, map_id: str) -> dict[str, str]:
    """The layers of a map the build holds as features, those with a QGIS style, each with
    the layer whose definition draws it: itself, or for an areas layer (its restricted rows
    as cells, ``incident_areas``) the layer it holds the restricted rows of."""
    styles = layer_definitions(request)
    out: dict[str, str] = {}
    for x in map_definition(request, map_id).layers:
        meta = build.catalog.layers.get(x)
        if meta is None or meta.kind == "raster" or styles[x].draw in ("surface", "raster"):
            continue
        out[x] = x
        if meta.areas is not None and meta.areas in build.catalog.layers:
            out[meta.areas] = x
    return out


def _qml_name(
    build: BuildDep, styles: dict[str, LayerDefinition], layer: str, of: str, lang: str
) -> str:
    """A QGIS style's name on the preview page: its layer's name, or its areas layer's
    title."""
    if layer == of:
        return styles[layer].name.get(lang)
    return translator(lang)(build.catalog.layers[layer].title)


@router.get("/styles", summary="Map styles")
def styles_index(
    request: Request, build: BuildDep, access: AccessDep, lang: Lang = None
) -> Response:
    """Every map's style: MapLibre (JSON), its preview (HTML) and a QGIS style per layer."""
    refuse_unknown(request.query_params.keys(), {"lang"})
    base = base_url(request)
    lang = choose_language(lang, request.headers.get("accept-language"))

    def body() -> bytes:
        out = []
        for map_id, definition in map_definitions(request).items():
            here = f"{base}styles/{map_id}"
            links = [
                link(here, "stylesheet", STYLE, "MapLibre"),
                link(f"{here}?f=html", "preview", "text/html", "MapLibre GL JS"),
            ]
            links += [
                link(f"{here}/{layer}.qml", "stylesheet", QML, f"QGIS: {layer}")
                for layer in _vector_layers(request, build, map_id)
            ]
            out.append({"id": map_id, "title": definition.title.get(lang), "links": links})
        here = link(f"{base}styles", "self", JSON, "Map styles")
        return orjson.dumps({"styles": out, "links": [here]})

    return conditional(request, build.build_id, access, body, JSON, SHORT)


@cache
def _sprite(maps_file: str, ratio: int) -> tuple[bytes, bytes]:
    """The sprite's index and picture for the definitions beside a maps file, made once."""
    index, picture = sprite(definitions(Path(maps_file)), ratio)
    return orjson.dumps(index), picture


def _sprite_part(
    request: Request, build: BuildDep, access: AccessDep, ratio: int, png: bool
) -> Response:
    refuse_unknown(request.query_params.keys(), ())
    index, picture = _sprite(str(request.app.state.settings.maps_file), ratio)
    if png:
        return conditional(request, build.build_id, access, lambda: picture, PNG, SHORT)
    return conditional(request, build.build_id, access, lambda: index, JSON, SHORT)


@router.get("/styles/sprite.json", summary="Sprite index of the styles")
def sprite_json(request: Request, build: BuildDep, access: AccessDep) -> Response:
    """Where each icon of the styles lies in the sprite's picture."""
    return _sprite_part(request, build, access, 1, png=False)


@router.get("/styles/sprite.png", summary="Sprite of the styles")
def sprite_png(request: Request, build: BuildDep, access: AccessDep) -> Response:
    """The icons of the styles (mine sites, dams, …), side by side."""
    return _sprite_part(request, build, access, 1, png=True)


@router.get("/styles/sprite@2x.json", summary="Sprite index of the styles, high density")
def sprite_json_2x(request: Request, build: BuildDep, access: AccessDep) -> Response:
    """The sprite's index for screens of two device pixels per CSS pixel."""
    return _sprite_part(request, build, access, 2, png=False)


@router.get("/styles/sprite@2x.png", summary="Sprite of the styles, high density")
def sprite_png_2x(request: Request, build: BuildDep, access: AccessDep) -> Response:
    """The sprite's icons at twice the size, for high-density screens."""
    return _sprite_part(request, build, access, 2, png=True)


@router.get("/styles/{map_id}", summary="A map's MapLibre style")
def map_style(
    map_id: str,
    request: Request,
    build: BuildDep,
    access: AccessDep,
    f: Format = None,
    lang: Lang = None,
) -> Response:
    """The map as a MapLibre style (version 8): the offline basemap, then each layer from its
    TileJSON, drawn as the map page draws it; ``f=html``: the map drawn from this style by
    MapLibre GL JS, with each layer's QGIS style."""
    refuse_unknown(request.query_params.keys(), {"f", "lang"})
    fmt = negotiate(f, request.headers.get("accept"), allowed=("json", "html"))
    definition = map_definition(request, map_id)
    base = base_url(request)
    lang = choose_language(lang, request.headers.get("accept-language"))
    styles = layer_definitions(request)
    if fmt.key == "html":
        here = f"{base}styles/{map_id}"
        layers = _vector_layers(request, build, map_id)

        def page() -> bytes:
            return render(
                "styles/preview.html",
                lang=lang,
                base=base,
                here=str(request.url),
                map_id=map_id,
                title=definition.title.get(lang),
                style_url=f"{here}?lang={lang}",
                script=f"riskmap/{PREVIEW_SCRIPT}?v={asset_version(PREVIEW_SCRIPT)}",
                qml=[
                    (_qml_name(build, styles, x, of, lang), f"{here}/{x}.qml?lang={lang}")
                    for x, of in layers.items()
                ],
            )

        return conditional(request, build.build_id, access, page, HTML, SHORT)
    thresholds = _facts(request, build, access).thresholds

    def body() -> bytes:
        doc = style_document(definition, styles, set(build.catalog.layers), base, lang, thresholds)
        return orjson.dumps(doc)

    return conditional(request, build.build_id, access, body, STYLE, SHORT)


@router.get("/styles/{map_id}/{layer}.qml", summary="A layer's QGIS style")
def layer_style(
    map_id: str, layer: str, request: Request, build: BuildDep, access: AccessDep, lang: Lang = None
) -> Response:
    """A layer of the map as a QGIS style (QML): its classes, colours and symbol, for the
    layer QGIS reads from this API or a download (Layer Properties → Symbology → Style →
    Load Style)."""
    refuse_unknown(request.query_params.keys(), {"lang"})
    layers = _vector_layers(request, build, map_id)
    if layer not in layers:
        raise NotFoundError(
            f"no QGIS style for '{layer}' on map '{map_id}'; its layers with one are "
            f"{', '.join(layers) or 'none'}"
        )
    style: LayerDefinition = layer_definitions(request)[layers[layer]]
    lang = choose_language(lang, request.headers.get("accept-language"))
    geometry = POINT if "Point" in build.catalog.layers[layer].geometry_types else POLYGON
    thresholds = _facts(request, build, access).thresholds

    def body() -> bytes:
        if layers[layer] != layer:  # the cells of a layer's restricted rows
            return cells_qml(style, lang, translator(lang)(NO_DATA), thresholds)
        return layer_qml(style, geometry, lang, translator(lang)(NO_DATA))

    headers = {"Content-Disposition": f'inline; filename="{layer}.qml"'}
    return conditional(request, build.build_id, access, body, QML, SHORT, headers)
