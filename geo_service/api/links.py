"""Links of OGC API responses: absolute URLs from the request, with their relation and type."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from geo_service.render.features import FORMATS
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
        link(f"{here}?f=html", "alternate", "text/html", f"{title} (HTML)"),
        link(f"{here}/items", "items", GEOJSON, f"{title} (GeoJSON)"),
        link(f"{here}/items?f=html", "items", "text/html", f"{title} (HTML)"),
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
    request: Request, layer_id: str, page: FeaturePage, query: ItemQuery, fmt_key: str = "json"
) -> list[dict[str, str]]:
    """Self, next, prev and collection links of a page of items."""
    url = request.url
    here = FORMATS[fmt_key]
    out = [link(str(url), "self", here.media_type, "This page")]
    for fmt in FORMATS.values():
        if fmt.key != fmt_key:
            alt = url.include_query_params(f=fmt.key)
            out.append(link(str(alt), "alternate", fmt.media_type, f"This page as {fmt.key}"))
    if query.offset + len(page.features) < page.number_matched:
        nxt = url.include_query_params(offset=query.offset + query.limit, limit=query.limit)
        out.append(link(str(nxt), "next", here.media_type, "Next page"))
    if query.offset > 0:
        prev = url.include_query_params(
            offset=max(query.offset - query.limit, 0), limit=query.limit
        )
        out.append(link(str(prev), "prev", here.media_type, "Previous page"))
    out.append(
        link(f"{base_url(request)}collections/{layer_id}", "collection", JSON, "The collection")
    )
    return out
