"""What the map tests share: the app, a live server and headless Chromium on the session build."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from geo_service.api.app import create_app
from geo_service.settings import ApiSettings
from tests.api.live import live_server
from tests.chromium import chromium


@pytest.fixture(scope="module")
def client(built, build_dir) -> TestClient:  # type: ignore[no-untyped-def]
    """The app on the session build, in process."""
    return TestClient(create_app(ApiSettings(build_dir=build_dir)))


@pytest.fixture(scope="module")
def url(built, build_dir) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """``riskmap serve`` on the session build."""
    with live_server(build_dir) as u:
        yield u


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    """Headless Debian Chromium, offline (``tests.chromium``)."""
    with chromium() as b:
        yield b
