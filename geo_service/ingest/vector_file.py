"""Vector files read through GDAL (pyogrio): GeoJSON, GeoPackage, Shapefile (also zipped), KML;
and GeoParquet through pyarrow.

GDAL knows these formats far better than we could; the adapter only picks the layer, reads
the needed columns and hands the geometries over with the file's own CRS.
"""

from __future__ import annotations

from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import pyarrow.parquet as pq
import pyogrio
from pyogrio.errors import DataLayerError, DataSourceError
from pyproj import CRS

from geo_service.errors import SourceError
from geo_service.ingest.base import ProgressFn, RawTable, ReadOptions


def _gdal_path(opts: ReadOptions) -> str:
    if not opts.path.exists():
        raise SourceError("file not found", path=opts.path)
    return str(opts.path)


class VectorFileAdapter:
    """One GDAL-readable format; ``layer`` picks a layer of a multi-layer file (GeoPackage, KML)."""

    def __init__(self, name: str, suffixes: tuple[str, ...], driver: str | None = None) -> None:
        self.name = name
        self.suffixes = suffixes
        self.driver = driver

    def _layer(self, opts: ReadOptions) -> str | int | None:
        path = _gdal_path(opts)
        try:
            layers = pyogrio.list_layers(path)
        except (DataSourceError, DataLayerError) as exc:
            raise SourceError(f"cannot be opened as {self.name}: {exc}", path=opts.path) from exc
        names = [str(n) for n, _ in layers]
        if opts.layer is not None:
            if opts.layer not in names:
                raise SourceError(
                    f"has no layer '{opts.layer}'; its layers are {', '.join(names) or '(none)'}",
                    path=opts.path,
                )
            return opts.layer
        if not names:
            raise SourceError(f"holds no layer: is it an empty {self.name} file?", path=opts.path)
        if len(names) > 1 and self.name == "gpkg":
            raise SourceError(
                f'has {len(names)} layers ({", ".join(names)}); name one with layer = "..." '
                "in the source's catalog entry",
                path=opts.path,
            )
        return names[0]

    def columns(self, opts: ReadOptions) -> list[str]:
        """Field names of the layer, from its schema."""
        layer = self._layer(opts)
        try:
            info = pyogrio.read_info(_gdal_path(opts), layer=layer)
        except (DataSourceError, DataLayerError) as exc:
            raise SourceError(f"cannot be read as {self.name}: {exc}", path=opts.path) from exc
        return [str(f) for f in info["fields"]]

    def read(
        self, opts: ReadOptions, columns: Sequence[str] | None, progress: ProgressFn | None = None
    ) -> RawTable:
        """Read the named fields and the geometries, keeping the file's CRS."""
        layer = self._layer(opts)
        try:
            gdf = pyogrio.read_dataframe(
                _gdal_path(opts),
                layer=layer,
                columns=list(columns) if columns is not None else None,
                use_arrow=True,
            )
        except (DataSourceError, DataLayerError, ValueError) as exc:
            raise SourceError(f"cannot be read as {self.name}: {exc}", path=opts.path) from exc
        if progress:
            progress(len(gdf), len(gdf))
        return _raw_from_frame(opts, gdf)


class GeoParquetAdapter:
    """GeoParquet (the geometry column named in the file's ``geo`` metadata)."""

    name = "geoparquet"
    suffixes = (".parquet", ".geoparquet")

    def columns(self, opts: ReadOptions) -> list[str]:
        """Column names from the Parquet schema, geometry excluded."""
        _gdal_path(opts)
        try:
            schema = pq.read_schema(opts.path)
        except Exception as exc:  # pyarrow raises several unrelated types for a bad file
            raise SourceError(f"cannot be read as GeoParquet: {exc}", path=opts.path) from exc
        geo = _geo_column(opts, schema.metadata)
        return [n for n in schema.names if n != geo]

    def read(
        self, opts: ReadOptions, columns: Sequence[str] | None, progress: ProgressFn | None = None
    ) -> RawTable:
        """Read the named columns and the primary geometry column."""
        schema = pq.read_schema(opts.path)
        geo = _geo_column(opts, schema.metadata)
        cols = None if columns is None else [*columns, geo]
        try:
            gdf = gpd.read_parquet(opts.path, columns=cols)
        except Exception as exc:
            raise SourceError(f"cannot be read as GeoParquet: {exc}", path=opts.path) from exc
        if progress:
            progress(len(gdf), len(gdf))
        return _raw_from_frame(opts, gdf)


def _geo_column(opts: ReadOptions, metadata: dict[bytes, bytes] | None) -> str:
    import json

    meta = (metadata or {}).get(b"geo")
    if meta is None:
        raise SourceError(
            "is Parquet without GeoParquet 'geo' metadata: write it with geopandas or GDAL, "
            "or convert it to CSV with lon/lat columns",
            path=opts.path,
        )
    return json.loads(meta)["primary_column"]


def _raw_from_frame(opts: ReadOptions, gdf: gpd.GeoDataFrame) -> RawTable:
    crs = CRS.from_user_input(gdf.crs) if gdf.crs is not None else None
    data = gdf.drop(columns=gdf.geometry.name).reset_index(drop=True)
    return RawTable(
        path=opts.path,
        data=data,
        records=np.arange(1, len(gdf) + 1, dtype=np.int64),
        crs=crs,
        geometry=gdf.geometry.to_numpy(dtype=object) if len(gdf) else np.empty(0, dtype=object),
        record_word="feature",
    )
