"""Conditional GET: ETags named after the build, 304 before any work, Cache-Control by kind.

A response that depends on a build is the same bytes for the same build, request and access
level, so its ETag is derived from those alone and checked before the body is made: a client
revalidating a page it has costs one hash, and after a new build every ETag changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from fastapi import Request, Response

from geo_service.store.base import Access

#: Catalog-like documents (landing page, collections) change with every build: short.
SHORT = "public, max-age=60"
#: Feature pages and items: minutes, then revalidate (cheap: a 304).
ITEMS = "public, max-age=300"
#: Tiles of a build: long, then revalidate.
TILES = "public, max-age=86400"
#: Request headers an answer depends on.
VARY = "Accept, Accept-Language, Authorization"


def etag_for(request: Request, build_id: str, access: Access) -> str:
    """A weak ETag for this request's answer from this build at this access level."""
    key = f"{build_id}\n{access.value}\n{request.url.path}\n{request.url.query}\n"
    key += request.headers.get("accept", "") + "\n" + request.headers.get("accept-language", "")
    digest = hashlib.blake2b(key.encode(), digest_size=10).hexdigest()
    return f'W/"{build_id[:16]}-{digest}"'


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    # Weak comparison (RFC 9110 §13.1.2): W/ prefixes do not matter.
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in header.split(","))


def if_none_match(request: Request, etag: str) -> bool:
    """Whether the request's If-None-Match names ``etag`` (one not made by ``etag_for``)."""
    return _matches(request.headers.get("if-none-match"), etag)


def client_has(request: Request, build_id: str, access: Access) -> bool:
    """Whether the request's If-None-Match already names this response."""
    header = request.headers.get("if-none-match")
    return bool(header) and _matches(header, etag_for(request, build_id, access))


def conditional(
    request: Request,
    build_id: str,
    access: Access,
    body: Callable[[], bytes],
    media_type: str,
    cache_control: str,
    headers: dict[str, str] | None = None,
) -> Response:
    """The response, or 304 when the client already has it (the body is then never made)."""
    etag = etag_for(request, build_id, access)
    common = {
        "ETag": etag,
        # What a token holder sees must never sit in a shared cache that serves the public.
        "Cache-Control": cache_control
        if access is Access.anonymous
        else cache_control.replace("public", "private"),
        "X-Build-Id": build_id,
        # The answer depends on these request headers (format, language, who is asking).
        "Vary": VARY,
    }
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=common)
    return Response(body(), media_type=media_type, headers={**common, **(headers or {})})
