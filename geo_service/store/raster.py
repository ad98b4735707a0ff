"""A build's raster layer read as tiles of values, and the byte-budgeted cache of tiles.

The COG is opened once per thread: rasterio datasets must not be shared between threads, and
reopening per request costs more than the read. A tile of a build never changes, so whoever
renders or encodes one keeps it in a ``TileCache`` (least recently used first out, up to a
byte budget) and a warm tile costs a dictionary lookup.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Hashable
from functools import cached_property
from itertools import islice
from pathlib import Path

import numpy as np
import rasterio.transform
from rio_tiler.errors import PointOutsideBounds, TileOutsideBounds
from rio_tiler.io import Reader
from rio_tiler.models import ImageData
from scipy import ndimage

from geo_service.errors import NoBuildError, NotFoundError
from geo_service.store.base import CellValue, LayerInfo

#: Zoom levels a tile may be asked for (beyond the surface's own resolution it is upsampled).
MAX_ZOOM = 22
#: Pixels on a side of a raster tile.
TILE_SIZE = 256


def native_zoom(cell_m: float) -> int:
    """The zoom whose tile pixels are about as large as a raster's cells (``cell_m`` metres)."""
    world = 2 * math.pi * 6378137.0
    return max(0, math.ceil(math.log2(world / (TILE_SIZE * float(cell_m)))))


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

    def recent(self, n: int) -> list[Hashable]:
        """The keys of the ``n`` tiles used last, the last first."""
        with self._lock:
            return list(islice(reversed(self._items), n))


class RasterLayer:
    """One raster layer of a build (a ``RasterSource``): tiles of values on demand."""

    def __init__(self, path: Path, info: LayerInfo) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self.info = info
        self._local = threading.local()
        self._readers: list[Reader] = []
        self._lock = threading.Lock()

    @property
    def native_zoom(self) -> int:
        """The zoom whose pixels are about as large as the cells (256-pixel tiles)."""
        if self.info.meta.cell_m is None:
            raise NoBuildError(f"raster layer '{self.info.id}' has no cell size in its catalog")
        return native_zoom(self.info.meta.cell_m)

    def _reader(self) -> Reader:
        reader = getattr(self._local, "reader", None)
        if reader is None:
            reader = Reader(str(self.path))
            self._local.reader = reader
            with self._lock:
                self._readers.append(reader)
        return reader

    def tile_data(self, z: int, x: int, y: int) -> ImageData | None:
        """The values of one XYZ tile, bilinear; None outside the layer or where every cell
        is without a value."""
        try:
            image = self._reader().tile(x, y, z, tilesize=TILE_SIZE, resampling_method="bilinear")
        except TileOutsideBounds:
            return None
        return None if image.array.mask.all() else image

    def value_at(self, lon: float, lat: float) -> CellValue:
        """The value of the cell under a point (degrees, CRS84), as stored: the full
        resolution, never an overview, never interpolated."""
        try:
            point = self._reader().point(lon, lat)
        except PointOutsideBounds:
            west, south, east, north = self.info.bounds or (0.0, 0.0, 0.0, 0.0)
            raise NotFoundError(
                f"lon {lon:g}, lat {lat:g} is outside {self.info.id}, which covers west "
                f"{west:g}, south {south:g}, east {east:g}, north {north:g}"
            ) from None
        col, row = (int(v) for v in point.pixel_location or (0, 0))
        if np.ma.getmaskarray(point.array)[0]:
            return CellValue(None, col, row)
        return CellValue(_number(point.array.data[0]), col, row)

    @cached_property
    def centre(self) -> tuple[float, float]:
        """Where the layer's main extent is: in a small overview, the cell with a value
        nearest the median position of the largest patch of cells with a value (the middle
        of the bounds, or of every value, can be ocean between two continents)."""
        with Reader(str(self.path)) as reader:
            image = reader.preview(max_size=512, dst_crs=reader.tms.rasterio_geographic_crs)
        valid = ~np.ma.getmaskarray(image.array)[0]
        patches, count = ndimage.label(valid)
        if not count:
            west, south, east, north = image.bounds
            return (west + east) / 2, (south + north) / 2
        largest = np.argmax(np.bincount(patches.ravel())[1:]) + 1
        rows, cols = np.nonzero(patches == largest)
        middle = np.argmin(np.hypot(rows - np.median(rows), cols - np.median(cols)))
        lon, lat = rasterio.transform.xy(image.transform, rows[middle], cols[middle])
        return round(float(lon), 5), round(float(lat), 5)

    def close(self) -> None:
        """Close every thread's reader."""
        with self._lock:
            for r in self._readers:
                r.close()
            self._readers.clear()


def _number(value: np.generic) -> float:
    """A cell's value as the shortest decimal that reads back as the same stored number
    (a float32 0.4213 is 0.4213, not 0.42130000591278076)."""
    if isinstance(value, np.floating):
        return float(np.format_float_positional(value, unique=True, trim="-"))
    return float(value)
