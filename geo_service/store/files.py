"""The embedded store's builds: a folder of builds, each GeoParquet layers, COG rasters and
its ``catalog.json``.

``current`` is a symlink to the build being served; reading it once per request is one
``readlink(2)``, so a server notices a new build without restarting.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from geo_service.errors import NoBuildError
from geo_service.store.catalog import BuildCatalog
from geo_service.store.memory import BuildStore

CURRENT = "current"


class FileBuildSource:
    """The ``BuildSource`` of a build folder: ``current`` names the build, each build is
    served from memory (``BuildStore``)."""

    def __init__(self, build_dir: Path) -> None:
        self.build_dir = Path(build_dir)

    def current_id(self) -> str:
        """The id ``current`` points at, or ``NoBuildError``."""
        return current_build_id(self.build_dir)

    def open(self, build_id: str) -> BuildStore:
        """The store of one build of the folder."""
        catalog = BuildCatalog.read(
            read_build_catalog(self.build_dir, build_id), f"build {build_id}"
        )
        return BuildStore(self.build_dir, build_id, catalog)


def current_build_id(build_dir: Path) -> str:
    """The id of the current build, or :class:`NoBuildError`."""
    try:
        return os.readlink(Path(build_dir) / CURRENT)
    except FileNotFoundError as exc:
        raise NoBuildError(
            f"no current build in {build_dir}: run 'riskmap build' (or 'make run')"
        ) from exc


def read_build_catalog(build_dir: Path, build_id: str | None = None) -> dict[str, Any]:
    """``catalog.json`` of a build (the current one by default)."""
    build_id = build_id or current_build_id(build_dir)
    path = Path(build_dir) / build_id / "catalog.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise NoBuildError(f"build {build_id} has no catalog.json at {path}") from exc


def load_layer(
    build_dir: Path, layer_id: str, build_id: str | None = None, *, public: bool = False
) -> gpd.GeoDataFrame:
    """One layer of a build as a GeoDataFrame (EPSG:4326): every row, as the build holds it,
    or with ``public`` as anonymous callers get it (restricted rows as H3 cells)."""
    catalog = read_build_catalog(build_dir, build_id)
    try:
        meta = catalog["layers"][layer_id]
    except KeyError as exc:
        known = ", ".join(catalog["layers"]) or "(none)"
        raise KeyError(
            f"build {catalog['build_id']} has no layer '{layer_id}'; it has {known}"
        ) from exc
    file = meta.get("public", meta)["file"] if public else meta["file"]
    return gpd.read_parquet(Path(build_dir) / catalog["build_id"] / file)


def load_kind(build_dir: Path, kind: str, build_id: str | None = None) -> gpd.GeoDataFrame:
    """Every row of one kind of source as the risk model reads it: its layer and, for a kind
    published as areas and points (concessions: ``concessions`` and ``mine_sites``), both."""
    from geo_service.schemas import SCHEMAS, Kind

    layer = load_layer(build_dir, kind, build_id)
    points = SCHEMAS[Kind(kind)].points_layer
    if points is None:
        return layer
    parts = [layer, load_layer(build_dir, points[0], build_id)]
    return gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=layer.crs)
