"""The store under test: the bundled build on every backend (PostGIS after ``publish``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from geo_service.build import BuildResult
from geo_service.settings import ApiSettings
from geo_service.store import open_store
from geo_service.store.base import Store

BACKENDS = ["memory", "postgis"]


@pytest.fixture(scope="module", params=BACKENDS)
def store(request: pytest.FixtureRequest, built: BuildResult, build_dir: Path) -> Store:
    """One backend's store of the session build."""
    settings = ApiSettings(build_dir=build_dir)
    if request.param == "postgis":
        url = request.getfixturevalue("published")
        settings = settings.model_copy(update={"store_url": url})
    source = open_store(settings)
    assert source.current_id() == built.build_id
    return source.open(built.build_id)
