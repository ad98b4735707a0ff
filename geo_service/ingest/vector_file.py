"""Vector files read through GDAL (pyogrio): GeoJSON, GeoPackage, Shapefile (also zipped), KML;
and GeoParquet through pyarrow.

GDAL knows these formats far better than we could; the adapter only picks the layer, reads
the needed columns and hands the geometries over with the file's own CRS. What GDAL does not
do is say plainly that a file is incomplete: a half-copied Shapefile or DBF reads as fewer
rows without a word, so each format's own length fields are checked first, and GDAL's and
Arrow's errors are turned into one line that says what is wrong with the file.
"""

from __future__ import annotations

import json
import struct
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

import geopandas as gpd
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pyogrio
from pyogrio.errors import DataLayerError, DataSourceError, FeatureError, FieldError, GeometryError
from pyproj import CRS

from geo_service.errors import SourceError
from geo_service.ingest.base import ProgressFn, RawTable, ReadOptions

#: What GDAL and Arrow raise for a file they cannot read (Arrow's errors subclass these too).
_READ_ERRORS = (
    DataSourceError,
    DataLayerError,
    FeatureError,
    FieldError,
    GeometryError,
    pa.ArrowException,
    ValueError,
    OSError,
)
_AGAIN = "copy it again from the publisher"


def _gdal_path(opts: ReadOptions) -> str:
    if not opts.path.exists():
        raise SourceError("file not found", path=opts.path)
    return str(opts.path)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


class VectorFileAdapter:
    """One GDAL-readable format; ``layer`` picks a layer of a multi-layer file (GeoPackage, KML)."""

    def __init__(self, name: str, suffixes: tuple[str, ...], driver: str | None = None) -> None:
        self.name = name
        self.suffixes = suffixes
        self.driver = driver

    def _layer(self, opts: ReadOptions) -> str | int | None:
        path = _gdal_path(opts)
        _check_complete(self.name, opts.path)
        try:
            layers = pyogrio.list_layers(path)
        except _READ_ERRORS as exc:
            raise _unreadable(self.name, opts.path, exc) from exc
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
        """Field names of the layer, from its schema; a layer with no features is refused."""
        layer = self._layer(opts)
        try:
            info = pyogrio.read_info(_gdal_path(opts), layer=layer)
        except _READ_ERRORS as exc:
            raise _unreadable(self.name, opts.path, exc) from exc
        if info["features"] == 0:
            # Said before the mapping is checked: an empty GeoJSON has no fields either, and
            # "column not in the file" would send the user after the wrong problem.
            named = f"its layer '{layer}'" if isinstance(layer, str) and opts.layer else "it"
            raise SourceError(
                f"holds no features ({named} is empty): a source with no rows would drop "
                "the whole dataset from the build",
                path=opts.path,
            )
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
        except _READ_ERRORS as exc:
            raise _unreadable(self.name, opts.path, exc) from exc
        if progress:
            progress(len(gdf), len(gdf))
        return _raw_from_frame(opts, gdf)


class GeoParquetAdapter:
    """GeoParquet (the geometry column named in the file's ``geo`` metadata)."""

    name = "geoparquet"
    suffixes = (".parquet", ".geoparquet")

    def _schema(self, opts: ReadOptions) -> tuple[pa.Schema, str]:
        _gdal_path(opts)
        _check_complete(self.name, opts.path)
        try:
            schema = pq.read_schema(opts.path)
        except _READ_ERRORS as exc:
            raise _unreadable(self.name, opts.path, exc) from exc
        return schema, _geo_column(opts, schema.metadata)

    def columns(self, opts: ReadOptions) -> list[str]:
        """Column names from the Parquet schema, geometry excluded; no rows is refused."""
        schema, geo = self._schema(opts)
        if pq.read_metadata(opts.path).num_rows == 0:
            raise SourceError(
                "holds no rows: a source with no rows would drop the whole dataset from the build",
                path=opts.path,
            )
        return [n for n in schema.names if n != geo]

    def read(
        self, opts: ReadOptions, columns: Sequence[str] | None, progress: ProgressFn | None = None
    ) -> RawTable:
        """Read the named columns and the primary geometry column."""
        _, geo = self._schema(opts)
        cols = None if columns is None else [*columns, geo]
        try:
            gdf = gpd.read_parquet(opts.path, columns=cols)
        except _READ_ERRORS as exc:
            raise _unreadable(self.name, opts.path, exc) from exc
        if progress:
            progress(len(gdf), len(gdf))
        return _raw_from_frame(opts, gdf)


def _geo_column(opts: ReadOptions, metadata: dict[bytes, bytes] | None) -> str:
    meta = (metadata or {}).get(b"geo")
    if meta is None:
        raise SourceError(
            "is Parquet without GeoParquet 'geo' metadata: write it with geopandas or GDAL, "
            "or convert it to CSV with lon/lat columns",
            path=opts.path,
        )
    try:
        return str(json.loads(meta)["primary_column"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SourceError(
            "has GeoParquet 'geo' metadata that names no primary geometry column: "
            "write it again with geopandas or GDAL",
            path=opts.path,
        ) from exc


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


# --- is the file whole? ---------------------------------------------------------------------


def _check_complete(adapter: str, path: Path) -> None:
    """Compare a file's size with the size its own header records, where the format has one.

    Cheap (a few header bytes), and the only way to catch a half-copied Shapefile or DBF:
    GDAL reads what is there and the rest of the rows are silently gone.
    """
    if adapter == "gpkg":
        _check_sqlite(path)
    elif adapter == "geoparquet":
        _check_parquet(path)
    elif adapter == "shapefile":
        if path.suffix.lower() == ".zip":
            _check_zipped_shapefile(path)
        else:
            for part in _shapefile_parts(path):
                with part.open("rb") as fh:
                    _check_shapefile_part(part.name, fh, part.stat().st_size, path)


def _truncated(path: Path, what: str, expected: int, actual: int) -> SourceError:
    return SourceError(
        f"is truncated: its {what} records {expected:,} bytes but the file has {actual:,}; "
        + _AGAIN,
        path=path,
    )


def _check_sqlite(path: Path) -> None:
    with path.open("rb") as fh:
        head = fh.read(100)
    if len(head) < 100 or not head.startswith(b"SQLite format 3\x00"):
        raise SourceError(
            f"is not a GeoPackage: it does not start like an SQLite database ({len(head)} "
            f"bytes read); it may be truncated or another format",
            path=path,
        )
    page_size = struct.unpack(">H", head[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    pages = struct.unpack(">I", head[28:32])[0]
    # The page count is only kept up to date when the two change counters agree.
    if head[24:28] == head[92:96] and pages:
        size = path.stat().st_size
        if size < page_size * pages:
            raise _truncated(path, "SQLite header", page_size * pages, size)


def _check_parquet(path: Path) -> None:
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(4)
        fh.seek(max(0, size - 4))
        tail = fh.read(4)
    if head != b"PAR1":
        raise SourceError("is not a Parquet file (it does not start with 'PAR1')", path=path)
    if tail != b"PAR1":
        raise SourceError(
            "is not a complete Parquet file: the footer that ends every Parquet file is "
            f"missing, so it is truncated; {_AGAIN}",
            path=path,
        )


def _shapefile_parts(shp: Path) -> list[Path]:
    parts = []
    for suffix in (".shp", ".shx", ".dbf"):
        for candidate in (shp.with_suffix(suffix), shp.with_suffix(suffix.upper())):
            if candidate.exists():
                parts.append(candidate)
                break
    return parts


def _check_shapefile_part(name: str, fh: BinaryIO, size: int, path: Path) -> None:
    """.shp and .shx record their length in 16-bit words; .dbf its record count and size."""
    head = fh.read(32)
    suffix = Path(name).suffix.lower()
    if suffix in (".shp", ".shx"):
        if len(head) < 28 or struct.unpack(">i", head[0:4])[0] != 9994:
            raise SourceError(f"{name} is not a Shapefile part (bad header)", path=path)
        expected = struct.unpack(">i", head[24:28])[0] * 2
        if size < expected:
            raise _truncated(path, f"{name} header", expected, size)
    elif suffix == ".dbf":
        if len(head) < 12:
            raise _truncated(path, f"{name} header", 32, size)
        records, header_len, record_len = struct.unpack("<IHH", head[4:12])
        expected = header_len + records * record_len
        if size < expected:
            raise SourceError(
                f"is truncated: {name} records {records:,} rows ({expected:,} bytes) but holds "
                f"{size:,} bytes, so {records - max(0, size - header_len) // max(record_len, 1):,} "
                f"rows are missing; {_AGAIN}",
                path=path,
            )


def _check_zipped_shapefile(path: Path) -> None:
    if not zipfile.is_zipfile(path):
        raise SourceError(
            "is not a complete zip archive: the directory that ends every zip file is missing, "
            f"so it is truncated (or not a zip file); {_AGAIN}",
            path=path,
        )
    try:
        with zipfile.ZipFile(path) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            if not any(i.filename.lower().endswith(".shp") for i in infos):
                names = ", ".join(i.filename for i in infos[:6]) or "nothing"
                raise SourceError(f"holds no .shp file (it holds {names})", path=path)
            for info in infos:
                if Path(info.filename).suffix.lower() in (".shp", ".shx", ".dbf"):
                    with zf.open(info) as fh:
                        _check_shapefile_part(info.filename, fh, info.file_size, path)  # type: ignore[arg-type]
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise SourceError(
            f"is a damaged zip archive ({_one_line(exc)}); {_AGAIN}", path=path
        ) from exc


# --- GDAL's and Arrow's errors, said plainly ------------------------------------------------


def _unreadable(adapter: str, path: Path, exc: BaseException) -> SourceError:
    """One line naming what is wrong with the file, GDAL's or Arrow's own words kept at the end."""
    detail = _one_line(exc).replace(str(path), path.name)
    for test, explain in _EXPLANATIONS:
        message = explain(adapter, path, detail) if test(adapter, detail) else None
        if message:
            return SourceError(message, path=path)
    return SourceError(f"cannot be read as {adapter}: {detail}", path=path)


def _json_message(adapter: str, path: Path, detail: str) -> str:
    at = detail.split("; ", 1)[-1]  # "At line 75, character 20: Unterminated object"
    at = at[:1].lower() + at[1:]
    last_line = _line_count(path)
    if f"line {last_line}," in at or "Unterminated" in at:
        return (
            f"is not complete JSON ({at}): the file ends before its last object is closed, "
            f"so it looks truncated; {_AGAIN}"
        )
    return f"is not valid JSON: {at}"


def _xml_message(adapter: str, path: Path, detail: str) -> str:
    at = detail.split(":", 1)[-1].strip() if ":" in detail else detail
    if "no element found" in at or "unclosed token" in at:
        return (
            f"is not complete XML ({at}): the file ends before its elements are closed, "
            f"so it looks truncated; {_AGAIN}"
        )
    return f"is not valid KML: {at}"


def _unrecognised_message(adapter: str, path: Path, detail: str) -> str:
    with path.open("rb") as fh:
        head = fh.read(4)
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return (
            "is UTF-16 text (it starts with a UTF-16 byte-order mark), which GDAL does not "
            f"read as {adapter}: save it as UTF-8"
        )
    return (
        f"is not a {adapter} file GDAL recognises: it may be truncated, damaged or another format"
    )


def _line_count(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 22), b"")) + 1


_Test = Callable[[str, str], bool]
_Explain = Callable[[str, Path, str], str]
_EXPLANATIONS: list[tuple[_Test, _Explain]] = [
    (
        lambda a, d: "database disk image is malformed" in d or "file is not a database" in d,
        lambda a, p, d: (
            "is a damaged GeoPackage (SQLite: database disk image is malformed): it looks "
            f"truncated or corrupted; {_AGAIN}"
        ),
    ),
    (lambda a, d: a == "geojson" and "Failed to read GeoJSON data" in d, _json_message),
    (lambda a, d: a == "kml" and "ERROR parsing kml" in d, _xml_message),
    (lambda a, d: "not recognized as being in a supported file format" in d, _unrecognised_message),
    (
        lambda a, d: "magic bytes not found" in d,
        lambda a, p, d: f"is not a complete Parquet file (its footer is missing); {_AGAIN}",
    ),
]
