"""Shared request dependencies: the current build and the caller's access level."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from geo_service.store.base import Access, BuildSource, Store
from geo_service.store.catalog import BuildCatalog
from geo_service.store.raster import TileCache

#: Bytes of rendered raster tiles kept per build.
RASTER_TILE_CACHE_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Build:
    """One build's id, its catalog.json, its layers, and the raster tiles rendered from it."""

    build_id: str
    catalog: BuildCatalog
    store: Store
    raster_tiles: TileCache = field(default_factory=lambda: TileCache(RASTER_TILE_CACHE_BYTES))


class BuildCache:
    """Keeps the current build in memory, switching when the pointer moves.

    A request holds the build it started with until it ends, so a swap never mixes two builds
    in one response; the old build's tables are freed when its last request finishes.
    """

    def __init__(self, source: BuildSource) -> None:
        self.source = source
        self._lock = threading.Lock()
        self._build: Build | None = None

    def current(self) -> Build:
        """The build ``current`` points at now."""
        build_id = self.source.current_id()
        build = self._build
        if build is None or build.build_id != build_id:
            with self._lock:
                if self._build is None or self._build.build_id != build_id:
                    store = self.source.open(build_id)
                    self._build = Build(build_id, store.catalog, store)
                build = self._build
        return build


async def current_build(request: Request) -> Build:
    """Dependency: the build this request is answered from (also named in X-Build-Id).

    ``async`` without awaiting: a ``readlink`` takes microseconds, and a plain ``def`` would
    cost a trip through the thread pool on every request.
    """
    build = request.app.state.builds.current()
    request.state.build_id = build.build_id
    return build


async def caller_access(request: Request) -> Access:
    """Dependency: the caller's access level, from ``Authorization: Bearer <token>``.

    Anonymous without credentials; 401 for credentials that are not a configured token.
    """
    return request.app.state.tokens.access(request.headers.get("authorization"))


BuildDep = Annotated[Build, Depends(current_build)]
AccessDep = Annotated[Access, Depends(caller_access)]
