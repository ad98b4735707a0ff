"""``/collections``: the layers of the current build, the seed of OGC API – Features."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from geo_service.api.deps import BuildDep

router = APIRouter(tags=["features"])


def collection_document(layer: dict[str, Any], build: dict[str, Any], base: str) -> dict[str, Any]:
    """One layer as an OGC API – Features collection, with licence and provenance."""
    sources = [build["sources"][key] for key in layer["sources"]]
    extent: dict[str, Any] = {}
    if layer.get("bounds"):
        extent["spatial"] = {
            "bbox": [layer["bounds"]],
            "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
        }
    if layer.get("time_extent"):
        extent["temporal"] = {
            "interval": [
                [f"{layer['time_extent'][0]}T00:00:00Z", f"{layer['time_extent'][1]}T00:00:00Z"]
            ],
            "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian",
        }
    return {
        "id": layer["id"],
        "title": layer["title"],
        "description": f"{layer['title']}: {layer['count']} features from "
        + "; ".join(s["title"] for s in sources),
        "itemType": "feature",
        "extent": extent,
        "crs": ["http://www.opengis.net/def/crs/OGC/1.3/CRS84"],
        "count": layer["count"],
        "geometryTypes": layer["geometry_types"],
        "license": "; ".join(dict.fromkeys(s["licence"] for s in sources)),
        "attribution": "; ".join(dict.fromkeys(s["attribution"] for s in sources)),
        "sources": [
            {
                "title": s["title"],
                "publisher": s["publisher"],
                "licence": s["licence"],
                "licence_url": s["licence_url"],
                "attribution": s["attribution"],
                "retrieved": s["retrieved"],
                "coverage": s["coverage"],
            }
            for s in sources
        ],
        "build_id": build["build_id"],
        "links": [
            {
                "href": f"{base}collections/{layer['id']}",
                "rel": "self",
                "type": "application/json",
                "title": layer["title"],
            }
        ],
    }


@router.get("/collections")
def collections(request: Request, build: BuildDep) -> dict[str, Any]:
    """Every layer of the current build with its extent, licence, attribution and build id."""
    base = str(request.base_url)
    return {
        # Rasters are served as tiles, not as feature collections.
        "collections": [
            collection_document(layer, build.catalog, base)
            for layer in build.catalog["layers"].values()
            if layer["kind"] != "raster"
        ],
        "build_id": build.build_id,
        "links": [{"href": f"{base}collections", "rel": "self", "type": "application/json"}],
    }
