"""A file served as it is: byte ranges (RFC 9110 §14) and HEAD without reading it.

Starlette's ``FileResponse`` answers ``Range`` (206 with ``Content-Range``, 416 past the end,
several ranges as ``multipart/byteranges``) and ``If-Range``. The app answers HEAD as GET
(``HeadAsGet``), which for a file would read every byte to send none: the middleware marks the
request, and a ``StoredFile`` answers it as HEAD, with its headers only.
"""

from __future__ import annotations

from starlette.responses import FileResponse
from starlette.types import Receive, Scope, Send

#: Set by ``HeadAsGet`` on the scope of a HEAD request it runs as GET.
HEAD_AS_GET = "riskmap.head_as_get"


class StoredFile(FileResponse):
    """A file with range requests, answering a HEAD run as GET without reading the file."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the file (or the ranges asked for, or only the headers for HEAD)."""
        if scope.get(HEAD_AS_GET):
            scope = {**scope, "method": "HEAD"}
        await super().__call__(scope, receive, send)
