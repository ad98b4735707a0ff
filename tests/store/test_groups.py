"""Vector tiles group points as the map pages do: the groups of ``store/groups.py`` are those
supercluster (the npm package the pages run) makes of the same points with the same options,
at every zoom, by count, position and the highest priority each group stands for."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import Transformer

from geo_service.build import BuildResult
from geo_service.store import groups

ROOT = Path(__file__).resolve().parents[2]
SUPERCLUSTER = ROOT / "node_modules" / "supercluster" / "index.js"
NODE = shutil.which("node")
#: Every zoom's groups by supercluster: [count, lon, lat, highest priority] each.
SCRIPT = """
import Supercluster from %s;
import {readFileSync} from "node:fs";
const input = JSON.parse(readFileSync(0, "utf8"));
const index = new Supercluster({radius: %d, extent: %d, maxZoom: %d, minPoints: 2,
  map: (p) => ({best: p.best}), reduce: (a, b) => { a.best = Math.max(a.best, b.best); }});
index.load(input.map(([lon, lat, best]) => ({type: "Feature", properties: {best},
  geometry: {type: "Point", coordinates: [lon, lat]}})));
const out = [];
for (let z = 0; z <= %d; z++) {
  out.push(index.getClusters([-180, -85, 180, 85], z).map((f) => [
    f.properties.point_count || 1, ...f.geometry.coordinates, f.properties.best]));
}
process.stdout.write(JSON.stringify(out));
"""
TO_3857 = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
TO_4326 = Transformer.from_crs("EPSG:3857", "EPSG:4326", always_xy=True)

pytestmark = pytest.mark.skipif(
    NODE is None or not SUPERCLUSTER.exists(), reason="needs node and the npm packages"
)


def _supercluster(lon: np.ndarray, lat: np.ndarray, best: np.ndarray) -> list[list[list]]:
    script = SCRIPT % (
        json.dumps(str(SUPERCLUSTER)),
        groups.RADIUS,
        groups.EXTENT,
        groups.TOP_ZOOM,
        groups.TOP_ZOOM + 1,
    )
    data = json.dumps(np.column_stack([lon, lat, best]).tolist())
    run = subprocess.run(
        [NODE, "--input-type=module", "-e", script],
        input=data,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(run.stdout)


def _ours(lon: np.ndarray, lat: np.ndarray, best: np.ndarray) -> list[list[list]]:
    x, y = TO_3857.transform(lon, lat)
    index = groups.GroupIndex(np.asarray(x), np.asarray(y), np.arange(len(lon)), best)
    out = []
    for z in range(groups.TOP_ZOOM + 2):
        level = index.level(z)
        glon, glat = TO_4326.transform(level.x, level.y)
        # A point alone is where it was given (supercluster gives back its input).
        alone = level.count == 1
        glon = np.where(alone, lon[level.row], glon)
        glat = np.where(alone, lat[level.row], glat)
        out.append(
            [
                [int(c), float(a), float(b), float(best[r])]
                for c, a, b, r in zip(level.count, glon, glat, level.row, strict=True)
            ]
        )
    return out


def _same(ours: list[list[list]], theirs: list[list[list]]) -> None:
    assert len(ours) == len(theirs)
    for z, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        a, b = sorted(a), sorted(b)
        assert len(a) == len(b), f"zoom {z}: {len(a)} items here, {len(b)} in supercluster"
        for mine, js in zip(a, b, strict=True):
            assert mine[0] == js[0] and mine[3] == js[3], (z, mine, js)
            # supercluster keeps positions as 32-bit floats of the unit square.
            assert abs(mine[1] - js[1]) < 1e-4 and abs(mine[2] - js[2]) < 1e-4, (z, mine, js)


def test_the_real_incidents_are_grouped_as_the_map_pages_group_them(built: BuildResult) -> None:
    incidents = gpd.read_parquet(built.path / "incidents.public.parquet")
    points = incidents[incidents.geometry.geom_type == "Point"]
    lon, lat = shapely.get_x(points.geometry.values), shapely.get_y(points.geometry.values)
    best = points["fatalities"].fillna(0).to_numpy(dtype="float64")
    assert len(points) > 1000
    _same(_ours(lon, lat, best), _supercluster(lon, lat, best))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_clumped_and_repeated_points_are_grouped_as_supercluster_groups_them(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 3000
    centres = rng.uniform([-15, 4], [30, 12], size=(12, 2))
    pick = centres[rng.integers(0, len(centres), n)]
    spread = rng.choice([0.0, 0.001, 0.05, 1.0], n)  # some exactly on top of each other
    lon = pick[:, 0] + rng.normal(0, 1, n) * spread
    lat = pick[:, 1] + rng.normal(0, 1, n) * spread
    best = rng.integers(0, 100, n).astype("float64")
    _same(_ours(lon, lat, best), _supercluster(lon, lat, best))
