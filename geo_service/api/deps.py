"""Shared request dependencies: the current build and the caller's access level."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from geo_service.api.builds import Build
from geo_service.store.base import Access


def build_of(request: Request) -> Build:
    """The build this request is answered from (also named in X-Build-Id)."""
    build = request.app.state.builds.current()
    request.state.build_id = build.build_id
    return build


def access_of(request: Request) -> Access:
    """The caller's access level, from ``Authorization: Bearer <token>``.

    Anonymous without credentials; 401 for credentials that are not a configured token.
    """
    return request.app.state.tokens.access(request.headers.get("authorization"))


async def current_build(request: Request) -> Build:
    """Dependency: ``build_of``. ``async`` without awaiting: a ``readlink`` takes
    microseconds, and a plain ``def`` would cost a trip through the thread pool."""
    return build_of(request)


async def caller_access(request: Request) -> Access:
    """Dependency: ``access_of``."""
    return access_of(request)


BuildDep = Annotated[Build, Depends(current_build)]
AccessDep = Annotated[Access, Depends(caller_access)]
