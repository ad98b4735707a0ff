"""Source adapters: one per file format, registered by the name used in ``sources.toml``."""

from __future__ import annotations

from pathlib import Path

from geo_service.errors import SourceError
from geo_service.ingest.base import Adapter, RawTable, ReadOptions
from geo_service.ingest.csv_table import CsvAdapter, CsvWktAdapter
from geo_service.ingest.vector_file import GeoParquetAdapter, VectorFileAdapter

ADAPTERS: dict[str, Adapter] = {
    a.name: a
    for a in (
        CsvAdapter(),
        CsvWktAdapter(),
        VectorFileAdapter("geojson", (".geojson", ".json")),
        VectorFileAdapter("gpkg", (".gpkg",)),
        VectorFileAdapter("shapefile", (".shp", ".zip")),
        VectorFileAdapter("kml", (".kml", ".kmz")),
        GeoParquetAdapter(),
    )
}


def adapter_for(path: Path, name: str | None = None) -> Adapter:
    """The adapter named in the catalog, or the one whose suffix matches the file."""
    if name is not None:
        try:
            return ADAPTERS[name]
        except KeyError as exc:
            raise SourceError(
                f"unknown adapter '{name}'; known: {', '.join(ADAPTERS)}", path=path
            ) from exc
    suffix = path.suffix.lower()
    for adapter in ADAPTERS.values():
        if suffix in adapter.suffixes:
            return adapter
    raise SourceError(
        f"cannot tell the format from the suffix '{suffix}'; set adapter = one of "
        f"{', '.join(ADAPTERS)}",
        path=path,
    )


__all__ = ["ADAPTERS", "Adapter", "RawTable", "ReadOptions", "adapter_for"]
