"""A build's raster layer served as tiles: an open reader per thread and a cache of tiles.

A tile of a build never changes, so a rendered tile is kept (least recently used first out, up
to a byte budget) and a warm tile costs a dictionary lookup. The COG is opened once per
thread: rasterio datasets must not be shared between threads, and reopening per request
costs more than the read.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from rio_tiler.errors import TileOutsideBounds
from rio_tiler.io import Reader

from geo_service.render import png

#: Zoom levels a tile may be asked for (beyond the surface's own resolution it is upsampled).
MAX_ZOOM = 22


class TileCache:
    """Rendered tiles by key, least recently used dropped beyond ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> bytes | None:
        """The tile, if kept."""
        with self._lock:
            tile = self._items.get(key)
            if tile is not None:
                self._items.move_to_end(key)
            return tile

    def put(self, key: Hashable, tile: bytes) -> None:
        """Keep a tile, dropping the oldest beyond the budget."""
        with self._lock:
            if key in self._items:
                return
            self._items[key] = tile
            self.bytes += len(tile)
            while self.bytes > self.max_bytes and self._items:
                _, old = self._items.popitem(last=False)
                self.bytes -= len(old)


class RasterLayer:
    """One raster layer of a build: tiles on demand, cached."""

    def __init__(self, path: Path, meta: dict[str, Any], cache_bytes: int) -> None:
        self.path = Path(path)
        self.meta = meta
        self.cache = TileCache(cache_bytes)
        self._local = threading.local()
        self._readers: list[Reader] = []
        self._lock = threading.Lock()

    @property
    def native_zoom(self) -> int:
        """The zoom whose pixels are about as large as the cells (256-pixel tiles)."""
        return png.native_zoom(float(self.meta["cell_m"]))

    def _reader(self) -> Reader:
        reader = getattr(self._local, "reader", None)
        if reader is None:
            reader = Reader(str(self.path))
            self._local.reader = reader
            with self._lock:
                self._readers.append(reader)
        return reader

    def tile(self, z: int, x: int, y: int, render: Callable[[Any], bytes] | None = None) -> bytes:
        """The PNG of one XYZ tile (transparent outside the surface); people per cell of a
        population grid in their own scale."""
        if render is None:
            render = png.render_people if "people" in self.meta.get("fields", {}) else png.render
        key = (z, x, y)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        try:
            image = self._reader().tile(
                x, y, z, tilesize=png.TILE_SIZE, resampling_method="bilinear"
            )
        except TileOutsideBounds:
            data = png.empty_tile()
        else:
            data = png.empty_tile() if image.array.mask.all() else render(image)
        self.cache.put(key, data)
        return data

    def close(self) -> None:
        """Close every thread's reader."""
        with self._lock:
            for r in self._readers:
                r.close()
            self._readers.clear()
