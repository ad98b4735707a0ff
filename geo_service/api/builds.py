"""Which build answers requests: the one ``current`` names, once it is loaded.

When ``current`` moves, the new build is opened and warmed in a thread while requests go on
being answered from the build served before: its layers are loaded (``Store.warm``), and the
raster tiles the old build served last are rendered from it (``PRERENDER_TILES``). Then it is
swapped in at once, so no request waits for a layer to load or a burst of tiles to render.
The thread yields the CPU to the requests' threads (``LOADER_NICE``), and once the old build's
last request has ended its memory goes back to the system (``heap.py``). Without a build before
it (at start-up) the new build answers at once, loading as it is asked. A build that fails to
load is logged and tried again after ``RETRY_S``, the build served before answering meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from geo_service.api.heap import release, settle_collector
from geo_service.errors import RiskMapError
from geo_service.store.base import BuildSource, RasterSource, Store
from geo_service.store.catalog import BuildCatalog
from geo_service.store.raster import TileCache

#: Bytes of rendered raster tiles kept per build.
RASTER_TILE_CACHE_BYTES = 256 * 2**20
#: Seconds before a build that failed to load is tried again.
RETRY_S = 30.0
#: Nice value of the thread loading a new build (19 is the lowest priority).
LOADER_NICE = 10
#: Raster tiles of the old build (the last used) rendered from the new one before it answers.
PRERENDER_TILES = 512

#: Renders one raster tile to the bytes served (``routes/tiles.py``).
TileRenderer = Callable[[RasterSource, int, int, int], bytes]

#: The server's own log (uvicorn's), so that a swap shows beside its other messages.
log = logging.getLogger("uvicorn.error")


@dataclass(frozen=True)
class Build:
    """One build's id, its catalog.json, its layers, and the raster tiles rendered from it."""

    build_id: str
    catalog: BuildCatalog
    store: Store
    raster_tiles: TileCache = field(default_factory=lambda: TileCache(RASTER_TILE_CACHE_BYTES))


def background() -> None:
    """Give this thread the CPU only when the requests' threads leave it (Linux: a thread's
    own nice value, ``LOADER_NICE``); elsewhere it competes as any thread."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOADER_NICE)


class BuildCache:
    """The build requests are answered from, switching when the pointer moves and the new
    build is ready.

    A request holds the build it started with until it ends, so a swap never mixes two builds
    in one response; the old build's tables are freed when its last request finishes.
    """

    def __init__(
        self,
        source: BuildSource,
        render_tile: TileRenderer | None = None,
        retry_s: float = RETRY_S,
    ) -> None:
        self.source = source
        self.render_tile = render_tile
        self.retry_s = retry_s
        self._lock = threading.Lock()
        self._build: Build | None = None
        #: The id being loaded in the background (one at a time).
        self._loading: str | None = None
        #: The last build that failed to load, and when.
        self._failed: tuple[str, float] | None = None

    def current(self) -> Build:
        """The build to answer from: the one ``current`` names once it has loaded, until
        then the one served before (``NoBuildError`` without any)."""
        build_id = self.source.current_id()
        build = self._build
        if build is not None and build.build_id == build_id:
            return build
        if build is None:
            with self._lock:
                if self._build is None:  # first start: nothing else to answer from
                    store = self.source.open(build_id)
                    self._build = Build(build_id, store.catalog, store)
                build = self._build
            if build.build_id == build_id:
                return build
        self._load_later(build_id)
        return build

    def warm(self) -> None:
        """Load the build served now (at start-up: it answers while it loads)."""
        try:
            self.current().store.warm(None)
        except RiskMapError:
            pass  # no build yet: requests will say so
        except Exception:  # requests will meet the same failure and report it
            log.exception("the build served could not be loaded ahead of its requests")
        settle_collector(full=True)

    def _load_later(self, build_id: str) -> None:
        """Start loading ``build_id`` in a thread, unless a load is under way or it failed
        less than ``retry_s`` ago."""
        with self._lock:
            if self._loading is not None:
                return
            failed = self._failed
            if failed and failed[0] == build_id and time.monotonic() - failed[1] < self.retry_s:
                return
            self._loading = build_id
        threading.Thread(
            target=self._load, args=(build_id,), name=f"load {build_id}", daemon=True
        ).start()

    def _load(self, build_id: str) -> None:
        """Open and warm a build, then answer from it if ``current`` still names it."""
        background()
        t0 = time.monotonic()
        before = self._build
        if before is None:  # nothing served: requests open the build themselves
            with self._lock:
                self._loading = None
            return
        try:
            store = self.source.open(build_id)
            store.warm(before.store)
            build = Build(build_id, store.catalog, store)
            self._prerender(before, build)
            settle_collector()
        except Exception:  # whatever it is, the build served before goes on answering
            with self._lock:
                self._failed = (build_id, time.monotonic())
                self._loading = None
            log.exception(
                "build %s could not be loaded; still serving %s, trying again in %.0f s",
                build_id,
                before.build_id,
                self.retry_s,
            )
            return
        try:
            still = self.source.current_id() == build_id
        except RiskMapError:
            still = False  # the pointer went away: keep what is served
        with self._lock:
            if still:
                self._build = build
                self._failed = None
            self._loading = None
        if still:
            log.info("serving build %s (loaded in %.1f s)", build_id, time.monotonic() - t0)
        # The build swapped out (or the one loaded for nothing) goes once its requests end.
        gone = weakref.ref(before if still else build)
        del before, build, store
        release(gone)

    def _prerender(self, before: Build, build: Build) -> None:
        """Render from ``build`` the raster tiles ``before`` served last, keyed as the tile
        route keys them: ``(layer, z, x, y)``."""
        if self.render_tile is None:
            return
        for key in before.raster_tiles.recent(PRERENDER_TILES):
            layer, z, x, y = key  # type: ignore[misc]
            meta = build.catalog.layers.get(layer)
            if meta is not None and meta.kind == "raster":
                raster = build.store.raster(layer)
                build.raster_tiles.put(key, self.render_tile(raster, z, x, y))

    @property
    def loading(self) -> str | None:
        """The id of the build being loaded, if any."""
        return self._loading
