"""Settings, split by concern, read from the environment with the ``RISKMAP_`` prefix.

Paths default to the layout of the repository (``layers/`` under the working directory), so
``make run`` from the project root needs no configuration; a deployment points them elsewhere
with ``RISKMAP_CATALOG`` and ``RISKMAP_BUILD_DIR``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class BuildSettings(BaseSettings):
    """Where the source catalog and the builds live, and how tolerant a build is."""

    model_config = SettingsConfigDict(env_prefix="RISKMAP_", extra="ignore")

    catalog: Path = Path("layers/sources.toml")
    build_dir: Path = Path("layers/build")
    max_reject_share: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="A source whose share of rejected rows exceeds this fails the build.",
    )
    keep_builds: int = Field(
        3, ge=1, description="Completed builds kept on disk, current included."
    )
    surface_cell_m: float | None = Field(
        None,
        gt=0.0,
        description="Risk-surface cell size for this build, instead of [surface] cell_m in "
        "risk.toml: a quick preview at 1000 m takes seconds where 250 m takes about a minute. "
        "Recorded in the build's parameters.",
    )


class ApiSettings(BaseSettings):
    """How the service listens and which build it serves."""

    model_config = SettingsConfigDict(env_prefix="RISKMAP_", extra="ignore")

    build_dir: Path = Path("layers/build")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    maps_file: Path = Field(Path("layers/maps.toml"), description="Map definitions.")
    basemap: str = Field(
        "OpenStreetMap.Mapnik",
        description="The maps' outside basemap: an xyzservices provider name (e.g. "
        "'Esri.WorldImagery', 'OpenTopoMap'). When it fails, the offline basemap shows.",
    )
    assets_dir: Path = Field(
        Path("node_modules"), description="Where set-up installed the map libraries (npm)."
    )
    cors_origins: tuple[str, ...] = Field(
        ("*",),
        description="Origins allowed to read responses from a browser (embeds on other "
        "sites): '*' for public layers; a list such as '[\"https://news.example\"]' limits it.",
    )
