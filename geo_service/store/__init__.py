"""Reading builds: the store interface (``base``) and its embedded backend (GeoParquet and COG
files on local disk, served from memory)."""

from __future__ import annotations

from geo_service.settings import ApiSettings
from geo_service.store.base import BuildSource
from geo_service.store.files import FileBuildSource


def open_store(settings: ApiSettings) -> BuildSource:
    """The builds the service answers from, as the settings name them: the build folder."""
    return FileBuildSource(settings.build_dir)
