"""Shared request dependencies: the current build, resolved once per request."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request

from geo_service.store.files import current_build_id, read_build_catalog


@dataclass(frozen=True)
class Build:
    """One build's id and its catalog.json."""

    build_id: str
    catalog: dict[str, Any]


class BuildCache:
    """Keeps the current build's catalog in memory, reloading it when the pointer moves."""

    def __init__(self, build_dir: Path) -> None:
        self.build_dir = Path(build_dir)
        self._lock = threading.Lock()
        self._build: Build | None = None

    def current(self) -> Build:
        """The build ``current`` points at now."""
        build_id = current_build_id(self.build_dir)
        build = self._build
        if build is None or build.build_id != build_id:
            with self._lock:
                if self._build is None or self._build.build_id != build_id:
                    self._build = Build(build_id, read_build_catalog(self.build_dir, build_id))
                build = self._build
        return build


def current_build(request: Request) -> Build:
    """Dependency: the build this request is answered from (also named in X-Build-Id)."""
    build = request.app.state.builds.current()
    request.state.build_id = build.build_id
    return build


BuildDep = Annotated[Build, Depends(current_build)]
