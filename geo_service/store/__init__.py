"""Reading builds: the store interface (``base``), its embedded backend (GeoParquet and COG
files on local disk, served from memory) and its PostGIS backend (``postgis``)."""

from __future__ import annotations

from geo_service.settings import ApiSettings
from geo_service.store.base import BuildSource
from geo_service.store.files import FileBuildSource


def open_store(settings: ApiSettings) -> BuildSource:
    """The builds the service answers from: the PostGIS database of ``store_url``, or else the
    build folder (rasters are read from the build folder either way)."""
    if settings.store_url:
        from geo_service.store.postgis import PostgisBuildSource

        return PostgisBuildSource(settings.store_url, settings.build_dir)
    return FileBuildSource(settings.build_dir)
