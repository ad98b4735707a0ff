"""What an offline bundle of a map holds, asked of the API itself (in process) as a caller of
the bundle's role: so a bundle made without a role holds exactly what an anonymous caller
sees, by the same code that answers one.

Its area is the map's box with a margin (``MARGIN``): the features of the layers the map
draws there (with the cells of their restricted rows, and what their popups read: the
concessions' surroundings, the hexagons of zoomed-out communities, the evidence named by the
communities' scores wherever it lies), the basemap, the raster layers' tiles up to their
native zoom as PMTiles archives, the page, its sources page and a README.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import morecantile
import numpy as np
import orjson
import rasterio
from affine import Affine
from fastapi.testclient import TestClient
from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer
from rasterio.warp import transform_bounds

from geo_service.api.app import create_app
from geo_service.api.auth import file_line, new_token
from geo_service.api.routes.maps import offline_page
from geo_service.bundle.script import offline_script
from geo_service.errors import NotFoundError
from geo_service.maps.assets import asset_file
from geo_service.maps.definitions import MapDefinition, load_maps
from geo_service.maps.i18n import N_, translator
from geo_service.maps.layers import definitions
from geo_service.maps.page import Offline
from geo_service.settings import ApiSettings
from geo_service.store.base import Access

#: The bundle's area: the map's box widened by this share of its size on every side.
MARGIN = 0.5
#: Features per request (the API's largest page).
PAGE = 10_000
#: Ids per CQL2 ``IN`` list when fetching the evidence by id.
IDS_PER_REQUEST = 100
#: Decimals of a coordinate in the bundle's data (about 0.1 m).
DECIMALS = 6
#: Where the API answers in process.
HOST = "http://bundle.invalid"
DATA = "data"
STORE = "window.riskMapData=window.riskMapData||{collections:{},tiles:{}};"

Progress = Callable[[str, int, int], None]
#: What a bundle holding restricted rows says first, on its page and in its README.
RESTRICTED_NOTICE = N_(
    "This copy holds restricted records (witnesses, monitors, sensitive incidents). "
    "Keep it safe and do not share it."
)


@dataclass
class Bundle:
    """A bundle's files (path → bytes) and what it is."""

    map_id: str
    lang: str
    role: Access
    build_id: str
    created: str
    files: dict[str, bytes] = field(default_factory=dict)


def _quiet(label: str, done: int, total: int) -> None:
    return None


def gather(
    settings: ApiSettings,
    map_id: str,
    lang: str = "en",
    role: Access = Access.anonymous,
    progress: Progress = _quiet,
) -> Bundle:
    """Every file of the bundle of ``map_id`` in ``lang``, as a caller of ``role`` sees it."""
    maps_file = Path(settings.maps_file)
    styles = definitions(maps_file)
    maps = load_maps(maps_file, styles)
    if map_id not in maps:
        raise NotFoundError(f"no map '{map_id}'; maps are {', '.join(maps)}")
    definition = maps[map_id]
    headers: dict[str, str] = {}
    tokens: tuple[str, ...] = ()
    if role != Access.anonymous:  # a token of the role, for this bundle only
        token = new_token()
        tokens = (f"{role.value}:{file_line(token, role).split()[0]}",)
        headers = {"Authorization": f"Bearer {token}"}
    app = create_app(settings.model_copy(update={"tokens": tokens, "tokens_file": None}))
    with TestClient(app, base_url=HOST, headers=headers) as client:
        build = app.state.builds.current()
        bundle = Bundle(
            map_id,
            lang,
            role,
            build.build_id,
            dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        )
        box = _area(definition)
        catalog = build.catalog
        drawn = [x for x in definition.layers if x in catalog.layers]
        rasters = [x for x in drawn if catalog.layers[x].kind == "raster"]
        collections = _collections(client, catalog, drawn, box, progress, role.sees_restricted)
        files = bundle.files
        for layer, features in collections.items():
            files[f"{DATA}/{layer}.js"] = _script(
                f".collections[{orjson.dumps(layer).decode()}]=",
                {"type": "FeatureCollection", "features": features},
            )
        basemap = _get(client, "/basemap.json").json()
        files[f"{DATA}/basemap.js"] = _script(
            '.basemapUrl="basemap.json";window.riskMapData.basemap=', basemap
        )
        for layer in rasters:
            raster = build.store.raster(layer)
            path = getattr(raster, "path", None)
            archive = _pmtiles(client, layer, box, raster.native_zoom, progress, path)
            if archive is not None:
                text = base64.b64encode(archive).decode()
                files[f"{DATA}/{layer}.pmtiles.js"] = (
                    STORE + f'window.riskMapData.tiles[{orjson.dumps(layer).decode()}]="{text}";'
                ).encode()
        node_modules = Path(settings.assets_dir)
        script = "assets/riskmap/offline.js"
        files[script] = offline_script(node_modules)
        data = sorted(k for k in files if k.startswith(f"{DATA}/"))
        _ = translator(lang)
        notice = _(RESTRICTED_NOTICE) if role.sees_restricted else None
        offline = Offline((*data, script), notice=notice, precise=role.sees_restricted)
        page = offline_page(app, map_id, lang, role, offline)
        files["index.html"] = page.encode()
        files["sources.html"] = _sources_page(client, map_id, lang)
        files["favicon.ico"] = _get(client, "/favicon.ico").content
        for path in _assets(files["index.html"] + files["sources.html"]):
            if path not in files:
                files[path] = _asset(node_modules, path)
        css_images(files, node_modules)
        files["README.txt"] = _readme(definition, bundle, catalog, lang).encode()
    return bundle


def _area(definition: MapDefinition) -> tuple[float, float, float, float]:
    """The map's box (or its first view's, about a screen wide) widened by ``MARGIN``."""
    if definition.bounds is not None:
        west, south, east, north = definition.bounds
    else:
        lat, lon, zoom = definition.first_view()
        half = 360 / 2**zoom * 2  # about a 1,000-pixel screen either way
        west, south, east, north = lon - half, lat - half / 2, lon + half, lat + half / 2
    dx, dy = (east - west) * MARGIN, (north - south) * MARGIN
    return (
        max(west - dx, -180.0),
        max(south - dy, -85.0),
        min(east + dx, 180.0),
        min(north + dy, 85.0),
    )


def _get(client: TestClient, url: str, params: dict[str, str] | None = None) -> Any:
    r = client.get(url, params=params)
    if r.status_code != 200:
        raise NotFoundError(f"{url}: {r.status_code} {r.text[:300]}")
    return r


def _items(client: TestClient, layer: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """Every feature of a collection matching ``params``, page by page (its ``next`` links)."""
    out: list[dict[str, Any]] = []
    url: str | None = f"/collections/{layer}/items"
    query: dict[str, str] | None = {**params, "limit": str(PAGE)}
    while url:
        page = _get(client, url, query).json()
        out += [
            {
                "type": "Feature",
                "id": f.get("id"),
                "geometry": _rounded(f.get("geometry")),
                "properties": f.get("properties") or {},
            }
            for f in page["features"]
        ]
        url = next((x["href"] for x in page.get("links", []) if x.get("rel") == "next"), None)
        query = None
    return out


def _rounded(geometry: dict[str, Any] | None) -> dict[str, Any] | None:
    if geometry is None:
        return None

    def walk(c: Any) -> Any:
        if isinstance(c, int | float):
            return round(c, DECIMALS)
        return [walk(x) for x in c]

    if geometry.get("type") == "GeometryCollection":
        return {**geometry, "geometries": [_rounded(g) for g in geometry["geometries"]]}
    return {**geometry, "coordinates": walk(geometry["coordinates"])}


def _collections(
    client: TestClient,
    catalog: Any,
    drawn: list[str],
    box: tuple[float, float, float, float],
    progress: Progress,
    precise: bool,
) -> dict[str, list[dict[str, Any]]]:
    """The features of each collection the page reads, in the bundle's area; then the
    evidence the communities' scores name, wherever it lies. ``precise``: the caller sees
    restricted rows as they are, so their areas (cells) are left empty."""
    bbox = ",".join(f"{v:.6f}" for v in box)
    vector = [x for x in drawn if catalog.layers[x].kind != "raster"]
    wanted = list(vector)
    wanted += [catalog.layers[x].areas for x in vector if catalog.layers[x].areas]
    if "community_risk" in vector and "risk_hex" in catalog.layers:
        wanted.append("risk_hex")
    if any(catalog.layers[x].kind == "concessions" for x in vector):
        wanted.append("concession_risk")
    wanted = [x for x in dict.fromkeys(wanted) if x in catalog.layers]
    areas = {catalog.layers[x].areas for x in catalog.layers if catalog.layers[x].areas}
    out: dict[str, list[dict[str, Any]]] = {}
    for i, layer in enumerate(wanted):
        progress("collections", i, len(wanted))
        # A bundle holding the restricted rows themselves draws no cells for them.
        out[layer] = [] if precise and layer in areas else _items(client, layer, {"bbox": bbox})
    progress("collections", len(wanted), len(wanted))
    # Evidence: the ids each community's score names, in the layer holding their source.
    holders = catalog.source_layers()
    missing: dict[str, set[str]] = {}
    for f in out.get("community_risk", []):
        for key, value in f["properties"].items():
            if not key.endswith("_evidence") or not isinstance(value, list):
                continue
            for eid in value:
                layer = holders.get(str(eid).split(":")[0])
                if layer is not None:
                    missing.setdefault(layer, set()).add(str(eid))
    for layer, ids in missing.items():
        have = {str(f["id"]) for f in out.get(layer, [])}
        ask = sorted(ids - have)
        id_field = catalog.layers[layer].id_field
        found = out.setdefault(layer, [])
        for start in range(0, len(ask), IDS_PER_REQUEST):
            chunk = ask[start : start + IDS_PER_REQUEST]
            quoted = ",".join("'" + x.replace("'", "''") + "'" for x in chunk)
            found += _items(client, layer, {"filter": f"{id_field} IN ({quoted})"})
    return out


def _pmtiles(
    client: TestClient,
    layer: str,
    box: tuple[float, float, float, float],
    max_zoom: int,
    progress: Progress,
    path: Path | None = None,
) -> bytes | None:
    """The layer's PNG tiles over ``box``, zooms 0 to ``max_zoom``, as a PMTiles archive
    (None when no tile has a value); ``path``: the layer's file, to ask only for the tiles
    over a cell with a value."""
    tms = morecantile.tms.get("WebMercatorQuad")
    tiles = list(tms.tiles(*box, zooms=list(range(max_zoom + 1))))
    if path is not None:  # only those over a cell with a value (most of a continent has none)
        tiles = [t for t in tiles if _has_values(path, tms.xy_bounds(t))]
    found: list[tuple[int, bytes]] = []
    for i, t in enumerate(tiles):
        if i % 50 == 0:
            progress(f"tiles of {layer}", i, len(tiles))
        r = client.get(f"/tiles/{layer}/{t.z}/{t.x}/{t.y}.png")
        if r.status_code == 200 and r.content:
            found.append((zxy_to_tileid(t.z, t.x, t.y), r.content))
        elif r.status_code not in (204, 404):
            raise NotFoundError(f"tile {layer}/{t.z}/{t.x}/{t.y}: {r.status_code}")
    progress(f"tiles of {layer}", len(tiles), len(tiles))
    if not found:
        return None
    buffer = io.BytesIO()
    writer = Writer(buffer)
    for tileid, data in sorted(found):
        writer.write_tile(tileid, data)
    west, south, east, north = box
    writer.finalize(
        {
            "tile_type": TileType.PNG,
            "tile_compression": Compression.NONE,
            "min_lon_e7": int(west * 1e7),
            "min_lat_e7": int(south * 1e7),
            "max_lon_e7": int(east * 1e7),
            "max_lat_e7": int(north * 1e7),
        },
        {"name": layer, "format": "png"},
    )
    return buffer.getvalue()


@cache
def _coverage(path: Path) -> tuple[np.ndarray, Affine, Any]:
    """Where a raster of the build has values, at its coarsest overview: the build writes
    overviews as averages over the cells with a value, so a coarse cell has a value when any
    cell under it has one (a test that never leaves a tile with values out)."""
    with rasterio.open(path) as src:
        levels = len(src.overviews(1))
    with rasterio.open(path, overview_level=levels - 1) if levels else rasterio.open(path) as ov:
        return ov.read_masks(1) > 0, ov.transform, ov.crs


def _has_values(path: Path, bounds: Any) -> bool:
    """Whether any cell of the raster at ``path`` within ``bounds`` (EPSG:3857) has a value."""
    valid, transform, crs = _coverage(path)
    west, south, east, north = transform_bounds("EPSG:3857", crs, *bounds)
    inverse = ~transform
    cols, rows = zip(*(inverse * xy for xy in ((west, north), (east, south))), strict=True)
    c0, c1 = max(int(np.floor(min(cols))) - 1, 0), min(int(np.ceil(max(cols))) + 1, valid.shape[1])
    r0, r1 = max(int(np.floor(min(rows))) - 1, 0), min(int(np.ceil(max(rows))) + 1, valid.shape[0])
    return bool(c0 < c1 and r0 < r1 and valid[r0:r1, c0:c1].any())


def _script(assign: str, value: Any) -> bytes:
    """A data script: ``value`` as JSON, kept on ``window.riskMapData``."""
    return STORE.encode() + b"window.riskMapData" + assign.encode() + orjson.dumps(value) + b";"


def _sources_page(client: TestClient, map_id: str, lang: str) -> bytes:
    """The map's sources and licences page, its links made the bundle's."""
    text = _get(client, f"/maps/{map_id}/sources", {"lang": lang}).text
    text = text.replace(f'href="{HOST}/maps/{map_id}?lang={lang}"', 'href="index.html"')
    return text.replace(f"{HOST}/", "").encode()


ASSET = re.compile(rb"""(?:src|href)=["'](assets/[^"'?#]+)""")
CSS_URL = re.compile(rb"""url\(\s*["']?([^"')]+)["']?\s*\)""")


def _assets(pages: bytes) -> Iterable[str]:
    """The library files the pages name (``assets/…``)."""
    return sorted({m.decode() for m in ASSET.findall(pages)})


def _asset(node_modules: Path, path: str) -> bytes:
    """A library file as the service serves it; for a style sheet, with what it names."""
    target, _media = asset_file(node_modules, path.removeprefix("assets/"))
    return target.read_bytes()


def css_images(files: dict[str, bytes], node_modules: Path) -> None:
    """The images the bundle's style sheets name (Leaflet's layers icon), beside them."""
    for path in [p for p in files if p.endswith(".css")]:
        folder = path.rsplit("/", 1)[0]
        for ref in CSS_URL.findall(files[path]):
            name = ref.decode()
            if name.startswith(("data:", "http:", "https:", "#")):
                continue
            full = f"{folder}/{name}"
            if full not in files:
                try:
                    files[full] = _asset(node_modules, full)
                except NotFoundError:
                    continue


def _readme(definition: MapDefinition, bundle: Bundle, catalog: Any, lang: str) -> str:
    """What the map shows, its date, and how to open it, in the map's language."""
    _ = translator(lang)
    lines = [
        definition.title.get(lang),
        "=" * len(definition.title.get(lang)),
        "",
        definition.description.get(lang),
        "",
    ]
    if definition.legend is not None:
        lines += [definition.legend.get(lang), ""]
    lines += [
        _("Data as built on {date} (build {build}); this copy made on {made}.")
        .replace("{date}", catalog.created[:10])
        .replace("{build}", bundle.build_id)
        .replace("{made}", bundle.created[:10]),
        "",
        _(
            "To open it: unzip the whole folder, then open index.html in a web browser "
            "(Chrome, Firefox, Edge or Safari, on a computer or a phone). It needs no "
            "internet connection."
        ),
        "",
        _(
            "It holds the map's area only: beyond it, the map shows no data. Sources, "
            "licences and credits are in sources.html. manifest.json lists every file "
            "with its SHA-256; 'riskmap bundle --verify' checks them."
        ),
    ]
    if bundle.role.sees_restricted:
        lines += ["", _(RESTRICTED_NOTICE)]
    return "\n".join(lines) + "\n"
