"""A ``population`` source: a raster of people per cell, read and checked.

Any CRS and any GDAL raster (GeoTIFF, COG); one band of counts. Checks: a CRS, a stated year,
counts that are numbers ≥ 0. Nodata, NaN and negative cells count as no people; negative ones
are reported like rejected rows (cell row and column), so nothing is dropped unsaid.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import rasterio.errors
import rasterio.shutil
from pyproj import CRS, Transformer
from rasterio.transform import Affine

from geo_service.catalog import SourceEntry
from geo_service.errors import SourceError
from geo_service.ingest.base import ProgressFn
from geo_service.ingest.problems import COLUMNS

#: Negative cells listed one by one in the rejects; the rest are summed up in one more row.
LISTED_NEGATIVES = 20


@dataclass(frozen=True)
class PopulationGrid:
    """People per cell of one source: counts (0 where none or nodata) on the source's grid."""

    key: str
    path: Path
    year: int
    crs: CRS
    transform: Affine
    people: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        """Rows and columns."""
        return self.people.shape  # type: ignore[return-value]

    @cached_property
    def total(self) -> float:
        """Every person the grid holds."""
        return float(self.people.sum(dtype=np.float64))

    def frame(self) -> PopulationGrid:
        """The grid without its counts: where its cells are (CRS, transform), light enough to
        send with a task."""
        return replace(self, people=np.zeros((0, 0), dtype=self.people.dtype))

    def populated(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows, columns and counts of the cells that hold people."""
        rows, cols = np.nonzero(self.people > 0)
        return rows, cols, self.people[rows, cols].astype(np.float64)

    def centres_lonlat(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cell centres in EPSG:4326."""
        x, y = self.transform @ (cols + 0.5, rows + 0.5)
        if self.crs.equals(CRS.from_epsg(4326)):
            return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        to = Transformer.from_crs(self.crs, "EPSG:4326", always_xy=True)
        lon, lat = to.transform(x, y)
        return np.asarray(lon), np.asarray(lat)

    def to_grid_crs(self, frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        """A layer in the grid's CRS."""
        return (
            frame
            if frame.crs is not None and CRS(frame.crs).equals(self.crs)
            else frame.to_crs(self.crs)
        )


def read_population(
    entry: SourceEntry, progress: ProgressFn | None = None
) -> tuple[PopulationGrid, pd.DataFrame, dict[str, int]]:
    """The grid, its problem rows (rejects-file columns) and counts of cells."""
    path = entry.path
    try:
        src = rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise SourceError(f"cannot be read as a raster ({exc})", path=path) from exc
    with src:
        if src.crs is None:
            raise SourceError(
                "has no coordinate reference system: population cells cannot be placed; "
                "give the file a CRS (gdal_edit.py -a_srs EPSG:4326)",
                path=path,
            )
        if src.count != 1:
            raise SourceError(
                f"has {src.count} bands; a population grid has one band of people per cell",
                path=path,
            )
        if src.transform.is_identity or src.transform.b or src.transform.d:
            raise SourceError(
                "has no north-up geotransform; warp it to a regular grid first", path=path
            )
        height, width = src.height, src.width
        values = np.empty((height, width), dtype=np.float32)
        for i, (_, window) in enumerate(src.block_windows(1)):
            block = src.read(1, window=window, masked=True)
            rows = slice(window.row_off, window.row_off + window.height)
            cols = slice(window.col_off, window.col_off + window.width)
            values[rows, cols] = block.filled(np.nan).astype(np.float32)
            if progress and i % 64 == 0:
                progress(window.row_off + window.height, height)
        if progress:
            progress(height, height)
        crs = CRS.from_user_input(src.crs.to_wkt())
        transform = src.transform
    negative = values < 0
    problems = _negative_cells(entry, negative, values)
    valid = np.isfinite(values)
    counts = {
        "read": int(valid.sum()),
        "filtered": 0,
        "rejected": int(negative.sum()),
        "kept": int((valid & ~negative).sum()),
        "cleared": 0,
        "repaired": 0,
        "flagged": 0,
    }
    values[~valid | negative] = 0.0
    assert entry.year is not None  # the catalog refuses a population source without one
    grid = PopulationGrid(entry.key, path, entry.year, crs, transform, values)
    return grid, problems, counts


def _negative_cells(entry: SourceEntry, negative: np.ndarray, values: np.ndarray) -> pd.DataFrame:
    """Rejects rows for negative cells: the first few one by one, then one row for the rest."""
    rows, cols = np.nonzero(negative)
    name = entry.path.name
    records = []
    for r, c in zip(rows[:LISTED_NEGATIVES], cols[:LISTED_NEGATIVES], strict=True):
        value = float(values[r, c])
        records.append(
            {
                "source": entry.key,
                "file": name,
                "record": int(r) * negative.shape[1] + int(c) + 1,
                "position": int(r) + 1,
                "field": "band 1",
                "target": "people",
                "value": f"{value:g}",
                "reason": f"a negative count of people ({value:g}) at row {r + 1}, column {c + 1}",
                "action": "rejected",
                "message": f"{name}, row {r + 1}, column {c + 1}, field 'band 1': "
                f"a negative count of people ({value:g}); the cell counts as nobody",
            }
        )
    rest = len(rows) - len(records)
    if rest > 0:
        records.append(
            {
                "source": entry.key,
                "file": name,
                "record": -1,
                "position": -1,
                "field": "band 1",
                "target": "people",
                "value": "",
                "reason": f"{rest} more cells with a negative count",
                "action": "rejected",
                "message": f"{name}, field 'band 1': {rest} more cells with a negative count of "
                "people; they count as nobody",
            }
        )
    return pd.DataFrame(records, columns=COLUMNS).astype({"record": "int64", "position": "int64"})


def write_population(grid: PopulationGrid, path: Path) -> None:
    """The checked grid as a Cloud-Optimized GeoTIFF (float32, nodata where nobody lives)."""
    data = np.where(grid.people > 0, grid.people, np.float32(np.nan)).astype(np.float32)
    height, width = grid.shape
    with rasterio.MemoryFile() as mem:
        with mem.open(
            driver="GTiff",
            height=height,
            width=width,
            count=1,
            dtype="float32",
            crs=grid.crs.to_wkt(),
            transform=grid.transform,
            nodata=np.nan,
        ) as tmp:
            tmp.write(data, 1)
            rasterio.shutil.copy(
                tmp,
                path,
                driver="COG",
                compress="DEFLATE",
                predictor=3,
                overview_resampling="average",
                blocksize=512,
            )
