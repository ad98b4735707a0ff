"""Links of OGC API responses: absolute URLs from the request, with their relation and type."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from geo_service.store.base import FeaturePage, ItemQuery

GEOJSON = "application/geo+json"
JSON = "application/json"


def base_url(request: Request) -> str:
    """The service's root URL as the client reached it, ending in '/'."""
    return str(request.base_url)


def link(href: str, rel: str, media_type: str, title: str) -> dict[str, str]:
    """One link object."""
    return {"href": href, "rel": rel, "type": media_type, "title": title}


def collection_links(
    base: str, layer_id: str, title: str, sources: list[dict[str, Any]]
) -> list[dict[str, str]]:
    """Self, items, queryables and licence links of a collection."""
    here = f"{base}collections/{layer_id}"
    out = [
        link(here, "self", JSON, title),
        link(f"{here}/items", "items", GEOJSON, f"{title} (GeoJSON)"),
        link(
            f"{here}/queryables",
            "http://www.opengis.net/def/rel/ogc/1.0/queryables",
            "application/schema+json",
            "Properties items can be filtered on",
        ),
    ]
    for s in sources:
        if s.get("licence_url"):
            out.append(link(s["licence_url"], "license", "text/html", s["licence"]))
    return out


def items_links(
    request: Request, layer_id: str, page: FeaturePage, query: ItemQuery
) -> list[dict[str, str]]:
    """Self, next, prev and collection links of a page of items."""
    url = request.url
    out = [link(str(url), "self", GEOJSON, "This page")]
    if query.offset + len(page.features) < page.number_matched:
        nxt = url.include_query_params(offset=query.offset + query.limit, limit=query.limit)
        out.append(link(str(nxt), "next", GEOJSON, "Next page"))
    if query.offset > 0:
        prev = url.include_query_params(
            offset=max(query.offset - query.limit, 0), limit=query.limit
        )
        out.append(link(str(prev), "prev", GEOJSON, "Previous page"))
    out.append(
        link(f"{base_url(request)}collections/{layer_id}", "collection", JSON, "The collection")
    )
    return out
