"""Benchmark of the risk model: every vector risk layer of a Congo-basin-sized synthetic build.

Why: the requirement is that, with 1,000,000 incidents, 200,000 communities, 20,000 concession
polygons and 5,000 tailings dams spread over a Congo-basin-sized extent, all vector risk layers
are made in at most 60 s with a peak memory of at most 4 GB on this 2-core machine, and that
we show ¼, ½ and full size (the growth must be near-linear).

How:

* ``make-data`` builds the bundled catalog once (``riskmap build --build-dir
  bench/data/risk_base``) and resamples its real canonical layers (read with ``load_kind``),
  with replacement and a fixed seed, into ``bench/data/risk_{quarter,half,full}/``: one
  GeoParquet file per kind, the Natural Earth Africa rivers that touch the extent
  (``rivers.gpkg``) and ``manifest.json``. Every synthetic feature is placed near an *anchor*
  (a distinct real African location inside the extent lon 12..31, lat -13..5: the bundled
  GeoNames places, UCDP incidents and USGS diamond sites there), uniformly within 20 km of it,
  and takes the anchor's country. Attribute values are those of the resampled real row; ids are
  new and unique. Concessions are polygons: the real USGS diamond sites grown to their footprint
  radius in metres (``metric.buffer_metres``), copied and moved (vertex offsets rescaled in
  longitude by the cosine of the latitude, so each footprint keeps its size in metres), with
  ``footprint = "polygon"`` and no radius. Dams are the ANM tailings dams (heights, volumes,
  methods, statuses kept). ¼ and ½ scale every count over the same extent.
* ``run`` measures, per size and repeat, one ``run_risk(layers, catalog, params)`` call in a
  fresh Python process, with the project's catalog (only the four sources the layers come
  from, each with coverage set to the synthetic countries, and the rivers reference pointing
  at ``rivers.gpkg``) and ``layers/risk.toml``. The child times only that call with
  ``time.perf_counter()`` (imports, reading the GeoParquet files and the catalog are outside)
  and reports its peak RSS (``ru_maxrss``, MiB, imported libraries included). The stages of
  the call (each factor's ``compute``, ``combine``, ``concession_risk``, ``risk_hex``, the
  reference reads) are timed in the same call by thin wrappers around the functions
  ``run_risk`` looks up. Sizes alternate within each repeat (¼, ½, full; then ½, full, ¼; …).
  Before each measurement the runner waits (at most 60 s) for the machine to be at least 80 %
  idle. A child whose RSS passes ``--rss-cap-gib`` (default 12) is stopped and recorded as
  failed. Results go to ``bench/results/risk-YYYYmmdd-HHMMSS.tsv``.
* ``profile`` runs one ``run_risk`` at a size under cProfile and prints the top entries by
  cumulative time (and by own time).

Run from the repository root::

    .venv/bin/python bench/risk_bench.py make-data
    .venv/bin/python bench/risk_bench.py run --sizes quarter,half,full --repeats 3
    .venv/bin/python bench/risk_bench.py profile --size full

This is run by hand; it is not part of the test suite.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import benchlib
from benchlib import BENCH, RESULTS, ROOT, fmt, mmm, print_table, wait_for_idle

DATA = BENCH / "data"
BASE_BUILD = DATA / "risk_base"
CATALOG = ROOT / "layers" / "sources.toml"
RISK_TOML = ROOT / "layers" / "risk.toml"
AFRICA_RIVERS = (
    ROOT / "layers" / "sources" / "natural_earth" / "ne_10m_rivers_lake_centerlines_africa.geojson"
)

#: lon_min, lat_min, lon_max, lat_max: about 2,100 × 2,000 km around the Congo basin.
EXTENT = (12.0, -13.0, 31.0, 5.0)
FULL = {
    "incidents": 1_000_000,
    "communities": 200_000,
    "concessions": 20_000,
    "tailings_dams": 5_000,
}
SIZES = {"quarter": 0.25, "half": 0.5, "full": 1.0, "continent": 1.0}
#: ``continent`` (``scale_bench.py``): the full size with ten times the communities — every
#: populated place of a region the size of the Congo basin, at GeoNames' density in its
#: best-mapped countries.
CONTINENT = {**FULL, "communities": 2_000_000}
KINDS = tuple(FULL)
#: Source keys of the real rows each kind is resampled from (and whose catalog entry is used).
SOURCE_KEYS = {
    "incidents": "ucdp_ged_caf",
    "communities": "geonames_africa",
    "concessions": "usgs_africa_diamond_facilities",
    "tailings_dams": "anm_sigbm_brazil",
}
ID_FIELDS = {
    "incidents": "incident_id",
    "communities": "community_id",
    "concessions": "concession_id",
    "tailings_dams": "dam_id",
}
SEED = 20232
JITTER_M = 20_000.0
#: Anchors closer than this (degrees, about 1 km) are one.
ANCHOR_GRID_DEG = 0.01
METRES_PER_DEGREE = 111_195.0
IDLE_TARGET = 0.80
IDLE_WAIT_S = 60.0
CHILD_TIMEOUT_S = 1800
RSS_CAP_GIB = 12.0
STAGES = (
    "coverage_of",
    "read_rivers",
    "concession_pressure",
    "tailings_exposure",
    "incident_intensity",
    "combine",
    "concession_risk",
    "risk_hex",
    "read_countries",
    "coverage_layer",
    "compute_surface",
)
SURFACE_COLUMNS = [
    "size",
    "repeat",
    "status",
    "fingerprint",
    "incidents",
    "communities",
    "concessions",
    "tailings_dams",
    "width",
    "height",
    "cell_m",
    "seconds",
    "cog_seconds",
    "cog_mb",
    "compute_peak_rss_mb",
    "peak_rss_mb",
    "rss_before_mb",
    "load_seconds",
    "idle_before",
    "nan_cells",
]
TSV_COLUMNS = [
    "size",
    "repeat",
    "status",
    "fingerprint",
    "incidents",
    "communities",
    "concessions",
    "tailings_dams",
    "seconds",
    "peak_rss_mb",
    "rss_before_mb",
    "load_seconds",
    "idle_before",
    *[f"s_{s}" for s in STAGES],
    "s_other",
    "incident_pairs",
    "concession_pairs",
    "footprint_incident_pairs",
    "footprint_community_pairs",
    "dam_pairs",
    "community_risk_rows",
    "tailings_consequence_rows",
    "concession_risk_rows",
    "risk_hex_rows",
    "coverage_rows",
    "incident_method",
    "vector_seconds",
    "surface_width",
    "surface_height",
    "surface_cell_m",
]


def size_dir(size: str) -> Path:
    return DATA / f"risk_{size}"


def parse_sizes(text: str) -> list[str]:
    sizes = [s.strip().lower() for s in text.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        raise SystemExit(f"unknown size(s) {', '.join(unknown)}; choose from {', '.join(SIZES)}")
    return sizes


def counts_of(size: str) -> dict[str, int]:
    if size == "continent":
        return dict(CONTINENT)
    return {k: round(n * SIZES[size]) for k, n in FULL.items()}


# --- make-data --------------------------------------------------------------------------------


def ensure_base_build() -> str:
    """The bundled build the synthetic layers are resampled from (built once)."""
    if not (BASE_BUILD / "current").exists():
        cmd = [
            str(ROOT / ".venv" / "bin" / "riskmap"),
            "build",
            "--build-dir",
            str(BASE_BUILD),
        ]
        print("building the bundled catalog:", " ".join(cmd))
        subprocess.run(cmd, cwd=ROOT, check=True, timeout=900)
    return os.readlink(BASE_BUILD / "current")


def _in_extent(lon, lat):  # type: ignore[no-untyped-def]
    x0, y0, x1, y1 = EXTENT
    return (lon >= x0) & (lon <= x1) & (lat >= y0) & (lat <= y1)


def anchors(base: dict[str, Any]) -> tuple[Any, Any, Any]:
    """Distinct real African locations inside the extent (lon, lat, country)."""
    import numpy as np
    import shapely

    lon, lat, country = [], [], []
    for kind in ("communities", "incidents", "concessions"):
        g = base[kind]
        g = g[g["source"] == SOURCE_KEYS[kind]]
        x, y = (
            shapely.get_x(g.geometry.to_numpy()),
            shapely.get_y(g.geometry.to_numpy()),
        )
        ok = _in_extent(x, y) & g["country"].notna().to_numpy()
        lon.append(x[ok])
        lat.append(y[ok])
        country.append(g["country"].to_numpy(dtype=object)[ok])
    lon, lat, country = (
        np.concatenate(lon),
        np.concatenate(lat),
        np.concatenate(country),
    )
    key = np.round(lon / ANCHOR_GRID_DEG).astype(np.int64) * 100_000 + np.round(
        lat / ANCHOR_GRID_DEG
    ).astype(np.int64)
    _, first = np.unique(key, return_index=True)
    first.sort()
    return lon[first], lat[first], country[first]


def place(rng, n: int, pool: tuple[Any, Any, Any]):  # type: ignore[no-untyped-def]
    """``n`` positions, each uniform within ``JITTER_M`` of a random anchor, and its country."""
    import numpy as np

    a_lon, a_lat, a_country = pool
    pick = rng.integers(0, len(a_lon), n)
    r = JITTER_M * np.sqrt(rng.uniform(0.0, 1.0, n))
    theta = rng.uniform(0.0, 2 * np.pi, n)
    lat = a_lat[pick] + r * np.cos(theta) / METRES_PER_DEGREE
    lon = a_lon[pick] + r * np.sin(theta) / (METRES_PER_DEGREE * np.cos(np.radians(lat)))
    x0, y0, x1, y1 = EXTENT
    return np.clip(lon, x0, x1), np.clip(lat, y0, y1), a_country[pick]


def _resample(frame, rng, n: int, kind: str):  # type: ignore[no-untyped-def]
    """``n`` rows drawn with replacement, with new unique ids; and which rows were drawn."""
    import numpy as np

    pick = rng.integers(0, len(frame), n)
    out = frame.take(pick).reset_index(drop=True)
    serial = np.arange(n).astype(str)
    out[ID_FIELDS[kind]] = np.char.add(f"{SOURCE_KEYS[kind]}:bench", serial).astype(object)
    out["source_id"] = np.char.add("bench", serial).astype(object)
    return out, pick


def _moved_footprints(footprints, centres_lon, centres_lat, pick, lon, lat):  # type: ignore[no-untyped-def]
    """Copies of ``footprints[pick]`` centred on (lon, lat), each keeping its size in metres."""
    import numpy as np
    import shapely

    parts = footprints[pick]
    coords, index = shapely.get_coordinates(parts, return_index=True)
    src = pick[index]
    scale = np.cos(np.radians(centres_lat[src])) / np.cos(np.radians(lat[index]))
    x = lon[index] + (coords[:, 0] - centres_lon[src]) * scale
    y = lat[index] + (coords[:, 1] - centres_lat[src])
    if not (shapely.get_type_id(footprints) == 3).all():
        raise SystemExit("expected the buffered sites to be Polygons")
    # One ring per polygon (a buffered point has no holes).
    rings = shapely.linearrings(np.column_stack([x, y]), indices=index)
    return shapely.polygons(rings)


def make_data(sizes: list[str], seed: int) -> None:
    import geopandas as gpd
    import numpy as np
    import pandas as pd
    import pyogrio
    import shapely

    from geo_service.risk.metric import buffer_metres
    from geo_service.store.files import load_kind

    build_id = ensure_base_build()
    base = {k: load_kind(BASE_BUILD, k) for k in KINDS}
    real = {k: base[k][base[k]["source"] == SOURCE_KEYS[k]].reset_index(drop=True) for k in KINDS}
    pool = anchors(base)
    countries = sorted(set(pool[2]))
    print(
        f"base build {build_id}: "
        + ", ".join(f"{k} {len(real[k]):,} real rows" for k in KINDS)
        + f"; {len(pool[0]):,} anchors in {', '.join(countries)}"
    )

    # Concession footprints: the real sites grown to their radius, at their real place.
    sites = real["concessions"]
    if not (shapely.get_type_id(sites.geometry.to_numpy()) == 0).all():
        raise SystemExit("expected the bundled concessions to be site points")
    footprints = buffer_metres(sites.geometry, sites["footprint_radius_m"].to_numpy())
    site_lon = shapely.get_x(sites.geometry.to_numpy())
    site_lat = shapely.get_y(sites.geometry.to_numpy())

    rivers = pyogrio.read_dataframe(AFRICA_RIVERS)
    rivers = rivers[rivers.intersects(shapely.box(*EXTENT))].reset_index(drop=True)

    for size in sizes:
        t0 = time.perf_counter()
        counts = counts_of(size)
        out = size_dir(size)
        out.mkdir(parents=True, exist_ok=True)
        written = {}
        for k_i, kind in enumerate(KINDS):
            rng = np.random.default_rng([seed, list(SIZES).index(size), k_i])
            n = counts[kind]
            frame, pick = _resample(real[kind], rng, n, kind)
            lon, lat, country = place(rng, n, pool)
            frame["country"] = pd.array(country, dtype=frame["country"].dtype)
            if kind == "concessions":
                geometry = _moved_footprints(footprints, site_lon, site_lat, pick, lon, lat)
                frame["footprint"] = "polygon"
                frame["footprint_radius_m"] = np.nan
            else:
                geometry = shapely.points(lon, lat)
            gdf = gpd.GeoDataFrame(
                frame.drop(columns="geometry"), geometry=geometry, crs="EPSG:4326"
            )
            if gdf[ID_FIELDS[kind]].duplicated().any():
                raise SystemExit(f"{kind}: duplicate ids")
            target = out / f"{kind}.parquet"
            tmp = target.with_suffix(".parquet.tmp")
            gdf.to_parquet(tmp, index=False)
            tmp.replace(target)
            written[kind] = len(gdf)
        rivers_path = out / "rivers.gpkg"
        rivers_path.unlink(missing_ok=True)
        pyogrio.write_dataframe(rivers, rivers_path, driver="GPKG")
        manifest = {
            "size": size,
            "scale": SIZES[size],
            "counts": written,
            "rivers": len(rivers),
            "countries": countries,
            "extent": EXTENT,
            "anchors": int(len(pool[0])),
            "jitter_m": JITTER_M,
            "seed": seed,
            "base_build": build_id,
        }
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        mb = sum(p.stat().st_size for p in out.iterdir()) / 1e6
        print(
            f"{out.relative_to(ROOT)}: "
            + ", ".join(f"{k} {v:,}" for k, v in written.items())
            + f", rivers {len(rivers)}; {mb:,.0f} MB, {time.perf_counter() - t0:.1f} s"
        )


# --- one measurement (runs in a fresh process) ------------------------------------------------


def bench_catalog(folder: Path, countries: list[str]):  # type: ignore[no-untyped-def]
    """The project's catalog: the four sources of the synthetic layers, covering its countries."""
    from geo_service.catalog import load_catalog

    cat = load_catalog(CATALOG)
    keys = set(SOURCE_KEYS.values())
    sources = [
        e.model_copy(update={"coverage": e.coverage.model_copy(update={"countries": countries})})
        for e in cat.sources
        if e.key in keys
    ]
    reference = cat.reference.model_copy(update={"rivers": [folder / "rivers.gpkg"]})
    return cat.model_copy(update={"sources": sources, "reference": reference})


#: Cells of the benchmark surface (the requirement's 4,000 × 4,000).
BENCH_SURFACE_CELLS = 16_000_000


def load_inputs(folder: Path):  # type: ignore[no-untyped-def]
    """The synthetic canonical layers, the catalog and the parameters."""
    import geopandas as gpd

    from geo_service.risk.params import load_risk_params
    from geo_service.schemas import Kind

    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    layers = {Kind(k): gpd.read_parquet(folder / f"{k}.parquet") for k in KINDS}
    params = load_risk_params(RISK_TOML)
    # The requirement is a 4,000 × 4,000-cell surface: the evidence covers the whole synthetic
    # extent, so 16 million computed cells is that grid.
    surface = params.surface.model_copy(update={"max_cells": BENCH_SURFACE_CELLS})
    params = params.model_copy(update={"surface": surface})
    return layers, bench_catalog(folder, manifest["countries"]), params


class StageTimer:
    """Seconds spent in each stage of one ``run_risk`` call (wrappers on what it looks up)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)

    def _wrap(self, name: str, fn):  # type: ignore[no-untyped-def]
        def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - t0

        return timed

    def install(self) -> None:
        import geo_service.risk.model as model
        from geo_service.risk import FACTORS

        for name in (
            "coverage_of",
            "read_rivers",
            "combine",
            "concession_risk",
            "risk_hex",
        ):
            setattr(model, name, self._wrap(name, getattr(model, name)))
        for name in ("read_countries", "coverage_layer", "compute_surface"):
            if hasattr(model, name):  # compute_surface: since the surface joined run_risk
                setattr(model, name, self._wrap(name, getattr(model, name)))
        for name, factor in FACTORS.items():
            if name not in self.seconds:
                self.seconds[name] = 0.0
            # Since the factors run a partition of the communities at a time, run_risk calls
            # their three steps; before, ``compute``.
            steps = ("prepare", "evaluate", "finish") if hasattr(factor, "evaluate") else ()
            for step in steps or ("compute",):
                setattr(factor, step, self._wrap(name, getattr(factor, step)))


def measure(size: str) -> dict[str, object]:
    import resource

    from geo_service.risk.model import run_risk

    folder = size_dir(size)
    t0 = time.perf_counter()
    layers, catalog, params = load_inputs(folder)
    load_seconds = time.perf_counter() - t0
    timer = StageTimer()
    timer.install()
    before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    out = run_risk(layers, catalog, params)
    seconds = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    cr = out.layers["community_risk"]
    ring = max(params.factors["concession_pressure"].rings_km)  # type: ignore[attr-defined]
    conc = out.layers["concession_risk"]
    tail = out.layers["tailings_consequence"]
    years = max(params.concession_risk.years)
    res: dict[str, object] = {
        "seconds": seconds,
        # MiB (2**20 bytes)
        "peak_rss_mb": peak_kib / 1024,
        "rss_before_mb": before_kib / 1024,
        "load_seconds": load_seconds,
        **{k.value: len(v) for k, v in layers.items()},
        **{f"s_{k}": v for k, v in timer.seconds.items()},
        "s_other": seconds - sum(timer.seconds.values()),
        "incident_pairs": int(cr["incident_intensity_incidents_in_reach"].fillna(0).sum()),
        "concession_pairs": int(cr[f"concession_pressure_within_{ring:g}km"].fillna(0).sum()),
        "footprint_incident_pairs": int(conc[f"incidents_{years}y"].sum()),
        "footprint_community_pairs": int(conc["communities_within"].sum()),
        "dam_pairs": int(
            tail["communities_in_runout"].sum() + tail["communities_downstream"].sum()
        ),
        **{f"{k}_rows": len(v) for k, v in out.layers.items()},
        "incident_method": out.metadata["factors"]["incident_intensity"].get("method"),
        # Everything but the raster: the requirement's "all vector layers".
        "vector_seconds": seconds - timer.seconds.get("compute_surface", 0.0),
    }
    grid = getattr(out, "surface", None)  # run_risk computes the surface since 4bcf880
    if grid is not None:
        res |= {
            "surface_width": grid.shape[1],
            "surface_height": grid.shape[0],
            "surface_cell_m": grid.cell_m,
        }
    return res


def measure_surface(size: str, write: bool = True) -> dict[str, object]:
    """``surface.compute_surface`` as ``run_risk`` calls it, then ``write_cog``, timed apart.

    The surface parameters are ``[surface]`` of ``layers/risk.toml``.
    """
    import resource

    from geo_service.risk import surface as surf
    from geo_service.risk.model import read_countries, risk_inputs

    t0 = time.perf_counter()
    layers, catalog, params = load_inputs(size_dir(size))
    # What run_risk hands the factors, and the outlines the surface's coverage needs.
    inputs, _ = risk_inputs(layers, catalog)
    countries = read_countries(catalog)
    load_seconds = time.perf_counter() - t0
    before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    result = surf.compute_surface(inputs, params, params.surface, countries)
    seconds = time.perf_counter() - t0
    compute_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cog_seconds = cog_mb = None
    if write:
        with tempfile.TemporaryDirectory(dir=DATA) as tmp:
            path = Path(tmp) / "risk_surface.tif"
            t0 = time.perf_counter()
            surf.write_cog(result, path)
            cog_seconds = time.perf_counter() - t0
            cog_mb = path.stat().st_size / 2**20
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    height, width = result.shape
    return {
        "seconds": seconds,
        "cog_seconds": cog_seconds,
        "cog_mb": cog_mb,
        "compute_peak_rss_mb": compute_kib / 1024,
        "peak_rss_mb": peak_kib / 1024,
        "rss_before_mb": before_kib / 1024,
        "load_seconds": load_seconds,
        **{k.value: len(v) for k, v in layers.items()},
        "width": width,
        "height": height,
        "cell_m": result.cell_m,
        "nan_cells": result.metadata.get("nan_cells"),
    }


# --- run ---------------------------------------------------------------------------------------


def run_child(args: list[str], rss_cap_gib: float) -> dict[str, object]:
    """One measurement in a fresh process (``benchlib.run_child``)."""
    return benchlib.run_child(Path(__file__), args, rss_cap_gib, CHILD_TIMEOUT_S)


def code_fingerprint() -> str:
    """SHA-256 (12 hex) of the code, catalog and parameters a measurement runs."""
    return benchlib.code_fingerprint([CATALOG, RISK_TOML])


def git_head() -> str:
    """The checked-out commit and whether geo_service/ or layers/ differ from it (read-only)."""
    return benchlib.git_head(["geo_service", "layers/sources.toml", "layers/risk.toml"])


def run(
    sizes: list[str],
    repeats: int,
    rss_cap_gib: float,
    what: str = "vector",
) -> Path:
    missing = [
        str(size_dir(s).relative_to(ROOT))
        for s in sizes
        if not (size_dir(s) / "manifest.json").exists()
    ]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: run make-data first")
    before = code_fingerprint()
    surface = what == "surface"
    columns = SURFACE_COLUMNS if surface else TSV_COLUMNS
    print(f"commit {git_head()}, code fingerprint {before}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    prefix = "risk-surface" if surface else "risk"
    out = RESULTS / f"{prefix}-{dt.datetime.now():%Y%m%d-%H%M%S}.tsv"
    rows: list[dict[str, object]] = []
    with out.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, columns, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        for repeat in range(1, repeats + 1):
            # Rotate the order so no size always runs first or last.
            shift = (repeat - 1) % len(sizes)
            for size in sizes[shift:] + sizes[:shift]:
                idle = wait_for_idle(IDLE_TARGET, IDLE_WAIT_S)
                fingerprint = code_fingerprint()
                if surface:
                    args = ["measure-surface", size]
                else:
                    args = ["measure", size]
                res = run_child(args, rss_cap_gib)
                row: dict[str, object] = {
                    "size": size,
                    "repeat": repeat,
                    "fingerprint": fingerprint,
                    "idle_before": idle,
                }
                row |= res
                rows.append(row)
                writer.writerow({k: fmt(row.get(k)) for k in columns})
                fh.flush()
                if res["status"] != "ok":
                    print(f"{size:>7} #{repeat} {res['status']}  idle {idle:.0%}")
                    continue
                if surface:
                    print(
                        f"{size:>7} #{repeat} {res['width']}x{res['height']} cells of "
                        f"{res['cell_m']:g} m: compute {res['seconds']:.2f} s, write_cog "
                        f"{res['cog_seconds']:.2f} s, peak {res['peak_rss_mb']:.0f} MiB"
                        f"  idle {idle:.0%}"
                    )
                    continue
                print(
                    f"{size:>7} #{repeat} {res['seconds']:7.2f} s {res['peak_rss_mb']:7.0f} MiB"
                    f"  idle {idle:.0%}  "
                    + " ".join(f"{s}={res[f's_{s}']:.1f}" for s in STAGES if res[f"s_{s}"] >= 0.05)
                )
    after = code_fingerprint()
    if after != before:
        print(
            f"WARNING: geo_service, the catalog or risk.toml changed during the run ({before} -> "
            f"{after}); the measurements mix code versions",
            file=sys.stderr,
        )
    print(f"\nwrote {out.relative_to(ROOT)} (code fingerprint {after})\n")
    (print_surface_summary if surface else print_summary)(rows)
    return out


def print_summary(rows: list[dict[str, object]]) -> None:
    ok = [r for r in rows if r.get("status") == "ok"]
    failed = [r for r in rows if r.get("status") != "ok"]
    head = [
        "size",
        "incidents",
        "communities",
        "concessions",
        "dams",
        "seconds",
        "vector s",
        "peak MiB",
        "incidents by",
    ]
    lines = [head]
    stage_lines = [["size", *STAGES, "other"]]
    pair_lines = [
        [
            "size",
            "incident pairs",
            "concession pairs",
            "footprint×incident",
            "footprint×community",
            "dam pairs",
        ]
    ]
    for size in [s for s in SIZES if any(r["size"] == s for r in ok)]:
        mine = [r for r in ok if r["size"] == size]
        first = mine[0]
        lines.append(
            [
                size,
                f"{int(first['incidents']):,}",
                f"{int(first['communities']):,}",
                f"{int(first['concessions']):,}",
                f"{int(first['tailings_dams']):,}",
                mmm([float(r["seconds"]) for r in mine]),
                mmm([float(r.get("vector_seconds") or "nan") for r in mine]),
                mmm([float(r["peak_rss_mb"]) for r in mine], "{:.0f}"),
                str(first.get("incident_method") or "?"),
            ]
        )
        stage_lines.append(
            [size]
            + [
                f"{statistics.median(float(r[f's_{s}']) for r in mine):.2f}"
                for s in [*STAGES, "other"]
            ]
        )
        pair_lines.append(
            [size]
            + [
                f"{int(first[k]):,}"
                for k in (
                    "incident_pairs",
                    "concession_pairs",
                    "footprint_incident_pairs",
                    "footprint_community_pairs",
                    "dam_pairs",
                )
            ]
        )
    for title, table in (
        ("median (min–max) over repeats", lines),
        ("median seconds per stage", stage_lines),
        ("pairs found (first repeat)", pair_lines),
    ):
        print_table(table, title)
        print()
    for r in failed:
        print(f"{r['size']} #{r['repeat']}: {r['status']}")


def print_surface_summary(rows: list[dict[str, object]]) -> None:
    ok = [r for r in rows if r.get("status") == "ok"]
    table = [
        [
            "size",
            "grid",
            "cell m",
            "compute s",
            "write_cog s",
            "compute+write s",
            "peak MiB",
        ]
    ]
    for size in [s for s in SIZES if any(r["size"] == s for r in ok)]:
        mine = [r for r in ok if r["size"] == size]
        first = mine[0]
        table.append(
            [
                size,
                f"{int(first['width'])}x{int(first['height'])}",
                f"{float(first['cell_m']):g}",
                mmm([float(r["seconds"]) for r in mine]),
                mmm([float(r["cog_seconds"]) for r in mine]),
                mmm([float(r["seconds"]) + float(r["cog_seconds"]) for r in mine]),
                mmm([float(r["peak_rss_mb"]) for r in mine], "{:.0f}"),
            ]
        )
    print_table(table, "median (min–max) over repeats")
    for r in rows:
        if r.get("status") != "ok":
            print(f"{r['size']} #{r['repeat']}: {r['status']}")


def summary_of(tsv: Path) -> None:
    with tsv.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    surface = rows and "cog_seconds" in rows[0]
    (print_surface_summary if surface else print_summary)(rows)


# --- profile -------------------------------------------------------------------------------------


def profile(size: str, top: int, save: Path | None) -> None:
    import cProfile
    import pstats

    from geo_service.risk.model import run_risk

    layers, catalog, params = load_inputs(size_dir(size))
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    run_risk(layers, catalog, params)
    prof.disable()
    print(f"run_risk at {size} under cProfile: {time.perf_counter() - t0:.1f} s\n")
    if save is not None:
        prof.dump_stats(save)
        print(f"profile saved to {save}\n")
    stats = pstats.Stats(prof).strip_dirs()
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(15)


# --- CLI ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("make-data", help="write the synthetic layers under bench/data/risk_*/")
    p.add_argument("--sizes", default=",".join(SIZES), help="comma-separated, e.g. quarter,full")
    p.add_argument("--seed", type=int, default=SEED)
    p = sub.add_parser("run", help="measure run_risk per size, write a TSV, print a summary")
    p.add_argument("--sizes", default=",".join(SIZES), help="comma-separated, e.g. quarter,full")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rss-cap-gib", type=float, default=RSS_CAP_GIB)
    p.add_argument(
        "--what",
        choices=["vector", "surface"],
        default="vector",
        help="vector: run_risk (the default); surface: surface.compute_surface and write_cog",
    )
    p = sub.add_parser("summary", help="print the summary tables of an earlier run's TSV")
    p.add_argument("tsv", type=Path)
    p = sub.add_parser("profile", help="cProfile one run_risk and print the top entries")
    p.add_argument("--size", default="full", choices=list(SIZES))
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--save", type=Path, default=None, help="also write the pstats file here")
    p = sub.add_parser("measure-surface", help="one surface measurement (used by run)")
    p.add_argument("size", choices=list(SIZES))
    p = sub.add_parser("measure", help="one measurement in this process (used by run)")
    p.add_argument("size", choices=list(SIZES))
    args = parser.parse_args(argv)

    if args.command == "make-data":
        make_data(parse_sizes(args.sizes), args.seed)
    elif args.command == "run":
        if not 1 <= args.repeats <= 20:
            raise SystemExit("--repeats must be between 1 and 20")
        run(
            parse_sizes(args.sizes),
            args.repeats,
            args.rss_cap_gib,
            args.what,
        )
    elif args.command == "summary":
        summary_of(args.tsv)
    elif args.command == "profile":
        profile(args.size, args.top, args.save)
    elif args.command == "measure-surface":
        print(json.dumps(measure_surface(args.size)))
    else:
        print(json.dumps(measure(args.size)))


if __name__ == "__main__":
    main()
