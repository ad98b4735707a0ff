"""A build whose incidents are many more than the bundled ones, resampled from them.

Why: the maps must stay smooth with 100,000 incidents while the bundled data holds 1,848.
The copy keeps every other layer of a real build (linked, not copied) and replaces the
incidents (and their public view) with ``n`` draws of the real ones, each moved by a few
kilometres and given its own id and a date within a year of the original, so the clusters,
the year filter and the paging of the items API meet real density and real dates.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_service.store.files import current_build_id


def resampled_build(builds: Path, out: Path, n: int, seed: int = 1) -> Path:
    """A builds folder at ``out`` whose current build is ``builds``' with ``n`` incidents."""
    source = Path(builds) / current_build_id(builds)
    target = Path(out) / f"{source.name}-x{n}"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for f in source.iterdir():
        os.symlink(f.resolve(), target / f.name)
    catalog = json.loads((source / "catalog.json").read_text(encoding="utf-8"))
    meta = catalog["layers"]["incidents"]
    files = [meta["file"], *([meta["public"]["file"]] if "public" in meta else [])]
    rng = np.random.default_rng(seed)
    for name in files:
        real = gpd.read_parquet(source / name)
        points = real[real.geometry.geom_type == "Point"].reset_index(drop=True)
        cells = real[real.geometry.geom_type != "Point"]
        draws = points.iloc[rng.integers(0, len(points), n - len(cells))].reset_index(drop=True)
        km = 0.03  # about 3 km of jitter: the same places, as the real reports cluster
        x = draws.geometry.x.to_numpy() + rng.normal(0, km, len(draws))
        y = draws.geometry.y.to_numpy() + rng.normal(0, km, len(draws))
        draws = draws.set_geometry(gpd.points_from_xy(x, y, crs=real.crs))
        draws["incident_id"] = [f"resampled:{i}" for i in range(len(draws))]
        shift = pd.to_timedelta(rng.integers(-180, 180, len(draws)), unit="D")
        draws["date"] = (pd.to_datetime(draws["date"]) + shift).clip(
            pd.Timestamp(meta["time_extent"][0]), pd.Timestamp(meta["time_extent"][1])
        )
        frame = pd.concat([draws, cells], ignore_index=True)
        big = gpd.GeoDataFrame(frame, geometry="geometry", crs=real.crs)
        (target / name).unlink()
        big.to_parquet(target / name, index=False)
    meta["count"] = n
    if "public" in meta:
        meta["public"]["count"] = n
    catalog["build_id"] = target.name
    (target / "catalog.json").unlink()
    (target / "catalog.json").write_text(json.dumps(catalog), encoding="utf-8")
    link = Path(out) / "current"
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(target.name, link)
    return Path(out)
