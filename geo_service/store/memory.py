"""A build's vector layers in memory: columns for filtering, each feature encoded once.

A layer is read from its GeoParquet file the first time it is asked for, and kept while its
build is current. Filtering is vectorised over columns of bounds, dates and properties; the
answer is a list of row positions, and each row's GeoJSON is written once, the first time it is
asked for (``geojson.py``), so a page of a thousand features is soon a join of bytes, not a
thousand serialisations, and a layer loads without writing any.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from geo_service.errors import BadQueryError, NotFoundError
from geo_service.store import mvt
from geo_service.store.base import (
    DATE_FIELDS,
    Access,
    BBox,
    Feature,
    FeaturePage,
    ItemQuery,
    LayerInfo,
    Store,
)
from geo_service.store.catalog import BuildCatalog, CatalogLayer
from geo_service.store.cql import Filter, compile_filter, sort_keys
from geo_service.store.cql_mask import MaskBackend
from geo_service.store.geojson import feature_bytes, geometries_json, json_records, properties_json
from geo_service.store.groups import PointGroups
from geo_service.store.raster import RasterLayer, TileCache


def search_key(value: object) -> str:
    """A text folded for search: no accents, lower case, words split on punctuation."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    text = unicodedata.normalize("NFKD", str(value)).casefold()
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(re.split(r"[^\w]+", text)).strip()


#: Bytes of vector tiles kept per layer.
TILE_CACHE_BYTES = 64 * 2**20
#: Latitude at which EPSG:3857 ends.
MAX_LATITUDE = 85.05112877980659
#: CQL2 filters whose rows are kept per layer (each a byte a row), the oldest dropped first.
FILTERS_KEPT = 16
#: Column that marks a row restricted.
SENSITIVITY = "sensitivity"


def _json_type(column: pd.Series) -> str | None:
    """JSON Schema type of a column a client can filter on by equality (None: not queryable)."""
    if pd.api.types.is_bool_dtype(column):
        return "boolean"
    if pd.api.types.is_integer_dtype(column):
        return "integer"
    if pd.api.types.is_float_dtype(column):
        return "number"
    if pd.api.types.is_string_dtype(column) or column.dtype == object:
        sample = column.dropna()
        if len(sample) and not isinstance(sample.iloc[0], str):
            return None  # lists of ids and other nested values
        return "string"
    return None


class LayerTable:
    """One vector layer of a build, ready to answer items queries."""

    def __init__(self, layer_id: str, meta: CatalogLayer, frame: gpd.GeoDataFrame) -> None:
        frame = frame.reset_index(drop=True)
        self.id = layer_id
        self.meta = meta
        self.frame = frame
        id_field = meta.id_field
        if id_field and id_field in frame:
            self.ids = frame[id_field].astype(str).to_numpy(dtype=object)
        else:
            self.ids = np.array([str(i) for i in range(len(frame))], dtype=object)
        self.position = {fid: i for i, fid in enumerate(self.ids)}
        b = shapely.bounds(frame.geometry.to_numpy())
        self.minx, self.miny, self.maxx, self.maxy = (b[:, i] for i in range(4))
        self.date_field = next((f for f in DATE_FIELDS if f in frame), None)
        self.dates: np.ndarray | None = None
        if self.date_field is not None:
            d = pd.to_datetime(frame[self.date_field], utc=True).dt.tz_localize(None)
            self.dates = d.to_numpy(dtype="datetime64[ms]")
        # A restricted row is seen only by a role that allows it (the store serves the
        # public view to everyone else: this mask is the second lock).
        self.restricted = (
            frame[SENSITIVITY].astype(str).to_numpy() == "restricted"
            if SENSITIVITY in frame
            else np.zeros(len(frame), dtype=bool)
        )
        self.queryables: dict[str, str] = {}
        for c in frame.columns:
            if c == frame.geometry.name or c == self.date_field:
                continue
            kind = _json_type(frame[c])
            if kind is not None:
                self.queryables[c] = kind
        self.records = json_records(frame)
        self._shapes = frame.geometry.to_numpy()
        self._geometries: list[bytes | None] = [None] * len(frame)
        self._features: list[bytes | None] = [None] * len(frame)
        self.tiles = TileCache(TILE_CACHE_BYTES)
        self._columns: dict[tuple[str, str], pd.Series] = {}
        self._numbers: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._filters: dict[str, np.ndarray] = {}
        self._filters_lock = threading.Lock()

    @cached_property
    def info(self) -> LayerInfo:
        """The layer as its catalog entry and its columns describe it."""
        return LayerInfo(
            id=self.id,
            title=self.meta.title,
            kind=self.meta.kind,
            count=len(self.ids),
            bounds=self.meta.bounds,
            time_extent=self.meta.time_extent,
            sources=self.meta.sources,
            queryables=dict(self.queryables),
            date_field=self.date_field,
            fields=tuple(c for c in self.frame.columns if c != self.frame.geometry.name),
            id_field=self.meta.id_field,
            meta=self.meta,
        )

    @cached_property
    def mercator(self) -> np.ndarray:
        """Geometries in EPSG:3857 (for vector tiles), latitudes clamped to its square world."""
        to_3857 = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)

        def fn(xy: np.ndarray) -> np.ndarray:
            lat = np.clip(xy[:, 1], -MAX_LATITUDE, MAX_LATITUDE)
            return np.column_stack(to_3857.transform(xy[:, 0], lat))

        return shapely.transform(self.frame.geometry.to_numpy(), fn)

    @cached_property
    def groups(self) -> PointGroups:
        """The layer's points grouped per zoom (the highest score shown by a group)."""
        score = (
            self.frame["score"].to_numpy(dtype="float64") if "score" in self.queryables else None
        )
        return PointGroups(self.mercator, score)

    def vector_tile(
        self,
        z: int,
        x: int,
        y: int,
        access: Access,
        flt: Filter | None = None,
        fields: tuple[str, ...] | None = None,
    ) -> bytes:
        """One MVT tile of the rows this caller may see (cached per build, filter and
        properties): points grouped below the detail zoom."""
        flt_key = flt.key if flt is not None else None
        key = (z, x, y, access.sees_restricted, flt_key, fields)
        tile = self.tiles.get(key)
        if tile is not None:
            return tile
        if fields is not None:
            self._check_properties(fields)
        box = ItemQuery(bbox=mvt.lonlat_box(z, x, y), filter=flt)
        if self.groups.grouped(z):
            rows = self.select(ItemQuery(filter=flt, limit=None), access)
            level = self.groups.index((access.sees_restricted, flt_key), rows).level(z)
            others = self.select(box, access)
            others = others[~self.groups.is_point[others]]
            tile = mvt.encode_tile(
                self.id, self.mercator, self.records, others, z, x, y, fields, level
            )
        else:
            rows = self.select(box, access)
            tile = mvt.encode_tile(self.id, self.mercator, self.records, rows, z, x, y, fields)
        self.tiles.put(key, tile)
        return tile

    def visible(self, access: Access) -> np.ndarray:
        """Rows this caller may see precisely (restricted rows only with a role that allows)."""
        if access.sees_restricted:
            return np.ones(len(self.ids), dtype=bool)
        return ~self.restricted

    @cached_property
    def _by_west(self) -> tuple[np.ndarray, np.ndarray, float, bool]:
        """Rows in the order of their west edge (empty geometries last), their bounds in that
        order (west, east, south, north), the widest row's width in degrees, and whether every
        row is a point (its bounds one corner)."""
        order = np.argsort(self.minx, kind="stable")
        bounds = np.stack([b[order] for b in (self.minx, self.maxx, self.miny, self.maxy)])
        widths = self.maxx - self.minx
        widest = float(np.nanmax(widths)) if np.isfinite(widths).any() else 0.0
        heights = self.maxy - self.miny
        flat = widest == 0 and not np.nanmax(heights, initial=0) > 0
        return order, bounds, widest, bool(flat)

    def in_box(self, box: BBox) -> np.ndarray:
        """Whether each row's bounds meet ``box`` (west > east: across the antimeridian).

        Only the rows whose west edge lies within the widest row's width of the box are
        compared: a run of ``_by_west``, found by bisection."""
        west, south, east, north = box
        order, (lefts, rights, bottoms, tops), widest, flat = self._by_west
        inside = np.zeros(len(self.ids), dtype=bool)
        spans = [(west, east)] if west <= east else [(west, np.inf), (-np.inf, east)]
        for w, e in spans:
            hi = np.searchsorted(lefts, e, side="right")
            if flat:
                # Points: the run is exactly the rows in the span; only latitude is left.
                lo = np.searchsorted(lefts, w, side="left")
                ys = bottoms[lo:hi]
                hits = (ys >= south) & (ys <= north)
            else:
                # Rows further west cannot reach w: their east edge is at most west + widest
                # (the margin only adds rows, each compared exactly below).
                lo = np.searchsorted(lefts, w - widest - 1e-9, side="left")
                run = slice(lo, hi)
                hits = (rights[run] >= w) & (bottoms[run] <= north) & (tops[run] >= south)
            inside[order[lo + np.flatnonzero(hits)]] = True
        return inside

    def _matches(self, column: str, value: str) -> np.ndarray:
        kind = self.queryables[column]
        values = self.frame[column]
        if kind == "string":
            return (values.astype("string") == value).fillna(False).to_numpy(dtype=bool)
        if kind == "boolean":
            if value.lower() not in ("true", "false"):
                raise BadQueryError("expected true or false", parameter=column)
            return (values == (value.lower() == "true")).fillna(False).to_numpy(dtype=bool)
        try:
            number = float(value)
        except ValueError as exc:
            raise BadQueryError(f"expected a {kind}, got {value!r}", parameter=column) from exc
        return (values.astype("float64") == number).fillna(False).to_numpy(dtype=bool)

    def select(self, query: ItemQuery, access: Access) -> np.ndarray:
        """Positions of the rows the query matches for this caller: in layer order, best
        first with ``q``, in ``sortby`` order with it."""
        mask = self.matching(query, access)
        rows = np.flatnonzero(mask) if query.q is None else self._search(mask, query.q)
        return self._sorted(rows, query.sortby) if query.sortby else rows

    def matching(self, query: ItemQuery, access: Access) -> np.ndarray:
        """Whether each row matches the query's box, dates, properties and filter, and this
        caller may see it (``q`` and ``sortby`` aside)."""
        mask = self.visible(access)
        if query.bbox is not None:
            mask &= self.in_box(query.bbox)
        if query.interval is not None and self.dates is not None:
            # A feature without a date matches any datetime (OGC API – Features,
            # /req/core/fc-time-response C): so does every feature of an undated layer.
            start, end = query.interval
            inside = np.ones(len(self.ids), dtype=bool)
            if start is not None:
                inside &= self.dates >= np.datetime64(start.to_datetime64(), "ms")
            if end is not None:
                inside &= self.dates <= np.datetime64(end.to_datetime64(), "ms")
            mask &= inside | np.isnat(self.dates)
        for column, value in query.filters.items():
            mask &= self._matches(column, value)
        if query.filter is not None:
            mask &= self._filtered(query.filter)
        return mask

    def _filtered(self, flt: Filter) -> np.ndarray:
        """Whether each row matches a CQL2 filter (a map panning, or an analyst paging, asks
        for one filter with many boxes: the last ``FILTERS_KEPT`` are kept, read-only)."""
        found = self._filters.get(flt.key)
        if found is None:
            backend = MaskBackend(len(self.ids), self.column, self._shapes, self.tree, self.numbers)
            kleene = compile_filter(flt, self.queryables, self.date_field, backend)
            found = kleene.to_numpy(dtype=bool, na_value=False)
            found.flags.writeable = False
            with self._filters_lock:
                while len(self._filters) >= FILTERS_KEPT:
                    del self._filters[next(iter(self._filters))]
                self._filters[flt.key] = found
        return found

    def _sorted(self, rows: np.ndarray, sortby: tuple[tuple[str, bool], ...]) -> np.ndarray:
        """``rows`` ordered by each property in turn (missing values last either way), then
        by layer order, as PostGIS orders them."""
        keys: list[np.ndarray] = [rows]  # the last tie-break: layer order
        for name, kind, descending in reversed(sort_keys(sortby, self.queryables, self.date_field)):
            rank = self.column(name, kind).rank(method="dense").to_numpy(dtype="float64")[rows]
            missing = np.isnan(rank)
            keys += [np.where(missing, 0.0, -rank if descending else rank), missing]
        return rows[np.lexsort(keys)]

    @cached_property
    def tree(self) -> shapely.STRtree:
        """The geometries' STR-tree (spatial filters)."""
        return shapely.STRtree(self._shapes)

    def numbers(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """A number property as float64 values and a mask of where it is missing."""
        found = self._numbers.get(name)
        if found is None:
            values = self.column(name, "number")
            found = (
                values.to_numpy(dtype="float64", na_value=np.nan),
                values.isna().to_numpy(),
            )
            self._numbers[name] = found
        return found

    def column(self, name: str, kind: str) -> pd.Series:
        """A property as a nullable column of its filter type (``cql.Backend`` kinds)."""
        key = (name, kind)
        found = self._columns.get(key)
        if found is None:
            if kind == "timestamp":
                found = pd.Series(self.dates)
            else:
                values = self.frame[name].reset_index(drop=True)
                dtype = {"string": "string", "number": "Float64", "boolean": "boolean"}[kind]
                found = values.astype(dtype)
            self._columns[key] = found
        return found

    @cached_property
    def names(self) -> tuple[np.ndarray, np.ndarray]:
        """Each row's name, and its name with its other names, folded (``search_key``)."""
        if "name" not in self.frame:
            empty = np.full(len(self.frame), "", dtype=object)
            return empty, empty
        name = np.array([search_key(v) for v in self.frame["name"]], dtype=object)
        if "alternatenames" not in self.frame:
            return name, name
        other = [search_key(v) for v in self.frame["alternatenames"]]
        return name, np.array([f"{a} {b}" for a, b in zip(name, other, strict=True)], dtype=object)

    def _search(self, mask: np.ndarray, q: str) -> np.ndarray:
        """Rows of ``mask`` whose names hold every word of ``q``, best match first, then the
        most populous."""
        words = search_key(q).split()
        name, every = self.names
        rows = np.flatnonzero(mask)
        if not words:
            return rows
        wanted = " ".join(words)
        hits = [i for i in rows if all(w in every[i] for w in words)]
        population = (
            self.frame["population"].fillna(0).to_numpy(dtype="float64")
            if "population" in self.frame
            else np.zeros(len(self.frame))
        )

        def rank(i: int) -> tuple[int, float, int]:
            n = name[i]
            if n == wanted:
                best = 0
            elif n.startswith(wanted):
                best = 1
            elif f" {wanted}" in f" {n}":
                best = 2
            else:
                best = 3
            return best, -population[i], i

        return np.array(sorted(hits, key=rank), dtype=np.int64)

    def page(self, query: ItemQuery, access: Access, build_id: str) -> FeaturePage:
        """One page of the matching features."""
        if query.q is None and not query.sortby:
            mask = self.matching(query, access)
            matched = int(np.count_nonzero(mask))
            chosen = self._first(mask, matched, query, access)
        else:
            rows = self.select(query, access)
            matched = len(rows)
            chosen = self._paged(rows, query, access)
        positions = chosen.tolist()  # Python ints index lists faster than numpy's
        if query.properties is None:
            features = self.features(positions)
            records = [self.records[i] for i in positions]
        else:
            features = self._subset(chosen, query.properties)
            records = [{n: self.records[i][n] for n in query.properties} for i in positions]
        return FeaturePage(
            layer=self.id,
            build_id=build_id,
            number_matched=matched,
            ids=[str(fid) for fid in self.ids[chosen].tolist()],
            features=features,
            records=records,
        )

    def _paged(self, rows: np.ndarray, query: ItemQuery, access: Access) -> np.ndarray:
        """The page of ``rows``: after the feature ``after`` (rows are in layer order then),
        or from ``offset``."""
        if query.after is None:
            start = query.offset
        else:
            i = self._position_after(query.after, access)
            start = int(np.searchsorted(rows, i, side="right"))
        end = None if query.limit is None else start + query.limit
        return rows[start:end]

    def _first(
        self, mask: np.ndarray, matched: int, query: ItemQuery, access: Access
    ) -> np.ndarray:
        """The page of the rows ``mask`` marks, in layer order (what ``_paged`` gives of
        all of them), reading only as far into the mask as the page needs."""
        if query.after is None:
            base, skip = 0, query.offset
        else:
            base, skip = self._position_after(query.after, access) + 1, 0
        if query.limit is None:
            return np.flatnonzero(mask[base:])[skip:] + base
        wanted = skip + query.limit
        # A stretch that should hold the page if matches are spread as over the whole layer;
        # twice as long again until it does, or the layer ends.
        size = max(4096, 2 * wanted * len(mask) // max(matched, 1))
        while True:
            found = np.flatnonzero(mask[base : base + size])
            if len(found) >= wanted or base + size >= len(mask):
                return found[skip:wanted] + base
            size *= 2

    def _position_after(self, feature_id: str, access: Access) -> int:
        """The row of ``after``'s feature, or a 400 when this caller has no such feature."""
        i = self.position.get(feature_id)
        if i is None or not self.visible(access)[i]:
            raise BadQueryError(
                f"collection '{self.id}' has no feature '{feature_id}' to page after",
                parameter="after",
            )
        return i

    def table(self, query: ItemQuery, access: Access) -> gpd.GeoDataFrame:
        """The page of matching rows as a table (only the properties asked for, if any)."""
        frame = self.frame.iloc[self._paged(self.select(query, access), query, access)]
        if query.properties is not None:
            self._check_properties(query.properties)
            frame = frame[[*query.properties, frame.geometry.name]]
        return frame

    def _check_properties(self, names: tuple[str, ...]) -> None:
        unknown = [n for n in names if n not in self.records[0]] if self.records else []
        if unknown:
            raise BadQueryError(
                f"unknown properties {', '.join(unknown)}; this collection has "
                f"{', '.join(self.records[0])}",
                parameter="properties",
            )

    def _subset(self, rows: np.ndarray, names: tuple[str, ...]) -> list[bytes]:
        """Features with only the named properties (encoded per request: a map asks for the
        few it draws, a tenth of the bytes on slow connections)."""
        self._check_properties(names)
        return [
            feature_bytes(
                self.ids[i],
                geometry,
                properties_json({n: self.records[i][n] for n in names}),
            )
            for i, geometry in zip(rows, self.geometries(rows), strict=True)
        ]

    def geometries(self, rows: Sequence[int]) -> list[bytes]:
        """These rows' geometries as GeoJSON, each written once, when first asked for."""
        kept = self._geometries
        missing = [i for i in rows if kept[i] is None]
        if missing:
            written = geometries_json(self._shapes[missing])
            for i, text in zip(missing, written, strict=True):
                kept[i] = text
        return [kept[i] for i in rows]  # type: ignore[misc]

    def features(self, rows: Sequence[int]) -> list[bytes]:
        """These rows as GeoJSON Features, each written once, when first asked for."""
        kept = self._features
        missing = [i for i in rows if kept[i] is None]
        if missing:
            for i, geometry in zip(missing, self.geometries(missing), strict=True):
                kept[i] = feature_bytes(self.ids[i], geometry, properties_json(self.records[i]))
        return [kept[i] for i in rows]  # type: ignore[misc]

    def get(self, feature_id: str, access: Access) -> Feature:
        """One feature; a row the caller may not see does not exist for them."""
        i = self.position.get(feature_id)
        if i is None or not self.visible(access)[i]:
            raise NotFoundError(f"collection '{self.id}' has no feature '{feature_id}'")
        return Feature(feature_id, self.features([i])[0], self.records[i])


#: What a table computes when first asked (vector-tile geometries, search keys, the spatial
#: indexes: the tree and the rows by west edge), computed ahead for a new build where the
#: build served before had it.
WARMED = ("mercator", "names", "tree", "_by_west")


class BuildStore:
    """The layers of one build in memory (the embedded ``Store``), each loaded on first use.

    A layer holding restricted rows has a public view beside it (``publication.py``); every
    caller whose role does not see restricted rows is answered from that view, with its own
    counts, bounds and dates. ``access`` defaults to anonymous, so a call that forgets it can
    only ever show less.
    """

    def __init__(self, build_dir: Path, build_id: str, catalog: BuildCatalog) -> None:
        self._path = Path(build_dir) / build_id
        self.build_id = build_id
        self.catalog = catalog
        self._tables: dict[tuple[str, bool], LayerTable] = {}
        self._rasters: dict[str, RasterLayer] = {}
        # One lock per thing loaded: a layer taking half a second to load holds up only the
        # requests for that layer, never a tile answered on the event loop.
        self._locks: dict[tuple[str, ...], threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def _lock(self, *key: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(key, threading.Lock())

    def raster(self, layer_id: str) -> RasterLayer:
        """A raster layer, or ``NotFoundError``.

        Rasters are computed from the evidence as the public may know it, so they are the same
        for every caller.
        """
        layer = self._rasters.get(layer_id)
        if layer is not None:
            return layer
        meta = raster_meta(self.catalog, layer_id)
        with self._lock("raster", layer_id):
            layer = self._rasters.get(layer_id)
            if layer is None:
                layer = RasterLayer(self._path / meta.file, raster_info(layer_id, meta))
                self._rasters[layer_id] = layer
        return layer

    def _meta(self, layer_id: str, access: Access) -> CatalogLayer:
        """The catalog entry of a vector layer as this caller sees it, or ``NotFoundError``."""
        layers = self.catalog.vector_layers()
        if layer_id not in layers:
            raise NotFoundError(f"no collection '{layer_id}'; collections are {', '.join(layers)}")
        return layers[layer_id].as_seen(public=not access.sees_restricted)

    def _table(self, layer_id: str, access: Access) -> LayerTable:
        """The layer in memory as this caller sees it (each view loaded once per build)."""
        key = (layer_id, access.sees_restricted)
        table = self._tables.get(key)
        if table is not None:
            return table
        meta = self._meta(layer_id, access)
        with self._lock("table", layer_id, meta.file):
            table = self._tables.get(key)
            if table is None:
                # A layer without a public view is one file for every caller: one table.
                other = self._tables.get((layer_id, not access.sees_restricted))
                if other is not None and other.meta.file == meta.file:
                    table = other
                else:
                    table = LayerTable(layer_id, meta, gpd.read_parquet(self._path / meta.file))
                self._tables[key] = table
        return table

    def warm(self, like: Store | None = None) -> None:
        """Load now what answering would load on first use: every layer as each access level
        sees it, and what ``like`` (the build served before) had computed since its layers
        loaded: ``WARMED``, the features it had written (by id) and the rasters it had opened."""
        for access in (Access.anonymous, Access.analyst):
            self.layers(access)
        if not isinstance(like, BuildStore):
            return
        for key, old in list(like._tables.items()):
            new = self._tables.get(key)
            if new is None:
                continue  # a layer the new build does not have
            for name in WARMED:
                if name in vars(old):
                    getattr(new, name)
            for written, write in (
                (old._features, new.features),
                (old._geometries, new.geometries),
            ):
                ids = (fid for fid, text in zip(old.ids, written, strict=True) if text is not None)
                write([new.position[fid] for fid in ids if fid in new.position])
        for layer_id in list(like._rasters):
            meta = self.catalog.layers.get(layer_id)
            if meta is not None and meta.kind == "raster":
                self.raster(layer_id)

    def answers_at_once(self, layer_id: str, access: Access) -> bool:
        """Whether the layer, as this caller sees it, is loaded."""
        return (layer_id, access.sees_restricted) in self._tables

    def layers(self, access: Access = Access.anonymous) -> dict[str, LayerInfo]:
        """Every vector layer as this caller sees it (rasters are served as tiles)."""
        return {k: self._table(k, access).info for k in self.catalog.vector_layers()}

    def layer(self, layer_id: str, access: Access = Access.anonymous) -> LayerInfo:
        """One vector layer as this caller sees it, or ``NotFoundError``."""
        return self._table(layer_id, access).info

    def query(self, layer_id: str, query: ItemQuery, access: Access) -> FeaturePage:
        """A page of a layer's features for this caller."""
        return self._table(layer_id, access).page(query, access, self.build_id)

    def frame(self, layer_id: str, query: ItemQuery, access: Access) -> gpd.GeoDataFrame:
        """The page of a layer's matching features as a table, for this caller."""
        return self._table(layer_id, access).table(query, access)

    def get(self, layer_id: str, feature_id: str, access: Access) -> Feature:
        """One feature of a layer for this caller."""
        return self._table(layer_id, access).get(feature_id, access)

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
        """One Mapbox Vector Tile of a layer, of the rows this caller may see (and ``flt``
        matches), with the properties in ``fields`` (None: all)."""
        return self._table(layer_id, access).vector_tile(z, x, y, access, flt, fields)

    def resource(self, name: str) -> bytes:
        """A file of the build that is not a layer: ``basemap`` (the offline basemap)."""
        meta = self.catalog.basemap if name == "basemap" else None
        if meta is None:
            raise NotFoundError(
                f"build {self.build_id} has no {name}: rebuild with 'riskmap build'"
            )
        return (self._path / meta.file).read_bytes()


def raster_meta(catalog: BuildCatalog, layer_id: str) -> CatalogLayer:
    """The catalog entry of a raster layer, or ``NotFoundError`` naming the raster layers."""
    meta = catalog.layers.get(layer_id)
    if meta is None or meta.kind != "raster":
        rasters = [k for k, v in catalog.layers.items() if v.kind == "raster"]
        raise NotFoundError(
            f"no raster layer '{layer_id}'; raster layers are {', '.join(rasters) or '(none)'}"
        )
    return meta


def raster_info(layer_id: str, meta: CatalogLayer) -> LayerInfo:
    """A raster layer's description from its catalog entry."""
    return LayerInfo(
        id=layer_id,
        title=meta.title,
        kind=meta.kind,
        count=meta.count,
        bounds=meta.bounds,
        time_extent=meta.time_extent,
        sources=meta.sources,
        queryables={},
        date_field=None,
        fields=tuple(meta.fields),
        id_field=None,
        meta=meta,
    )
