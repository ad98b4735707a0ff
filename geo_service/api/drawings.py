"""How the service's maps draw their layers, read once per app from the maps file and the
``layers.toml`` beside it: for map pages, styles and vector tiles (what properties they need)."""

from __future__ import annotations

from pathlib import Path

from fastapi import Request

from geo_service.errors import NotFoundError
from geo_service.maps.definitions import MapDefinition, load_maps
from geo_service.maps.layers import LayerDefinition, definitions


def layer_definitions(request: Request) -> dict[str, LayerDefinition]:
    """The layer definitions (``layers.toml`` beside the maps file), read once."""
    return definitions(Path(request.app.state.settings.maps_file))


def map_definitions(request: Request) -> dict[str, MapDefinition]:
    """Every map of the maps file, read once."""
    cached = getattr(request.app.state, "maps", None)
    if cached is None:
        cached = load_maps(Path(request.app.state.settings.maps_file), layer_definitions(request))
        request.app.state.maps = cached
    return cached


def map_definition(request: Request, map_id: str) -> MapDefinition:
    """One map, or a 404 naming the maps there are."""
    definition = map_definitions(request).get(map_id)
    if definition is None:
        raise NotFoundError(f"no map '{map_id}'; maps are {', '.join(map_definitions(request))}")
    return definition
