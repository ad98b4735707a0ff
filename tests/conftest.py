"""Shared fixtures: the bundled real data, and one build of it per test session."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from geo_service.build import BuildResult, build
from geo_service.catalog import SourceCatalog, load_catalog
from geo_service.settings import BuildSettings
from geo_service.store.postgis import publish
from tests.postgis import cluster, database

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ROOT / "layers"
SOURCES = LAYERS / "sources"
CATALOG = LAYERS / "sources.toml"


#: Test files that take minutes, longest first (figures from ``--durations``). They start
#: first, so that the processes of ``make test`` (a file each at a time) run out of files
#: together, instead of one running a long file alone at the end.
LONG_FIRST = (
    "tests/maps/test_pages.py",
    "tests/api/test_restricted.py",
    "tests/test_build.py",
    "tests/api/test_features.py",
    "tests/maps/test_bundle.py",
    "tests/store/test_filter.py",
    "tests/test_cluster.py",
    "tests/api/test_clients.py",
    "tests/risk/test_partition.py",
    "tests/api/test_openapi.py",
    "tests/api/test_postgis.py",
    "tests/risk/test_coverage.py",
    "tests/test_cli.py",
    "tests/api/test_swap.py",
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    missing = [p for p in LONG_FIRST if not (ROOT / p).exists()]
    if missing:
        raise pytest.UsageError(f"tests/conftest.py: LONG_FIRST names no file {missing}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files of ``LONG_FIRST`` first, in its order; each file's tests in their order."""
    rank = {path: i for i, path in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.relative_to(ROOT).as_posix(), len(rank)))


@pytest.fixture(scope="session")
def catalog() -> SourceCatalog:
    """The project's own source catalog."""
    return load_catalog(CATALOG)


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A builds folder holding one build of the bundled data (shared, do not modify)."""
    return tmp_path_factory.mktemp("build")


@pytest.fixture(scope="session")
def built(build_dir: Path) -> BuildResult:
    """The bundled catalog built once for the session."""
    return build(BuildSettings(build_dir=build_dir), catalog_path=CATALOG)


#: Tests that build again and again (atomicity, if-needed, failures) do not need the 250 m
#: surface the session build makes: 2 km cells make their builds take seconds.
QUICK_SURFACE_M = 2000.0

#: Nor do they need every source: the Central African evidence (UCDP, the USGS mine sites,
#: the GeoNames places of Africa and the tailings failures), real and whole, builds in a
#: fraction of the time of the whole catalog.
SMALL_SOURCES = (
    "ucdp_ged_caf",
    "tailings_failures",
    "geonames_africa",
    "usgs_africa_diamond_facilities",
)


def small_layers(root: Path, keep: tuple[str, ...] = SMALL_SOURCES) -> Path:
    """A copy of ``layers/`` (no builds) under ``root`` whose catalog keeps only the sources
    ``keep``; its ``sources.toml`` path."""
    layers = root / "layers"
    shutil.copytree(LAYERS, layers, ignore=shutil.ignore_patterns("build"))
    kept, kept_now = [], True
    for line in CATALOG.read_text(encoding="utf-8").splitlines(keepends=True):
        header = re.match(r"\[sources\.([\w-]+)", line)
        if header:
            kept_now = header.group(1) in keep
        elif line.startswith("["):
            kept_now = True
        if kept_now:
            kept.append(line)
    catalog = layers / "sources.toml"
    catalog.write_text("".join(kept), encoding="utf-8")
    assert sorted(s.key for s in load_catalog(catalog).sources) == sorted(keep)
    return catalog


@pytest.fixture(scope="session")
def small_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The catalog of ``SMALL_SOURCES`` (shared, do not modify)."""
    return small_layers(tmp_path_factory.mktemp("small"))


@pytest.fixture(scope="session")
def postgis_url() -> Iterator[str]:
    """A throw-away PostgreSQL cluster with PostGIS, for the whole run (``tests/postgis.py``)."""
    with cluster() as url:
        yield url


@pytest.fixture(scope="session")
def published(built: BuildResult, build_dir: Path, postgis_url: str) -> str:
    """URL of a database the session build is published in, once for every test that reads
    it (do not publish into it)."""
    url = database(postgis_url, "riskmap_published")
    publish(url, build_dir, built.build_id)
    return url


@pytest.fixture
def settings(tmp_path: Path) -> BuildSettings:
    """Settings with a private, empty builds folder and a coarse (quick) risk surface."""
    return BuildSettings(build_dir=tmp_path / "build", surface_cell_m=QUICK_SURFACE_M)


def in_ci() -> bool:
    """CI sets CI=true: there, a missing tool fails a test instead of skipping it."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}
