"""What the service asks of a store: who is asking, what they ask for, what comes back.

``Store`` is the one interface routes use (as tipg's ``Collection`` or rio-tiler's
``BaseReader``): typed layer descriptions and verbs that answer models or bytes, each taking
the caller's access, so the rules on restricted rows live in the store and not in each route.
``BuildSource`` says which build is current and opens it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import geopandas as gpd
import pandas as pd
from rio_tiler.models import ImageData

from geo_service.store.catalog import BuildCatalog, CatalogLayer
from geo_service.store.cql import Filter


class Access(StrEnum):
    """A caller's access level, lowest first."""

    anonymous = "anonymous"
    viewer = "viewer"
    analyst = "analyst"
    admin = "admin"

    @property
    def sees_restricted(self) -> bool:
        """Whether restricted rows are served to this caller precisely."""
        return self in (Access.analyst, Access.admin)


#: Columns named here hold dates the ``datetime`` parameter filters on.
DATE_FIELDS = ("date",)

#: Bounds of a ``bbox`` parameter: west, south, east, north (west > east crosses 180°).
BBox = tuple[float, float, float, float]


@dataclass(frozen=True)
class ItemQuery:
    """One items request, parsed and checked (``api/params.py``)."""

    bbox: BBox | None = None
    #: Inclusive bounds; None on a side is open (``..``).
    interval: tuple[pd.Timestamp | None, pd.Timestamp | None] | None = None
    #: Queryable property → the value asked for (equality).
    filters: dict[str, str] = field(default_factory=dict)
    #: A CQL2 filter on the queryables, the date and the geometry.
    filter: Filter | None = None
    #: Features per page (None: every match, for tables and pictures).
    limit: int | None = 100
    #: Matches to skip; with ``after`` it only numbers the page.
    offset: int = 0
    #: Id of the last feature of the previous page: the page starts after it (keyset paging,
    #: in layer order only, so a deep page costs what the first does).
    after: str | None = None
    #: Only these properties in each feature (None: all of them).
    properties: tuple[str, ...] | None = None
    #: Properties to order by, each ascending or descending (``sortby=-score,name``); ties
    #: and missing values last, then layer order. Empty: layer order (or relevance for ``q``).
    sortby: tuple[tuple[str, bool], ...] = ()
    #: Words to find in the features' names, whatever their case and accents; the best
    #: matches first (the whole name, then its start, then a word's start, then anywhere).
    q: str | None = None


@dataclass(frozen=True)
class LayerInfo:
    """One layer of a build as a caller sees it (a caller who may not see restricted rows is
    described by the public view: its count, bounds and dates)."""

    id: str
    title: str
    #: The catalog's kind: a source kind (``incidents``, ``units``…), ``derived``, ``raster``.
    kind: str
    count: int
    #: west, south, east, north (None: no feature).
    bounds: BBox | None
    #: First and last date (ISO), or None for a layer without dates.
    time_extent: tuple[str | None, str | None] | None
    #: Keys of the sources in the build's catalog the layer is made from.
    sources: tuple[str, ...]
    #: Properties items can be filtered on by equality → their JSON Schema type.
    queryables: Mapping[str, str]
    #: The property the ``datetime`` parameter filters on (None: the layer has no dates).
    date_field: str | None
    #: Every property a feature carries, in order.
    fields: tuple[str, ...]
    id_field: str | None
    #: The catalog entry as this caller sees it, for documents that show more of it.
    meta: CatalogLayer


@dataclass(frozen=True)
class FeaturePage:
    """The features of one page, already encoded, and how many matched in all."""

    layer: str
    build_id: str
    number_matched: int
    #: Each feature's id, in page order.
    ids: list[str]
    #: Each feature as GeoJSON bytes.
    features: list[bytes]
    #: Each feature's properties as JSON-ready values (only those asked for, if any).
    records: list[dict[str, Any]]


@dataclass(frozen=True)
class Feature:
    """One feature: its GeoJSON bytes and its properties (JSON-ready values)."""

    id: str
    body: bytes
    properties: dict[str, Any]


@dataclass(frozen=True)
class CellValue:
    """A raster's value under a point, and the cell it was read from."""

    #: The cell's value (None: the layer has no value there).
    value: float | None
    #: Column and row of the cell in the raster's grid (0, 0: its north-west corner).
    col: int
    row: int


class RasterSource(Protocol):
    """One raster layer of a build."""

    info: LayerInfo
    #: Where every replica can read the file (a path, or a URL GDAL reads).
    location: str
    #: The Cloud-Optimized GeoTIFF on this replica's disk, served as it is.
    path: Path

    @property
    def native_zoom(self) -> int:
        """The zoom whose 256-pixel tiles' pixels are about as large as the cells."""
        ...

    @property
    def centre(self) -> tuple[float, float]:
        """Longitude and latitude where most of the layer's values are."""
        ...

    def tile_data(self, z: int, x: int, y: int) -> ImageData | None:
        """The values of one XYZ tile (None where the layer has none)."""
        ...

    def value_at(self, lon: float, lat: float) -> CellValue:
        """The value of the cell under a point (degrees, CRS84), or ``NotFoundError`` for a
        point outside the layer."""
        ...


class Store(Protocol):
    """One build's layers, answered for a caller's access."""

    build_id: str
    #: The build's ``catalog.json``.
    catalog: BuildCatalog

    def layers(self, access: Access = Access.anonymous) -> dict[str, LayerInfo]:
        """Every vector layer, as this caller sees it."""
        ...

    def layer(self, layer_id: str, access: Access = Access.anonymous) -> LayerInfo:
        """One vector layer, or ``NotFoundError``."""
        ...

    def query(self, layer_id: str, query: ItemQuery, access: Access) -> FeaturePage:
        """A page of the features matching ``query``."""
        ...

    def answers_at_once(self, layer_id: str, access: Access) -> bool:
        """Whether a page of this layer is computed here and now, in memory, with nothing to
        load or wait for (routes then answer a small page on the event loop)."""
        ...

    def frame(self, layer_id: str, query: ItemQuery, access: Access) -> gpd.GeoDataFrame:
        """The matching features as a table (downloads, HTML tables, pictures), in the
        layer's order, the page of ``query`` only."""
        ...

    def get(self, layer_id: str, feature_id: str, access: Access) -> Feature:
        """One feature, or ``NotFoundError`` (also for a row this caller may not see)."""
        ...

    def vector_tile(
        self,
        layer_id: str,
        z: int,
        x: int,
        y: int,
        access: Access,
        flt: Filter | None = None,
        fields: tuple[str, ...] | None = None,
    ) -> bytes:
        """One Mapbox Vector Tile of the rows this caller may see (that ``flt`` matches), with
        the properties in ``fields`` (None: all), points grouped below the layer's detail zoom
        (``groups.py``)."""
        ...

    def raster(self, layer_id: str) -> RasterSource:
        """A raster layer (the same for every caller: made from public evidence only)."""
        ...

    def resource(self, name: str) -> bytes:
        """A file of the build that is not a layer (``basemap``: the offline basemap)."""
        ...

    def warm(self, like: Store | None = None) -> None:
        """Load now what the first requests would otherwise wait for: every layer for each
        access level, and what ``like`` (the build served before, if any) had loaded since."""
        ...


class BuildSource(Protocol):
    """Which build is current, and the store of a build."""

    def current_id(self) -> str:
        """The current build's id, or ``NoBuildError``."""
        ...

    def open(self, build_id: str) -> Store:
        """The store of one build."""
        ...
