"""Security headers and request limits, for every response in one place.

Every script and style the pages use is served by the service itself (``/assets``), so the
pages can carry a strict Content-Security-Policy: scripts only from this origin or inline
blocks whose SHA-256 the policy names (computed from the page as sent, so a cached page and
its policy always agree), no ``eval``, no plugins, and frames only where the operator allows
(``RISKMAP_FRAME_ANCESTORS`` for ``/embed`` pages, this site for the others). Images may also
come from the outside basemap's tile server, the one outside resource of a map. Style
attributes are allowed only on pages that have them or run a script (the maps: Leaflet places
things with them); the other pages (``geo_service/templates``) take their look from one
stylesheet and get no such allowance.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Inline ``<script>`` (without ``src``) and ``<style>`` blocks of a page.
INLINE = re.compile(
    rb"<(script|style)\b(?![^>]*\bsrc=)[^>]*>(.*?)</\1\s*>", re.IGNORECASE | re.DOTALL
)
#: What makes a page need style attributes: a script (which may set them) or one in its markup.
STYLED = re.compile(rb"<[a-z][^>]*\sstyle\s*=", re.IGNORECASE)
ALWAYS = [
    (b"x-content-type-options", b"nosniff"),
    # The outside basemap's servers ask for the origin of the page (OSM's tile policy).
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
]


def tile_origins(url: str) -> list[str]:
    """The origins an XYZ URL template loads from (``{s}`` subdomains as a wildcard)."""
    parts = urlsplit(url.replace("{s}", "a"))
    if not parts.scheme or not parts.netloc:
        return []
    host = parts.netloc
    origins = [f"{parts.scheme}://{host}"]
    if "{s}" in url:
        origins.append(f"{parts.scheme}://*.{host.split('.', 1)[1]}")
    return origins


def policy(html: bytes, frame_ancestors: Iterable[str], images: Iterable[str]) -> str:
    """The Content-Security-Policy of one HTML page."""
    hashes: dict[str, list[str]] = {"script": [], "style": []}
    for kind, body in INLINE.findall(html):
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        hashes[kind.decode().lower()].append(f"'sha256-{digest}'")
    scripts = " ".join(["'self'", *dict.fromkeys(hashes["script"])])
    styles = " ".join(["'self'", *dict.fromkeys(hashes["style"])])
    ancestors = " ".join(frame_ancestors) or "'none'"
    img = " ".join(["'self'", "data:", "blob:", *images])
    # A page with a style attribute in its markup needs them allowed (they cannot run code);
    # the map pages set styles from their script (CSSOM), which needs nothing.
    attributes = ["style-src-attr 'unsafe-inline'"] if STYLED.search(html) else []
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src {scripts}",
            f"style-src {styles}",
            *attributes,
            f"img-src {img}",
            "connect-src 'self'",
            "font-src 'self' data:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            f"frame-ancestors {ancestors}",
        ]
    )


def _refuse(status: int, code: str, description: str) -> tuple[Message, Message]:
    body = orjson.dumps({"code": code, "description": description})
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *ALWAYS,
        ],
    }
    return start, {"type": "http.response.body", "body": body, "more_body": False}


class SecurityHeaders:
    """Limits on what a request may send, and the security headers of every response."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_url_bytes: int,
        frame_ancestors: tuple[str, ...],
        images: list[str],
    ) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.max_url = max_url_bytes
        self.embed_ancestors = frame_ancestors
        self.images = images

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse oversized requests; add the headers (and a page's CSP) to the response."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = len(scope.get("raw_path") or scope["path"].encode()) + len(scope["query_string"])
        if length > self.max_url:
            for message in _refuse(
                414, "URITooLong", f"the URL is {length} bytes; at most {self.max_url} are read"
            ):
                await send(message)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            for message in _refuse(
                413,
                "ContentTooLarge",
                f"request bodies are limited to {self.max_body} bytes (this API only reads)",
            ):
                await send(message)
            return
        # Nothing here reads a body (GET and HEAD only): a declared length is all to check.
        ancestors = self.embed_ancestors if scope["path"].startswith("/embed/") else ("'self'",)
        held: Message | None = None
        chunks: list[bytes] = []

        async def with_headers(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0] not in dict(ALWAYS)]
                message = {**message, "headers": headers + ALWAYS}
                content_type = dict(headers).get(b"content-type", b"")
                if content_type.startswith(b"text/html"):
                    held = message  # its policy names the page's inline blocks: wait for them
                    return
                await send(message)
                return
            if held is not None and message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                page = b"".join(chunks)
                csp = policy(page, ancestors, self.images).encode()
                held["headers"] = [*held["headers"], (b"content-security-policy", csp)]
                await send(held)
                await send({"type": "http.response.body", "body": page, "more_body": False})
                return
            await send(message)

        await self.app(scope, receive, with_headers)
