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
    restricted_resolution: int = Field(
        5,
        ge=0,
        le=15,
        description="H3 resolution to which restricted rows are generalised for anonymous "
        "callers and for the risk model (5: cells of about 250 km², 9.9 km a side).",
    )
    restricted_min_count: int = Field(
        3,
        ge=2,
        description="A cell holding fewer restricted rows than this shows no count at all.",
    )
    publication_delay_days: int = Field(
        90,
        ge=0,
        description="Restricted rows dated within this many days of the build are left out of "
        "everything anonymous callers see, scores included (0: no delay).",
    )
    store_url: str | None = Field(
        None,
        description="A PostgreSQL URL (postgresql://…): each build is also published into this "
        "PostGIS database, and the service answers from it (docs/deploy.md). None: the build "
        "folder only.",
    )
    surface_cell_m: float | None = Field(
        None,
        gt=0.0,
        description="Risk-surface cell size for this build, instead of [surface] cell_m in "
        "risk.toml: a quick preview at 1000 m takes seconds where 250 m takes about a minute. "
        "Recorded in the build's parameters.",
    )
    workers: int = Field(
        0,
        ge=0,
        description="Compute the risk model (the partitions of the communities and of the population cells, the surface's tiles) "
        "on a local Dask cluster of this many worker processes (0: in this process, no Dask "
        "needed). Same bytes either way.",
    )
    scheduler: str | None = Field(
        None,
        description="A running Dask scheduler (tcp://HOST:PORT) to compute the risk model on "
        "instead (docs/scale.md).",
    )


class ApiSettings(BaseSettings):
    """How the service listens and which build it serves."""

    model_config = SettingsConfigDict(env_prefix="RISKMAP_", extra="ignore")

    build_dir: Path = Path("layers/build")
    store_url: str | None = Field(
        None,
        description="A PostgreSQL URL (postgresql://…): each build is also published into this "
        "PostGIS database, and the service answers from it (docs/deploy.md). None: the build "
        "folder only.",
    )
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
    tokens_file: Path | None = Field(
        None,
        description="File of hashed access tokens, one per line: 'sha256:<hex> <role> [label]' "
        "(made by 'riskmap token add'). No file and no RISKMAP_TOKENS: every caller is anonymous.",
    )
    tokens: tuple[str, ...] = Field(
        (),
        description="Hashed tokens from the environment, as '<role>:sha256:<hex>' entries "
        "(a JSON list), for deployments without a tokens file.",
    )
    frame_ancestors: tuple[str, ...] = Field(
        ("*",),
        description="Who may show the /embed pages in a frame (CSP frame-ancestors): '*' for "
        "any site; a list such as '[\"https://news.example\"]' limits it. Other pages: this "
        "site only.",
    )
    host_names: tuple[str, ...] = Field(
        (),
        description="Other names of this server (host or host:port, a JSON list), whose map "
        "URLs oEmbed answers as its own: a map shared as https://maps.example/... embeds the "
        "same map when oEmbed is asked through another name.",
    )
    max_body_bytes: int = Field(
        16_384, ge=0, description="Largest request body accepted (the API only reads)."
    )
    max_url_bytes: int = Field(8_192, ge=256, description="Longest path and query string accepted.")
    cors_origins: tuple[str, ...] = Field(
        ("*",),
        description="Origins allowed to read responses from a browser (embeds on other "
        "sites): '*' for public layers; a list such as '[\"https://news.example\"]' limits it.",
    )
