"""Benchmark of people exposed: ``exposure.people_exposed`` on a 10,000 × 10,000 population grid
and 5,000 official units.

Why: the requirement is that the people-exposed counts (per community and per unit) for a
10,000 × 10,000-cell population grid and 5,000 units take at most 30 s with a peak memory of at
most 4 GB on this 2-core machine. For context, the same run times a plain zonal sum of the grid
over the units (``rasterio.features.rasterize`` and ``np.bincount``): the least any exposure
count must do.

How:

* The inputs are built from the real bundled files and cached in ``bench/.run/exposure/``
  (git-ignored; about 410 MiB): the WorldPop Sierra Leone grid (3,646 × 3,700 cells of 3 arc
  seconds, nodata as nobody) tiled 3 × 3 from its own top-left corner and cropped to 10,000 ×
  10,000 cells; the GeoNames Sierra Leone places (the catalog's feature codes) copied with the
  same 3 × 3 offsets; the USGS Sierra Leone diamond site copied the same way, plus square
  footprints of 2–5 km around seeded places; 20 real ANM tailings dams moved to seeded places;
  300 real UCDP rows whose positions are rescaled from their bounding box into the grid's, dates
  and precision kept; the Natural Earth Africa rivers; 5,000 Voronoi units (500 at level 2 and
  4,500 at level 3, seeds mostly on populated cells) clipped to the grid. Every feature is in
  ``SLE``, and every evidence kind covers ``SLE``. The communities' scores are a deterministic
  function of their distance to the evidence.
* Each measurement runs in a fresh process: ``ours`` (one ``people_exposed`` call, with the
  stages timed by thin wrappers around the functions it looks up in its module) and
  ``ceiling`` (the zonal sum), alternating. The child times only the call and reports its
  peak RSS (``ru_maxrss``, imports and the loaded inputs included). Before each measurement the
  runner waits (at most 60 s) for the machine to be at least 80 % idle. Results go to
  ``bench/results/exposure-YYYYmmdd-HHMMSS.tsv``.

Run from the repository root (``--help`` for the options)::

    .venv/bin/python bench/exposure_bench.py --repeats 3
    .venv/bin/python bench/exposure_bench.py --profile

This is run by hand; it is not part of the test suite.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import benchlib
from benchlib import RESULTS, ROOT, RUN, fmt, mmm, print_table, wait_for_idle

DATA = RUN / "exposure"
RISK_TOML = ROOT / "layers" / "risk.toml"
SOURCES = ROOT / "layers" / "sources"
WORLDPOP = SOURCES / "worldpop_sle_2019_constrained_100m" / "sle_ppp_2019_constrained.tif"
GEONAMES = SOURCES / "geonames_sl_populated_places" / "geonames_SL_populated_places_2019-08-07.csv"
RIVERS = SOURCES / "natural_earth" / "ne_10m_rivers_lake_centerlines_africa.geojson"
BUILD = ROOT / "layers" / "build" / "current"

#: Rows and columns of the benchmark grid.
SIDE = 10_000
TILES = 3
LEVEL2_UNITS = 500
LEVEL3_UNITS = 4_500
#: Share of unit seeds drawn on populated cells (the rest uniform over the grid).
SEEDS_ON_PEOPLE = 0.9
#: Unit outlines get a vertex at least this often (degrees): about as many vertices per unit
#: as the OCHA Sierra Leone chiefdoms (median 308).
SEGMENT_DEG = 0.002
FOOTPRINTS = 36
DAMS = 20
INCIDENTS = 300
#: The catalog's ``where`` for the GeoNames places (abandoned and destroyed ones left out).
FEATURE_CODES = ("PPL", "PPLA", "PPLC", "PPLL", "PPLX")
SEED = 20261205
KM_PER_DEGREE = 111.195
IDLE_TARGET = 0.80
IDLE_WAIT_S = 60.0
CHILD_TIMEOUT_S = 1800
RSS_CAP_GIB = 12.0
TARGET_S = 30.0
TARGET_BYTES = 4e9
WHICH = ("ceiling", "ours")
#: The functions of ``geo_service.risk.exposure`` and the modules it calls
#: (``exposure_weights``, ``exposure_cells``) timed as stages, where they are looked up.
WRAPPED = (
    "weights",
    "weights_near",
    "nearest",
    "_footprint_distance",
    "dam_table",
    "pathways",
    "incident_weights",
    "_unit_layer",
    "cell_units",
    "_grid_share",
    "_top_confidence",
    "_missing",
    "_count",
)
TSV_COLUMNS = [
    "repeat",
    "which",
    "status",
    "fingerprint",
    "seconds",
    "peak_rss_mb",
    "rss_before_mb",
    "load_seconds",
    "idle_before",
    "grid_cells",
    "populated_cells",
    "units",
    "communities",
    "people_on_grid",
    "people_in_units",
    "result_check",
    "stages",
    "pairs",
]


# --- data ------------------------------------------------------------------------------------


def _offsets(transform: Any) -> list[tuple[float, float]]:
    """Longitude and latitude shifts of the 3 × 3 copies of the source grid (row by row)."""
    height, width = 3_700, 3_646
    return [
        (j * width * transform.a, i * height * transform.e)
        for i in range(TILES)
        for j in range(TILES)
    ]


def _square(lon: float, lat: float, side_km: float) -> Any:
    import numpy as np
    import shapely

    half_lat = side_km / 2 / KM_PER_DEGREE
    half_lon = half_lat / np.cos(np.radians(lat))
    return shapely.box(lon - half_lon, lat - half_lat, lon + half_lon, lat + half_lat)


def make_data(seed: int) -> None:
    """Write the cached inputs to ``bench/.run/exposure/``."""
    import geopandas as gpd
    import numpy as np
    import pandas as pd
    import rasterio
    import shapely

    from geo_service.risk.params import load_risk_params

    t0 = time.perf_counter()
    DATA.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    params = load_risk_params(RISK_TOML)

    # The grid: the real one tiled 3 × 3 from its own corner and cropped.
    with rasterio.open(WORLDPOP) as src:
        if (src.height, src.width) != (3_700, 3_646):
            raise SystemExit(f"{WORLDPOP.name}: expected 3,700 × 3,646 cells")
        source = src.read(1)
        transform = src.transform
        crs_wkt = src.crs.to_wkt()
    source = np.where(np.isfinite(source) & (source > 0), source, 0).astype(np.float32)
    people = np.ascontiguousarray(np.tile(source, (TILES, TILES))[:SIDE, :SIDE])
    np.save(DATA / "population.npy", people)
    west, north = transform.c, transform.f
    east, south = west + SIDE * transform.a, north + SIDE * transform.e
    extent = shapely.box(west, south, east, north)
    offsets = _offsets(transform)
    populated = np.flatnonzero(people.ravel() > 0)

    def cell_points(n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` seeded positions: most on populated cells, the rest anywhere on the grid."""
        on = int(round(n * SEEDS_ON_PEOPLE))
        flat = rng.choice(populated, on, replace=False)
        rows, cols = np.divmod(flat, SIDE)
        lon = west + (cols + rng.uniform(0, 1, on)) * transform.a
        lat = north + (rows + rng.uniform(0, 1, on)) * transform.e
        lon = np.r_[lon, rng.uniform(west, east, n - on)]
        lat = np.r_[lat, rng.uniform(south, north, n - on)]
        return lon, lat

    # Communities: the GeoNames places, copied with the grid's offsets.
    raw = pd.read_csv(GEONAMES, dtype=str, keep_default_na=False)
    raw = raw[raw["feature_code"].isin(FEATURE_CODES)].reset_index(drop=True)
    lon0 = raw["longitude"].astype(float).to_numpy()
    lat0 = raw["latitude"].astype(float).to_numpy()
    pop0 = pd.to_numeric(raw["population"]).where(lambda s: s > 0).astype("Int64")
    frames = []
    for k, (dx, dy) in enumerate(offsets):
        sid = raw["geonameid"] if k == 0 else raw["geonameid"] + f"-{k}"
        frames.append(
            gpd.GeoDataFrame(
                {
                    "community_id": ("geonames_sle_places:" + sid).astype("str"),
                    "name": raw["name"].astype("str"),
                    "population": pop0,
                    "country": pd.Series("SLE", index=raw.index, dtype="str"),
                    "admin1": raw["admin1_code"].astype("str"),
                    "source": pd.Series("geonames_sle_places", index=raw.index, dtype="str"),
                    "source_id": sid.astype("str"),
                    "sensitivity": pd.Series("public", index=raw.index, dtype="str"),
                    "qa_flags": pd.Series(pd.NA, index=raw.index, dtype="str"),
                },
                geometry=shapely.points(lon0 + dx, lat0 + dy),
                crs="EPSG:4326",
            )
        )
    communities = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs="EPSG:4326")
    c_lon = shapely.get_x(communities.geometry.to_numpy())
    c_lat = shapely.get_y(communities.geometry.to_numpy())
    in_grid = shapely.intersects_xy(extent, c_lon, c_lat)

    def places(n: int) -> np.ndarray:
        """``n`` distinct seeded communities on the grid."""
        return rng.choice(np.flatnonzero(in_grid), n, replace=False)

    # Concessions: the real Sierra Leone USGS site(s) copied, and square footprints.
    # Builds before mine sites were a layer of their own hold them among the concessions.
    published = BUILD / "mine_sites.parquet"
    real = gpd.read_parquet(published if published.exists() else BUILD / "concessions.parquet")
    sites = real[(real["country"] == "SLE") & (real["footprint"] == "site")]
    copies = []
    for k, (dx, dy) in enumerate(offsets):
        c = sites.copy()
        shift = np.array([dx, dy])
        c["geometry"] = shapely.transform(sites.geometry.to_numpy(), lambda xy, d=shift: xy + d)
        if k:
            c["concession_id"] = c["concession_id"] + f"-{k}"
            c["source_id"] = c["source_id"] + f"-{k}"
        copies.append(c)
    pick = places(FOOTPRINTS)
    squares = pd.concat([sites.iloc[[0]]] * FOOTPRINTS, ignore_index=True)
    squares["concession_id"] = [f"bench_footprints:{i + 1}" for i in range(FOOTPRINTS)]
    squares["source_id"] = [str(i + 1) for i in range(FOOTPRINTS)]
    squares["source"] = "bench_footprints"
    squares["name"] = [f"Footprint {i + 1}" for i in range(FOOTPRINTS)]
    squares["footprint"] = "polygon"
    squares["footprint_radius_m"] = np.nan
    squares["location_precision"] = pd.Series(pd.NA, index=squares.index, dtype="str")
    squares["geometry"] = [
        _square(x, y, s)
        for x, y, s in zip(c_lon[pick], c_lat[pick], rng.uniform(2, 5, FOOTPRINTS), strict=True)
    ]
    concessions = gpd.GeoDataFrame(
        pd.concat([*copies, squares], ignore_index=True), geometry="geometry", crs="EPSG:4326"
    )

    # Tailings dams: real ANM dams, moved to within 3 km of seeded places.
    dams_real = gpd.read_parquet(BUILD / "tailings_dams.parquet")
    dams = dams_real.iloc[np.sort(rng.choice(len(dams_real), DAMS, replace=False))].copy()
    pick = places(DAMS)
    r = 3.0 * np.sqrt(rng.uniform(0, 1, DAMS)) / KM_PER_DEGREE
    theta = rng.uniform(0, 2 * np.pi, DAMS)
    d_lat = c_lat[pick] + r * np.cos(theta)
    d_lon = c_lon[pick] + r * np.sin(theta) / np.cos(np.radians(d_lat))
    dams["geometry"] = shapely.points(d_lon, d_lat)
    dams["country"] = "SLE"
    dams = dams.reset_index(drop=True)

    # Incidents: real UCDP rows; their pattern rescaled from their bounding box into the grid.
    inc_real = gpd.read_parquet(BUILD / "incidents.parquet")
    inc_real = inc_real[inc_real["source"] == "ucdp_ged_caf"]
    incidents = inc_real.iloc[np.sort(rng.choice(len(inc_real), INCIDENTS, replace=False))].copy()
    x0, y0, x1, y1 = inc_real.total_bounds
    i_lon = west + (shapely.get_x(incidents.geometry.to_numpy()) - x0) / (x1 - x0) * (east - west)
    i_lat = south + (shapely.get_y(incidents.geometry.to_numpy()) - y0) / (y1 - y0) * (
        north - south
    )
    incidents["geometry"] = shapely.points(i_lon, i_lat)
    incidents["country"] = "SLE"
    incidents = incidents.reset_index(drop=True)

    # Units: Voronoi cells of seeded points, clipped to the grid, two levels.
    units = []
    parents = None
    code = 0
    for level, n in ((2, LEVEL2_UNITS), (3, LEVEL3_UNITS)):
        lon, lat = cell_points(n)
        seeds = shapely.points(lon, lat)
        cells = shapely.get_parts(
            shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=extent, ordered=True)
        )
        geoms = shapely.segmentize(shapely.intersection(cells, extent), SEGMENT_DEG)
        codes = [f"B{code + i + 1:05d}" for i in range(n)]
        code += n
        if parents is None:
            quadrant = (lon > (west + east) / 2).astype(int) + 2 * (lat < (south + north) / 2)
            parent = [f"SLE0{q + 1}" for q in quadrant]
            names = [f"District {i + 1}" for i in range(n)]
        else:
            tree = shapely.STRtree(parents.geometry.to_numpy())
            idx = tree.query_nearest(seeds, all_matches=False)[1]
            parent = parents["code"].to_numpy()[idx].tolist()
            names = [f"Chiefdom {i + 1}" for i in range(n)]
        frame = gpd.GeoDataFrame(
            {
                "code": pd.Series(codes, dtype="str"),
                "name": pd.Series(names, dtype="str"),
                "level": pd.Series(level, index=range(n), dtype="Int64"),
                "parent_code": pd.Series(parent, dtype="str"),
                "country": pd.Series("SLE", index=range(n), dtype="str"),
                "source": pd.Series("bench_voronoi", index=range(n), dtype="str"),
                "source_id": pd.Series(codes, dtype="str"),
                "sensitivity": pd.Series("public", index=range(n), dtype="str"),
                "qa_flags": pd.Series(pd.NA, index=range(n), dtype="str"),
            },
            geometry=geoms,
            crs="EPSG:4326",
        )
        if parents is None:
            parents = frame
        units.append(frame)
    unit_layer = gpd.GeoDataFrame(pd.concat(units, ignore_index=True), crs="EPSG:4326")

    # community_risk: a score from the distances to the evidence (degrees as km, roughly).
    def km_to(layer: gpd.GeoDataFrame) -> np.ndarray:
        tree = shapely.STRtree(layer.geometry.to_numpy())
        _, dist = tree.query_nearest(
            communities.geometry.to_numpy(), return_distance=True, all_matches=False
        )
        return dist * KM_PER_DEGREE

    d_conc, d_dam, d_inc = km_to(concessions), km_to(dams), km_to(incidents)
    # Near a mine site, a dam or an incident scores high; the three combined as chances.
    score = np.round(
        100
        * (
            1
            - (1 - np.exp(-d_conc / 10))
            * (1 - 0.6 * np.exp(-d_dam / 15))
            * (1 - 0.4 * np.exp(-d_inc / 30))
        ),
        1,
    )
    score[np.arange(len(score)) % 97 == 0] = np.nan  # some communities without a score
    missing = np.empty(len(score), dtype=object)
    names = np.array(["concession_pressure", "tailings_exposure", "incident_intensity"])
    far = np.column_stack([d_conc > 50, d_dam > 50, d_inc > 50])
    for i in range(len(score)):
        missing[i] = names[far[i]].tolist()
    community_risk = communities[["community_id", "name", "country", "admin1", "population"]].copy()
    community_risk["score"] = score
    community_risk["risk_class"] = pd.Series(params.classes.of(score), dtype="str")
    confidence = np.where(score >= 50, "medium", "low").astype(object)
    confidence[np.isnan(score)] = None
    community_risk["confidence"] = pd.Series(confidence, dtype="str")
    community_risk["factors_missing"] = missing
    community_risk = gpd.GeoDataFrame(
        community_risk, geometry=communities.geometry.to_numpy(), crs="EPSG:4326"
    )

    for name, frame in (
        ("communities", communities),
        ("community_risk", community_risk),
        ("concessions", concessions),
        ("tailings_dams", dams),
        ("incidents", incidents),
        ("units", unit_layer),
    ):
        frame.to_parquet(DATA / f"{name}.parquet", index=False)
    manifest = {
        "seed": seed,
        "crs_wkt": crs_wkt,
        "transform": list(transform)[:6],
        "shape": [SIDE, SIDE],
        "populated_cells": int(populated.size),
        "people": float(people.sum(dtype=np.float64)),
        "source_populated_cells": int((source > 0).sum()),
        "communities": len(communities),
        "communities_on_grid": int(in_grid.sum()),
        "units": {"2": LEVEL2_UNITS, "3": LEVEL3_UNITS},
        "concessions": len(concessions),
        "tailings_dams": len(dams),
        "incidents": len(incidents),
        "extent": [west, south, east, north],
        "made": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    (DATA / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    mb = sum(p.stat().st_size for p in DATA.iterdir()) / 2**20
    print(
        f"{DATA.relative_to(ROOT)}: grid {SIDE:,} × {SIDE:,} ({populated.size:,} populated cells, "
        f"{manifest['people']:,.0f} people), {len(communities):,} communities "
        f"({int(in_grid.sum()):,} on the grid), {len(unit_layer):,} units, "
        f"{len(concessions)} concessions, {len(dams)} dams, {len(incidents)} incidents; "
        f"{mb:,.0f} MiB, {time.perf_counter() - t0:.1f} s"
    )


# --- one measurement (in a fresh process) ------------------------------------------------------


def manifest() -> dict[str, Any]:
    path = DATA / "manifest.json"
    if not path.exists():
        raise SystemExit(f"missing {path.relative_to(ROOT)}: run without --measure first")
    return json.loads(path.read_text(encoding="utf-8"))


def load_grid() -> Any:
    """The cached grid as the build holds it (``read_population``'s CRS and transform)."""
    import numpy as np
    from pyproj import CRS
    from rasterio.transform import Affine

    from geo_service.ingest.population import PopulationGrid

    m = manifest()
    return PopulationGrid(
        key="worldpop_sle_2019",
        path=WORLDPOP,
        year=2019,
        crs=CRS.from_user_input(m["crs_wkt"]),
        transform=Affine(*m["transform"]),
        people=np.load(DATA / "population.npy"),
    )


def load_inputs() -> dict[str, Any]:
    """Everything ``people_exposed`` is given, as ``run_risk`` gives it."""
    import geopandas as gpd
    import pyogrio

    from geo_service.risk.base import RiskInputs
    from geo_service.risk.params import load_risk_params
    from geo_service.schemas import Kind

    read = {k: gpd.read_parquet(DATA / f"{k}.parquet") for k in ("communities", "community_risk")}
    evidence = {
        k: gpd.read_parquet(DATA / f"{k}.parquet")
        for k in ("concessions", "tailings_dams", "incidents")
    }
    covered = {"SLE"}
    inputs = RiskInputs(
        communities=read["communities"].reset_index(drop=True),
        concessions=evidence["concessions"],
        tailings_dams=evidence["tailings_dams"],
        incidents=evidence["incidents"],
        rivers=pyogrio.read_dataframe(RIVERS),
        coverage={kind: covered for kind in Kind},
    )
    return {
        "inputs": inputs,
        "community_risk": read["community_risk"],
        "units": gpd.read_parquet(DATA / "units.parquet"),
        "grids": [load_grid()],
        "params": load_risk_params(RISK_TOML),
    }


class StageTimer:
    """Seconds per stage of one call: wrappers on what ``exposure`` looks up when it runs.

    Nested stages are keyed by their path (``weights>nearest``), so a function called in two
    places (the nearest mine site, the nearest community) is timed apart.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        #: Pairs listed by ``pairs_within``, by path.
        self.pairs: dict[str, int] = {}
        self._stack: list[str] = []

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._stack.append(name)
            key = ">".join(self._stack)
            t0 = time.perf_counter()
            try:
                out = fn(*args, **kwargs)
                if name == "pairs_within":
                    self.pairs[key] = self.pairs.get(key, 0) + len(out)
                return out
            finally:
                self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - t0
                self._stack.pop()

        return timed

    def install(self) -> None:
        from geo_service.ingest.population import PopulationGrid
        from geo_service.risk import (
            exposure,
            exposure_cells,
            exposure_weights,
            metric,
            rivers,
            tailings_exposure,
        )

        for name in WRAPPED:
            for module in (exposure, exposure_weights, exposure_cells):
                if hasattr(module, name):
                    setattr(module, name, self.wrap(name, getattr(module, name)))
        # What those call in turn: pair listing and projection, wherever they are looked up.
        for module in (metric, rivers, tailings_exposure):
            module.pairs_within = self.wrap("pairs_within", module.pairs_within)  # type: ignore[attr-defined]
        metric.project = self.wrap("project", metric.project)  # type: ignore[attr-defined]
        tailings_exposure._runout_pairs = self.wrap(  # type: ignore[attr-defined]
            "_runout_pairs", tailings_exposure._runout_pairs
        )
        exposure_cells.Cells.of = staticmethod(self.wrap("Cells.of", exposure_cells.Cells.of))  # type: ignore[method-assign]
        for name in ("populated", "centres_lonlat"):
            setattr(PopulationGrid, name, self.wrap(name, getattr(PopulationGrid, name)))


def run_once(given: dict[str, Any]) -> Any:
    """One ``people_exposed`` call on the loaded inputs (the call every measurement times)."""
    from geo_service.risk.exposure import people_exposed

    return people_exposed(
        given["inputs"],
        given["community_risk"],
        given["units"],
        given["grids"],
        given["params"],
        given["inputs"].incidents,
    )


def measure_ours() -> dict[str, object]:
    import resource

    import numpy as np

    from geo_service.risk import exposure

    t0 = time.perf_counter()
    given = load_inputs()
    load_seconds = time.perf_counter() - t0
    timer = StageTimer()
    timer.install()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    out = run_once(given)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    units = out.units
    assert units is not None
    grid = given["grids"][0]
    # Sums of the unit layer's counts, to compare runs (the column names may change).
    cols = [f.column for f in exposure.factors(given["params"])]
    check = {c: float(np.nansum(units[c].to_numpy(dtype="float64"))) for c in cols if c in units}
    total = next((c for c in ("people", "population") if c in units), None)
    top = sum(v for k, v in timer.seconds.items() if ">" not in k)
    return {
        "seconds": seconds,
        "peak_rss_mb": peak / 1024,
        "rss_before_mb": before / 1024,
        "load_seconds": load_seconds,
        "grid_cells": int(grid.people.size),
        "populated_cells": int(np.count_nonzero(grid.people > 0)),
        "units": len(given["units"]),
        "communities": len(given["inputs"].communities),
        "people_on_grid": out.metadata.get("people_in_a_community_catchment"),
        "people_in_units": float(units[total].sum()) if total else None,
        "result_check": json.dumps(check),
        "stages": json.dumps({**timer.seconds, "other": seconds - top}),
        "pairs": json.dumps(timer.pairs),
    }


def measure_ceiling() -> dict[str, object]:
    """A zonal sum: each level's units rasterised (cell-centre rule), people summed by label."""
    import resource

    import geopandas as gpd
    import numpy as np
    import rasterio.features

    t0 = time.perf_counter()
    grid = load_grid()
    units = gpd.read_parquet(DATA / "units.parquet")
    load_seconds = time.perf_counter() - t0
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    flat = grid.people.ravel()
    populated = np.flatnonzero(flat > 0)
    people = flat[populated].astype(np.float64)
    total = np.zeros(len(units))
    for level in sorted(units["level"].unique()):
        sel = np.flatnonzero((units["level"] == level).to_numpy())
        labels = rasterio.features.rasterize(
            zip(units.geometry.to_numpy()[sel], (sel + 1).tolist(), strict=True),
            out_shape=grid.shape,
            transform=grid.transform,
            fill=0,
            dtype="int32",
        )
        sums = np.bincount(labels.ravel()[populated], people, minlength=len(units) + 1)
        total += sums[1:]
        del labels
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "seconds": seconds,
        "peak_rss_mb": peak / 1024,
        "rss_before_mb": before / 1024,
        "load_seconds": load_seconds,
        "grid_cells": int(grid.people.size),
        "populated_cells": int(populated.size),
        "units": len(units),
        "people_in_units": float(total.sum()),
    }


# --- run ---------------------------------------------------------------------------------------


def run_child(which: str, rss_cap_gib: float) -> dict[str, object]:
    """One measurement in a fresh process (``benchlib.run_child``)."""
    return benchlib.run_child(Path(__file__), ["--measure", which], rss_cap_gib, CHILD_TIMEOUT_S)


def code_fingerprint() -> str:
    """SHA-256 (12 hex) of the code and parameters a measurement runs."""
    return benchlib.code_fingerprint([RISK_TOML])


def run(repeats: int, rss_cap_gib: float, idle_wait_s: float = IDLE_WAIT_S) -> Path:
    before = code_fingerprint()
    print(
        f"commit {benchlib.git_head(['geo_service', 'layers/risk.toml'])}, "
        f"code fingerprint {before}"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"exposure-{dt.datetime.now():%Y%m%d-%H%M%S}.tsv"
    rows: list[dict[str, object]] = []
    with out.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, TSV_COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        for repeat in range(1, repeats + 1):
            order = WHICH if repeat % 2 else WHICH[::-1]
            for which in order:
                idle = wait_for_idle(IDLE_TARGET, idle_wait_s)
                res = run_child(which, rss_cap_gib)
                row: dict[str, object] = {
                    "repeat": repeat,
                    "which": which,
                    "fingerprint": code_fingerprint(),
                    "idle_before": idle,
                    **res,
                }
                rows.append(row)
                writer.writerow({k: fmt(row.get(k)) for k in TSV_COLUMNS})
                fh.flush()
                if res["status"] != "ok":
                    print(f"{which:>8} #{repeat} {res['status']}  idle {idle:.0%}")
                    continue
                line = (
                    f"{which:>8} #{repeat} {float(res['seconds']):7.2f} s "  # type: ignore[arg-type]
                    f"{float(res['peak_rss_mb']):6.0f} MiB  idle {idle:.0%}"  # type: ignore[arg-type]
                )
                if which == "ours":
                    stages = json.loads(str(res["stages"]))
                    line += "  " + " ".join(
                        f"{k}={v:.1f}" for k, v in stages.items() if ">" not in k and v >= 0.05
                    )
                print(line)
    after = code_fingerprint()
    if after != before:
        print(
            f"WARNING: geo_service or risk.toml changed during the run ({before} -> {after}); "
            "the measurements mix code versions",
            file=sys.stderr,
        )
    print(f"\nwrote {out.relative_to(ROOT)} (code fingerprint {after})\n")
    print_summary(rows)
    return out


def print_summary(rows: list[dict[str, object]]) -> None:
    ok = [r for r in rows if r.get("status") == "ok"]
    by = {w: [r for r in ok if r["which"] == w] for w in WHICH}
    table = [["which", "seconds", "peak RSS MiB", "RSS before MiB", "idle before"]]
    for which, mine in by.items():
        if mine:
            table.append(
                [
                    which,
                    mmm([float(str(r["seconds"])) for r in mine]),
                    mmm([float(str(r["peak_rss_mb"])) for r in mine], "{:.0f}"),
                    mmm([float(str(r["rss_before_mb"])) for r in mine], "{:.0f}"),
                    mmm([float(str(r["idle_before"])) for r in mine], "{:.2f}"),
                ]
            )
    print_table(table, "median (min–max) over repeats")
    print()
    ours, ceiling = by["ours"], by["ceiling"]
    if ours:
        first = ours[0]
        print(
            f"grid {int(str(first['grid_cells'])):,} cells, {int(str(first['populated_cells'])):,}"
            f" populated; {int(str(first['units'])):,} units; "
            f"{int(str(first['communities'])):,} communities"
        )
        pairs = {int(str(r["repeat"])): r for r in ceiling}
        ratios = [
            float(str(r["seconds"])) / float(str(pairs[int(str(r["repeat"]))]["seconds"]))
            for r in ours
            if int(str(r["repeat"])) in pairs
        ]
        if ratios:
            print(f"ours / ceiling (per repeat): {mmm(ratios)}")
        secs = [float(str(r["seconds"])) for r in ours]
        peak = max(float(str(r["peak_rss_mb"])) for r in ours) * 2**20
        print(
            f"target ≤ {TARGET_S:g} s: {'met' if statistics.median(secs) <= TARGET_S else 'MISSED'}"
            f" (median {statistics.median(secs):.1f} s); ≤ 4 GB: "
            f"{'met' if peak <= TARGET_BYTES else 'MISSED'} (highest peak {peak / 1e9:.2f} GB)\n"
        )
        stages: dict[str, list[float]] = {}
        for r in ours:
            for k, v in json.loads(str(r["stages"])).items():
                stages.setdefault(k, []).append(v)
        lines = [["stage", "seconds"]]
        for k, v in stages.items():
            depth = k.count(">")
            lines.append([("  " * depth + k.split(">")[-1]).ljust(28), mmm(v)])
        print_table(lines, "people_exposed by stage (median (min–max); indented: within)")
        print("\npairs listed by pairs_within (first repeat):")
        for k, v in json.loads(str(first.get("pairs") or "{}")).items():
            print(f"  {k}: {v:,}")
    for r in rows:
        if r.get("status") != "ok":
            print(f"{r['which']} #{r['repeat']}: {r['status']}")


def summary_of(tsv: Path) -> None:
    with tsv.open(encoding="utf-8", newline="") as fh:
        print_summary(list(csv.DictReader(fh, delimiter="\t")))


def profile(top: int) -> None:
    """One ``people_exposed`` under cProfile: the top entries by cumulative and own time."""
    import cProfile
    import pstats

    given = load_inputs()
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    run_once(given)
    prof.disable()
    print(f"people_exposed under cProfile: {time.perf_counter() - t0:.1f} s\n")
    path = DATA / "people_exposed.prof"
    prof.dump_stats(path)
    print(f"profile saved to {path.relative_to(ROOT)}\n")
    stats = pstats.Stats(prof).strip_dirs()
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(15)


# --- CLI ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(
        description=doc.split("\n\n")[0],
        epilog="Without --measure, --profile or --summary: make the inputs if they are missing, "
        "then measure and print the summary.",
    )
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each (default 3)")
    parser.add_argument(
        "--rss-cap-gib",
        type=float,
        default=RSS_CAP_GIB,
        help=f"stop a measurement whose RSS passes this (default {RSS_CAP_GIB:g})",
    )
    parser.add_argument(
        "--idle-wait-s",
        type=float,
        default=IDLE_WAIT_S,
        help=f"wait at most this long for an 80 %% idle machine (default {IDLE_WAIT_S:g})",
    )
    parser.add_argument("--seed", type=int, default=SEED, help="seed of the generated inputs")
    parser.add_argument(
        "--make-data", action="store_true", help="(re)write the inputs in bench/.run/exposure/"
    )
    parser.add_argument(
        "--profile", action="store_true", help="cProfile one people_exposed and print the top"
    )
    parser.add_argument("--top", type=int, default=30, help="entries the profile prints")
    parser.add_argument("--summary", type=Path, help="print the summary of an earlier run's TSV")
    parser.add_argument("--measure", choices=WHICH, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.measure == "ours":
        print(json.dumps(measure_ours()))
    elif args.measure == "ceiling":
        print(json.dumps(measure_ceiling()))
    elif args.summary is not None:
        summary_of(args.summary)
    else:
        if args.make_data or not (DATA / "manifest.json").exists():
            make_data(args.seed)
        if args.profile:
            profile(args.top)
        elif not args.make_data:
            if not 1 <= args.repeats <= 20:
                raise SystemExit("--repeats must be between 1 and 20")
            run(args.repeats, args.rss_cap_gib, args.idle_wait_s)


if __name__ == "__main__":
    main()
