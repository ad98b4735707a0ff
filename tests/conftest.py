"""Shared fixtures: the bundled real data, and one build of it per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from geo_service.build import BuildResult, build
from geo_service.catalog import SourceCatalog, load_catalog
from geo_service.settings import BuildSettings

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ROOT / "layers"
SOURCES = LAYERS / "sources"
CATALOG = LAYERS / "sources.toml"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


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


@pytest.fixture
def settings(tmp_path: Path) -> BuildSettings:
    """Settings with a private, empty builds folder."""
    return BuildSettings(build_dir=tmp_path / "build")


def in_ci() -> bool:
    """CI sets CI=true: there, a missing tool fails a test instead of skipping it."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}
