"""Builds from the bundled real data: contents, provenance, refusal, and atomicity under kill -9."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest

from geo_service.build import build
from geo_service.catalog import file_digest
from geo_service.errors import BuildError, SourceError
from geo_service.settings import BuildSettings
from geo_service.store.files import current_build_id, load_layer, read_build_catalog
from tests.conftest import CATALOG, LAYERS, QUICK_SURFACE_M, small_layers
from tests.helpers import read_text_csv, write_text_csv

SCHEMAS_KINDS = {"concessions", "communities", "tailings_dams", "incidents", "units", "places"}
#: GeoNames cities500 without Sierra Leone (6,206 − 88 + Brazil's 5,889), and every populated
#: place of Sierra Leone but the abandoned and destroyed ones (14,083 − 16).
COMMUNITIES = 6206 - 88 + 5889 + 14067


def test_bundled_build_layers_and_provenance(built, build_dir) -> None:
    meta = read_build_catalog(build_dir)
    assert meta["build_id"] == built.build_id == current_build_id(build_dir)
    counts = {k: v["count"] for k, v in meta["layers"].items() if v["kind"] in SCHEMAS_KINDS}
    assert counts == {
        "mine_sites": 65,  # USGS diamond sites
        "concessions": 23304,  # Amazon Mining Watch scars
        "communities": COMMUNITIES,
        "tailings_dams": 604,
        "incidents": 1848 + 2,  # UCDP, and the two located tailings failures
        "units": 14 + 167 + 189 + 853,  # districts, chiefdoms, territories, municipalities
        "osm_places_sle": 9668,
    }
    derived = {k for k, v in meta["layers"].items() if v["kind"] == "derived"}
    assert {"community_risk", "concession_risk", "risk_hex", "coverage", "risk_units"} <= derived
    assert meta["layers"]["community_risk"]["count"] == COMMUNITIES
    assert meta["layers"]["risk_units"]["count"] == 14 + 167 + 189 + 853
    assert meta["risk"]["model_version"] and len(meta["risk"]["parameter_hash"]) == 64
    assert meta["risk"]["factors"]["incident_intensity"]["reference_date"] == "2022-12-30"
    surface = meta["layers"]["risk_surface"]
    assert (
        surface["kind"] == "raster" and surface["crs"] == "EPSG:3857" and surface["valid_cells"] > 0
    )
    assert (build_dir / built.build_id / "risk_surface.tif").stat().st_size > 0
    assert meta["layers"]["incidents"]["time_extent"] == ["1991-08-08", "2022-12-30"]
    assert meta["layers"]["incidents"]["bounds"] == pytest.approx(
        [-43.4425, -29.775, 27.196, 10.465],
        abs=1e-3,  # UCDP, and Fundão and Jagersfontein
    )
    for key, source in meta["sources"].items():
        assert source["licence"] and source["attribution"] and source["retrieved"], key
        assert source["sha256"] == file_digest(
            next(p for p in (LAYERS / "sources").rglob(source["path"]))
        )
    assert meta["sources"]["ucdp_ged_caf"]["licence"] == "CC BY 4.0"
    assert meta["code_version"] and len(meta["parameter_hash"]) == 64
    incidents = load_layer(build_dir, "incidents")
    assert isinstance(incidents, gpd.GeoDataFrame) and incidents.crs.to_epsg() == 4326
    assert incidents["incident_id"].is_unique
    # The sum of UCDP's best estimates, as documented by the publisher.
    ucdp = incidents["source"] == "ucdp_ged_caf"
    assert int(incidents.loc[ucdp, "fatalities"].sum()) == 14948
    rejects = pd.read_csv(build_dir / built.build_id / "rejects.csv")
    assert {"source", "file", "position", "field", "reason", "action", "message"} <= set(
        rejects.columns
    )
    assert "-703.0" in rejects["value"].astype(str).tolist()


def test_site_points_carry_their_footprint(built, build_dir) -> None:
    """Concessions are published as two layers of one family of geometry each: the mapped
    areas (concessions) and the sites (mine_sites), with their sources and one areas layer."""
    meta = read_build_catalog(build_dir)["layers"]
    sites = load_layer(build_dir, "mine_sites").set_index("source_id")
    areas = load_layer(build_dir, "concessions")
    assert set(sites.geom_type) == {"Point"} and set(sites["footprint"]) == {"site"}
    assert set(areas.geom_type) == {"Polygon", "MultiPolygon"}
    assert meta["mine_sites"]["geometry_types"] == ["Point"]
    assert meta["mine_sites"]["sources"] == ["usgs_africa_diamond_facilities"]
    assert meta["concessions"]["sources"] == ["amazon_mining_watch_brazil"]
    assert meta["mine_sites"]["areas"] == meta["concessions"]["areas"] == "concession_areas"
    assert not set(sites["concession_id"]) & set(areas["concession_id"])
    catoca = sites.loc["AGO035"]
    assert catoca["name"] == "Catoca Kimberlite Mine" and catoca["footprint"] == "site"
    assert catoca["footprint_radius_m"] == 2000.0 and catoca["country"] == "AGO"
    assert set(sites["footprint_radius_m"]) == {2000.0, 10000.0, 25000.0}
    # Mapped polygons have no radius: their footprint is their outline.
    assert areas["footprint_radius_m"].isna().all() and set(areas["footprint"]) == {"polygon"}
    # Artisanal entries stand for a whole prefecture or province.
    haute_kotto = sites.loc["CAF002"]
    assert (
        haute_kotto["name"] == "Facility at Haute-Kotto"
        and haute_kotto["footprint_radius_m"] == 25000.0
    )


def test_if_needed_skips_same_inputs_and_rebuilds_changed(tmp_path) -> None:
    layers = small_layers(tmp_path).parent
    settings = BuildSettings(
        build_dir=layers / "build",
        catalog=layers / "sources.toml",
        surface_cell_m=QUICK_SURFACE_M,
    )
    first = build(settings)
    again = build(settings, if_needed=True)
    assert again.skipped and again.build_id == first.build_id
    ucdp = layers / "sources" / "ucdp_ged_v23_1_caf" / "ucdp_ged_v23_1_caf.csv"
    write_text_csv(read_text_csv(ucdp).head(100), ucdp)
    time.sleep(1.1)  # build ids have one-second resolution
    changed = build(settings, if_needed=True)
    assert not changed.skipped and changed.build_id != first.build_id
    assert read_build_catalog(settings.build_dir)["layers"]["incidents"]["count"] == 100 + 2


def _copy_layers(tmp_path: Path, small: bool = True) -> tuple[Path, BuildSettings]:
    """A copy of layers/ to change (its catalog cut to SMALL_SOURCES unless ``small`` is
    false), and settings that build it with the quick surface."""
    if small:
        layers = small_layers(tmp_path).parent
    else:
        layers = tmp_path / "layers"
        shutil.copytree(LAYERS, layers, ignore=shutil.ignore_patterns("build"))
    return layers, BuildSettings(
        build_dir=layers / "build", catalog=layers / "sources.toml", surface_cell_m=QUICK_SURFACE_M
    )


def _snapshot(build_dir: Path) -> dict[str, str]:
    current = build_dir / current_build_id(build_dir)
    return {p.name: file_digest(p) for p in sorted(current.iterdir())}


def test_refused_build_keeps_previous_current_and_its_report(tmp_path) -> None:
    layers, settings = _copy_layers(tmp_path)
    first = build(settings)
    before = _snapshot(settings.build_dir)
    ucdp = layers / "sources" / "ucdp_ged_v23_1_caf" / "ucdp_ged_v23_1_caf.csv"
    frame = read_text_csv(ucdp)
    frame.loc[: len(frame) // 10, "date_start"] = (
        "sometime in 2010"  # 10 % of rows: above the 5 % limit
    )
    write_text_csv(frame, ucdp)
    time.sleep(1.1)
    with pytest.raises(
        BuildError,
        match=r"ucdp_ged_caf: 185 of 1848 rows rejected \(10.0%\), above the limit of 5.0%",
    ):
        build(settings)
    assert current_build_id(settings.build_dir) == first.build_id
    assert _snapshot(settings.build_dir) == before
    failed = list(settings.build_dir.glob("failed-*"))
    assert len(failed) == 1
    report = pd.read_csv(failed[0] / "rejects.csv")
    assert (report["field"] == "date_start").sum() == 185
    assert "BuildError" in (failed[0] / "error.txt").read_text()
    # The same data passes when the catalog allows that share.
    catalog = (layers / "sources.toml").read_text()
    (layers / "sources.toml").write_text(
        catalog.replace(
            "[sources.ucdp_ged_caf]\n", "[sources.ucdp_ged_caf]\nmax_reject_share = 0.2\n"
        )
    )
    assert build(settings).catalog["layers"]["incidents"]["count"] == 1848 - 185 + 2


def test_strict_refuses_any_reject_or_cleared_value(tmp_path) -> None:
    _, settings = _copy_layers(tmp_path, small=False)
    with pytest.raises(
        BuildError, match="anm_sigbm_brazil: 6 problem\\(s\\) and --strict allows none"
    ):
        build(settings, strict=True)
    assert not (settings.build_dir / "current").exists()


def test_unreadable_source_fails_cleanly(tmp_path) -> None:
    layers, settings = _copy_layers(tmp_path)
    first = build(settings)
    (layers / "sources" / "ucdp_ged_v23_1_caf" / "ucdp_ged_v23_1_caf.csv").unlink()
    with pytest.raises(SourceError, match="ucdp_ged_v23_1_caf.csv: file not found"):
        build(settings)
    assert current_build_id(settings.build_dir) == first.build_id


_DRIVER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    import geopandas as gpd
    from geo_service.build import build
    from geo_service.settings import BuildSettings

    where = sys.argv[3]
    if where == "first-layer":
        original = gpd.GeoDataFrame.to_parquet
        def slow(self, path, *a, **k):
            original(self, path, *a, **k)
            print("PAUSED", flush=True)
            time.sleep(120)
        gpd.GeoDataFrame.to_parquet = slow
    else:  # everything written, about to rename the staging folder
        original_rename = os.rename
        def slow_rename(src, dst):
            print("PAUSED", flush=True)
            time.sleep(120)
            original_rename(src, dst)
        os.rename = slow_rename
    build(BuildSettings(build_dir=Path(sys.argv[1])), catalog_path=Path(sys.argv[2]))
    """
)


@pytest.mark.parametrize("where", ["first-layer", "before-rename"])
def test_build_killed_half_way_leaves_previous_build_current(
    tmp_path, small_catalog, where
) -> None:
    settings = BuildSettings(build_dir=tmp_path / "build", surface_cell_m=QUICK_SURFACE_M)
    first = build(settings, catalog_path=small_catalog)
    before = _snapshot(settings.build_dir)
    time.sleep(1.1)
    proc = subprocess.Popen(
        [sys.executable, "-c", _DRIVER, str(settings.build_dir), str(small_catalog), where],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "RISKMAP_SURFACE_CELL_M": str(QUICK_SURFACE_M)},
    )
    try:
        line = proc.stdout.readline()  # blocks until the build pauses (or dies)
        assert line.strip() == "PAUSED", line
        staging = list(settings.build_dir.glob(".staging-*"))
        assert len(staging) == 1 and any(staging[0].iterdir())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert current_build_id(settings.build_dir) == first.build_id
    assert _snapshot(settings.build_dir) == before
    assert (
        json.loads((settings.build_dir / first.build_id / "catalog.json").read_text())["build_id"]
        == first.build_id
    )
    # The next build clears what the killed one left and becomes current.
    time.sleep(1.1)
    second = build(settings, catalog_path=small_catalog)
    assert current_build_id(settings.build_dir) == second.build_id != first.build_id
    assert not list(settings.build_dir.glob(".staging-*"))


def test_old_builds_are_pruned(tmp_path, small_catalog) -> None:
    settings = BuildSettings(
        build_dir=tmp_path / "build", keep_builds=2, surface_cell_m=QUICK_SURFACE_M
    )
    ids = []
    for _ in range(3):
        ids.append(build(settings, catalog_path=small_catalog).build_id)
        time.sleep(1.1)
    kept = sorted(p.name for p in settings.build_dir.iterdir() if p.is_dir() and not p.is_symlink())
    assert kept == ids[1:]


def test_same_inputs_give_byte_identical_layers(tmp_path, built, build_dir) -> None:
    # Built again by ``riskmap build`` in a process of its own, as a user builds.
    riskmap = Path(sys.executable).with_name("riskmap")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKMAP_")}
    args = [str(riskmap), "build", "--catalog", str(CATALOG), "--build-dir", str(tmp_path / "b")]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    again_id = current_build_id(tmp_path / "b")
    again = read_build_catalog(tmp_path / "b", again_id)
    first = build_dir / built.build_id
    second = tmp_path / "b" / again_id
    layers = sorted(p.name for p in [*first.glob("*.parquet"), *first.glob("*.tif")])
    assert {"community_risk.parquet", "risk_hex.parquet", "risk_surface.tif"} <= set(layers)
    for name in layers:
        assert file_digest(first / name) == file_digest(second / name), name
    assert again["risk"]["parameter_hash"] == built.catalog["risk"]["parameter_hash"]


def test_layers_are_written_with_clean_types(built) -> None:
    """Counts and people are integers, distances in km are rounded to the metre, scores keep
    their decimals: in the layers the build writes, not only in a made-up frame."""
    import geopandas as gpd

    risk = gpd.read_parquet(built.path / "community_risk.parquet")
    for name in (
        "concession_pressure_within_5km",
        "people",
        "tailings_exposure_dams_in_runout",
    ):
        assert str(risk[name].dtype) == "Int64", name
    km = risk["concession_pressure_nearest_km"].dropna()
    assert len(km) and ((km * 1000).round(6) % 1 == 0).all()
    assert risk["score"].dtype.kind == "f" and (risk["score"].dropna() % 1 != 0).any()
    units = gpd.read_parquet(built.path / "risk_units.parquet")
    assert str(units["concessions"].dtype) == "Int64"
