"""The map libraries' JS, CSS and images, served by the service itself (no third-party CDN).

They are installed from npm at set-up (``package.json``, ``make run``) into ``node_modules``;
only the distributed files of the packages listed here are served, nothing else under it.
The pages' own script and styles (``static/``: the map's, ``site.css`` for every other
page, and the script that draws a map's MapLibre style) are served beside them as
``riskmap/…``.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from pathlib import Path

from geo_service.errors import NotFoundError

#: Package → the folders of it that may be served.
PACKAGES = {
    "leaflet": ("dist",),
    "leaflet.fullscreen": ("",),
    "leaflet.vectorgrid": ("dist",),
    "maplibre-gl": ("dist",),  # the maps' styles drawn by MapLibre (/styles/{id}?f=html)
    "supercluster": ("dist",),  # incidents grouped in clusters
    "swagger-ui-dist": ("",),  # the API documentation page (/docs)
}
#: Our own files, from the package (``geo_service/maps/static``).
OWN = "riskmap"
STATIC = Path(__file__).parent / "static"
OWN_FILES = ("riskmap.css", "site.css", "style_preview.js")
#: The page's script: ES modules, served as ``riskmap/<version>/js/<module>.js`` (the
#: version, a digest of them all, only changes their URLs).
SCRIPTS = STATIC / "js"
MODULE = re.compile(r"^[a-z_]+\.js$")
TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


def asset_file(root: Path, path: str) -> tuple[Path, str]:
    """The file for ``/assets/{path}`` and its media type, or ``NotFoundError``."""
    if "\x00" in path:  # no file has one, and the file system refuses to look
        raise NotFoundError("no asset with a NUL character in its name")
    parts = path.split("/")
    package = parts[0]
    if package == OWN and len(parts) == 2 and parts[1] in OWN_FILES:
        return STATIC / parts[1], TYPES[Path(parts[1]).suffix]
    if package == OWN and len(parts) == 4 and parts[2] == "js" and MODULE.match(parts[3]):
        module = SCRIPTS / parts[3]
        if module.is_file():
            return module, TYPES[".js"]
    folders = PACKAGES.get(package)
    target = (root / path).resolve()
    media = TYPES.get(target.suffix)
    if folders is None or media is None or ".." in parts:
        raise NotFoundError(f"no asset '{path}'")
    allowed = [(root / package / f).resolve() for f in folders]
    if not any(target.is_relative_to(a) for a in allowed) or not target.is_file():
        raise NotFoundError(f"no asset '{path}' (is the set-up done? run 'make run')")
    return target, media


@cache
def asset_version(name: str) -> str:
    """A digest of one of our own assets: its URL changes when it does (cached a day)."""
    return hashlib.blake2b((STATIC / name).read_bytes(), digest_size=6).hexdigest()


@cache
def script_version() -> str:
    """A digest of every module of the page's script, in their URLs' path: a module's
    imports resolve beside it, so the whole set changes URL when any of them does."""
    digest = hashlib.blake2b(digest_size=6)
    for path in sorted(SCRIPTS.glob("*.js")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
