"""Catalog → validated canonical layers → a new build directory → the ``current`` pointer.

A build is atomic: everything is written into a private staging folder, flushed to disk, renamed
to ``<build-id>/`` and only then is the ``current`` symlink replaced (``rename(2)`` is atomic).
A build that fails, or is killed at any point, leaves the previous build current and untouched;
a failed build keeps its problem report in ``failed-<build-id>/`` so nothing is lost.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import math
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from geo_service import __version__
from geo_service.basemap import ATTRIBUTION as BASEMAP_CREDIT
from geo_service.basemap import build_basemap
from geo_service.catalog import SourceCatalog, file_digest, load_catalog
from geo_service.errors import BuildError
from geo_service.ingest.base import ProgressFn
from geo_service.ingest.population import PopulationGrid, write_population
from geo_service.ingest.problems import COLUMNS
from geo_service.ingest.validate import SourceResult, validate_source
from geo_service.publication import (
    AREA_SCORES,
    Policy,
    Publication,
    areas_description,
    areas_of,
    areas_title,
)
from geo_service.risk.model import TITLES, run_risk
from geo_service.risk.params import load_risk_params
from geo_service.risk.surface import Surface, to_lonlat, write_cog
from geo_service.schemas import PER_SOURCE_KINDS, RASTER_KINDS, SCHEMAS, Kind
from geo_service.settings import BuildSettings
from geo_service.store.files import CURRENT, read_build_catalog

STAGING_PREFIX = ".staging-"
#: Folder of a staging build holding the surface's regions (memory-mapped arrays) until the
#: COG is written; removed before the build is made current.
SURFACE_SCRATCH = "surface-regions"
FAILED_PREFIX = "failed-"
REJECTS_FILE = "rejects.csv"
CATALOG_FILE = "catalog.json"
#: The maps' offline basemap (``basemap.py``).
BASEMAP_FILE = "basemap.json"
#: A layer's public view beside it: ``<layer>.public.parquet``.
PUBLIC_SUFFIX = ".public.parquet"
#: What a public view's metadata replaces of its layer's (the rest is the layer's own).
PUBLIC_META = ("file", "count", "bounds", "time_extent", "geometry_types", "fields")
#: Feature ids of the layers the risk model adds.
DERIVED_ID_FIELDS = {
    "community_risk": "community_id",
    "tailings_consequence": "dam_id",
    "concession_risk": "concession_id",
    "risk_hex": "h3",
    "coverage": "factor",
    "risk_units": "code",
}
#: The kinds of source a derived layer rests on (the evidence, unless said here).
EVIDENCE_KINDS = frozenset({Kind.concessions, Kind.communities, Kind.tailings_dams, Kind.incidents})
DERIVED_FROM = {
    "community_risk": EVIDENCE_KINDS | {Kind.population},
    "risk_units": EVIDENCE_KINDS | {Kind.population, Kind.units},
}


KIND_NAMES = frozenset(k.value for k in Kind)


def by_geometry(kind: Kind, gdf: gpd.GeoDataFrame) -> list[tuple[str, str, gpd.GeoDataFrame]]:
    """The layers a kind is published as (id, title, rows): one, or for a kind with a
    ``points_layer`` its areas and its points apart, so that a layer holds one family of
    geometry, as a Shapefile or GeoPackage needs. Both exist whenever the kind does (one
    may be empty), so which layers a build has never says what its restricted rows are."""
    schema = SCHEMAS[kind]
    if schema.points_layer is None:
        return [(kind.value, schema.title, gdf)]
    points = np.isin(shapely.get_type_id(gdf.geometry.to_numpy()), (0, 4))
    point_id, point_title = schema.points_layer
    return [
        (kind.value, schema.title, gdf.loc[~points].reset_index(drop=True)),
        (point_id, point_title, gdf.loc[points].reset_index(drop=True)),
    ]


def sources_of(gdf: gpd.GeoDataFrame, keys: list[str], split: bool) -> list[str]:
    """The sources of a layer of a kind: every source of the kind (``keys``, catalog order),
    or of a kind split by geometry (``split``) those whose rows the layer holds (all when it
    holds none)."""
    if not split or "source" not in gdf:
        return keys
    held = set(gdf["source"].astype(str))
    return [k for k in keys if k in held] or keys


class Reporter:
    """Progress and messages of a build; the CLI draws them with rich, tests stay quiet."""

    def task(self, label: str, total: int) -> ProgressFn:
        """Start a task; the returned function is called with (done, total)."""
        return lambda done, total: None

    def log(self, message: str) -> None:
        """Say something the user should read."""


@dataclass
class BuildResult:
    """What a successful build wrote."""

    build_id: str
    path: Path
    catalog: dict[str, Any]
    sources: list[SourceResult] = field(default_factory=list)
    skipped: bool = False


def countries_seen(layer: gpd.GeoDataFrame | None) -> list[str]:
    """The countries of a source's public rows (what a map crediting it by country needs when
    its coverage is an outline rather than a list of countries)."""
    if layer is None or not len(layer) or "country" not in layer:
        return []
    rows = layer
    if "sensitivity" in layer:
        rows = layer[layer["sensitivity"].astype(object).ne("restricted").to_numpy()]
    return sorted({str(c) for c in rows["country"].dropna()})


def input_digest(catalog: SourceCatalog, settings: BuildSettings, strict: bool) -> str:
    """Fingerprint of everything a build depends on: sources, catalog, parameters, code."""
    h = hashlib.sha256()
    h.update(catalog.digest().encode())
    h.update(json.dumps(_parameters(catalog, settings, strict), sort_keys=True).encode())
    h.update(__version__.encode())
    return h.hexdigest()


def _parameters(catalog: SourceCatalog, settings: BuildSettings, strict: bool) -> dict[str, Any]:
    risk = catalog.path.parent / "risk.toml"
    return {
        "strict": strict,
        "max_reject_share": settings.max_reject_share,
        "outside_country_tolerance_km": catalog.reference.outside_country_tolerance_km,
        "risk_toml_sha256": hashlib.sha256(risk.read_bytes()).hexdigest()
        if risk.exists()
        else None,
        "surface_cell_m": settings.surface_cell_m,
        "restricted_resolution": settings.restricted_resolution,
        "restricted_min_count": settings.restricted_min_count,
        "publication_delay_days": settings.publication_delay_days,
    }


def build(
    settings: BuildSettings | None = None,
    *,
    catalog_path: Path | None = None,
    strict: bool = False,
    if_needed: bool = False,
    reporter: Reporter | None = None,
    today: dt.date | None = None,
) -> BuildResult:
    """Build every layer of the catalog and make it current.

    With ``if_needed``, nothing is done when the current build was made from the same inputs.
    Raises :class:`BuildError` (the previous build stays current) when a source cannot be read,
    when its rejected share exceeds the limit, or, with ``strict``, on any rejected or cleared value.
    """
    settings = settings or BuildSettings()
    reporter = reporter or Reporter()
    if settings.workers or settings.scheduler:
        from geo_service.cluster import require_dask

        require_dask()
    catalog = load_catalog(catalog_path or settings.catalog)
    build_dir = settings.build_dir
    build_dir.mkdir(parents=True, exist_ok=True)
    digest = input_digest(catalog, settings, strict)

    with _lock(build_dir):
        if if_needed:
            try:
                current = read_build_catalog(build_dir)
            except Exception:  # no build, or an unreadable one: build anew
                current = None
            if current is not None and current.get("input_digest") == digest:
                reporter.log(f"current build {current['build_id']} is up to date")
                return BuildResult(
                    current["build_id"], build_dir / current["build_id"], current, skipped=True
                )
        _clean_staging(build_dir)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        build_id = now.strftime("%Y%m%dT%H%M%SZ") + "-" + digest[:8]
        staging = build_dir / f"{STAGING_PREFIX}{build_id}-{os.getpid()}"
        staging.mkdir()
        try:
            result = _build_into(
                staging, build_id, now, catalog, settings, strict, digest, reporter, today
            )
        except BaseException as exc:
            _keep_failed(staging, build_dir, build_id, exc)
            raise
        final = build_dir / build_id
        if final.exists():  # the same inputs built twice within a second
            shutil.rmtree(final)
        _fsync_tree(staging)
        os.rename(staging, final)
        _fsync_dir(build_dir)
        _swap_current(build_dir, build_id)
        _prune(build_dir, settings.keep_builds)
        result.path = final
        reporter.log(f"build {build_id} is current ({final})")
        return result


def _build_into(
    staging: Path,
    build_id: str,
    now: dt.datetime,
    catalog: SourceCatalog,
    settings: BuildSettings,
    strict: bool,
    digest: str,
    reporter: Reporter,
    today: dt.date | None,
) -> BuildResult:
    # A mistake in risk.toml should stop the build before any source is read.
    risk_params = load_risk_params(catalog.path.parent / "risk.toml")
    if settings.surface_cell_m is not None:
        surface = risk_params.surface.model_copy(update={"cell_m": settings.surface_cell_m})
        risk_params = risk_params.model_copy(update={"surface": surface})
    results: list[SourceResult] = []
    for entry in catalog.sources:
        size = entry.path.stat().st_size if entry.path.exists() else 0
        reading = reporter.task(f"reading {entry.key}", size)
        validating = reporter.task(f"validating {entry.key}", 1)
        result = validate_source(
            entry, catalog.reference, reading, today=today, validating=validating
        )
        results.append(result)
        for note in result.notes:
            reporter.log(note)

    layers: dict[Kind, gpd.GeoDataFrame] = {}
    for kind in Kind:
        parts = [r for r in results if r.kind == kind]
        if parts and kind not in RASTER_KINDS and kind not in PER_SOURCE_KINDS:
            layers[kind] = _combine(kind, parts)
    # A layer per source: reference places whose licences must not be mixed.
    places = {r.key: r for r in results if r.kind in PER_SOURCE_KINDS}
    grids = [r.grid for r in results if r.grid is not None]

    problems = pd.concat([r.problems for r in results], ignore_index=True)
    problems.to_csv(staging / REJECTS_FILE, index=False, columns=COLUMNS)
    _check_thresholds(results, catalog, settings, strict)

    policy = Policy(
        resolution=settings.restricted_resolution,
        min_count=settings.restricted_min_count,
        delay_days=settings.publication_delay_days,
        as_of=today or now.date(),
    )
    incident_params = risk_params.factors.get("incident_intensity")
    publication = Publication(layers, policy, getattr(incident_params, "bandwidth_km", None))
    scoring = reporter.task("scoring risk", 1)
    # The model reads restricted rows only as precisely as the public may know them.
    evidence = {kind: publication.evidence(kind, gdf) for kind, gdf in layers.items()}
    # The surface's regions are kept on disk until written (``SURFACE_SCRATCH``).
    scratch = staging / SURFACE_SCRATCH
    scratch.mkdir()
    if settings.workers or settings.scheduler:
        from geo_service.cluster import dask_runner

        with dask_runner(
            settings.workers or None, settings.scheduler, reporter.task, reporter.log
        ) as runner:
            risk = run_risk(evidence, catalog, risk_params, publication, grids, runner, scratch)
    else:
        risk = run_risk(evidence, catalog, risk_params, publication, grids, scratch=scratch)
    for name in list(risk.layers):
        risk.layers[name] = publication.precise_geometry(name, risk.layers[name], layers)
    scoring(1, 1)
    for grid in grids:  # the grid's total, and how much of it the units of each level hold
        levels = risk.metadata.get("exposure", {}).get("units", {}).get("levels", {})
        held = "; ".join(
            f"level {lv}: {v['people_on_grid']:,} in {v['units']} units" for lv, v in levels.items()
        )
        reporter.log(f"{grid.key}: {grid.total:,.0f} people" + (f" ({held})" if held else ""))

    everything = (
        [
            (
                layer_id,
                title,
                kind.value,
                part,
                sources_of(part, [r.key for r in results if r.kind == kind], len(parts) > 1),
                SCHEMAS[kind].id_field,
                SCHEMAS[kind].date_field,
            )
            for kind, gdf in layers.items()
            for parts in [by_geometry(kind, gdf)]
            for layer_id, title, part in parts
        ]
        + [
            (
                key,
                next(e.title for e in catalog.sources if e.key == key),
                r.kind.value,
                r.layer,
                [key],
                SCHEMAS[r.kind].id_field,
                None,
            )
            for key, r in places.items()
        ]
        + [
            (
                name,
                TITLES.get(name, name),
                "derived",
                gdf,
                [r.key for r in results if r.kind in DERIVED_FROM.get(name, EVIDENCE_KINDS)],
                DERIVED_ID_FIELDS.get(name),
                None,
            )
            for name, gdf in risk.layers.items()
        ]
    )
    names = {entry[0] for entry in everything}
    clash = sorted(names & {areas_of(name) for name in names})
    if clash:
        raise BuildError(
            f"a source's key is the name of a layer the build makes: {', '.join(clash)}; "
            "rename the source in the catalog"
        )
    last_with = {areas_of(entry[0]): entry[0] for entry in everything}
    write = reporter.task("writing layers", len(everything) + (risk.surface is not None))
    layer_meta: dict[str, Any] = {}
    for i, (layer_id, title, kind, gdf, sources, id_field, date_field) in enumerate(everything, 1):
        path = staging / f"{layer_id}.parquet"
        write_layer(gdf, path)
        layer_meta[layer_id] = _layer_metadata(
            layer_id, title, kind, gdf, path.name, sources, id_field, date_field
        )
        whole = layers.get(Kind(kind)) if kind in KIND_NAMES else None
        if layer_meta[layer_id]["bounds"] is None and whole is not None and len(whole):
            layer_meta[layer_id]["bounds"] = _outward(*whole.total_bounds)  # empty: its kind's
        public = publication.public_view(layer_id, gdf)
        if public is not None:  # what callers who may not see restricted rows get instead
            public_path = staging / f"{layer_id}{PUBLIC_SUFFIX}"
            write_layer(public, public_path)
            layer_meta[layer_id]["public"] = {
                k: v
                for k, v in _layer_metadata(
                    layer_id, title, kind, public, public_path.name, sources, id_field, date_field
                ).items()
                if k in PUBLIC_META
            }
        areas = areas_of(layer_id)
        if areas is not None:
            layer_meta[layer_id]["areas"] = areas
        if areas is not None and last_with[areas] == layer_id:
            # The restricted rows as cells, a layer of their own, after the last layer whose
            # rows they are (a kind published as areas and sites: all of the kind's rows).
            whole = kind in KIND_NAMES and layer_id != kind
            owner, rows = (kind, layers[Kind(kind)]) if whole else (layer_id, gdf)
            cells = publication.areas(owner, rows)
            write_layer(cells, staging / f"{areas}.parquet")
            meta = _layer_metadata(
                areas,
                areas_title(owner, SCHEMAS[Kind(kind)].title if whole else title),
                "derived",
                cells,
                f"{areas}.parquet",
                [r.key for r in results if r.kind == Kind(kind)] if whole else sources,
                "h3",
                None,
            )
            scored = all(c in cells for c in AREA_SCORES)
            meta["geometry_types"] = ["Polygon"]  # what it holds, even when empty
            if meta["bounds"] is None:  # empty: where its rows lie, as the public sees them
                seen = publication.seen_by_public(owner, rows)
                meta["bounds"] = _outward(*seen.total_bounds) if len(seen) else None
            meta["description"] = areas_description(owner, policy, scored)
            meta["areas_of"] = owner
            layer_meta[areas] = meta
        write(i, len(everything))
    for grid in grids:
        write_population(grid, staging / f"{grid.key}.tif")
        layer_meta[grid.key] = _grid_metadata(grid, catalog)
    if risk.surface is not None:
        write_cog(risk.surface, staging / "risk_surface.tif")
        layer_meta["risk_surface"] = _raster_metadata(risk.surface, "risk_surface.tif", results)
        write(len(everything) + 1, len(everything) + 1)
    shutil.rmtree(scratch)

    basemap = build_basemap(catalog.reference)
    (staging / BASEMAP_FILE).write_bytes(basemap)

    meta = {
        "build_id": build_id,
        "created": now.isoformat().replace("+00:00", "Z"),
        "code_version": __version__,
        "input_digest": digest,
        "parameters": _parameters(catalog, settings, strict),
        "parameter_hash": hashlib.sha256(
            json.dumps(_parameters(catalog, settings, strict), sort_keys=True).encode()
        ).hexdigest(),
        "layers": layer_meta,
        "sources": {
            r.key: {
                **next(e for e in catalog.sources if e.key == r.key).provenance(),
                "sha256": file_digest(r.path),
                "counts": r.counts,
                "reject_share": round(r.reject_share, 6),
                "countries_seen": countries_seen(r.layer),
            }
            for r in results
        },
        "rejects": {"file": REJECTS_FILE, "rows": int(len(problems))},
        "publication": publication.record(),
        "risk": risk.metadata,
        "basemap": {"file": BASEMAP_FILE, "bytes": len(basemap), "attribution": BASEMAP_CREDIT},
    }
    (staging / CATALOG_FILE).write_text(
        json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8"
    )
    return BuildResult(build_id, staging, meta, results)


#: Decimals of a distance in kilometres: a metre.
KM_DECIMALS = 3


def clean_types(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The types a GIS reader expects: a number column whose values are all whole (counts,
    people, years, radii) as integers, distances in km rounded to the metre."""
    out = gdf.copy()
    for name in out.columns:
        column = out[name]
        if name == out.geometry.name or column.dtype.kind != "f":
            continue
        if name.endswith("_km"):
            out[name] = column.round(KM_DECIMALS)
            continue
        values = column.dropna()
        if len(values) and bool((values == np.round(values)).all()) and values.abs().max() < 2**53:
            out[name] = column.round().astype("Int64")
    return out


def write_layer(gdf: gpd.GeoDataFrame, path: Path) -> None:
    """A layer as GeoParquet with clean types (``clean_types``), the same bytes for the same
    frame (zstd, a bbox column for readers that filter row groups by it)."""
    clean_types(gdf).to_parquet(path, index=False, compression="zstd", write_covering_bbox=True)


def _combine(kind: Kind, parts: list[SourceResult]) -> gpd.GeoDataFrame:
    """One layer from several sources; an id seen in an earlier source rejects the later row."""
    schema = SCHEMAS[kind]
    frames = []
    seen: set[str] = set()
    for part in parts:
        ids = part.layer[schema.id_field]
        dup = ids.isin(seen).to_numpy()
        if dup.any():
            idx = np.flatnonzero(dup)
            extra = pd.DataFrame(
                {
                    "source": part.key,
                    "file": part.path.name,
                    "record": -1,
                    "position": -1,
                    "field": schema.id_field,
                    "target": schema.id_field,
                    "value": ids.iloc[idx].to_numpy(),
                    "reason": "duplicate id: an earlier source in the catalog has it",
                    "action": "rejected",
                    "message": part.path.name
                    + ", field '"
                    + schema.id_field
                    + "': duplicate id '"
                    + ids.iloc[idx].astype(str)
                    + "' already given by an earlier source",
                }
            )
            part.problems = pd.concat([part.problems, extra[COLUMNS]], ignore_index=True)
            part.counts["rejected"] += int(dup.sum())
            part.counts["kept"] -= int(dup.sum())
            part.layer = part.layer.loc[~dup].reset_index(drop=True)
        seen.update(part.layer[schema.id_field].tolist())
        frames.append(part.layer)
    combined = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return gpd.GeoDataFrame(combined, geometry="geometry", crs="EPSG:4326")


def _check_thresholds(
    results: list[SourceResult], catalog: SourceCatalog, settings: BuildSettings, strict: bool
) -> None:
    failures: list[str] = []
    for r in results:
        entry = next(e for e in catalog.sources if e.key == r.key)
        limit = (
            entry.max_reject_share
            if entry.max_reject_share is not None
            else settings.max_reject_share
        )
        bad = r.problems[
            r.problems["action"].isin(["rejected", "cleared"] if strict else ["rejected"])
        ]
        if strict and len(bad):
            failures.append(f"{r.key}: {len(bad)} problem(s) and --strict allows none")
        elif r.reject_share > limit:
            failures.append(
                f"{r.key}: {r.counts['rejected']} of {r.counts['read'] - r.counts['filtered']} rows "
                f"rejected ({r.reject_share:.1%}), above the limit of {limit:.1%}"
            )
        if failures and failures[-1].startswith(r.key):
            for message in bad["message"].head(5):
                failures.append(f"  {message}")
            if len(bad) > 5:
                failures.append(f"  … and {len(bad) - 5} more")
    if failures:
        raise BuildError("build refused, the current build is unchanged:\n" + "\n".join(failures))


def _outward(west: float, south: float, east: float, north: float) -> list[float]:
    """Bounds to six decimals (about 0.1 m), rounded outwards so they hold every feature."""
    return [
        math.floor(float(west) * 1e6) / 1e6,
        math.floor(float(south) * 1e6) / 1e6,
        math.ceil(float(east) * 1e6) / 1e6,
        math.ceil(float(north) * 1e6) / 1e6,
    ]


def _layer_metadata(
    layer_id: str,
    title: str,
    kind: str,
    gdf: gpd.GeoDataFrame,
    filename: str,
    sources: list[str],
    id_field: str | None,
    date_field: str | None,
) -> dict[str, Any]:
    bounds = _outward(*gdf.total_bounds) if len(gdf) and gdf.geometry.notna().any() else None
    time_extent = None
    if date_field and len(gdf) and gdf[date_field].notna().any():
        col = gdf[date_field]
        time_extent = [col.min().date().isoformat(), col.max().date().isoformat()]
    sensitivity = (
        {str(k): int(v) for k, v in gdf["sensitivity"].value_counts().items()}
        if "sensitivity" in gdf
        else {}
    )
    return {
        "id": layer_id,
        "title": title,
        "kind": kind,
        "file": filename,
        "count": int(len(gdf)),
        "bounds": bounds,
        "time_extent": time_extent,
        "geometry_types": sorted(gdf.geom_type.dropna().unique().tolist()),
        "id_field": id_field,
        "fields": {c: str(t) for c, t in gdf.dtypes.items() if c != "geometry"},
        "sources": sources,
        "sensitivity": sensitivity,
    }


def _raster_metadata(
    surface: Surface, filename: str, results: list[SourceResult]
) -> dict[str, Any]:
    west, south, east, north = surface.extent
    lon, lat = to_lonlat(np.array([west, east]), np.array([south, north]))
    return {
        "id": "risk_surface",
        "title": TITLES["risk_surface"],
        "kind": "raster",
        "file": filename,
        "count": surface.valid_cells,
        "bounds": _outward(lon[0], lat[0], lon[1], lat[1]),
        "time_extent": None,
        "geometry_types": [],
        "id_field": None,
        "fields": {"score": "float32"},
        "sources": [r.key for r in results if r.kind in EVIDENCE_KINDS],
        "sensitivity": {},
        "crs": surface.crs,
        "cell_m": surface.cell_m,
        "shape": list(surface.shape),
        "valid_cells": surface.valid_cells,
        "regions": len(surface.regions),
    }


def _grid_metadata(grid: PopulationGrid, catalog: SourceCatalog) -> dict[str, Any]:
    rows, cols = grid.shape
    x0, y0 = grid.transform @ (0, 0)
    x1, y1 = grid.transform @ (cols, rows)
    to = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True)
    west, south, east, north = to.transform_bounds(
        min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)
    )
    return {
        "id": grid.key,
        "title": next(e.title for e in catalog.sources if e.key == grid.key),
        "kind": "raster",
        "file": f"{grid.key}.tif",
        "count": int((grid.people > 0).sum()),
        "bounds": _outward(west, south, east, north),
        "time_extent": [f"{grid.year}-01-01", f"{grid.year}-12-31"],
        "geometry_types": [],
        "id_field": None,
        "fields": {"people": "float32"},
        "sources": [grid.key],
        "sensitivity": {},
        "crs": grid.crs.to_string(),
        # Ground metres of a cell, at the grid's middle latitude.
        "cell_m": round(
            abs(grid.transform.a)
            * (
                111_320.0 * math.cos(math.radians((south + north) / 2))
                if grid.crs.is_geographic
                else 1.0
            ),
            1,
        ),
        "shape": [rows, cols],
        "year": grid.year,
        "total": round(grid.total),
    }


@contextmanager
def _lock(build_dir: Path) -> Iterator[None]:
    with (build_dir / ".lock").open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise BuildError(f"another build is running in {build_dir}") from exc
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _clean_staging(build_dir: Path) -> None:
    """Remove what killed builds left behind (we hold the lock, so none is still running)."""
    for p in build_dir.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(p, ignore_errors=True)


def _keep_failed(staging: Path, build_dir: Path, build_id: str, exc: BaseException) -> None:
    target = build_dir / f"{FAILED_PREFIX}{build_id}"
    try:
        (staging / "error.txt").write_text(f"{type(exc).__name__}: {exc}\n", encoding="utf-8")
        for p in staging.glob("*.parquet"):
            p.unlink()
        shutil.rmtree(staging / SURFACE_SCRATCH, ignore_errors=True)
        if target.exists():
            shutil.rmtree(target)
        os.rename(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    failed = sorted(build_dir.glob(f"{FAILED_PREFIX}*"))
    for old in failed[:-3]:
        shutil.rmtree(old, ignore_errors=True)


def _swap_current(build_dir: Path, build_id: str) -> None:
    tmp = build_dir / f".{CURRENT}.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(build_id, tmp)
    os.replace(tmp, build_dir / CURRENT)
    _fsync_dir(build_dir)


def _prune(build_dir: Path, keep: int) -> None:
    current = os.readlink(build_dir / CURRENT)
    builds = sorted(
        p
        for p in build_dir.iterdir()
        if p.is_dir() and not p.is_symlink() and (p / CATALOG_FILE).exists() and p.name != current
    )
    for old in builds[: max(0, len(builds) - (keep - 1))]:
        shutil.rmtree(old, ignore_errors=True)


def _fsync_tree(path: Path) -> None:
    for p in path.iterdir():
        if p.is_file():
            with p.open("rb") as fh:
                os.fsync(fh.fileno())
    _fsync_dir(path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
