"""Links of OGC API responses: absolute URLs from the request, with their relation and type."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from fastapi import Request

from geo_service.render.features import FORMATS
from geo_service.store.base import FeaturePage, ItemQuery
from geo_service.store.catalog import CatalogSource

GEOJSON = "application/geo+json"
JSON = "application/json"


def base_url(request: Request) -> str:
    """The service's root URL as the client reached it, ending in '/'."""
    return str(request.base_url)


def link(href: str, rel: str, media_type: str, title: str) -> dict[str, str]:
    """One link object."""
    return {"href": href, "rel": rel, "type": media_type, "title": title}


def collection_links(
    base: str, layer_id: str, title: str, sources: list[CatalogSource]
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
        # The same under the draft's name, which GDAL's OAPIF driver looks for.
        link(f"{here}/queryables", "queryables", "application/schema+json", "Queryables"),
        link(
            f"{here}/schema",
            "describedby",
            "application/schema+json",
            "A JSON Schema of the features: each property's type, unit and values",
        ),
        link(
            f"{here}/schema",
            "http://www.opengis.net/def/rel/ogc/1.0/schema",
            "application/schema+json",
            "The schema of the features",
        ),
    ]
    for s in sources:
        if s.licence_url:
            out.append(link(s.licence_url, "license", "text/html", s.licence))
    return out


class ParamsUrl:
    """The request's URL with some parameters set (replaced, appended after the others).

    The same result as Starlette's ``URL.include_query_params``, which parses, re-encodes and
    rebuilds the whole URL on every call: at 6–8 links a page that was most of a small page's
    time. Here the query is parsed and encoded once, a pair at a time.
    """

    def __init__(self, request: Request) -> None:
        url = request.url
        self._stem = f"{url.scheme}://{url.netloc}{url.path}?"
        pairs = parse_qsl(url.query, keep_blank_values=True)
        self._pairs = [(k, urlencode([(k, v)])) for k, v in pairs]

    def __call__(self, **params: object) -> str:
        """The URL with ``params`` set (a parameter set to None is removed)."""
        kept = [encoded for k, encoded in self._pairs if k not in params]
        given = [(k, v) for k, v in params.items() if v is not None]
        return self._stem + "&".join(kept + ([urlencode(given)] if given else []))


def items_links(
    request: Request, layer_id: str, page: FeaturePage, query: ItemQuery, fmt_key: str = "json"
) -> list[dict[str, str]]:
    """Self, next, prev and collection links of a page of items."""
    here = FORMATS[fmt_key]
    url_with = ParamsUrl(request)
    out = [link(str(request.url), "self", here.media_type, "This page")]
    for fmt in FORMATS.values():
        if fmt.key != fmt_key:
            alt = url_with(f=fmt.key)
            out.append(link(alt, "alternate", fmt.media_type, f"This page as {fmt.key}"))
    step = query.limit or max(len(page.features), 1)
    if query.offset + len(page.features) < page.number_matched and page.ids:
        # The next page starts after this one's last feature (keyset), and is numbered on.
        ordered = query.q is not None or bool(query.sortby)  # not in layer order: by offset
        keyset = {} if ordered else {"after": page.ids[-1]}
        nxt = url_with(offset=query.offset + step, limit=step, **keyset)
        out.append(link(nxt, "next", here.media_type, "Next page"))
    if query.offset > 0:
        prev = url_with(offset=max(query.offset - step, 0), limit=step, after=None)
        out.append(link(prev, "prev", here.media_type, "Previous page"))
    out.append(
        link(f"{base_url(request)}collections/{layer_id}", "collection", JSON, "The collection")
    )
    return out
