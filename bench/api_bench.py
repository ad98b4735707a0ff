"""Benchmark of the service against TiTiler (raster tiles), pygeoapi (feature queries) and the
ceiling of the stack (FastAPI + uvicorn returning fixed bytes), on the same data and URL lists.

Why: the service issue asks for warm raster tiles at ≥ 70 % of the ceiling measured in the same
run, cold tiles at ≤ half of TiTiler's median latency, and bbox feature queries over 100,000
points at ≥ 30× pygeoapi's GeoPackage provider with p99 ≤ 50 ms at 8 connections.

How:

* ``make-data`` (deterministic, ``--seed 42``) writes into ``bench/data/api/``: a float32 risk
  COG (0–1, NaN outside a Sierra-Leone-sized outline, EPSG:4326, 3,700 × 3,700 px ≈ 99 m, 512 px
  tiles, DEFLATE, overviews), 100,000 incident points (GeoParquet for us, GeoPackage with an
  R-tree for pygeoapi), a build folder our server reads (``risk`` raster, ``incidents``), and
  the URL lists: 500 tiles (every z7–z10 tile over the box, 174 each sampled at z11 and z12,
  shuffled) and 200 bbox queries (side log-uniform from 2 km to the whole box; half
  ``limit=100``, half ``limit=1000``; a quarter with an ``offset``); ``filtered.txt``, the 100
  with ``limit=100`` and the CQL2 filter ``score > 50``. Each incident's ``score`` is the rank
  of the COG's value at it among the incidents', as a percentile, 0–100, one decimal (null
  where the COG is NaN): half the incidents score above 50. ``store_bench.py`` measures the
  filtered list: pygeoapi's GeoPackage provider ignores ``filter`` (it answers unfiltered pages),
  its PostgreSQL provider applies it.
* ``setup-peers`` makes ``bench/.peers/titiler`` and ``bench/.peers/pygeoapi`` virtual
  environments from PyPI (and installs Debian ``wrk`` and ``libsqlite3-mod-spatialite``).
* ``run`` measures, per workload and repeat, each target in turn (order rotated every repeat):
  wait until the machine is ≥ 85 % idle; start a fresh server (one uvicorn worker, pinned to
  core 0 with ``taskset``); a **cold** pass (every URL once, sequentially, one keep-alive
  connection: the first request for each tile in this process); a **warm** pass (the same
  again); then **load** with ``wrk -t1 -c8`` for ``--load-s`` seconds round-robin over the list,
  pinned to core 1; stop the server. Results go to ``bench/results/api-*.tsv``; ``summary``
  prints medians and the ratios the requirements name.

Run from the repository root::

    .venv/bin/python bench/api_bench.py setup-peers
    .venv/bin/python bench/api_bench.py make-data
    .venv/bin/python bench/api_bench.py run --repeats 3
    .venv/bin/python bench/api_bench.py summary bench/results/api-*.tsv

This is run by hand; it is not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchlib import (
    BENCH,
    RESULTS,
    ROOT,
    RUN,
    git_commit,
    start_server,
    stop_server,
    tree_rss_mib,
    wait_for_idle,
)

DATA = BENCH / "data" / "api"
PEERS = BENCH / ".peers"
BBOX = (-13.5, 6.8, -10.2, 10.1)
SIZE = 3700
PORTS = {"ceiling": 18290, "titiler": 18291, "pygeoapi": 18292, "ours": 18293}
#: The CQL2 text filter of the ``filtered`` list (``score > 50``, URL-encoded). Ours reads it as
#: cql2-text, its default ``filter-lang``.
FILTER = "filter=score%20%3E%2050"
#: What pygeoapi adds to it: pygeoapi 0.21 parses ``filter`` with pygeofilter's ECQL parser,
#: whatever the language, and answers 400 to a ``filter-lang`` other than ``cql-text`` or
#: ``cql-json`` (``cql2-text`` included); ``cql-text`` is the draft's name of the same language.
PYGEOAPI_FILTER_LANG = "&filter-lang=cql-text"
LUA = r"""
local urls, idx = {}, 0
function init(args)
  for line in io.lines(args[1]) do urls[#urls + 1] = line end
end
function request()
  idx = idx % #urls + 1
  return wrk.format("GET", urls[idx])
end
local non200 = 0
function response(status, headers, body)
  if status ~= 200 then non200 = non200 + 1 end
end
function done(summary, latency, requests)
  io.write(string.format("RESULT rps=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f requests=%d "
    .. "errors=%d non200=%d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout, summary.errors.status))
end
"""
CEILING = """
import os
from fastapi import FastAPI, Response
TILE = os.urandom(int(os.environ.get("TILE_BYTES", 19000)))
PAGE = b"x" * int(os.environ.get("PAGE_BYTES", 49000))
app = FastAPI()
@app.get("/tiles/{z}/{x}/{y}.png")
def tile(z: int, x: int, y: int) -> Response:
    return Response(TILE, media_type="image/png")
@app.get("/items")
def items() -> Response:
    return Response(PAGE, media_type="application/geo+json")
"""
PYGEOAPI_CONFIG = """
server:
  bind:
    host: 127.0.0.1
    port: {port}
  url: http://127.0.0.1:{port}
  mimetype: application/json; charset=UTF-8
  encoding: utf-8
  language: en-US
  cors: false
  pretty_print: false
  limits:
    default_items: 100
    max_items: 10000
  map:
    url: "http://127.0.0.1/{{z}}/{{x}}/{{y}}.png"
    attribution: none
logging:
  level: ERROR
metadata:
  identification:
    title: bench
    description: synthetic incident points
    keywords: [bench]
    keywords_type: theme
    terms_of_service: http://127.0.0.1/
    url: http://127.0.0.1/
  license:
    name: CC-BY 4.0
    url: http://127.0.0.1/
  provider:
    name: bench
    url: http://127.0.0.1/
  contact:
    name: bench
    email: nobody@localhost
    role: pointOfContact
resources:
"""


def pygeoapi_collection(name: str, provider: str, settings: str) -> str:
    """One pygeoapi collection of the 100,000 incidents, read by ``provider`` with these
    further provider settings (YAML, indented under the provider)."""
    return f"""
  {name}:
    type: collection
    title: incidents
    description: 100,000 synthetic incident points, {provider} provider
    keywords: [incidents]
    links: []
    extents:
      spatial:
        bbox: [-13.5, 6.8, -10.2, 10.1]
        crs: http://www.opengis.net/def/crs/OGC/1.3/CRS84
    providers:
      - type: feature
        name: {provider}
{settings}"""


# --- data ------------------------------------------------------------------------------------


def make_data(seed: int) -> None:
    """The COG, the incidents, our build folder and the URL lists (deterministic)."""
    import geopandas as gpd
    import numpy as np
    import pandas as pd
    import rasterio
    import rasterio.features
    import rasterio.shutil
    import shapely
    from rasterio.enums import Resampling
    from rasterio.transform import from_bounds
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    DATA.mkdir(parents=True, exist_ok=True)
    west, south, east, north = BBOX
    transform = from_bounds(west, south, east, north, SIZE, SIZE)
    # A smooth field: trend + two scales of texture + Gaussian hotspots, squashed to 0–1.
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    field = 0.8 * xx - 0.5 * yy
    for sigma, amp in ((60, 1.5), (12, 0.6)):
        field += amp * ndimage.gaussian_filter(rng.normal(size=(SIZE, SIZE)), sigma) * sigma / 3
    centres = rng.uniform(0, SIZE, size=(60, 2))
    for (cy, cx), s in zip(centres, rng.uniform(10, 160, 60), strict=True):
        field += 2.5 * np.exp(-((yy * SIZE - cy) ** 2 + (xx * SIZE - cx) ** 2) / (2 * s * s))
    score = (1 / (1 + np.exp(-(field - field.mean()) / field.std() * 1.5))).astype("float32")
    angles = np.sort(rng.uniform(0, 2 * np.pi, 20))
    radius = rng.uniform(0.35, 0.5, 20)
    cx, cy = (west + east) / 2, (south + north) / 2
    outline = shapely.Polygon(
        np.column_stack(
            [cx + radius * np.cos(angles) * (east - west) * 2, cy + radius * np.sin(angles) * 3.3]
        )
    ).intersection(shapely.box(*BBOX))
    inside = rasterio.features.rasterize(
        [(outline, 1)], out_shape=(SIZE, SIZE), transform=transform, fill=0
    ).astype(bool)
    score[~inside] = np.nan
    tmp = DATA / "risk_tmp.tif"
    profile = {
        "driver": "GTiff",
        "width": SIZE,
        "height": SIZE,
        "count": 1,
        "dtype": "float32",
        "crs": "EPSG:4326",
        "transform": transform,
        "nodata": float("nan"),
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
    }
    with rasterio.open(tmp, "w", **profile) as dst:
        dst.write(score, 1)
        dst.build_overviews([2, 4, 8], Resampling.average)
    with rasterio.open(tmp) as src:
        rasterio.shutil.copy(
            src,
            DATA / "risk_cog.tif",
            driver="COG",
            COMPRESS="DEFLATE",
            PREDICTOR="YES",
            BLOCKSIZE=512,
            OVERVIEWS="FORCE_USE_EXISTING",
        )
    tmp.unlink()

    # 100,000 incidents inside the outline, 70 % round the hotspots.
    n = 100_000
    pts: list[np.ndarray] = []
    while sum(len(p) for p in pts) < n:
        k = 50_000
        lon = rng.uniform(west, east, k)
        lat = rng.uniform(south, north, k)
        hot = rng.random(k) < 0.7
        c = centres[rng.integers(0, 60, k)]
        lon = np.where(hot, west + (c[:, 1] + rng.normal(0, 40, k)) / SIZE * (east - west), lon)
        lat = np.where(hot, north - (c[:, 0] + rng.normal(0, 40, k)) / SIZE * (north - south), lat)
        ok = shapely.contains_xy(outline, lon, lat)
        pts.append(np.column_stack([lon[ok], lat[ok]]))
    xy = np.concatenate(pts)[:n]
    # A risk score, 0–100, one decimal: the rank of the surface's value at the point (the COG's
    # full-resolution pixel it falls in) among the incidents', as a percentile — so that about
    # half score above 50 (the surface's value itself, × 100, is above 50 at 74 % of them: the
    # points crowd round its hotspots). Null where the surface is NaN (a point by the outline
    # whose pixel centre is outside it). No random draw: every other column is as before.
    col = np.clip(((xy[:, 0] - west) / (east - west) * SIZE).astype(int), 0, SIZE - 1)
    row = np.clip(((north - xy[:, 1]) / (north - south) * SIZE).astype(int), 0, SIZE - 1)
    at = score[row, col].astype("float64")
    known = ~np.isnan(at)
    rank = np.empty(int(known.sum()))
    rank[np.argsort(at[known], kind="stable")] = np.arange(known.sum())
    risk_at = np.full(n, np.nan)
    risk_at[known] = np.round(rank / (known.sum() - 1) * 100, 1)
    incidents = gpd.GeoDataFrame(
        {
            "id": np.arange(1, n + 1),
            "incident_id": [f"i{i}" for i in range(1, n + 1)],
            "date": pd.to_datetime("2015-01-01")
            + pd.to_timedelta(rng.integers(0, 3650, n), unit="D"),
            "type": rng.choice(
                [
                    "one-sided",
                    "state-based",
                    "non-state",
                    "protest",
                    "riot",
                    "displacement",
                    "other",
                ],
                n,
            ),
            "fatalities": rng.negative_binomial(1, 0.4, n),
            "source": rng.choice(["a", "b", "c", "d", "e"], n),
            "sensitivity": "public",
            "score": risk_at,
        },
        geometry=shapely.points(xy),
        crs="EPSG:4326",
    )
    incidents.to_file(DATA / "incidents.gpkg", layer="incidents", driver="GPKG")
    build_id = "bench"
    folder = DATA / "build" / build_id
    shutil.rmtree(DATA / "build", ignore_errors=True)
    folder.mkdir(parents=True)
    incidents.drop(columns="id").to_parquet(folder / "incidents.parquet")
    shutil.copy(DATA / "risk_cog.tif", folder / "risk.tif")
    source = {
        "title": "synthetic",
        "kind": "incidents",
        "publisher": "bench",
        "licence": "CC0",
        "licence_url": "https://creativecommons.org/publicdomain/zero/1.0/",
        "attribution": "synthetic",
        "retrieved": "2026-11-23",
        "coverage": {},
    }
    catalog = {
        "build_id": build_id,
        "created": "2026-11-23T00:00:00Z",
        "sources": {"bench": source},
        "layers": {
            "incidents": {
                "id": "incidents",
                "title": "Incidents",
                "kind": "incidents",
                "file": "incidents.parquet",
                "count": n,
                "bounds": list(BBOX),
                "time_extent": ["2015-01-01", "2024-12-31"],
                "geometry_types": ["Point"],
                "id_field": "incident_id",
                "fields": {},
                "sources": ["bench"],
                "sensitivity": {"public": n},
            },
            "risk": {
                "id": "risk",
                "title": "Risk",
                "kind": "raster",
                "file": "risk.tif",
                "count": int(inside.sum()),
                "bounds": list(BBOX),
                "time_extent": None,
                "geometry_types": [],
                "id_field": None,
                "fields": {},
                "sources": ["bench"],
                "sensitivity": {},
                "cell_m": 99.0,
            },
        },
    }
    (folder / "catalog.json").write_text(json.dumps(catalog), encoding="utf-8")
    os.symlink(build_id, DATA / "build" / "current")

    # URL lists.
    import morecantile

    tms = morecantile.tms.get("WebMercatorQuad")
    tiles = []
    for z in (7, 8, 9, 10):
        tiles += [f"{t.z}/{t.x}/{t.y}" for t in tms.tiles(*BBOX, zooms=[z])]
    for z in (11, 12):
        every = [f"{t.z}/{t.x}/{t.y}" for t in tms.tiles(*BBOX, zooms=[z])]
        tiles += random.Random(seed + z).sample(every, 174)
    random.Random(seed).shuffle(tiles)
    (DATA / "tiles.txt").write_text("\n".join(tiles) + "\n")
    r = random.Random(seed)
    queries = []
    for i in range(200):
        side = math.exp(r.uniform(math.log(0.02), math.log(east - west)))
        x0 = r.uniform(west, east - min(side, east - west))
        y0 = r.uniform(south, north - min(side, north - south))
        q = f"bbox={x0:.5f},{y0:.5f},{x0 + side:.5f},{y0 + side:.5f}"
        q += "&limit=100" if i % 2 == 0 else "&limit=1000"
        if i % 4 == 1:
            q += "&offset=100"
        queries.append(q)
    (DATA / "features.txt").write_text("\n".join(queries) + "\n")
    filtered = [q + "&" + FILTER for q in queries if q.endswith("&limit=100") or "&limit=100&" in q]
    (DATA / "filtered.txt").write_text("\n".join(filtered) + "\n")
    above = int((risk_at > 50).sum())
    print(
        f"wrote {DATA}: {len(tiles)} tiles, {len(queries)} queries ({len(filtered)} filtered), "
        f"{n:,} incidents ({above:,} with score > 50, {int(np.isnan(risk_at).sum()):,} null)"
    )


# --- servers ---------------------------------------------------------------------------------


def setup_peers() -> None:
    """Virtual environments for TiTiler and pygeoapi from PyPI, and wrk/spatialite from Debian."""
    spatialite = (
        subprocess.run(["dpkg", "-s", "libsqlite3-mod-spatialite"], capture_output=True).returncode
        == 0
    )
    if shutil.which("wrk") is None or not spatialite:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "wrk", "libsqlite3-mod-spatialite"], check=True
        )
    for name, packages in (
        ("titiler", ["titiler.application", "uvicorn"]),
        # with what its PostgreSQL provider imports (pygeoapi's requirements-provider.txt)
        (
            "pygeoapi",
            [
                "pygeoapi",
                "uvicorn",
                "starlette",
                "psycopg2-binary",
                "SQLAlchemy",
                "GeoAlchemy2",
                "pygeofilter[backend-sqlalchemy]",
            ],
        ),
        ("ceiling", ["fastapi", "uvicorn"]),
    ):
        venv = PEERS / name
        if not (venv / "bin" / "python").exists():
            python = "/usr/bin/python3" if name == "pygeoapi" else sys.executable
            subprocess.run([python, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *packages], check=True)
    print(f"peers ready under {PEERS}")


def _command(target: str) -> tuple[list[str], dict[str, str], Path]:
    port = str(PORTS[target])
    env = dict(os.environ)
    RUN.mkdir(exist_ok=True)
    uv = ["--host", "127.0.0.1", "--port", port, "--workers", "1", "--log-level", "warning"]
    if target == "ours":
        env["RISKMAP_BUILD_DIR"] = str(DATA / "build")
        python = ROOT / ".venv" / "bin" / "python"
        return (
            [str(python), "-m", "uvicorn", "--factory", "geo_service.api.app:create_app", *uv],
            env,
            ROOT,
        )
    if target == "ceiling":
        (RUN / "ceiling_app.py").write_text(CEILING)
        python = PEERS / "ceiling" / "bin" / "python"
        return [str(python), "-m", "uvicorn", "ceiling_app:app", *uv], env, RUN
    if target == "titiler":
        python = PEERS / "titiler" / "bin" / "python"
        return [str(python), "-m", "uvicorn", "titiler.application.main:app", *uv], env, DATA
    return _pygeoapi(port, env)


def _pygeoapi(
    port: str, env: dict[str, str], extra: str = ""
) -> tuple[list[str], dict[str, str], Path]:
    """pygeoapi's command with its config (the GeoPackage collection, and ``extra``)."""
    config = RUN / f"pygeoapi-{port}.yml"
    gpkg = pygeoapi_collection(
        "incidents_gpkg",
        "SQLiteGPKG",
        f"        data: {DATA / 'incidents.gpkg'}\n        id_field: id\n        table: incidents\n",
    )
    config.write_text(PYGEOAPI_CONFIG.format(port=port) + gpkg + extra)
    env["PYGEOAPI_CONFIG"] = str(config)
    env["PYGEOAPI_OPENAPI"] = str(RUN / f"pygeoapi-{port}-openapi.yml")
    python = PEERS / "pygeoapi" / "bin" / "python"
    subprocess.run(
        [
            str(PEERS / "pygeoapi" / "bin" / "pygeoapi"),
            "openapi",
            "generate",
            str(config),
            "--output-file",
            env["PYGEOAPI_OPENAPI"],
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    uv = ["--host", "127.0.0.1", "--port", port, "--workers", "1", "--log-level", "warning"]
    return [str(python), "-m", "uvicorn", "pygeoapi.starlette_app:APP", *uv], env, DATA


def start(target: str) -> subprocess.Popen[bytes]:
    """A fresh server for the target, pinned to core 0, once it answers."""
    cmd, env, cwd = _command(target)
    return start_server(target, cmd, PORTS[target], cpu=0, env=env, cwd=cwd)


def start_pygeoapi(port: int, extra: str) -> subprocess.Popen[bytes]:
    """pygeoapi with further collections (``extra``, YAML under ``resources:``), pinned to
    core 0, once it answers."""
    cmd, env, cwd = _pygeoapi(str(port), dict(os.environ), extra)
    return start_server(f"pygeoapi-{port}", cmd, port, cpu=0, env=env, cwd=cwd)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server and everything it started."""
    stop_server(proc)


# --- measuring -------------------------------------------------------------------------------


#: Workloads read from another's list, keeping only its lines with this ``limit``.
SUBSETS = {"features100": ("features", "100"), "features1000": ("features", "1000")}


def urls(target: str, workload: str) -> list[str]:
    """Paths of the target for every line of the workload's list."""
    listing, limit = SUBSETS.get(workload, (workload, None))
    lines = (DATA / f"{listing}.txt").read_text().split()
    if limit is not None:
        lines = [x for x in lines if f"&limit={limit}" in x + "&" and f"limit={limit}0" not in x]
        workload = listing
    if workload == "tiles":
        template = {
            "ceiling": "/tiles/{z}/{x}/{y}.png",
            "titiler": "/cog/tiles/WebMercatorQuad/{z}/{x}/{y}.png?url="
            + str(DATA / "risk_cog.tif")
            + "&rescale=0,1&colormap_name=cividis",
            "ours": "/tiles/risk/{z}/{x}/{y}.png",
        }[target]
        out = []
        for line in lines:
            z, x, y = line.split("/")
            out.append(template.replace("{z}", z).replace("{x}", x).replace("{y}", y))
        return out
    template = {
        "ceiling": "/items?{query}",
        "pygeoapi": "/collections/incidents_gpkg/items?f=json&{query}",
        "ours": "/collections/incidents/items?{query}",
    }[target]
    if workload == "filtered" and target == "pygeoapi":
        lines = [q + PYGEOAPI_FILTER_LANG for q in lines]
    return [template.replace("{query}", q) for q in lines]


def one_pass(
    target: str, paths: list[str], cap_s: float, port: int | None = None
) -> dict[str, float]:
    """Every path once, sequentially, on one keep-alive connection (capped in time), to the
    target's port or ``port``."""
    conn = http.client.HTTPConnection("127.0.0.1", port or PORTS[target], timeout=60)
    times, non200, size = [], 0, 0
    start_t = time.perf_counter()
    for p in paths:
        t = time.perf_counter()
        conn.request("GET", p)
        r = conn.getresponse()
        body = r.read()
        times.append((time.perf_counter() - t) * 1000)
        size += len(body)
        non200 += r.status != 200
        if time.perf_counter() - start_t > cap_s:
            break
    wall = time.perf_counter() - start_t
    times.sort()

    def pct(q: float) -> float:
        return times[min(len(times) - 1, int(q * len(times)))]

    return {
        "rps": round(len(times) / wall, 1),
        "p50_ms": round(pct(0.5), 2),
        "p90_ms": round(pct(0.9), 2),
        "p99_ms": round(pct(0.99), 2),
        "requests": len(times),
        "non200": non200,
        "mean_bytes": size // max(len(times), 1),
    }


def wrk_command(port: int, paths: list[str], seconds: int, conc: int) -> list[str]:
    """``wrk`` round-robin over the paths (written beside the Lua script), pinned to core 1;
    it prints one ``RESULT`` line (:func:`wrk_result`)."""
    RUN.mkdir(exist_ok=True)
    (RUN / "rotate.lua").write_text(LUA)
    listing = RUN / f"paths-{port}.txt"
    listing.write_text("\n".join(paths) + "\n")
    return [
        "taskset",
        "-c",
        "1",
        "wrk",
        "-t1",
        f"-c{conc}",
        f"-d{seconds}s",
        "--timeout",
        "30s",
        "-s",
        str(RUN / "rotate.lua"),
        f"http://127.0.0.1:{port}",
        "--",
        str(listing),
    ]


def wrk_result(out: str) -> dict[str, float]:
    """The figures of wrk's ``RESULT`` line."""
    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
    return {k: float(v) for k, v in (t.split("=") for t in line.split()[1:])}


def load(target: str, paths: list[str], seconds: int, conc: int) -> dict[str, float]:
    """wrk round-robin over the paths, pinned to core 1."""
    cmd = wrk_command(PORTS[target], paths, seconds, conc)
    return wrk_result(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def run(repeats: int, load_s: int, conc: int, cap_s: float, workloads: list[str]) -> Path:
    """Every workload and target, fresh server per repeat, order rotated; TSV of results."""
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"api-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}.tsv"
    commit = git_commit()
    features = ["ceiling", "pygeoapi", "ours"]
    plans = {"tiles": ["ceiling", "titiler", "ours"], "features": features}
    plans |= {name: features for name in SUBSETS}
    plans = {k: v for k, v in plans.items() if k in workloads}
    with out.open("w") as fh:
        for workload, targets in plans.items():
            for rep in range(1, repeats + 1):
                order = targets[rep - 1 :] + targets[: rep - 1]
                for target in order:
                    idle = wait_for_idle(0.85, 120.0)
                    paths = urls(target, workload)
                    proc = start(target)
                    try:
                        rows = [("cold", one_pass(target, paths, cap_s))]
                        rows.append(("warm", one_pass(target, paths, cap_s)))
                        rows.append(("load", load(target, paths, load_s, conc)))
                        rss = tree_rss_mib(proc.pid)
                    finally:
                        stop(proc)
                    for phase, res in rows:
                        fields = {
                            "commit": commit,
                            "workload": workload,
                            "target": target,
                            "repeat": rep,
                            "phase": phase,
                            "idle_before": round(idle, 3),
                            "server_rss_mib": rss,
                            **res,
                        }
                        fh.write("\t".join(f"{k}={v}" for k, v in fields.items()) + "\n")
                        fh.flush()
                        print(
                            f"{workload:8} {target:8} #{rep} {phase:4} rps={res['rps']:>8} "
                            f"p50={res['p50_ms']:>8} p99={res['p99_ms']:>8} "
                            f"non200={res.get('non200', 0):.0f}",
                            flush=True,
                        )
    print(f"wrote {out.relative_to(ROOT)}")
    return out


def memory(build_dir: Path, seconds: int) -> None:
    """The server's RSS on a real build: after start-up (every vector layer loaded), and after
    ``seconds`` of load over a map page's kind of requests (collections, items, tiles)."""
    import morecantile

    catalog = json.loads((build_dir / "current" / "catalog.json").read_text())
    env_dir = str(build_dir)
    paths = ["/", "/collections"]
    layers = [k for k, v in catalog["layers"].items() if v["kind"] != "raster"]
    for layer in layers:
        paths += [f"/collections/{layer}/items?limit=100", f"/tiles/{layer}/tilejson.json"]
    tms = morecantile.tms.get("WebMercatorQuad")
    for layer, meta in catalog["layers"].items():
        w, so, e, n = meta["bounds"]
        ext = "png" if meta["kind"] == "raster" else "mvt"
        for z in (3, 5, 7):
            for t in list(tms.tiles(w, so, e, n, zooms=[z]))[:60]:
                paths.append(f"/tiles/{layer}/{t.z}/{t.x}/{t.y}.{ext}")
    random.Random(1).shuffle(paths)
    os.environ["RISKMAP_BUILD_DIR"] = env_dir
    cmd, env, cwd = _command("ours")
    env["RISKMAP_BUILD_DIR"] = env_dir
    proc = start_server(
        "ours-memory", cmd, PORTS["ours"], cpu=0, env=env, cwd=cwd, ready_path="/health"
    )
    try:
        one_pass("ours", [f"/collections/{k}/items?limit=1" for k in layers], 120)
        time.sleep(2)
        start_rss = tree_rss_mib(proc.pid)
        first = one_pass("ours", paths, 600)
        res = load("ours", paths, seconds, 8)
        end_rss = tree_rss_mib(proc.pid)
        again = load("ours", paths, seconds, 8)
        last_rss = tree_rss_mib(proc.pid)
    finally:
        stop(proc)
    print(f"{len(paths)} URLs (every vector layer: items, TileJSON; tiles z3/5/7 of every layer)")
    print(f"RSS after start-up, every layer loaded: {start_rss} MiB")
    print(
        f"first pass over the URLs: {first['rps']} req/s, p50 {first['p50_ms']} ms, "
        f"non-200 {first['non200']}"
    )
    print(
        f"load {seconds} s: {res['rps']} req/s, p50 {res['p50_ms']} ms, p99 {res['p99_ms']} ms, "
        f"errors {res['errors']:.0f}, non-200 {res['non200']:.0f}; RSS after: {end_rss} MiB"
    )
    print(f"load again {seconds} s: {again['rps']} req/s; RSS after: {last_rss} MiB")


def summary(paths: list[Path]) -> None:
    """Medians per workload, target and phase, and the ratios the requirements name."""
    rows = []
    for p in paths:
        for line in p.read_text().splitlines():
            rows.append(dict(t.split("=", 1) for t in line.split("\t")))
    med: dict[tuple[str, str, str], dict[str, float]] = {}
    keys = sorted({(r["workload"], r["target"], r["phase"]) for r in rows})
    print(
        f"{'workload':9}{'target':10}{'phase':6}{'rps':>10}{'p50 ms':>10}{'p99 ms':>10}"
        f"{'non200':>8}{'RSS MiB':>9}{'n':>3}"
    )
    for k in keys:
        sel = [r for r in rows if (r["workload"], r["target"], r["phase"]) == k]
        m = {
            f: statistics.median(float(r[f]) for r in sel)
            for f in ("rps", "p50_ms", "p99_ms", "server_rss_mib")
        }
        m["non200"] = sum(float(r.get("non200", 0)) for r in sel)
        med[k] = m
        print(
            f"{k[0]:9}{k[1]:10}{k[2]:6}{m['rps']:>10.1f}{m['p50_ms']:>10.2f}"
            f"{m['p99_ms']:>10.2f}{m['non200']:>8.0f}{m['server_rss_mib']:>9.0f}{len(sel):>3}"
        )

    def get(w: str, t: str, ph: str, f: str) -> float:
        return med.get((w, t, ph), {}).get(f, float("nan"))

    print()
    print(
        f"warm tiles under load, ours / ceiling: "
        f"{get('tiles', 'ours', 'load', 'rps') / get('tiles', 'ceiling', 'load', 'rps'):.2f} "
        f"(target ≥ 0.70); ours / TiTiler: "
        f"{get('tiles', 'ours', 'load', 'rps') / get('tiles', 'titiler', 'load', 'rps'):.1f}×"
    )
    print(
        f"cold tiles, median latency ours / TiTiler: "
        f"{get('tiles', 'ours', 'cold', 'p50_ms') / get('tiles', 'titiler', 'cold', 'p50_ms'):.2f}"
        " (target ≤ 0.50)"
    )
    print(
        f"features under load, ours / pygeoapi: "
        f"{get('features', 'ours', 'load', 'rps') / get('features', 'pygeoapi', 'load', 'rps'):.1f}×"
        f" (target ≥ 30×); ours p99 {get('features', 'ours', 'load', 'p99_ms'):.1f} ms at c=8 "
        "(over the mix of limit=100 and limit=1000)"
    )
    for name, (_, limit) in SUBSETS.items():
        if (name, "ours", "load") in med:
            print(
                f"limit={limit} alone: ours / pygeoapi "
                f"{get(name, 'ours', 'load', 'rps') / get(name, 'pygeoapi', 'load', 'rps'):.1f}×; "
                f"ours p99 {get(name, 'ours', 'load', 'p99_ms'):.1f} ms at c=8"
                + (" (target ≤ 50 ms)" if limit == "100" else "")
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("setup-peers")
    md = sub.add_parser("make-data")
    md.add_argument("--seed", type=int, default=42)
    rn = sub.add_parser("run")
    rn.add_argument("--repeats", type=int, default=3)
    rn.add_argument("--load-s", type=int, default=20)
    rn.add_argument("--conc", type=int, default=8)
    rn.add_argument("--pass-cap-s", type=float, default=180.0)
    rn.add_argument("--workloads", default="tiles,features")
    mm = sub.add_parser("memory")
    mm.add_argument("build_dir", type=Path)
    mm.add_argument("--seconds", type=int, default=20)
    sm = sub.add_parser("summary")
    sm.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    if args.cmd == "setup-peers":
        setup_peers()
    elif args.cmd == "make-data":
        make_data(args.seed)
    elif args.cmd == "memory":
        memory(args.build_dir.resolve(), args.seconds)
    elif args.cmd == "run":
        workloads = args.workloads.split(",")
        if "filtered" in workloads:
            raise SystemExit(
                "the filtered list is measured by store_bench.py (pygeoapi's GeoPackage "
                "provider ignores filter)"
            )
        summary([run(args.repeats, args.load_s, args.conc, args.pass_cap_s, workloads)])
    else:
        summary(args.files)


if __name__ == "__main__":
    main()
