"""The map libraries' JS, CSS and images, served by the service itself (no third-party CDN).

They are installed from npm at set-up (``package.json``, ``make run``) into ``node_modules``;
only the distributed files of the packages listed here are served, nothing else under it.
"""

from __future__ import annotations

from pathlib import Path

from geo_service.errors import NotFoundError

#: Package → the folders of it that may be served.
PACKAGES = {
    "leaflet": ("dist",),
    "leaflet.fullscreen": ("",),
    "leaflet.vectorgrid": ("dist",),
}
TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


def asset_file(root: Path, path: str) -> tuple[Path, str]:
    """The file for ``/assets/{path}`` and its media type, or ``NotFoundError``."""
    parts = path.split("/")
    package = parts[0]
    folders = PACKAGES.get(package)
    target = (root / path).resolve()
    media = TYPES.get(target.suffix)
    if folders is None or media is None or ".." in parts:
        raise NotFoundError(f"no asset '{path}'")
    allowed = [(root / package / f).resolve() for f in folders]
    if not any(target.is_relative_to(a) for a in allowed) or not target.is_file():
        raise NotFoundError(f"no asset '{path}' (is the set-up done? run 'make run')")
    return target, media
