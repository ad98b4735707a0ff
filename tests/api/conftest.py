"""A live server on the session build, on each backend (PostGIS after ``publish``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.live import live_server


@pytest.fixture(scope="module", params=["memory", "postgis"])
def url(request: pytest.FixtureRequest, built, build_dir) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """``riskmap serve`` on the session build, embedded store or PostGIS."""
    settings = {}
    if request.param == "postgis":
        settings["store_url"] = request.getfixturevalue("published")
    with live_server(build_dir, **settings) as u:
        yield u
