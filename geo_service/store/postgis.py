"""The PostGIS backend: builds published into PostgreSQL, served by any number of replicas.

``publish`` copies a build's vector layers into a schema of their own (``b_<build id>``): one
table per view (the full layer, and ``<layer>__public`` for a layer holding restricted rows),
each row with its position, id, properties (json, in the layer's order, as the embedded store
writes them), geometry (GiST index), bounds, date and search keys, and each queryable property
again in a column of its SQL type (``q_<name>``), which filters, sorting and property
equality read. Items are written by
``ST_AsGeoJSON`` and paged by position (keyset: ``after`` the last feature of a page). It then marks the build current in one transaction (``riskmap.builds``), keeps
the last ``keep`` builds and notifies the replicas. Two database roles hold the access rules:
``riskmap_public`` reads only the public views, ``riskmap_full`` every table; each request is
answered from a pool of connections that act as its caller's role (``SET ROLE`` when opened). Rasters stay COG files in the build folder,
which every replica reads (docs/deploy.md).
"""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import orjson
import pandas as pd
import psycopg
import shapely
from psycopg import sql
from psycopg_pool import ConnectionPool

from geo_service.errors import BadQueryError, NoBuildError, NotFoundError
from geo_service.store import mvt
from geo_service.store.base import Access, Feature, FeaturePage, ItemQuery, LayerInfo, Store
from geo_service.store.catalog import BuildCatalog
from geo_service.store.cql import Filter, sort_keys
from geo_service.store.cql_sql import SqlBackend, condition, typed_column
from geo_service.store.files import read_build_catalog
from geo_service.store.geojson import DECIMALS, feature_bytes, properties_json
from geo_service.store.memory import (
    TILE_CACHE_BYTES,
    LayerTable,
    raster_info,
    raster_meta,
    search_key,
)
from geo_service.store.raster import RasterLayer, TileCache

#: The schema of the builds table.
SCHEMA = "riskmap"
PUBLIC_ROLE = "riskmap_public"
FULL_ROLE = "riskmap_full"
#: The channel a published build is announced on.
CHANNEL = "riskmap_builds"
#: The key, in a view's description in ``riskmap.builds``, of the queryable properties that
#: have a typed column (a build published before there were typed columns has none).
TYPED = "typed"
#: Filters whose match counts a replica keeps per build (then it starts again).
COUNTS_KEPT = 4096
#: Seconds a replica trusts its last look at the current build.
CURRENT_TTL_S = 1.0

_SETUP = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.builds (
    build_id text PRIMARY KEY,
    schema_name text NOT NULL,
    catalog json NOT NULL,
    layers json NOT NULL,
    published timestamptz NOT NULL DEFAULT now(),
    current boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX IF NOT EXISTS builds_one_current ON {SCHEMA}.builds (current) WHERE current;
"""
_COLUMNS = (
    "ord",
    "fid",
    "props",
    "geom",
    "minx",
    "miny",
    "maxx",
    "maxy",
    "date",
    "restricted",
    "name_key",
    "every_key",
    "population",
)


def schema_of(build_id: str) -> str:
    """The schema of a build's tables."""
    return "b_" + re.sub(r"[^a-z0-9]+", "_", build_id.lower())


def _table_name(layer_id: str, public: bool) -> str:
    return f"{layer_id}__public" if public else layer_id


def _roles(conn: psycopg.Connection) -> None:
    for role in (PUBLIC_ROLE, FULL_ROLE):
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(role)))
    conn.execute(
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}, {}").format(
            sql.Identifier(SCHEMA), sql.Identifier(PUBLIC_ROLE), sql.Identifier(FULL_ROLE)
        )
    )
    conn.execute(
        sql.SQL("GRANT SELECT ON {}.builds TO {}, {}").format(
            sql.Identifier(SCHEMA), sql.Identifier(PUBLIC_ROLE), sql.Identifier(FULL_ROLE)
        )
    )


#: The SQL type of a typed column, per queryable kind.
SQL_TYPES = {"string": "text", "integer": "float8", "number": "float8", "boolean": "boolean"}


def _typed_value(value: Any, kind: str) -> Any:
    """A property's JSON value as its typed column holds it: what ``(props->>name)::type``
    gives (a string column's other values as their JSON text)."""
    if value is None:
        return None
    if SQL_TYPES[kind] == "text" and not isinstance(value, str):
        return orjson.dumps(value).decode()
    return value


def _rows(table: LayerTable) -> Any:
    """Each row of a view as the tables hold it."""
    geoms = shapely.set_srid(table.frame.geometry.to_numpy(), 4326)
    wkb = shapely.to_wkb(geoms, hex=True, include_srid=True)
    name, every = table.names
    population = (
        table.frame["population"].astype("float64").to_numpy()
        if "population" in table.frame
        else np.full(len(table.ids), np.nan)
    )
    dates = table.dates
    typed = list(table.queryables.items())
    for i in range(len(table.ids)):
        bounds = (table.minx[i], table.miny[i], table.maxx[i], table.maxy[i])
        record = table.records[i]
        yield (
            i,
            str(table.ids[i]),
            properties_json(table.records[i]).decode(),
            wkb[i],
            *(None if np.isnan(v) else float(v) for v in bounds),
            None if dates is None or np.isnat(dates[i]) else pd.Timestamp(dates[i]).to_pydatetime(),
            bool(table.restricted[i]),
            name[i],
            every[i],
            None if np.isnan(population[i]) else float(population[i]),
            *(_typed_value(record.get(name), kind) for name, kind in typed),
        )


def _copy_view(
    conn: psycopg.Connection, schema: str, name: str, table: LayerTable, readers: list[str]
) -> None:
    target = sql.Identifier(schema, name)
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} (ord integer PRIMARY KEY, fid text NOT NULL UNIQUE, "
            "props json, geom geometry(Geometry, 4326), minx float8, "
            "miny float8, maxx float8, maxy float8, date timestamp, restricted boolean, "
            "name_key text, every_key text, population float8{})"
        ).format(
            target,
            sql.SQL("").join(
                sql.SQL(", {} {}").format(
                    sql.Identifier(typed_column(name)), sql.SQL(SQL_TYPES[kind])
                )
                for name, kind in table.queryables.items()
            ),
        )
    )
    columns = sql.SQL(", ").join(
        sql.Identifier(c) for c in (*_COLUMNS, *(typed_column(name) for name in table.queryables))
    )
    with conn.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(target, columns)) as copy:
        for row in _rows(table):
            copy.write_row(row)
    conn.execute(sql.SQL("CREATE INDEX ON {} USING gist (geom)").format(target))
    conn.execute(sql.SQL("CREATE INDEX ON {} (date)").format(target))
    conn.execute(sql.SQL("ANALYZE {}").format(target))
    for role in readers:
        conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(target, sql.Identifier(role)))


def publish(url: str, build_dir: Path, build_id: str, keep: int = 3) -> None:
    """Copy a build into PostGIS, make it current in one transaction, keep the last ``keep``.

    A build published before is not copied again: it is made current if it is not."""
    catalog = read_build_catalog(build_dir, build_id)
    path = Path(build_dir) / build_id
    schema = schema_of(build_id)
    layers: dict[str, dict[str, Any]] = {}
    with psycopg.connect(url) as conn:
        conn.execute(_SETUP)
        _roles(conn)
        conn.commit()
        known = conn.execute(
            sql.SQL("SELECT current FROM {}.builds WHERE build_id = %s").format(
                sql.Identifier(SCHEMA)
            ),
            (build_id,),
        ).fetchone()
        if known is not None:  # published before: never rewritten under the replicas
            if not known[0]:
                _switch(conn, build_id)
            return
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}, {}").format(
                sql.Identifier(schema), sql.Identifier(PUBLIC_ROLE), sql.Identifier(FULL_ROLE)
            )
        )
        files = sql.Identifier(schema, "files")
        conn.execute(
            sql.SQL("CREATE TABLE {} (name text, public boolean, data bytea)").format(files)
        )
        typed = BuildCatalog.read(catalog, f"build {build_id}")
        for layer_id, meta in typed.vector_layers().items():
            views = {False: meta.as_seen(public=False)}
            if meta.public is not None:
                views[True] = meta.as_seen(public=True)
            for public, seen in views.items():
                data = (path / seen.file).read_bytes()
                table = LayerTable(layer_id, seen, gpd.read_parquet(io.BytesIO(data)))
                # The public role reads a layer's public view, or the layer when it has none.
                readers = [FULL_ROLE] + ([PUBLIC_ROLE] if public or len(views) == 1 else [])
                _copy_view(conn, schema, _table_name(layer_id, public), table, readers)
                conn.execute(
                    sql.SQL("INSERT INTO {} VALUES (%s, %s, %s)").format(files),
                    (_table_name(layer_id, public), public or len(views) == 1, data),
                )
                info = asdict(table.info)
                info.pop("meta")
                info[TYPED] = list(table.queryables)
                layers.setdefault(layer_id, {})["public" if public else "full"] = info
        if typed.basemap is not None:
            conn.execute(
                sql.SQL("INSERT INTO {} VALUES ('basemap', true, %s)").format(files),
                ((path / typed.basemap.file).read_bytes(),),
            )
        conn.execute(
            sql.SQL(
                "CREATE VIEW {} AS SELECT name, data FROM {} WHERE public; "
                "GRANT SELECT ON {} TO {}; GRANT SELECT ON {} TO {}"
            ).format(
                sql.Identifier(schema, "files_public"),
                files,
                sql.Identifier(schema, "files_public"),
                sql.Identifier(PUBLIC_ROLE),
                files,
                sql.Identifier(FULL_ROLE),
            )
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.builds (build_id, schema_name, catalog, layers) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (build_id) DO UPDATE SET "
                "schema_name = excluded.schema_name, catalog = excluded.catalog, "
                "layers = excluded.layers, published = now()"
            ).format(sql.Identifier(SCHEMA)),
            (build_id, schema, orjson.dumps(catalog).decode(), orjson.dumps(layers).decode()),
        )
        conn.commit()
        _switch(conn, build_id)
        _prune(conn, keep)


def _switch(conn: psycopg.Connection, build_id: str) -> None:
    """Make a published build the current one: one transaction, announced when it commits."""
    with conn.transaction():
        conn.execute(
            sql.SQL("UPDATE {}.builds SET current = false WHERE current").format(
                sql.Identifier(SCHEMA)
            )
        )
        conn.execute(
            sql.SQL("UPDATE {}.builds SET current = true WHERE build_id = %s").format(
                sql.Identifier(SCHEMA)
            ),
            (build_id,),
        )
        conn.execute(sql.SQL("SELECT pg_notify({}, %s)").format(sql.Literal(CHANNEL)), (build_id,))


def _prune(conn: psycopg.Connection, keep: int) -> None:
    """Drop every build but the current one and the newest ``keep`` − 1 others."""
    old = conn.execute(
        sql.SQL(
            "SELECT build_id, schema_name FROM {}.builds WHERE NOT current "
            "ORDER BY published DESC OFFSET %s"
        ).format(sql.Identifier(SCHEMA)),
        (max(keep - 1, 0),),
    ).fetchall()
    for build_id, schema in old:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL("DELETE FROM {}.builds WHERE build_id = %s").format(sql.Identifier(SCHEMA)),
            (build_id,),
        )
    conn.commit()


class PostgisBuildSource:
    """The ``BuildSource`` of a database: the build marked current in ``riskmap.builds``."""

    def __init__(self, url: str, build_dir: Path, pool_size: int = 8) -> None:
        self.build_dir = Path(build_dir)
        # A pool per access level, each connection under its role for its whole life: a
        # request is one statement, and a public connection cannot read anything else.
        self.pools = {
            role: ConnectionPool(
                url,
                min_size=1,
                max_size=pool_size,
                kwargs={"autocommit": True},
                configure=_as_role(role),
                open=True,
            )
            for role in (PUBLIC_ROLE, FULL_ROLE)
        }
        # Looking up the current build has a connection of its own: it is asked on the event
        # loop, which must never wait for a busy pool.
        self.pool = ConnectionPool(
            url,
            min_size=1,
            max_size=1,
            kwargs={"autocommit": True},
            configure=_as_role(PUBLIC_ROLE),
        )
        self._current: tuple[float, str] | None = None
        self._lock = threading.Lock()

    def current_id(self) -> str:
        """The current build (looked up at most once a second)."""
        now = time.monotonic()
        seen = self._current
        if seen is not None and now - seen[0] < CURRENT_TTL_S:
            return seen[1]
        with self.pool.connection() as conn:
            try:
                row = conn.execute(
                    sql.SQL("SELECT build_id FROM {}.builds WHERE current").format(
                        sql.Identifier(SCHEMA)
                    )
                ).fetchone()
            except psycopg.errors.UndefinedTable:
                row = None
        if row is None:
            raise NoBuildError("no build is published in the database: run 'riskmap build'")
        with self._lock:
            self._current = (now, row[0])
        return row[0]

    def open(self, build_id: str) -> PostgisStore:
        """The store of one published build."""
        with self.pool.connection() as conn:
            row = conn.execute(
                sql.SQL(
                    "SELECT schema_name, catalog, layers FROM {}.builds WHERE build_id = %s"
                ).format(sql.Identifier(SCHEMA)),
                (build_id,),
            ).fetchone()
        if row is None:
            raise NoBuildError(f"build {build_id} is not published in the database")
        catalog = BuildCatalog.read(row[1], f"build {build_id} in the database")
        return PostgisStore(
            self.pools, build_id, row[0], catalog, row[2], self.build_dir / build_id
        )


class PostgisStore:
    """One published build, answered by SQL under the caller's database role."""

    def __init__(
        self,
        pools: dict[str, ConnectionPool],
        build_id: str,
        schema: str,
        catalog: BuildCatalog,
        layers: dict[str, dict[str, Any]],
        raster_dir: Path,
    ) -> None:
        self.pools = pools
        self.build_id = build_id
        self.schema = schema
        self.catalog = catalog
        self._layers = layers
        self._raster_dir = raster_dir
        self._rasters: dict[str, RasterLayer] = {}
        self._frames: dict[str, gpd.GeoDataFrame] = {}
        self._tile_tables: dict[str, LayerTable] = {}
        # A build's tiles never change: kept, as the embedded store keeps them.
        self._tile_cache = TileCache(TILE_CACHE_BYTES)
        #: Matches per view and filter: a build never changes, so each is counted once.
        self._counts: dict[tuple[Any, ...], int] = {}
        self._lock = threading.Lock()

    # -- descriptions ---------------------------------------------------------------------

    def _seen(self, layer_id: str, access: Access) -> tuple[bool, dict[str, Any]]:
        """Whether this caller reads the layer's public view, and that view's record, or
        ``NotFoundError``."""
        views = self._layers.get(layer_id)
        if views is None:
            raise NotFoundError(
                f"no collection '{layer_id}'; collections are {', '.join(self._layers)}"
            )
        public = not access.sees_restricted and "public" in views
        return public, views["public" if public else "full"]

    def _view(self, layer_id: str, access: Access) -> tuple[str, LayerInfo]:
        """The table this caller reads and its description, or ``NotFoundError``."""
        public, info = self._seen(layer_id, access)
        meta = self.catalog.layers[layer_id].as_seen(public=public)
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in info.items() if k != TYPED}
        return _table_name(layer_id, public), LayerInfo(**fields, meta=meta)

    def _typed(self, layer_id: str, access: Access) -> SqlBackend:
        """The SQL of the properties of the view this caller reads (typed columns where the
        view has them)."""
        return SqlBackend(self._seen(layer_id, access)[1].get(TYPED, ()))

    def layers(self, access: Access = Access.anonymous) -> dict[str, LayerInfo]:
        """Every vector layer, as this caller sees it."""
        return {k: self._view(k, access)[1] for k in self._layers}

    def layer(self, layer_id: str, access: Access = Access.anonymous) -> LayerInfo:
        """One vector layer, as this caller sees it."""
        return self._view(layer_id, access)[1]

    def answers_at_once(self, layer_id: str, access: Access) -> bool:
        """Never: every page waits for the database."""
        return False

    def warm(self, like: Store | None = None) -> None:
        """Load now what answering would load on first use: the tables ``like`` (the build
        served before) had read whole (downloads, map pages) and the rasters it had opened;
        descriptions come with the build."""
        for access in (Access.anonymous, Access.analyst):
            self.layers(access)
        if not isinstance(like, PostgisStore):
            return
        for name in list(like._frames):
            layer_id = name.removesuffix("__public")
            if ("full" if name == layer_id else "public") in self._layers.get(layer_id, {}):
                self._frame(name, Access.analyst)  # the full role reads every view's file
        for layer_id in list(like._rasters):
            meta = self.catalog.layers.get(layer_id)
            if meta is not None and meta.kind == "raster":
                self.raster(layer_id)

    # -- queries --------------------------------------------------------------------------

    def _connection(self, access: Access) -> Any:
        return self.pools[FULL_ROLE if access.sees_restricted else PUBLIC_ROLE].connection()

    def _where(
        self, info: LayerInfo, query: ItemQuery, access: Access
    ) -> tuple[sql.Composable, list[Any], sql.Composable]:
        """The WHERE clause of a query, its parameters, and its ORDER BY."""
        parts: list[sql.Composable] = [sql.SQL("true")]
        params: list[Any] = []
        backend = self._typed(info.id, access)
        if not access.sees_restricted:
            parts.append(sql.SQL("NOT restricted"))  # the second lock, as in memory
        if query.bbox is not None:
            # The GiST index finds the candidates; the exact bounds decide, as in memory.
            west, south, east, north = query.bbox
            boxes = [(west, east)] if west <= east else [(west, 180.0), (-180.0, east)]
            parts.append(
                sql.SQL("({})").format(
                    sql.SQL(" OR ").join(
                        sql.SQL("geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326)") for _ in boxes
                    )
                )
            )
            for w, e in boxes:
                params += [w, south, e, north]
            x = "(maxx >= %s AND minx <= %s)" if west <= east else "(maxx >= %s OR minx <= %s)"
            parts.append(sql.SQL(x + " AND maxy >= %s AND miny <= %s"))
            params += [west, east, south, north]
        if query.interval is not None and info.date_field is not None:
            # Undated features match any datetime, as in memory.
            start, end = query.interval
            inside: list[sql.Composable] = [sql.SQL("true")]
            if start is not None:
                inside.append(sql.SQL("date >= %s"))
                params.append(start.tz_localize(None).to_pydatetime())
            if end is not None:
                inside.append(sql.SQL("date <= %s"))
                params.append(end.tz_localize(None).to_pydatetime())
            parts.append(sql.SQL("(date IS NULL OR ({}))").format(sql.SQL(" AND ").join(inside)))
        for column, value in query.filters.items():
            kind = info.queryables[column]
            given: Any = value
            if kind == "boolean":
                if value.lower() not in ("true", "false"):
                    raise BadQueryError("expected true or false", parameter=column)
                given = value.lower() == "true"
            elif kind != "string":
                try:
                    given = float(value)
                except ValueError as exc:
                    raise BadQueryError(
                        f"expected a {kind}, got {value!r}", parameter=column
                    ) from exc
                kind = "number"
            parts.append(sql.SQL("{} = %s").format(backend.property(column, kind)))
            params.append(given)
        if query.filter is not None:
            parts.append(condition(query.filter, info.queryables, info.date_field, backend.typed))
        order: sql.Composable = sql.SQL("ord")
        if query.sortby:
            # Missing values last either way, then layer order, as the embedded store sorts.
            order = sql.SQL(", ").join(
                [
                    sql.SQL("{} {} NULLS LAST").format(
                        backend.property(name, kind), sql.SQL("DESC" if descending else "ASC")
                    )
                    for name, kind, descending in sort_keys(
                        query.sortby, info.queryables, info.date_field
                    )
                ]
                + [sql.SQL("ord")]
            )
        if query.q is not None and (words := search_key(query.q).split()):
            for word in words:
                parts.append(sql.SQL("strpos(every_key, %s) > 0"))
                params.append(word)
            wanted = " ".join(words)
            order = (
                order
                if query.sortby
                else sql.SQL(
                    "CASE WHEN name_key = {w} THEN 0 WHEN starts_with(name_key, {w}) THEN 1 "
                    "WHEN strpos(' ' || name_key, ' ' || {w}) > 0 THEN 2 ELSE 3 END, "
                    "coalesce(population, 0) DESC, ord"
                ).format(w=sql.Literal(wanted))
            )
        return sql.SQL(" AND ").join(parts), params, order

    def _check_properties(self, info: LayerInfo, names: tuple[str, ...]) -> None:
        unknown = [n for n in names if n not in info.fields]
        if unknown:
            raise BadQueryError(
                f"unknown properties {', '.join(unknown)}; this collection has "
                f"{', '.join(info.fields)}",
                parameter="properties",
            )

    def _select(
        self, layer_id: str, query: ItemQuery, access: Access, columns: str
    ) -> tuple[LayerInfo, int, list[tuple[Any, ...]]]:
        """The count of matches and the page's rows (``columns``), under the caller's role."""
        name, info = self._view(layer_id, access)
        if query.properties is not None:
            self._check_properties(info, query.properties)
        where, params, order = self._where(info, query, access)
        table = sql.Identifier(self.schema, name)
        key = (
            name,
            query.bbox,
            query.interval,
            tuple(sorted(query.filters.items())),
            query.filter.key if query.filter is not None else None,
            query.q,
        )
        with self._connection(access) as conn:
            matched = self._counts.get(key)
            if matched is None:
                matched = conn.execute(
                    sql.SQL("SELECT count(*) FROM {} WHERE {}").format(table, where), params
                ).fetchone()[0]
                with self._lock:
                    if len(self._counts) >= COUNTS_KEPT:
                        self._counts.clear()
                    self._counts[key] = matched
            if query.after is not None:
                found = conn.execute(
                    sql.SQL("SELECT ord FROM {} WHERE fid = %s AND {}").format(
                        table, sql.SQL("NOT restricted" if not access.sees_restricted else "true")
                    ),
                    (query.after,),
                ).fetchone()
                if found is None:
                    raise BadQueryError(
                        f"collection '{layer_id}' has no feature '{query.after}' to page after",
                        parameter="after",
                    )
                rows = conn.execute(
                    sql.SQL(
                        "SELECT " + columns + " FROM {} WHERE {} AND ord > %s ORDER BY ord LIMIT %s"
                    ).format(table, where),
                    [*params, found[0], query.limit],
                ).fetchall()
            else:
                rows = conn.execute(
                    sql.SQL(
                        "SELECT " + columns + " FROM {} WHERE {} ORDER BY {} OFFSET %s LIMIT %s"
                    ).format(table, where, order),
                    [*params, query.offset, query.limit],
                ).fetchall()
        return info, matched, rows

    def query(self, layer_id: str, query: ItemQuery, access: Access) -> FeaturePage:
        """A page of the features matching ``query``, each written by ``ST_AsGeoJSON``."""
        _, matched, rows = self._select(
            layer_id, query, access, f"fid, ST_AsGeoJSON(geom, {DECIMALS}), props::text"
        )
        ids, features, records = [], [], []
        for fid, geometry, props in rows:
            geometry = geometry.encode() if geometry is not None else b"null"
            record = orjson.loads(props)
            if query.properties is None:
                text = props.encode()
            else:
                record = {n: record[n] for n in query.properties}
                text = properties_json(record)
            ids.append(fid)
            features.append(feature_bytes(fid, geometry, text))
            records.append(record)
        return FeaturePage(layer_id, self.build_id, matched, ids, features, records)

    def frame(self, layer_id: str, query: ItemQuery, access: Access) -> gpd.GeoDataFrame:
        """The matching rows as a table: selected in SQL, with the columns and types of the
        layer's GeoParquet (kept in the build's schema)."""
        name, _ = self._view(layer_id, access)
        _, _, rows = self._select(layer_id, query, access, "ord")
        whole = self._frame(name, access)
        out = whole.iloc[[r[0] for r in rows]]
        if query.properties is not None:
            out = out[[*query.properties, out.geometry.name]]
        return out

    def _frame(self, name: str, access: Access) -> gpd.GeoDataFrame:
        frame = self._frames.get(name)
        if frame is None:
            files = "files" if access.sees_restricted else "files_public"
            with self._connection(access) as conn:
                row = conn.execute(
                    sql.SQL("SELECT data FROM {} WHERE name = %s").format(
                        sql.Identifier(self.schema, files)
                    ),
                    (name,),
                ).fetchone()
            frame = gpd.read_parquet(io.BytesIO(row[0])).reset_index(drop=True)
            with self._lock:
                self._frames[name] = frame
        return frame

    def get(self, layer_id: str, feature_id: str, access: Access) -> Feature:
        """One feature; a row this caller may not see does not exist for them."""
        name, _ = self._view(layer_id, access)
        guard = "" if access.sees_restricted else " AND NOT restricted"
        with self._connection(access) as conn:
            row = conn.execute(
                sql.SQL(
                    f"SELECT ST_AsGeoJSON(geom, {DECIMALS}), props::text FROM {{}} "
                    "WHERE fid = %s" + guard
                ).format(sql.Identifier(self.schema, name)),
                (feature_id,),
            ).fetchone()
        if row is None:
            raise NotFoundError(f"collection '{layer_id}' has no feature '{feature_id}'")
        geometry = row[0].encode() if row[0] is not None else b"null"
        return Feature(
            feature_id, feature_bytes(feature_id, geometry, row[1].encode()), orjson.loads(row[1])
        )

    def _tiles(self, layer_id: str, name: str, access: Access) -> LayerTable:
        """A view's rows in memory for its grouped tiles (positions, properties, groups)."""
        table = self._tile_tables.get(name)
        if table is None:
            table = LayerTable(layer_id, self.catalog.layers[layer_id], self._frame(name, access))
            with self._lock:
                self._tile_tables[name] = table
        return table

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
        """One Mapbox Vector Tile of the rows this caller may see (and ``flt`` matches): by
        ``ST_AsMVT`` at the layer's detail zoom and above; below it, the points grouped as
        the embedded store groups them, of the rows selected here."""
        name, info = self._view(layer_id, access)
        if fields is not None:
            self._check_properties(info, fields)
        key = (name, z, x, y, flt.key if flt is not None else None, fields)
        tile = self._tile_cache.get(key)
        if tile is None:
            tile = self._vector_tile(layer_id, name, info, z, x, y, access, flt, fields)
            self._tile_cache.put(key, tile)
        return tile

    def _vector_tile(
        self,
        layer_id: str,
        name: str,
        info: LayerInfo,
        z: int,
        x: int,
        y: int,
        access: Access,
        flt: Filter | None,
        fields: tuple[str, ...] | None,
    ) -> bytes:
        table = self._tiles(layer_id, name, access)
        if table.groups.grouped(z):
            _, _, every = self._select(layer_id, ItemQuery(filter=flt, limit=None), access, "ord")
            key = (access.sees_restricted, flt.key if flt is not None else None)
            index = table.groups.index(key, np.array([r[0] for r in every], dtype="int64"))
            box = ItemQuery(bbox=mvt.lonlat_box(z, x, y), filter=flt, limit=None)
            _, _, near = self._select(layer_id, box, access, "ord")
            others = np.array([r[0] for r in near], dtype="int64")
            others = others[~table.groups.is_point[others]]
            return mvt.encode_tile(
                layer_id, table.mercator, table.records, others, z, x, y, fields, index.level(z)
            )
        box = ItemQuery(bbox=mvt.lonlat_box(z, x, y), filter=flt)
        where, params, _ = self._where(info, box, access)
        props = (
            sql.SQL("props::jsonb")
            if fields is None
            else sql.SQL(
                "(SELECT coalesce(jsonb_object_agg(key, value), '{}'::jsonb) "
                "FROM jsonb_each(props::jsonb) WHERE key = ANY(%s::text[]))"
            )
        )
        statement = sql.SQL(
            "SELECT ST_AsMVT(t, {layer}, {extent}, 'geom') FROM (SELECT ST_AsMVTGeom("
            "ST_Transform(geom, 3857), ST_TileEnvelope(%s, %s, %s), {extent}, {buffer}, true) "
            "AS geom, {props} AS props FROM {table} WHERE {where} AND geom IS NOT NULL "
            "ORDER BY ord) t "
            "WHERE geom IS NOT NULL"
        ).format(
            layer=sql.Literal(layer_id),
            extent=sql.Literal(mvt.EXTENT),
            buffer=sql.Literal(mvt.BUFFER),
            props=props,
            table=sql.Identifier(self.schema, name),
            where=where,
        )
        values = [z, x, y, *([] if fields is None else [list(fields)]), *params]
        with self._connection(access) as conn:
            row = conn.execute(statement, values).fetchone()
        return bytes(row[0]) if row and row[0] is not None else b""

    def raster(self, layer_id: str) -> RasterLayer:
        """A raster layer: its COG in the build folder every replica reads."""
        layer = self._rasters.get(layer_id)
        if layer is not None:
            return layer
        meta = raster_meta(self.catalog, layer_id)
        layer = RasterLayer(self._raster_dir / meta.file, raster_info(layer_id, meta))
        with self._lock:
            self._rasters[layer_id] = layer
        return layer

    def resource(self, name: str) -> bytes:
        """A file of the build that is not a layer (``basemap``)."""
        if name != "basemap":
            raise NotFoundError(f"build {self.build_id} has no {name}")
        with self._connection(Access.anonymous) as conn:
            row = conn.execute(
                sql.SQL("SELECT data FROM {} WHERE name = 'basemap'").format(
                    sql.Identifier(self.schema, "files_public")
                )
            ).fetchone()
        if row is None:
            raise NotFoundError(
                f"build {self.build_id} has no basemap: rebuild with 'riskmap build'"
            )
        return bytes(row[0])


def _as_role(role: str) -> Callable[[psycopg.Connection], None]:
    """A pool's ``configure``: the new connection acts as ``role`` from then on, and plans each
    query for its parameters."""

    def configure(conn: psycopg.Connection) -> None:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        # Plan each query for its own box: a generic plan (psycopg prepares a statement run
        # five times) cannot tell a street from a country, and sorts the whole country.
        conn.execute("SET plan_cache_mode = force_custom_plan")

    return configure
